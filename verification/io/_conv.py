"""Convolution options of loaders as a :class:`~verification.layers.Conv2d` (kept as a convolution).

``conv2d_layer`` turns PyTorch-style options (``padding`` as ``"valid"``, ``"same"`` or per-axis ints) into a
:class:`Conv2d`; the index arithmetic of the padding modes lives in :mod:`verification.layers.conv`.
"""

from __future__ import annotations

from verification.errors import ShapeMismatchError, UnsupportedLayerError, VerificationError
from verification.layers import Conv2d
from verification.layers.conv import PADDING_MODES

__all__ = ["conv2d_layer", "torch_pads"]


def torch_pads(padding, kernel: tuple[int, int], dilation: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)``; ``'same'`` puts the odd extra row/column after (as PyTorch)."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        th, tw = (d * (k - 1) for k, d in zip(kernel, dilation))
        return (th // 2, th - th // 2, tw // 2, tw - tw // 2)
    ph, pw = (int(p) for p in padding)
    return (ph, ph, pw, pw)


def conv2d_layer(weight, bias, shape: tuple, stride, padding, dilation, groups: int, padding_mode: str,
                 where: str) -> Conv2d:
    """The :class:`Conv2d` on inputs of ``shape = (C, H, W)``; errors name ``where``."""
    if padding_mode not in PADDING_MODES:
        raise UnsupportedLayerError(f"{where}: padding_mode {padding_mode!r} is not supported")
    try:
        pads = torch_pads(padding, tuple(weight.shape[2:]), tuple(dilation))
        return Conv2d(weight, bias, tuple(shape), tuple(stride), tuple(dilation), int(groups), pads, padding_mode)
    except VerificationError as exc:
        raise type(exc)(f"{where}: {exc}") from None
    except (ValueError, TypeError) as exc:
        raise ShapeMismatchError(f"{where}: {exc}") from None
