"""Thread counts of the numba NTK kernels (theorytools/_threads.py): one thread for small work or a busy
machine, the override honoured, the previous count restored, and kernels equal bit for bit at any count."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from theorytools import _threads, ntk


def test_choice(monkeypatch):
    cores = int(numba.config.NUMBA_NUM_THREADS)
    monkeypatch.delenv(_threads.THREADS_ENV, raising=False)
    assert _threads.kernel_threads(10) == 1
    monkeypatch.setattr(_threads.os, "getloadavg", lambda: (0.2, 0.2, 0.2))
    assert _threads.kernel_threads(_threads.PARALLEL_WORK) == cores
    monkeypatch.setattr(_threads.os, "getloadavg", lambda: (cores + 0.5, 1.0, 1.0))
    assert _threads.kernel_threads(_threads.PARALLEL_WORK) == cores  # one other job
    monkeypatch.setattr(_threads.os, "getloadavg", lambda: (10.0 * cores, 1.0, 1.0))
    assert _threads.kernel_threads(_threads.PARALLEL_WORK) == 1
    monkeypatch.setenv(_threads.THREADS_ENV, "64")
    assert _threads.kernel_threads(10) == cores
    monkeypatch.setenv(_threads.THREADS_ENV, "not a number")
    assert _threads.kernel_threads(10) == 1


@pytest.mark.parametrize("images", [False, True])
def test_kernels_equal_at_any_thread_count(monkeypatch, images):
    rng = np.random.default_rng(0)
    if images:
        x = rng.standard_normal((3, 1, 6, 6))
        net = ntk.serial(ntk.Conv(filter_shape=(3, 3), padding="SAME", W_std=1.4, b_std=0.1), ntk.Relu(),
                         ntk.GlobalAvgPool(), ntk.Dense(1))
    else:
        x = rng.standard_normal((40, 7))
        net = ntk.serial(ntk.Dense(64, W_std=1.5, b_std=0.05), ntk.Relu(), ntk.Dense(1, W_std=1.5))
    before = numba.get_num_threads()
    out = {}
    for n in ("1", str(numba.config.NUMBA_NUM_THREADS)):
        monkeypatch.setenv(_threads.THREADS_ENV, n)
        k = net(x)
        out[n] = (k.nngp, k.ntk)
        assert numba.get_num_threads() == before
    (a, b), (c, d) = out.values()
    np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(b, d)
