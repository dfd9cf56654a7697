"""Property model: input boxes with a disjunction of unsafe output polytopes, exact values kept.

A property is *violated* iff some input ``x`` of some region's box has ``y = f(x)`` in one of the region's
unsafe polytopes ``A y <= b``.  :class:`VnnlibProperty` holds a tuple of :class:`InputRegion` (box + a
disjunction of :class:`OutputConstraint`).  Every constraint keeps its exact value (``A_exact``,
``b_exact``, ``lower_exact``, ``upper_exact``: Fractions) next to float64 arrays: output rows and bounds are
the nearest floats; input boxes are rounded **outward** (``lower``/``upper``: proofs on the float box cover
the exact box) and :meth:`InputRegion.inner_bounds` gives the floats inside the exact box.  Strict rows and
bounds (``<``, ``>``) are recorded; proofs may treat them as non-strict (sound), a counterexample must meet
the property as written (:meth:`VnnlibProperty.is_violated_exactly`).

Built by the VNN-LIB reader (:mod:`verification.vnnlib`), by :func:`box_property` /
:func:`robustness_property`, or directly (e.g. :meth:`InputRegion.from_exact`).
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from typing import Sequence

import numpy as np

from verification.errors import PropertyFormatError, ShapeMismatchError

__all__ = ["OutputConstraint", "InputRegion", "VnnlibProperty", "box_property", "robustness_property"]

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
_FMAX = sys.float_info.max
_FMAX_Q = Fraction(_FMAX)


# ----------------------------------------------------------------------------------------------- exact <-> float
def _down(q: Fraction) -> float:
    """Largest float64 ``<= q`` (``q`` within the float range)."""
    n, d = q.numerator, q.denominator
    f = n / d  # correctly rounded
    fn, fd = f.as_integer_ratio()
    return math.nextafter(f, -math.inf) if fn * d > n * fd else f


def _up(q: Fraction) -> float:
    """Smallest float64 ``>= q`` (``q`` within the float range)."""
    n, d = q.numerator, q.denominator
    f = n / d
    fn, fd = f.as_integer_ratio()
    return math.nextafter(f, math.inf) if fn * d < n * fd else f


def _le(f: float, q: Fraction) -> bool:
    """``f <= q`` exactly."""
    n, d = f.as_integer_ratio()
    return n * q.denominator <= q.numerator * d


def _ge(f: float, q: Fraction) -> bool:
    """``f >= q`` exactly."""
    n, d = f.as_integer_ratio()
    return n * q.denominator >= q.numerator * d


def _in_float_range(q: Fraction) -> bool:
    try:
        f = q.numerator / q.denominator
    except OverflowError:
        return False
    return abs(f) < _FMAX or abs(q) <= _FMAX_Q


def _fractions(values, n: int, what: str) -> tuple[Fraction, ...] | None:
    """``values`` as exact Fractions (floats exactly), ``None`` if one is NaN / infinite."""
    vals = values.reshape(-1).tolist() if isinstance(values, np.ndarray) else list(values)
    if len(vals) != n:
        raise ShapeMismatchError(f"{what} has {len(vals)} entries, the property expects {n}")
    try:
        return tuple(v if type(v) is Fraction else Fraction(v) for v in vals)
    except (ValueError, OverflowError):
        return None


def _exact(values) -> tuple[Fraction, ...]:
    """Exact values (Fractions kept, floats / ints / decimal strings converted exactly); finite only."""
    try:
        out = tuple(v if type(v) is Fraction else Fraction(v) for v in values)
    except (ValueError, OverflowError, TypeError) as exc:
        raise PropertyFormatError(f"exact value is not a finite number ({_one_line(str(exc))})") from None
    if any(q.numerator.bit_length() - q.denominator.bit_length() >= 1023 and not _in_float_range(q) for q in out):
        raise PropertyFormatError("exact value outside the float64 range")
    return out


def _fmt(q: Fraction) -> str:
    f = float(q)
    return repr(f) if Fraction(f) == q else f"{f!r} (exactly {q})"


def _one_line(s: str) -> str:
    """``s`` with control characters (line breaks, NUL, ...) escaped."""
    return _CONTROL_RE.sub(lambda m: ascii(m.group())[1:-1], s)


# ----------------------------------------------------------------------------------------------- property model
@dataclass(frozen=True, eq=False)
class OutputConstraint:
    """Conjunction of rows ``A_r y <= b_r`` (``A_r y < b_r`` where ``strict[r]``); zero rows means "any output".

    ``A_exact`` / ``b_exact`` are the exact values as written (default: the exact values of the floats);
    ``A`` / ``b`` are their nearest float64 values.
    """

    A: np.ndarray
    b: np.ndarray
    strict: np.ndarray | None = None
    A_exact: tuple | None = None
    b_exact: tuple | None = None

    def __post_init__(self) -> None:
        A = np.ascontiguousarray(np.asarray(self.A, dtype=np.float64))
        b = np.ascontiguousarray(np.asarray(self.b, dtype=np.float64).reshape(-1))
        if A.ndim != 2 or A.shape[0] != b.shape[0]:
            raise PropertyFormatError(f"output constraint needs A (m, out_dim) and b (m,), got {A.shape}, {b.shape}")
        if not (np.isfinite(A).all() and np.isfinite(b).all()):
            raise PropertyFormatError("output constraint has a NaN or infinite coefficient or bound")
        m, n = A.shape
        strict = np.zeros(m, dtype=bool) if self.strict is None else np.asarray(self.strict, dtype=bool).reshape(-1).copy()
        A_ex = tuple(map(_exact, A.tolist() if self.A_exact is None else self.A_exact))
        b_ex = _exact(b.tolist() if self.b_exact is None else self.b_exact)
        if strict.shape != (m,) or len(A_ex) != m or len(b_ex) != m or any(len(r) != n for r in A_ex):
            raise PropertyFormatError(f"output constraint: strict / A_exact / b_exact do not match A {A.shape}")
        for k, v in (("A", A), ("b", b), ("strict", strict), ("A_exact", A_ex), ("b_exact", b_ex)):
            object.__setattr__(self, k, v)

    def margin(self, y: np.ndarray) -> np.ndarray:
        """``max_r (A y - b)_r`` per row of ``y`` (batched, float64, strictness ignored); ``<= 0`` iff ``y`` lies
        in the closure of the unsafe polytope."""
        y = np.atleast_2d(np.asarray(y, dtype=np.float64))
        if self.A.shape[0] == 0:
            return np.full(y.shape[0], -np.inf)
        return (y @ self.A.T - self.b).max(axis=1)

    def contains(self, y: np.ndarray, atol: float = 0.0) -> np.ndarray:
        """Batched float64 membership: every row ``A_r y - b_r <= atol`` (``< atol`` for strict rows)."""
        y = np.atleast_2d(np.asarray(y, dtype=np.float64))
        if self.A.shape[0] == 0:
            return np.ones(y.shape[0], dtype=bool)
        with np.errstate(invalid="ignore", over="ignore"):  # NaN / inf outputs are simply not contained
            r = y @ self.A.T - self.b
        return np.where(self.strict, r < atol, r <= atol).all(axis=1)

    def contains_exact(self, y: Sequence, d: Sequence[float] | None = None) -> bool:
        """Exact rational membership of ``y`` (Fractions, or floats taken exactly), strict rows strictly; with
        ``d``, of every point within ``d`` of ``y`` (each row must hold with the margin ``sum_j |A_r,j| d_j``)."""
        yq = _fractions(y, self.A.shape[1], "y")
        if yq is None:
            return False
        if d is not None and not np.all(np.isfinite(d)):
            return False  # the deviation overflows float64: no point is unsafe by a known margin
        slack = self.slack(d) if d is not None else (0,) * len(self.b_exact)
        for row, bq, st, sq in zip(self._sparse, self.b_exact, self.strict.tolist(), slack):
            s = sum(a * yq[j] for j, a in row) + sq
            if not (s < bq if st else s <= bq):
                return False
        return True

    @cached_property
    def _sparse(self) -> tuple:
        return tuple(tuple((j, a) for j, a in enumerate(r) if a) for r in self.A_exact)

    def slack(self, d: Sequence[float]) -> tuple[Fraction, ...]:
        """``sum_j |A_r,j| d_j`` per row, exactly (``d`` floats taken exactly): how far a row can move when every
        output may move by ``d_j``."""
        dq = [Fraction(float(v)) for v in d]
        return tuple(sum((abs(a) * dq[j] for j, a in row), Fraction(0)) for row in self._sparse)

    def widened(self, d: Sequence[float]) -> "OutputConstraint":
        """The rows ``A_r y <= b_r + sum_j |A_r,j| d_j``: contains every ``y`` within ``d`` of this polytope, so a
        proof that ``f~`` never meets the widened rows proves it for every ``f`` with ``|f - f~| <= d``."""
        b_ex = tuple(bq + sq for bq, sq in zip(self.b_exact, self.slack(d)))
        return OutputConstraint(self.A, np.array([_up(q) for q in b_ex]), self.strict, self.A_exact, b_ex)


@dataclass(frozen=True, eq=False)
class InputRegion:
    """An input box with a disjunction of unsafe output polytopes.

    ``lower_exact`` / ``upper_exact`` (Fractions) and ``lower_strict`` / ``upper_strict`` (bool arrays) give
    the box as written; ``lower`` / ``upper`` are float64 rounded **outward** (the closed float box contains
    the exact box).  Without exact values the floats are taken as exact and non-strict.
    """

    lower: np.ndarray
    upper: np.ndarray
    outputs: tuple[OutputConstraint, ...]
    lower_exact: tuple | None = None
    upper_exact: tuple | None = None
    lower_strict: np.ndarray | None = None
    upper_strict: np.ndarray | None = None

    def __post_init__(self) -> None:
        lo = np.asarray(self.lower, dtype=np.float64).reshape(-1).copy()
        hi = np.asarray(self.upper, dtype=np.float64).reshape(-1).copy()
        if lo.shape != hi.shape or not (np.isfinite(lo).all() and np.isfinite(hi).all()):
            raise PropertyFormatError("an input box needs finite lower and upper bounds of equal length")
        n = lo.size
        lo_ex = _exact(lo.tolist() if self.lower_exact is None else self.lower_exact)
        hi_ex = _exact(hi.tolist() if self.upper_exact is None else self.upper_exact)
        ls = np.zeros(n, bool) if self.lower_strict is None else np.asarray(self.lower_strict, bool).reshape(-1).copy()
        hs = np.zeros(n, bool) if self.upper_strict is None else np.asarray(self.upper_strict, bool).reshape(-1).copy()
        if len(lo_ex) != n or len(hi_ex) != n or ls.shape != (n,) or hs.shape != (n,):
            raise PropertyFormatError(f"input box: exact bounds / strictness do not match {n} inputs")
        for k, v in (("lower", lo), ("upper", hi), ("outputs", tuple(self.outputs)), ("lower_exact", lo_ex),
                     ("upper_exact", hi_ex), ("lower_strict", ls), ("upper_strict", hs)):
            object.__setattr__(self, k, v)
        self._check_box()

    def _check_box(self) -> None:
        """Refuse an empty exact box and float bounds that do not contain the exact box."""
        for i, (lq, hq, s1, s2) in enumerate(zip(self.lower_exact, self.upper_exact, self.lower_strict.tolist(),
                                                  self.upper_strict.tolist())):
            if lq > hq or (lq == hq and (s1 or s2)):
                raise PropertyFormatError(f"empty input box: X_{i} has lower {_fmt(lq)} > upper {_fmt(hq)}"
                                          if lq > hq else f"empty input box: X_{i} = {_fmt(lq)} with a strict bound")
        if not (all(map(_le, self.lower.tolist(), self.lower_exact))
                and all(map(_ge, self.upper.tolist(), self.upper_exact))):
            raise PropertyFormatError("input box: the float bounds do not contain the exact bounds")

    @classmethod
    def from_exact(cls, lower_exact, upper_exact, outputs, lower_strict=None, upper_strict=None) -> "InputRegion":
        """Region from exact bounds (Fractions within the float range); floats rounded outward."""
        lo = np.array([_down(q) for q in lower_exact], dtype=np.float64)
        hi = np.array([_up(q) for q in upper_exact], dtype=np.float64)
        return cls(lo, hi, outputs, tuple(lower_exact), tuple(upper_exact), lower_strict, upper_strict)

    def margin(self, y: np.ndarray) -> np.ndarray:
        """``min_k max_r (A_k y - b_k)_r``: ``<= 0`` iff ``y`` is unsafe for this region (strictness ignored)."""
        return np.min(np.stack([c.margin(y) for c in self.outputs]), axis=0)

    def inner_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Float64 bounds rounded inward: the floats ``x`` with ``lo <= x <= hi`` are exactly the floats in the
        exact (possibly half-open, for strict bounds) interval.  ``lo[i] > hi[i]`` where no float lies in it."""
        lo, hi = self._inner
        return lo.copy(), hi.copy()

    @cached_property
    def _inner(self) -> tuple[np.ndarray, np.ndarray]:
        lo = [_up(q) for q in self.lower_exact]
        hi = [_down(q) for q in self.upper_exact]
        for i in np.flatnonzero(self.lower_strict):
            if Fraction(lo[i]) == self.lower_exact[i]:
                lo[i] = math.nextafter(lo[i], math.inf)
        for i in np.flatnonzero(self.upper_strict):
            if Fraction(hi[i]) == self.upper_exact[i]:
                hi[i] = math.nextafter(hi[i], -math.inf)
        return np.array(lo, dtype=np.float64), np.array(hi, dtype=np.float64)

    def contains_input_exact(self, x: np.ndarray) -> bool:
        """Whether the float point ``x`` lies in the exact box (strict bounds strictly), in exact arithmetic."""
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        if x.shape != self.lower.shape:
            raise ShapeMismatchError(f"x has {x.size} entries, the property expects {self.lower.size}")
        if not np.all((x >= self.lower) & (x <= self.upper)):  # outward box: a superset (NaN fails)
            return False
        lo, hi = self._inner  # lo >= exact lower, hi <= exact upper: strictly between is inside
        for i in np.flatnonzero((x <= lo) | (x >= hi)).tolist():
            q = Fraction(float(x[i]))
            lq, hq = self.lower_exact[i], self.upper_exact[i]
            if not (q > lq if self.lower_strict[i] else q >= lq) or not (q < hq if self.upper_strict[i] else q <= hq):
                return False
        return True

    def contains_output(self, y: np.ndarray, atol: float = 0.0) -> np.ndarray:
        """Batched float64: ``y`` meets some output constraint (see :meth:`OutputConstraint.contains`)."""
        y = np.atleast_2d(np.asarray(y, dtype=np.float64))
        out = np.zeros(y.shape[0], dtype=bool)
        for oc in self.outputs:
            out |= oc.contains(y, atol)
        return out

    def contains_output_exact(self, y: Sequence) -> bool:
        """Exact: the outputs ``y`` (Fractions) meet some output constraint, strict rows strictly."""
        return any(oc.contains_exact(y) for oc in self.outputs)

    def widened(self, d: Sequence[float] | None) -> "InputRegion":
        """The same box with every output constraint widened by ``d`` (:meth:`OutputConstraint.widened`); the
        region itself if ``d`` is None or zero."""
        if d is None or not np.any(np.asarray(d)):
            return self
        if not np.all(np.isfinite(d)):
            raise ArithmeticError("the rounding bound of the network's computed weights overflows float64")
        return InputRegion(self.lower, self.upper, tuple(oc.widened(d) for oc in self.outputs), self.lower_exact,
                           self.upper_exact, self.lower_strict, self.upper_strict)


