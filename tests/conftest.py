"""Shared test settings: tests run with one thread unless they ask for more (a shared 2-core
machine makes multi-threaded BLAS timings and spin-waits erratic); thread-count tests set their
own counts and restore this one."""

from __future__ import annotations

import os

import fastnn
import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _one_thread():
    fastnn.set_num_threads(1)
    yield
    fastnn.set_num_threads(1)


SIMD_LEVELS = fastnn.supported_simd()


@pytest.fixture(params=SIMD_LEVELS)
def simd(request):
    """Run the test once under every SIMD clone this CPU can execute (the ISA override)."""
    previous = fastnn.set_simd(request.param)
    yield request.param
    fastnn.set_simd(previous)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def many_threads() -> list[int]:
    """Thread counts to compare against one thread: 2, 3 (uneven splits) and all cores."""
    counts = {2, 3, max(2, os.cpu_count() or 2)}
    return sorted(counts)
