"""Exact leaves of input splitting: activation-pattern enumeration with certified LPs.

On an input box where a ReLU / leaky-ReLU network has only a few unstable neurons, fixing the phase of
each of them (a *pattern*) makes the network affine on the part of the box where the pattern holds:
``{x in box : s_i z_i(x) >= 0}`` with ``z_i`` the (then affine) pre-activation and ``s_i = +-1``.  A
disjunct ``A y <= b`` is refuted on the box iff it is refuted on every pattern region.  For one pattern,
with rows ``g_r(e) = G_r e + h_r`` (``A_k f(x) - b_k`` in the normalised input ``x = c + r e``,
``e in [-1, 1]^d``) and constraints ``p_i(e) = P_i e + q_i >= 0``, we bound

    t* = min_{e in [-1,1]^d} max( max_r g_r(e), max_i -p_i(e) ).

``t* > 0`` means every point of the box either leaves the pattern region or has some row > 0, i.e. the
disjunct is refuted there (the two conditions are equivalent).  The LP (HiGHS) is only used to find
weights: for any ``w >= 0`` summing to 1 over the stacked functions, weak duality gives the rigorous bound
``t* >= w·f - ||Fᵀ w||_1`` (:func:`~verification.smt.lp.certified_box_margin`, evaluated in float64 with a rounding guard).
Only that bound (``> tol``) refutes, never the solver's reported optimum.  Patterns are enumerated
layer by layer, and a prefix whose new constraint cannot hold anywhere on the box (checked in closed form,
with the same guard) is pruned.  This is the exact "pattern LP" idea of Reluplex / Planet leaves, with
the certificate of Wong and Kolter's dual (weak LP duality) instead of trusting the solver.
"""

from __future__ import annotations

import itertools

import numpy as np

from verification.layers.affine import AffineLayer
from verification.smt.lp import certified_box_margin, min_max_affine

__all__ = ["pattern_leaf"]

_EPS = np.finfo(float).eps


def _closed_form_lower(F: np.ndarray, f: np.ndarray) -> float:
    """``max_j min_e (F_j e + f_j)`` (one-row certificates), with the rounding guard."""
    v = f - np.abs(F).sum(axis=1)
    err = 4 * (F.shape[1] + 2) * _EPS * (np.abs(f) + np.abs(F).sum(axis=1))
    return float((v - err).max()) if v.size else -np.inf


def _lagrange_lower(G: np.ndarray, g: np.ndarray, P: np.ndarray, q: np.ndarray) -> float:
    """Best bound ``max_{r, i, mu >= 0} min_e (g_r(e) + mu p_i(e))`` over single rows ``g_r = G_r e + g_r``
    and single constraints ``-p_i(e) = P_i e + q_i <= 0`` of the stacked form (``p_i <= 0`` on the pattern
    region, so ``g_r >= g_r + mu p_i`` there).  The objective is concave piecewise linear in ``mu``; it is
    evaluated at its breakpoints ``mu = -G_r,j / P_i,j`` and at 0.  Includes the rounding guard."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = -G[:, None, :] / P[None, :, :]  # (R, k, d)
    mu = np.where(np.isfinite(mu) & (mu > 0), mu, 0.0)
    # value(mu) = g_r + mu q_i - || G_r + mu P_i ||_1  at each breakpoint
    M = mu[..., None]  # (R, k, d, 1)
    val = g[:, None, None] + M[..., 0] * q[None, :, None] - np.abs(G[:, None, None, :] + M * P[None, :, None, :]).sum(-1)
    scale = np.abs(g).max() + np.abs(G).sum(1).max() + (mu.max() if mu.size else 0.0) * (np.abs(q).max() + np.abs(P).sum(1).max())
    return float(val.max()) - 8 * (G.shape[1] + 4) * _EPS * scale


def pattern_leaf(layers: list[AffineLayer], slopes, pre, lo, hi, A, b, tol: float,
                 max_patterns: int = 64) -> tuple[bool, np.ndarray | None]:
    """Decide the disjunct ``A y <= b`` on the box ``[lo, hi]`` by activation patterns.

    ``layers``: the affine layers of a canonical net; ``slopes``: negative slope per activation layer (0 for
    ReLU, in [0, 1] for leaky ReLU); ``pre``: per layer ``(l, u)`` sound pre-activation bounds on the box.
    Returns ``(True, None)`` if every pattern is refuted (certified); ``(False, x)`` if some pattern stays
    undecided (the caller keeps splitting; ``x``: the LP minimiser of that pattern, a candidate input to
    screen, or ``None``), or more than ``max_patterns`` patterns are needed.
    """
    cen, rad = (hi + lo) / 2.0, (hi - lo) / 2.0
    d = cen.size
    # affine map of the current layer's input in e: value = H e + h
    start = (rad[:, None] * np.eye(d), cen.copy(), np.zeros((0, d)), np.zeros(0))
    frontier = [start]
    # each pattern's LP needs the dense rows of its affine map in e: compose with the layers' matrices
    mats = [layer.as_matrix() for layer in layers]
    for j, W in enumerate(mats[:-1]):
        l, u = pre[j]
        unst = np.flatnonzero((l < 0) & (u > 0))
        a = slopes[j]
        nxt = []
        for H, h, P, q in frontier:
            Z = W @ H
            z = W @ h + layers[j].bias
            base = np.where(l >= 0, 1.0, a)  # stable: active (1) or inactive (a)
            for signs in itertools.product((1.0, -1.0), repeat=unst.size):
                s = np.asarray(signs)
                Ps, qs = s[:, None] * Z[unst], s * z[unst]
                if unst.size and _closed_form_lower(-Ps, -qs) > 0:
                    continue  # some s_i z_i >= 0 is impossible on the box
                slope = base.copy()
                slope[unst] = np.where(s > 0, 1.0, a)
                nxt.append((Z * slope[:, None], z * slope, np.vstack([P, Ps]), np.concatenate([q, qs])))
                if len(nxt) > max_patterns:
                    return False, None
        frontier = nxt
    last, last_bias = mats[-1], layers[-1].bias
    for H, h, P, q in frontier:
        G = A @ (last @ H)
        g = A @ (last @ h + last_bias) - b
        if _closed_form_lower(G, g) > tol:
            continue
        # pattern constraints scaled to the rows' magnitude (positive scaling keeps the equivalence)
        if P.shape[0]:
            scale = np.abs(G).sum(axis=1).max() / np.maximum(np.abs(P).sum(axis=1), 1e-300)
            F = np.vstack([G, -P * scale[:, None]])
            fv = np.concatenate([g, -q * scale])
        else:
            F, fv = G, g
        if P.shape[0] and _lagrange_lower(G, g, F[G.shape[0]:], fv[G.shape[0]:]) > tol:
            continue
        w, e = min_max_affine(F, fv)
        if w is not None and certified_box_margin(F, fv, w) > tol:
            continue
        return False, (None if e is None else (cen + rad * e)[None, :])
    return True, None
