"""``.nnet`` loader (the ACAS Xu text format of K. Julian, 2016).

Layout after ``//`` comment lines: ``L, n_in, n_out, max_width``; the ``L+1`` layer sizes; a flag line;
input minimums; input maximums; means (``n_in`` inputs + 1 output); ranges (likewise); then per layer the
weight rows followed by the bias rows.  ReLU after every layer but the last.

Units: the network itself works on *normalised* inputs ``(x - mean) / range`` and produces normalised
outputs; this is the function stored in the equivalent ONNX files, and what :func:`load` returns by default.
The input domain ``[min, max]`` from the header is converted to normalised units and stored in
``net.input_lower / input_upper``; the raw constants are kept in ``net.metadata``.  With
``include_normalization=True`` the input and output affine maps are folded into the first and last layers,
so that the network takes raw inputs and returns raw outputs (the header's clipping to ``[min, max]`` is
*not* applied; the domain is then stored in raw units).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from verification.activations import ReLU
from verification.errors import ModelFormatError
from verification.io.common import chain_from_weights, check_dense_size, pow2
from verification.layers.deviation import deviation_of, fold, gamma, mark_rounded
from verification.network import Dense, Network

__all__ = ["load"]


def _numbers(line: str, lineno: int, fname: str) -> list[float]:
    try:
        vals = [float(t) for t in line.replace(",", " ").split()]
    except ValueError:
        raise ModelFormatError(f"{fname}: line {lineno} is not a list of numbers: {line[:60]!r}") from None
    if not all(math.isfinite(v) for v in vals):
        raise ModelFormatError(f"{fname}: line {lineno} contains NaN or inf")
    return vals


def _sizes(vals: list[float], what: str, fname: str) -> list[int]:
    if any(v != int(v) or v <= 0 for v in vals):
        raise ModelFormatError(f"{fname}: {what} must be positive integers, got {[f'{v:g}' for v in vals[:6]]}")
    return [int(v) for v in vals]


def load(path: Path, include_normalization: bool = False) -> Network:
    fname = path.name
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ModelFormatError(f"{fname}: not a text .nnet file (invalid UTF-8)") from None
    lines = [(i + 1, ln) for i, ln in enumerate(text.splitlines()) if ln.strip() and not ln.lstrip().startswith("//")]
    pos = 0

    def take(expected: int | None = None) -> list[float]:
        nonlocal pos
        if pos >= len(lines):
            raise ModelFormatError(f"{fname}: file ends early (truncated?) after line {lines[-1][0] if lines else 0}")
        lineno, ln = lines[pos]
        pos += 1
        vals = _numbers(ln, lineno, fname)
        if expected is not None and len(vals) != expected:
            raise ModelFormatError(f"{fname}: line {lineno} has {len(vals)} numbers, expected {expected}")
        return vals

    head = take()
    if len(head) < 3:
        raise ModelFormatError(f"{fname}: first line must be 'layers, inputs, outputs, max width'")
    n_layers, n_in, n_out = _sizes(head[:3], "the first line's layers, inputs and outputs", fname)
    if n_layers > len(lines):
        raise ModelFormatError(f"{fname}: the header declares {n_layers} layers, more than the file can hold (truncated?)")
    sizes = _sizes(take(n_layers + 1), "layer sizes", fname)
    if sizes[0] != n_in or sizes[-1] != n_out:
        raise ModelFormatError(f"{fname}: layer sizes {sizes[:8]} disagree with {n_in} inputs / {n_out} outputs")
    for k in range(n_layers):
        check_dense_size(sizes[k + 1], sizes[k], fname)
        if sizes[k + 1] > len(lines):
            raise ModelFormatError(f"{fname}: layer {k} declares {sizes[k + 1]} rows, more than the file holds (truncated?)")
    take()  # symmetric flag, unused
    mins, maxs = np.array(take(n_in)), np.array(take(n_in))
    means, ranges = np.array(take(n_in + 1)), np.array(take(n_in + 1))
    if np.any(ranges == 0):
        raise ModelFormatError(f"{fname}: a normalisation range is zero")
    if np.any(mins > maxs):
        raise ModelFormatError(f"{fname}: an input minimum exceeds its maximum")
    weights, biases = [], []
    for k in range(n_layers):
        w = np.array([take(sizes[k]) for _ in range(sizes[k + 1])])
        b = np.array([take(1)[0] for _ in range(sizes[k + 1])])
        weights.append(w)
        biases.append(b)
    if pos != len(lines):
        raise ModelFormatError(f"{fname}: unexpected extra data from line {lines[pos][0]}")
    net = chain_from_weights(weights, biases, [ReLU() for _ in range(n_layers - 1)], fname)
    meta = {
        "input_min": mins.tolist(),
        "input_max": maxs.tolist(),
        "input_mean": means[:-1].tolist(),
        "input_range": ranges[:-1].tolist(),
        "output_mean": float(means[-1]),
        "output_range": float(ranges[-1]),
        "normalized": not include_normalization,
    }
    if not include_normalization:
        lo = (mins - means[:-1]) / ranges[:-1]
        hi = (maxs - means[:-1]) / ranges[:-1]
        return Network(net.layers, lo, hi, meta)
    layers = list(net.layers)
    layers[0] = _fold_exact_or_recorded(layers[0], _input_normalization(means[:-1], ranges[:-1]))
    out = Dense(ranges[-1] * np.eye(n_out), np.full(n_out, means[-1]))  # copied from the file: exact
    layers[-1] = _fold_exact_or_recorded(out, layers[-1])
    return Network(tuple(layers), mins, maxs, meta)


def _input_normalization(mean: np.ndarray, rng: np.ndarray) -> Dense:
    """``x -> (x - mean) / range`` as ``diag(fl(1/range)) x + fl(-mean fl(1/range))``: ``fl(1/range)`` is within
    ``gamma_1`` of its float value, the shift (two roundings) within ``gamma_3``; no record if exact (ranges
    powers of two)."""
    scale = 1.0 / rng
    layer = Dense(np.diag(scale), -(mean * scale))
    return layer if pow2(rng) else mark_rounded(layer, gamma(3))


def _fold_exact_or_recorded(outer: Dense, inner: Dense) -> Dense:
    """``outer ∘ inner``: the plain product when it is exact (no records; one side ``diag(2^j)``, so every
    weight is one exact product, and the bias a single nonzero term), else
    :func:`~verification.layers.deviation.fold` (rounding recorded)."""
    if deviation_of(outer) is None and deviation_of(inner) is None:
        if _pow2_diag(inner) and not np.any(inner.bias):
            return outer.compose(inner)
        if _pow2_diag(outer) and not (np.any(outer.bias) and np.any(inner.bias)):
            return outer.compose(inner)
    return fold(outer, inner)


def _pow2_diag(layer: Dense) -> bool:
    w = layer.weight
    return w.shape[0] == w.shape[1] and not np.any(w - np.diag(np.diag(w))) and pow2(np.diag(w))
