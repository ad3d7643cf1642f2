// fastnn_bench — times fastnn's kernels from C++ (no Python), prints GFLOP/s for GEMMs and GB/s for
// memory-bound kernels, plus the machine's measured clock and fp32 peak.
//
//   fastnn_bench [--threads N] [--min-time SECONDS] [--json]
//
// The clock is measured with a chain of dependent integer adds (one per cycle), since
// /proc/cpuinfo often reports the base clock; fp32 peak = cores x 32 FLOP/cycle x clock
// (two 256-bit FMA pipes, or one 512-bit).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "fastnn/activations.h"
#include "fastnn/batchnorm.h"
#include "fastnn/dense.h"
#include "fastnn/dropout.h"
#include "fastnn/gemm.h"
#include "fastnn/isa.h"
#include "fastnn/loss.h"
#include "fastnn/optim.h"
#include "fastnn/threads.h"

using fastnn::index_t;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Median and minimum seconds per call of f, after a warm-up, over at least min_time seconds.
std::pair<double, double> time_it(const std::function<void()>& f, double min_time) {
  f();
  std::vector<double> ts;
  const auto start = Clock::now();
  while (ts.size() < 20 || (seconds_since(start) < min_time && ts.size() < 100000)) {
    const auto t0 = Clock::now();
    f();
    ts.push_back(seconds_since(t0));
  }
  std::sort(ts.begin(), ts.end());
  return {ts[ts.size() / 2], ts[0]};
}

struct Row {
  std::string name;
  double median, min, work;  // work: flops or bytes per call
  bool flops;
};

}  // namespace

