// Bindings of the network runtime: fastnn._core.Net32 / Net64.
//
// Parameters, gradients, buffers and optimizer state are exposed as NumPy views into the C++
// buffers (zero copy; the view keeps the network alive). Every call that runs the network releases
// the GIL; a network refuses to be used from two threads at once (RuntimeError) rather than
// corrupting its workspace.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "arrays.h"
#include "fastnn/net.h"

namespace py = pybind11;
using namespace pybind11::literals;
using fastnn::index_t;

namespace fastnn::bind {

OptimKind optim_kind(const std::string& name);                 // kernels.cpp
StepHyper step_hyper(const char* fn, const py::kwargs& kw);     // kernels.cpp

namespace {

template <class T>
struct PyNet {
  std::unique_ptr<Net<T>> net;
  std::atomic<bool> busy{false};
};

// One caller at a time.
template <class T>
struct Busy {
  PyNet<T>& n;
  explicit Busy(PyNet<T>& net) : n(net) {
    if (n.busy.exchange(true))
      throw std::runtime_error(
          "this model is being used by another thread; a fastnn model runs one call at a time "
          "(use one model per thread)");
  }
  ~Busy() { n.busy.store(false); }
};

LayerKind layer_kind(const std::string& s) {
  static const std::pair<const char*, LayerKind> kinds[] = {
      {"dense", LayerKind::Dense},       {"relu", LayerKind::ReLU},   {"leaky_relu", LayerKind::LeakyReLU},
      {"prelu", LayerKind::PReLU},       {"elu", LayerKind::ELU},     {"tanh", LayerKind::Tanh},
      {"sigmoid", LayerKind::Sigmoid},   {"maxout", LayerKind::Maxout}, {"batchnorm", LayerKind::BatchNorm},
      {"dropout", LayerKind::Dropout}};
  for (const auto& [n, k] : kinds)
    if (s == n) return k;
  throw py::value_error("unknown layer kind '" + s + "'");
}

LossKind loss_kind(const std::string& s) {
  if (s == "softmax") return LossKind::SoftmaxCrossEntropy;
  if (s == "svm") return LossKind::MulticlassSVM;
  if (s == "mse") return LossKind::MSE;
  throw py::value_error("unknown loss '" + s + "' (softmax, svm, mse)");
}

template <class V>
V get(const py::dict& d, const char* key, V dflt) {
  return d.contains(key) ? d[key].cast<V>() : dflt;
}

LayerSpec layer_spec(const py::dict& d) {
  LayerSpec L;
  L.kind = layer_kind(d["kind"].cast<std::string>());
  L.in = get<index_t>(d, "in", 0);
  L.out = get<index_t>(d, "out", 0);
  L.param = get<double>(d, "param", 0.0);
  L.momentum = get<double>(d, "momentum", 0.9);
  L.k = get<index_t>(d, "k", 1);
  L.bias = get<bool>(d, "bias", true);
  L.unbiased_var = get<bool>(d, "unbiased_var", true);
  L.decay = get<bool>(d, "decay", true);
  return L;
}

LossSpec loss_spec(const py::dict& d) {
  LossSpec l;
  l.kind = loss_kind(get<std::string>(d, "kind", "softmax"));
  l.label_smoothing = get<double>(d, "label_smoothing", 0.0);
  l.margin = get<double>(d, "margin", 1.0);
  l.l2 = get<double>(d, "l2", 0.0);
  l.l1 = get<double>(d, "l1", 0.0);
  return l;
}

py::list infos(const std::vector<TensorInfo>& v) {
  py::list out;
  for (const auto& t : v)
    out.append(py::dict("name"_a = t.name, "layer"_a = t.layer, "offset"_a = t.offset, "size"_a = t.size,
                        "shape"_a = py::tuple(py::cast(t.shape)), "decay"_a = t.decay));
  return out;
}

template <class T>
py::array view(py::object owner, T* p, index_t n) {
  return py::array(py::dtype::of<T>(), {py::ssize_t(n)}, {py::ssize_t(sizeof(T))}, p, owner);
}

// Data arrays must already be the network's dtype and C-contiguous: the Python layer converts
// (once per fit) rather than letting every call copy silently.
template <class T>
py::array data(py::handle obj, const char* fn, const char* name, index_t cols) {
  if (!py::isinstance<py::array>(obj)) throw py::type_error(std::string(fn) + ": '" + name + "' must be a numpy array");
  auto a = py::reinterpret_borrow<py::array>(obj);
  if (!py::isinstance<py::array_t<T>>(obj) || a.dtype().byteorder() == '>')
    throw py::type_error(std::string(fn) + ": '" + name + "' must be " + dtype_name(sizeof(T) == 4 ? DType::f32 : DType::f64) +
                         " (the model's dtype), got " + py::str(a.dtype()).cast<std::string>());
  if (!(a.flags() & py::array::c_style)) throw py::value_error(std::string(fn) + ": '" + name + "' must be C-contiguous");
  if (a.ndim() != 2 || a.shape(1) != cols)
    throw py::value_error(std::string(fn) + ": '" + name + "' must have shape (N, " + std::to_string(cols) + "), got " +
                          shape_str(shape_of(a)));
  return a;
}

// Targets: int64 labels (N,) for classification losses, (N, C) floats for MSE, and for softmax
// cross-entropy either labels or (N, C) target distributions (soft targets). A 2-D result is a
// dense target array (see target_ptrs).
template <class T>
py::array targets(const Net<T>& net, py::handle obj, const char* fn, index_t N) {
  const LossKind kind = net.loss().kind;
  const bool soft = kind == LossKind::SoftmaxCrossEntropy && py::isinstance<py::array>(obj) &&
                    py::reinterpret_borrow<py::array>(obj).ndim() == 2;
  if (kind == LossKind::MSE || soft) {
    py::array y = data<T>(obj, fn, "y", net.output_dim());
    if (y.shape(0) != N) throw py::value_error(std::string(fn) + ": 'y' must have as many rows as X");
    return y;
  }
  return labels(obj, fn, "y", N);
}

// Dense targets (MSE targets or soft targets) go to the runtime as yr, labels as yc.
// The two target pointers the runtime takes, one of them null: class labels (yc) for a 1-D
// target array from targets(), or dense targets (yr: MSE or soft targets) for a 2-D one.
template <class T>
struct TargetPtrs {
  const std::int64_t* yc;
  const T* yr;
};
template <class T>
TargetPtrs<T> target_ptrs(const py::array& y) {
  const bool dense = y.ndim() == 2;
  return {dense ? nullptr : static_cast<const std::int64_t*>(y.data()), dense ? static_cast<const T*>(y.data()) : nullptr};
}

template <class T>
void bind_net(py::module_& m, const char* cls) {
  using W = PyNet<T>;
  py::class_<W>(m, cls, "A compiled network (see fastnn/net.h); use fastnn.Sequential instead.")
      .def(py::init([](py::list layers, py::dict loss, index_t max_batch, std::uint64_t seed) {
             std::vector<LayerSpec> specs;
             for (auto l : layers) specs.push_back(layer_spec(py::reinterpret_borrow<py::dict>(l)));
             auto w = std::make_unique<W>();
             w->net = std::make_unique<Net<T>>(std::move(specs), loss_spec(loss), max_batch, seed);
             return w;
           }),
           "layers"_a, "loss"_a, "max_batch"_a, "seed"_a)
      .def_property_readonly("input_dim", [](W& w) { return w.net->input_dim(); })
      .def_property_readonly("output_dim", [](W& w) { return w.net->output_dim(); })
      .def_property_readonly("max_batch", [](W& w) { return w.net->max_batch(); })
      .def_property_readonly("n_params", [](W& w) { return w.net->n_params(); })
      .def_property_readonly("n_decay", [](W& w) { return w.net->n_decay(); })
      .def_property_readonly("n_buffers", [](W& w) { return w.net->n_buffers(); })
      .def_property_readonly("n_state", [](W& w) { return w.net->n_state(); })
      .def_property("step", [](W& w) { return w.net->step; }, [](W& w, std::uint64_t s) { w.net->step = s; })
      .def_property("opt_t", [](W& w) { return w.net->opt_t; }, [](W& w, std::int64_t t) { w.net->opt_t = t; })
      .def_property("seed", [](W& w) { return w.net->seed; }, [](W& w, std::uint64_t s) { w.net->seed = s; })
      .def_property("fuse_sgd", [](W& w) { return w.net->fuse_sgd; }, [](W& w, bool f) { w.net->fuse_sgd = f; },
                    "Fuse plain SGD weight updates into the gradient GEMMs (default True).")
      .def("params_info", [](W& w) { return infos(w.net->params_info()); })
      .def("buffers_info", [](W& w) { return infos(w.net->buffers_info()); })
      .def_property_readonly("params", [](py::object self) {
        auto& w = self.cast<W&>();
        return view<T>(self, w.net->params(), w.net->n_params());
      })
      .def_property_readonly("grads", [](py::object self) {
        auto& w = self.cast<W&>();
        return view<T>(self, w.net->grads(), w.net->n_params());
      })
      .def_property_readonly("buffers", [](py::object self) {
        auto& w = self.cast<W&>();
        return view<T>(self, w.net->buffers(), w.net->n_buffers());
      })
      .def("state", [](py::object self, int i) {
        auto& w = self.cast<W&>();
        if (i < 0 || i >= w.net->n_state())
          throw py::index_error("optimizer state " + std::to_string(i) + " does not exist (" +
                                std::to_string(w.net->n_state()) + " state buffers)");
        return view<T>(self, w.net->state(i), w.net->n_params());
      }, "i"_a)
      .def("set_optimizer", [](W& w, const std::string& kind, py::kwargs kw) {
        Busy<T> b(w);
        w.net->set_optimizer(optim_kind(kind), step_hyper("set_optimizer", kw));
      }, "kind"_a)
      .def("set_loss", [](W& w, py::dict loss) {
        Busy<T> b(w);
        LossSpec l = loss_spec(loss);
        if (l.kind != w.net->loss().kind) throw py::value_error("set_loss cannot change the kind of loss");
        w.net->set_loss(l);
      }, "loss"_a)
      .def("train_step", [](W& w, py::handle x_, py::handle y_, double lr, double mu) {
        Busy<T> b(w);
        const char* fn = "train_step";
        require_range(lr, fn, "learning_rate", 0, INFINITY, false, true);
        require_range(mu, fn, "momentum", 0, 1, false, true);
        py::array x = data<T>(x_, fn, "x", w.net->input_dim());
        const index_t n = x.shape(0);
        py::array y = targets(*w.net, y_, fn, n);
        const TargetPtrs<T> t = target_ptrs<T>(y);
        StepLoss r;
        bool finite = true;
        {
          py::gil_scoped_release nogil;
          r = w.net->train_step(static_cast<const T*>(x.data()), t.yc, t.yr, n, lr, mu, &finite);
        }
        return py::make_tuple(r.loss, r.data_loss, r.reg_loss, finite);
      }, "x"_a, "y"_a, "learning_rate"_a, "momentum"_a = 0.0,
      "One training step: returns (loss, data_loss, reg_loss, finite). A non-finite loss skips the update.")
      .def("train_epoch", [](W& w, py::handle X_, py::handle Y_, py::handle order_, index_t batch, py::handle lrs_,
                             py::handle mus_) {
        Busy<T> b(w);
        const char* fn = "train_epoch";
        py::array X = data<T>(X_, fn, "X", w.net->input_dim());
        const index_t N = X.shape(0);
        py::array Y = targets(*w.net, Y_, fn, N);
        auto order = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>::ensure(order_);
        if (!order.ptr() || order.ndim() != 1) throw py::value_error("train_epoch: 'order' must be a 1-D integer array");
        const index_t n_order = order.shape(0);
        if (batch < 1) throw py::value_error("train_epoch: batch_size must be >= 1, got " + std::to_string(batch));
        const index_t steps = (n_order + batch - 1) / batch;
        auto lrs = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(lrs_);
        auto mus = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(mus_);
        if (!lrs.ptr() || !mus.ptr() || lrs.size() < steps || mus.size() < steps)
          throw py::value_error("train_epoch: need a learning rate and a momentum for each of the " +
                                std::to_string(steps) + " steps");
        for (index_t s = 0; s < steps; ++s) {
          require_range(lrs.data()[s], fn, "learning_rate", 0, INFINITY, false, true);
          require_range(mus.data()[s], fn, "momentum", 0, 1, false, true);
        }
        py::array_t<double> losses(steps);
        const TargetPtrs<T> t = target_ptrs<T>(Y);
        index_t done = 0;
        {
          py::gil_scoped_release nogil;
          done = w.net->train_epoch(static_cast<const T*>(X.data()),
                                    t.yc, t.yr, N, order.data(), n_order, batch,
                                    lrs.data(), mus.data(), losses.mutable_data());
        }
        return py::make_tuple(losses, done);
      }, "X"_a, "y"_a, "order"_a, "batch_size"_a, "learning_rates"_a, "momenta"_a,
      "A whole epoch in C++: returns (losses per step, steps completed).")
      .def("loss_and_grad", [](W& w, py::handle x_, py::handle y_, bool train) {
        Busy<T> b(w);
        const char* fn = "loss_and_grad";
        py::array x = data<T>(x_, fn, "x", w.net->input_dim());
        const index_t n = x.shape(0);
        py::array y = targets(*w.net, y_, fn, n);
        const TargetPtrs<T> t = target_ptrs<T>(y);
        StepLoss r;
        {
          py::gil_scoped_release nogil;
          r = w.net->loss_and_grad(static_cast<const T*>(x.data()), t.yc, t.yr, n, train);
        }
        return py::make_tuple(r.loss, r.data_loss, r.reg_loss);
      }, "x"_a, "y"_a, "train"_a = true,
      "Loss and gradient (into .grads) without an update: returns (loss, data_loss, reg_loss).")
      .def("predict", [](W& w, py::handle X_, bool proba) {
        Busy<T> b(w);
        py::array X = data<T>(X_, "predict", "X", w.net->input_dim());
        const index_t N = X.shape(0);
        py::array_t<T> out({py::ssize_t(N), py::ssize_t(w.net->output_dim())});
        {
          py::gil_scoped_release nogil;
          w.net->predict(static_cast<const T*>(X.data()), N, out.mutable_data(), proba);
        }
        return out;
      }, "X"_a, "proba"_a = false,
      "Outputs (N, output_dim) in evaluation mode (softmax probabilities when proba), through the inference "
      "workspace in the chunks of inference_plan(N).")
      .def("inference_plan", [](W& w, index_t N) {
        const auto p = w.net->inference_plan(N);
        return py::make_tuple(p.rows, p.chunks);
      }, "N"_a, "(rows per chunk, chunks) predict and evaluate cut N rows into (layer sizes and cores only).")
      .def_property_readonly("inference_rows", [](W& w) { return w.net->inference_rows(); },
                             "Rows per chunk the inference workspace holds now (0 before the first predict).")
      .def_property_readonly("inference_slots", [](W& w) { return w.net->inference_slots(); },
                             "Threads the inference workspace holds chunks for now.")
      .def("evaluate", [](W& w, py::handle X_, py::handle Y_) {
        Busy<T> b(w);
        const char* fn = "evaluate";
        py::array X = data<T>(X_, fn, "X", w.net->input_dim());
        const index_t N = X.shape(0);
        py::array Y = targets(*w.net, Y_, fn, N);
        const TargetPtrs<T> t = target_ptrs<T>(Y);
        double loss = 0, acc = 0;
        {
          py::gil_scoped_release nogil;
          w.net->evaluate(static_cast<const T*>(X.data()), t.yc, t.yr, N, &loss, &acc);
        }
        return py::make_tuple(loss, acc);
      }, "X"_a, "y"_a, "Mean data loss and accuracy in evaluation mode.")
      .def("reg_loss", [](W& w) { return w.net->reg_loss(); })
      .def("reserve", [](W& w, index_t max_batch) {
        Busy<T> b(w);
        w.net->reserve(max_batch);
      }, "max_batch"_a, "Grow the activation workspace; parameter views stay valid.")
      .def("enable_average", [](W& w, double decay) {
        Busy<T> b(w);
        w.net->enable_average(decay);
      }, "decay"_a, "Running average of the weights: EMA with decay in (0, 1), Polyak (0), off (< 0).")
      .def_property_readonly("average", [](py::object self) -> py::object {
        auto& w = self.cast<W&>();
        if (!w.net->average() || w.net->average_decay() < 0) return py::none();
        return view<T>(self, w.net->average(), w.net->n_params());
      })
      .def_property("average_count", [](W& w) { return w.net->average_count; },
                    [](W& w, std::int64_t c) { w.net->average_count = c; })
      .def_property_readonly("average_decay", [](W& w) { return w.net->average_decay(); })
      .def("set_monitor", [](W& w, index_t every) {
        Busy<T> b(w);
        w.net->set_monitor(every);
      }, "every"_a, "Record monitor statistics every `every` training steps (0: off).")
      .def_property_readonly("monitor_every", [](W& w) { return w.net->monitor_every(); })
      .def_property_readonly("monitor_record_size", [](W& w) { return w.net->monitor_record_size(); })
      .def("take_monitor_log", [](W& w) {
        Busy<T> b(w);
        auto& log = w.net->monitor_log();
        const index_t k = w.net->monitor_record_size();
        const index_t rows = index_t(log.size()) / k;
        py::array_t<double> out({py::ssize_t(rows), py::ssize_t(k)});
        std::copy(log.begin(), log.begin() + rows * k, out.mutable_data());
        log.clear();
        return out;
      }, "The monitor records since the last call, (records, monitor_record_size); clears them.")
      .def_property_readonly("nonfinite_layer", [](W& w) { return w.net->nonfinite_layer; })
      .def_property_readonly("nonfinite_input", [](W& w) { return w.net->nonfinite_input; })
      .def("signature", [](W& w, py::handle x_, py::handle y_, bool train) {
        Busy<T> b(w);
        const char* fn = "signature";
        py::array x = data<T>(x_, fn, "x", w.net->input_dim());
        const index_t n = x.shape(0);
        py::array y = targets(*w.net, y_, fn, n);
        const TargetPtrs<T> t = target_ptrs<T>(y);
        std::uint64_t sig = 0;
        StepLoss r;
        {
          py::gil_scoped_release nogil;
          r = w.net->signature(static_cast<const T*>(x.data()), t.yc, t.yr, n, train, &sig);
        }
        return py::make_tuple(r.loss, sig);
      }, "x"_a, "y"_a, "train"_a = true,
      "Loss and a 64-bit signature of every max the forward pass took (sides of ReLU-type units, maxout "
      "winners, SVM margins): different signatures = different sides of a kink.")
      .def("capture", [](W& w, py::handle x_, py::handle y_, bool train) {
        Busy<T> b(w);
        const char* fn = "capture";
        py::array x = data<T>(x_, fn, "x", w.net->input_dim());
        const index_t n = x.shape(0);
        py::array y = targets(*w.net, y_, fn, n);
        const TargetPtrs<T> t = target_ptrs<T>(y);
        py::list acts, grads;
        std::vector<T*> pa, pg;
        for (const auto& L : w.net->layers()) {
          py::array_t<T> a({py::ssize_t(n), py::ssize_t(L.out)}), g({py::ssize_t(n), py::ssize_t(L.out)});
          pa.push_back(a.mutable_data());
          pg.push_back(g.mutable_data());
          acts.append(a);
          grads.append(g);
        }
        StepLoss r;
        {
          py::gil_scoped_release nogil;
          r = w.net->capture(static_cast<const T*>(x.data()), t.yc, t.yr, n, train, pa.data(), pg.data());
        }
        return py::make_tuple(r.loss, acts, grads);
      }, "x"_a, "y"_a, "train"_a = true,
      "loss_and_grad that also returns every layer's output and the gradient of the loss with respect to it.");
}

}  // namespace

void bind_net(py::module_& m) {
  bind_net<float>(m, "Net32");
  bind_net<double>(m, "Net64");
}

}  // namespace fastnn::bind
