"""Numba kernels for :mod:`theorytools.rmt` (float64, C-contiguous)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def gaussian_mixture(nodes, weights, grid, width):  # pragma: no cover - compiled
    """``out[g] = sum_k weights[k] N(grid[g]; nodes[k], width^2)`` (SLQ density smoothing)."""
    out = np.zeros(grid.shape[0])
    norm = 1.0 / (math.sqrt(2.0 * math.pi) * width)
    inv = 1.0 / (2.0 * width * width)
    for g in range(grid.shape[0]):
        x = grid[g]
        acc = 0.0
        for k in range(nodes.shape[0]):
            d = x - nodes[k]
            acc += weights[k] * math.exp(-d * d * inv)
        out[g] = acc * norm
    return out