@dataclass(frozen=True, eq=False)
class VnnlibProperty:
    """A property in normal form: violated iff some region has ``x`` in its box with ``f(x)`` unsafe."""

    in_dim: int
    out_dim: int
    regions: tuple[InputRegion, ...]
    source: str | None = None
    metadata: dict = field(default_factory=dict)

    def is_violated_by(self, x: np.ndarray, y: np.ndarray, atol: float = 0.0) -> bool:
        """Float64 check: ``x`` lies in some region's (outward float) box within ``atol`` and ``y`` meets one of
        its output constraints loosened by ``atol`` (rows ``A y - b <= atol``, strict rows ``< atol``; a
        negative ``atol`` demands a margin).  For the exact check use :meth:`is_violated_exactly`."""
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if x.size != self.in_dim or y.size != self.out_dim:
            raise ShapeMismatchError(f"x, y have {x.size}, {y.size} entries; the property has {self.in_dim} inputs "
                                     f"and {self.out_dim} outputs")
        for reg in self.regions:
            if np.all(x >= reg.lower - atol) and np.all(x <= reg.upper + atol) and reg.contains_output(y, atol)[0]:
                return True
        return False

    def is_violated_exactly(self, x: np.ndarray, y: Sequence) -> bool:
        """Exact check: the float point ``x`` lies in some region's exact box and the exact outputs ``y`` (a
        sequence of Fractions computed by the caller) satisfy one of its output constraints, strict rows
        strictly."""
        yq = _fractions(y, self.out_dim, "y")
        if yq is None:
            return False
        return any(reg.contains_input_exact(x) and reg.contains_output_exact(yq) for reg in self.regions)

    @cached_property
    def has_strict(self) -> bool:
        """Whether some input bound or output row is strict (``<`` / ``>``)."""
        return any(r.lower_strict.any() or r.upper_strict.any() or any(oc.strict.any() for oc in r.outputs)
                   for r in self.regions)

    def describe(self) -> str:
        n_out = sum(len(r.outputs) for r in self.regions)
        return (
            f"VNN-LIB property: {self.in_dim} inputs, {self.out_dim} outputs, {len(self.regions)} input box(es), "
            f"{n_out} unsafe output polytope(s)"
        )


