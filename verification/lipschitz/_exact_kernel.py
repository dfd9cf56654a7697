"""Numba kernel of the ``exact`` method: the largest norm over all activation patterns (float64, C-contiguous).

numba (about 0.4 s to import) is imported when the kernel first runs: only ``exact`` needs it."""

from __future__ import annotations

import numpy as np

__all__ = ["max_pattern_norm"]

_COMPILED: dict = {}


def max_pattern_norm(w_out: np.ndarray, options: np.ndarray, norm_code: int) -> tuple:
    """See :func:`_max_pattern_norm` (compiled with ``numba.njit(cache=True)`` on first use)."""
    kernel = _COMPILED.get("max_pattern_norm")
    if kernel is None:
        from numba import njit

        global _norm
        _norm = njit(cache=True)(_norm)  # the kernel below calls it: compiled first
        kernel = _COMPILED.setdefault("max_pattern_norm", njit(cache=True)(_max_pattern_norm))
    return kernel(w_out, options, norm_code)


def _norm(m: np.ndarray, norm_code: int) -> float:
    # norm_code 0: spectral norm; 1: max row l1 (l-inf operator norm)
    if norm_code == 1:
        best = 0.0
        for i in range(m.shape[0]):
            s = 0.0
            for j in range(m.shape[1]):
                s += abs(m[i, j])
            if s > best:
                best = s
        return best
    if m.shape[0] <= m.shape[1]:
        g = m @ m.T
    else:
        g = m.T @ m
    ev = np.linalg.eigvalsh(g)
    return np.sqrt(max(ev[-1], 0.0))


def _max_pattern_norm(w_out: np.ndarray, options: np.ndarray, norm_code: int) -> tuple:
    """Maximise ``||w_out @ R(b)||`` over all choice vectors ``b ∈ {0,1}^G``.

    ``options`` has shape ``(G, 2, g, n_in)``: for group ``j`` the rows of ``R(b)`` at positions
    ``j*g .. j*g+g-1`` are ``options[j, b_j]``.  Returns ``(max value, maximising b as an int code)``.
    Each pattern's matrix is rebuilt from scratch (no accumulated rounding)."""
    n_groups, _, g, n_in = options.shape
    m = w_out.shape[0]
    best = -1.0
    best_code = 0
    r = np.empty((n_groups * g, n_in))
    for code in range(1 << n_groups):
        for j in range(n_groups):
            b = (code >> j) & 1
            for t in range(g):
                for k in range(n_in):
                    r[j * g + t, k] = options[j, b, t, k]
        prod = np.zeros((m, n_in))
        for i in range(m):
            for k in range(n_groups * g):
                a = w_out[i, k]
                if a != 0.0:
                    for col in range(n_in):
                        prod[i, col] += a * r[k, col]
        val = _norm(prod, norm_code)
        if val > best:
            best = val
            best_code = code
    return best, best_code
