"""Numba cores for the analytic kernel recursions (float64, C-contiguous, in place).

Each core maps the pre-activation covariance ``nngp`` (entries Σ(x_i, x'_j)) to the
post-activation covariance E[σ(u)σ(v)] and multiplies the incoming NTK by E[σ'(u)σ'(v)], with
(u, v) ~ N(0, [[q1_i, Σ_ij], [Σ_ij, q2_j]]).  With ``symmetric=True`` (x1 is x2) only the upper
triangle j >= i is computed (the caller mirrors it once at the end: the whole recursion is
entrywise).  Rows are processed in pairs (p, n−1−p) so that threads get equal shares of the triangle.

Round-off consistency (what makes identical inputs exact on every CPU and BLAS):

* The input Gram entries and the input variances come from ONE routine (:func:`gram`, a dot product
  with a fixed summation order that does not depend on the position of the rows), never from BLAS:
  BLAS kernels round differently for different shapes and positions, so x·x from a GEMM need not
  equal ||x||² from another routine, and the arc-cosine kernels have a square-root singularity at
  correlation 1 (an error δ in Σ gives an angle ~√(2δ) ~ 1e−8).
* Every activation maps the variances with the same scalar function as the cross terms
  (``*_diag`` below call ``_*_pair`` with Σ = q1 = q2), so identical inputs stay bit-identical
  layer after layer, and Σ(x, x) = q exactly.
* The correlation is c = Σ/√(q1q2) clipped to [−1, 1]; √(fl(q·q)) = q in binary floating point, so
  identical inputs give c = 1 and opposite inputs c = −1 exactly; the angle functions are written
  so that they are exact at c = ±1 (sin θ = √((1−c)(1+c)), π − θ = atan2(sin θ, −c)).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

_INV_2PI = 1.0 / (2.0 * math.pi)


# ----------------------------------------------------------------------------- Gram entries


@njit(cache=True)
def _dot(x, i, y, j):
    """x[i]·y[j] with four interleaved partial sums combined in a fixed order: the result depends only
    on the two rows (not on their positions, the matrix shapes or the CPU's BLAS kernel), and
    x[i]·(−x[i]) = −(x[i]·x[i]) exactly."""
    xi = x[i]
    yj = y[j]
    d = xi.shape[0]
    d4 = d - d % 4
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    for k in range(0, d4, 4):
        s0 += xi[k] * yj[k]
        s1 += xi[k + 1] * yj[k + 1]
        s2 += xi[k + 2] * yj[k + 2]
        s3 += xi[k + 3] * yj[k + 3]
    for k in range(d4, d):
        s0 += xi[k] * yj[k]
    return (s0 + s1) + (s2 + s3)


@njit(cache=True)
def _gram_row(x1, x2, out, i, d, symmetric):
    j0 = i if symmetric else 0
    for j in range(j0, x2.shape[0]):
        out[i, j] = _dot(x1, i, x2, j) / d


@njit(cache=True, parallel=True)
def gram(x1: np.ndarray, x2: np.ndarray, symmetric: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Input covariances x·x'/d: (n1, n2) cross terms and the (n1,), (n2,) variances, all from
    :func:`_dot` (so identical rows give cross term = variance bit for bit).  ``symmetric``: x2 is
    x1; the whole matrix is filled (upper triangle computed, then mirrored)."""
    n1 = x1.shape[0]
    n2 = x2.shape[0]
    d = float(x1.shape[1])
    out = np.empty((n1, n2))
    var1 = np.empty(n1)
    var2 = np.empty(n2)
    for i in prange(n1):
        var1[i] = _dot(x1, i, x1, i) / d
    if not symmetric:
        for j in prange(n2):
            var2[j] = _dot(x2, j, x2, j) / d
    for p in prange((n1 + 1) // 2):
        _gram_row(x1, x2, out, p, d, symmetric)
        if n1 - 1 - p != p:
            _gram_row(x1, x2, out, n1 - 1 - p, d, symmetric)
    if symmetric:
        for i in prange(n1):
            for j in range(i):
                out[i, j] = out[j, i]
        var2[:] = var1
    return out, var1, var2


@njit(cache=True)
def _sq_combo(x, i, y, j, sign):
    """||x[i] + sign·y[j]||² with the summation order of :func:`_dot`."""
    xi = x[i]
    yj = y[j]
    d = xi.shape[0]
    d4 = d - d % 4
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    for k in range(0, d4, 4):
        t0 = xi[k] + sign * yj[k]
        t1 = xi[k + 1] + sign * yj[k + 1]
        t2 = xi[k + 2] + sign * yj[k + 2]
        t3 = xi[k + 3] + sign * yj[k + 3]
        s0 += t0 * t0
        s1 += t1 * t1
        s2 += t2 * t2
        s3 += t3 * t3
    for k in range(d4, d):
        t0 = xi[k] + sign * yj[k]
        s0 += t0 * t0
    return (s0 + s1) + (s2 + s3)


@njit(cache=True, parallel=True)
def unit_cosines(x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """ρ = x·z for unit rows, clipped to [−1, 1], with 1 − ρ = ||x − z||²/2 where ρ > 1/2 and
    1 + ρ = ||x + z||²/2 where ρ < −1/2: exact (ρ = ±1) for identical and opposite rows, and accurate
    for close pairs, whose 1 ∓ ρ a dot product would only give to ~1e−16 absolute."""
    n1 = x1.shape[0]
    n2 = x2.shape[0]
    out = np.empty((n1, n2))
    for i in prange(n1):
        for j in range(n2):
            r = _dot(x1, i, x2, j)
            if r > 0.5:
                r = 1.0 - 0.5 * _sq_combo(x1, i, x2, j, -1.0)
            elif r < -0.5:
                r = 0.5 * _sq_combo(x1, i, x2, j, 1.0) - 1.0
            if r > 1.0:
                r = 1.0
            elif r < -1.0:
                r = -1.0
            out[i, j] = r
    return out


# ----------------------------------------------------------------------------- activations


@njit(cache=True)
def _abrelu_pair(q1, q2, s, half, ab, d2):
    """(E[σ(u)σ(v)], E[σ'(u)σ'(v)]) for σ = a·min(x, 0) + b·max(x, 0); half = (a²+b²)/2, ab = a·b,
    d2 = (a−b)²/(2π).  With c = cos θ, φ = π − θ = atan2(sin θ, −c) and w = φ/π ∈ [0, 1]:
    E[σ'σ'] = half·w + ab·(1 − w)  (= half − d2·θ),  E[σσ] = d2·√(q1q2)·sin θ + E[σ'σ']·Σ.
    Exact at the ends: c = 1 gives (half·Σ, half), c = −1 gives (ab·Σ, ab)."""
    qq = math.sqrt(q1 * q2)
    if qq > 0.0:
        c = s / qq
        if c > 1.0:
            c = 1.0
        elif c < -1.0:
            c = -1.0
    else:  # a zero variance (zero input, no bias): Σ = 0 and the angle is immaterial
        c = 1.0
    sn = math.sqrt((1.0 - c) * (1.0 + c))
    w = math.atan2(sn, -c) / math.pi
    lin = half * w + ab * (1.0 - w)
    return d2 * qq * sn + lin * s, lin


@njit(cache=True)
def _abrelu_row(nngp, ntk, var1, var2, i, half, ab, d2, do_ntk, symmetric):
    n2 = nngp.shape[1]
    q1 = var1[i]
    j0 = i if symmetric else 0
    for j in range(j0, n2):
        e, lin = _abrelu_pair(q1, var2[j], nngp[i, j], half, ab, d2)
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

    E[σσ] = ((a−b)²/2π)·√(q1q2)·sin θ + [(a²+b²)/2 − ((a−b)²/2π)·θ]·Σ,
    E[σ'σ'] = (a²+b²)/2 − ((a−b)²/2π)·θ,  cos θ = Σ/√(q1q2)  (see :func:`_abrelu_pair`).
    """
    n1 = nngp.shape[0]
    half = 0.5 * (a * a + b * b)
    ab = a * b
    d2 = (a - b) * (a - b) * _INV_2PI
    for p in prange((n1 + 1) // 2):
        _abrelu_row(nngp, ntk, var1, var2, p, half, ab, d2, do_ntk, symmetric)
        if n1 - 1 - p != p:
            _abrelu_row(nngp, ntk, var1, var2, n1 - 1 - p, half, ab, d2, do_ntk, symmetric)


@njit(cache=True)
def abrelu_diag(var: np.ndarray, a: float, b: float) -> np.ndarray:
    """Post-activation variances E[σ(u)²], by the same function as the cross terms (Σ = q1 = q2)."""
    half = 0.5 * (a * a + b * b)
    ab = a * b
    d2 = (a - b) * (a - b) * _INV_2PI
    out = np.empty_like(var)
    for i in range(var.shape[0]):
        out[i] = _abrelu_pair(var[i], var[i], var[i], half, ab, d2)[0]
    return out


@njit(cache=True)
def _erf_pair(q1, q2, s):
    """(E[erf(u)erf(v)], E[erf'(u)erf'(v)]) (Williams 1997)."""
    prod = (1.0 + 2.0 * q1) * (1.0 + 2.0 * q2)
    r = 2.0 * s / math.sqrt(prod)
    if r > 1.0:
        r = 1.0
    elif r < -1.0:
        r = -1.0
    den = prod - 4.0 * s * s
    if den < 1e-300:
        den = 1e-300
    return (2.0 / math.pi) * math.asin(r), (4.0 / math.pi) / math.sqrt(den)


@njit(cache=True)
def _gelu_pair(q1, q2, s):
    """(E[g(u)g(v)], E[g'(u)g'(v)]) for g(x) = x·Φ(x) (exact GELU), (u, v) ~ N(0, [[q1, s], [s, q2]]).

    Ours, by Gaussian integration by parts (x·Φ(x) = E_g[x·1(g <= x)], g ~ N(0, 1) independent): with
    D = (1+q1)(1+q2), det = D − s² (>= 1 + q1 + q2), ρ = s/√D,
      E[gg]   = s/4 + s·asin(ρ)/(2π) + (q1·q2·det + s²)/(2π·D·√det),
      E[g'g'] = 1/4 + asin(ρ)/(2π) + s·((3 + q1 + q2)·det + s²)/(2π·D·det^{3/2})   (= ∂E[gg]/∂s).
    """
    d = (1.0 + q1) * (1.0 + q2)
    det = d - s * s
    if det < 1.0:
        det = 1.0  # det >= 1 + q1 + q2 for a valid covariance; guards round-off only
    sd = math.sqrt(d)
    r = s / sd
    if r > 1.0:
        r = 1.0
    elif r < -1.0:
        r = -1.0
    asr = math.asin(r)
    rdet = math.sqrt(det)
    e = 0.25 * s + s * asr * _INV_2PI + (q1 * q2 * det + s * s) * _INV_2PI / (d * rdet)
    lin = 0.25 + asr * _INV_2PI + s * ((3.0 + q1 + q2) * det + s * s) * _INV_2PI / (d * det * rdet)
    return e, lin


@njit(cache=True)
def _gelu_row(nngp, ntk, var1, var2, i, do_ntk, symmetric):
    n2 = nngp.shape[1]
    q1 = var1[i]
    j0 = i if symmetric else 0
    for j in range(j0, n2):
        e, lin = _gelu_pair(q1, var2[j], nngp[i, j])
        nngp[i, j] = e
        if do_ntk:
            ntk[i, j] *= lin


@njit(cache=True, parallel=True)
def gelu_inplace(
    nngp: np.ndarray,
    ntk: np.ndarray,
    var1: np.ndarray,
    var2: np.ndarray,
    do_ntk: bool,
    symmetric: bool,
) -> None:
    """σ(x) = x·Φ(x): the closed forms of :func:`_gelu_pair`, in place."""
    n1 = nngp.shape[0]
    for p in prange((n1 + 1) // 2):
        _gelu_row(nngp, ntk, var1, var2, p, do_ntk, symmetric)
        if n1 - 1 - p != p:
            _gelu_row(nngp, ntk, var1, var2, n1 - 1 - p, do_ntk, symmetric)


@njit(cache=True)
def gelu_diag(var: np.ndarray) -> np.ndarray:
    """E[g(u)²] by the same function as the cross terms (s = q1 = q2 = q)."""
    out = np.empty_like(var)
    for i in range(var.shape[0]):
        out[i] = _gelu_pair(var[i], var[i], var[i])[0]
    return out


@njit(cache=True)
def _erf_row(nngp, ntk, var1, var2, i, do_ntk, symmetric):
    n2 = nngp.shape[1]
    q1 = var1[i]
    j0 = i if symmetric else 0
    for j in range(j0, n2):
        e, lin = _erf_pair(q1, var2[j], nngp[i, j])
        nngp[i, j] = e
        if do_ntk:
            ntk[i, j] *= lin


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


@njit(cache=True)
def erf_diag(var: np.ndarray) -> np.ndarray:
    """E[erf(u)²] = (2/π)·arcsin(2q/(1+2q)), by the same function as the cross terms."""
    out = np.empty_like(var)
    for i in range(var.shape[0]):
        out[i] = _erf_pair(var[i], var[i], var[i])[0]
    return out


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


@njit(cache=True)
def affine_diag(var: np.ndarray, w2: float, b2: float) -> np.ndarray:
    """Variances after a Dense layer, w2·q + b2, with the expression of :func:`affine_inplace`."""
    out = np.empty_like(var)
    for i in range(var.shape[0]):
        out[i] = w2 * var[i] + b2
    return out


@njit(cache=True, parallel=True)
def quadrature_pairs(gu: np.ndarray, gv: np.ndarray, w: np.ndarray, out: np.ndarray) -> None:
    """out[i, j] = Σ_a gu[i, a]·Σ_b gv[i, j, a, b]·w[b] (the 2-D Gauss–Hermite sums of
    ``Elementwise``), summed sequentially so that each entry depends only on its own values."""
    nb, n2, m, _ = gv.shape
    for i in prange(nb):
        for j in range(n2):
            acc = 0.0
            for a in range(m):
                inner = 0.0
                for b in range(m):
                    inner += gv[i, j, a, b] * w[b]
                acc += gu[i, a] * inner
            out[i, j] = acc


@njit(cache=True, parallel=True)
def mirror_upper(m: np.ndarray) -> None:
    """Copy the strict upper triangle of a square matrix onto its lower triangle."""
    n = m.shape[0]
    for i in prange(n):
        for j in range(i):
            m[i, j] = m[j, i]
