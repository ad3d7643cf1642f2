// The network runtime (see net.h): layout, forward, loss, backward and the fused update.
#include "fastnn/net.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <stdexcept>
#include <string>

#include "fastnn/activations.h"
#include "fastnn/batchnorm.h"
#include "fastnn/dense.h"
#include "fastnn/dropout.h"
#include "fastnn/gemm.h"
#include "fastnn/loss.h"
#include "fastnn/regularization.h"
#include "fastnn/stats.h"
#include "fastnn/threads.h"

namespace fastnn {

namespace {

constexpr index_t kAlignElems = 16;  // tensors start on 64-byte boundaries (float) or 128 (double)

index_t round_up(index_t n, index_t a) { return (n + a - 1) / a * a; }

// a * b, or std::length_error when it overflows (absurd sizes fail before anything is allocated).
index_t mul(index_t a, index_t b, const char* what) {
  if (a < 0 || b < 0) throw std::invalid_argument(std::string(what) + ": negative size");
  if (a != 0 && b > std::numeric_limits<index_t>::max() / a)
    throw std::length_error(std::string(what) + ": size overflows 64 bits");
  return a * b;
}

std::string layer_name(LayerKind k) {
  switch (k) {
    case LayerKind::Dense: return "Dense";
    case LayerKind::ReLU: return "ReLU";
    case LayerKind::LeakyReLU: return "LeakyReLU";
    case LayerKind::PReLU: return "PReLU";
    case LayerKind::ELU: return "ELU";
    case LayerKind::Tanh: return "Tanh";
    case LayerKind::Sigmoid: return "Sigmoid";
    case LayerKind::Maxout: return "Maxout";
    case LayerKind::BatchNorm: return "BatchNorm";
    case LayerKind::Dropout: return "Dropout";
  }
  return "?";
}

// A limit in bytes read from a file (cgroup memory limits); 0 when absent or unlimited ("max").
double limit_from_file(const char* path) {
  std::FILE* f = std::fopen(path, "r");
  if (!f) return 0.0;
  char buf[64] = {0};
  const bool ok = std::fgets(buf, sizeof buf, f) != nullptr;
  std::fclose(f);
  if (!ok || buf[0] < '0' || buf[0] > '9') return 0.0;
  const double v = std::strtod(buf, nullptr);
  return v > 0 && v < 1e18 ? v : 0.0;  // cgroup v1 reports "no limit" as ~2^63
}

// The memory this process may use: the machine's physical memory, lowered by a container's
// cgroup limit and by the address-space/data rlimits when set (0 if nothing is known). Sizes are
// checked against it before allocating, so an absurd network is refused with an exception
// instead of the process being killed by the OOM killer.
double physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
  double m = pages > 0 && size > 0 ? double(pages) * double(size) : 0.0;
  auto lower = [&m](double v) {
    if (v > 0 && (m <= 0 || v < m)) m = v;
  };
  lower(limit_from_file("/sys/fs/cgroup/memory.max"));                    // cgroup v2
  lower(limit_from_file("/sys/fs/cgroup/memory/memory.limit_in_bytes"));  // cgroup v1
  for (int res : {RLIMIT_AS, RLIMIT_DATA}) {
    struct rlimit rl;
    if (getrlimit(res, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) lower(double(rl.rlim_cur));
  }
  return m;
}

}  // namespace

template <class T>
struct Net<T>::Slot {
  index_t in = 0, out = 0;
  T* act = nullptr;              // this layer's output in training / the workspace
  const T* y = nullptr;          // where the output of the last forward pass is
  index_t w = -1, b = -1;        // parameter offsets: Dense weight/bias, BN gamma/beta, PReLU slopes
  index_t rm = -1, rv = -1;      // buffer offsets: BN running mean / variance
  T* mean = nullptr;             // BN batch mean / inverse std
  T* invstd = nullptr;
  std::uint8_t* mask = nullptr;  // Dropout
  std::int32_t* argmax = nullptr;  // Maxout
};

template <class T>
void* Net<T>::alloc_bytes(index_t bytes, bool workspace) {
  if (bytes < 0 || bytes > std::numeric_limits<index_t>::max() - 128)  // (rounding up must not overflow)
    throw std::length_error("buffer of " + std::to_string(bytes) + " bytes: size overflows 64 bits");
  const std::size_t sz = std::size_t(round_up(std::max<index_t>(bytes, 64), 64));
  void* p = std::aligned_alloc(64, sz);
  if (!p) throw std::bad_alloc();
  (workspace ? workspace_ : owned_).push_back(p);
  return p;
}

template <class T>
T* Net<T>::alloc(index_t n, bool workspace) {
  return static_cast<T*>(alloc_bytes(mul(n, index_t(sizeof(T)), "buffer"), workspace));
}

template <class T>
Net<T>::~Net() {
  for (void* p : owned_) std::free(p);
  for (void* p : workspace_) std::free(p);
}

template <class T>
void Net<T>::allocate_workspace() {
  // size first: a batch whose buffers exceed the machine's memory fails before anything is taken
  double bytes = double(max_batch_) * double(input_dim_ + output_dim_ + 2 * max_width_) * sizeof(T);
  for (size_t i = 0; i < slots_.size(); ++i) {
    bytes += double(max_batch_) * double(slots_[i].out) * sizeof(T);  // (double: cannot overflow)
    if (layers_[i].kind == LayerKind::Dropout) bytes += double(max_batch_) * double(slots_[i].out);
    if (layers_[i].kind == LayerKind::Maxout) bytes += 4.0 * double(max_batch_) * double(slots_[i].out);
  }
  const double phys = physical_memory_bytes();
  if (phys > 0 && bytes > 0.9 * phys)
    throw std::length_error("a batch of " + std::to_string(max_batch_) + " rows needs about " +
                            std::to_string(bytes / 1e9) + " GB of activation buffers, more than the " +
                            std::to_string(phys / 1e9) + " GB of memory this process may use");
  for (void* p : workspace_) std::free(p);
  workspace_.clear();
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot& s = slots_[i];
    s.act = alloc(mul(max_batch_, s.out, "activations"), true);
    s.y = nullptr;
    if (layers_[i].kind == LayerKind::Dropout)
      s.mask = static_cast<std::uint8_t*>(alloc_bytes(mul(max_batch_, s.out, "dropout mask"), true));
    if (layers_[i].kind == LayerKind::Maxout)
      s.argmax = static_cast<std::int32_t*>(alloc_bytes(mul(mul(max_batch_, s.out, "maxout"), 4, "maxout"), true));
  }
  const index_t grad_ws = mul(max_batch_, max_width_, "gradient workspace");
  gbuf_[0] = alloc(grad_ws, true);
  gbuf_[1] = alloc(grad_ws, true);
  xbuf_ = alloc(mul(max_batch_, input_dim_, "batch"), true);
  ybuf_ = static_cast<std::int64_t*>(alloc_bytes(mul(max_batch_, 8, "labels"), true));
  ybuf_reg_ = alloc(mul(max_batch_, output_dim_, "targets"), true);
}

