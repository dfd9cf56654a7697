"""Numba kernels of the SDP solvers: the Newton (Schur complement) matrix ``tr(C_a X C_b Z)`` over rank-2 atoms."""

from __future__ import annotations

import numpy as np

__all__ = ["lmi_newton_matrix", "schur_selected"]


def _pair_trace(c, a, b, m00, m01, m10, m11, q00, q01, q10, q11) -> float:
    """``tr(C_a M C_b Qᵀ)`` for the 2 x 2 atom coefficients ``c[a], c[b]`` and 2 x 2 blocks ``M``, ``Q``."""
    # N = C_b Qᵀ
    n00 = c[b, 0, 0] * q00 + c[b, 0, 1] * q01
    n01 = c[b, 0, 0] * q10 + c[b, 0, 1] * q11
    n10 = c[b, 1, 0] * q00 + c[b, 1, 1] * q01
    n11 = c[b, 1, 0] * q10 + c[b, 1, 1] * q11
    # R = C_a M ; tr(R N)
    r00 = c[a, 0, 0] * m00 + c[a, 0, 1] * m10
    r01 = c[a, 0, 0] * m01 + c[a, 0, 1] * m11
    r10 = c[a, 1, 0] * m00 + c[a, 1, 1] * m10
    r11 = c[a, 1, 0] * m01 + c[a, 1, 1] * m11
    return r00 * n00 + r01 * n10 + r10 * n01 + r11 * n11


def _lmi_newton_matrix(
    c: np.ndarray,
    x_aa: np.ndarray, x_ab: np.ndarray, x_ba: np.ndarray, x_bb: np.ndarray,
    z_aa: np.ndarray, z_ab: np.ndarray, z_ba: np.ndarray, z_bb: np.ndarray,
) -> np.ndarray:
    """``H[a, b] = tr(C_a X_ab C_b Z_abᵀ)`` with ``X_ab = [[x_aa, x_ab], [x_ba, x_bb]][a, b]`` (2 x 2 per atom pair),
    likewise ``Z``.

    ``c``: (A, 2, 2) atom coefficients; ``x_uv[a, b] = u_aᵀ X v_b`` for the atom vectors ``u, v ∈ {α, β}``.
    With ``X = Z = K⁻¹`` this is the Hessian of ``-log det K`` in the atom multipliers (barrier method); with
    ``X`` the primal iterate and ``Z = S⁻¹`` it is the HKM Schur complement ``tr(C_a X C_b S⁻¹)`` (used by
    :mod:`verification.lipschitz.sdp.block_tridiagonal` and :mod:`verification.lipschitz.sdp.backends.chain_pd`)."""
    n = c.shape[0]
    h = np.empty((n, n))
    for a in range(n):
        for b in range(n):
            h[a, b] = _pair_trace(c, a, b, x_aa[a, b], x_ab[a, b], x_ba[a, b], x_bb[a, b],
                                  z_aa[a, b], z_ab[a, b], z_ba[a, b], z_bb[a, b])
    return h


def _schur_selected(
    c: np.ndarray, var: np.ndarray, bidx: np.ndarray, bval: np.ndarray, m_vars: int,
    tx: np.ndarray, px: np.ndarray, x: np.ndarray, tz: np.ndarray, pz: np.ndarray, z: np.ndarray, out: np.ndarray,
) -> np.ndarray:
    """Lower triangle of ``H_vw = Σ_{a of v, b of w} tr(C_a X C_b Z)`` for atoms whose second vector is a scaled
    unit vector ``β_a = bval[a]·e_{bidx[a]}`` (``bidx[a] = -1``: no second vector).

    ``tx = αᵀX`` (atoms x n), ``px = αᵀXα`` (atoms x atoms), ``x`` = X itself; likewise for Z.  The cross terms
    ``αᵀXβ`` are gathered from ``tx`` and ``βᵀXβ`` from ``x``.  ``X`` and ``Z`` symmetric; the atom pairs are
    visited in 64 x 64 tiles (the transposed gathers stay in cache).  Written into ``out`` (``m_vars x m_vars``, a
    reused work array); entries above the diagonal are zero."""
    n_a = c.shape[0]
    out[:, :] = 0.0
    tile = 64
    for a0 in range(0, n_a, tile):
        for b0 in range(0, a0 + 1, tile):
            for a in range(a0, min(a0 + tile, n_a)):
                ia = bidx[a]
                va = bval[a]
                for b in range(b0, min(b0 + tile, a + 1)):
                    ib = bidx[b]
                    vb = bval[b]
                    m01 = m10 = m11 = q01 = q10 = q11 = 0.0
                    if ib >= 0:
                        m01 = tx[a, ib] * vb
                        q01 = tz[a, ib] * vb
                    if ia >= 0:
                        m10 = tx[b, ia] * va
                        q10 = tz[b, ia] * va
                        if ib >= 0:
                            m11 = x[ia, ib] * va * vb
                            q11 = z[ia, ib] * va * vb
                    h = _pair_trace(c, a, b, px[a, b], m01, m10, m11, pz[a, b], q01, q10, q11)
                    v = var[a]
                    w = var[b]
                    if v == w:
                        out[v, v] += h if a == b else 2.0 * h
                    elif v > w:
                        out[v, w] += h
                    else:
                        out[w, v] += h
    return out


_COMPILED: dict = {}


def _kernels() -> dict:
    """The kernels compiled with ``numba.njit(cache=True)`` on first use (numba takes about 0.4 s to import and
    only the interior-point backend needs these)."""
    if not _COMPILED:
        from numba import njit

        global _pair_trace
        _pair_trace = njit(cache=True, inline="always")(_pair_trace)  # called by both kernels: compiled first
        _COMPILED["lmi_newton_matrix"] = njit(cache=True)(_lmi_newton_matrix)
        _COMPILED["schur_selected"] = njit(cache=True)(_schur_selected)
    return _COMPILED


def lmi_newton_matrix(*args):
    """See :func:`_lmi_newton_matrix`."""
    return _kernels()["lmi_newton_matrix"](*args)


def schur_selected(*args):
    """See :func:`_schur_selected`."""
    return _kernels()["schur_selected"](*args)
