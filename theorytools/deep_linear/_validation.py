"""Input checks shared by the public functions of :mod:`theorytools.deep_linear`."""

from __future__ import annotations

import numbers

import numpy as np

from theorytools.errors import TheoryError


def positive_float(value: object, name: str, func: str, *, allow_zero: bool = False) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        rel = ">= 0" if allow_zero else "> 0"
        raise TheoryError(
            f"The '{name}' parameter of {func} must be a finite float {rel}. Got {value!r} instead."
        )
    return float(value)


def positive_int(value: object, name: str, func: str, *, minimum: int = 1) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise TheoryError(
            f"The '{name}' parameter of {func} must be an int >= {minimum}. Got {value!r} instead."
        )
    return int(value)


def positive_array(value: object, name: str, func: str, *, allow_zero: bool = False) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    bad = ~np.isfinite(arr) | ((arr < 0) if allow_zero else (arr <= 0))
    if np.any(bad):
        rel = ">= 0" if allow_zero else "> 0"
        raise TheoryError(
            f"The '{name}' parameter of {func} must contain finite values {rel}. "
            f"Got {arr[bad].ravel()[0]!r} among them instead."
        )
    return arr


def matrix(value: object, name: str, func: str) -> np.ndarray:
    arr = np.ascontiguousarray(value, dtype=np.float64)
    if arr.ndim != 2 or arr.size == 0 or not np.all(np.isfinite(arr)):
        raise TheoryError(
            f"The '{name}' parameter of {func} must be a non-empty finite 2-D array. "
            f"Got shape {np.shape(value)} instead."
        )
    return arr


def chained(w21: object, w32: object, sigma31: object, func: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The weights ``w21 (N2, N1)``, ``w32 (N3, N2)`` and input-output correlation ``sigma31 (N3, N1)`` of a
    three-layer linear net, as float matrices whose shapes chain."""
    w21, w32, sigma31 = matrix(w21, "w21", func), matrix(w32, "w32", func), matrix(sigma31, "sigma31", func)
    if w21.shape[0] != w32.shape[1] or sigma31.shape != (w32.shape[0], w21.shape[1]):
        raise TheoryError(f"The shapes of w21 {w21.shape}, w32 {w32.shape} and sigma31 "
                          f"{sigma31.shape} passed to {func} do not chain as (N3,N2)(N2,N1) = (N3,N1).")
    return w21, w32, sigma31


def choice(value: object, name: str, func: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise TheoryError(
            f"The '{name}' parameter of {func} must be one of {options}. Got {value!r} instead."
        )
    return str(value)


def rng_of(seed: object) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)  # type: ignore[arg-type]
