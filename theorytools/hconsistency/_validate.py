"""Input validation shared by the public functions of :mod:`theorytools.hconsistency`."""

from __future__ import annotations

import numbers

import numpy as np

from theorytools.errors import TheoryError


def check_tau(tau: float, fname: str) -> float:
    if isinstance(tau, bool) or not isinstance(tau, numbers.Real) or not (0.0 <= float(tau) <= 2.0):
        raise TheoryError(
            f"The 'tau' parameter of {fname} must be a float in [0, 2]. Got {tau!r} instead."
        )
    return float(tau)


def check_n(n: int, fname: str) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or int(n) < 2:
        raise TheoryError(
            f"The 'n' parameter of {fname} must be an int >= 2 (number of classes). Got {n!r} instead."
        )
    return int(n)


def check_positive(x: float, name: str, fname: str, *, allow_zero: bool = False) -> float:
    ok = isinstance(x, numbers.Real) and not isinstance(x, bool) and np.isfinite(x)
    ok = ok and (x >= 0 if allow_zero else x > 0)
    if not ok:
        rel = ">= 0" if allow_zero else "> 0"
        raise TheoryError(f"The '{name}' parameter of {fname} must be a finite float {rel}. Got {x!r} instead.")
    return float(x)


def check_prob(p, fname: str, name: str = "p") -> np.ndarray:
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim < 1 or arr.shape[-1] < 2:
        raise TheoryError(
            f"The '{name}' parameter of {fname} must be an array of shape (..., n) with n >= 2. "
            f"Got shape {arr.shape} instead."
        )
    if not np.all(np.isfinite(arr)) or np.any(arr < 0) or np.any(np.abs(arr.sum(-1) - 1.0) > 1e-9):
        raise TheoryError(
            f"The '{name}' parameter of {fname} must hold probability vectors (entries >= 0 summing "
            "to 1 along the last axis). Got entries outside the simplex instead."
        )
    return np.ascontiguousarray(arr)


def check_scores(h, fname: str, name: str = "scores") -> np.ndarray:
    arr = np.asarray(h, dtype=np.float64)
    if arr.ndim < 1 or arr.shape[-1] < 2 or not np.all(np.isfinite(arr)):
        raise TheoryError(
            f"The '{name}' parameter of {fname} must be a finite array of shape (..., n) with n >= 2. "
            f"Got shape {arr.shape} instead."
        )
    return np.ascontiguousarray(arr)


def check_labels(y, shape: tuple, n: int, fname: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.shape != shape or not np.issubdtype(arr.dtype, np.integer) or np.any(arr < 0) or np.any(arr >= n):
        raise TheoryError(
            f"The 'labels' parameter of {fname} must be an int array of shape {shape} with values in "
            f"[0, {n}). Got shape {arr.shape}, dtype {arr.dtype} instead."
        )
    return arr.astype(np.intp)


def exprel(x):
    """(e^x - 1)/x with the value 1 at x = 0 and +inf at x = +inf."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        safe = np.where(x == 0, 1.0, x)
        out = np.where(x == 0, 1.0, np.expm1(x) / safe)
    return np.where(np.isposinf(x), np.inf, out)


def log1prel(d):
    """log(1 + d)/d with the value 1 at d = 0."""
    d = np.asarray(d, dtype=np.float64)
    with np.errstate(all="ignore"):
        safe = np.where(d == 0, 1.0, d)
        return np.where(d == 0, 1.0, np.log1p(d) / safe)


def check_risk_inputs(surrogate_gap: float, zero_one_gap: float, p_cond, labels, fname: str) -> None:
    """The two nonnegative approximation gaps and exactly one of ``p_cond`` / ``labels`` (excess-risk bounds)."""
    check_positive(surrogate_gap, "surrogate_gap", fname, allow_zero=True)
    check_positive(zero_one_gap, "zero_one_gap", fname, allow_zero=True)
    if (p_cond is None) == (labels is None):
        raise TheoryError(f"{fname} needs exactly one of 'p_cond' and 'labels'. Got both or neither.")
