// fastnn_example — a C++ program on fastnn::core, with no Python anywhere:
//
//   1. calls two kernels directly (a dense layer, then softmax cross-entropy) on numbers small
//      enough to check by hand, and compares;
//   2. builds a network with the runtime (fastnn::Net), trains it on the CS231n notes' spiral data
//      (3 classes of 2-D points, not linearly separable) and checks that it learned them.
//
// Exit status 0 when every check passes. Build: see CMakeLists.txt beside this file.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <numeric>
#include <random>
#include <vector>

#include "fastnn/dense.h"
#include "fastnn/isa.h"
#include "fastnn/loss.h"
#include "fastnn/net.h"
#include "fastnn/threads.h"

using fastnn::index_t;

namespace {

int failures = 0;

void check(bool ok, const char* what, double got, double want) {
  std::printf("%-44s got %10.6f, want %10.6f  %s\n", what, got, want, ok ? "ok" : "FAILED");
  if (!ok) ++failures;
}

bool close(double a, double b, double tol = 1e-5) { return std::fabs(a - b) <= tol * (1.0 + std::fabs(b)); }

}  // namespace

int main() {
  fastnn::set_num_threads(1);  // results are bitwise identical for any thread count
  std::printf("fastnn::core: BLAS %s, SIMD %s, %d thread(s)\n", fastnn::blas_info(), fastnn::simd_level(),
              fastnn::get_num_threads());

  // ---- 1. kernels: out (N, M) = x (N, D) @ w (D, M) + b (M), then the softmax loss -------------
  const index_t N = 2, D = 3, M = 2;
  const float x[N * D] = {1, 2, 3,  //
                          -1, 0, 1};
  const float w[D * M] = {0.1f, -0.2f,  //
                          0.3f, 0.4f,   //
                          -0.5f, 0.6f};
  const float b[M] = {0.05f, -0.05f};
  float out[N * M];
  fastnn::dense_forward(out, x, w, b, N, D, M);
  const double want[N * M] = {1 * 0.1 + 2 * 0.3 - 3 * 0.5 + 0.05, -1 * 0.2 + 2 * 0.4 + 3 * 0.6 - 0.05,
                              -1 * 0.1 + 0 * 0.3 - 1 * 0.5 + 0.05, 1 * 0.2 + 0 * 0.4 + 1 * 0.6 - 0.05};
  for (int i = 0; i < N * M; ++i) check(close(out[i], want[i]), "dense_forward: out[i]", out[i], want[i]);

  const std::int64_t y[N] = {1, 0};
  double loss = 0.0;
  float dscores[N * M];
  const index_t bad = fastnn::softmax_cross_entropy(&loss, dscores, out, y, N, M, 0.0, /*accumulate=*/false);
  double want_loss = 0.0;  // mean over rows of log(sum_j exp(s_j)) - s_y
  for (int r = 0; r < N; ++r)
    want_loss += std::log(std::exp(want[r * M]) + std::exp(want[r * M + 1])) - want[r * M + y[r]];
  want_loss /= N;
  check(bad == -1 && close(loss, want_loss), "softmax_cross_entropy: loss", loss, want_loss);
  // the gradient rows sum to 0 (softmax minus one-hot, divided by N)
  check(close(dscores[0] + dscores[1], 0.0, 1e-6), "softmax_cross_entropy: row 0 of dscores sums to", dscores[0] + dscores[1], 0.0);

  // ---- 2. the runtime: train a 2-64-3 ReLU network on the spiral data -------------------------
  const index_t per_class = 100, classes = 3, rows = per_class * classes;
  std::vector<float> X(rows * 2);
  std::vector<std::int64_t> Y(rows);
  std::mt19937_64 rng(0);
  std::normal_distribution<double> normal(0.0, 1.0);
  for (index_t c = 0; c < classes; ++c) {
    for (index_t i = 0; i < per_class; ++i) {
      const index_t row = c * per_class + i;
      const double r = double(i) / (per_class - 1);                      // radius 0..1
      const double t = 4.0 * c + 4.0 * r + 0.2 * normal(rng);            // angle, with noise
      X[row * 2] = float(r * std::sin(t));
      X[row * 2 + 1] = float(r * std::cos(t));
      Y[row] = c;
    }
  }

  std::vector<fastnn::LayerSpec> layers(3);
  layers[0].kind = fastnn::LayerKind::Dense;
  layers[0].in = 2;
  layers[0].out = 64;
  layers[1].kind = fastnn::LayerKind::ReLU;
  layers[2].kind = fastnn::LayerKind::Dense;
  layers[2].out = classes;
  fastnn::LossSpec loss_spec;  // softmax cross-entropy
  loss_spec.l2 = 1e-3;         // 0.5 * l2 * |W|^2 over the Dense weights
  const index_t batch = 64;
  fastnn::Net<float> net(layers, loss_spec, /*max_batch=*/batch, /*seed=*/0);

  // The runtime does not initialise weights (Python's fastnn.init does): He for the weights, 0 bias.
  for (const fastnn::TensorInfo& t : net.params_info()) {
    float* p = net.params() + t.offset;
    const bool weight = t.shape.size() == 2;  // Dense weights are (in, out); biases (out,)
    const double scale = weight ? std::sqrt(2.0 / double(t.shape[0])) : 0.0;
    for (index_t i = 0; i < t.size; ++i) p[i] = float(scale * normal(rng));
  }

  fastnn::StepHyper hyper;  // Adam's defaults: beta1 0.9, beta2 0.999, eps 1e-8
  net.set_optimizer(fastnn::OptimKind::Adam, hyper);
  const index_t steps = (rows + batch - 1) / batch;
  std::vector<std::int64_t> order(rows);
  std::vector<double> lrs(steps, 1e-2), mus(steps, 0.0), losses(steps);
  for (int epoch = 0; epoch < 200; ++epoch) {
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);  // shuffle row indices, not the data
    const index_t done = net.train_epoch(X.data(), Y.data(), nullptr, rows, order.data(), rows, batch,
                                         lrs.data(), mus.data(), losses.data());
    if (done != steps) {
      std::printf("a loss became non-finite at epoch %d\n", epoch);
      return 1;
    }
  }
  double mean_loss = 0.0, accuracy = 0.0;
  net.evaluate(X.data(), Y.data(), nullptr, rows, &mean_loss, &accuracy);
  std::printf("spiral data, %lld steps: loss %.4f, training accuracy %.3f\n", (long long)net.step, mean_loss,
              accuracy);
  check(accuracy >= 0.9, "training accuracy >= 0.9 (a linear model: ~0.5)", accuracy, 0.9);

  std::printf("fastnn example: %d failures\n", failures);
  return failures == 0 ? 0 : 1;
}
