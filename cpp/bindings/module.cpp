// fastnn._core: the extension module. Only cpp/bindings/ includes pybind11.
#include <pybind11/pybind11.h>

#include "fastnn/common.h"
#include "fastnn/gemm.h"
#include "fastnn/isa.h"
#include "fastnn/threads.h"

namespace py = pybind11;

namespace fastnn::bind {
void bind_kernels(py::module_& m);
void bind_net(py::module_& m);
void bind_preprocess(py::module_& m);
}

PYBIND11_MODULE(_core, m) {
  m.doc() = "fastnn's C++ kernels (float32 and float64). Use fastnn / fastnn.functional instead.";
  m.def("get_num_threads", &fastnn::get_num_threads,
        "Threads used by the kernels and by BLAS.");
  m.def(
      "set_num_threads",
      [](int n) {
        if (n < 1) throw py::value_error("set_num_threads: n must be >= 1, got " + std::to_string(n));
        fastnn::set_num_threads(n);
      },
      py::arg("n"), "Set the threads used by the kernels and by BLAS (>= 1).");
  m.def("hardware_threads", &fastnn::hardware_threads, "Logical cores available to this process.");
  m.def("cgroup_cpu_limit", &fastnn::cgroup_cpu_limit, "CPU quota of this process's cgroup in CPUs (0: none).");
  m.def("cgroup_cpu_limit_at", &fastnn::cgroup_cpu_limit_at, py::arg("proc_self_cgroup"), py::arg("root"),
        "cgroup_cpu_limit reading another /proc/self/cgroup file and /sys/fs/cgroup tree (for tests).");
  m.def("machine_cpus", &fastnn::machine_cpus, "Logical CPUs the machine has, whatever this process may use.");
  m.def("effective_threads", &fastnn::effective_threads,
        "Threads the next parallel call from this thread may use (set_num_threads, capped by OpenMP's "
        "limit, which threadpoolctl sets).");
  m.def("pool_workers", &fastnn::detail::pool_workers, "Worker threads fastnn's pool has started.");
  m.def("spin_micros", &fastnn::detail::spin_micros, "Microseconds an idle pool worker spins before it sleeps.");
  m.def("blas_info", &fastnn::blas_info, "The BLAS fastnn's GEMMs run on.");
  m.def("blas_corename", &fastnn::blas_corename,
        "The CPU kernel set OpenBLAS chose at load time ('' for another BLAS).");
  m.def("gemm_threading", &fastnn::gemm_threading_name,
        "How GEMMs use threads: 'tiles' (default, reproducible), 'callback' or 'openblas' "
        "(set with FASTNN_GEMM_THREADING before import).");
  m.def("gemm_tiles", &fastnn::gemm_tiles, py::arg("M"), py::arg("N"), py::arg("K"),
        "Slabs a GEMM of this shape is cut into under the 'tiles' policy.");
  // A FASTNN_SIMD naming a level this CPU cannot run fails the import with the reason (an
  // ImportError carrying check_simd()'s message) instead of a SIGILL in the first kernel.
  try {
    fastnn::check_simd();
  } catch (const std::invalid_argument& e) {
    throw py::import_error(std::string("fastnn: ") + e.what());
  }
  m.def("simd_level", &fastnn::simd_level, "The SIMD clone the kernels run: 'avx512', 'avx2', 'baseline' (x86-64) or 'neon'.");
  m.def("simd_supported", &fastnn::simd_supported, "Comma-separated SIMD clones this CPU runs, best first.");
  m.def(
      "set_simd",
      [](const std::string& name) {
        try {
          fastnn::set_simd(name.c_str());
        } catch (const std::invalid_argument& e) {
          throw py::value_error(std::string("set_simd: ") + e.what());
        }
      },
      py::arg("name"), "Run the kernels with this SIMD clone from now on ('auto' = the best).");
  m.def(
      "simd_probe", [] { return std::string(fastnn::isa_name(fastnn::simd_probe())); },
      "The clone a dispatched call actually executes (a leaf compiled in every clone reports its own).");
  m.def("measure_clock_ghz", &fastnn::measure_clock_ghz,
        "Core clock in GHz from a dependent-add loop (for peak-FLOP/s estimates).");
#if defined(FASTNN_OPENMP)
  m.attr("openmp") = true;
#else
  m.attr("openmp") = false;
#endif
  fastnn::bind::bind_kernels(m);
  fastnn::bind::bind_net(m);
  fastnn::bind::bind_preprocess(m);
}
