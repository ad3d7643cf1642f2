// Private: the CBLAS names of the BLAS we link. scipy-openblas32 prefixes every symbol with
// `scipy_`; a system OpenBLAS does not.
#pragma once

#include <cblas.h>

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
