// The thread pool behind parallel_for (see threads.h for the policy).
//
// A job is a number of chunks. The calling thread publishes it and claims chunks itself; worker
// threads that are awake claim the rest. The caller waits only for chunks that were claimed, never
// for a worker to arrive: a worker that the OS has descheduled (another process on its core)
// simply takes no part, instead of holding up a barrier for a whole time slice — the collapse
// an OpenMP team shows beside a busy process. Chunk boundaries are fixed by the job, not by who
// runs them, so results do not depend on which or how many threads take part.
//
// Waiting is bounded: an idle worker spins for spin_micros() (enough to bridge the gaps between the
// kernels of one training step on a quiet machine), then sleeps on a condition variable; the caller
// waiting for claimed chunks spins briefly, then yields its core.
//
// Jobs from two threads at once (two models trained from two Python threads): the second caller
// finds the pool busy and runs its chunks alone, inline — no oversubscription, same results.
// Nested calls (a chunk that calls parallel_for) run inline too. After fork() the child gets a
// fresh, empty pool (the parent's workers do not exist there), so fastnn works in forked workers.
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "fastnn/threads.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FASTNN_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define FASTNN_CPU_RELAX() asm volatile("yield" ::: "memory")
#else
#define FASTNN_CPU_RELAX() ((void)0)
#endif

