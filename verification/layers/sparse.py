"""A general sparse affine layer: ``x -> W x + b`` with ``W`` kept as a CSR matrix.

Loaders build it where a graph is not a plain chain: a residual connection or a max-pooling window becomes
one affine map from all the tensors still needed (stacked) to the next ones, whose blocks are convolutions,
identities and selections.  Memory follows the stored entries (``nnz``), never ``in x out``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from verification.errors import ShapeMismatchError
from verification.layers.affine import AffineLayer, Dense, _as_f64, check_dense

if TYPE_CHECKING:
    from scipy import sparse

__all__ = ["SparseAffine", "CsrProducts"]

_EPS = np.finfo(np.float64).eps
_SMALL_SVD = 4_000_000  # entries up to which the l2 norm bound uses a dense SVD


def _sparse():
    from scipy import sparse

    return sparse


class CsrProducts(AffineLayer):
    """The products of the affine-layer protocol for a layer whose matrix is a CSR array: subclasses provide
    the cached ``_csr``, ``_csr_t``, ``_abs_csr``, ``_abs_csr_t`` and ``_csr32`` (float32 copy)."""

    _what = "sparse"

    def _apply(self, mat, x: np.ndarray, n: int) -> np.ndarray:
        arr = np.asarray(x)
        if arr.shape[-1] != n:
            raise ShapeMismatchError(
                f"{self._what} product: input has {arr.shape[-1]} entries on its last axis, expected {n}")
        lead = arr.shape[:-1]
        flat = arr.reshape(-1, n)
        if flat.dtype != np.float32:
            flat = flat.astype(np.float64, copy=False)
        # (n, N) row-major operand for scipy's CSR x dense kernel; the product is returned as the transposed view
        # (no copy): chained products (CROWN's back-substitution) then pass it on without copying either way
        out = (mat @ np.ascontiguousarray(flat.T)).T
        return out.reshape(lead + (mat.shape[0],))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``W x + b``; a float32 input is computed in float32 (float32 rounding of weights and bias; the
        loader cross-check uses this to measure float32 round-off)."""
        if np.asarray(x).dtype == np.float32:
            return self.linear(x) + self.bias.astype(np.float32)
        return self.linear(x) + self.bias

    def linear(self, x: np.ndarray) -> np.ndarray:
        mat = self._csr32 if np.asarray(x).dtype == np.float32 else self._csr
        return self._apply(mat, x, self.in_features)

    def transpose(self, y: np.ndarray) -> np.ndarray:
        return self._apply(self._csr_t, y, self.out_features)

    def abs_linear(self, x: np.ndarray) -> np.ndarray:
        return self._apply(self._abs_csr, x, self.in_features)

    def abs_transpose(self, y: np.ndarray) -> np.ndarray:
        return self._apply(self._abs_csr_t, y, self.out_features)

    def as_matrix(self) -> np.ndarray:
        check_dense(self.out_features, self.in_features, f"as_matrix() of {self.describe()}")
        return _as_f64(self._csr.toarray())

    def as_sparse(self) -> "sparse.csr_array":
        return self._csr

    def rows(self, index: Any) -> np.ndarray:
        idx = np.arange(self.out_features)[index]
        out = self._csr[np.atleast_1d(idx)].toarray()
        return out[0] if np.ndim(idx) == 0 else out


