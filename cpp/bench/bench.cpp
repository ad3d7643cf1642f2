// fastnn_bench — times fastnn's kernels from C++ (no Python), prints GFLOP/s for GEMMs and GB/s for
// memory-bound kernels, plus the machine's measured clock and fp32 peak.
//
//   fastnn_bench [--threads N] [--min-time SECONDS] [--simd LEVEL] [--json]
//                [--sections gemm,kernels,bandwidth,stream] [--bw-mib MIB] [--stream-sizes N1,N2,...]
//
// Sections (default gemm,kernels,bandwidth):
//   gemm       sgemm on the benchmark workloads' shapes: GFLOP/s and % of the fp32 peak
//   kernels    the memory-bound kernels on W2's hidden layer (128 x 512, cache resident): GB/s
//   bandwidth  the per-kernel bandwidth table of the active SIMD clone: every memory-bound kernel on
//              buffers of >= 4x the L2 size (L2 x cores x 4, at least 4 MiB, at most 64 MiB per
//              buffer; --bw-mib overrides), timed alternately with a plain stream loop that has the
//              same read and write streams (its "roofline"): GB/s and % of that roofline. The
//              roofline loops are `#pragma omp simd` loops compiled for the best clone this CPU runs
//              (whatever clone the kernels run), split over threads like the kernels. Kernels
//              dominated by exp/tanh report Gelem/s instead.
//   stream     the roofline loops alone (in-place a += b: 2R+1W, two updates: 3R+2W, three: 4R+3W,
//              the streams of the SGD / momentum and RMSProp / Adam updates) on float32 and float64
//              buffers of each --stream-sizes element count (default 307200,1048576: the U1 shapes
//              3072x100 and 1024x1024); benchmarks/bench_updates.py reads them as its roofline.
//
// The clock is measured with a chain of dependent integer adds (one per cycle), since
// /proc/cpuinfo often reports the base clock; fp32 peak = cores x 32 FLOP/cycle x clock
// (two 256-bit FMA pipes, or one 512-bit).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <sstream>
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
#include "fastnn/regularization.h"
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

struct Timing {
  double median, min;
};

// f and g called alternately (f, g, f, g, ...) after a warm-up of both, at least 20 calls each and
// 2 x min_time seconds in all: a kernel and its roofline see the same machine state, which matters
// on a shared machine.
std::pair<Timing, Timing> time_pair(const std::function<void()>& f, const std::function<void()>& g,
                                    double min_time) {
  f();
  g();
  std::vector<double> a, b;
  const auto start = Clock::now();
  while (a.size() < 20 || (seconds_since(start) < 2 * min_time && a.size() < 100000)) {
    auto t0 = Clock::now();
    f();
    a.push_back(seconds_since(t0));
    t0 = Clock::now();
    g();
    b.push_back(seconds_since(t0));
  }
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  return {{a[a.size() / 2], a[0]}, {b[b.size() / 2], b[0]}};
}

struct Row {
  std::string name;
  double median, min, work;  // work: flops or bytes per call
  bool flops;
};

// One row of the per-kernel bandwidth table.
struct BwRow {
  std::string name, streams, roofline;
  bool memory;           // memory-bound (GB/s vs roofline) or compute-bound (Gelem/s)
  double bytes, elems;   // per call
  Timing kernel, roof;   // roof unused for compute rows
};

struct StreamRow {
  std::string pattern, dtype;
  index_t n;
  double bytes;
  Timing t;
};

// ---------------------------------------------------------------------------------------------
// Roofline loops: the same read/write streams as a kernel, with the least arithmetic (an add).
// "+ T(0)" keeps the copy a loop of plain loads and stores (GCC would otherwise call memcpy, whose
// large-size path uses other instructions than any kernel does).
// ---------------------------------------------------------------------------------------------
template <class T>
FASTNN_INLINE void copy_body(T* FASTNN_RESTRICT y, const T* FASTNN_RESTRICT x, index_t n) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) y[i] = x[i] + T(0);
}
template <class T>
FASTNN_INLINE void add_body(T* FASTNN_RESTRICT y, const T* FASTNN_RESTRICT a, const T* FASTNN_RESTRICT b,
                            index_t n) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}