template <class T>
void Net<T>::reserve(index_t max_batch) {
  if (max_batch < 1) throw std::invalid_argument("max_batch must be >= 1");
  if (max_batch <= max_batch_) return;
  const index_t old = max_batch_;
  max_batch_ = max_batch;
  try {
    allocate_workspace();
  } catch (...) {
    max_batch_ = old;
    allocate_workspace();
    throw;
  }
}

template <class T>
bool Net<T>::has_batchnorm() const {
  for (const LayerSpec& L : layers_)
    if (L.kind == LayerKind::BatchNorm) return true;
  return false;
}

template <class T>
void Net<T>::check_batch(index_t n, bool train) const {
  if (n < 1 || n > max_batch_)
    throw std::invalid_argument("batch of " + std::to_string(n) + " rows; this network takes 1 to " +
                                std::to_string(max_batch_));
  if (train && n == 1 && has_batchnorm())
    throw std::invalid_argument(
        "batch norm in training mode needs more than 1 row per batch, got a batch of 1 row (the variance "
        "of one row is 0, so every output would be beta)");
}

template <class T>
void Net<T>::enable_average(double decay) {
  if (decay >= 1.0 || !std::isfinite(decay))
    throw std::invalid_argument("the averaging decay must be < 1 (0 for a Polyak average, < 0 to switch off)");
  avg_decay_ = decay;
  average_count = 0;
  if (decay < 0) return;
  if (!average_) average_ = alloc(n_params_);
  std::memcpy(average_, params_, sizeof(T) * n_params_);
}

