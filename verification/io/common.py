"""Helpers shared by loaders: size limits, array and option validation, chains of weights."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from verification.activations import Activation, ReLU, parse_activation
from verification.errors import (
    InvalidParameterError,
    InvalidWeightsError,
    ModelFormatError,
    ShapeMismatchError,
    UnsupportedLayerError,
)
from verification.network import Dense, Layer, Network

__all__ = [
    "MAX_DENSE_ENTRIES",
    "MAX_INPUT_SIZE",
    "assumed_activations",
    "chain_from_weights",
    "check_dense_size",
    "check_input_shape",
    "check_widths",
    "parse_arch",
    "real_array",
    "pow2",
    "rounded_pool",
]

#: Largest dense matrix (out x in entries) a loader builds: 10^8 float64 entries = 800 MB.
MAX_DENSE_ENTRIES = 10**8
#: Largest total of an ONNX model's external data (torch's default exporter writes the weights to MODEL.onnx.data).
MAX_EXTERNAL_BYTES = 4 << 30
#: Largest ``input_shape`` (C*H*W) accepted for lowering convolutions.
MAX_INPUT_SIZE = 10**6


def check_dense_size(n_out: int, n_in: int, where: str) -> None:
    """Refuse a dense matrix with more than :data:`MAX_DENSE_ENTRIES` entries (bounded memory)."""
    if n_out * n_in > MAX_DENSE_ENTRIES:
        raise UnsupportedLayerError(
            f"{where}: a dense layer of {n_out} x {n_in} = {n_out * n_in:.3g} entries exceeds the limit of "
            f"{MAX_DENSE_ENTRIES:.0e} entries of the dense network IR; use a smaller model or input"
        )


def check_input_shape(shape: Any, name: str = "input_shape") -> tuple[int, int, int] | None:
    """Validate ``(C, H, W)``: three positive ints with ``C*H*W <= MAX_INPUT_SIZE`` (``None`` passes)."""
    if shape is None:
        return None
    try:
        dims = tuple(shape)
        ok = len(dims) == 3 and all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in dims)
    except TypeError:
        ok = False
    if not ok or any(int(d) <= 0 for d in dims):
        raise InvalidParameterError(f"The '{name}' parameter must be C,H,W: three positive integers. Got {shape!r}.")
    dims = tuple(int(d) for d in dims)
    if math.prod(dims) > MAX_INPUT_SIZE:
        raise InvalidParameterError(
            f"The '{name}' parameter {dims} has {math.prod(dims)} entries; at most {MAX_INPUT_SIZE} are supported."
        )
    return dims  # type: ignore[return-value]


def real_array(value: Any, what: str) -> np.ndarray:
    """``value`` as a float64 array if it is a real numeric array exactly representable in float64.

    Complex, string, object, structured and boolean arrays are refused (never cast)."""
    arr = np.asarray(value)
    kind = arr.dtype.kind
    if kind == "c":
        raise ModelFormatError(f"{what} is complex ({arr.dtype}); complex weights are not supported")
    if kind not in "fiu" or arr.dtype.fields is not None:
        raise ModelFormatError(f"{what} is not a real numeric array (dtype {arr.dtype})")
    out = arr.astype(np.float64)
    if arr.dtype.itemsize > 8 or kind in "iu":
        with np.errstate(all="ignore"):
            back = out.astype(arr.dtype)
        if not np.array_equal(back, arr):
            raise ModelFormatError(f"{what} ({arr.dtype}) cannot be represented exactly in float64")
    return out


def pow2(values: Any) -> bool:
    """True if every entry is ``0`` or ``±2^j``: multiplying or dividing by it is exact in float64 (barring
    overflow and underflow below ``2^-1000``, which :mod:`~verification.layers.deviation` covers)."""
    m = np.frexp(np.asarray(values, dtype=np.float64))[0]
    return bool(np.all((np.abs(m) == 0.5) | (m == 0)))


def rounded_pool(layer: Any) -> Any:
    """An average-pooling :class:`~verification.layers.Conv2d` (weights ``fl(1 / (kh kw))``) with its deviation
    recorded when ``kh kw`` is not a power of two: ``|1/k - fl(1/k)| <= u/k <= gamma_1 fl(1/k)``, relative to
    its own weights."""
    from verification.layers.deviation import gamma, mark_rounded

    if pow2(layer.weight.shape[2] * layer.weight.shape[3]):
        return layer
    return mark_rounded(layer, gamma(1))


def parse_arch(arch: str | None, n_hidden: int) -> list[Activation]:
    """Activations for ``n_hidden`` hidden layers from an ``arch`` string (``None``: ReLU everywhere)."""
    if arch is None:
        return [ReLU() for _ in range(n_hidden)]
    if not isinstance(arch, str):
        raise InvalidParameterError(f"The 'arch' parameter must be a string such as 'relu' or 'tanh,relu'. Got {arch!r}.")
    parts = [a for a in arch.split(",") if a.strip()]
    if not parts:
        raise InvalidParameterError(f"The 'arch' parameter names no activation. Got {arch!r}.")
    acts = [parse_activation(a) for a in parts]  # LeakyReLU itself refuses a non-finite slope
    if len(acts) == 1:
        return acts * n_hidden
    if len(acts) != n_hidden:
        raise ShapeMismatchError(f"--arch lists {len(acts)} activations but the model has {n_hidden} hidden layers")
    return acts


def assumed_activations(n_hidden: int, where: str) -> str:
    """The sentence recorded in ``metadata["assumed"]`` when activations are not stored in the file."""
    last = "no activation after the last layer"
    if n_hidden == 0:
        return f"{where} stores no activations: assumed {last}"
    return f"{where} stores no activations: assumed ReLU after each of the {n_hidden} hidden layers and {last}"


def check_widths(net: Network, where: str) -> Network:
    """Refuse zero-width layers (a network with an empty input, output or hidden layer)."""
    for i, layer in enumerate(net.layers):
        if isinstance(layer, Dense) and 0 in layer.weight.shape:
            raise ShapeMismatchError(f"{where}: layer {i} ({layer.describe()}) has zero width")
    return net


def chain_from_weights(
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray | None],
    activations: Sequence[Activation],
    where: str,
) -> Network:
    """``Dense, act, Dense, ..., Dense`` from weight matrices ``(out, in)``; messages name ``where``."""
    layers: list[Layer] = []
    prev_out = None
    for k, (w, b) in enumerate(zip(weights, biases)):
        w = real_array(w, f"{where}: weight {k}")
        if w.ndim != 2:
            raise ShapeMismatchError(f"{where}: weight {k} has shape {w.shape}, expected a matrix")
        if 0 in w.shape:
            raise ShapeMismatchError(f"{where}: weight {k} has shape {w.shape} (a zero-width layer)")
        check_dense_size(w.shape[0], w.shape[1], where)
        bias = None if b is None else real_array(b, f"{where}: bias {k}").reshape(-1)
        if not np.all(np.isfinite(w)) or (bias is not None and not np.all(np.isfinite(bias))):
            raise InvalidWeightsError(f"{where}: layer {k} has a NaN or infinite weight or bias")
        if prev_out is not None and w.shape[1] != prev_out:
            raise ShapeMismatchError(f"{where}: weight {k} expects {w.shape[1]} inputs but weight {k - 1} gives {prev_out}")
        if bias is not None and bias.shape[0] != w.shape[0]:
            raise ShapeMismatchError(f"{where}: bias {k} has {bias.shape[0]} entries but weight {k} has {w.shape[0]} rows")
        prev_out = w.shape[0]
        layers.append(Dense(w, bias))
        if k < len(weights) - 1:
            layers.append(activations[k])
    return Network(tuple(layers))
