"""Input validation shared by the public functions of :mod:`theorytools.rmt`."""

from __future__ import annotations

import math
from numbers import Integral, Real

from theorytools.errors import TheoryError


def positive_float(value: object, name: str, func: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)) \
            or float(value) <= 0.0:
        raise TheoryError(
            f"The '{name}' parameter of {func} must be a float > 0. Got {value!r} instead.")
    return float(value)


def nonnegative_float(value: object, name: str, func: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)) \
            or float(value) < 0.0:
        raise TheoryError(
            f"The '{name}' parameter of {func} must be a float >= 0. Got {value!r} instead.")
    return float(value)


def finite_float(value: object, name: str, func: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise TheoryError(
            f"The '{name}' parameter of {func} must be a finite float. Got {value!r} instead.")
    return float(value)


def positive_int(value: object, name: str, func: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or int(value) <= 0:
        raise TheoryError(
            f"The '{name}' parameter of {func} must be an int > 0. Got {value!r} instead.")
    return int(value)