template <class T>
Net<T>::Net(std::vector<LayerSpec> layers, LossSpec loss, index_t max_batch, std::uint64_t seed_)
    : seed(seed_), layers_(std::move(layers)), loss_(loss), max_batch_(max_batch) {
  if (layers_.empty()) throw std::invalid_argument("a network needs at least one layer");
  if (max_batch_ < 1) throw std::invalid_argument("max_batch must be >= 1");
  if (layers_[0].in < 1) throw std::invalid_argument("the first layer needs its input size (in >= 1)");
  input_dim_ = layers_[0].in;
  slots_.resize(layers_.size());
  // 1. shapes and checks
  index_t width = input_dim_;
  max_width_ = input_dim_;
  for (size_t i = 0; i < layers_.size(); ++i) {
    LayerSpec& L = layers_[i];
    const std::string where = "layer " + std::to_string(i) + " (" + layer_name(L.kind) + ")";
    if (L.in == 0) L.in = width;
    if (L.in != width)
      throw std::invalid_argument(where + " expects " + std::to_string(L.in) + " input features but receives " +
                                  std::to_string(width));
    switch (L.kind) {
      case LayerKind::Dense:
        if (L.out < 1) throw std::invalid_argument(where + ": out must be >= 1");
        break;
      case LayerKind::Maxout:
        if (L.k < 1 || L.in % L.k)
          throw std::invalid_argument(where + ": " + std::to_string(L.in) + " features do not split into groups of k = " +
                                      std::to_string(L.k));
        L.out = L.in / L.k;
        break;
      case LayerKind::PReLU:
        if (L.k != 1 && L.k != L.in)
          throw std::invalid_argument(where + ": the number of slopes must be 1 or " + std::to_string(L.in));
        L.out = L.in;
        break;
      case LayerKind::Dropout:
        if (!(L.param > 0.0 && L.param <= 1.0))
          throw std::invalid_argument(where + ": the keep probability must be in (0, 1]");
        L.out = L.in;
        break;
      case LayerKind::BatchNorm:
        if (!(L.param > 0.0) || !std::isfinite(L.param)) throw std::invalid_argument(where + ": eps must be > 0");
        if (!(L.momentum >= 0.0 && L.momentum <= 1.0))
          throw std::invalid_argument(where + ": momentum must be in [0, 1]");
        L.out = L.in;
        break;
      case LayerKind::ELU:
        if (!(L.param >= 0.0) || !std::isfinite(L.param)) throw std::invalid_argument(where + ": alpha must be >= 0");
        L.out = L.in;
        break;
      case LayerKind::LeakyReLU:
        if (!std::isfinite(L.param)) throw std::invalid_argument(where + ": slope must be finite");
        L.out = L.in;
        break;
      default:
        L.out = L.in;
    }
    slots_[i].in = L.in;
    slots_[i].out = L.out;
    width = L.out;
    max_width_ = std::max(max_width_, width);
  }
  output_dim_ = width;

  // 2. parameter layout: decayed tensors first, then the rest
  auto add = [&](std::vector<TensorInfo>& infos, index_t& total, int layer, const std::string& name,
                 std::vector<index_t> shape, bool decay) {
    index_t size = 1;
    for (index_t d : shape) size = mul(size, d, "parameter");
    total = round_up(total, kAlignElems);
    infos.push_back({std::to_string(layer) + "." + name, layer, total, size, std::move(shape), decay});
    total += size;
    return infos.back().offset;
  };
  for (size_t i = 0; i < layers_.size(); ++i) {
    const LayerSpec& L = layers_[i];
    if (L.kind == LayerKind::Dense && L.decay) slots_[i].w = add(params_info_, n_params_, int(i), "weight", {L.in, L.out}, true);
  }
  n_decay_ = round_up(n_params_, kAlignElems);
  n_params_ = n_decay_;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const LayerSpec& L = layers_[i];
    Slot& s = slots_[i];
    if (L.kind == LayerKind::Dense && !L.decay) s.w = add(params_info_, n_params_, int(i), "weight", {L.in, L.out}, false);
    if (L.kind == LayerKind::Dense && L.bias) s.b = add(params_info_, n_params_, int(i), "bias", {L.out}, false);
    if (L.kind == LayerKind::BatchNorm && L.bias) {
      s.w = add(params_info_, n_params_, int(i), "weight", {L.out}, false);
      s.b = add(params_info_, n_params_, int(i), "bias", {L.out}, false);
    }
    if (L.kind == LayerKind::PReLU) s.w = add(params_info_, n_params_, int(i), "weight", {L.k}, false);
    if (L.kind == LayerKind::BatchNorm) {
      s.rm = add(buffers_info_, n_buffers_, int(i), "running_mean", {L.out}, false);
      s.rv = add(buffers_info_, n_buffers_, int(i), "running_var", {L.out}, false);
    }
  }
  n_params_ = round_up(n_params_, kAlignElems);
  // 3. allocate: trained state zeroed; the workspace (sized and checked first) left to first touch
  const double phys = physical_memory_bytes();
  if (phys > 0 && double(sizeof(T)) * 6.0 * double(n_params_) > phys)
    throw std::length_error("this network's " + std::to_string(n_params_) +
                            " parameters need more memory (weights, gradients, optimizer state) than the " +
                            std::to_string(phys / 1e9) + " GB this process may use");
  // A constructor that throws never runs the destructor: what was allocated before the throw (a
  // workspace too large for the machine, a bad loss) is freed here, or every refused network leaks.
  try {
    params_ = alloc(n_params_);
    grads_ = alloc(n_params_);
    std::memset(params_, 0, sizeof(T) * n_params_);
    std::memset(grads_, 0, sizeof(T) * n_params_);
    buffers_ = alloc(std::max<index_t>(n_buffers_, 1));
    std::memset(buffers_, 0, sizeof(T) * std::max<index_t>(n_buffers_, 1));
    saved_buffers_ = alloc(std::max<index_t>(n_buffers_, 1));
    for (auto& s : slots_) {
      const LayerKind k = layers_[&s - slots_.data()].kind;
      if (k == LayerKind::BatchNorm) {
        s.mean = alloc(s.out);
        s.invstd = alloc(s.out);
      }
    }
    allocate_workspace();
    set_loss(loss_);
    set_optimizer(OptimKind::SGD, StepHyper{});
  } catch (...) {
    for (void* p : owned_) std::free(p);
    for (void* p : workspace_) std::free(p);
    owned_.clear();
    workspace_.clear();
    throw;
  }
}

template <class T>
void Net<T>::set_loss(const LossSpec& loss) {
  if (!(loss.l2 >= 0) || !(loss.l1 >= 0) || !std::isfinite(loss.l2) || !std::isfinite(loss.l1))
    throw std::invalid_argument("l2 and l1 must be finite and >= 0");
  if (!(loss.label_smoothing >= 0 && loss.label_smoothing < 1))
    throw std::invalid_argument("label_smoothing must be in [0, 1)");
  loss_ = loss;
}

template <class T>
void Net<T>::set_optimizer(OptimKind kind, const StepHyper& hyper) {
  const int ns = optimizer_state_count(kind);
  for (int i = 0; i < 3; ++i) {
    if (i < ns) {
      if (!state_[i]) state_[i] = alloc(n_params_);
      std::memset(state_[i], 0, sizeof(T) * n_params_);
    }
  }
  opt_kind_ = kind;
  hyper_ = hyper;
  opt_t = 0;
}

template <class T>
const T* Net<T>::output() const {
  return slots_.back().y;
}

template <class T>
void Net<T>::forward(const T* x, index_t n, bool train, std::uint64_t step_key) {
  const T* in = x;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const LayerSpec& L = layers_[i];
    Slot& s = slots_[i];
    T* out = s.act;
    const index_t ne = n * s.in;
    switch (L.kind) {
      case LayerKind::Dense:
        dense_forward(out, in, params_ + s.w, s.b >= 0 ? params_ + s.b : nullptr, n, s.in, s.out);
        break;
      case LayerKind::ReLU: relu_forward(out, in, ne); break;
      case LayerKind::LeakyReLU: leaky_relu_forward(out, in, T(L.param), ne); break;
      case LayerKind::PReLU: prelu_forward(out, in, params_ + s.w, n, s.in, L.k); break;
      case LayerKind::ELU: elu_forward(out, in, T(L.param), ne); break;
      case LayerKind::Tanh: tanh_forward(out, in, ne); break;
      case LayerKind::Sigmoid: sigmoid_forward(out, in, ne); break;
      case LayerKind::Maxout: maxout_forward(out, s.argmax, in, n, s.out, L.k); break;
      case LayerKind::BatchNorm: {
        const T* g = s.w >= 0 ? params_ + s.w : nullptr;
        const T* b = s.b >= 0 ? params_ + s.b : nullptr;
        if (train)
          batchnorm_forward_train(out, s.mean, s.invstd, buffers_ + s.rm, buffers_ + s.rv, in, g, b, n, s.in,
                                  T(L.param), T(L.momentum), L.unbiased_var);
        else
          batchnorm_forward_eval(out, in, g, b, buffers_ + s.rm, buffers_ + s.rv, n, s.in, T(L.param));
        break;
      }
      case LayerKind::Dropout:
        if (train && L.param < 1.0) {
          dropout_forward(out, s.mask, in, ne, L.param, seed, (step_key << 16) | std::uint64_t(i));
        } else {
          s.y = in;  // identity: no copy
          in = s.y;
          continue;
        }
        break;
    }
    s.y = out;
    in = out;
  }
}

