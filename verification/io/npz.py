"""Our ``.npz`` exchange format.

Arrays ``W0, b0, W1, b1, ...`` (weights ``(out, in)``), optional ``activations`` (JSON list of activation
specs, one per hidden layer; default ReLU), optional ``input_lower`` / ``input_upper``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from verification.activations import Activation, from_spec
from verification.errors import ModelFormatError
from verification.io.common import chain_from_weights
from verification.network import Network

__all__ = ["load", "save"]


def load(path: Path) -> Network:
    try:
        data = np.load(str(path), allow_pickle=False)
        keys = set(data.files)
    except Exception as exc:
        raise ModelFormatError(f"could not read .npz file {path.name!r}: {exc}") from None
    n = 0
    while f"W{n}" in keys:
        n += 1
    if n == 0:
        raise ModelFormatError(f"{path.name!r} has no arrays W0, b0, W1, b1, ...")
    weights = [data[f"W{k}"] for k in range(n)]
    biases = [data[f"b{k}"] if f"b{k}" in keys else None for k in range(n)]
    if "activations" in keys:
        specs = json.loads(str(data["activations"]))
        acts = [from_spec(s) for s in specs]
        if len(acts) != n - 1:
            raise ModelFormatError(f"{path.name!r}: {len(acts)} activations for {n} weights")
    else:
        from verification.activations import ReLU

        acts = [ReLU() for _ in range(n - 1)]
    net = chain_from_weights(weights, biases, acts, path.name)
    lo = data["input_lower"] if "input_lower" in keys else None
    hi = data["input_upper"] if "input_upper" in keys else None
    return Network(net.layers, lo, hi)


def save(net: Network, path: Path) -> None:
    cnet = net.canonical()
    arrays: dict[str, np.ndarray] = {}
    for k, d in enumerate(cnet.dense_layers):
        arrays[f"W{k}"] = d.weight
        arrays[f"b{k}"] = d.bias
    acts: list[Activation] = cnet.activations
    arrays["activations"] = np.array(json.dumps([a.to_spec() for a in acts]))
    if cnet.input_lower is not None:
        arrays["input_lower"] = cnet.input_lower
    if cnet.input_upper is not None:
        arrays["input_upper"] = cnet.input_upper
    np.savez(str(path), **arrays)

