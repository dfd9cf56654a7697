"""Grouped (non-elementwise) activations: GroupSort(g) / MaxMin and Householder.

Both act independently on consecutive groups of the pre-activation vector, are piecewise linear, and are
*not* slope-restricted elementwise maps, so LipSDP's slope-restricted quadratic constraint does not apply
to them directly (Pauli et al., ICLR 2024 give dedicated constraints).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from verification.activations._relax import groupsort_relaxation
from verification.activations.base import Activation
from verification.errors import InvalidParameterError, ShapeMismatchError

__all__ = ["GroupSort", "MaxMin", "Householder"]

_U = np.finfo(np.float64).eps / 2
_TINY = 2.0 ** -1000  # absolute allowance for underflow


@dataclass(frozen=True)
class GroupSort(Activation):
    """Sort each consecutive group of ``group_size`` entries in *descending* order.

    ``GroupSort(2)`` is MaxMin: ``(a, b) -> (max(a, b), min(a, b))``.  Sorting is a permutation in every
    region, hence 1-Lipschitz in l2 and in l-inf.
    """

    group_size: int = 2
    name: ClassVar[str] = "groupsort"
    elementwise: ClassVar[bool] = False
    is_piecewise_linear: ClassVar[bool] = True
    monotone: ClassVar[bool] = True  # the k-th largest entry is non-decreasing in every entry

    def __post_init__(self) -> None:
        if int(self.group_size) != self.group_size or self.group_size < 2:
            raise InvalidParameterError(
                f"The 'group_size' parameter of GroupSort must be an int >= 2. Got {self.group_size!r} instead."
            )
        object.__setattr__(self, "group_size", int(self.group_size))

    def check_width(self, n: int) -> None:
        if n % self.group_size:
            raise ShapeMismatchError(
                f"{self.describe()} needs a width divisible by {self.group_size}, got width {n}"
            )

    def _grouped(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        return z.reshape(z.shape[0], -1, self.group_size)

    def __call__(self, z: np.ndarray) -> np.ndarray:
        g = self._grouped(z)
        return -np.sort(-g, axis=-1).reshape(z.shape)

    def interval(self, lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The k-th largest entry of a group is monotone in every entry: sort lowers and uppers."""
        return self(lower), self(upper)

    def permutation(self, z: np.ndarray) -> np.ndarray:
        """Index array ``p`` (shape ``(N, n)``) with ``phi(z)[:, i] = z[:, p[:, i]]``."""
        g = self._grouped(z)
        order = np.argsort(-g, axis=-1, kind="stable")
        offsets = (np.arange(g.shape[1]) * self.group_size)[None, :, None]
        return (order + offsets).reshape(z.shape)

    def jacobian(self, z: np.ndarray) -> np.ndarray:
        p = self.permutation(z)
        n_batch, n = p.shape
        jac = np.zeros((n_batch, n, n))
        rows = np.broadcast_to(np.arange(n), (n_batch, n))
        jac[np.arange(n_batch)[:, None], rows, p] = 1.0
        return jac

    def lipschitz(self, norm: float | str = 2) -> float:
        return 1.0

    @property
    def pair_form(self) -> bool:
        return self.group_size == 2

    def qc_basis(self) -> np.ndarray:
        """Sorting preserves the sum of each group: the basis is ``1/sqrt(g)``."""
        return np.ones((self.group_size, 1)) / np.sqrt(self.group_size)

    def kink_free(self, lower, upper):
        """No two entries of a group can tie: their intervals are pairwise disjoint."""
        g = self.group_size
        lo, hi = np.asarray(lower), np.asarray(upper)
        glo, ghi = lo.reshape(lo.shape[0], -1, g), hi.reshape(hi.shape[0], -1, g)
        sep = (glo[..., :, None] > ghi[..., None, :]) | (ghi[..., :, None] < glo[..., None, :])
        sep |= np.eye(g, dtype=bool)
        return np.all(sep, axis=(1, 2, 3))

    def linear_relaxation(self, lower, upper):
        """Matrix relaxation ``(Ml, bl, Mu, bu)``, matrices ``(..., n, n)``; MaxMin via ``max = q + relu(p - q)``."""
        return groupsort_relaxation(self.group_size, lower, upper)

    def exact_call(self, z: list) -> list:
        g = self.group_size
        return [v for k in range(0, len(z), g) for v in sorted(z[k : k + g], reverse=True)]

    def z3_terms(self, z: list, lower=None, upper=None) -> list:
        """Descending sort of each group by a bubble network of exact ``If`` compare-exchanges.  For
        MaxMin, a pair whose order is fixed by the bounds (``lower[a] >= upper[b]``) needs no case split."""
        import z3

        g = self.group_size
        out = []
        for k in range(0, len(z), g):
            terms = list(z[k : k + g])
            if g == 2 and lower is not None and upper is not None:
                if lower[k] >= upper[k + 1]:
                    out.extend(terms)
                    continue
                if lower[k + 1] >= upper[k]:
                    out.extend(terms[::-1])
                    continue
            for i in range(g):
                for j in range(g - 1 - i):
                    a, b = terms[j], terms[j + 1]
                    terms[j], terms[j + 1] = z3.If(a >= b, a, b), z3.If(a >= b, b, a)
            out.extend(terms)
        return out

    def describe(self) -> str:
        return "maxmin" if self.group_size == 2 else f"groupsort({self.group_size})"

    def to_spec(self) -> dict:
        return {"type": self.name, "group_size": self.group_size}