template <class T>
double Net<T>::data_loss_and_dscores(const std::int64_t* yc, const T* yr, index_t n, bool want_grad,
                                     const T* scores_in) {
  const T* scores = scores_in ? scores_in : output();
  T* d = want_grad ? gbuf_[0] : nullptr;
  double loss = 0.0;
  index_t bad = -1;
  if (!yc && !yr) throw std::invalid_argument("no targets: class labels or a target array are needed");
  switch (loss_.kind) {
    case LossKind::SoftmaxCrossEntropy:
      if (yc)
        bad = softmax_cross_entropy(&loss, d, scores, yc, n, output_dim_, loss_.label_smoothing, false);
      else  // soft targets (n, C): target distributions, e.g. a teacher's softened probabilities
        softmax_cross_entropy_soft(&loss, d, scores, yr, n, output_dim_, loss_.label_smoothing, false);
      break;
    case LossKind::MulticlassSVM:
      if (!yc) throw std::invalid_argument("the multiclass SVM loss needs class labels, not a target array");
      bad = svm_loss(&loss, d, scores, yc, n, output_dim_, loss_.margin, false);
      break;
    case LossKind::MSE:
      mse_loss(&loss, d, scores, yr, n * output_dim_, 1.0 / double(n * output_dim_), false);
      break;
  }
  if (bad >= 0)
    throw std::invalid_argument("label " + std::to_string(yc[bad]) + " of batch row " + std::to_string(bad) +
                                " is outside [0, " + std::to_string(output_dim_) + ")");
  return loss;
}

template <class T>
double Net<T>::reg_loss() const {
  double r = 0.0;
  if (loss_.l2 > 0) r += l2_penalty<T>(nullptr, params_, n_decay_, loss_.l2);
  if (loss_.l1 > 0) r += l1_penalty<T>(nullptr, params_, n_decay_, loss_.l1);
  return r;
}

template <class T>
void Net<T>::backward(const T* x, index_t n, bool train, double* grad_stats) {
  int cur = 0;  // gbuf_[cur] holds d(loss)/d(output of layer i)
  for (size_t ii = layers_.size(); ii-- > 0;) {
    const LayerSpec& L = layers_[ii];
    Slot& s = slots_[ii];
    const T* in = ii == 0 ? x : slots_[ii - 1].y;
    const T* g = gbuf_[cur];
    if (grad_stats) {
      const Summary gs = summarize(g, n * s.out, INFINITY, -INFINITY, INFINITY);
      grad_stats[8 * ii + 6] = gs.mean();
      grad_stats[8 * ii + 7] = std::sqrt(gs.var());
    }
    if (capture_grads_ && capture_grads_[ii]) std::memcpy(capture_grads_[ii], g, sizeof(T) * n * s.out);
    T* dx = ii == 0 ? nullptr : gbuf_[1 - cur];
    const index_t ne = n * s.in;
    const bool need_dx = dx != nullptr;
    switch (L.kind) {
      case LayerKind::Dense:
        if (fused_lr_ >= 0.0) {
          // Plain SGD: dx (with the old weights), db, then W = (1 - lr l2) W - lr x^T g in the GEMM
          // itself; the weight gradient is never written out and read back.
          dense_backward(dx, static_cast<T*>(nullptr), s.b >= 0 ? grads_ + s.b : nullptr, g, in, params_ + s.w, n,
                         s.in, s.out, false);
          const double l2 = L.decay ? loss_.l2 : 0.0;
          gemm<T>(true, false, s.in, s.out, n, T(-fused_lr_), in, s.in, g, s.out, T(1.0 - fused_lr_ * l2),
                  params_ + s.w, s.out);
        } else {
          dense_backward(dx, grads_ + s.w, s.b >= 0 ? grads_ + s.b : nullptr, g, in, params_ + s.w, n, s.in, s.out,
                         false);
        }
        break;
      case LayerKind::ReLU:
        if (need_dx) relu_backward(dx, g, in, ne, false);
        break;
      case LayerKind::LeakyReLU:
        if (need_dx) leaky_relu_backward(dx, g, in, T(L.param), ne, false);
        break;
      case LayerKind::PReLU:
        prelu_backward(dx, grads_ + s.w, g, in, params_ + s.w, n, s.in, L.k, false);
        break;
      case LayerKind::ELU:
        if (need_dx) elu_backward(dx, g, s.y, T(L.param), ne, false);
        break;
      case LayerKind::Tanh:
        if (need_dx) tanh_backward(dx, g, s.y, ne, false);
        break;
      case LayerKind::Sigmoid:
        if (need_dx) sigmoid_backward(dx, g, s.y, ne, false);
        break;
      case LayerKind::Maxout:
        if (need_dx) maxout_backward(dx, g, s.argmax, n, s.out, L.k, false);
        break;
      case LayerKind::BatchNorm: {
        T* dg = s.w >= 0 ? grads_ + s.w : nullptr;
        T* db = s.b >= 0 ? grads_ + s.b : nullptr;
        const T* gamma = s.w >= 0 ? params_ + s.w : nullptr;
        if (train)
          batchnorm_backward(dx, dg, db, g, in, gamma, s.mean, s.invstd, n, s.in, false);
        else  // evaluation mode: a fixed affine map of the running statistics
          batchnorm_backward_eval(dx, dg, db, g, in, gamma, buffers_ + s.rm, buffers_ + s.rv, n, s.in,
                                  T(L.param), false);
        break;
      }
      case LayerKind::Dropout:
        if (need_dx) {
          if (train && L.param < 1.0)
            dropout_backward(dx, g, s.mask, ne, L.param, false);
          else  // identity in evaluation mode
            std::memcpy(dx, g, sizeof(T) * ne);
        }
        break;
    }
    cur = 1 - cur;
  }
}