@dataclass(frozen=True, eq=False)
class SparseAffine(CsrProducts):
    """``x -> matrix @ x + bias`` with ``matrix`` a ``scipy.sparse`` CSR array ``(out, in)``; ``label`` says what
    the layer is made of (for messages), e.g. ``"residual block 2 (conv + identity)"``."""

    matrix: Any
    bias: np.ndarray | None = None
    label: str = "sparse"

    def __post_init__(self) -> None:
        sp = _sparse()
        if not sp.issparse(self.matrix):
            raise ShapeMismatchError("SparseAffine needs a scipy.sparse matrix")
        m = sp.csr_array(self.matrix, dtype=np.float64)
        m.sum_duplicates()
        m.sort_indices()
        if m.ndim != 2:
            raise ShapeMismatchError(f"sparse weight must be 2-D, got shape {m.shape}")
        b = np.zeros(m.shape[0]) if self.bias is None else np.asarray(self.bias, dtype=np.float64).reshape(-1)
        if b.shape[0] != m.shape[0]:
            raise ShapeMismatchError(f"sparse layer bias has {b.shape[0]} entries but the matrix has {m.shape[0]} rows")
        for arr in (m.data, m.indices, m.indptr):
            arr.setflags(write=False)
        object.__setattr__(self, "matrix", m)
        object.__setattr__(self, "bias", _as_f64(b))

    # ---------------------------------------------------------------- sizes
    @property
    def in_features(self) -> int:
        return int(self.matrix.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def nnz(self) -> int:
        return int(self.matrix.nnz)

    @property
    def cost(self) -> int:
        return max(self.nnz, 1)

    # ---------------------------------------------------------------- cached forms
    @property
    def _csr(self) -> "sparse.csr_array":
        return self.matrix

    @cached_property
    def _csr_t(self) -> "sparse.csr_array":
        return self.matrix.T.tocsr()

    @cached_property
    def _abs_csr(self) -> "sparse.csr_array":
        return abs(self.matrix)

    @cached_property
    def _abs_csr_t(self) -> "sparse.csr_array":
        return abs(self._csr_t)

    @cached_property
    def _csr32(self) -> "sparse.csr_array":
        return self.matrix.astype(np.float32)

    # ---------------------------------------------------------------- certified norms
    def _max_terms(self) -> int:
        per_row = np.diff(self.matrix.indptr)
        per_col = np.diff(self._csr_t.indptr)
        return int(max(per_row.max(initial=0), per_col.max(initial=0)))

    def norm_bound(self, norm: int | str) -> float:
        """Certified: ``"inf"`` the largest row sum of ``|W|``; l2 the dense SVD bound for small matrices, else
        ``sqrt(max row sum * max column sum)`` of ``|W|`` (``||W||_2^2 <= ||W||_1 ||W||_inf``), each rounded up."""
        up = 1.0 + 8 * (self._max_terms() + 2) * _EPS
        tiny = float(np.finfo(np.float64).tiny) * max(self.matrix.shape)
        row = float(self._abs_csr.sum(axis=1).max(initial=0.0)) * up + tiny
        if norm != 2:
            return row
        col = float(self._abs_csr.sum(axis=0).max(initial=0.0)) * up + tiny
        schur = float(np.sqrt(row) * np.sqrt(col)) * (1.0 + 4 * _EPS) + 2.0 ** -1000
        if self.out_features * self.in_features <= _SMALL_SVD:
            return min(schur, Dense(self.as_matrix()).norm_bound(2))
        return schur

    # ---------------------------------------------------------------- derived
    def compose(self, inner: AffineLayer) -> AffineLayer:
        """``self ∘ inner`` as a sparse product (exact up to one rounding per stored entry)."""
        if inner.out_features != self.in_features:
            raise ShapeMismatchError(f"cannot compose {self.describe()} after {inner.describe()}")
        return SparseAffine(self.matrix @ inner.as_sparse(), self.linear(inner.bias) + self.bias, self.label)

    def select(self, c: np.ndarray) -> AffineLayer:
        c = np.atleast_2d(np.asarray(c, dtype=np.float64))
        check_dense(c.shape[0], self.in_features, f"selecting outputs of {self.describe()}")
        return Dense(self.transpose(c), c @ self.bias)

    def rounded(self, dtype: type) -> "SparseAffine":
        m = self.matrix.astype(dtype).astype(np.float64)
        return SparseAffine(m, self.bias.astype(dtype), self.label)

    def check_finite(self) -> str | None:
        if not np.all(np.isfinite(self.matrix.data)):
            return "weight"
        return super().check_finite()

    def describe(self) -> str:
        return f"{self.label}({self.in_features}->{self.out_features}, {self.nnz} entries)"

