// fastnn/stats.h — reductions over buffers for data checks and training monitors.
//
//   first_nonfinite: index of the first NaN or infinity in x (n values), or -1. Split over
//   threads in fixed chunks; the smallest index wins, so the answer does not depend on them.
#pragma once

#include "fastnn/common.h"

namespace fastnn {

template <class T>
index_t first_nonfinite(const T* x, index_t n);

namespace ref {
template <class T>
index_t first_nonfinite(const T* x, index_t n);
}  // namespace ref

}  // namespace fastnn
