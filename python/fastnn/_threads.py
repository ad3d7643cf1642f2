"""Thread control shared by fastnn's kernels and its BLAS."""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Iterator

from fastnn import _core


def get_num_threads() -> int:
    """Number of threads fastnn's kernels and its BLAS use.

    The initial value is ``FASTNN_NUM_THREADS`` or ``OMP_NUM_THREADS`` when set, else the number
    of cores available to the process.
    """
    return int(_core.get_num_threads())


def available_cpus() -> int:
    """CPUs this process may use: its CPU affinity mask, capped by its cgroup's CPU quota (a
    container limited to 2 CPUs on a 64-core host gets 2). The default thread count."""
    return int(_core.hardware_threads())


def set_num_threads(n: int) -> None:
    """Set the number of threads for fastnn's kernels and its BLAS together.

    Parameters
    ----------
    n : int
        Threads to use, >= 1. Results do not depend on it: every fastnn kernel gives bitwise
        identical output for any thread count.

    Raises
    ------
    TypeError
        If ``n`` is not an integer.
    ValueError
        If ``n < 1``.
    """
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"set_num_threads: n must be an integer, got {type(n).__name__}") from None
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    _core.set_num_threads(n)


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Context manager that runs its body with ``n`` threads, then restores the previous count."""
    previous = get_num_threads()
    set_num_threads(n)
    try:
        yield
    finally:
        set_num_threads(previous)
