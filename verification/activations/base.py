"""The activation protocol shared by every method of the toolkit.

An activation is a small immutable object acting on a batch of pre-activation vectors ``z`` of shape
``(N, n)``.  It carries everything methods need from it, so that adding an activation touches this package
only (a class, and a row of the name table :mod:`verification.activations.names`); methods ask these facts
and never test an activation's type.

Facts (class attributes or properties):

* ``name``: the ``"type"`` of its spec dictionary; ``describe()``: short readable form (``leaky_relu(0.01)``);
* ``elementwise``: acts entry by entry (else on consecutive groups of ``group_size`` entries);
* ``group_size``: 1 for elementwise maps, else the size of the groups it acts on;
* ``pair_form``: True for MaxMin (``(p, q) -> (q + relu(p - q), p - relu(p - q))``), which methods bound
  through the pair differences ``p - q``;
* ``is_piecewise_linear``: whether the map is piecewise linear (exact rational / SMT encodings exist);
* ``monotone``: whether every output is non-decreasing in every input (never assumed: each class states it);
* ``two_piece_slope``: ``a`` for maps ``z -> z (z > 0), a z (z <= 0)`` (ReLU: 0), else ``None``.

Operations (methods; the base class raises ``NotImplementedError`` where no sound default exists):

* ``__call__(z)``: evaluation in float64; ``derivative(z)``: elementwise ``phi'``; ``jacobian(z)``: the
  ``(N, n, n)`` Jacobian (one element of the Clarke Jacobian at kinks);
* ``slope_bounds()``: ``(alpha, beta)`` bounding every difference quotient if the map is elementwise (``alpha``
  may be negative: SiLU), else ``None``; ``lipschitz(norm)``: Lipschitz constant in the l2 or l-inf norm;
* ``qc_basis()``: for grouped maps, a basis of the directions each group's map preserves exactly
  (the quadratic constraints of the SDP methods), else ``None``;
* ``kink_free(lower, upper)``: mask of the boxes of a batch on which the map is provably differentiable;
* ``interval(l, u)``: sound (for piecewise-linear maps exact) bounds of ``phi`` on a box.  No default: an
  activation that does not define it cannot be used by bound propagation;
* ``linear_relaxation(l, u)``: sound lines (matrices for grouped maps) below and above ``phi`` on a box;
* ``derivative_bounds(l, u)``: sound range of ``phi'`` on a box (elementwise maps);
* ``check_width(n)``: refuse widths a grouped map cannot act on; ``to_spec()``: JSON-serialisable form;
* ``exact_call(z)``, ``z3_terms(z, lower, upper)``: exact rational evaluation and exact Z3 terms
  (piecewise-linear maps only).

The math of the relaxations lives in :mod:`verification.activations._relax`; ``activations`` imports
nothing from the methods (``bounds``, ``lipschitz``, ``smt``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

__all__ = ["Activation", "monotone_interval", "breakpoint_interval"]


def monotone_interval(phi, lower: np.ndarray, upper: np.ndarray, widen: bool = False):
    """``[phi(lower), phi(upper)]`` for a non-decreasing elementwise ``phi``; ``widen`` moves both ends one
    float outwards (for maps computed by libm, e.g. tanh, whose float result may be off by an ulp)."""
    lo, hi = phi(np.asarray(lower, dtype=np.float64)), phi(np.asarray(upper, dtype=np.float64))
    if widen:
        lo, hi = np.nextafter(lo, -np.inf), np.nextafter(hi, np.inf)
    return lo, hi


def breakpoint_interval(phi, lower: np.ndarray, upper: np.ndarray, breakpoints=(0.0,)):
    """Exact range of a continuous piecewise-linear elementwise ``phi`` whose kinks are ``breakpoints``: the
    extremes over ``[l, u]`` are attained at ``l``, ``u`` or a kink inside (no monotonicity assumed)."""
    l = np.asarray(lower, dtype=np.float64)
    u = np.asarray(upper, dtype=np.float64)
    vals = [phi(l), phi(u)] + [phi(np.clip(np.float64(b), l, u)) for b in breakpoints]
    return np.minimum.reduce(vals), np.maximum.reduce(vals)


@dataclass(frozen=True)
class Activation:
    """Base class; subclasses are frozen dataclasses."""

    name: ClassVar[str] = "activation"
    elementwise: ClassVar[bool] = True
    is_piecewise_linear: ClassVar[bool] = False
    monotone: ClassVar[bool] = False
    group_size: ClassVar[int] = 1

    @property
    def pair_form(self) -> bool:
        """True for MaxMin (GroupSort of pairs): methods bound it through the pair differences ``p - q``."""
        return False

    def qc_basis(self) -> np.ndarray | None:
        """Grouped maps: a ``(group_size, k)`` basis of directions ``w`` with ``wᵀphi(z) = wᵀz`` exactly on
        every group (sum-preserving constraints of the SDP methods); elementwise maps: ``None``."""
        return None

    def kink_free(self, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
        """Mask ``(N,)`` of the boxes ``[lower, upper]`` (batched ``(N, n)``) on which the map is provably
        differentiable.  Smooth maps: all True; two-piece maps: no box contains 0; other piecewise-linear
        maps override it (no default guess)."""
        if self.two_piece_slope is not None:
            return np.all((np.asarray(lower) > 0) | (np.asarray(upper) < 0), axis=1)
        if self.is_piecewise_linear:
            raise NotImplementedError(f"{self.describe()} does not say where its kinks are")
        return np.ones(np.shape(lower)[0], dtype=bool)

    @property
    def two_piece_slope(self) -> float | None:
        """``a`` if the map is ``z (z > 0), a z (z <= 0)`` elementwise (ReLU: 0, leaky ReLU: its slope), else
        ``None``."""
        return None

    def __call__(self, z: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def derivative(self, z: np.ndarray) -> np.ndarray:
        """Elementwise derivative ``phi'(z)`` (same shape as ``z``); only for elementwise activations."""
        raise NotImplementedError(f"{self.name} is not elementwise")

    def jacobian(self, z: np.ndarray) -> np.ndarray:
        """Jacobian of the activation map at each row of ``z``: shape ``(N, n, n)``."""
        d = self.derivative(z)
        n = z.shape[1]
        jac = np.zeros((z.shape[0], n, n))
        idx = np.arange(n)
        jac[:, idx, idx] = d
        return jac

    def slope_bounds(self) -> tuple[float, float] | None:
        """``(alpha, beta)`` with ``alpha <= (phi(a)-phi(b))/(a-b) <= beta`` for an elementwise map."""
        return None

    def lipschitz(self, norm: float | str = 2) -> float:
        """Lipschitz constant of the activation map for the given norm (2 or ``"inf"``)."""
        bounds = self.slope_bounds()
        if bounds is None:  # pragma: no cover - grouped activations override
            raise NotImplementedError
        return float(max(abs(bounds[0]), abs(bounds[1])))

    def interval(self, lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sound bounds ``(lo, hi)`` on ``phi(z)`` for ``lower <= z <= upper`` (batched ``(N, n)``).

        No default: monotonicity is a property each activation states, never an assumption of the base class
        (see :func:`monotone_interval` and :func:`breakpoint_interval` for the usual implementations)."""
        raise NotImplementedError(f"{self.describe()} defines no interval bounds")

    def linear_relaxation(self, lower: np.ndarray, upper: np.ndarray) -> tuple:
        """Linear bounds ``(ls, lb, us, ub)`` with ``ls*z + lb <= phi(z) <= us*z + ub`` on ``[lower, upper]``
        (elementwise arrays; grouped activations return matrices).  Used by :mod:`verification.bounds`."""
        raise NotImplementedError(f"{self.describe()} has no linear relaxation for bound propagation")

    def derivative_bounds(self, lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Range ``(dl, du)`` of the (Clarke) derivative ``phi'(z)`` over ``[lower, upper]`` (elementwise)."""
        raise NotImplementedError(f"{self.describe()} has no derivative bounds for Jacobian bound propagation")

    def check_width(self, n: int) -> None:
        """Raise if the activation cannot act on vectors of width ``n`` (grouped activations)."""

    def describe(self) -> str:
        """Short human-readable form, e.g. ``leaky_relu(0.01)``."""
        return self.name

    def to_spec(self) -> dict:
        """JSON-serialisable description (inverse of :func:`verification.activations.from_spec`)."""
        return {"type": self.name}

    def exact_call(self, z: list) -> list:
        """``phi`` on one vector of :class:`fractions.Fraction` values, exactly (piecewise-linear maps only)."""
        raise NotImplementedError(f"{self.describe()} has no exact rational evaluation")

    def z3_terms(self, z: list, lower=None, upper=None) -> list:
        """Exact Z3 real terms of ``phi(z)`` for a list ``z`` of Z3 real terms (one per neuron).

        ``lower``/``upper`` (optional arrays) are sound bounds on ``z``; a piecewise-linear activation whose
        piece is fixed by them is encoded by that linear piece (no case split).  Used by
        :mod:`verification.smt`."""
        raise NotImplementedError(
            f"{self.describe()} has no exact Z3 encoding (only piecewise-linear activations have one)"
        )
