"""MATLAB ``.mat`` weight lists (LipSDP / Pauli et al. convention).

A cell array ``weights`` (or ``W``) of matrices ``(out, in)``; optional cell array ``biases`` (or ``b``).
Activations are not stored: ReLU between layers unless ``arch`` says otherwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from verification.errors import ModelFormatError
from verification.io.common import chain_from_weights, parse_arch
from verification.network import Network

__all__ = ["load"]


def _cells(obj) -> list[np.ndarray]:
    arr = np.asarray(obj)
    if arr.dtype == object:
        return [np.asarray(a, dtype=np.float64) for a in arr.ravel()]
    return [np.asarray(arr, dtype=np.float64)]


def load(path: Path, arch: str | None = None) -> Network:
    import scipy.io

    try:
        data = scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises several types for corrupt files
        raise ModelFormatError(f"could not read MATLAB file {path.name!r}: {exc}") from None
    key = next((k for k in ("weights", "W") if k in data), None)
    if key is None:
        found = sorted(k for k in data if not k.startswith("__"))
        raise ModelFormatError(f"{path.name!r} has no cell array 'weights' or 'W' (found: {found})")
    weights = _cells(data[key])
    bkey = next((k for k in ("biases", "b") if k in data), None)
    biases = _cells(data[bkey]) if bkey else [None] * len(weights)
    if len(biases) != len(weights):
        raise ModelFormatError(f"{path.name!r}: {len(weights)} weights but {len(biases)} biases")
    acts = parse_arch(arch, len(weights) - 1)
    return chain_from_weights(weights, biases, acts, path.name)
