"""Helpers shared by loaders."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from verification.activations import Activation, ReLU, parse_activation
from verification.errors import InvalidWeightsError, ShapeMismatchError
from verification.network import Dense, Layer, Network

__all__ = ["chain_from_weights", "parse_arch"]


def parse_arch(arch: str | None, n_hidden: int) -> list[Activation]:
    """Activations for ``n_hidden`` hidden layers from an ``arch`` string (default: ReLU everywhere)."""
    if arch is None:
        return [ReLU() for _ in range(n_hidden)]
    parts = [a for a in arch.split(",") if a.strip()]
    if len(parts) == 1:
        return [parse_activation(parts[0]) for _ in range(n_hidden)]
    if len(parts) != n_hidden:
        raise ShapeMismatchError(f"--arch lists {len(parts)} activations but the model has {n_hidden} hidden layers")
    return [parse_activation(a) for a in parts]


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
        w = np.asarray(w, dtype=np.float64)
        if w.ndim != 2:
            raise ShapeMismatchError(f"{where}: weight {k} has shape {w.shape}, expected a matrix")
        if not np.all(np.isfinite(w)) or (b is not None and not np.all(np.isfinite(b))):
            raise InvalidWeightsError(f"{where}: layer {k} has a NaN or infinite weight or bias")
        if prev_out is not None and w.shape[1] != prev_out:
            raise ShapeMismatchError(f"{where}: weight {k} expects {w.shape[1]} inputs but weight {k - 1} gives {prev_out}")
        prev_out = w.shape[0]
        layers.append(Dense(w, None if b is None else np.asarray(b, dtype=np.float64).reshape(-1)))
        if k < len(weights) - 1:
            layers.append(activations[k])
    return Network(tuple(layers))
