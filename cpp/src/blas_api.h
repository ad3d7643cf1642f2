// Private: the CBLAS names of the BLAS we link. scipy-openblas32 prefixes every symbol with
// `scipy_`; a system OpenBLAS does not.
#pragma once

#include <cblas.h>

#include <cstddef>
#include <type_traits>

#if defined(FASTNN_BLAS_SCIPY_OPENBLAS)
#define FASTNN_CBLAS(name) scipy_cblas_##name
#define FASTNN_BLAS_FN(name) scipy_openblas_##name
#define FASTNN_HAVE_BLAS_THREADS 1
#define FASTNN_HAVE_BLAS_CALLBACK 1
#else
#define FASTNN_CBLAS(name) cblas_##name
#define FASTNN_BLAS_FN(name) openblas_##name
#if defined(FASTNN_BLAS_OPENBLAS)
#define FASTNN_HAVE_BLAS_THREADS 1
#endif
#if defined(FASTNN_BLAS_OPENBLAS_CALLBACK)
#define FASTNN_HAVE_BLAS_CALLBACK 1
#endif
#endif

#if defined(FASTNN_HAVE_BLAS_CALLBACK)
namespace fastnn::blas_api {

// OpenBLAS's threads-callback types (OpenBLAS >= 0.3.28), declared here because cblas.h names them
// differently from release to release: scipy-openblas32 0.3.28-0.3.33 call them
// scipy_openblas_dojob_callback / scipy_openblas_threads_callback, 0.3.34 and a system OpenBLAS
// openblas_dojob_callback / openblas_threads_callback. The signatures are the same in all of them;
// the static_assert checks that against the cblas.h being compiled with.
using dojob_fn = void (*)(int thread_num, void* jobdata, int dojob_data);
using threads_callback_fn = void (*)(int sync, dojob_fn dojob, int numjobs, std::size_t jobdata_elsize,
                                     void* jobdata, int dojob_data);
using set_threads_callback_fn = void (*)(threads_callback_fn callback);
static_assert(std::is_same_v<decltype(&FASTNN_BLAS_FN(set_threads_callback_function)), set_threads_callback_fn>,
              "OpenBLAS's set_threads_callback_function has a signature fastnn does not know");

// The exported names of the setter, tried in this order. Not linked by name: the scipy-openblas32
// 0.3.28-0.3.30 wheels export it as openblas_set_threads_callback_function although their cblas.h
// declares scipy_openblas_set_threads_callback_function (0.3.31 and later export that), and the
// wheel installed at run time need not be the one fastnn was built against (both are ">= 0.3.28").
constexpr const char* kSetThreadsCallbackNames[] = {
#if defined(FASTNN_BLAS_SCIPY_OPENBLAS)
    "scipy_openblas_set_threads_callback_function",
#endif
    "openblas_set_threads_callback_function",
};

}  // namespace fastnn::blas_api
#endif
