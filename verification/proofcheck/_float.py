"""Rigorous float64 arithmetic for the proof checker: every rounding error is bounded.  Assumption (IEEE 754
binary64, round to nearest, gradual underflow): one rounded operation ``r = fl(a op b)`` has its exact value in
``[dn(r), up(r)]``.  A dot product of length ``n`` in any summation order, with or without fused multiply-add (numpy
/ BLAS), has ``|fl(x.y) - x.y| <= gamma_n |x|.|y| + n * eta`` with ``gamma_n = n u / (1 - n u)``, ``u = 2^-53``,
``eta = 2^-1074`` (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., Sec. 3.1; ``eta`` covers
underflow).  :func:`mm` uses twice that constant, which also covers the rounding of the bound itself."""

from __future__ import annotations

import numpy as np

__all__ = ["U", "ETA", "TINY", "up", "dn", "mm", "applied_error", "applied", "add_up"]

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
    # needed: gamma_n/(1 - gamma_n) S + 2 n eta (S = fl(|A| @ |B|), at most gamma_n low); 2 (n + 2) u is over twice
    # that, even after E's two roundings (>= (1 - u)^2); 3 (n + 1) eta is lost only where S's term is > 2^52 times it
    return A @ B, (np.abs(A) @ np.abs(B)) * (2.0 * (n + 2) * U) + 3.0 * (n + 1) * ETA


def applied_error(A: np.ndarray, B_abs: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Upper bound of ``|(A @ B - fl(A @ B)) @ v|`` for ``v >= 0`` without forming the error matrix:
    ``2 (n + 2) u |A| @ (|B| @ v)`` plus an underflow term (``A``: ``(N, R, n)``, ``B_abs = |B|``: ``(n, m)``,
    ``v``: ``(N, m)``; returns ``(N, R)``).  The factor 2 also covers the rounding of the two products."""
    n, absA = A.shape[-1], np.abs(A)
    T = (absA @ (v @ B_abs.T)[:, :, None])[..., 0]
    return T * (2.0 * (n + 2) * U) + TINY * (1.0 + absA.sum(-1)) * (1.0 + v.sum(-1))[:, None]


def applied(absn: np.ndarray, zmax: np.ndarray) -> np.ndarray:
    """Bound on ``sum_i e_i |z_i|`` for coefficient errors ``e_i <= 2 u |n_i| + eta`` (``absn = |n|``,
    ``|z| <= zmax``); ``4 u`` covers the rounding of this product too."""
    return (absn @ zmax[:, :, None])[..., 0] * (4 * U) + TINY * (1.0 + absn.sum(-1)) * (1.0 + zmax.sum(-1))[:, None]


def add_up(*terms: np.ndarray) -> np.ndarray:
    """An upper bound of the exact sum of the (non-negative) ``terms``."""
    out = terms[0]
    for t in terms[1:]:
        out = up(out + t)
    return out
