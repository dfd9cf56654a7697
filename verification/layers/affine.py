"""The affine-layer protocol and its dense implementation.

An affine layer maps ``x -> W x + b``.  Batches are rows: every product acts on the **last axis** of its
argument, so ``linear`` takes ``(..., in_features)`` to ``(..., out_features)`` and ``transpose`` takes
``(..., out_features)`` to ``(..., in_features)`` (the backward pass of CROWN: ``lam @ W``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np

from verification.errors import InvalidWeightsError, ShapeMismatchError, UnsupportedLayerError

__all__ = ["AffineLayer", "ConvSpec", "Dense", "MAX_DENSE_ENTRIES", "check_dense"]

_EPS = np.finfo(np.float64).eps
#: Largest dense matrix formed from a non-dense layer (``as_matrix()`` of a convolution, ``compose``):
#: 2.5e7 float64 entries = 200 MB.
MAX_DENSE_ENTRIES = 25_000_000


def check_dense(n_out: int, n_in: int, what: str) -> None:
    """Refuse (one line) a dense ``n_out x n_in`` matrix above :data:`MAX_DENSE_ENTRIES` entries."""
    if n_out * n_in > MAX_DENSE_ENTRIES:
        raise UnsupportedLayerError(
            f"{what} would need a dense {n_out} x {n_in} matrix ({n_out * n_in:.3g} entries, limit "
            f"{MAX_DENSE_ENTRIES:.2g}); this needs dense weights and is for small networks only"
        )


class ConvSpec(NamedTuple):
    """What a layer that is a 2-D convolution tells the frequency-domain methods (see
    :attr:`AffineLayer.conv_spec`): ``kernel`` ``(C_out, C_in / groups, kh, kw)``, shapes ``(C, H, W)``,
    ``pads`` ``(top, bottom, left, right)``, ``padding_mode`` one of zeros/circular/reflect/replicate; output
    ``(o, i, j)`` reads input rows ``i s_h + t d_h - pad_top`` and columns ``j s_w + u d_w - pad_left``."""

    kernel: np.ndarray
    input_shape: tuple[int, int, int]
    output_shape: tuple[int, int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    pads: tuple[int, int, int, int]
    padding_mode: str


def _as_f64(a: Any) -> np.ndarray:
    arr = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
    arr.setflags(write=False)
    return arr


class AffineLayer:
    """Protocol of affine layers ``x -> W x + b``.  Subclasses define ``in_features``, ``out_features``,
    ``bias``, ``linear``, ``transpose``, ``abs_linear``, ``abs_transpose``, ``as_matrix`` and may override the
    rest with cheaper forms (e.g. a convolution's norm bound without forming ``W``)."""

    bias: np.ndarray

    @property
    def in_features(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def out_features(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    # ---------------------------------------------------------------- products (last axis)
    def linear(self, x: np.ndarray) -> np.ndarray:
        """``W x`` for every row ``x``: ``(..., in) -> (..., out)``."""
        raise NotImplementedError  # pragma: no cover

    def transpose(self, y: np.ndarray) -> np.ndarray:
        """``Wᵀ y`` for every row ``y`` (i.e. ``y @ W``): ``(..., out) -> (..., in)``."""
        raise NotImplementedError  # pragma: no cover

    def abs_linear(self, x: np.ndarray) -> np.ndarray:
        """``|W| x`` for every row: ``(..., in) -> (..., out)`` (radii of interval propagation)."""
        raise NotImplementedError  # pragma: no cover

    def abs_transpose(self, y: np.ndarray) -> np.ndarray:
        """``|W|ᵀ y`` for every row: ``(..., out) -> (..., in)``."""
        raise NotImplementedError  # pragma: no cover

    def as_matrix(self) -> np.ndarray:
        """The dense ``(out, in)`` matrix, read-only.  For methods that need a small dense matrix (SDPs,
        exact enumeration, Z3 encodings); bound propagation should use the products instead."""
        raise NotImplementedError  # pragma: no cover

    def as_sparse(self):
        """The ``(out, in)`` matrix as a ``scipy.sparse`` CSR array (for loaders that assemble layers from
        blocks; a convolution returns its own sparse matrix, never a dense one)."""
        from scipy import sparse

        return sparse.csr_array(np.asarray(self.as_matrix(), dtype=np.float64))

    # ---------------------------------------------------------------- derived operations
    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.linear(x) + self.bias

    def rows(self, index: Any) -> np.ndarray:
        """Rows ``W[index]`` as a dense array (``index`` an int, slice or index array)."""
        return self.as_matrix()[index]

    def interval(self, lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Float64 bounds of ``W x + b`` over the box ``[lower, upper]`` (centre/radius form, no rounding
        allowance; :mod:`verification.evaluate` adds one)."""
        mid, rad = (upper + lower) / 2, (upper - lower) / 2
        c, r = self(mid), self.abs_linear(rad)
        return c - r, c + r

    def norm_bound(self, norm: int | str) -> float:
        """A certified upper bound on the operator norm for l2 (spectral) or ``"inf"`` (max row l1): the
        float64 value times ``1 + 8 (n + 2) eps`` covers the rounding of the sums and of a backward-stable SVD;
        ``n`` times the smallest normal number is added for weights so small that relative error bounds fail
        (underflow to subnormals)."""
        m = self.as_matrix()
        up = 1.0 + 8 * (max(m.shape) + 2) * _EPS
        floor = max(m.shape) * float(np.finfo(np.float64).tiny)
        if norm == 2:
            return float(np.linalg.norm(m, 2)) * up + floor
        return float(np.abs(m).sum(axis=1).max()) * up + floor

    def compose(self, inner: "AffineLayer") -> "AffineLayer":
        """The affine layer ``self ∘ inner`` (exact up to the rounding of one matrix product)."""
        w = self.as_matrix()
        return Dense(w @ inner.as_matrix(), w @ inner.bias + self.bias)

    def select(self, c: np.ndarray) -> "AffineLayer":
        """The layer ``x -> C (W x + b)`` for a ``(k, out)`` matrix ``C`` (e.g. one logit or a difference)."""
        c = np.atleast_2d(np.asarray(c, dtype=np.float64))
        return Dense(self.transpose(c), c @ self.bias)

    def rounded(self, dtype: type) -> "AffineLayer":
        """The same layer with weights and bias rounded to ``dtype`` (stored back as float64)."""
        raise NotImplementedError  # pragma: no cover

    def check_finite(self) -> str | None:
        """``"weight"`` or ``"bias"`` if that part has a NaN/inf entry, else ``None``."""
        if not np.all(np.isfinite(self.bias)):
            return "bias"
        return None

    @property
    def conv_spec(self) -> ConvSpec | None:
        """The layer as a 2-D convolution (:class:`ConvSpec`) if it is one, else ``None`` (the default)."""
        return None

    @property
    def cost(self) -> int:
        """Multiply-adds of one product with one row (``in * out`` for a dense layer)."""
        return self.in_features * self.out_features

    def describe(self) -> str:  # pragma: no cover - subclasses
        return f"affine({self.in_features}->{self.out_features})"


@dataclass(frozen=True, eq=False)
class Dense(AffineLayer):
    """Affine layer ``x -> weight @ x + bias`` with ``weight`` of shape ``(out_features, in_features)``."""

    weight: np.ndarray
    bias: np.ndarray | None = None

    def __post_init__(self) -> None:
        w = np.asarray(self.weight)
        if w.ndim != 2:
            raise ShapeMismatchError(f"dense weight must be a 2-D matrix, got shape {w.shape}")
        b = np.zeros(w.shape[0]) if self.bias is None else np.asarray(self.bias).reshape(-1)
        if b.shape[0] != w.shape[0]:
            raise ShapeMismatchError(
                f"dense bias has {b.shape[0]} entries but the weight has {w.shape[0]} output rows"
            )
        object.__setattr__(self, "weight", _as_f64(w))
        object.__setattr__(self, "bias", _as_f64(b))

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.weight.shape[0])

    @cached_property
    def abs_weight(self) -> np.ndarray:
        """``|W|``, computed once."""
        return _as_f64(np.abs(self.weight))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x @ self.weight.T + self.bias

    def linear(self, x: np.ndarray) -> np.ndarray:
        return x @ self.weight.T

    def transpose(self, y: np.ndarray) -> np.ndarray:
        return y @ self.weight

    def abs_linear(self, x: np.ndarray) -> np.ndarray:
        return x @ self.abs_weight.T

    def abs_transpose(self, y: np.ndarray) -> np.ndarray:
        return y @ self.abs_weight

    def as_matrix(self) -> np.ndarray:
        return self.weight

    def compose(self, inner: "AffineLayer") -> "Dense":
        """``self ∘ inner`` as a dense layer; a non-dense ``inner`` (e.g. a convolution) is applied to the rows
        of ``W`` through its transposed product, never densified itself."""
        if isinstance(inner, Dense):
            return super().compose(inner)
        check_dense(self.out_features, inner.in_features, f"merging {self.describe()} after {inner.describe()}")
        return Dense(inner.transpose(self.weight), self.weight @ inner.bias + self.bias)

    def rounded(self, dtype: type) -> "Dense":
        return Dense(self.weight.astype(dtype), self.bias.astype(dtype))

    def check_finite(self) -> str | None:
        if not np.all(np.isfinite(self.weight)):
            return "weight"
        return super().check_finite()

    def describe(self) -> str:
        return f"dense({self.in_features}->{self.out_features})"

    @staticmethod
    def identity(n: int) -> "Dense":
        return Dense(np.eye(n), np.zeros(n))