template <class T>
void Net<T>::update(double lr, double momentum) {
  StepHyper h = hyper_;
  h.lr = lr;
  h.momentum = momentum;
  h.t = ++opt_t;
  h.l2 = loss_.l2;
  h.l1 = loss_.l1;
  if (fused_lr_ >= 0.0) {
    // Dense weights were updated inside their gradient GEMMs (backward); SGD the rest, which takes
    // no penalty (only Dense weights do).
    h.l2 = h.l1 = 0.0;
    for (const auto& t : params_info_)
      if (!(layers_[t.layer].kind == LayerKind::Dense && t.name.size() > 6 &&
            t.name.compare(t.name.size() - 6, 6, "weight") == 0))
        optimizer_step(OptimKind::SGD, params_ + t.offset, state_, grads_ + t.offset, t.size, h);
    average_update();
    return;
  }
  optimizer_step(opt_kind_, params_, state_, grads_, n_decay_, h);
  h.l2 = h.l1 = 0.0;
  h.weight_decay = 0.0;  // AdamW's decay, like the penalties, applies to the decayed tensors only
  T* rest[3] = {nullptr, nullptr, nullptr};
  for (int i = 0; i < n_state(); ++i) rest[i] = state_[i] + n_decay_;
  optimizer_step(opt_kind_, params_ + n_decay_, rest, grads_ + n_decay_, n_params_ - n_decay_, h);
  average_update();
}

template <class T>
void Net<T>::average_update() {
  if (avg_decay_ >= 0.0) {
    ++average_count;
    const double a = avg_decay_ > 0.0 ? 1.0 - avg_decay_ : 1.0 / double(average_count);
    const T* w = params_;
    T* avg = average_;
    parallel_for(n_params_, 16384, [&](index_t lo, index_t hi) {
      const T c = T(a);
#pragma omp simd
      for (index_t i = lo; i < hi; ++i) avg[i] += c * (w[i] - avg[i]);
    });
  }
}

template <class T>
StepLoss Net<T>::train_step(const T* x, const std::int64_t* yc, const T* yr, index_t n, double lr,
                            double momentum, bool* finite) {
  check_batch(n, true);
  // running statistics are restored if the step turns out not finite
  if (n_buffers_) std::memcpy(saved_buffers_, buffers_, sizeof(T) * n_buffers_);
  forward(x, n, true, step);
  StepLoss r;
  r.data_loss = data_loss_and_dscores(yc, yr, n, true);
  r.reg_loss = reg_loss();
  r.loss = r.data_loss + r.reg_loss;
  *finite = std::isfinite(r.loss);
  if (!*finite) {
    locate_nonfinite(x, n);
    if (n_buffers_) std::memcpy(buffers_, saved_buffers_, sizeof(T) * n_buffers_);
    return r;
  }
  const bool mon = monitor_every_ > 0 && step % std::uint64_t(monitor_every_) == 0;
  double* rec = nullptr;
  if (mon) {
    const size_t at = monitor_log_.size();
    monitor_log_.resize(at + size_t(monitor_record_size()), 0.0);
    rec = monitor_log_.data() + at;
    rec[0] = double(step);
    rec[1] = r.loss;
    record_activations(n, rec + 2 + 3 * params_info_.size());
  }
  fused_lr_ = fuse_sgd && !mon && opt_kind_ == OptimKind::SGD && loss_.l1 == 0.0 ? lr : -1.0;
  backward(x, n, true, mon ? rec + 2 + 3 * params_info_.size() : nullptr);
  if (mon) {
    for (size_t t = 0; t < params_info_.size(); ++t) {
      const TensorInfo& ti = params_info_[t];
      rec[2 + 3 * t] = std::sqrt(sum_sq_diff<T>(grads_ + ti.offset, nullptr, ti.size));
      rec[2 + 3 * t + 1] = std::sqrt(sum_sq_diff<T>(params_ + ti.offset, nullptr, ti.size));
    }
    std::memcpy(monitor_prev_, params_, sizeof(T) * n_params_);
  }
  update(lr, momentum);
  fused_lr_ = -1.0;
  if (mon) {
    for (size_t t = 0; t < params_info_.size(); ++t) {
      const TensorInfo& ti = params_info_[t];
      // the log may have moved if it grew: index it again
      double* rc = monitor_log_.data() + monitor_log_.size() - size_t(monitor_record_size());
      rc[2 + 3 * t + 2] = std::sqrt(sum_sq_diff<T>(params_ + ti.offset, monitor_prev_ + ti.offset, ti.size));
    }
  }
  ++step;
  return r;
}

