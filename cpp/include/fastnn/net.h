// fastnn/net.h — the network runtime: a Sequential network compiled once into flat buffers.
//
// A Net owns
//   * one flat parameter buffer and one flat gradient buffer with the same layout: first every
//     tensor that takes weight decay (Dense weights), then the rest (biases, batch-norm scale and
//     shift, PReLU slopes), each tensor starting on a 64-byte boundary (the padding stays zero);
//   * the optimizer's state buffers, with the same layout, so an update is one fused loop per
//     segment (optimizer_step);
//   * a flat buffer of non-trained buffers (batch-norm running statistics);
//   * an activation workspace sized for the largest batch, allocated once;
//   * an inference workspace (predict, evaluate) of its own: three rotating buffers of one chunk
//     (see inference_plan) per thread that runs a chunk, grown on first use and reused.
// Nothing is allocated per step or per epoch. train_step runs forward, loss, backward and the
// update in one call; train_epoch runs a whole epoch of mini-batches (rows gathered by an index
// order chosen by the caller) without coming back to the caller.
//
// Dropout masks are keyed on (seed, step << 16 | layer index), so a step can be replayed exactly
// (gradient checks, resumed training) and results do not depend on the thread count.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "fastnn/common.h"
#include "fastnn/optim.h"

namespace fastnn {

enum class LayerKind : int {
  Dense = 0,
  ReLU,
  LeakyReLU,
  PReLU,
  ELU,
  Tanh,
  Sigmoid,
  Maxout,
  BatchNorm,
  Dropout,
};

enum class LossKind : int { SoftmaxCrossEntropy = 0, MulticlassSVM, MSE };

struct LayerSpec {
  LayerKind kind = LayerKind::ReLU;
  index_t in = 0;           // input features
  index_t out = 0;          // output features (Dense only; derived for the others)
  double param = 0.0;       // LeakyReLU slope | ELU alpha | Dropout keep probability | BN eps
  double momentum = 0.9;    // BatchNorm, CS231n convention (PyTorch's momentum is 1 - this)
  index_t k = 1;            // Maxout pieces | PReLU slopes (1 or in)
  bool bias = true;         // Dense: has a bias; BatchNorm: has gamma and beta
  bool unbiased_var = true; // BatchNorm: running variance with N / (N - 1), as PyTorch
  bool decay = true;        // Dense: its weight takes L2/L1/weight decay
};

struct LossSpec {
  LossKind kind = LossKind::SoftmaxCrossEntropy;
  double label_smoothing = 0.0;  // softmax cross-entropy
  double margin = 1.0;           // multiclass SVM
  double l2 = 0.0;               // 0.5 * l2 * |w|^2 on weight-decay tensors
  double l1 = 0.0;               // l1 * |w|_1 on weight-decay tensors
};

struct TensorInfo {
  std::string name;  // PyTorch state-dict style: "<layer>.weight", "<layer>.bias", ...
  int layer = 0;
  index_t offset = 0;
  index_t size = 0;
  std::vector<index_t> shape;
  bool decay = false;
};

struct StepLoss {
  double loss = 0.0;       // data_loss + reg_loss
  double data_loss = 0.0;
  double reg_loss = 0.0;
};

template <class T>
class Net {
 public:
  // Throws std::invalid_argument for inconsistent layers, std::bad_alloc when the buffers cannot
  // be allocated (sizes are checked for overflow first).
  Net(std::vector<LayerSpec> layers, LossSpec loss, index_t max_batch, std::uint64_t seed);
  ~Net();
  Net(const Net&) = delete;
  Net& operator=(const Net&) = delete;

  index_t input_dim() const { return input_dim_; }
  index_t output_dim() const { return output_dim_; }
  index_t max_batch() const { return max_batch_; }
  // Grow the activation workspace to take batches of up to max_batch rows. Parameters, gradients,
  // buffers and optimizer state do not move (views into them stay valid).
  void reserve(index_t max_batch);
  const std::vector<LayerSpec>& layers() const { return layers_; }
  const LossSpec& loss() const { return loss_; }
  void set_loss(const LossSpec& loss);

  // Flat buffers (see the header comment).
  T* params() { return params_; }
  T* grads() { return grads_; }
  T* buffers() { return buffers_; }
  index_t n_params() const { return n_params_; }
  index_t n_decay() const { return n_decay_; }  // params [0, n_decay) take decay
  index_t n_buffers() const { return n_buffers_; }
  const std::vector<TensorInfo>& params_info() const { return params_info_; }
  const std::vector<TensorInfo>& buffers_info() const { return buffers_info_; }

  // Optimizer: (re)allocates zeroed state buffers.
  void set_optimizer(OptimKind kind, const StepHyper& hyper);
  OptimKind optimizer() const { return opt_kind_; }
  StepHyper& hyper() { return hyper_; }
  int n_state() const { return optimizer_state_count(opt_kind_); }
  T* state(int i) { return state_[i]; }

