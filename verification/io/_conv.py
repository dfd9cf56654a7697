"""Dense matrix of a 2-D convolution from its weights and options (all PyTorch padding modes).

``conv2d_matrix`` builds ``W`` with ``W @ x.ravel() = conv2d(x).ravel()`` for one input ``x`` of shape
``(C, H, W)``, without evaluating the convolution: each output entry is the sum of the kernel weights that
read each input entry (padding modes map out-of-range reads back into the input, or drop them for zeros).
"""

from __future__ import annotations

import numpy as np

from verification.errors import ShapeMismatchError, UnsupportedLayerError
from verification.io.common import check_dense_size

__all__ = ["conv2d_matrix"]

_MODES = ("zeros", "circular", "reflect", "replicate")


def _pads(padding, kernel: tuple[int, int], dilation: tuple[int, int]) -> list[tuple[int, int]]:
    """``(before, after)`` per spatial axis; ``'same'`` puts the odd extra row/column after."""
    if padding == "valid":
        return [(0, 0), (0, 0)]
    if padding == "same":
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return [(t // 2, t - t // 2) for t in totals]
    return [(int(p), int(p)) for p in padding]


def _axis(n_in: int, k: int, stride: int, dil: int, pad: tuple[int, int], mode: str, where: str):
    """Input coordinate and validity for each (output position, kernel offset) along one axis."""
    n_out = (n_in + pad[0] + pad[1] - dil * (k - 1) - 1) // stride + 1
    if n_out <= 0:
        raise ShapeMismatchError(f"{where}: the kernel does not fit the input (output size {n_out})")
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


def conv2d_matrix(weight: np.ndarray, bias, shape: tuple, stride, padding, dilation, groups: int,
                  padding_mode: str, where: str) -> tuple[np.ndarray, np.ndarray, tuple]:
    """``(W, b, out_shape)`` of the convolution on inputs of ``shape = (C, H, W)``."""
    if padding_mode not in _MODES:
        raise UnsupportedLayerError(f"{where}: padding_mode {padding_mode!r} is not supported")
    c_out, c_in_g, kh, kw = weight.shape
    c_in, h, w = shape
    if c_in != c_in_g * groups or c_out % groups:
        raise ShapeMismatchError(f"{where}: weight {weight.shape} with groups={groups} does not take {c_in} channels")
    pads = _pads(padding, (kh, kw), tuple(dilation))
    ys, vy, ho = _axis(h, kh, stride[0], dilation[0], pads[0], padding_mode, where)
    xs, vx, wo = _axis(w, kw, stride[1], dilation[1], pads[1], padding_mode, where)
    check_dense_size(c_out * ho * wo, c_in * h * w, where)
    mat = np.zeros((c_out * ho * wo, c_in * h * w))
    # axes: (input channel in group, kernel row, kernel column, output row, output column)
    y = ys.T[None, :, None, :, None]
    x = xs.T[None, None, :, None, :]
    valid = np.broadcast_to(vy.T[None, :, None, :, None] & vx.T[None, None, :, None, :], (c_in_g, kh, kw, ho, wo))
    pos = np.broadcast_to((np.arange(ho)[:, None] * wo + np.arange(wo)[None, :])[None, None, None], valid.shape)
    per_group = c_out // groups
    for o in range(c_out):
        chan = ((o // per_group) * c_in_g + np.arange(c_in_g))[:, None, None, None, None]
        cols = np.broadcast_to(chan * (h * w) + y * w + x, valid.shape)
        vals = np.broadcast_to(weight[o][:, :, :, None, None], valid.shape)
        np.add.at(mat, (o * ho * wo + pos[valid], cols[valid]), vals[valid])
    b = np.zeros((c_out, ho * wo)) if bias is None else np.repeat(np.asarray(bias, dtype=np.float64)[:, None], ho * wo, axis=1)
    return mat, b.reshape(-1), (c_out, ho, wo)