template <class T>
void Net<T>::record_activations(index_t n, double* out) {
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Slot& s = slots_[i];
    const LayerKind k = layers_[i].kind;
    const double sat_abs = k == LayerKind::Tanh ? 0.99 : INFINITY;
    const double sat_lo = k == LayerKind::Sigmoid ? 0.01 : -INFINITY;
    const double sat_hi = k == LayerKind::Sigmoid ? 0.99 : INFINITY;
    const Summary a = summarize(s.y, n * s.out, sat_abs, sat_lo, sat_hi);
    const double cnt = std::max(1.0, a.count);
    index_t dead = 0;
    for (index_t j = 0; j < s.out; ++j) {
      bool all_zero = true;
      for (index_t r = 0; r < n && all_zero; ++r) all_zero = s.y[r * s.out + j] == T(0);
      dead += all_zero;
    }
    double* o = out + 8 * i;
    o[0] = a.mean();
    o[1] = std::sqrt(a.var());
    o[2] = a.zeros / cnt;
    o[3] = double(dead) / double(std::max<index_t>(1, s.out));
    o[4] = a.saturated / cnt;
    o[5] = a.nonfinite;
  }
}

template <class T>
void Net<T>::locate_nonfinite(const T* x, index_t n) {
  nonfinite_input = first_nonfinite(x, n * input_dim_) >= 0;
  nonfinite_layer = -1;
  for (size_t i = 0; i < layers_.size(); ++i)
    if (first_nonfinite(slots_[i].y, n * slots_[i].out) >= 0) {
      nonfinite_layer = int(i);
      return;
    }
}

template <class T>
void Net<T>::set_monitor(index_t every) {
  if (every < 0) throw std::invalid_argument("monitor interval must be >= 0");
  monitor_every_ = every;
  if (every > 0 && !monitor_prev_) monitor_prev_ = alloc(n_params_);
}

template <class T>
StepLoss Net<T>::signature(const T* x, const std::int64_t* yc, const T* yr, index_t n, bool train,
                           std::uint64_t* sig) {
  check_batch(n, train);
  if (n_buffers_) std::memcpy(saved_buffers_, buffers_, sizeof(T) * n_buffers_);
  forward(x, n, train, step);
  StepLoss r;
  r.data_loss = data_loss_and_dscores(yc, yr, n, false);
  r.reg_loss = reg_loss();
  r.loss = r.data_loss + r.reg_loss;
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a over every max's decision
  auto mix = [&h](std::uint64_t v) { h = (h ^ v) * 1099511628211ull; };
  const T* in = x;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Slot& s = slots_[i];
    const LayerKind k = layers_[i].kind;
    if (k == LayerKind::ReLU || k == LayerKind::LeakyReLU || k == LayerKind::PReLU)
      for (index_t e = 0; e < n * s.in; ++e) mix(in[e] > T(0));
    if (k == LayerKind::Maxout)
      for (index_t e = 0; e < n * s.out; ++e) mix(std::uint64_t(s.argmax[e]));
    in = s.y;
  }
  if (loss_.kind == LossKind::MulticlassSVM) {
    const T* sc = output();
    for (index_t i = 0; i < n; ++i)
      for (index_t j = 0; j < output_dim_; ++j)
        if (j != yc[i]) mix(double(sc[i * output_dim_ + j]) - double(sc[i * output_dim_ + yc[i]]) + loss_.margin > 0);
  }
  if (n_buffers_) std::memcpy(buffers_, saved_buffers_, sizeof(T) * n_buffers_);
  *sig = h;
  return r;
}

template <class T>
StepLoss Net<T>::capture(const T* x, const std::int64_t* yc, const T* yr, index_t n, bool train,
                         T* const* acts, T* const* grads) {
  capture_grads_ = grads;
  StepLoss r;
  try {
    r = loss_and_grad(x, yc, yr, n, train);
  } catch (...) {
    capture_grads_ = nullptr;
    throw;
  }
  capture_grads_ = nullptr;
  for (size_t i = 0; i < layers_.size(); ++i)
    if (acts && acts[i]) std::memcpy(acts[i], slots_[i].y, sizeof(T) * n * slots_[i].out);
  return r;
}

template <class T>
index_t Net<T>::train_epoch(const T* X, const std::int64_t* Yc, const T* Yr, index_t N,
                            const std::int64_t* order, index_t n_order, index_t batch,
                            const double* lrs, const double* mus, double* losses) {
  if (batch < 1 || batch > max_batch_)
    throw std::invalid_argument("batch_size " + std::to_string(batch) + " must be in [1, " +
                                std::to_string(max_batch_) + "]");
  // Refused before the first step rather than at the last batch of the epoch.
  if (n_order > 0 && (batch == 1 || n_order % batch == 1) && has_batchnorm())
    throw std::invalid_argument(
        "batch norm in training mode needs more than 1 row per batch, but " + std::to_string(n_order) +
        " rows in batches of " + std::to_string(batch) + " make a batch of 1 row; choose a batch size that "
        "does not (the variance of one row is 0, so every output would be beta)");
  for (index_t i = 0; i < n_order; ++i)
    if (order[i] < 0 || order[i] >= N)
      throw std::invalid_argument("order[" + std::to_string(i) + "] = " + std::to_string(order[i]) +
                                  " is not a row of X (" + std::to_string(N) + " rows)");
  const index_t steps = (n_order + batch - 1) / batch;
  const index_t D = input_dim_, C = output_dim_;
  for (index_t s = 0; s < steps; ++s) {
    const index_t r0 = s * batch, nb = std::min(batch, n_order - r0);
    // A batch of consecutive rows (no shuffling) is used where it lies; otherwise it is gathered.
    bool consecutive = true;
    for (index_t r = 1; r < nb && consecutive; ++r) consecutive = order[r0 + r] == order[r0] + r;
    const T* xb = X + order[r0] * D;
    const std::int64_t* yb = Yc ? Yc + order[r0] : nullptr;
    const T* yrb = Yr ? Yr + order[r0] * C : nullptr;
    if (!consecutive) {
      parallel_for(nb, std::max<index_t>(1, 16384 / std::max<index_t>(1, D)), [&](index_t a, index_t b) {
        for (index_t r = a; r < b; ++r) {
          const std::int64_t src = order[r0 + r];
          std::memcpy(xbuf_ + r * D, X + src * D, sizeof(T) * D);
          if (Yc) ybuf_[r] = Yc[src];
          if (Yr) std::memcpy(ybuf_reg_ + r * C, Yr + src * C, sizeof(T) * C);
        }
      }, 1);
      xb = xbuf_;
      yb = Yc ? ybuf_ : nullptr;
      yrb = Yr ? ybuf_reg_ : nullptr;
    }
    bool finite = true;
    const StepLoss l = train_step(xb, yb, yrb, nb, lrs[s], mus[s], &finite);
    losses[s] = l.loss;
    if (!finite) return s;
  }
  return steps;
}

