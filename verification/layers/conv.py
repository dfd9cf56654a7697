"""A 2-D convolution kept as a convolution, and the pooling / batch-norm layers built from it.

:class:`Conv2d` maps one input ``x`` of shape ``(C, H, W)``, flattened in ``(C, H, W)`` order, to the
flattened ``(C_out, H_out, W_out)`` output ``W x + b``.  ``W`` is never formed densely: it is kept as a
sparse matrix (CSR) built once from the kernel and the index arithmetic of the padding mode, so memory
follows ``nnz = C_out H_out W_out (C_in / groups) kh kw`` (the im2col size) and every product of the
:class:`~verification.layers.affine.AffineLayer` protocol costs ``O(nnz)`` per row.

Conventions (those of ``torch.nn.Conv2d`` and ONNX ``Conv``): ``weight`` of shape
``(C_out, C_in / groups, kh, kw)``; output ``(o, i, j)`` reads input rows ``i s_h + t d_h - pad_top`` and
columns ``j s_w + u d_w - pad_left`` for kernel offsets ``(t, u)``.  Out-of-range reads are zero
(``"zeros"``) or mapped back into the input (``"circular"``, ``"reflect"``, ``"replicate"``: all linear);
kernel taps that land on the same input entry are summed into one entry of ``W`` (so ``|W|`` is exact).
The bias is one value per output entry (a per-channel bias is repeated over the positions; folding a
per-channel shift into a zero-padded convolution gives position-dependent values at the borders).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from scipy import sparse

from verification.errors import InvalidParameterError, ShapeMismatchError, UnsupportedLayerError
from verification.layers.affine import MAX_DENSE_ENTRIES, AffineLayer, ConvSpec, Dense, _as_f64, check_dense
from verification.layers.conv_norms import conv_norm_bound, power_norm_lower
from verification.layers.sparse import CsrProducts

__all__ = [
    "Conv2d",
    "PADDING_MODES",
    "MAX_DENSE_ENTRIES",
    "MAX_CONV_ENTRIES",
    "avg_pool2d",
    "global_avg_pool",
    "channel_affine",
    "conv_axis",
    "check_dense",
]

PADDING_MODES = ("zeros", "circular", "reflect", "replicate")
#: Largest number of stored entries (``nnz``) of one convolution's sparse matrix.
MAX_CONV_ENTRIES = 200_000_000

_EPS = np.finfo(np.float64).eps


def conv_axis(n_in: int, k: int, stride: int, dil: int, pad: tuple[int, int], mode: str):
    """Input coordinate and validity of each (output position, kernel offset) along one spatial axis, and the
    output length: ``(coord (n_out, k), valid (n_out, k), n_out)``."""
    n_out = (n_in + pad[0] + pad[1] - dil * (k - 1) - 1) // stride + 1
    if n_out <= 0:
        raise ShapeMismatchError(f"the kernel does not fit the input (output size {n_out})")
    coord = np.arange(n_out)[:, None] * stride + np.arange(k)[None, :] * dil - pad[0]
    valid = np.ones(coord.shape, dtype=bool)
    if mode == "zeros":
        valid = (coord >= 0) & (coord < n_in)
    elif mode == "circular":
        coord = np.mod(coord, n_in)
    elif mode == "replicate":
        coord = np.clip(coord, 0, n_in - 1)
    elif n_in == 1:  # reflect
        coord = np.zeros_like(coord)
    else:
        period = 2 * (n_in - 1)
        c = np.mod(coord, period)
        coord = np.where(c >= n_in, period - c, c)
    return np.where(valid, coord, 0), valid, n_out


def _pair(v: Any, what: str) -> tuple[int, int]:
    t = (v, v) if isinstance(v, (int, np.integer)) else tuple(v)
    if len(t) != 2 or not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) and a >= 1 for a in t):
        raise InvalidParameterError(f"conv2d {what} must be one or two positive integers, got {v!r}")
    return int(t[0]), int(t[1])


def _sparse():
    """scipy.sparse, imported when a convolution is first built (about 0.1 s; dense-only runs skip it)."""
    from scipy import sparse

    return sparse


@dataclass(frozen=True, eq=False)
class Conv2d(CsrProducts):
    """``x -> conv2d(x) + b`` on flattened ``(C, H, W)`` inputs (see the module docstring).

    ``pads`` = ``(top, bottom, left, right)``; ``bias`` of shape ``(C_out,)`` or one value per output entry
    (``C_out * H_out * W_out``), stored per output entry.  ``norm_bound`` is certified without ``W``:
    ``"inf"`` is the largest row sum of ``|W|`` rounded up; ``2`` is the smaller of Schur's bound
    ``sqrt(max row sum * max column sum)`` of ``|W|`` and the frequency-domain bound of
    :mod:`~verification.layers.conv_norms` (exact up to ~1e-13 for circular padding with one output per
    position, a bound through the enclosing circular convolution otherwise).  ``norm_lower`` is a proven
    lower bound by power iteration."""

    _what = "conv2d"

    weight: np.ndarray
    bias: np.ndarray | None
    input_shape: tuple[int, int, int]
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    padding_mode: str = "zeros"

    def __post_init__(self) -> None:
        w = np.asarray(self.weight)
        if w.ndim != 4 or 0 in w.shape:
            raise ShapeMismatchError(f"conv2d weight must have shape (C_out, C_in/groups, kh, kw), got {w.shape}")
        shape = tuple(int(d) for d in self.input_shape)
        if len(shape) != 3 or min(shape) <= 0:
            raise ShapeMismatchError(f"conv2d input_shape must be (C, H, W) with positive entries, got {self.input_shape}")
        if self.padding_mode not in PADDING_MODES:
            raise UnsupportedLayerError(f"conv2d padding_mode {self.padding_mode!r} is not supported ({PADDING_MODES})")
        stride, dil = _pair(self.stride, "stride"), _pair(self.dilation, "dilation")
        pads = tuple(int(p) for p in self.pads)
        if len(pads) != 4 or min(pads) < 0:
            raise InvalidParameterError(f"conv2d pads must be (top, bottom, left, right) >= 0, got {self.pads}")
        g = int(self.groups)
        c_out, c_in_g, kh, kw = w.shape
        if g < 1 or shape[0] != c_in_g * g or c_out % g:
            raise ShapeMismatchError(f"conv2d weight {w.shape} with groups={g} does not take {shape[0]} channels")
        if self.padding_mode == "reflect" and (max(pads[:2]) >= shape[1] > 1 or max(pads[2:]) >= shape[2] > 1):
            raise ShapeMismatchError(f"conv2d reflect padding {pads} must be smaller than the input {shape[1:]}")
        _, _, ho = conv_axis(shape[1], kh, stride[0], dil[0], pads[:2], "zeros")
        _, _, wo = conv_axis(shape[2], kw, stride[1], dil[1], pads[2:], "zeros")
        n_out = c_out * ho * wo
        b = np.zeros(n_out) if self.bias is None else np.asarray(self.bias, dtype=np.float64).reshape(-1)
        if b.shape[0] == c_out:
            b = np.repeat(b, ho * wo)
        if b.shape[0] != n_out:
            raise ShapeMismatchError(f"conv2d bias has {b.shape[0]} entries; expected {c_out} or {n_out}")
        object.__setattr__(self, "weight", _as_f64(w))
        object.__setattr__(self, "bias", _as_f64(b))
        object.__setattr__(self, "input_shape", shape)
        object.__setattr__(self, "stride", stride)
        object.__setattr__(self, "dilation", dil)
        object.__setattr__(self, "groups", g)
        object.__setattr__(self, "pads", pads)
        object.__setattr__(self, "output_shape", (c_out, ho, wo))
        if self.nnz > MAX_CONV_ENTRIES:
            raise UnsupportedLayerError(
                f"{self.describe()} has {self.nnz:.3g} kernel applications, above the limit of {MAX_CONV_ENTRIES:.0e}"
            )

    output_shape: tuple[int, int, int] = field(init=False, default=(0, 0, 0))  # set in __post_init__

    # ---------------------------------------------------------------- sizes
    @property
    def in_features(self) -> int:
        return math.prod(self.input_shape)

    @property
    def out_features(self) -> int:
        return math.prod(self.output_shape)

    @property
    def nnz(self) -> int:
        """Kernel applications ``C_out H_out W_out (C_in/groups) kh kw`` (an upper bound on the stored entries)."""
        return self.out_features * math.prod(self.weight.shape[1:])

    @property
    def cost(self) -> int:
        return self.nnz

    # ---------------------------------------------------------------- the sparse matrix
    @cached_property
    def _csr(self) -> sparse.csr_array:
        c_out, c_in_g, kh, kw = self.weight.shape
        c_in, h, w = self.input_shape
        _, ho, wo = self.output_shape
        ys, vy, _ = conv_axis(h, kh, self.stride[0], self.dilation[0], self.pads[:2], self.padding_mode)
        xs, vx, _ = conv_axis(w, kw, self.stride[1], self.dilation[1], self.pads[2:], self.padding_mode)
        # axes: (input channel in group, kernel row, kernel column, output row, output column)
        valid = vy.T[None, :, None, :, None] & vx.T[None, None, :, None, :]
        valid = np.broadcast_to(valid, (c_in_g, kh, kw, ho, wo))
        pos = np.broadcast_to((np.arange(ho)[:, None] * wo + np.arange(wo)[None, :]), valid.shape)[valid]
        spatial = np.broadcast_to(ys.T[None, :, None, :, None] * w + xs.T[None, None, :, None, :], valid.shape)
        per_group = c_out // self.groups
        rows, cols, vals = [], [], []
        for o in range(c_out):
            chan = ((o // per_group) * c_in_g + np.arange(c_in_g))[:, None, None, None, None]
            rows.append(o * ho * wo + pos)
            cols.append(np.broadcast_to(chan * (h * w) + spatial, valid.shape)[valid])
            vals.append(np.broadcast_to(self.weight[o][:, :, :, None, None], valid.shape)[valid])
        coo = _sparse().coo_array(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(self.out_features, self.in_features),
        )
        csr = coo.tocsr()  # sums taps that land on the same input entry
        csr.sum_duplicates()
        return csr

    @cached_property
    def _csr_t(self) -> sparse.csr_array:
        return self._csr.T.tocsr()

    @cached_property
    def _abs_csr(self) -> sparse.csr_array:
        return abs(self._csr)

    @cached_property
    def _abs_csr_t(self) -> sparse.csr_array:
        return abs(self._csr_t)

    @cached_property
    def _csr32(self) -> sparse.csr_array:
        return self._csr.astype(np.float32)

    def norm_bound(self, norm: int | str) -> float:
        if norm == 2:
            return min(self.schur_norm_bound, self.spectral_norm_bound[0])
        c_out, c_in_g, kh, kw = self.weight.shape
        up = 1.0 + 8 * (max(c_in_g, c_out) * kh * kw + 2) * _EPS  # terms per row / column
        return float(self._abs_csr.sum(axis=1).max()) * up

    @cached_property
    def schur_norm_bound(self) -> float:
        """``sqrt(max row sum * max column sum)`` of ``|W|`` rounded up (``||W||_2^2 <= ||W||_1 ||W||_inf``): the
        bound before the frequency-domain one."""
        c_out, c_in_g, kh, kw = self.weight.shape
        up = 1.0 + 8 * (max(c_in_g, c_out) * kh * kw + 2) * _EPS  # terms per row / column
        row = float(self._abs_csr.sum(axis=1).max()) * up
        col = float(self._abs_csr.sum(axis=0).max()) * up
        # sqrt of each factor: row * col can underflow to 0 for tiny weights; 2^-1000 covers a subnormal result
        return float(np.sqrt(row) * np.sqrt(col)) * (1.0 + 4 * _EPS) + 2.0 ** -1000

    @cached_property
    def spectral_norm_bound(self) -> tuple[float, dict]:
        """The certified frequency-domain bound of ``||W||_2`` and the plan that attained it
        (:func:`~verification.layers.conv_norms.conv_norm_bound`)."""
        return conv_norm_bound(self.weight, self.input_shape, self.stride, self.dilation, self.groups, self.pads,
                               self.padding_mode)

    def norm_lower(self, n_iter: int = 50, seed: int = 0) -> float:
        """A proven *lower* bound of ``||W||_2`` (power iteration, never an upper bound)."""
        return power_norm_lower(self, n_iter, seed)

    def rounded(self, dtype: type) -> "Conv2d":
        return replace(self, weight=self.weight.astype(dtype), bias=self.bias.astype(dtype))

    def check_finite(self) -> str | None:
        if not np.all(np.isfinite(self.weight)):
            return "weight"
        return super().check_finite()

    # ---------------------------------------------------------------- structure
    @property
    def channel_scale(self) -> np.ndarray | None:
        """The per-channel scale if this layer is a 1x1 depthwise map ``x_c -> s_c x_c + b`` (else ``None``)."""
        c_out, c_in_g, kh, kw = self.weight.shape
        if (c_in_g, kh, kw) == (1, 1, 1) and self.groups == c_out == self.input_shape[0] and self.stride == (1, 1) \
                and self.pads == (0, 0, 0, 0):
            return self.weight.reshape(-1)
        return None

    @property
    def conv_spec(self) -> ConvSpec:
        """This convolution's parameters, for the frequency-domain methods."""
        return ConvSpec(self.weight, self.input_shape, self.output_shape, self.stride, self.dilation, self.groups,
                        self.pads, self.padding_mode)

    def compose(self, inner: AffineLayer) -> AffineLayer:
        """``self ∘ inner`` without a dense matrix when one side is a per-channel scale (folded into the
        other convolution's weights, exact up to one rounding per weight); after a dense layer, or between
        two general convolutions, the dense product if it has at most :data:`MAX_DENSE_ENTRIES` entries,
        else one-line :class:`UnsupportedLayerError`."""
        if isinstance(inner, Conv2d):
            s = inner.channel_scale
            if s is not None:
                c_in_g = self.weight.shape[1]
                per_group = self.weight.shape[0] // self.groups
                chan = (np.arange(self.weight.shape[0]) // per_group)[:, None] * c_in_g + np.arange(c_in_g)[None, :]
                w = self.weight * s[chan][:, :, None, None]
                return replace(self, weight=w, bias=self.linear(inner.bias) + self.bias)
            folded = self._fold_tiling(inner)
            if folded is not None:
                return folded
            s = self.channel_scale
            if s is not None:
                _, ho, wo = inner.output_shape
                w = inner.weight * s[:, None, None, None]
                return replace(inner, weight=w, bias=np.repeat(s, ho * wo) * inner.bias + self.bias)
        check_dense(self.out_features, inner.in_features,
                    f"merging {self.describe()} after {inner.describe()} (two affine layers without an activation "
                    "between them)")
        if isinstance(inner, Dense):
            return Dense(self.linear(inner.weight.T).T, self(inner.bias))
        m = self.as_matrix()
        return Dense(inner.transpose(m), m @ inner.bias + self.bias)

    def _fold_tiling(self, inner: "Conv2d") -> "Conv2d | None":
        """``self ∘ inner`` as one convolution when ``inner`` is depthwise with non-overlapping windows that tile
        its input (stride = kernel, no padding, e.g. an average pool) and ``self`` pads with zeros: each
        outer tap becomes a ``kh x kw`` block of taps, strides and pads scale by the window (else ``None``)."""
        c, h, w = inner.input_shape
        c_out_i, c_in_g_i, kh, kw = inner.weight.shape
        if (c_in_g_i != 1 or inner.groups != c or c_out_i != c or inner.stride != (kh, kw) or any(inner.pads)
                or h % kh or w % kw or (self.padding_mode != "zeros" and any(self.pads))):
            return None
        co, cig, th, tw = self.weight.shape
        dh, dw = self.dilation
        big = np.zeros((co, cig, (th - 1) * dh * kh + kh, (tw - 1) * dw * kw + kw))
        per_group = co // self.groups
        chan = (np.arange(co) // per_group)[:, None] * cig + np.arange(cig)[None, :]
        win = inner.weight[chan, 0]  # (co, cig, kh, kw): the window of each input channel
        for t in range(th):
            for u in range(tw):
                big[:, :, t * dh * kh:t * dh * kh + kh, u * dw * kw:u * dw * kw + kw] = (
                    self.weight[:, :, t, u][:, :, None, None] * win)
        top, bottom, left, right = self.pads
        return Conv2d(big, self.linear(inner.bias) + self.bias, inner.input_shape,
                      (self.stride[0] * kh, self.stride[1] * kw), (1, 1), self.groups,
                      (top * kh, bottom * kh, left * kw, right * kw), "zeros")

    def describe(self) -> str:
        c, h, w = self.input_shape
        co, ho, wo = self.output_shape
        kh, kw = self.weight.shape[2:]
        extra = "" if self.stride == (1, 1) else f" s{self.stride[0]}x{self.stride[1]}"
        extra += "" if self.groups == 1 else f" g{self.groups}"
        extra += "" if self.dilation == (1, 1) else f" d{self.dilation[0]}x{self.dilation[1]}"
        extra += "" if not any(self.pads) else f" p{','.join(map(str, self.pads))}"
        extra += "" if self.padding_mode == "zeros" else f" {self.padding_mode}"
        return f"conv({c}x{h}x{w}->{co}x{ho}x{wo} k{kh}x{kw}{extra})"


def avg_pool2d(input_shape: tuple[int, int, int], kernel, stride=None, pads=(0, 0, 0, 0)) -> Conv2d:
    """Average pooling with zero padding counted in the divisor (torch ``count_include_pad=True``, ONNX
    ``count_include_pad=1``; both agree with the other convention when ``pads`` are zero): a depthwise
    convolution with every weight ``1 / (kh kw)``."""
    kh, kw = _pair(kernel, "kernel")
    stride = (kh, kw) if stride is None else _pair(stride, "stride")
    c = int(input_shape[0])
    w = np.full((c, 1, kh, kw), 1.0 / (kh * kw))
    return Conv2d(w, None, tuple(input_shape), stride, (1, 1), c, tuple(pads), "zeros")


def global_avg_pool(input_shape: tuple[int, int, int]) -> Conv2d:
    """The mean over each channel: output ``(C, 1, 1)``."""
    return avg_pool2d(input_shape, tuple(input_shape[1:]))


def channel_affine(input_shape: tuple[int, int, int], scale: np.ndarray, shift: np.ndarray) -> Conv2d:
    """``x_c -> scale_c x_c + shift`` (a 1x1 depthwise convolution; ``shift`` per channel or per entry), e.g. an
    evaluation-mode batch norm that cannot be folded into a neighbouring convolution."""
    c = int(input_shape[0])
    s = np.asarray(scale, dtype=np.float64).reshape(-1)
    if s.shape[0] != c:
        raise ShapeMismatchError(f"channel scale has {s.shape[0]} entries for {c} channels")
    return Conv2d(s.reshape(c, 1, 1, 1), shift, tuple(input_shape), (1, 1), (1, 1), c, (0, 0, 0, 0), "zeros")
