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

#if defined(__GNUC__) || defined(__clang__)
#define FASTNN_INLINE inline __attribute__((always_inline))
#define FASTNN_RESTRICT __restrict__
#else
#define FASTNN_INLINE inline
#define FASTNN_RESTRICT
#endif

}  // namespace fastnn
