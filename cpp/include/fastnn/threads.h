// fastnn/threads.h — one thread pool for the kernels and for BLAS.
//
// Policy (measured, see gemm.h and the issue notes): OpenMP is the only pool. By default BLAS runs
// single-threaded and fastnn splits each GEMM into tiles on its own OpenMP team (GemmThreading::
// Tiles), which makes GEMM results independent of the thread count and leaves no second pool to
// spin. FASTNN_GEMM_THREADING=callback instead hands OpenBLAS's own parallel jobs to our OpenMP
// team (OpenBLAS >= 0.3.29; with an older OpenBLAS it stays at tiles), and =openblas leaves
// OpenBLAS its own pthreads pool (both faster on some shapes, neither reproducible across thread
// counts). set_num_threads() sets the kernels' and BLAS's thread count together; the initial value
// honours FASTNN_NUM_THREADS, then OMP_NUM_THREADS, else all cores.
//
// Elementwise work is split into chunks whose results do not depend on the split, and every
// reduction in fastnn is ordered independently of the thread count, so results are bitwise
// identical with 1 thread and with N.
#pragma once

#include <algorithm>
#include <type_traits>
#include <string>

#include "fastnn/common.h"

#if defined(FASTNN_OPENMP)
#include <omp.h>
#endif

namespace fastnn {

// Number of threads kernels and BLAS use (>= 1).
int get_num_threads();
// Set the thread count of the kernels and of BLAS; n < 1 is clamped to 1.
void set_num_threads(int n);
// Number of logical cores available to the process: its CPU affinity mask, capped by its cgroup's
// CPU quota (a container limited to 2 CPUs on a 64-core host gets 2, not 64). The default thread
// count.
int hardware_threads();
// The CPU quota of the process's cgroup (v1 or v2, the smallest on the way to the root) in whole
// CPUs, rounded up; 0 when there is none. The _at form reads another tree (for tests).
int cgroup_cpu_limit();
int cgroup_cpu_limit_at(const std::string& proc_self_cgroup, const std::string& sysfs_cgroup_root);
// Number of logical CPUs the machine has (configured), whatever this process may use: the one
// machine property that kernel blockings may depend on, so that results do not change with the
// CPU affinity or quota a process runs under (pool.cpp).
int machine_cpus();
// Name of the BLAS in use (for reports).
const char* blas_info();
// The CPU kernel set OpenBLAS picked at load time (e.g. "Zen", "SkylakeX"), or "" for other BLAS.
const char* blas_corename();
// The core clock in GHz, measured with a chain of dependent integer adds (one per cycle) — the
// boost clock a benchmark actually runs at, which /proc/cpuinfo often does not show. 0 if unknown.
double measure_clock_ghz();

// How GEMMs use threads (chosen once, from FASTNN_GEMM_THREADING, at first use).
enum class GemmThreading {
  Tiles,     // fastnn tiles on its OpenMP pool, single-threaded BLAS per tile (reproducible)
  Callback,  // OpenBLAS's threaded driver, its jobs run on fastnn's OpenMP pool
  OpenBLAS,  // OpenBLAS's threaded driver on its own pthreads pool
};
GemmThreading gemm_threading();
const char* gemm_threading_name();

namespace detail {
using ChunkFn = void (*)(void* ctx, index_t chunk);
// Run body(ctx, c) for every c in [0, n) on the calling thread and up to threads - 1 pool
// workers (pool.cpp); returns when every chunk is done. Runs inline when the pool is busy with
// another caller's job or when called from inside a chunk.
void run_chunks(index_t n, int threads, ChunkFn body, void* ctx);
// True on a pool worker and inside a chunk on the caller (nested parallel calls run inline).
bool in_parallel_region();
// Worker threads the pool has started so far (for tests and `fastnn info`).
int pool_workers();
// Microseconds an idle worker spins before it sleeps (FASTNN_SPIN_US, read once).
int spin_micros();
}  // namespace detail

// Threads the next parallel call may use: get_num_threads(), capped by OpenMP's limit for the
// calling thread (omp_get_max_threads(): what threadpoolctl's threadpool_limits sets), so that
// `with threadpool_limits(1):` limits fastnn as it limits NumPy's and scikit-learn's pools.
inline int effective_threads() {
  int n = get_num_threads();
#if defined(FASTNN_OPENMP)
  const int cap = omp_get_max_threads();
  if (cap >= 1 && cap < n) n = cap;
#endif
  return n;
}

// Call f(lo, hi) on contiguous chunks covering [0, n). A chunk holds at least `min_chunk`
// items (so small work runs on one thread); boundaries are rounded to multiples of `align`
// items when possible. The range is cut into up to 4 chunks per thread, which the calling thread
// and the pool's workers claim as they come (pool.cpp): a thread that another process keeps off
// its core delays at most the one chunk it holds. f must not throw.
template <class F>
void parallel_for(index_t n, index_t min_chunk, F&& f, index_t align = 16) {
  if (n <= 0) return;
  int nt = effective_threads();
  const index_t max_chunks = std::max<index_t>(1, n / std::max<index_t>(1, min_chunk));
  if (nt > max_chunks) nt = static_cast<int>(max_chunks);
  if (nt <= 1 || detail::in_parallel_region()) {
    f(index_t(0), n);
    return;
  }
  struct Job {
    std::remove_reference_t<F>* f;
    index_t n, chunks, align;
    index_t bound(index_t c) const {
      if (c <= 0) return 0;
      if (c >= chunks) return n;
      const index_t b = n * c / chunks;
      return align > 1 ? std::min(n, (b + align - 1) / align * align) : b;
    }
  } job{&f, n, std::min<index_t>(max_chunks, index_t(nt) * 4), align};
  detail::run_chunks(job.chunks, nt, [](void* p, index_t c) {
    const Job& j = *static_cast<const Job*>(p);
    const index_t lo = j.bound(c), hi = j.bound(c + 1);
    if (lo < hi) (*j.f)(lo, hi);
  }, &job);
}

// Sum of f(lo, hi) over fixed blocks of [0, n), added in block order: the block boundaries depend
// on n and min_chunk only, so the result is the same whatever the thread count.
template <class F>
double parallel_sum(index_t n, index_t min_chunk, F&& f) {
  if (n <= 0) return 0.0;
  constexpr index_t kMaxBlocks = 512;
  min_chunk = std::max<index_t>(1, min_chunk);
  const index_t nb = std::min<index_t>(kMaxBlocks, (n + min_chunk - 1) / min_chunk);
  double partial[kMaxBlocks];
  parallel_for(
      nb, 1,
      [&](index_t b0, index_t b1) {
        for (index_t b = b0; b < b1; ++b) partial[b] = f(n * b / nb, n * (b + 1) / nb);
      },
      1);
  double s = 0.0;
  for (index_t b = 0; b < nb; ++b) s += partial[b];
  return s;
}

// Call f(j0, j1) on blocks of at most `max_width` columns of a (rows, D) row-major matrix, in
// parallel over blocks. Used by per-feature reductions (batch norm, bias and slope gradients):
// each column is reduced over the rows by one thread in row order. The block width depends on D
// and the machine's CPU count (machine_cpus(): not the affinity mask, not the thread count), so
// every column is computed by the same code path (vector body or remainder loop, which may
// contract to FMA differently) whatever the thread count, affinity or CPU quota: results are
// bitwise identical with 1 thread and with N.
template <class F>
void parallel_columns(index_t rows, index_t D, F&& f, index_t max_width = 256) {
  if (D <= 0) return;
  const index_t cores = machine_cpus();
  index_t width = (D + cores - 1) / cores;
  width = std::min(max_width, std::max<index_t>(16, (width + 15) / 16 * 16));
  const index_t nb = (D + width - 1) / width;
  // Enough rows x columns per block to be worth a thread.
  const index_t min_blocks = std::max<index_t>(1, 16384 / std::max<index_t>(1, rows * width));
  parallel_for(
      nb, min_blocks,
      [&](index_t b0, index_t b1) {
        for (index_t b = b0; b < b1; ++b) f(b * width, std::min(D, (b + 1) * width));
      },
      1);
}

}  // namespace fastnn
