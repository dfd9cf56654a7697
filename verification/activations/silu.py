"""SiLU (swish): ``phi(z) = z * sigmoid(z) = z/2 + (z/2) tanh(z/2)``.

Facts used below (``s = sigmoid``): ``phi'(z) = s(z) (1 + z s(-z))``, ``phi'(z) + phi'(-z) = 1`` and
``phi''(z) = s'(z) (2 - z tanh(z/2))``.  Hence

* ``phi''`` vanishes exactly at ``z = ±c``, ``c = 2.39935728...`` (the root of ``z tanh(z/2) = 2``):
  ``phi`` is concave on ``(-inf, -c]``, convex on ``[-c, c]``, concave on ``[c, inf)``, and ``phi'`` falls on
  ``(-inf, -c]`` from 0 to ``phi'(-c) = -0.09983932...``, rises to ``phi'(c) = 1.09983932...`` and falls to 1;
* ``phi'`` vanishes only at ``z* = -1.27846454...`` (root of ``1 + z s(-z) = 0``): ``phi`` decreases before
  and increases after its minimum ``phi(z*) = z* + 1 = -0.27846454...``.

The constants are enclosed by float64 values computed at 60 digits (mpmath) and rounded outwards; the
test suite recomputes them.  Values computed with ``exp`` carry a relative allowance of 16 ulps plus
``2**-1000`` (underflow) wherever they serve as bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from verification.activations._relax import inflection_relaxation
from verification.activations.base import Activation

__all__ = ["SiLU"]

_REL = 16 * np.finfo(np.float64).eps
_TINY = 2.0 ** -1000

# enclosures (float64, rounded outwards) of the minimiser z* and the inflection point c
Z_MIN = (-1.278464542761074, -1.2784645427610737)
C = (2.3993572805154675, 2.399357280515468)
# the minimum phi(z*) and the extremes phi'(-c), phi'(c), rounded outwards and then moved 16 ulps further out,
# so that they also bound the float values computed below (whose rounding may cross the exact extremes)
PHI_MIN = -0.2784645427610738 * (1 + _REL)
D_MIN = -0.09983932012886693 * (1 + _REL)
D_MAX = 1.099839320128867 * (1 + _REL)


def _sigmoids(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(s(z), s(-z))``, both without cancellation or overflow."""
    e = np.exp(-np.abs(z))
    a, b = 1.0 / (1.0 + e), e / (1.0 + e)
    pos = z >= 0
    return np.where(pos, a, b), np.where(pos, b, a)


def _derivative_with_error(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``phi'(z)`` and a bound on its rounding error (the two terms of ``s + s z s(-z)`` times 16 ulps)."""
    s, t = _sigmoids(z)
    zt = z * t
    return s * (1.0 + zt), _REL * s * (1.0 + np.abs(zt)) + _TINY


def _widen(v: np.ndarray, down: bool) -> np.ndarray:
    r = _REL * np.abs(v) + _TINY
    return v - r if down else v + r


@dataclass(frozen=True)
class SiLU(Activation):
    """``phi(z) = z * sigmoid(z)`` (swish-1); smooth, not monotone, slope-restricted on about
    ``[-0.0998, 1.0998]``."""

    name: ClassVar[str] = "silu"

    def __call__(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        return z * _sigmoids(z)[0]

    def derivative(self, z: np.ndarray) -> np.ndarray:
        """``s(z) (1 + z s(-z))``: a sum of two terms of known sign, no cancellation in either tail."""
        return _derivative_with_error(np.asarray(z, dtype=np.float64))[0]

    def slope_bounds(self) -> tuple[float, float]:
        """``[min phi', max phi'] = [phi'(-c), phi'(c)]`` rounded outwards (mean value theorem)."""
        return (D_MIN, D_MAX)

    def interval(self, lower, upper):
        """Exact range, widened for rounding: ``phi`` is unimodal, so the maximum is at an end and the
        minimum at an end or at ``z*`` (then ``PHI_MIN``) if the box meets the enclosure of ``z*``."""
        l = np.asarray(lower, dtype=np.float64)
        u = np.asarray(upper, dtype=np.float64)
        fl, fu = self(l), self(u)
        lo = _widen(np.minimum(fl, fu), down=True)
        lo = np.where((l <= Z_MIN[1]) & (u >= Z_MIN[0]), np.minimum(lo, PHI_MIN), lo)
        return lo, _widen(np.maximum(fl, fu), down=False)

    def linear_relaxation(self, lower, upper):
        """Chord-slope lines shifted to the exact maximum / minimum of ``phi(z) - k z`` on the box, using the
        convex/concave pieces split at ``±c`` (see :func:`~verification.activations._relax.inflection_relaxation`
        for the soundness argument)."""
        return inflection_relaxation(
            self, self.derivative, lower, upper, [(-C[1], -C[0]), C], first_convex=False, slopes=(D_MIN, D_MAX)
        )

    def derivative_bounds(self, lower, upper):
        """``phi'`` is monotone between its only local extrema ``-c`` (minimum) and ``c`` (maximum): its
        range on ``[l, u]`` is spanned by ``phi'(l)``, ``phi'(u)`` (widened by their rounding bound) and the
        extreme values ``D_MIN`` / ``D_MAX`` when the box meets the enclosure of ``-c`` / ``c``."""
        l = np.asarray(lower, dtype=np.float64)
        u = np.asarray(upper, dtype=np.float64)
        dl, el = _derivative_with_error(l)
        du, eu = _derivative_with_error(u)
        lo = np.minimum(dl - el, du - eu)
        hi = np.maximum(dl + el, du + eu)
        lo = np.where((l <= -C[0]) & (u >= -C[1]), D_MIN, lo)
        hi = np.where((l <= C[1]) & (u >= C[0]), D_MAX, hi)
        return np.maximum(lo, D_MIN), np.minimum(hi, D_MAX)