def MaxMin() -> GroupSort:  # noqa: N802 - reads like a class at call sites
    """MaxMin activation: ``GroupSort(2)``."""
    return GroupSort(2)


@dataclass(frozen=True, eq=False)
class Householder(Activation):
    """Householder activation on consecutive groups of ``d = len(v)`` entries, ``||v||_2 = 1``.

    ``phi(z) = z`` if ``v·z > 0``, else ``(I - 2 v vᵀ) z``.  Continuous, piecewise linear, orthogonal in
    each piece: 1-Lipschitz in l2; in l-inf its constant is ``max(1, ||I - 2 v vᵀ||_inf)``.
    """

    v: np.ndarray = field(default_factory=lambda: np.array([1.0, -1.0]) / np.sqrt(2.0))
    name: ClassVar[str] = "householder"
    elementwise: ClassVar[bool] = False
    is_piecewise_linear: ClassVar[bool] = True

    def __post_init__(self) -> None:
        v = np.asarray(self.v, dtype=np.float64).ravel()
        if v.size < 2 or not np.all(np.isfinite(v)) or abs(np.linalg.norm(v) - 1.0) > 1e-9:
            raise InvalidParameterError(
                f"The 'v' parameter of Householder must be a finite unit vector of length >= 2. Got {self.v!r}."
            )
        v.setflags(write=False)
        object.__setattr__(self, "v", v)

    @property
    def group_size(self) -> int:
        return int(self.v.size)

    @property
    def reflection(self) -> np.ndarray:
        """``H = I - 2 v vᵀ``."""
        return np.eye(self.v.size) - 2.0 * np.outer(self.v, self.v)

    def check_width(self, n: int) -> None:
        if n % self.group_size:
            raise ShapeMismatchError(f"householder needs a width divisible by {self.group_size}, got width {n}")

    def __call__(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        g = z.reshape(z.shape[0], -1, self.group_size)
        s = g @ self.v
        out = np.where((s > 0)[..., None], g, g - 2.0 * s[..., None] * self.v)
        return out.reshape(z.shape)

    def interval(self, lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Hull of the box (identity branch) and its interval image under ``H`` (reflected branch)."""
        d = self.group_size
        lo = np.asarray(lower, dtype=np.float64).reshape(lower.shape[0], -1, d)
        hi = np.asarray(upper, dtype=np.float64).reshape(upper.shape[0], -1, d)
        mid, rad = (hi + lo) / 2, (hi - lo) / 2
        h = self.reflection
        hmid, hrad = mid @ h.T, rad @ np.abs(h).T
        return (np.minimum(lo, hmid - hrad).reshape(lower.shape), np.maximum(hi, hmid + hrad).reshape(upper.shape))

    def jacobian(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        d = self.group_size
        g = z.reshape(z.shape[0], -1, d)
        active = (g @ self.v) > 0
        n = z.shape[1]
        jac = np.zeros((z.shape[0], n, n))
        h = self.reflection
        for k in range(g.shape[1]):
            sl = slice(k * d, (k + 1) * d)
            jac[:, sl, sl] = np.where(active[:, k, None, None], np.eye(d), h)
        return jac

    def lipschitz(self, norm: float | str = 2) -> float:
        """Both pieces are linear and agree where ``v·z = 0``, so the constant is the larger norm of ``I`` and
        ``H = I - 2 v vᵀ``: in l2 ``max(1, |2 v·v - 1|)``, in l-inf the largest row sum of ``|H|`` (``H`` is
        symmetric: the same in l1).  ``v`` is a float64 vector whose ``v·v`` may exceed 1 by a rounding (then the
        constant is above 1, e.g. 1 + 2.7e-16 for ``fl(1/√2)·(1, 1)``): computed in exact rationals of the stored
        ``v`` and rounded up."""
        from fractions import Fraction

        v = [Fraction(float(c)) for c in self.v]
        if norm == 2:
            exact = abs(2 * sum(c * c for c in v) - 1)
        else:
            exact = max(abs(1 - 2 * a * a) + sum(2 * abs(a * b) for j, b in enumerate(v) if j != i)
                        for i, a in enumerate(v))
        bound = float(max(Fraction(1), exact))
        return bound if Fraction(bound) >= exact else float(np.nextafter(bound, np.inf))

    def qc_basis(self) -> np.ndarray:
        """Both branches fix every ``w ⟂ v``: the ``d - 1`` vectors ``v_p e_j - v_j e_p`` (``p`` the largest
        entry of ``v``), which are orthogonal to the stored float ``v`` exactly (a QR basis is orthogonal only up
        to rounding, and the SDP's free multipliers on these equalities must not rely on that)."""
        v = self.v
        p = int(np.argmax(np.abs(v)))
        cols = []
        for j in range(v.size):
            if j != p:
                w = np.zeros(v.size)
                w[j], w[p] = v[p], -v[j]
                cols.append(w)
        return np.column_stack(cols)

    def kink_free(self, lower, upper):
        """``v·z`` keeps one sign on every group of the box (its interval, with a rounding allowance)."""
        g = self.group_size
        lo, hi = np.asarray(lower), np.asarray(upper)
        glo, ghi = lo.reshape(lo.shape[0], -1, g), hi.reshape(hi.shape[0], -1, g)
        mid, rad = (glo + ghi) / 2, (ghi - glo) / 2
        av = np.abs(self.v)
        s = mid @ self.v
        r = rad @ av + 4 * (g + 2) * _U * (np.abs(mid) + rad) @ av + _TINY
        return np.all((s - r > 0) | (s + r < 0), axis=1)

    def exact_call(self, z: list) -> list:
        from fractions import Fraction

        d = self.group_size
        v = [Fraction(float(c)) for c in self.v]
        out = []
        for k in range(0, len(z), d):
            grp = z[k : k + d]
            s = sum(vi * t for vi, t in zip(v, grp))
            out.extend(grp if s > 0 else [t - 2 * s * vi for vi, t in zip(v, grp)])
        return out

    def z3_terms(self, z: list, lower=None, upper=None) -> list:
        """``z`` if ``v·z > 0`` else ``z - 2 (v·z) v``, with ``v`` as exact rationals (of its float64 values)."""
        from fractions import Fraction

        import z3

        d = self.group_size
        v = [z3.RealVal(Fraction(float(c))) for c in self.v]
        out = []
        for k in range(0, len(z), d):
            grp = list(z[k : k + d])
            s = z3.Sum([vi * t for vi, t in zip(v, grp)])
            out.extend(z3.If(s > 0, t, t - 2 * s * vi) for vi, t in zip(v, grp))
        return out

    def describe(self) -> str:
        return f"householder(d={self.group_size})"

    def to_spec(self) -> dict:
        return {"type": self.name, "v": self.v.tolist()}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Householder) and np.array_equal(self.v, other.v)

    def __hash__(self) -> int:
        return hash((self.name, self.v.tobytes()))