int main(int argc, char** argv) {
  int threads = fastnn::get_num_threads();
  double min_time = 0.5;
  bool json = false;
  const char* simd = nullptr;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--min-time") && i + 1 < argc) min_time = std::atof(argv[++i]);
    else if (!std::strcmp(argv[i], "--simd") && i + 1 < argc) simd = argv[++i];
    else if (!std::strcmp(argv[i], "--json")) json = true;
    else {
      std::fprintf(stderr, "usage: %s [--threads N] [--min-time SECONDS] [--simd avx512|avx2|baseline|auto] [--json]\n"
                   "  (--simd, else FASTNN_SIMD, else the best clone this CPU runs)\n", argv[0]);
      return 2;
    }
  }
  try {
    fastnn::check_simd();
    if (simd) fastnn::set_simd(simd);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "fastnn_bench: %s\n", e.what());
    return 2;
  }
  fastnn::set_num_threads(threads);
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  auto randv = [&](index_t n) {
    std::vector<float> v(n);
    for (auto& x : v) x = nd(rng);
    return v;
  };
  std::vector<Row> rows;

  // GEMMs of the benchmark workloads (forward and the two backward products)
  struct G { const char* name; index_t M, N, K; };
  const G gemms[] = {{"W1 fwd 200x100x3072", 200, 100, 3072}, {"W2 fwd 128x512x784", 128, 512, 784},
                     {"W2 dW 784x512x128", 784, 512, 128},   {"W3 fwd 32x256x256", 32, 256, 256},
                     {"W4 fwd 256x4096x4096", 256, 4096, 4096}, {"square 1024", 1024, 1024, 1024}};
  for (const auto& g : gemms) {
    auto a = randv(g.M * g.K), b = randv(g.K * g.N);
    std::vector<float> c(g.M * g.N);
    auto [med, mn] = time_it([&] { fastnn::gemm<float>(false, false, g.M, g.N, g.K, 1.f, a.data(), g.K, b.data(), g.N, 0.f, c.data(), g.N); }, min_time);
    rows.push_back({std::string("sgemm ") + g.name, med, mn, 2.0 * g.M * g.N * g.K, true});
  }

  // Memory-bound kernels on the W2 hidden layer (128 x 512)
  const index_t N = 128, D = 512, n = N * D;
  auto x = randv(n), dy = randv(n), y = std::vector<float>(n), dx = std::vector<float>(n);
  std::vector<float> gam(D, 1.f), bet(D, 0.f), mu(D), is(D), rm(D), rv(D, 1.f), dg(D), db(D);
  std::vector<std::uint8_t> mask(n);
  const double B = sizeof(float);
  auto add = [&](const char* name, double bytes, const std::function<void()>& f) {
    auto [med, mn] = time_it(f, min_time);
    rows.push_back({name, med, mn, bytes, false});
  };
  add("relu fwd 128x512", 2 * n * B, [&] { fastnn::relu_forward(y.data(), x.data(), n); });
  add("relu bwd 128x512", 3 * n * B, [&] { fastnn::relu_backward(dx.data(), dy.data(), x.data(), n, false); });
  add("tanh fwd 128x512", 2 * n * B, [&] { fastnn::tanh_forward(y.data(), x.data(), n); });
  add("batchnorm fwd 128x512", 2 * n * B, [&] {
    fastnn::batchnorm_forward_train(y.data(), mu.data(), is.data(), rm.data(), rv.data(), x.data(), gam.data(), bet.data(), N, D, 1e-5f, 0.9f, false);
  });
  add("batchnorm bwd 128x512", 3 * n * B, [&] {
    fastnn::batchnorm_backward(dx.data(), dg.data(), db.data(), dy.data(), x.data(), gam.data(), mu.data(), is.data(), N, D, false);
  });
  add("dropout fwd 128x512", 2 * n * B + n, [&] { fastnn::dropout_forward(y.data(), mask.data(), x.data(), n, 0.5, 1, 2); });
  add("dropout bwd 128x512", 2 * n * B + n, [&] { fastnn::dropout_backward(dx.data(), dy.data(), mask.data(), n, 0.5, false); });
  {
    const index_t P = 784 * 512 + 512 * 512 + 512 * 10;  // W2's weights
    auto w = randv(P), g = randv(P);
    std::vector<float> m(P), v(P);
    std::int64_t t = 0;
    fastnn::StepHyper h;
    h.lr = 1e-3;
    float* st[2] = {m.data(), v.data()};
    add("adam step (W2 params)", 7.0 * P * B, [&] {
      h.t = ++t;
      fastnn::optimizer_step(fastnn::OptimKind::Adam, w.data(), st, g.data(), P, h);
    });
  }
  {
    auto s = randv(N * 10), ds = randv(N * 10);
    std::vector<std::int64_t> lab(N);
    for (index_t i = 0; i < N; ++i) lab[i] = i % 10;
    double loss;
    add("softmax xent 128x10", 2 * N * 10 * B, [&] { fastnn::softmax_cross_entropy(&loss, ds.data(), s.data(), lab.data(), N, 10, 0.0, false); });
  }

  const double ghz = fastnn::measure_clock_ghz();
  const int cores = fastnn::hardware_threads();
  const double peak = cores * 32.0 * ghz;  // GFLOP/s fp32
  if (json) {
    std::printf("{\"threads\": %d, \"cores\": %d, \"clock_ghz\": %.3f, \"fp32_peak_gflops\": %.1f, \"simd\": \"%s\", \"rows\": [",
                threads, cores, ghz, peak, fastnn::simd_level());
    for (size_t i = 0; i < rows.size(); ++i)
      std::printf("%s{\"name\": \"%s\", \"median_s\": %.9g, \"min_s\": %.9g, \"%s\": %.6g}", i ? ", " : "",
                  rows[i].name.c_str(), rows[i].median, rows[i].min, rows[i].flops ? "gflops" : "gbps",
                  rows[i].work / rows[i].min / 1e9);
    std::printf("]}\n");
    return 0;
  }
  std::printf("fastnn_bench: %d thread(s) of %d cores, clock %.2f GHz (measured), fp32 peak %.0f GFLOP/s, simd %s, gemm threading %s\n",
              threads, cores, ghz, peak, fastnn::simd_level(), fastnn::gemm_threading_name());
  std::printf("%-34s %12s %12s %12s\n", "kernel", "median us", "min us", "rate");
  for (const auto& r : rows) {
    const double rate = r.work / r.min / 1e9;
    char buf[64];
    if (r.flops)
      std::snprintf(buf, sizeof buf, "%.1f GFLOP/s (%.0f%%)", rate, peak > 0 ? 100 * rate / peak * cores / threads : 0);
    else
      std::snprintf(buf, sizeof buf, "%.1f GB/s", rate);
    std::printf("%-34s %12.2f %12.2f   %s\n", r.name.c_str(), r.median * 1e6, r.min * 1e6, buf);
  }
  return 0;
}