namespace fastnn {
namespace detail {

namespace {

// How long an idle worker spins before it sleeps: FASTNN_SPIN_US, default kDefaultSpinMicros.
// Long enough to bridge the gaps between the kernels of one training step (a few microseconds);
// short enough that a worker sleeps between steps, where Python runs, instead of taking a core from
// another process. (A worker that sleeps costs the caller nothing but its help: the caller never
// waits for it to wake.)
constexpr int kDefaultSpinMicros = 20;

}  // namespace

int spin_micros() {
  static const int us = [] {
    const char* s = std::getenv("FASTNN_SPIN_US");
    if (!s || !*s) return kDefaultSpinMicros;
    const long v = std::strtol(s, nullptr, 10);
    return v < 0 ? 0 : (v > 100000 ? 100000 : static_cast<int>(v));
  }();
  return us;
}

namespace {

using Clock = std::chrono::steady_clock;

thread_local bool t_in_job = false;  // on a pool worker, or inside a job's chunk on the caller

class Pool {
 public:
  // Run body(ctx, c) for c in [0, n) on the caller and up to `threads - 1` workers.
  void run(index_t n, int threads, ChunkFn body, void* ctx) {
    bool expected = false;
    if (threads <= 1 || n <= 1 || !busy_.compare_exchange_strong(expected, true, std::memory_order_acquire)) {
      run_inline(n, body, ctx);
      return;
    }
    ensure_workers(threads - 1);
    // publish: fields under an odd sequence number, then the claim word, then an even number
    const std::uint64_t s = seq_.load(std::memory_order_relaxed) + 1;  // odd: writing
    seq_.store(s, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    body_.store(body, std::memory_order_relaxed);
    ctx_.store(ctx, std::memory_order_relaxed);
    n_.store(n, std::memory_order_relaxed);
    helpers_.store(threads - 1, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    const std::uint64_t job = s + 1;  // even: this job's id
    claim_.store(pack(job, 0), std::memory_order_relaxed);
    seq_.store(job, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      std::lock_guard<std::mutex> lock(mu_);
      cv_.notify_all();
    }
    // work alongside the helpers
    t_in_job = true;
    index_t mine = 0;
    for (index_t c; (c = claim(job, n)) >= 0;) {
      body(ctx, c);
      ++mine;
    }
    t_in_job = false;
    // wait for the chunks the helpers claimed; spin briefly, then give the core away
    index_t spins = 0;
    while (done_.load(std::memory_order_acquire) + mine < n) {
      if (++spins < 2000) FASTNN_CPU_RELAX();
      else sched_yield();
    }
    busy_.store(false, std::memory_order_release);
  }

  int workers() const {
    std::lock_guard<std::mutex> lock(grow_mu_);
    return static_cast<int>(workers_->size());
  }

 private:
  static std::uint64_t pack(std::uint64_t job, std::uint64_t next) { return (job << 24) | next; }

  // Claim the next chunk of `job`, or -1 when none is left (or the job is over).
  index_t claim(std::uint64_t job, index_t n) {
    std::uint64_t cur = claim_.load(std::memory_order_relaxed);
    for (;;) {
      if ((cur >> 24) != (job & 0xFFFFFFFFFFull) || std::int64_t(cur & 0xFFFFFF) >= n) return -1;
      if (claim_.compare_exchange_weak(cur, cur + 1, std::memory_order_acq_rel, std::memory_order_relaxed))
        return std::int64_t(cur & 0xFFFFFF);
    }
  }

  void run_inline(index_t n, ChunkFn body, void* ctx) {
    const bool outer = !t_in_job;
    t_in_job = true;
    for (index_t c = 0; c < n; ++c) body(ctx, c);
    if (outer) t_in_job = false;
  }

  void ensure_workers(int want) {
    std::lock_guard<std::mutex> lock(grow_mu_);
    while (static_cast<int>(workers_->size()) < want) workers_->emplace_back([this] { worker_loop(); });
  }

  void worker_loop() {
    t_in_job = true;
    std::uint64_t seen = seq_.load(std::memory_order_acquire);
    for (;;) {
      const std::uint64_t s = wait_for_new_job(seen);
      seen = s;
      // read the job's fields; the sequence number must not have moved meanwhile
      const ChunkFn body = body_.load(std::memory_order_relaxed);
      void* const ctx = ctx_.load(std::memory_order_relaxed);
      const index_t n = n_.load(std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (seq_.load(std::memory_order_relaxed) != s) continue;
      // at most threads - 1 helpers take part (set_num_threads may be below the pool's size)
      if (helpers_.fetch_sub(1, std::memory_order_acq_rel) <= 0) continue;
      for (index_t c; (c = claim(s, n)) >= 0;) {
        body(ctx, c);
        done_.fetch_add(1, std::memory_order_acq_rel);
      }
    }
  }

  // Spin for a while, then sleep, until the sequence number is a new even (published) value.
  std::uint64_t wait_for_new_job(std::uint64_t seen) {
    auto fresh = [&](std::uint64_t s) { return s != seen && (s & 1) == 0; };
    const auto deadline = Clock::now() + std::chrono::microseconds(spin_micros());
    for (int i = 0;; ++i) {
      const std::uint64_t s = seq_.load(std::memory_order_acquire);
      if (fresh(s)) return s;
      FASTNN_CPU_RELAX();
      if ((i & 63) == 63 && Clock::now() > deadline) break;
    }
    std::unique_lock<std::mutex> lock(mu_);
    sleepers_.fetch_add(1, std::memory_order_seq_cst);
    std::uint64_t s;
    while (!fresh(s = seq_.load(std::memory_order_seq_cst))) cv_.wait(lock);
    sleepers_.fetch_sub(1, std::memory_order_relaxed);
    return s;
  }

  std::atomic<bool> busy_{false};
  std::atomic<std::uint64_t> seq_{0};
  std::atomic<std::uint64_t> claim_{0};
  std::atomic<ChunkFn> body_{nullptr};
  std::atomic<void*> ctx_{nullptr};
  std::atomic<index_t> n_{0};
  std::atomic<int> helpers_{0};
  std::atomic<index_t> done_{0};
  std::atomic<int> sleepers_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  mutable std::mutex grow_mu_;
  std::vector<std::thread>* workers_ = new std::vector<std::thread>();  // never joined: see below
};

// The pool lives for the whole process and is never destroyed: its workers sleep in a condition
// variable at exit, and joining them from a static destructor would race with other static
// destructors. In the child of a fork() the parent's workers do not exist (and its mutex may be
// held by one of them): the child starts a new, empty pool and leaks the old one.
std::atomic<Pool*> g_pool{nullptr};
std::once_flag g_pool_once;

Pool& pool() {
  std::call_once(g_pool_once, [] {
    g_pool.store(new Pool());
    pthread_atfork(nullptr, nullptr, [] { g_pool.store(new Pool()); });
  });
  return *g_pool.load(std::memory_order_acquire);
}

}  // namespace

void run_chunks(index_t n, int threads, ChunkFn body, void* ctx) { pool().run(n, threads, body, ctx); }

bool in_parallel_region() { return t_in_job; }

int pool_workers() { return pool().workers(); }

}  // namespace detail

namespace {

std::string read_first_line(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  return line;
}

// ceil(quota / period) as CPUs, or 0 for "no limit" / unreadable.
int cpus_from(double quota, double period) {
  if (!(quota > 0) || !(period > 0)) return 0;
  return std::max(1, static_cast<int>(std::ceil(quota / period - 1e-9)));
}

}  // namespace

int cgroup_cpu_limit_at(const std::string& proc_self_cgroup, const std::string& root) {
  // The smallest limit on the way from the process's cgroup up to the root: a parent's quota
  // caps its children. cgroup v2 ("0::/path", cpu.max = "quota period" or "max period") and v1
  // (the "cpu" controller's cpu.cfs_quota_us / cpu.cfs_period_us, -1 = none).
  std::ifstream f(proc_self_cgroup);
  int best = 0;
  auto take = [&](int c) {
    if (c > 0 && (best == 0 || c < best)) best = c;
  };
  for (std::string line; std::getline(f, line);) {
    const auto a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string ctrls = line.substr(a + 1, b - a - 1);
    std::string path = line.substr(b + 1);
    const bool v2 = line.compare(0, a, "0") == 0 && ctrls.empty();
    bool v1cpu = false;
    for (std::size_t p = 0; p <= ctrls.size();) {
      const std::size_t q = std::min(ctrls.find(',', p), ctrls.size());
      if (ctrls.compare(p, q - p, "cpu") == 0) v1cpu = true;
      p = q + 1;
    }
    if (!v2 && !v1cpu) continue;
    for (;;) {
      if (v2) {
        std::istringstream in(read_first_line(root + path + "/cpu.max"));
        std::string q;
        double period = 0;
        if (in >> q >> period && q != "max") take(cpus_from(std::atof(q.c_str()), period));
      } else {
        for (const char* dir : {"/cpu", "/cpu,cpuacct", "/cpuacct,cpu"}) {
          const std::string base = root + dir + path;
          const std::string q = read_first_line(base + "/cpu.cfs_quota_us");
          if (q.empty()) continue;
          take(cpus_from(std::atof(q.c_str()), std::atof(read_first_line(base + "/cpu.cfs_period_us").c_str())));
          break;
        }
      }
      if (path.empty() || path == "/") break;
      const auto slash = path.find_last_of('/');
      path = slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
    }
  }
  return best;
}

int cgroup_cpu_limit() {
  static const int n = cgroup_cpu_limit_at("/proc/self/cgroup", "/sys/fs/cgroup");
  return n;
}

int machine_cpus() {
  static const int n = [] {
    const long c = sysconf(_SC_NPROCESSORS_CONF);
    return c > 0 ? static_cast<int>(std::min<long>(c, 4096)) : 1;
  }();
  return n;
}

}  // namespace fastnn