template <class T>
FASTNN_INLINE void copy_mask_body(T* FASTNN_RESTRICT y, std::uint8_t* FASTNN_RESTRICT m,
                                  const T* FASTNN_RESTRICT x, index_t n) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) {
    y[i] = x[i] + T(0);
    m[i] = x[i] > T(0);
  }
}
template <class T>
FASTNN_INLINE void mask_mul_body(T* FASTNN_RESTRICT y, const T* FASTNN_RESTRICT a,
                                 const std::uint8_t* FASTNN_RESTRICT m, index_t n) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) y[i] = a[i] * T(m[i]);
}
template <class T>
FASTNN_INLINE void acc1_body(T* FASTNN_RESTRICT a, const T* FASTNN_RESTRICT g, index_t n) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) a[i] += g[i];
}
template <class T>
FASTNN_INLINE void acc2_body(T* FASTNN_RESTRICT w, T* FASTNN_RESTRICT v, const T* FASTNN_RESTRICT g,
                             index_t n) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) {
    const T vi = v[i] + g[i];
    v[i] = vi;
    w[i] += vi;
  }
}
template <class T>
FASTNN_INLINE void acc3_body(T* FASTNN_RESTRICT w, T* FASTNN_RESTRICT m, T* FASTNN_RESTRICT v,
                             const T* FASTNN_RESTRICT g, index_t n) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) {
    const T mi = m[i] + g[i], vi = v[i] + g[i];
    m[i] = mi;
    v[i] = vi;
    w[i] += mi + vi;
  }
}
template <class T>
FASTNN_INLINE double sum1_body(const T* FASTNN_RESTRICT x, index_t n) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (index_t i = 0; i < n; ++i) s += x[i];
  return s;
}
template <class T>
FASTNN_INLINE double sum2_body(const T* FASTNN_RESTRICT a, const T* FASTNN_RESTRICT b, index_t n) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (index_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

#define ROOF_LEAVES(T)                                                                                        \
  FASTNN_LEAF void copy_leaf(T* y, const T* x, index_t n) { copy_body(y, x, n); }                             \
  FASTNN_LEAF void add_leaf(T* y, const T* a, const T* b, index_t n) { add_body(y, a, b, n); }               \
  FASTNN_LEAF void copy_mask_leaf(T* y, std::uint8_t* m, const T* x, index_t n) { copy_mask_body(y, m, x, n); } \
  FASTNN_LEAF void mask_mul_leaf(T* y, const T* a, const std::uint8_t* m, index_t n) { mask_mul_body(y, a, m, n); } \
  FASTNN_LEAF void acc1_leaf(T* a, const T* g, index_t n) { acc1_body(a, g, n); }                            \
  FASTNN_LEAF void acc2_leaf(T* w, T* v, const T* g, index_t n) { acc2_body(w, v, g, n); }                   \
  FASTNN_LEAF void acc3_leaf(T* w, T* m, T* v, const T* g, index_t n) { acc3_body(w, m, v, g, n); }          \
  FASTNN_LEAF double sum1_leaf(const T* x, index_t n) { return sum1_body(x, n); }                            \
  FASTNN_LEAF double sum2_leaf(const T* a, const T* b, index_t n) { return sum2_body(a, b, n); }
FASTNN_ISA_PASSES(ROOF_LEAVES(float) ROOF_LEAVES(double))
#undef ROOF_LEAVES

// The roofline loops run the best clone this CPU runs, whatever clone the kernels are set to.
fastnn::Isa g_roof_isa = fastnn::Isa::baseline;
#if FASTNN_X86_CLONES
#define ROOF_CALL(fn, ...)                                                    \
  (g_roof_isa == fastnn::Isa::avx512 ? isa_avx512::fn(__VA_ARGS__)           \
   : g_roof_isa == fastnn::Isa::avx2 ? isa_avx2::fn(__VA_ARGS__)             \
                                     : isa_baseline::fn(__VA_ARGS__))
#else
#define ROOF_CALL(fn, ...) isa_baseline::fn(__VA_ARGS__)
#endif

constexpr index_t kRoofGrain = 16384;  // elements per thread at least (the kernels' grain)

template <class T>
void roof_copy(T* y, const T* x, index_t n) {
  fastnn::parallel_for(n, kRoofGrain, [&](index_t lo, index_t hi) { ROOF_CALL(copy_leaf, y + lo, x + lo, hi - lo); });
}
template <class T>
void roof_add(T* y, const T* a, const T* b, index_t n) {
  fastnn::parallel_for(n, kRoofGrain, [&](index_t lo, index_t hi) { ROOF_CALL(add_leaf, y + lo, a + lo, b + lo, hi - lo); });
}
template <class T>
void roof_copy_mask(T* y, std::uint8_t* m, const T* x, index_t n) {
  fastnn::parallel_for(n, kRoofGrain, [&](index_t lo, index_t hi) { ROOF_CALL(copy_mask_leaf, y + lo, m + lo, x + lo, hi - lo); }, 64);
}
template <class T>
void roof_mask_mul(T* y, const T* a, const std::uint8_t* m, index_t n) {
  fastnn::parallel_for(n, kRoofGrain, [&](index_t lo, index_t hi) { ROOF_CALL(mask_mul_leaf, y + lo, a + lo, m + lo, hi - lo); }, 64);
}
template <class T>
void roof_acc1(T* a, const T* g, index_t n) {
  fastnn::parallel_for(n, kRoofGrain, [&](index_t lo, index_t hi) { ROOF_CALL(acc1_leaf, a + lo, g + lo, hi - lo); });
}
template <class T>
void roof_acc2(T* w, T* v, const T* g, index_t n) {
  fastnn::parallel_for(n, kRoofGrain, [&](index_t lo, index_t hi) { ROOF_CALL(acc2_leaf, w + lo, v + lo, g + lo, hi - lo); });
}
template <class T>
void roof_acc3(T* w, T* m, T* v, const T* g, index_t n) {
  fastnn::parallel_for(n, kRoofGrain, [&](index_t lo, index_t hi) { ROOF_CALL(acc3_leaf, w + lo, m + lo, v + lo, g + lo, hi - lo); });
}
template <class T>
double roof_sum1(const T* x, index_t n) {
  return fastnn::parallel_sum(n, kRoofGrain, [&](index_t lo, index_t hi) { return ROOF_CALL(sum1_leaf, x + lo, hi - lo); });
}
template <class T>
double roof_sum2(const T* a, const T* b, index_t n) {
  return fastnn::parallel_sum(n, kRoofGrain, [&](index_t lo, index_t hi) { return ROOF_CALL(sum2_leaf, a + lo, b + lo, hi - lo); });
}

volatile double g_sink = 0;  // keeps the reductions' results alive

// L2 size per core in bytes: sysconf, else sysfs, else 1 MiB.
long l2_bytes() {
#ifdef _SC_LEVEL2_CACHE_SIZE
  const long s = sysconf(_SC_LEVEL2_CACHE_SIZE);
  if (s > 0) return s;
#endif
  std::ifstream f("/sys/devices/system/cpu/cpu0/cache/index2/size");
  std::string txt;
  if (f >> txt && !txt.empty()) {
    long v = std::atol(txt.c_str());
    const char u = txt.back();
    if (u == 'K' || u == 'k') v *= 1024;
    else if (u == 'M' || u == 'm') v *= 1024 * 1024;
    if (v > 0) return v;
  }
  return 1L << 20;
}

std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    o += c;
  }
  return o;
}

