"""The one LP of the exact leaves: ``min_{e in [-1,1]^d} max_j (F_j e + f_j)`` (HiGHS), and the rigorous
float64 lower bound that its dual weights give (weak duality).  Only that bound refutes, never the
solver's reported optimum (HiGHS works to ~1e-7 tolerances)."""

from __future__ import annotations

import numpy as np

__all__ = ["certified_box_margin", "min_max_affine"]

_EPS = np.finfo(float).eps


def certified_box_margin(F: np.ndarray, f: np.ndarray, w: np.ndarray) -> float:
    """Rigorous lower bound of ``min_{e in [-1,1]^d} max_j (F_j e + f_j)`` from any weights ``w >= 0``
    (normalised to sum 1): ``max_j(...) >= w·(F e + f) >= w·f - ||Fᵀ w||_1``, minus a float64 rounding
    guard.  With the LP's optimal duals this equals the LP optimum up to rounding."""
    w = np.clip(np.asarray(w, dtype=np.float64), 0.0, None)
    total = w.sum()
    if not np.isfinite(total) or total <= 0:
        return -np.inf
    w = w / total
    gt = F.T @ w
    err = 4 * (F.shape[0] + F.shape[1] + 2) * _EPS * (w @ np.abs(f) + np.abs(F).T.dot(w).sum())
    return float(w @ f - np.abs(gt).sum() - err)


def min_max_affine(F: np.ndarray, f: np.ndarray):
    """Solve ``min_{e in [-1,1]^d} max_j (F_j e + f_j)`` with HiGHS (variables ``e, t``: min ``t`` s.t.
    ``F e - t <= -f``).  Returns ``(weights, e)`` (the LP's dual weights on the rows and its minimiser), or
    ``(None, None)`` if the solver failed."""
    from scipy.optimize import linprog  # scipy is imported only when a leaf LP is solved

    R, d = F.shape
    c = np.zeros(d + 1)
    c[-1] = 1.0
    A = np.hstack([F, -np.ones((R, 1))])
    res = linprog(c, A_ub=A, b_ub=-f, bounds=[(-1, 1)] * d + [(None, None)], method="highs")
    if res.status != 0:
        return None, None
    return -res.ineqlin.marginals, res.x[:d]