  // With plain SGD (and no L1) a Dense weight's update is fused into its gradient GEMM
  // (W = (1 - lr l2) W - lr x^T dY through BLAS's beta), saving a write and a read of the weight
  // gradients; grads() then holds no Dense weight gradients after a training step (loss_and_grad
  // still fills them). false turns the fusion off.
  bool fuse_sgd = true;

  // Counters: steps taken (keys the dropout masks) and the optimizer's t (Adam).
  std::uint64_t step = 0;
  std::int64_t opt_t = 0;
  std::uint64_t seed = 0;

  // One training step on n <= max_batch rows x (n, input_dim) with class labels yc (n) or a target
  // array yr (n, output_dim): regression targets (MSE) or, for softmax cross-entropy with yc null,
  // target distributions (soft targets, see loss.h). lr and momentum override the optimizer's for this
  // step. The loss is computed before the update; when it is not finite the update is skipped
  // and `finite` is false (the weights stay as they were).
  StepLoss train_step(const T* x, const std::int64_t* yc, const T* yr, index_t n, double lr,
                      double momentum, bool* finite);

  // An epoch: mini-batches of `batch` rows of X (N, input_dim) taken in `order` (n_order row
  // indices), lrs[s] / mus[s] for step s, the loss of step s written to losses[s]. Returns the
  // number of steps completed: fewer than planned when a loss was not finite (that step's update
  // is skipped, and training stops there).
  index_t train_epoch(const T* X, const std::int64_t* Yc, const T* Yr, index_t N,
                      const std::int64_t* order, index_t n_order, index_t batch,
                      const double* lrs, const double* mus, double* losses);

  // Loss and gradient (into grads()) at the current parameters without updating them; train
  // mode uses batch statistics and the dropout masks of the current step counter (not advanced).
  StepLoss loss_and_grad(const T* x, const std::int64_t* yc, const T* yr, index_t n, bool train);

  // Outputs for N rows in evaluation mode, softmax probabilities when `proba` (classification
  // losses). The rows go through the inference workspace in the chunks of inference_plan(N),
  // independent of max_batch and of the thread count, so the results are bitwise identical for any
  // thread count. A single chunk runs its GEMMs (matrix-vector products for 1 to 3 rows, see
  // gemm.h) and kernels threaded, each Dense layer's bias and elementwise activation done inside
  // its GEMM's blocks (one parallel region per layer); several chunks run in parallel, one per
  // thread, each with its own part of the workspace (one parallel region per call). Touches
  // neither the training workspace nor the running statistics; allocates only when the inference
  // workspace must grow.
  void predict(const T* X, index_t N, T* out, bool proba);

  // Mean loss (without penalties) and accuracy (classification; 0 for MSE) in evaluation mode; with
  // soft targets the accuracy counts agreement with each target row's most probable class. The
  // chunks of inference_plan(N), one after the other.
  void evaluate(const T* X, const std::int64_t* Yc, const T* Yr, index_t N, double* loss,
                double* accuracy);

  // How predict and evaluate cut N rows: `chunks` chunks of `rows` rows (the last one shorter).
  // rows <= kInferChunkBytes / (widest layer output * sizeof(T)) (one of a chunk's three
  // activation buffers), clamped to [kInferMinRows, kInferMaxRows]: each GEMM packs its weights
  // once per chunk, not once per 256 rows, while a chunk's activations stay bounded for any N. N of
  // at least 2 * kInferParallelRows rows is cut into at least 4 chunks per CPU of the machine (at
  // most N / kInferParallelRows), so that they run in parallel and a thread slowed by another
  // process leaves its share to the others (4096 x 64-256-256-10 at 2 threads beside a busy
  // process: 9.2 ms in 8 chunks, 10-12 ms in 2). N is split evenly (no small remainder chunk).
  // Depends on N, the layer sizes and machine_cpus() only, never on the thread count, the CPU
  // affinity or quota.
  struct InferencePlan {
    index_t rows = 0, chunks = 0;
  };
  static constexpr double kInferChunkBytes = 2.0 * 1024 * 1024;
  static constexpr index_t kInferMinRows = 16, kInferMaxRows = 4096, kInferParallelRows = 256;
  InferencePlan inference_plan(index_t N) const;
  // Rows per chunk of the inference workspace now, and for how many threads (0 before the first
  // predict/evaluate).
  index_t inference_rows() const { return infer_rows_; }
  index_t inference_slots() const { return infer_slots_; }

  // Regularisation loss at the current parameters.
  double reg_loss() const;

  // ---- training monitors -------------------------------------------------------------------
  // Every `every`-th training step (0: off) appends a record of monitor_record_size() doubles
  // to monitor_log():
  //   step, loss,
  //   per parameter tensor (params_info order): gradient norm, weight norm (before the update),
  //     update norm |w_after - w_before|,
  //   per layer: output mean, output std, fraction of zero outputs, fraction of dead units (a
  //     column that is 0 for the whole batch), fraction saturated (tanh |y| >= 0.99, sigmoid y <=
  //     0.01 or >= 0.99), non-finite outputs, gradient (d loss / d output) mean, gradient std.
  // On monitored steps the SGD fusion is off (so weight gradients exist to measure).
  void set_monitor(index_t every);
  index_t monitor_every() const { return monitor_every_; }
  index_t monitor_record_size() const { return 2 + 3 * index_t(params_info_.size()) + 8 * index_t(layers_.size()); }
  std::vector<double>& monitor_log() { return monitor_log_; }
  // After a non-finite loss: the first layer whose output held NaN/inf (-1: none, e.g. the loss
  // itself overflowed), and whether the input batch did.
  int nonfinite_layer = -1;
  bool nonfinite_input = false;

