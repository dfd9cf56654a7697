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