std::vector<index_t> parse_sizes(const char* s) {
  std::vector<index_t> v;
  std::stringstream ss(s);
  std::string tok;
  while (std::getline(ss, tok, ','))
    if (!tok.empty()) v.push_back(std::atoll(tok.c_str()));
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = fastnn::get_num_threads();
  double min_time = 0.5;
  bool json = false;
  const char* simd = nullptr;
  std::set<std::string> sections = {"gemm", "kernels", "bandwidth"};
  double bw_mib = 0;
  std::vector<index_t> stream_sizes = {3072 * 100, 1024 * 1024};
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--min-time") && i + 1 < argc) min_time = std::atof(argv[++i]);
    else if (!std::strcmp(argv[i], "--simd") && i + 1 < argc) simd = argv[++i];
    else if (!std::strcmp(argv[i], "--json")) json = true;
    else if (!std::strcmp(argv[i], "--bw-mib") && i + 1 < argc) bw_mib = std::atof(argv[++i]);
    else if (!std::strcmp(argv[i], "--stream-sizes") && i + 1 < argc) stream_sizes = parse_sizes(argv[++i]);
    else if (!std::strcmp(argv[i], "--sections") && i + 1 < argc) {
      sections.clear();
      std::stringstream ss(argv[++i]);
      std::string tok;
      while (std::getline(ss, tok, ',')) {
        if (tok == "all") sections.insert({"gemm", "kernels", "bandwidth", "stream"});
        else if (tok == "gemm" || tok == "kernels" || tok == "bandwidth" || tok == "stream") sections.insert(tok);
        else if (!tok.empty()) {
          std::fprintf(stderr, "fastnn_bench: unknown section '%s' (gemm, kernels, bandwidth, stream, all)\n", tok.c_str());
          return 2;
        }
      }
    } else {
      std::fprintf(stderr, "usage: %s [--threads N] [--min-time SECONDS] [--simd avx512|avx2|baseline|auto] [--json]\n"
                   "          [--sections gemm,kernels,bandwidth,stream|all] [--bw-mib MIB] [--stream-sizes N1,N2,...]\n"
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
  threads = fastnn::get_num_threads();
  g_roof_isa = fastnn::best_isa();
  const int cores = fastnn::hardware_threads();
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  auto randv = [&](index_t n) {
    std::vector<float> v(n);
    for (auto& x : v) x = nd(rng);
    return v;
  };
  std::vector<Row> rows;
  std::vector<BwRow> bw;
  std::vector<StreamRow> streams;

  // GEMMs of the benchmark workloads (forward and the two backward products)
  if (sections.count("gemm")) {
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
  }

  // Memory-bound kernels on the W2 hidden layer (128 x 512)
  if (sections.count("kernels")) {
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
  }

  // Per-kernel bandwidth against a stream loop with the same streams, buffers out of L2
  const long l2 = l2_bytes();
  double buf_bytes = std::min<double>(64.0 * (1 << 20), std::max<double>(4.0 * (1 << 20), 4.0 * l2 * cores));
  buf_bytes = std::max(buf_bytes, 4.0 * l2);
  if (bw_mib > 0) buf_bytes = bw_mib * (1 << 20);
  const index_t D = 512, C = 1000;
  const index_t bw_n = std::max<index_t>(D, static_cast<index_t>(buf_bytes / sizeof(float)) / D * D);
  if (sections.count("bandwidth")) {
    const index_t n = bw_n, N = n / D;
    const double F = sizeof(float);
    auto x = randv(n), a = randv(n), g = randv(n), w = randv(n);
    std::vector<float> y(n), dx(n), m(n), v(n), r0(n), r1(n), r2(n);
    auto rx = randv(n), rg = randv(n);
    std::vector<std::uint8_t> mask(n), rmask(n);
    std::vector<float> gam(D, 1.1f), bet(D, 0.1f), mu(D), is(D), rm(D), rv(D, 1.f), dg(D), db(D);
    fastnn::batchnorm_forward_train(y.data(), mu.data(), is.data(), rm.data(), rv.data(), x.data(), gam.data(), bet.data(), N, D, 1e-5f, 0.9f, false);
    fastnn::dropout_forward(y.data(), rmask.data(), x.data(), n, 0.5, 3, 4);
    auto mem = [&](const char* name, const char* streams_desc, double bytes, const std::function<void()>& kern,
                   const char* roof_name, const std::function<void()>& roof) {
      auto [tk, tr] = time_pair(kern, roof, min_time);
      bw.push_back({name, streams_desc, roof_name, true, bytes, double(n), tk, tr});
    };
    auto cpu = [&](const char* name, const char* streams_desc, double bytes, double elems, const std::function<void()>& kern) {
      auto [med, mn] = time_it(kern, min_time);
      bw.push_back({name, streams_desc, "", false, bytes, elems, {med, mn}, {0, 0}});
    };
    // roofline shapes (operands of their own, so the kernel's buffers stay as the kernel left them)
    auto copy = [&] { roof_copy(r0.data(), rx.data(), n); };
    auto add2 = [&] { roof_add(r0.data(), rx.data(), rg.data(), n); };
    auto acc1 = [&] { roof_acc1(r0.data(), rg.data(), n); };
    auto acc2 = [&] { roof_acc2(r0.data(), r1.data(), rg.data(), n); };
    auto acc3 = [&] { roof_acc3(r0.data(), r1.data(), r2.data(), rg.data(), n); };
    mem("relu fwd", "1R+1W", 2 * n * F, [&] { fastnn::relu_forward(y.data(), x.data(), n); }, "copy y=x", copy);
    mem("relu bwd", "2R+1W", 3 * n * F, [&] { fastnn::relu_backward(dx.data(), g.data(), x.data(), n, false); }, "add y=a+b", add2);
    mem("leaky relu fwd", "1R+1W", 2 * n * F, [&] { fastnn::leaky_relu_forward(y.data(), x.data(), 0.01f, n); }, "copy y=x", copy);
    mem("leaky relu bwd", "2R+1W", 3 * n * F, [&] { fastnn::leaky_relu_backward(dx.data(), g.data(), x.data(), 0.01f, n, false); }, "add y=a+b", add2);
    mem("dropout fwd (p=0.5, mask)", "1R+1W+1W(u8)", 2 * n * F + n, [&] { fastnn::dropout_forward(y.data(), mask.data(), x.data(), n, 0.5, 1, 2); },
        "copy y=x, m=x>0", [&] { roof_copy_mask(r0.data(), rmask.data(), rx.data(), n); });
    mem("dropout bwd", "1R+1R(u8)+1W", 2 * n * F + n, [&] { fastnn::dropout_backward(dx.data(), g.data(), rmask.data(), n, 0.5, false); },
        "y=a*m", [&] { roof_mask_mul(r0.data(), rx.data(), rmask.data(), n); });
    mem("batchnorm affine (eval fwd)", "1R+1W", 2 * n * F, [&] {
      fastnn::batchnorm_forward_eval(y.data(), x.data(), gam.data(), bet.data(), rm.data(), rv.data(), N, D, 1e-5f);
    }, "copy y=x", copy);
    mem("batchnorm train fwd (stats + affine)", "1R; 1R+1W", 3 * n * F, [&] {
      fastnn::batchnorm_forward_train(y.data(), mu.data(), is.data(), rm.data(), rv.data(), x.data(), gam.data(), bet.data(), N, D, 1e-5f, 0.9f, false);
    }, "sum(x); copy", [&] { g_sink = roof_sum1(rx.data(), n); copy(); });
    mem("batchnorm bwd (sums + dx)", "2R; 2R+1W", 5 * n * F, [&] {
      fastnn::batchnorm_backward(dx.data(), dg.data(), db.data(), g.data(), x.data(), gam.data(), mu.data(), is.data(), N, D, false);
    }, "sum(a*b); add", [&] { g_sink = roof_sum2(rx.data(), rg.data(), n); add2(); });
    mem("l2 penalty (grad += lambda w)", "2R+1W in place", 3 * n * F, [&] { g_sink = fastnn::l2_penalty(dx.data(), w.data(), n, 1e-6, true); },
        "a+=b", acc1);
    {
      fastnn::StepHyper h;
      h.lr = 1e-6;
      h.momentum = 0.9;
      std::int64_t t = 0;
      float* st1[1] = {m.data()};
      float* st2[2] = {m.data(), v.data()};
      mem("sgd step", "2R+1W in place", 3 * n * F, [&] { fastnn::optimizer_step(fastnn::OptimKind::SGD, w.data(), st1, g.data(), n, h); },
          "a+=b", acc1);
      mem("momentum step", "3R+2W in place", 5 * n * F, [&] { fastnn::optimizer_step(fastnn::OptimKind::Momentum, w.data(), st1, g.data(), n, h); },
          "v+=g; w+=v", acc2);
      std::fill(m.begin(), m.end(), 0.f);
      mem("rmsprop step", "3R+2W in place", 5 * n * F, [&] { fastnn::optimizer_step(fastnn::OptimKind::RMSProp, w.data(), st1, g.data(), n, h); },
          "v+=g; w+=v", acc2);
      std::fill(m.begin(), m.end(), 0.f);
      mem("adam step", "4R+3W in place", 7 * n * F, [&] {
        h.t = ++t;
        fastnn::optimizer_step(fastnn::OptimKind::Adam, w.data(), st2, g.data(), n, h);
      }, "m+=g; v+=g; w+=m+v", acc3);
    }
    // exp/tanh-bound kernels: Gelem/s (GB/s for reference)
    cpu("tanh fwd", "1R+1W", 2 * n * F, double(n), [&] { fastnn::tanh_forward(y.data(), x.data(), n); });
    cpu("sigmoid fwd", "1R+1W", 2 * n * F, double(n), [&] { fastnn::sigmoid_forward(y.data(), x.data(), n); });
    cpu("elu fwd", "1R+1W", 2 * n * F, double(n), [&] { fastnn::elu_forward(y.data(), x.data(), 1.0f, n); });
    {
      const index_t rows_c = n / C;
      cpu("softmax (rows of 1000)", "1R+1W", 2.0 * rows_c * C * F, double(rows_c * C),
          [&] { fastnn::softmax(y.data(), x.data(), rows_c, C); });
      std::vector<std::int64_t> lab(rows_c);
      for (index_t i = 0; i < rows_c; ++i) lab[i] = (i * 7) % C;
      double loss;
      cpu("softmax xent (rows of 1000)", "1R+1W", 2.0 * rows_c * C * F, double(rows_c * C),
          [&] { fastnn::softmax_cross_entropy(&loss, dx.data(), x.data(), lab.data(), rows_c, C, 0.0, false); });
    }
  }

  // The roofline loops alone on the U1 shapes (float32 and float64)
  if (sections.count("stream")) {
    auto run_streams = [&](auto zero, const char* dtype) {
      using T = decltype(zero);
      for (index_t n : stream_sizes) {
        if (n <= 0) continue;
        std::vector<T> a(n, T(0.5)), b(n, T(0.25)), c(n, T(0.125)), g(n, T(-1e-7));
        const double S = sizeof(T);
        auto [m1, n1] = time_it([&] { roof_acc1(a.data(), g.data(), n); }, min_time);
        streams.push_back({"2R+1W", dtype, n, 3 * n * S, {m1, n1}});
        auto [m2, n2] = time_it([&] { roof_acc2(a.data(), b.data(), g.data(), n); }, min_time);
        streams.push_back({"3R+2W", dtype, n, 5 * n * S, {m2, n2}});
        auto [m3, n3] = time_it([&] { roof_acc3(a.data(), b.data(), c.data(), g.data(), n); }, min_time);
        streams.push_back({"4R+3W", dtype, n, 7 * n * S, {m3, n3}});
      }
    };
    run_streams(float(0), "float32");
    run_streams(double(0), "float64");
  }

  const double ghz = fastnn::measure_clock_ghz();
  const double peak = cores * 32.0 * ghz;  // GFLOP/s fp32
  const char* roof_isa = fastnn::isa_name(g_roof_isa);
  if (json) {
    std::printf("{\"threads\": %d, \"cores\": %d, \"clock_ghz\": %.3f, \"fp32_peak_gflops\": %.1f, \"simd\": \"%s\", "
                "\"simd_best\": \"%s\", \"simd_supported\": \"%s\", \"roofline_simd\": \"%s\", \"l2_bytes\": %ld, "
                "\"bw_buffer_bytes\": %.0f, \"rows\": [",
                threads, cores, ghz, peak, fastnn::simd_level(), fastnn::isa_name(fastnn::best_isa()),
                fastnn::simd_supported(), roof_isa, l2, double(bw_n) * sizeof(float));
    for (size_t i = 0; i < rows.size(); ++i)
      std::printf("%s{\"name\": \"%s\", \"median_s\": %.9g, \"min_s\": %.9g, \"%s\": %.6g}", i ? ", " : "",
                  rows[i].name.c_str(), rows[i].median, rows[i].min, rows[i].flops ? "gflops" : "gbps",
                  rows[i].work / rows[i].min / 1e9);
    std::printf("], \"bandwidth\": [");
    for (size_t i = 0; i < bw.size(); ++i) {
      const auto& r = bw[i];
      std::printf("%s{\"name\": \"%s\", \"kind\": \"%s\", \"streams\": \"%s\", \"bytes\": %.0f, \"elems\": %.0f, "
                  "\"median_s\": %.9g, \"min_s\": %.9g, \"gbps\": %.6g, \"gbps_best\": %.6g, \"gelem_s\": %.6g",
                  i ? ", " : "", json_escape(r.name).c_str(), r.memory ? "memory" : "compute", r.streams.c_str(), r.bytes,
                  r.elems, r.kernel.median, r.kernel.min, r.bytes / r.kernel.median / 1e9, r.bytes / r.kernel.min / 1e9,
                  r.elems / r.kernel.median / 1e9);
      if (r.memory)
        std::printf(", \"roofline\": \"%s\", \"roofline_median_s\": %.9g, \"roofline_min_s\": %.9g, \"roofline_gbps\": %.6g, "
                    "\"pct_roofline\": %.4g, \"pct_roofline_best\": %.4g",
                    json_escape(r.roofline).c_str(), r.roof.median, r.roof.min, r.bytes / r.roof.median / 1e9,
                    100 * r.roof.median / r.kernel.median, 100 * r.roof.min / r.kernel.min);
      std::printf("}");
    }
    std::printf("], \"stream\": [");
    for (size_t i = 0; i < streams.size(); ++i) {
      const auto& s = streams[i];
      std::printf("%s{\"pattern\": \"%s\", \"dtype\": \"%s\", \"n\": %lld, \"bytes\": %.0f, \"median_s\": %.9g, "
                  "\"min_s\": %.9g, \"gbps\": %.6g}",
                  i ? ", " : "", s.pattern.c_str(), s.dtype.c_str(), static_cast<long long>(s.n), s.bytes, s.t.median,
                  s.t.min, s.bytes / s.t.median / 1e9);
    }
    std::printf("]}\n");
    return 0;
  }
  std::printf("fastnn_bench: %d thread(s) of %d cores, clock %.2f GHz (measured), fp32 peak %.0f GFLOP/s, simd %s "
              "(this CPU runs %s), gemm threading %s\n",
              threads, cores, ghz, peak, fastnn::simd_level(), fastnn::simd_supported(), fastnn::gemm_threading_name());
  if (!rows.empty()) {
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
  }
  if (!bw.empty()) {
    std::printf("\nper-kernel bandwidth, simd %s, %d thread(s), float32, %.1f MiB per buffer (L2 %ld KiB per core); "
                "roofline = the same streams in a plain loop (%s clone), timed alternately; medians\n",
                fastnn::simd_level(), threads, double(bw_n) * sizeof(float) / (1 << 20), l2 / 1024, roof_isa);
    std::printf("%-38s %-14s %10s %10s %-20s %10s %8s\n", "kernel", "streams", "us", "GB/s", "roofline", "GB/s", "% roof");
    for (const auto& r : bw) {
      if (r.memory)
        std::printf("%-38s %-14s %10.1f %10.1f %-20s %10.1f %7.0f%%%s\n", r.name.c_str(), r.streams.c_str(),
                    r.kernel.median * 1e6, r.bytes / r.kernel.median / 1e9, r.roofline.c_str(), r.bytes / r.roof.median / 1e9,
                    100 * r.roof.median / r.kernel.median, r.roof.median / r.kernel.median < 0.7 ? "  < 70 %" : "");
      else
        std::printf("%-38s %-14s %10.1f %10.1f %-20s %7.2f Gelem/s\n", r.name.c_str(), r.streams.c_str(),
                    r.kernel.median * 1e6, r.bytes / r.kernel.median / 1e9, "(exp/tanh-bound)", r.elems / r.kernel.median / 1e9);
    }
  }
  if (!streams.empty()) {
    std::printf("\nstream loops (%s clone), %d thread(s)\n%-8s %-8s %10s %10s %10s\n", roof_isa, threads, "pattern", "dtype",
                "n", "us", "GB/s");
    for (const auto& s : streams)
      std::printf("%-8s %-8s %10lld %10.1f %10.1f\n", s.pattern.c_str(), s.dtype.c_str(), static_cast<long long>(s.n),
                  s.t.median * 1e6, s.bytes / s.t.median / 1e9);
  }
  return 0;
}