template <class T>
StepLoss Net<T>::loss_and_grad(const T* x, const std::int64_t* yc, const T* yr, index_t n, bool train) {
  check_batch(n, train);
  if (n_buffers_) std::memcpy(saved_buffers_, buffers_, sizeof(T) * n_buffers_);  // left untouched
  forward(x, n, train, step);
  StepLoss r;
  r.data_loss = data_loss_and_dscores(yc, yr, n, true);
  r.reg_loss = reg_loss();
  r.loss = r.data_loss + r.reg_loss;
  backward(x, n, train);
  if (loss_.l2 > 0) l2_penalty<T>(grads_, params_, n_decay_, loss_.l2, true);
  if (loss_.l1 > 0) l1_penalty<T>(grads_, params_, n_decay_, loss_.l1, true);
  if (n_buffers_) std::memcpy(buffers_, saved_buffers_, sizeof(T) * n_buffers_);
  return r;
}

template <class T>
typename Net<T>::InferencePlan Net<T>::inference_plan(index_t N) const {
  InferencePlan p;
  if (N <= 0) return p;
  index_t width = 1;
  for (const Slot& s : slots_) width = std::max(width, s.out);
  const double fit = kInferChunkBytes / (double(width) * double(sizeof(T)));
  const index_t max_rows = std::clamp(static_cast<index_t>(fit), kInferMinRows, kInferMaxRows);
  p.chunks = (N + max_rows - 1) / max_rows;
  if (N >= 2 * kInferParallelRows)
    p.chunks = std::max(p.chunks, std::min<index_t>(4 * index_t(machine_cpus()), N / kInferParallelRows));
  p.rows = (N + p.chunks - 1) / p.chunks;
  p.chunks = (N + p.rows - 1) / p.rows;
  return p;
}

template <class T>
void Net<T>::reserve_inference(index_t rows, index_t slots) {
  if (rows <= infer_rows_ && slots <= infer_slots_) return;
  rows = std::max(rows, infer_rows_);
  slots = std::max(slots, infer_slots_);
  index_t width = 1;
  for (const Slot& s : slots_) width = std::max(width, s.out);
  const index_t stride = round_up(mul(rows, width, "inference workspace"), kAlignElems);
  const index_t bytes = mul(mul(stride, 3 * slots, "inference workspace"), index_t(sizeof(T)), "inference workspace");
  void* p = std::aligned_alloc(64, std::size_t(round_up(bytes, 64)));
  if (!p) throw std::bad_alloc();
  infer_ws_.reset(p);
  infer_rows_ = rows;
  infer_slots_ = slots;
  infer_stride_ = stride;
}

namespace {
// Elementwise activations an inference Dense layer applies to each block of its output right after
// the block's GEMM (see gemm.h's hooks): out[i] = f(x[i]) for i < n, separate buffers.
bool fusable(LayerKind k) {
  return k == LayerKind::ReLU || k == LayerKind::LeakyReLU || k == LayerKind::ELU || k == LayerKind::Tanh ||
         k == LayerKind::Sigmoid;
}
template <class T>
void apply_elementwise(const LayerSpec& L, T* out, const T* x, index_t n) {
  switch (L.kind) {
    case LayerKind::ReLU: relu_forward(out, x, n); break;
    case LayerKind::LeakyReLU: leaky_relu_forward(out, x, T(L.param), n); break;
    case LayerKind::ELU: elu_forward(out, x, T(L.param), n); break;
    case LayerKind::Tanh: tanh_forward(out, x, n); break;
    case LayerKind::Sigmoid: sigmoid_forward(out, x, n); break;
    default: break;
  }
}
}  // namespace

