// fastnn/common.h — types and macros shared by every kernel family.
//
// Conventions (see DESIGN.md):
//   * kernels take raw pointers + sizes, outputs first, then inputs, then sizes;
//   * they allocate nothing and know nothing of Python;
//   * they are templates instantiated for float and double;
//   * a backward kernel *writes* its outputs unless its `accumulate` argument is true, in which
//     case it adds into them (the llm.c convention, for shared parameters or gradient accumulation);
//   * every family keeps a plain scalar reference in namespace fastnn::ref, used by the tests.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fastnn {

using index_t = std::int64_t;

// Run-time ISA dispatch for hot elementwise loops: GCC/Clang compile the function once per target
// and pick the best one for the CPU at load time (ifunc). A FASTNN_NATIVE build compiles everything
// for -march=native instead; sanitizer builds keep one version so reports point at one body.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(FASTNN_NATIVE) && \
    !defined(FASTNN_SANITIZE)
#define FASTNN_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FASTNN_CLONES
#endif

#if defined(__GNUC__) || defined(__clang__)
#define FASTNN_INLINE inline __attribute__((always_inline))
#define FASTNN_RESTRICT __restrict__
#else
#define FASTNN_INLINE inline
#define FASTNN_RESTRICT
#endif

// Which ISA the dispatched kernels run with on this CPU: "avx512", "avx2" or "baseline".
const char* simd_level();

}  // namespace fastnn
