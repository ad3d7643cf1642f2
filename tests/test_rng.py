"""Philox4x32-10: known-answer vectors, an independent NumPy implementation, and the properties
dropout relies on (thread-count independence, random access, keep rate)."""

from __future__ import annotations

import fastnn
import numpy as np
from conftest import many_threads
from fastnn import _core
from registry import philox_np


def test_known_answer_vectors():
    # Random123's kat_vectors for philox4x32_10: (counter, key) -> output
    kat = [
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
         (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
    ]
    for ctr, key, want in kat:
        assert tuple(_core.philox4x32_10(ctr, key)) == want
    # fastnn's counter is (block lo, block hi, stream lo, stream hi) and its key (seed lo, seed hi)
    assert tuple(_core.philox_uint32(4, 0, 0)) == kat[0][2]


def test_matches_independent_numpy_implementation():
    for seed, stream, first, n in [(0, 0, 0, 64), (123, 7, 5, 1001), (2**63 + 5, 2**40 + 3, 99, 4097)]:
        np.testing.assert_array_equal(_core.philox_uint32(n, seed, stream, first),
                                      philox_np(n, seed, stream, first))


def test_random_access_and_thread_independence():
    whole = _core.philox_uint32(100000, 42, 3)
    np.testing.assert_array_equal(whole[777:5000], _core.philox_uint32(5000 - 777, 42, 3, first=777))
    for n in many_threads():
        fastnn.set_num_threads(n)
        np.testing.assert_array_equal(whole, _core.philox_uint32(100000, 42, 3))


def test_uniformity_and_keep_rate():
    bits = _core.philox_uint32(1 << 20, 9, 1).astype(np.float64) / 2**32
    hist, _ = np.histogram(bits, bins=64, range=(0, 1))
    expected = len(bits) / 64
    chi2 = ((hist - expected) ** 2 / expected).sum()
    assert chi2 < 120  # 63 degrees of freedom: p ~ 1e-5 at 120
    x = np.ones(1 << 20, np.float32)
    for p in (0.1, 0.5, 0.9):
        _, mask = _core.dropout_forward(x, p, 5, 0)
        assert abs(mask.mean() - p) < 0.003
    _, m1 = _core.dropout_forward(x, 0.5, 5, 0)
    _, m2 = _core.dropout_forward(x, 0.5, 5, 1)
    assert 0.45 < (m1 == m2).mean() < 0.55  # different streams are independent
