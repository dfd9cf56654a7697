"""Analytic NNGP (CNN-GP) and NTK (CNTK) of convolutional networks on images (n, C, H, W).

Conventions (those of neural-tangents' ``stax``, Novak et al. 2019/2020; Arora et al. 2019):

* Input covariance Σ⁽⁰⁾(x, x')[p, p'] = Σ_c x[c, p]·x'[c, p'] / C for positions p, p'.
* ``Conv`` in NTK parameterisation, z = (W_std/√(C_in·k))·W ⋆ a + b_std·b with W, b ~ N(0, 1) and
  k = kh·kw taps:  Σ_out[p, p'] = W_std²·(1/k)·Σ_t E[p+t, p'+t] + b_std² (zero-padded taps count in
  the 1/k, as in the finite network), Θ_out = W_std²·(1/k)·Σ_t Θ[p+t, p'+t] + Σ_out.
  Standard parameterisation: Θ_out = C_in·Σ_t E[p+t, p'+t] + W_std²·(1/k)·Σ_t Θ[...] (+1 with a bias).
* ``Dense`` on an image acts on the channel axis (a 1×1 convolution); after a readout it is the
  fully connected layer of :mod:`theorytools.ntk._stax`.
* Activations (ReLU family, Erf, Gelu) act entrywise with the variances of the two positions involved
  (same closed forms and round-off care as the dense kernels).
* ``AvgPool`` and ``GlobalAvgPool`` average both position arguments; ``Flatten`` followed by a
  Dense layer of fan-in C·H·W sees the mean of the same-position terms, (1/P)·Σ_p E[p, p].

Modes: ``"full"`` carries all position pairs (P² numbers per image pair; needed by AvgPool and
GlobalAvgPool); ``"diagonal"`` carries only same-position terms (P numbers), which is exact when the
readout is ``Flatten`` and no pooling precedes it, because a convolution's same-position outputs
depend only on same-position inputs and activations are entrywise.  ``"auto"`` picks the cheap mode
where it is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from theorytools._threads import image_work, numba_threads
from theorytools.errors import TheoryError
from theorytools.ntk import _cnn_kernels as _ck
from theorytools.ntk import _stax
from theorytools.ntk._stax import ABRelu, Dense, Erf, Gelu, Identity, Kernel, Layer, _check_float

__all__ = ["Conv", "AvgPool", "GlobalAvgPool", "Flatten", "LayerNorm", "Residual", "Serial", "serial"]

_PADDINGS = ("SAME", "VALID", "CIRCULAR")
_MODES = ("auto", "full", "diagonal")
#: memory budget of one block's working arrays when ``batch_size`` is not given (bytes)
_AUTO_BLOCK_BYTES = 256 * 2**20


def _pair_ints(name: str, owner: str, value, *, minimum: int = 1) -> tuple[int, int]:
    v = (value, value) if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    ok = isinstance(v, (tuple, list)) and len(v) == 2 and all(
        isinstance(a, (int, np.integer)) and not isinstance(a, bool) and a >= minimum for a in v
    )
    if not ok:
        raise TheoryError(f"The '{name}' parameter of {owner} must be an int >= {minimum} or a pair of them. Got {value!r} instead.")
    return int(v[0]), int(v[1])


def _padding(owner: str, padding) -> str:
    p = padding.upper() if isinstance(padding, str) else padding
    if p not in _PADDINGS:
        raise TheoryError(f"The 'padding' parameter of {owner} must be one of {_PADDINGS}. Got {padding!r} instead.")
    return p


def _axis_table(n_in: int, k: int, s: int, padding: str, owner: str) -> tuple[np.ndarray, np.ndarray]:
    """(idx (n_out, k), valid count per output) along one axis; −1 marks a zero-padded tap.
    SAME/CIRCULAR: n_out = ⌈n_in/s⌉ with ⌊pad/2⌋ before (TensorFlow/JAX rule); CIRCULAR wraps."""
    if padding == "VALID":
        if n_in < k:
            raise TheoryError(f"{owner} with padding 'VALID' needs inputs at least as large as its window ({k}); got size {n_in}.")
        n_out, lo = (n_in - k) // s + 1, 0
    else:
        n_out = -(-n_in // s)
        lo = max((n_out - 1) * s + k - n_in, 0) // 2
    idx = np.arange(n_out)[:, None] * s + np.arange(k)[None, :] - lo
    if padding == "CIRCULAR":
        idx = idx % n_in
    else:
        idx = np.where((idx >= 0) & (idx < n_in), idx, -1)
    return idx, (idx >= 0).sum(axis=1)


def _table_2d(h: int, w: int, kh: int, kw: int, sh: int, sw: int, padding: str, owner: str):
    ih, ch = _axis_table(h, kh, sh, padding, owner)
    iw, cw = _axis_table(w, kw, sw, padding, owner)
    ho, wo = ih.shape[0], iw.shape[0]
    flat = ih[:, None, :, None] * w + iw[None, :, None, :]  # (ho, wo, kh, kw)
    bad = (ih[:, None, :, None] < 0) | (iw[None, :, None, :] < 0)
    flat = np.where(bad, -1, flat).reshape(ho * wo, kh * kw).astype(np.int64)
    counts = (ch[:, None] * cw[None, :]).reshape(-1).astype(np.float64)
    return np.ascontiguousarray(flat), counts, ho, wo


class _ImageLayer(Layer):
    """Base of the layers that exist only on images; calling one alone builds a one-layer serial."""

    def _apply(self, st):  # the fully connected recursion cannot carry positions
        raise TheoryError(f"{type(self).__name__} needs image inputs of shape (n, C, H, W).")

    def __call__(self, x1, x2=None, **kwargs) -> Kernel:
        return serial(self).kernel_fn(x1, x2, **kwargs)


@dataclass(frozen=True)
class Conv(_ImageLayer):
    """2-D convolution with ``out_chan`` → ∞ channels (weights shared over positions).

    Args:
        out_chan: number of output channels; needed only when the next layer uses standard
            parameterisation (its NTK is ∝ its fan-in).
        filter_shape: (kh, kw).
        strides: (sh, sw).
        padding: ``"SAME"`` (zeros; output ⌈H/s⌉), ``"VALID"`` (no padding) or ``"CIRCULAR"``
            (periodic, output ⌈H/s⌉).
        W_std, b_std, parameterization: as for :class:`~theorytools.ntk.Dense` (``b_std=None``: no bias).
    """

    out_chan: int | None = None
    filter_shape: tuple[int, int] | int = (3, 3)
    strides: tuple[int, int] | int = (1, 1)
    padding: str = "SAME"
    W_std: float = 1.0
    b_std: float | None = 0.0
    parameterization: str = "ntk"

    def __post_init__(self) -> None:
        object.__setattr__(self, "filter_shape", _pair_ints("filter_shape", "Conv", self.filter_shape))
        object.__setattr__(self, "strides", _pair_ints("strides", "Conv", self.strides))
        object.__setattr__(self, "padding", _padding("Conv", self.padding))
        _check_float("W_std", "Conv", self.W_std, nonneg=True)
        if self.b_std is not None:
            _check_float("b_std", "Conv", self.b_std, nonneg=True)
        if self.parameterization not in ("ntk", "standard"):
            raise TheoryError(f"The 'parameterization' parameter of Conv must be 'ntk' or 'standard'. Got {self.parameterization!r} instead.")
        if self.out_chan is not None and (
            not isinstance(self.out_chan, (int, np.integer)) or isinstance(self.out_chan, bool) or self.out_chan < 1
        ):
            raise TheoryError(f"The 'out_chan' parameter of Conv must be an int >= 1 or None. Got {self.out_chan!r} instead.")


@dataclass(frozen=True)
class AvgPool(_ImageLayer):
    """Average pooling over ``window_shape`` windows (needs full mode).

    ``strides=None`` means (1, 1) (neural-tangents' default); ``normalize_edges=True`` divides by the
    number of in-image taps of each window (SAME padding) instead of the window size."""

    window_shape: tuple[int, int] | int = (2, 2)
    strides: tuple[int, int] | int | None = None
    padding: str = "VALID"
    normalize_edges: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "window_shape", _pair_ints("window_shape", "AvgPool", self.window_shape))
        object.__setattr__(self, "strides", (1, 1) if self.strides is None else _pair_ints("strides", "AvgPool", self.strides))
        object.__setattr__(self, "padding", _padding("AvgPool", self.padding))
        if not isinstance(self.normalize_edges, bool):
            raise TheoryError(f"The 'normalize_edges' parameter of AvgPool must be a bool. Got {self.normalize_edges!r} instead.")


@dataclass(frozen=True)
class LayerNorm(_ImageLayer):
    """Layer normalisation of a Gaussian input, x ↦ (x − mean)/√(var + eps), over the channels at every
    position (``axis="channel"``) or over channels and positions (``axis="all"``).

    Infinite width: the channel variance is the deterministic q, so Σ[p, p'] and Θ[p, p'] are divided by
    √((eps + q1[p])·(eps + q2[p'])) (``"all"``: q averaged over positions), as in neural-tangents."""

    axis: str = "channel"
    eps: float = 1e-12

    def __post_init__(self) -> None:
        if self.axis not in ("channel", "all"):
            raise TheoryError(f"The 'axis' parameter of LayerNorm must be 'channel' or 'all'. Got {self.axis!r} instead.")
        _check_float("eps", "LayerNorm", self.eps, nonneg=True)


@dataclass(frozen=True)
class GlobalAvgPool(_ImageLayer):
    """Readout: the mean over all positions (needs full mode: all position pairs contribute)."""


@dataclass(frozen=True)
class Flatten(_ImageLayer):
    """Readout: flatten positions and channels (a following Dense has fan-in C·H·W)."""


@dataclass(frozen=True, init=False)
class Residual(_ImageLayer):
    """x + branch(x), the branch a sequence of layers that ends with ``Conv`` or ``Dense``.

    The NNGPs and NTKs of the two summands add (neural-tangents' ``FanInSum``): the fresh zero-mean
    weights of the branch's last layer make branch(x) uncorrelated with x and their parameter
    gradients orthogonal in the infinite-width limit (this is why the branch must end with one)."""

    layers: tuple[Layer, ...] = ()

    def __init__(self, *layers: Layer) -> None:
        flat = _flatten(layers)
        if not flat or not isinstance(flat[-1], (Conv, Dense)):
            raise TheoryError("The branch of Residual must end with a Conv or Dense layer (so that it is uncorrelated with its input).")
        object.__setattr__(self, "layers", tuple(layers))


def _flatten(layers: Sequence[Layer]) -> list[Layer]:
    out: list[Layer] = []
    for layer in layers:
        if isinstance(layer, _stax.Serial):
            out.extend(_flatten(layer.layers))
        else:
            out.append(layer)
    return out


# ----------------------------------------------------------------------------- recursion state


@dataclass
class _Img:
    """Kernel blocks of one pair of image batches (private).  ``cross``/``ntk``: (N, P, P) or (N, P);
    ``s1``/``s2``: per-image self blocks (A, ...), (B, ...) (``s2 is None``: the same images)."""

    full: bool
    h: int
    w: int
    cross: np.ndarray
    ntk: np.ndarray
    s1: np.ndarray
    s2: np.ndarray | None
    ia: np.ndarray
    ib: np.ndarray
    width: int | None
    do_ntk: bool
    readout: bool = False
    gaussian: bool = False  # the current representation is a Gaussian field (the output of an affine layer)

    def blocks(self) -> list[np.ndarray]:
        return [self.cross, self.s1] + ([] if self.s2 is None else [self.s2])


def _variances(st: _Img, s: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.diagonal(s, axis1=1, axis2=2)) if st.full else s


def _conv_like(st: _Img, kh: int, kw: int, sh: int, sw: int, padding: str, W_std: float, b_std: float | None,
               param: str, out_chan: int | None, owner: str) -> _Img:
    if st.readout and (kh, kw, sh, sw) != (1, 1, 1, 1):
        raise TheoryError(f"{owner} after a readout (Flatten/GlobalAvgPool): there are no positions left.")
    idx, _, ho, wo = _table_2d(st.h, st.w, kh, kw, sh, sw, padding, owner)
    k = kh * kw
    w2k = W_std**2 / k
    b2 = 0.0 if b_std is None else b_std**2
    ntk_param = param == "ntk"
    if not ntk_param and st.width is None:
        raise TheoryError(f"A {owner} layer with parameterization='standard' needs the width of its input: give the preceding layer its width/out_chan.")
    ce = 0.0 if ntk_param else float(st.width)
    c0 = 0.0 if (ntk_param or b_std is None) else 1.0
    fn = _ck.conv_full if st.full else _ck.conv_diag
    dummy = np.empty((1,) * st.cross.ndim)
    st.cross, th = fn(st.cross, st.ntk if st.do_ntk else dummy, idx, w2k, b2, ce, c0, ntk_param, st.do_ntk)
    if st.do_ntk:
        st.ntk = th
    st.s1 = fn(st.s1, dummy, idx, w2k, b2, ce, c0, ntk_param, False)[0]
    if st.s2 is not None:
        st.s2 = fn(st.s2, dummy, idx, w2k, b2, ce, c0, ntk_param, False)[0]
    st.h, st.w, st.width, st.gaussian = ho, wo, out_chan, True
    return st


def _activation(st: _Img, kind: int, a: float, b: float) -> _Img:
    if not st.gaussian:
        raise TheoryError(
            "An activation needs a Gaussian input: put a Conv or Dense layer before it (the inputs, and averages "
            "of activations, are not Gaussian in the infinite-width limit)."
        )
    st.gaussian = False
    q1 = _variances(st, st.s1)
    q2 = q1 if st.s2 is None else _variances(st, st.s2)
    fn = _ck.act_full if st.full else _ck.act_diag
    dummy = np.empty((1,) * st.cross.ndim)
    fn(st.cross, st.ntk if st.do_ntk else dummy, q1, q2, st.ia, st.ib, kind, a, b, st.do_ntk)
    r1 = np.arange(st.s1.shape[0])
    fn(st.s1, dummy, q1, q1, r1, r1, kind, a, b, False)
    if st.s2 is not None:
        r2 = np.arange(st.s2.shape[0])
        fn(st.s2, dummy, q2, q2, r2, r2, kind, a, b, False)
    return st


def _scale(st: _Img, factor: float, ntk_too: bool = True) -> None:
    for arr in st.blocks():
        arr *= factor
    if ntk_too and st.do_ntk:
        st.ntk *= factor


def _erf(st: _Img, layer: Erf) -> _Img:
    a2, b2, c2 = layer.a**2, layer.b**2, layer.c**2
    if b2 != 1.0:
        _scale(st, b2)
    st = _activation(st, _ck.ERF_KIND, 0.0, 0.0)
    if a2 != 1.0:
        _scale(st, a2)
    for arr in st.blocks():
        arr += c2
    return st


def _pool(st: _Img, layer: AvgPool) -> _Img:
    if st.readout:
        raise TheoryError("AvgPool after a readout (Flatten/GlobalAvgPool): there are no positions left.")
    if not st.full:
        raise TheoryError("AvgPool needs mode='full' (it mixes positions).")
    (kh, kw), (sh, sw) = layer.window_shape, layer.strides
    idx, counts, ho, wo = _table_2d(st.h, st.w, kh, kw, sh, sw, layer.padding, "AvgPool")
    scale = 1.0 / counts if (layer.normalize_edges and layer.padding == "SAME") else np.full(counts.shape, 1.0 / (kh * kw))
    st.cross = _ck.pool_full(st.cross, idx, scale)
    if st.do_ntk:
        st.ntk = _ck.pool_full(st.ntk, idx, scale)
    st.s1 = _ck.pool_full(st.s1, idx, scale)
    if st.s2 is not None:
        st.s2 = _ck.pool_full(st.s2, idx, scale)
    st.h, st.w = ho, wo
    return st


def _readout(st: _Img, layer: Layer) -> _Img:
    if st.readout:
        raise TheoryError(f"{type(layer).__name__} after a readout: the representation is already flat.")
    if isinstance(layer, GlobalAvgPool):
        if not st.full:
            raise TheoryError("GlobalAvgPool needs mode='full' (it averages over all position pairs).")
        fn = _ck.mean_all
    else:
        fn = _ck.mean_diagonal if st.full else _ck.mean_positions
        if st.width is not None:
            st.width *= st.h * st.w
    st.cross = fn(st.cross)[:, None]
    if st.do_ntk:
        st.ntk = fn(st.ntk)[:, None]
    st.s1 = fn(st.s1)[:, None]
    if st.s2 is not None:
        st.s2 = fn(st.s2)[:, None]
    st.full, st.h, st.w, st.readout = False, 1, 1, True
    return st


def _layer_norm(st: _Img, layer: LayerNorm) -> _Img:
    if not st.gaussian:
        raise TheoryError("LayerNorm needs a Gaussian input: put a Conv or Dense layer before it.")
    eps = float(layer.eps)
    q1 = _variances(st, st.s1)
    q2 = q1 if st.s2 is None else _variances(st, st.s2)
    if layer.axis == "all":
        q1 = np.repeat(q1.mean(axis=1, keepdims=True), q1.shape[1], axis=1)
        q2 = q1 if st.s2 is None else np.repeat(q2.mean(axis=1, keepdims=True), q2.shape[1], axis=1)
    d1, d2 = eps + q1, eps + q2

    def scale(arr: np.ndarray, da: np.ndarray, db: np.ndarray) -> np.ndarray:
        prod = da[:, :, None] * db[:, None, :] if st.full else da * db
        return arr / np.sqrt(prod)

    st.cross = scale(st.cross, d1[st.ia], d2[st.ib])
    if st.do_ntk:
        st.ntk = scale(st.ntk, d1[st.ia], d2[st.ib])
    st.s1 = scale(st.s1, d1, d1)
    if st.s2 is not None:
        st.s2 = scale(st.s2, d2, d2)
    return st


def _residual(st: _Img, layer: Residual) -> _Img:
    copy = _Img(st.full, st.h, st.w, st.cross.copy(), st.ntk.copy() if st.do_ntk else st.ntk, st.s1.copy(),
                None if st.s2 is None else st.s2.copy(), st.ia, st.ib, st.width, st.do_ntk, st.readout, st.gaussian)
    br = _run(_flatten(layer.layers), copy)
    if (br.h, br.w, br.full, br.readout) != (st.h, st.w, st.full, st.readout):
        raise TheoryError(f"The branch of Residual changes the spatial shape ({st.h}x{st.w} -> {br.h}x{br.w}); the sum needs equal shapes.")
    st.cross = st.cross + br.cross
    if st.do_ntk:
        st.ntk = st.ntk + br.ntk
    st.s1 = st.s1 + br.s1
    if st.s2 is not None:
        st.s2 = st.s2 + br.s2
    st.width = br.width
    st.gaussian = st.gaussian and br.gaussian
    return st


def _run(layers: list[Layer], st: _Img) -> _Img:
    for layer in layers:
        if isinstance(layer, Conv):
            (kh, kw), (sh, sw) = layer.filter_shape, layer.strides
            st = _conv_like(st, kh, kw, sh, sw, layer.padding, layer.W_std, layer.b_std, layer.parameterization, layer.out_chan, "Conv")
        elif isinstance(layer, Dense):
            st = _conv_like(st, 1, 1, 1, 1, "VALID", layer.W_std, layer.b_std, layer.parameterization, layer.width, "Dense")
        elif isinstance(layer, ABRelu):
            st = _activation(st, _ck.RELU_KIND, float(layer.a), float(layer.b))
        elif isinstance(layer, Erf):
            st = _erf(st, layer)
        elif isinstance(layer, Gelu):
            st = _activation(st, _ck.GELU_KIND, 0.0, 0.0)
        elif isinstance(layer, Identity):
            pass
        elif isinstance(layer, AvgPool):
            st = _pool(st, layer)
        elif isinstance(layer, (GlobalAvgPool, Flatten)):
            st = _readout(st, layer)
        elif isinstance(layer, Residual):
            st = _residual(st, layer)
        elif isinstance(layer, LayerNorm):
            st = _layer_norm(st, layer)
        else:
            raise TheoryError(
                f"{type(layer).__name__} is not supported on images (supported: Conv, Dense, Relu, LeakyRelu, ABRelu, "
                "Abs, Erf, Gelu, Identity, AvgPool, GlobalAvgPool, Flatten, LayerNorm, Residual)."
            )
    return st


def _needs_full(layers: list[Layer]) -> tuple[bool, bool]:
    """(needs full mode, has a readout) for the auto mode."""
    for layer in layers:
        if isinstance(layer, (AvgPool, GlobalAvgPool)):
            return True, True
        if isinstance(layer, Flatten):
            return False, True
        if isinstance(layer, Residual):
            full, _ = _needs_full(_flatten(layer.layers))
            if full:
                return True, True
    return False, False


def _as_images(name: str, x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 4 or min(x.shape) == 0 or not np.all(np.isfinite(x)):
        raise TheoryError(f"The '{name}' parameter of kernel_fn must be a finite (n, C, H, W) array. Got shape {x.shape} instead.")
    return np.ascontiguousarray(x.reshape(x.shape[0], x.shape[1], -1))


def _block(layers, xa, xb, same, full, h, w, do_ntk):
    a = xa.shape[0]
    b = a if same else xb.shape[0]
    if same:  # the upper triangle only: K(x_j, x_i) is K(x_i, x_j) with the positions swapped
        ia, ib = np.triu_indices(a)
    else:
        ia = np.repeat(np.arange(a), b)
        ib = np.tile(np.arange(b), a)
    gram = _ck.gram_full if full else _ck.gram_diag
    cross = gram(xa, xa if same else xb, ia, ib)
    ra = np.arange(a)
    s1 = gram(xa, xa, ra, ra)
    s2 = None if same else gram(xb, xb, np.arange(b), np.arange(b))
    ntk0 = np.zeros_like(cross) if do_ntk else np.zeros((1,) * cross.ndim)
    st = _Img(full, h, w, cross, ntk0, s1, s2, ia, ib, xa.shape[1], do_ntk)
    st = _run(layers, st)
    return st, a, b


def _out_shape(st: _Img) -> tuple[int, ...]:
    if st.readout:
        return ()
    return (st.h, st.w, st.h, st.w) if st.full else (st.h, st.w)


def _swap(block: np.ndarray, spatial: int) -> np.ndarray:
    """K(x2, x1) from K(x1, x2): swap the image axes and, in full mode, the two position arguments."""
    if spatial == 4:
        return block.transpose(1, 0, 4, 5, 2, 3)
    return np.swapaxes(block, 0, 1)


def _assemble(values: np.ndarray, st: _Img, a: int, b: int, same: bool, tail: tuple[int, ...]) -> np.ndarray:
    """(a, b, *tail) block from the per-pair values; in a diagonal block of a symmetric evaluation only
    the pairs i <= j were computed and K(x_j, x_i) := swap(K(x_i, x_j)), so the result is exactly symmetric."""
    if not same:
        return values.reshape(a, b, *tail)
    block = np.empty((a, a, *tail))
    block[st.ia, st.ib] = values.reshape(-1, *tail)
    lower = np.tril_indices(a, -1)
    block[lower] = _swap(block, len(tail))[lower]
    return block


def image_kernel_fn(layers: list[Layer], x1, x2=None, get=("nngp", "ntk"), batch_size: int | None = None,
                    mode: str = "auto") -> Kernel:
    """Kernel of ``layers`` between image batches; see :meth:`Serial.kernel_fn`."""
    with numba_threads(image_work(layers, x1, x2)):
        return _image_kernel(layers, x1, x2, get, batch_size, mode)


def _image_kernel(layers: list[Layer], x1, x2, get, batch_size: int | None, mode: str) -> Kernel:
    gets = (get,) if isinstance(get, str) else tuple(get)
    if not gets or any(g not in ("nngp", "ntk") for g in gets):
        raise TheoryError(f"The 'get' parameter of kernel_fn must be 'nngp', 'ntk' or both. Got {get!r} instead.")
    if mode not in _MODES:
        raise TheoryError(f"The 'mode' parameter of kernel_fn must be one of {_MODES}. Got {mode!r} instead.")
    if batch_size is not None and (not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1):
        raise TheoryError(f"The 'batch_size' parameter of kernel_fn must be an int >= 1. Got {batch_size!r} instead.")
    shape = np.shape(x1)
    a1 = _as_images("x1", x1)
    symmetric = x2 is None
    a2 = a1 if symmetric else _as_images("x2", x2)
    if not symmetric and np.shape(x2)[1:] != shape[1:]:
        raise TheoryError(f"The 'x2' parameter of kernel_fn must have the image shape of x1 {shape[1:]}. Got {np.shape(x2)[1:]} instead.")
    h, w = shape[2], shape[3]
    needs_full, has_readout = _needs_full(layers)
    if mode == "diagonal" and needs_full:
        raise TheoryError("mode='diagonal' cannot be used with AvgPool or GlobalAvgPool (they mix positions): use mode='full' or 'auto'.")
    full = mode == "full" or (mode == "auto" and (needs_full or not has_readout))
    do_ntk = "ntk" in gets
    n1, n2 = a1.shape[0], a2.shape[0]
    if batch_size is None:
        per_pair = 4 * 8 * (h * w) ** (2 if full else 1)  # cross nngp, ntk and the two new arrays of a conv
        batch_size = max(1, int(math.isqrt(max(_AUTO_BLOCK_BYTES // per_pair, 1))))
    nngp = ntk = var1 = var2 = None
    for i0 in range(0, n1, batch_size):
        i1 = min(i0 + batch_size, n1)
        for j0 in range(i0 if symmetric else 0, n2, batch_size):
            j1 = min(j0 + batch_size, n2)
            same = symmetric and i0 == j0
            st, a, b = _block(layers, a1[i0:i1], a2[j0:j1], same, full, h, w, do_ntk)
            tail = _out_shape(st)
            if nngp is None:
                nngp = np.empty((n1, n2, *tail))
                ntk = np.empty((n1, n2, *tail)) if do_ntk else None
                var1 = np.empty((n1, *st.s1.shape[1:]))
                var2 = var1 if symmetric else np.empty((n2, *st.s1.shape[1:]))
            nngp[i0:i1, j0:j1] = _assemble(st.cross, st, a, b, same, tail)
            if do_ntk:
                ntk[i0:i1, j0:j1] = _assemble(st.ntk, st, a, b, same, tail)
            if symmetric and not same:
                nngp[j0:j1, i0:i1] = _swap(nngp[i0:i1, j0:j1], len(tail))
                if do_ntk:
                    ntk[j0:j1, i0:i1] = _swap(ntk[i0:i1, j0:j1], len(tail))
            var1[i0:i1] = st.s1
            if st.s2 is not None:
                (var1 if symmetric else var2)[j0:j1] = st.s2
    def variances(v: np.ndarray) -> np.ndarray:
        if st.readout:
            return v[:, 0]
        d = np.diagonal(v, axis1=1, axis2=2) if st.full else v
        return np.ascontiguousarray(d).reshape(v.shape[0], st.h, st.w)

    v1 = variances(var1)
    return Kernel(nngp=nngp if "nngp" in gets else None, ntk=ntk, var1=v1, var2=v1 if symmetric else variances(var2))


class Serial(_stax.Serial):
    """Composition of layers; on (n, d) inputs the fully connected kernels, on (n, C, H, W) images the
    convolutional ones (the same layers, plus Conv, AvgPool, GlobalAvgPool, Flatten, Residual)."""

    def kernel_fn(
        self,
        x1: np.ndarray,
        x2: np.ndarray | None = None,
        get: str | Sequence[str] = ("nngp", "ntk"),
        batch_size: int | None = None,
        mode: str = "auto",
    ) -> Kernel:
        """NNGP and NTK of the network's output between the inputs ``x1`` and ``x2``.

        Args:
            x1: (n1, d) vectors or (n1, C, H, W) images.
            x2: the same kind of inputs, or ``None`` for ``x1`` (exploits symmetry).
            get: ``"nngp"``, ``"ntk"`` or both.
            batch_size: blocks of ``batch_size`` × ``batch_size`` inputs (exact: every entry is computed
                from its own pair).  For images ``None`` picks the largest block whose working arrays
                fit in ~256 MB (full mode: 8·P² bytes per array per image pair, P = H·W).
            mode: images only: ``"full"`` (all position pairs), ``"diagonal"`` (same positions; exact
                with a Flatten readout and no pooling) or ``"auto"`` (diagonal where exact).

        Returns:
            :class:`Kernel`.  Images: (n1, n2) after a readout; otherwise per position,
            (n1, n2, H, W, H, W) in full and (n1, n2, H, W) in diagonal mode, with variances (n1, H, W).
        """
        if np.ndim(x1) == 4:
            return image_kernel_fn(_flatten(self.layers), x1, x2, get=get, batch_size=batch_size, mode=mode)
        if mode != "auto":
            raise TheoryError("The 'mode' parameter of kernel_fn applies to image inputs (n, C, H, W) only.")
        return super().kernel_fn(x1, x2, get=get, batch_size=batch_size)

    __call__ = kernel_fn


def serial(*layers: Layer) -> Serial:
    """Compose layers, e.g. ``serial(Conv(W_std=1.4), Relu(), Flatten(), Dense())``."""
    for k, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TheoryError(f"The layer #{k} passed to serial must be a Layer (Dense, Conv, Relu, ...). Got {layer!r} instead.")
    return Serial(tuple(layers))
