// Thread-count policy for the kernels and for BLAS (see threads.h).
#include "fastnn/threads.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

#include "blas_api.h"

#if defined(FASTNN_OPENMP) && defined(FASTNN_HAVE_BLAS_CALLBACK)
#include <dlfcn.h>
#endif

namespace fastnn {

namespace {

std::atomic<int> g_num_threads{0};
GemmThreading g_gemm = GemmThreading::Tiles;

int env_threads(const char* name) {
  const char* s = std::getenv(name);
  if (!s || !*s) return 0;
  char* end = nullptr;
  long v = std::strtol(s, &end, 10);  // OMP_NUM_THREADS may be a list "4,2": take the first level
  if (end == s || v < 1) return 0;
  return v > 4096 ? 4096 : static_cast<int>(v);
}

#if defined(FASTNN_OPENMP) && defined(FASTNN_HAVE_BLAS_CALLBACK)
// OpenBLAS hands us `numjobs` jobs that must all run at the same time (its level-3 jobs wait on
// each other), so the team has exactly numjobs threads and each thread takes one job.
void blas_threads_callback(int /*sync*/, blas_api::dojob_fn dojob, int numjobs,
                           size_t jobdata_elsize, void* jobdata, int dojob_data) {
  char* base = static_cast<char*>(jobdata);
#pragma omp parallel num_threads(numjobs)
  {
    const int i = omp_get_thread_num();
    dojob(i, base + static_cast<size_t>(i) * jobdata_elsize, dojob_data);
  }
}

// The OpenBLAS version from its config string ("OpenBLAS 0.3.28 DYNAMIC_ARCH ...") as
// 10000 * major + 100 * minor + patch, or 0 if the string says otherwise.
int blas_version() {
  const char* config = FASTNN_BLAS_FN(get_config)();
  int major = 0, minor = 0, patch = 0;
  if (!config || std::sscanf(config, "OpenBLAS %d.%d.%d", &major, &minor, &patch) != 3) return 0;
  return major * 10000 + minor * 100 + patch;
}

// Hand OpenBLAS's parallel jobs to blas_threads_callback; false (and nothing changed) where the
// OpenBLAS loaded at run time cannot take them. Its setter is looked up by name in that library,
// under either of its exported names (blas_api.h). OpenBLAS 0.3.28 is refused: its callback path
// runs jobs without their per-thread buffers and crashes in the first threaded GEMM (fixed in
// 0.3.29, OpenBLAS commit d24b3cf; seen here as a SIGSEGV in dgemm_itcopy with the 0.3.28 wheel).
bool install_blas_threads_callback() {
  if (blas_version() < 329) return false;
  Dl_info info{};
  if (!dladdr(reinterpret_cast<void*>(&FASTNN_CBLAS(sgemm)), &info) || !info.dli_fname) return false;
  void* lib = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD);  // already loaded: only a handle
  if (!lib) return false;
  void* setter = nullptr;
  for (const char* name : blas_api::kSetThreadsCallbackNames)
    if ((setter = dlsym(lib, name))) break;
  if (setter) reinterpret_cast<blas_api::set_threads_callback_fn>(setter)(blas_threads_callback);
  dlclose(lib);  // drops the reference dlopen took; the library stays loaded
  return setter != nullptr;
}
#endif

// Threads BLAS itself should use for a fastnn thread count of n.
int blas_threads_for(int n) { return g_gemm == GemmThreading::Tiles ? 1 : n; }

void init_once() {
  static std::once_flag flag;
  std::call_once(flag, [] {
    int n = env_threads("FASTNN_NUM_THREADS");
    if (!n) n = env_threads("OMP_NUM_THREADS");
    if (!n) n = hardware_threads();
#if defined(FASTNN_OPENMP)
    omp_set_dynamic(0);  // the BLAS callback needs the full team it asks for
#endif
    const char* mode = std::getenv("FASTNN_GEMM_THREADING");
    if (mode && std::string(mode) == "openblas") g_gemm = GemmThreading::OpenBLAS;
#if defined(FASTNN_OPENMP) && defined(FASTNN_HAVE_BLAS_CALLBACK)
    if (mode && std::string(mode) == "callback" && install_blas_threads_callback())
      g_gemm = GemmThreading::Callback;
#endif
#if !defined(FASTNN_HAVE_BLAS_THREADS)
    // A BLAS whose threads we cannot control keeps its own; fastnn still tiles on top of it.
#endif
#if defined(FASTNN_HAVE_BLAS_THREADS)
    FASTNN_BLAS_FN(set_num_threads)(blas_threads_for(n));
#endif
    g_num_threads.store(n);
  });
}

}  // namespace

int hardware_threads() {
  // Read once: omp_get_num_procs() is a sched_getaffinity system call, and the GEMM tiling asks
  // for it on every call (3.6 % of a small-batch digits fit in a py-spy profile). Reading it once
  // also keeps the tiling, and so the bits of every result, fixed for the life of the process.
  static const int n = [] {
#if defined(FASTNN_OPENMP)
    const int procs = omp_get_num_procs();
#else
    const int procs = static_cast<int>(std::thread::hardware_concurrency());
#endif
    const int quota = cgroup_cpu_limit();
    const int avail = procs > 0 ? procs : 1;
    return quota > 0 && quota < avail ? quota : avail;
  }();
  return n;
}

int get_num_threads() {
  int n = g_num_threads.load(std::memory_order_relaxed);
  if (n > 0) return n;
  init_once();
  return g_num_threads.load();
}

void set_num_threads(int n) {
  init_once();
  if (n < 1) n = 1;
  if (n > 4096) n = 4096;
#if defined(FASTNN_HAVE_BLAS_THREADS)
  FASTNN_BLAS_FN(set_num_threads)(blas_threads_for(n));
#endif
  g_num_threads.store(n);
}

GemmThreading gemm_threading() {
  init_once();
  return g_gemm;
}

const char* gemm_threading_name() {
  switch (gemm_threading()) {
    case GemmThreading::Tiles: return "tiles";
    case GemmThreading::Callback: return "callback";
    case GemmThreading::OpenBLAS: return "openblas";
  }
  return "?";
}

const char* blas_info() {
#if defined(FASTNN_BLAS_SCIPY_OPENBLAS)
  return "scipy-openblas32";
#elif defined(FASTNN_BLAS_OPENBLAS)
  return "system OpenBLAS";
#else
  return "system BLAS";
#endif
}

const char* blas_corename() {
#if defined(FASTNN_BLAS_SCIPY_OPENBLAS) || defined(FASTNN_BLAS_OPENBLAS)
  const char* name = FASTNN_BLAS_FN(get_corename)();
  return name ? name : "";
#else
  return "";
#endif
}

double measure_clock_ghz() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  using Clock = std::chrono::steady_clock;
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    std::uint64_t x = 0;
    const std::uint64_t iters = 10'000'000;
    const auto t0 = Clock::now();
    for (std::uint64_t i = 0; i < iters; ++i) {
      // 10 dependent adds: 10 cycles per iteration
      asm volatile(
          "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
          "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0"
          : "+r"(x));
    }
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::max(best, 10.0 * double(iters) / s / 1e9);
  }
  return best;
#else
  return 0.0;
#endif
}

}  // namespace fastnn
