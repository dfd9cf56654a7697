"""PSD proofs: exact LDLᵀ in rationals (small matrices); float64 Cholesky of a shifted matrix (large ones).

If Cholesky of the symmetric float ``A`` completes, ``RᵀR = A + dA`` with ``|dA| <= gamma_{n+1} |Rᵀ||R|`` in any
summation order, with or without FMA (Demmel 1989; Higham, *Accuracy and Stability*, Thm 10.3; conventional
BLAS), and ``||dA||_2`` is at most the largest row sum of ``|Rᵀ||R|`` (Rump, BIT 46, 2006, uses ``tr(A)``).  With
``A = fl(S - c I)`` and ``|S_exact - S| <= E``: ``lambda_min(S_exact) >= c - gamma_{n+1} rowsum(|Rᵀ||R|) -
u max|A_ii| - max_i sum_j E_ij``, every term rounded up, on ``D S D`` (``D``: powers of two balancing the
diagonal, an exact congruence).  Underflow: an allowance ``n² TINY``."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from verification.proofcheck._float import TINY, U, mm, up

__all__ = ["exact_psd", "float_psd", "EXACT_MAX_N"]

EXACT_MAX_N = 40  # up to this size the matrix is built and factorised in rationals


def exact_psd(K) -> str | None:
    """``None`` if the symmetric rational matrix ``K`` (rows of ``Fraction``) is positive semidefinite, else
    the failing step.  LDLᵀ without pivoting: a negative pivot, or a zero pivot with a non-zero entry in its
    column, proves that ``K`` is not PSD; the Schur complements are exact."""
    n, A = len(K), [[Fraction(x) for x in row] for row in K]
    for k in range(n):
        rk, d = A[k], A[k][k]
        if d < 0:
            return f"pivot {k} of the exact LDLᵀ is negative ({float(d):.6g})"
        if d == 0 and any(A[k][j] != 0 for j in range(k + 1, n)):
            return f"pivot {k} of the exact LDLᵀ is zero with a non-zero column"
        for i in range(k + 1, n) if d else ():
            if rk[i]:
                f, ri = rk[i] / d, A[i]
                for j in range(i, n):
                    if rk[j]:
                        ri[j] -= f * rk[j]
    return None


def float_psd(S: np.ndarray, E: np.ndarray) -> tuple[str | None, float]:
    """``(None, margin)`` if every symmetric matrix within ``E`` (entrywise) of ``S`` is proven PSD (``margin``:
    a proven lower bound of the smallest eigenvalue of the balanced matrix), else ``(failing step, nan)``.  ``S``
    and ``E`` may be stacks ``(k, n, n)``: then every matrix of the stack must be proven."""
    n, tr = S.shape[-1], lambda a: np.swapaxes(a, -1, -2)  # noqa: E731
    S, E = np.tril(S) + tr(np.tril(S, -1)), np.maximum(E, tr(E))  # the lower triangle is what Cholesky reads
    dg = np.diagonal(S, axis1=-2, axis2=-1)
    d = np.ldexp(1.0, np.clip(np.where(dg > 0, -np.round(np.log2(np.where(dg > 0, dg, 1.0)) / 2), 0), -400, 400).astype(int))
    Sd, Ed = d[..., :, None] * S * d[..., None, :], d[..., :, None] * E * d[..., None, :] + TINY
    if not (np.isfinite(Sd).all() and np.isfinite(Ed).all()) or np.any(E < 0):
        return "the matrix or its error bound is not finite", float("nan")
    g = (n + 1) * U / (1 - (n + 1) * U) * (1 + 4 * U)
    err = up(np.abs(Ed).sum(axis=-1).max(axis=-1) * (1 + (n + 2) * U))  # ||E||_2 <= max row sum (symmetric)
    c = up(2.0 * (err + 2.0 * g * np.abs(Sd).sum(axis=-1).max(axis=-1)) + n * n * TINY)
    for _ in range(4):
        A = Sd - np.asarray(c)[..., None, None] * np.eye(n)
        try:
            aL = np.abs(np.linalg.cholesky(A))
        except np.linalg.LinAlgError:
            return "the float64 Cholesky factorisation of the shifted matrix fails", float("nan")
        v, ev = mm(tr(aL), np.ones(n))  # row sums of |L| |L|ᵀ = |Rᵀ||R|, rounded up
        w, ew = mm(aL, up(v + ev)[..., None])
        lost = up(up(up(g * up(w + ew)[..., 0].max(axis=-1)) + up(U * np.abs(np.diagonal(A, axis1=-2, axis2=-1)).max(axis=-1)
                                                                      * (1 + 2 * U))) + up(err + n * n * TINY))
        if np.all(c >= lost):  # (also False for nan)
            return None, float(np.min(np.nextafter(c - lost, -np.inf)))
        c = np.where(c >= lost, c, up(2.0 * lost))
    return "the shift does not exceed the proven rounding error", float("nan")
