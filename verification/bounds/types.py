"""The containers of bound propagation: one pair of bound arrays, bounds through a network, bounds of
specification rows.

Every ``(lower, upper)`` pair in :mod:`verification.bounds` is a :class:`Bounds`: elementwise
``lower <= value <= upper`` with arrays of shape ``(n,)`` for one box or ``(B, n)`` with a leading batch
axis (one row per input box).  A :class:`Bounds` unpacks and indexes like the pair ``(lower, upper)``
(``l, u = b``; ``b[0]``), so functions that take bounds also accept plain ``(l, u)`` tuples.  The
containers are frozen (fields are never rebound); the arrays are shared, not copied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

__all__ = ["Bounds", "LayerBounds", "SpecBounds", "DeadlineReached", "check_deadline"]


class DeadlineReached(Exception):
    """A bound computation given a ``deadline`` (``time.monotonic()``) stopped at it; no bound is returned."""


def check_deadline(deadline: float | None) -> None:
    """Raise :class:`DeadlineReached` once ``time.monotonic()`` has passed ``deadline`` (``None``: never)."""
    import time

    if deadline is not None and time.monotonic() > deadline:
        raise DeadlineReached


@dataclass(frozen=True, eq=False)
class Bounds:
    """Elementwise bounds ``lower <= value <= upper`` (arrays of equal shape, ``(n,)`` or ``(B, n)``)."""

    lower: np.ndarray
    upper: np.ndarray

    def __iter__(self) -> Iterator[np.ndarray]:
        """``l, u = bounds``."""
        yield self.lower
        yield self.upper

    def __getitem__(self, i: int) -> np.ndarray:
        """``bounds[0]`` / ``bounds[1]``: lower / upper, as for an ``(l, u)`` pair (use :meth:`take` to index
        the batch)."""
        if i == 0:
            return self.lower
        if i == 1:
            return self.upper
        raise IndexError("Bounds is a pair (lower, upper): index 0 or 1; use take() to index the batch")

    @property
    def width(self) -> np.ndarray:
        return self.upper - self.lower

    @property
    def unstable(self) -> np.ndarray:
        """Mask of the entries with ``lower < 0 < upper`` (neurons whose sign the bounds leave open)."""
        return (self.lower < 0) & (self.upper > 0)

    def take(self, index: Any) -> "Bounds":
        """The bounds of the boxes ``index`` (an index into the batch axis)."""
        return Bounds(self.lower[index], self.upper[index])

    def intersect(self, other) -> "Bounds":
        """``self ∩ other`` for bounds ``other`` (a :class:`Bounds`, an ``(l, u)`` pair or ``None``) known to
        hold as well; keeps ``upper >= lower``."""
        if other is None:
            return self
        ol, ou = other
        lower = np.maximum(self.lower, ol)
        return Bounds(lower, np.maximum(np.minimum(self.upper, ou), lower))


@dataclass(frozen=True, eq=False)
class LayerBounds:
    """Bounds through a canonical network on a batch of boxes.

    ``pre[j]``: bounds of the input of activation ``j`` (``(B, n_j)``); ``pair[j]``: bounds of the pair
    differences ``p - q`` of a MaxMin layer ``j`` (``(B, n_j / 2)``), ``None`` for other layers (``pair`` is
    ``None`` when not computed); ``out``: bounds of the output (``None`` when not computed);
    ``infeasible[b]``: the sign constraints of box ``b`` contradict its bounds."""

    pre: tuple
    pair: tuple | None = None
    out: Bounds | None = None
    infeasible: np.ndarray | None = None

    def take(self, index: Any) -> "LayerBounds":
        """The bounds of the boxes ``index`` of the batch."""
        pair = None if self.pair is None else tuple(None if p is None else p.take(index) for p in self.pair)
        return LayerBounds(
            tuple(b.take(index) for b in self.pre), pair, None if self.out is None else self.out.take(index),
            None if self.infeasible is None else self.infeasible[index],
        )


@dataclass(frozen=True, eq=False)
class SpecBounds:
    """Lower bounds of specification rows on a batch of boxes.

    ``lower[b, r]`` is a lower bound of row ``r`` on box ``b``; it is the minimum over the box of the linear
    function ``coef[b, r] · e + lower[b, r] + ||coef[b, r]||_1`` (``e``: normalised input), itself a lower
    bound of the row on the box.  ``pre[j]``: :class:`Bounds` of the input of activation ``j``.
    ``scale[b, r]``: magnitude of the terms summed into ``lower`` (float64 rounding is relative to it; a
    refutation must clear a margin proportional to it)."""

    lower: np.ndarray  # (B, R)
    coef: np.ndarray  # (B, R, n0)
    pre: tuple
    scale: np.ndarray | None = None  # (B, R)

    def guarded(self, tol: float) -> np.ndarray:
        """``lower - tol * (1 + scale)``: a row is refuted on a box when this is ``> 0``."""
        scale = 0.0 if self.scale is None else self.scale
        return self.lower - tol * (1.0 + scale)

    def take(self, index: Any) -> "SpecBounds":
        """The bounds of the boxes ``index`` of the batch."""
        return SpecBounds(self.lower[index], self.coef[index], tuple(Bounds(l[index], u[index]) for l, u in self.pre),
                          None if self.scale is None else self.scale[index])

    def unstable_counts(self) -> np.ndarray:
        """Number of neurons with ``l < 0 < u`` per box."""
        if not self.pre:
            return np.zeros(self.lower.shape[0], dtype=int)
        return sum(((l < 0) & (u > 0)).sum(axis=1) for l, u in self.pre)
