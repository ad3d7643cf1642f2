# CMake toolchain file: cross-compile fastnn for 64-bit Arm Linux with Debian's cross GCC
# (apt-get install g++-aarch64-linux-gnu; for running the result: qemu-user).
#
#   cmake -S . -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
#         -DFASTNN_SCIPY_OPENBLAS_DIR=<unpacked aarch64 scipy-openblas32 wheel>/scipy_openblas32
#   qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu neoverse-n1 build/aarch64/fastnn_kernel_tests
#
# The BLAS is the scipy-openblas32 manylinux aarch64 wheel, unpacked (pip download --only-binary=:all:
# --platform manylinux_2_28_aarch64 scipy-openblas32), named by FASTNN_SCIPY_OPENBLAS_DIR because
# the build machine's Python cannot import it. tests/test_portability.py does all of this.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(_fastnn_triple aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${_fastnn_triple}-gcc)
set(CMAKE_CXX_COMPILER ${_fastnn_triple}-g++)

# Libraries and headers from the cross sysroot only; programs (cmake's helpers) from the host.
# Packages from both: the wheel's OpenBLASConfig.cmake lies outside the sysroot.
set(CMAKE_FIND_ROOT_PATH /usr/${_fastnn_triple})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# ctest (and CMake's try_run) run target programs through qemu-user with the cross sysroot's loader.
# QEMU's default CPU model ("max") has SME, where OpenBLAS picks its armv9sme kernels, which fail
# fastnn's GEMM checks: run ctest with QEMU_CPU=neoverse-n1 (or another model), or with
# OPENBLAS_CORETYPE=ARMV8SVE, the kernel set `import fastnn` pins on such CPUs.
find_program(_fastnn_qemu qemu-${CMAKE_SYSTEM_PROCESSOR})
if(_fastnn_qemu)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${_fastnn_qemu} -L /usr/${_fastnn_triple})
endif()