template <class T>
const T* Net<T>::infer(const T* x, index_t n, T* out, index_t slot) {
  T* const ws = static_cast<T*>(infer_ws_.get()) + 3 * slot * infer_stride_;
  size_t last = layers_.size();  // the last layer that computes something (dropout: identity)
  for (size_t i = layers_.size(); i-- > 0;)
    if (layers_[i].kind != LayerKind::Dropout) {
      last = i;
      break;
    }
  // Three buffers: a layer reads one and writes another; a Dense layer with its activation fused
  // writes the GEMM output into a second and the activation into a third (the GEMM blocks still
  // being computed read the input).
  const T* in = x;
  int in_buf = -1;  // the buffer `in` is (-1: x)
  auto take = [&](int avoid) { return in_buf != 0 && avoid != 0 ? 0 : in_buf != 1 && avoid != 1 ? 1 : 2; };
  for (size_t i = 0; i < layers_.size(); ++i) {
    const LayerSpec& L = layers_[i];
    const Slot& s = slots_[i];
    if (L.kind == LayerKind::Dropout) continue;
    int y_buf = take(-1);
    T* y = (i == last && out) ? out : ws + y_buf * infer_stride_;
    const index_t ne = n * s.in;
    switch (L.kind) {
      case LayerKind::Dense: {
        // One GEMM whose blocks get the bias first and the next layer's activation (when it is
        // elementwise) right after, on the thread that computed them: one parallel region.
        const T* b = s.b >= 0 ? params_ + s.b : nullptr;
        const index_t M = s.out;
        const bool fuse = i + 1 < layers_.size() && fusable(layers_[i + 1].kind);
        T* a = nullptr;  // the activation's output
        if (fuse) {  // (the Dense layer is not the last one then)
          const int a_buf = take(y_buf);
          a = (i + 1 == last && out) ? out : ws + a_buf * infer_stride_;
          y_buf = a_buf;  // where the layer's result is
        }
        auto fill = [&](index_t r0, index_t r1, index_t c0, index_t c1) {
          for (index_t r = r0; r < r1; ++r) std::memcpy(y + r * M + c0, b + c0, sizeof(T) * (c1 - c0));
        };
        const LayerSpec& act = fuse ? layers_[i + 1] : L;
        auto activate = [&](index_t r0, index_t r1, index_t c0, index_t c1) {
          if (c0 == 0 && c1 == M)
            apply_elementwise(act, a + r0 * M, y + r0 * M, (r1 - r0) * M);
          else
            for (index_t r = r0; r < r1; ++r) apply_elementwise(act, a + r * M + c0, y + r * M + c0, c1 - c0);
        };
        gemm<T>(false, false, n, M, s.in, T(1), in, s.in, params_ + s.w, M, b ? T(1) : T(0), y, M,
                b ? make_gemm_hook(fill) : GemmBlockHook{}, fuse ? make_gemm_hook(activate) : GemmBlockHook{});
        if (fuse) {
          y = a;
          ++i;
        }
        break;
      }
      case LayerKind::ReLU: relu_forward(y, in, ne); break;
      case LayerKind::LeakyReLU: leaky_relu_forward(y, in, T(L.param), ne); break;
      case LayerKind::PReLU: prelu_forward(y, in, params_ + s.w, n, s.in, L.k); break;
      case LayerKind::ELU: elu_forward(y, in, T(L.param), ne); break;
      case LayerKind::Tanh: tanh_forward(y, in, ne); break;
      case LayerKind::Sigmoid: sigmoid_forward(y, in, ne); break;
      case LayerKind::Maxout: maxout_forward(y, static_cast<std::int32_t*>(nullptr), in, n, s.out, L.k); break;
      case LayerKind::BatchNorm:
        batchnorm_forward_eval(y, in, s.w >= 0 ? params_ + s.w : nullptr, s.b >= 0 ? params_ + s.b : nullptr,
                               buffers_ + s.rm, buffers_ + s.rv, n, s.in, T(L.param));
        break;
      case LayerKind::Dropout: break;
    }
    in = y;
    in_buf = y == out ? -1 : y_buf;
  }
  if (out && in != out) std::memcpy(out, in, sizeof(T) * n * output_dim_);  // (no layer computed anything)
  return out ? out : in;
}

template <class T>
void Net<T>::predict(const T* X, index_t N, T* out, bool proba) {
  const InferencePlan plan = inference_plan(N);
  if (plan.chunks == 0) return;
  const index_t C = output_dim_;
  const bool soft = proba && loss_.kind != LossKind::MSE;
  const index_t workers = plan.chunks > 1 ? std::min<index_t>(effective_threads(), plan.chunks) : 1;
  reserve_inference(plan.rows, workers);
  auto chunk = [&](index_t c, index_t slot) {
    const index_t r0 = c * plan.rows, nb = std::min(plan.rows, N - r0);
    const T* y = infer(X + r0 * input_dim_, nb, soft ? nullptr : out + r0 * C, slot);
    if (soft) softmax(out + r0 * C, y, nb, C);
  };
  if (workers > 1) {
    // One task per worker, each taking chunks in turn until none is left: a thread that is slow to
    // start (a busy machine) takes fewer chunks instead of holding the others at a barrier after
    // every layer. (Run serially, worker 0 takes them all.)
    std::atomic<index_t> next{0};
    parallel_for(workers, 1, [&](index_t w0, index_t w1) {
      for (index_t w = w0; w < w1; ++w)
        for (index_t c = next.fetch_add(1); c < plan.chunks; c = next.fetch_add(1)) chunk(c, w);
    }, 1);
    return;
  }
  for (index_t c = 0; c < plan.chunks; ++c) chunk(c, 0);
}

template <class T>
void Net<T>::evaluate(const T* X, const std::int64_t* Yc, const T* Yr, index_t N, double* loss,
                      double* accuracy) {
  const index_t C = output_dim_;
  const bool classes = loss_.kind != LossKind::MSE && (Yc || Yr);
  double total = 0.0;
  index_t correct = 0;
  const InferencePlan plan = inference_plan(N);
  if (plan.chunks) reserve_inference(plan.rows, 1);
  for (index_t c = 0; c < plan.chunks; ++c) {
    const index_t r0 = c * plan.rows, nb = std::min(plan.rows, N - r0);
    const T* s = infer(X + r0 * input_dim_, nb, nullptr, 0);
    total += data_loss_and_dscores(Yc ? Yc + r0 : nullptr, Yr ? Yr + r0 * C : nullptr, nb, false, s) * double(nb);
    if (classes) {
      for (index_t r = 0; r < nb; ++r) {
        index_t best = 0;
        for (index_t j = 1; j < C; ++j)
          if (s[r * C + j] > s[r * C + best]) best = j;
        // soft targets: agreement with the target's most probable class
        index_t label = 0;
        if (Yc) {
          label = index_t(Yc[r0 + r]);
        } else {
          const T* t = Yr + (r0 + r) * C;
          for (index_t j = 1; j < C; ++j)
            if (t[j] > t[label]) label = j;
        }
        correct += best == label;
      }
    }
  }
  *loss = N ? total / double(N) : 0.0;
  *accuracy = N && classes ? double(correct) / double(N) : 0.0;
}

template class Net<float>;
template class Net<double>;

}  // namespace fastnn