  // ---- gradient-check support --------------------------------------------------------------
  // Forward (and loss) only, plus a 64-bit signature of every max the pass took: the sign of the
  // input of each ReLU-type unit, each maxout winner, and each SVM margin's side. Two parameter
  // settings with different signatures lie on different sides of a kink.
  StepLoss signature(const T* x, const std::int64_t* yc, const T* yr, index_t n, bool train,
                     std::uint64_t* sig);
  // loss_and_grad that also copies each layer's output (acts[i], n * out_i values) and the
  // gradient of the loss with respect to it (grads[i]) into caller buffers (null entries skipped).
  StepLoss capture(const T* x, const std::int64_t* yc, const T* yr, index_t n, bool train,
                   T* const* acts, T* const* grads);

  // Running average of the parameters, updated after every step: an exponential moving average
  // avg += (1 - decay) * (w - avg) for 0 < decay < 1, or (decay == 0) the Polyak average of every
  // step since it was enabled. enable_average(-1) switches it off.
  void enable_average(double decay);
  T* average() { return average_; }
  double average_decay() const { return avg_decay_; }
  std::int64_t average_count = 0;

 private:
  struct Slot;  // per-layer workspace
  // std::invalid_argument unless 1 <= n <= max_batch, and, in training mode, n >= 2 when the
  // network has batch norm (one row has variance 0: every output would be beta).
  void check_batch(index_t n, bool train) const;
  bool has_batchnorm() const;
  void forward(const T* x, index_t n, bool train, std::uint64_t step_key);
  // (scores: the network output to score, output() when null)
  double data_loss_and_dscores(const std::int64_t* yc, const T* yr, index_t n, bool want_grad,
                               const T* scores = nullptr);
  void backward(const T* x, index_t n, bool train, double* grad_stats = nullptr);
  void record_activations(index_t n, double* out);
  void locate_nonfinite(const T* x, index_t n);
  void update(double lr, double momentum);
  void average_update();
  // Evaluation-mode forward of n <= inference_rows() rows through slot `slot` of the inference
  // workspace (slot < inference_slots()); returns the last layer's output (n, output_dim), written
  // into `out` when not null. Allocates nothing.
  const T* infer(const T* x, index_t n, T* out, index_t slot);
  void reserve_inference(index_t rows, index_t slots);
  double fused_lr_ = -1.0;  // >= 0 while a training step fuses SGD into the weight GEMMs
  index_t monitor_every_ = 0;
  std::vector<double> monitor_log_;
  T* monitor_prev_ = nullptr;       // weights before the update (monitored steps)
  T* const* capture_grads_ = nullptr;
  const T* output() const;

  std::vector<LayerSpec> layers_;
  LossSpec loss_;
  index_t max_batch_ = 0, input_dim_ = 0, output_dim_ = 0, max_width_ = 0;
  index_t n_params_ = 0, n_decay_ = 0, n_buffers_ = 0;
  std::vector<TensorInfo> params_info_, buffers_info_;
  T* params_ = nullptr;
  T* grads_ = nullptr;
  T* buffers_ = nullptr;
  T* saved_buffers_ = nullptr;       // running statistics before a step (restored if not finite)
  T* state_[3] = {nullptr, nullptr, nullptr};
  OptimKind opt_kind_ = OptimKind::SGD;
  StepHyper hyper_;
  std::vector<Slot> slots_;
  T* gbuf_[2] = {nullptr, nullptr};  // ping-pong gradient buffers (max_batch * max_width)
  T* xbuf_ = nullptr;                // gathered batch rows (train_epoch)
  std::int64_t* ybuf_ = nullptr;     // gathered labels
  T* ybuf_reg_ = nullptr;            // gathered regression targets
  T* average_ = nullptr;             // running average of params_ (when enabled)
  double avg_decay_ = -1.0;          // < 0: off
  std::vector<void*> owned_;         // long-lived allocations, freed in the destructor
  std::vector<void*> workspace_;     // the activation workspace, reallocated by reserve()
  struct FreeDeleter {
    void operator()(void* p) const noexcept { std::free(p); }
  };
  std::unique_ptr<void, FreeDeleter> infer_ws_;  // the inference workspace (predict, evaluate):
  index_t infer_rows_ = 0, infer_slots_ = 0;     // slot s = buffers 3s, 3s + 1, 3s + 2, each of
  index_t infer_stride_ = 0;                     // infer_stride_ = rows x the widest layer output
  T* alloc(index_t n, bool workspace = false);
  void* alloc_bytes(index_t bytes, bool workspace = false);
  void allocate_workspace();
};

}  // namespace fastnn
