"""Elementwise activations: identity, relu, leaky_relu(a), tanh, sigmoid."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from verification.activations._relax import (
    inflection_relaxation,
    s_shaped_derivative_bounds,
    s_shaped_relaxation,
    two_piece_derivative_bounds,
    two_piece_relaxation,
)
from verification.activations.base import Activation, breakpoint_interval, monotone_interval
from verification.errors import InvalidParameterError

__all__ = ["Identity", "ReLU", "LeakyReLU", "Tanh", "Sigmoid"]


@dataclass(frozen=True)
class Identity(Activation):
    """``phi(z) = z``; slope-restricted on [1, 1]."""

    name: ClassVar[str] = "identity"
    is_piecewise_linear: ClassVar[bool] = True
    monotone: ClassVar[bool] = True

    def interval(self, lower, upper):
        return monotone_interval(self, lower, upper)

    def __call__(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(z, dtype=np.float64)

    def derivative(self, z: np.ndarray) -> np.ndarray:
        return np.ones_like(z, dtype=np.float64)

    def z3_terms(self, z: list, lower=None, upper=None) -> list:
        return list(z)

    def exact_call(self, z: list) -> list:
        return list(z)

    def kink_free(self, lower, upper):
        return np.ones(np.shape(lower)[0], dtype=bool)

    def slope_bounds(self) -> tuple[float, float]:
        return (1.0, 1.0)

    def linear_relaxation(self, lower, upper):
        one = np.ones_like(np.asarray(lower, dtype=np.float64))
        return one, 0 * one, one, 0 * one

    def derivative_bounds(self, lower, upper):
        one = np.ones_like(np.asarray(lower, dtype=np.float64))
        return one, one


@dataclass(frozen=True)
class ReLU(Activation):
    """``phi(z) = max(z, 0)``; slope-restricted on [0, 1].  Derivative at 0 taken as 0."""

    name: ClassVar[str] = "relu"
    is_piecewise_linear: ClassVar[bool] = True
    monotone: ClassVar[bool] = True

    @property
    def two_piece_slope(self) -> float:
        return 0.0

    def interval(self, lower, upper):
        return monotone_interval(self, lower, upper)

    def __call__(self, z: np.ndarray) -> np.ndarray:
        return np.maximum(z, 0.0)

    def derivative(self, z: np.ndarray) -> np.ndarray:
        return (z > 0).astype(np.float64)

    def exact_call(self, z: list) -> list:
        return [v if v > 0 else 0 * v for v in z]

    def z3_terms(self, z: list, lower=None, upper=None) -> list:
        """``If(z > 0, z, 0)``; ``z`` itself if ``lower >= 0``, ``0`` if ``upper <= 0``."""
        import z3

        out = []
        for i, t in enumerate(z):
            if lower is not None and lower[i] >= 0:
                out.append(t)
            elif upper is not None and upper[i] <= 0:
                out.append(z3.RealVal(0))
            else:
                out.append(z3.If(t > 0, t, z3.RealVal(0)))
        return out

    def slope_bounds(self) -> tuple[float, float]:
        return (0.0, 1.0)

    def linear_relaxation(self, lower, upper, lower_slope=None):
        """CROWN relaxation: chord above, ``alpha*z`` below (``lower_slope`` = alpha in [0, 1])."""
        return two_piece_relaxation(lower, upper, 0.0, lower_slope)

    def derivative_bounds(self, lower, upper):
        """Clarke derivative range: 1 if ``l > 0``, 0 if ``u < 0``, else ``[0, 1]``."""
        return two_piece_derivative_bounds(lower, upper, 0.0)


@dataclass(frozen=True)
class LeakyReLU(Activation):
    """``phi(z) = z`` for ``z > 0`` and ``a·z`` otherwise, for any finite ``a``; slope-restricted on
    ``[min(a,1), max(a,1)]``.  Monotone only for ``a >= 0``: with ``a < 0`` it is V-shaped (``a = -1`` is
    ``|z|``), convex for ``a <= 1`` and concave for ``a > 1``."""

    negative_slope: float = 0.01
    name: ClassVar[str] = "leaky_relu"
    is_piecewise_linear: ClassVar[bool] = True

    def __post_init__(self) -> None:
        try:
            a = float(self.negative_slope)
        except (TypeError, ValueError):
            a = float("nan")
        if not np.isfinite(a):
            raise InvalidParameterError(
                f"The slope of leaky_relu must be a finite number. Got {self.negative_slope!r} instead."
            )
        object.__setattr__(self, "negative_slope", a)

    @property
    def monotone(self) -> bool:  # type: ignore[override]
        return self.negative_slope >= 0.0

    @property
    def two_piece_slope(self) -> float:
        return self.negative_slope

    def interval(self, lower, upper):
        """Exact range: the extremes lie at ``l``, ``u`` or the kink 0 (V-shaped for ``a < 0``)."""
        return breakpoint_interval(self, lower, upper)

    def __call__(self, z: np.ndarray) -> np.ndarray:
        return np.where(z > 0, z, self.negative_slope * z)

    def derivative(self, z: np.ndarray) -> np.ndarray:
        return np.where(z > 0, 1.0, self.negative_slope)

    def exact_call(self, z: list) -> list:
        from fractions import Fraction

        a = Fraction(self.negative_slope)
        return [v if v > 0 else a * v for v in z]

    def z3_terms(self, z: list, lower=None, upper=None) -> list:
        """``If(z > 0, z, a z)`` with the slope ``a`` as an exact rational; one piece when bounds fix the sign."""
        from fractions import Fraction

        import z3

        a = z3.RealVal(Fraction(self.negative_slope))
        out = []
        for i, t in enumerate(z):
            if lower is not None and lower[i] >= 0:
                out.append(t)
            elif upper is not None and upper[i] <= 0:
                out.append(a * t)
            else:
                out.append(z3.If(t > 0, t, a * t))
        return out

    def slope_bounds(self) -> tuple[float, float]:
        a = self.negative_slope
        return (min(a, 1.0), max(a, 1.0))

    def linear_relaxation(self, lower, upper, lower_slope=None):
        """Chord on the convex (a <= 1) or concave (a > 1) side, a line ``alpha*z`` through 0 on the other."""
        return two_piece_relaxation(lower, upper, self.negative_slope, lower_slope)

    def derivative_bounds(self, lower, upper):
        return two_piece_derivative_bounds(lower, upper, self.negative_slope)

    def describe(self) -> str:
        return f"leaky_relu({self.negative_slope:g})"

    def to_spec(self) -> dict:
        return {"type": self.name, "negative_slope": self.negative_slope}


@dataclass(frozen=True)
class Tanh(Activation):
    """``phi(z) = tanh(z)``; slope-restricted on [0, 1]."""

    name: ClassVar[str] = "tanh"
    monotone: ClassVar[bool] = True

    def interval(self, lower, upper):
        return monotone_interval(self, lower, upper, widen=True)

    def __call__(self, z: np.ndarray) -> np.ndarray:
        return np.tanh(z)

    def derivative(self, z: np.ndarray) -> np.ndarray:
        """``1 / cosh(z)^2``: accurate to a few ulps everywhere (``1 - tanh(z)^2`` cancels to 0 for |z| > 19)."""
        with np.errstate(over="ignore"):
            return 1.0 / np.cosh(z) ** 2

    def slope_bounds(self) -> tuple[float, float]:
        return (0.0, 1.0)

    def linear_relaxation(self, lower, upper):
        """CROWN chord/tangent relaxation of the S-shaped map."""
        return s_shaped_relaxation(self, self.derivative, 0.0, lower, upper)

    def derivative_bounds(self, lower, upper):
        return s_shaped_derivative_bounds(self.derivative, lower, upper)

    def second_derivative(self, z: np.ndarray) -> np.ndarray:
        """``phi''(z) = -2 tanh(z) / cosh(z)^2``."""
        z = np.asarray(z, dtype=np.float64)
        with np.errstate(over="ignore"):
            return -2.0 * np.tanh(z) / np.cosh(z) ** 2

    def derivative_relaxation(self, lower, upper):
        """Sound lines ``ls z + lb <= phi'(z) <= us z + ub`` on ``[l, u]``.  ``phi' = 1/cosh^2`` is convex
        outside and concave inside ``±atanh(1/sqrt 3) = ±0.658478948...`` (the zeros of its second
        derivative ``2 sech^2 (3 tanh^2 - 1)``), and ``|phi''| <= 4/(3 sqrt 3) = 0.76980...``; see
        :func:`~verification.activations._relax.inflection_relaxation`."""
        return inflection_relaxation(self.derivative, self.second_derivative, lower, upper,
                                     [(-0.65848, -0.65847), (0.65847, 0.65848)], first_convex=True,
                                     slopes=(-0.7699, 0.7699))


@dataclass(frozen=True)
class Sigmoid(Activation):
    """``phi(z) = 1/(1+exp(-z))``; slope-restricted on [0, 1/4]."""

    name: ClassVar[str] = "sigmoid"
    monotone: ClassVar[bool] = True

    def interval(self, lower, upper):
        return monotone_interval(self, lower, upper, widen=True)

    def __call__(self, z: np.ndarray) -> np.ndarray:
        # stable in both tails
        return np.where(z >= 0, 1.0 / (1.0 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1.0 + np.exp(-np.abs(z))))

    def derivative(self, z: np.ndarray) -> np.ndarray:
        """``e^{-|z|} / (1 + e^{-|z|})^2``: no cancellation in the tails (``s (1 - s)`` gives 0 for z > 37)."""
        e = np.exp(-np.abs(z))
        return e / (1.0 + e) ** 2

    def slope_bounds(self) -> tuple[float, float]:
        return (0.0, 0.25)

    def linear_relaxation(self, lower, upper):
        """CROWN chord/tangent relaxation of the S-shaped map."""
        return s_shaped_relaxation(self, self.derivative, 0.5, lower, upper)

    def derivative_bounds(self, lower, upper):
        return s_shaped_derivative_bounds(self.derivative, lower, upper)

    def second_derivative(self, z: np.ndarray) -> np.ndarray:
        """``phi'' = phi' (1 - 2 phi) = -sign(z) e (1 - e) / (1 + e)^3`` with ``e = exp(-|z|)``."""
        z = np.asarray(z, dtype=np.float64)
        e = np.exp(-np.abs(z))
        return -np.sign(z) * e * (1.0 - e) / (1.0 + e) ** 3

    def derivative_relaxation(self, lower, upper):
        """Sound lines ``ls z + lb <= phi'(z) <= us z + ub`` on ``[l, u]``.  ``phi'`` is convex outside and
        concave inside ``±ln(2 + sqrt 3) = ±1.316957897...`` (the zeros of its second derivative
        ``phi' (1 - 6 phi + 6 phi^2)``), and ``|phi''| <= sqrt(3)/18 = 0.096225...``; see
        :func:`~verification.activations._relax.inflection_relaxation`."""
        return inflection_relaxation(self.derivative, self.second_derivative, lower, upper,
                                     [(-1.31696, -1.31695), (1.31695, 1.31696)], first_convex=True,
                                     slopes=(-0.09623, 0.09623))
