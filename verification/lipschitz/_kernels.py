"""Numba kernels for Lipschitz baselines (float64, C-contiguous inputs)."""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["max_pattern_norm"]


@njit(cache=True)
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


@njit(cache=True)
def max_pattern_norm(w_out: np.ndarray, options: np.ndarray, norm_code: int) -> tuple:
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


@njit(cache=True)
def lmi_newton_matrix(
    c: np.ndarray,
    x_aa: np.ndarray, x_ab: np.ndarray, x_ba: np.ndarray, x_bb: np.ndarray,
    z_aa: np.ndarray, z_ab: np.ndarray, z_ba: np.ndarray, z_bb: np.ndarray,
) -> np.ndarray:
    """``H[a, b] = tr(C_a X_ab C_b Z_abᵀ)`` with ``X_ab = [[x_aa, x_ab], [x_ba, x_bb]][a, b]`` (2 x 2 per atom pair),
    likewise ``Z``.

    ``c``: (A, 2, 2) atom coefficients; ``x_uv[a, b] = u_aᵀ X v_b`` for the atom vectors ``u, v ∈ {α, β}``.
    With ``X = Z = K⁻¹`` this is the Hessian of ``-log det K`` in the atom multipliers (barrier method); with
    ``X`` the primal iterate and ``Z = S⁻¹`` it is the HKM Schur complement ``tr(C_a X C_b S⁻¹)`` (used by
    :mod:`verification.lipschitz._chain_ipm` and :mod:`verification.lipschitz._chain_pd`)."""
    n = c.shape[0]
    h = np.empty((n, n))
    for a in range(n):
        a00 = c[a, 0, 0]
        a01 = c[a, 0, 1]
        a10 = c[a, 1, 0]
        a11 = c[a, 1, 1]
        for b in range(n):
            m00 = x_aa[a, b]
            m01 = x_ab[a, b]
            m10 = x_ba[a, b]
            m11 = x_bb[a, b]
            q00 = z_aa[a, b]
            q01 = z_ab[a, b]
            q10 = z_ba[a, b]
            q11 = z_bb[a, b]
            # N = C_b Qᵀ
            n00 = c[b, 0, 0] * q00 + c[b, 0, 1] * q01
            n01 = c[b, 0, 0] * q10 + c[b, 0, 1] * q11
            n10 = c[b, 1, 0] * q00 + c[b, 1, 1] * q01
            n11 = c[b, 1, 0] * q10 + c[b, 1, 1] * q11
            # R = C_a M ; tr(R N)
            r00 = a00 * m00 + a01 * m10
            r01 = a00 * m01 + a01 * m11
            r10 = a10 * m00 + a11 * m10
            r11 = a10 * m01 + a11 * m11
            h[a, b] = r00 * n00 + r01 * n10 + r10 * n01 + r11 * n11
    return h
