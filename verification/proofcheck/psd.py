"""Proofs that a symmetric matrix is positive semidefinite: exact LDLᵀ in rationals (small matrices) and a
float64 Cholesky of a shifted matrix with a proven rounding-error bound (large ones).

**Float criterion** (Demmel 1989; Higham, *Accuracy and Stability of Numerical Algorithms*, Thm 10.3; the form
of Rump, "Verification of positive definiteness", BIT 46, 2006).  If the Cholesky factorisation of a symmetric
float matrix ``A`` runs to completion, the computed ``R`` satisfies ``RᵀR = A + dA`` with
``|dA| <= gamma_{n+1} |Rᵀ||R|``, whatever the order of the dot products and with or without FMA (conventional,
not Strassen-like, BLAS), hence ``||dA||_2 <= gamma_{n+1} || |Rᵀ||R| ||_2``, which is at most the largest row
sum of the non-negative matrix ``|Rᵀ||R|`` (computed as ``|Rᵀ| (|R| 1)`` with its own rounding bound; Rump uses
the looser ``||R||_F² <= tr(A) / (1 - gamma_{n+1})``).  With ``A = fl(S - c I)`` and ``|S_exact - S| <= E``
entrywise: ``lambda_min(S_exact) >= c - gamma_{n+1} rowsum_max(|Rᵀ||R|) - u max|A_ii| - ||E||_2``, and
``||E||_2 <= max_i sum_j E_ij``.  The shift ``c`` is raised (at most 3 times) until it exceeds that loss.  Everything runs on ``D S D`` with ``D`` a diagonal of powers of two (an exact
congruence) so that the diagonal is of order one.  Underflow: an absolute allowance ``n² TINY`` (far above the
``eta``-sized terms of gradual underflow on a balanced matrix).
"""

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
    n = len(K)
    A = [[Fraction(K[i][j]) for j in range(n)] for i in range(n)]
    for k in range(n):
        d = A[k][k]
        if d < 0:
            return f"pivot {k} of the exact LDLᵀ is negative ({float(d):.6g})"
        if d == 0:
            if any(A[k][j] != 0 for j in range(k + 1, n)):
                return f"pivot {k} of the exact LDLᵀ is zero with a non-zero column"
            continue
        rk = A[k]
        for i in range(k + 1, n):
            if rk[i]:
                f = rk[i] / d
                ri = A[i]
                for j in range(i, n):
                    if rk[j]:
                        ri[j] -= f * rk[j]
    return None


def float_psd(S: np.ndarray, E: np.ndarray) -> tuple[str | None, float]:
    """``(None, margin)`` if every symmetric matrix within ``E`` (entrywise) of ``S`` is proven PSD (``margin``:
    a proven lower bound of the smallest eigenvalue of the balanced matrix), else ``(failing step, nan)``."""
    n = S.shape[0]
    if not (np.isfinite(S).all() and np.isfinite(E).all()) or np.any(E < 0):
        return "the matrix or its error bound is not finite", float("nan")
    if np.any(np.diag(S) + np.diag(E) < 0):
        return "a diagonal entry is negative", float("nan")
    S = np.tril(S) + np.tril(S, -1).T  # the lower triangle is what the factorisation reads
    E = np.maximum(E, E.T)
    dg = np.diag(S).copy()
    e = np.where(dg > 0, -np.round(np.log2(np.where(dg > 0, dg, 1.0)) / 2), 0.0)
    d = np.ldexp(1.0, np.clip(e, -400, 400).astype(int))
    Sd, Ed = d[:, None] * S * d[None, :], d[:, None] * E * d[None, :] + TINY
    g = (n + 1) * U / (1 - (n + 1) * U) * (1 + 4 * U)
    err = float(up(np.abs(Ed).sum(axis=1).max() * (1 + (n + 2) * U)))  # ||E||_2 <= max row sum (symmetric)
    c = float(up(2.0 * (err + 2.0 * g * np.abs(Sd).sum(axis=1).max()) + n * n * TINY))
    ones = np.ones(n)
    for _ in range(4):
        A = Sd - c * np.eye(n)
        try:
            L = np.linalg.cholesky(A)
        except np.linalg.LinAlgError:
            return "the float64 Cholesky factorisation of the shifted matrix fails", float("nan")
        # ||dA||_2 <= gamma_{n+1} || |L| |L|ᵀ ||_2 <= gamma_{n+1} max row sum of |L| (|L|ᵀ 1), rounded up
        aL = np.abs(L)
        v, ev = mm(aL.T, ones)
        w, ew = mm(aL, up(v + ev))
        lost = float(up(up(up(g * float(up(w + ew).max())) + up(U * np.abs(np.diag(A)).max() * (1 + 2 * U)))
                        + up(err + n * n * TINY)))
        if c >= lost:
            return None, float(np.nextafter(c - lost, -np.inf))
        c = float(up(2.0 * lost))
    return "the shift does not exceed the proven rounding error", float("nan")
