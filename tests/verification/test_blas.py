"""The BLAS thread guard (verification/_blas.py): scipy's private OpenBLAS runs one thread inside the block,
numpy's keeps its count, and everything is restored afterwards."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg  # noqa: F401  (loads scipy's BLAS)

threadpoolctl = pytest.importorskip("threadpoolctl")

from verification._blas import _private_blas_paths, scipy_blas_single_thread  # noqa: E402


def _threads() -> dict[str, int]:
    return {i["filepath"]: i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"}


def test_guard_limits_only_the_other_blas_and_restores():
    before = _threads()
    private = set(_private_blas_paths())
    with scipy_blas_single_thread():
        inside = _threads()
        a = np.random.default_rng(0).standard_normal((200, 200))
        scipy.linalg.cholesky(a @ a.T + 200 * np.eye(200))  # still computes
    assert _threads() == before
    for path, n in inside.items():
        assert n == (1 if path in private else before[path])
    if len(before) < 2:
        assert private == set()  # one shared BLAS: nothing to separate


@pytest.mark.parametrize("upper", [True, False])
def test_cholesky_in_place_matches_numpy_and_reports_indefinite(upper):
    """LAPACK dpotrf on numpy's own BLAS (ctypes) or scipy's: the factor numpy computes, in place; an indefinite
    matrix gives info > 0; a C-ordered array is refused rather than silently factorised transposed."""
    from verification._blas import cholesky_inplace

    rng = np.random.default_rng(3)
    b = rng.standard_normal((300, 300))
    a = b @ b.T + 300 * np.eye(300)
    work = np.asfortranarray(a.copy())
    assert cholesky_inplace(work, upper=upper) == 0
    ref = np.linalg.cholesky(a)
    got = np.triu(work).T if upper else np.tril(work)
    assert np.abs(got - ref).max() <= 1e-12 * np.abs(ref).max()
    bad = np.asfortranarray(a - 2 * np.linalg.eigvalsh(a)[-1] * np.eye(300))
    assert cholesky_inplace(bad, upper=upper) > 0
    with pytest.raises(ValueError, match="Fortran"):
        cholesky_inplace(np.ascontiguousarray(a), upper=upper)


def test_solver_blas_threads_limits_both_pools_and_restores(monkeypatch):
    import scipy.linalg  # noqa: F401  (loads scipy's own BLAS)

    from verification._blas import _blas_libraries, solver_blas_threads

    own, others = _blas_libraries()
    if not own:
        pytest.skip("numpy has no separate BLAS here")  # conda/MKL builds share one BLAS

    def threads():
        return {i["filepath"]: i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"}

    before = threads()
    monkeypatch.delenv("VERIFICATION_BLAS_THREADS", raising=False)
    with solver_blas_threads():
        inside = threads()
    assert all(inside[p] == 1 for p in own + others)
    monkeypatch.setenv("VERIFICATION_BLAS_THREADS", "2")
    with solver_blas_threads():
        inside2 = threads()
    assert all(inside2[p] == min(2, before[p]) or inside2[p] == 2 for p in own) and all(inside2[p] == 1 for p in others)
    assert threads() == before


def test_entry_points_limit_blas_on_large_nets_only(monkeypatch):
    """verify / output_bounds / local_lipschitz run large nets with numpy's BLAS at VERIFICATION_BLAS_THREADS
    (default 1) and leave small nets alone; the results are those of the unwrapped functions."""
    from verification import Dense, Network
    from verification._blas import LIMIT_FROM_WEIGHTS, _blas_libraries, limit_blas_on_large_nets
    from verification.activations import ReLU
    from verification.bounds import interval

    own = _blas_libraries()[0]
    seen = []

    def probe(net, lo, hi, method):
        seen.append({p: n for p, n in _threads().items() if p in own})
        return interval.output_bounds(net, lo, hi, method)

    wrapped = limit_blas_on_large_nets(probe)
    rng = np.random.default_rng(0)
    for width in (8, 300):
        net = Network((Dense(rng.standard_normal((width, width)), np.zeros(width)), ReLU(),
                       Dense(rng.standard_normal((3, width)), np.zeros(3))))
        lo, hi = -np.ones(width), np.ones(width)
        for setting in ("1", "2"):
            monkeypatch.setenv("VERIFICATION_BLAS_THREADS", setting)
            with threadpoolctl.threadpool_limits(2, user_api="blas"):
                out = wrapped(net, lo, hi, "crown")
            ref = interval.output_bounds(net, lo, hi, "crown")
            np.testing.assert_array_equal(out.lower, ref.lower)
            large = width * width + 3 * width >= LIMIT_FROM_WEIGHTS
            if own:
                assert set(seen[-1].values()) == {int(setting) if large else 2}
