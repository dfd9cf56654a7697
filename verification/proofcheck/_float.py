"""Rigorous float64 arithmetic for the proof checker: every rounding error is bounded.

Assumption (IEEE 754 binary64, round to nearest, gradual underflow): one rounded operation ``r = fl(a op b)``
has its exact value in ``[dn(r), up(r)]`` (``np.nextafter`` one step down / up).  A dot product of length
``n`` computed in any summation order, with or without fused multiply-add (what numpy / BLAS do), satisfies
``|fl(x.y) - x.y| <= gamma_n |x|.|y| + n * eta`` with ``gamma_n = n u / (1 - n u)``, ``u = 2^-53`` and
``eta = 2^-1074`` (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., Sec. 3.1; the
``eta`` term covers underflow).  :func:`mm` bounds the error with twice that constant, which also covers
the rounding of the bound itself.
"""

from __future__ import annotations

import numpy as np

__all__ = ["U", "ETA", "TINY", "up", "dn", "mm", "applied_error", "add_up"]

U = 2.0 ** -53
ETA = 2.0 ** -1074
# covers every underflow term (each at most a count times ETA times the magnitudes involved) by a factor > 1e25
TINY = 1e-290


def up(x):
    """One float step towards +inf (an upper bound of the exact result of the last rounded operation)."""
    return np.nextafter(x, np.inf)


def dn(x):
    """One float step towards -inf."""
    return np.nextafter(x, -np.inf)


def mm(A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``C = fl(A @ B)`` and ``E >= |A @ B - C|`` entrywise (``np.matmul`` shapes; ``n = A.shape[-1]``)."""
    n = A.shape[-1]
    if n * U > 1e-3:  # pragma: no cover - absurd sizes
        raise ValueError("dot product too long for the rounding bound")
    C = A @ B
    S = np.abs(A) @ np.abs(B)
    # needed: gamma_n/(1 - gamma_n) * S + 2 n eta (S: the computed |A| @ |B|, itself at most gamma_n low).  The
    # factor 2 (n + 2) u is more than twice that, so the two roundings of this line (at most a factor
    # (1 - u)^2) cannot take E below it, and 3 (n + 1) eta is lost only where S * 2 (n + 2) u exceeds it
    # by far more than the needed eta term
    E = S * (2.0 * (n + 2) * U) + 3.0 * (n + 1) * ETA
    return C, E


def applied_error(A: np.ndarray, B_abs: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Upper bound of ``|(A @ B - fl(A @ B)) @ v|`` for ``v >= 0`` without forming the error matrix:
    ``2 (n + 2) u |A| @ (|B| @ v)`` plus an underflow term (``A``: ``(N, R, n)``, ``B_abs = |B|``: ``(n, m)``,
    ``v``: ``(N, m)``; returns ``(N, R)``).  The factor 2 also covers the rounding of the two products."""
    n = A.shape[-1]
    absA = np.abs(A)
    T = (absA @ (v @ B_abs.T)[:, :, None])[..., 0]
    return T * (2.0 * (n + 2) * U) + TINY * (1.0 + absA.sum(-1)) * (1.0 + v.sum(-1))[:, None]


def add_up(*terms: np.ndarray) -> np.ndarray:
    """An upper bound of the exact sum of the (non-negative) ``terms``."""
    out = terms[0]
    for t in terms[1:]:
        out = up(out + t)
    return out