# ----------------------------------------------------------------------------------------------- builders
def box_property(lower, upper, A, b) -> VnnlibProperty:
    """Property "some x in [lower, upper] has A f(x) <= b" (one box, one unsafe polytope; floats taken exactly)."""
    lo = np.asarray(lower, dtype=np.float64).reshape(-1)
    hi = np.asarray(upper, dtype=np.float64).reshape(-1)
    A = np.atleast_2d(np.asarray(A, dtype=np.float64))
    if lo.shape != hi.shape or np.any(lo > hi) or not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise PropertyFormatError("box_property needs finite lower <= upper of equal length")
    return VnnlibProperty(lo.size, A.shape[1], (InputRegion(lo, hi, (OutputConstraint(A, b),)),))


def robustness_property(lower, upper, label: int, out_dim: int) -> VnnlibProperty:
    """Unsafe iff some x in the box has ``f_j(x) >= f_label(x)`` for a class ``j != label`` (ties count as
    violations, as in VNN-COMP robustness specs; all rows non-strict)."""
    lo = np.asarray(lower, dtype=np.float64).reshape(-1)
    hi = np.asarray(upper, dtype=np.float64).reshape(-1)
    if not (isinstance(label, (int, np.integer)) and 0 <= label < out_dim):
        raise PropertyFormatError(f"robustness_property: label {label!r} is not a class in 0..{out_dim - 1}")
    outs = []
    for j in range(out_dim):
        if j == label:
            continue
        row = np.zeros(out_dim)
        row[label], row[j] = 1.0, -1.0  # y_label - y_j <= 0
        outs.append(OutputConstraint(row[None, :], np.zeros(1)))
    return VnnlibProperty(lo.size, out_dim, (InputRegion(lo, hi, tuple(outs)),))
