// fastnn/isa.h — run-time choice of the SIMD code path ("clone") for the hot elementwise loops.
//
// Every hot loop ("leaf") is compiled once per ISA level into its own namespace, and each call
// picks one through FASTNN_SIMD_CALL according to active_isa():
//
//   x86-64   isa_avx512  (x86-64-v4: AVX-512 F/BW/CD/DQ/VL, FMA)
//            isa_avx2    (x86-64-v3: AVX2, FMA, BMI1/2, F16C, MOVBE)
//            isa_baseline(x86-64: SSE2)
//   other    isa_baseline only (on aarch64 that is NEON, which every aarch64 CPU has: reported "neon")
//
// The level is the best the CPU and OS support, unless FASTNN_SIMD (avx512 | avx2 | baseline |
// auto) asks for another: a level the CPU lacks is refused with a clear error (check_simd()
// throws; `import fastnn` fails with that message) rather than dying of SIGILL. set_simd()
// switches at run time, so one machine runs, tests and benchmarks every clone it can execute.
// Unlike GCC's target_clones (an ifunc resolved at load time, blind to the environment), this
// dispatch is explicit, and which clone ran can be read back (simd_probe()).
//
// How to write a leaf (see activations.cpp): the loop body is an always-inline template outside
// the passes; the leaf, a thin FASTNN_LEAF function that calls it, goes inside
// FASTNN_ISA_PASSES(...) and is called as FASTNN_SIMD_CALL(leaf, args...). No `#pragma` can stand
// inside the macro argument, so `#pragma omp simd` stays in the body template, where it belongs
// anyway. FASTNN_LEAF keeps every clone a function of its own (never inlined into its caller:
// the call is per chunk, not per element), so tests can read each clone's machine code
// (tests/test_cpp.py checks that every clone of every leaf uses vector instructions).
//
// Results across clones: vector width and FMA contraction differ (x86-64-v3 and v4 contract
// a*b+c into FMA, baseline cannot), so kernels agree across clones to a few ulp, not bitwise;
// tests/test_kernels.py lists which kernels are bitwise across clones and the tolerance of the
// others. Within one clone, results are bitwise identical for any thread count.
#pragma once

#include <atomic>

#include "fastnn/common.h"

namespace fastnn {

enum class Isa : int { baseline = 0, avx2 = 1, avx512 = 2 };

namespace detail {
extern std::atomic<int> g_isa;  // -1 until resolved
Isa resolve_isa() noexcept;
}  // namespace detail

// The clone set the next kernel call runs.
inline Isa active_isa() noexcept {
  const int v = detail::g_isa.load(std::memory_order_relaxed);
  return v >= 0 ? static_cast<Isa>(v) : detail::resolve_isa();
}

// "avx512", "avx2", "baseline" ("neon" for the baseline clone on aarch64).
const char* isa_name(Isa isa) noexcept;
// Whether this build has the clone and this CPU (and OS) can run it.
bool isa_supported(Isa isa) noexcept;
// The best clone this CPU runs.
Isa best_isa() noexcept;
// Select a clone by name ("avx512", "avx2", "baseline", "neon" on aarch64, or "auto" = best).
// Throws std::invalid_argument naming the level and the ones this CPU supports.
void set_simd(const char* name);
// Throws std::invalid_argument if FASTNN_SIMD named a level this CPU cannot run or an unknown
// one (the kernels then run the best clone); does nothing otherwise.
void check_simd();
// Name of the active clone (calls check_simd() first).
const char* simd_level();
// Comma-separated names of the clones this CPU runs, best first (e.g. "avx2,baseline").
const char* simd_supported();
// The clone that actually executes a dispatched call: a leaf compiled in each pass that returns
// the ISA its own pass was compiled for (read from the compiler's predefined macros), called
// through FASTNN_SIMD_CALL like every kernel leaf.
Isa simd_probe() noexcept;

}  // namespace fastnn

#define FASTNN_PRAGMA(x) _Pragma(#x)

#if defined(__GNUC__) || defined(__clang__)
#define FASTNN_LEAF __attribute__((noinline))
#else
#define FASTNN_LEAF
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(FASTNN_NATIVE)
#define FASTNN_X86_CLONES 1
#if defined(__clang__)
#define FASTNN_TARGET_BEGIN(arch) \
  FASTNN_PRAGMA(clang attribute push(__attribute__((target(arch))), apply_to = function))
#define FASTNN_TARGET_END FASTNN_PRAGMA(clang attribute pop)
#else
#define FASTNN_TARGET_BEGIN(arch) FASTNN_PRAGMA(GCC push_options) FASTNN_PRAGMA(GCC target(arch))
#define FASTNN_TARGET_END FASTNN_PRAGMA(GCC pop_options)
#endif
// The leaves in the argument, compiled three times.
#define FASTNN_ISA_PASSES(...)                                   \
  FASTNN_TARGET_BEGIN("arch=x86-64-v4")                          \
  namespace isa_avx512 {                                         \
  __VA_ARGS__                                                    \
  }                                                              \
  FASTNN_TARGET_END                                              \
  FASTNN_TARGET_BEGIN("arch=x86-64-v3")                          \
  namespace isa_avx2 {                                           \
  __VA_ARGS__                                                    \
  }                                                              \
  FASTNN_TARGET_END                                              \
  namespace isa_baseline {                                       \
  __VA_ARGS__                                                    \
  }
#define FASTNN_SIMD_CALL(fn, ...)                                                           \
  (::fastnn::active_isa() == ::fastnn::Isa::avx2     ? isa_avx2::fn(__VA_ARGS__)            \
   : ::fastnn::active_isa() == ::fastnn::Isa::avx512 ? isa_avx512::fn(__VA_ARGS__)          \
                                                     : isa_baseline::fn(__VA_ARGS__))
#else
#define FASTNN_X86_CLONES 0
#define FASTNN_ISA_PASSES(...) \
  namespace isa_baseline {     \
  __VA_ARGS__                  \
  }
#define FASTNN_SIMD_CALL(fn, ...) isa_baseline::fn(__VA_ARGS__)
#endif
