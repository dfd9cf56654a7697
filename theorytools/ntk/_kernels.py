"""Numba cores for the analytic kernel recursions (float64, C-contiguous, in place).

Each core maps the pre-activation covariance ``nngp`` (entries Σ(x_i, x'_j)) to the
post-activation covariance E[σ(u)σ(v)] and multiplies the incoming NTK by E[σ'(u)σ'(v)], with
(u, v) ~ N(0, [[q1_i, Σ_ij], [Σ_ij, q2_j]]).  With ``symmetric=True`` (x1 is x2) only the upper
triangle j >= i is computed (the caller mirrors it once at the end: the whole recursion is
entrywise) and the diagonal uses its exact closed form (θ = 0).  Rows are processed in pairs
(p, n−1−p) so that threads get equal shares of the triangle.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

_INV_2PI = 1.0 / (2.0 * math.pi)


@njit(cache=True)
def _abrelu_row(nngp, ntk, var1, var2, i, half, d2, do_ntk, symmetric):
    n2 = nngp.shape[1]
    q1 = var1[i]
    j0 = i if symmetric else 0
    for j in range(j0, n2):
        s = nngp[i, j]
        if symmetric and i == j:
            e = half * s
            lin = half
        else:
            det = q1 * var2[j] - s * s
            if det < 0.0:
                det = 0.0
            sq = math.sqrt(det)
            lin = half - d2 * math.atan2(sq, s)
            e = d2 * sq + lin * s
        nngp[i, j] = e
        if do_ntk:
            ntk[i, j] *= lin


@njit(cache=True, parallel=True)
def abrelu_inplace(
    nngp: np.ndarray,
    ntk: np.ndarray,
    var1: np.ndarray,
    var2: np.ndarray,
    a: float,
    b: float,
    do_ntk: bool,
    symmetric: bool,
) -> None:
    """σ(x) = a·min(x, 0) + b·max(x, 0) (Cho & Saul 2009 arc-cosine kernel of degree 1).

    E[σσ] = ((a−b)²/2π)·√(q1q2 − Σ²) + [(a²+b²)/2 − ((a−b)²/2π)·θ]·Σ,
    E[σ'σ'] = (a²+b²)/2 − ((a−b)²/2π)·θ,  θ = arctan2(√(q1q2 − Σ²), Σ).
    """
    n1 = nngp.shape[0]
    half = 0.5 * (a * a + b * b)
    d2 = (a - b) * (a - b) * _INV_2PI
    for p in prange((n1 + 1) // 2):
        _abrelu_row(nngp, ntk, var1, var2, p, half, d2, do_ntk, symmetric)
        if n1 - 1 - p != p:
            _abrelu_row(nngp, ntk, var1, var2, n1 - 1 - p, half, d2, do_ntk, symmetric)


@njit(cache=True)
def _erf_row(nngp, ntk, var1, var2, i, do_ntk, symmetric):
    n2 = nngp.shape[1]
    two_pi = 2.0 / math.pi
    four_pi = 4.0 / math.pi
    a1 = 1.0 + 2.0 * var1[i]
    j0 = i if symmetric else 0
    for j in range(j0, n2):
        s = nngp[i, j]
        prod = a1 * (1.0 + 2.0 * var2[j])
        r = 2.0 * s / math.sqrt(prod)
        if r > 1.0:
            r = 1.0
        elif r < -1.0:
            r = -1.0
        den = prod - 4.0 * s * s
        if den < 1e-300:
            den = 1e-300
        nngp[i, j] = two_pi * math.asin(r)
        if do_ntk:
            ntk[i, j] *= four_pi / math.sqrt(den)


@njit(cache=True, parallel=True)
def erf_inplace(
    nngp: np.ndarray,
    ntk: np.ndarray,
    var1: np.ndarray,
    var2: np.ndarray,
    do_ntk: bool,
    symmetric: bool,
) -> None:
    """σ = erf (Williams 1997): E[σσ] = (2/π)·arcsin(2Σ/√((1+2q1)(1+2q2))),
    E[σ'σ'] = (4/π)/√((1+2q1)(1+2q2) − 4Σ²)."""
    n1 = nngp.shape[0]
    for p in prange((n1 + 1) // 2):
        _erf_row(nngp, ntk, var1, var2, p, do_ntk, symmetric)
        if n1 - 1 - p != p:
            _erf_row(nngp, ntk, var1, var2, n1 - 1 - p, do_ntk, symmetric)


@njit(cache=True, parallel=True)
def affine_inplace(
    nngp: np.ndarray,
    ntk: np.ndarray,
    w2: float,
    b2: float,
    c_e: float,
    c_0: float,
    do_ntk: bool,
    symmetric: bool,
) -> None:
    """Dense layer on the kernels: Θ ← w2·Θ + c_e·E + c_0, then Σ ← w2·E + b2 (E = incoming nngp).

    NTK parameterisation: c_e = w2, c_0 = b2 (Θ_out = W²Θ + Σ_out); standard: c_e = N_in,
    c_0 = 1 if the layer has a bias else 0."""
    n1, n2 = nngp.shape
    for i in prange(n1):
        j0 = i if symmetric else 0
        for j in range(j0, n2):
            e = nngp[i, j]
            if do_ntk:
                ntk[i, j] = w2 * ntk[i, j] + c_e * e + c_0
            nngp[i, j] = w2 * e + b2


@njit(cache=True, parallel=True)
def mirror_upper(m: np.ndarray) -> None:
    """Copy the strict upper triangle of a square matrix onto its lower triangle."""
    n = m.shape[0]
    for i in prange(n):
        for j in range(i):
            m[i, j] = m[j, i]
