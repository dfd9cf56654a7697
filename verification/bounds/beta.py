"""beta-CROWN: lower bounds of specification rows on ReLU-split sub-domains (Wang et al., NeurIPS 2021).

A *domain* is the input box together with sign constraints ``s_{j,i} z_{j,i} >= 0`` (``s = +1``: neuron
active, ``-1``: inactive, ``0``: free) on pre-activations ``z_j`` of a canonical ReLU / leaky-ReLU net.  Its
pre-activation bounds are sound bounds on the whole box clamped by the constraints (``l >= 0`` where
``s = +1``, ``u <= 0`` where ``s = -1``), so every split neuron is linear in the relaxation.

For multipliers ``beta >= 0`` every ``x`` of the domain satisfies
``c·f(x) >= c·f(x) - sum_{j,i} beta_{j,i} s_{j,i} z_{j,i}(x)``; bounding the right side below by CROWN over
the whole box is therefore a lower bound of ``c·f`` on the domain for *any* ``beta >= 0`` and any lower
slopes ``alpha`` in their admissible range (Wang et al., Thm 3.1).  Both are tuned jointly by projected Adam
ascent (:func:`~verification.bounds.alpha.ascend`); every iterate is sound and the best one per row is kept.
With the relaxation choices and the minimising box vertex ``x*`` fixed the bound is linear in the
parameters, so its gradient is exact almost everywhere: ``Lambda_{j,i} z_hat_{j,i}`` for a slope and
``-s_{j,i} z_hat_{j,i}`` for a multiplier, where ``z_hat`` is the pre-activation of the linearised network
at ``x*`` and ``Lambda`` the backward coefficient on the neuron's output.

Float64 without directed rounding, like the rest of :mod:`verification.bounds`; callers that claim a proof
require a positive margin relative to :attr:`BetaBounds.scale`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verification.bounds.alpha import ascend
from verification.bounds.batched import is_two_piece
from verification.bounds.crown import _apply_choice, _make_relax, _step, box_lower
from verification.errors import UnsupportedLayerError
from verification.network import Network

__all__ = ["BetaBounds", "beta_crown", "clamp_to_splits", "initial_slopes"]


@dataclass
class BetaBounds:
    """Result of :func:`beta_crown` for ``B`` domains and ``R`` rows.

    ``lower`` (B, R): best lower bound of each row; ``scale`` (B, R): magnitude of the terms summed into it
    (for a relative rounding margin); ``alphas`` / ``betas``: per layer (B, R, n_j), the parameters of the
    best iterate (to warm-start children); ``coefs``: per layer (B, R, n_j), the backward coefficients on
    the activation outputs at the best iterate (for branching scores); ``x``: (B, R, n0) the box vertex
    minimising the best iterate's linear bound (a falsification candidate)."""

    lower: np.ndarray
    scale: np.ndarray
    alphas: list
    betas: list
    coefs: list
    x: np.ndarray


def clamp_to_splits(l: np.ndarray, u: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bounds ``l, u`` of one layer clamped by the sign constraints ``s`` (same shape); also returns the
    domains (rows) whose constraints contradict the bounds (empty domains)."""
    empty = np.any(((s > 0) & (u < 0)) | ((s < 0) & (l > 0)), axis=-1)
    l2 = np.where(s > 0, np.maximum(l, 0.0), l)
    u2 = np.where(s < 0, np.minimum(u, 0.0), u)
    return l2, np.maximum(u2, l2), empty


def initial_slopes(net: Network, pre: list, R: int) -> list:
    """CROWN's adaptive lower slopes (1 where ``u > -l``, else the negative slope) per layer, ``(B, R, n_j)``."""
    out = []
    for act, (l, u) in zip(net.activations, pre):
        out.append(np.repeat(np.where(u > -l, 1.0, act.two_piece_slope)[:, None, :], R, axis=1))
    return out


def _backward(net, C, cb, relax, splits, betas):
    """Back-substitution of the rows ``C`` with the Lagrangian terms ``-beta s z_j``; returns ``(lam, bias,
    recs, coefs)`` (coefficients on the input, constant, relaxation choices, coefficients on each ``a_j``)."""
    layers = net.affine_layers
    L = len(relax)
    B = splits[0].shape[0] if L else 1
    lam = np.ascontiguousarray(np.broadcast_to(layers[L].transpose(C), (B,) + (C.shape[0], layers[L].in_features)))
    bias = np.broadcast_to(C @ layers[L].bias + cb, (B, C.shape[0])).copy()
    recs, coefs = [None] * L, [None] * L
    for j in range(L - 1, -1, -1):
        coefs[j] = lam
        lam, add, recs[j] = _step(relax[j], lam)
        lam = lam - betas[j] * splits[j][:, None, :]
        bias = bias + add + lam @ layers[j].bias
        lam = layers[j].transpose(lam)
    return lam, bias, recs, coefs


def _preacts_at(net, relax, recs, x):
    """Pre-activations ``z_hat_j`` of the linearised network (relaxation choices ``recs``) at ``x`` (B, R, n0)."""
    layers = net.affine_layers
    out = []
    z = layers[0](x)
    for j, r in enumerate(relax):
        out.append(z)
        if j + 1 < len(relax):
            z = layers[j + 1](_apply_choice(r, recs[j], z))
    return out


def beta_crown(net: Network, lo: np.ndarray, hi: np.ndarray, C: np.ndarray, cb: np.ndarray, pre: list,
               splits: list, alphas: list | None = None, betas: list | None = None, iters: int = 20,
               lr: float = 0.1, done=None) -> BetaBounds:
    """Lower bounds of the rows ``C f(x) + cb`` (``C``: (R, out)) on ``B`` ReLU-split domains.

    ``lo, hi``: (B, n0) boxes; ``pre``: per activation ``(l, u)`` of shape (B, n_j), sound on the domain and
    already clamped by its splits (:func:`clamp_to_splits`); ``splits``: per activation (B, n_j) in
    ``{-1, 0, +1}``; ``alphas`` / ``betas``: optional warm starts (B, R, n_j) (default: CROWN's slopes and
    zero multipliers).  ``iters`` bound evaluations (``iters - 1`` Adam steps of size ``lr``); ``done``:
    optional ``f(idx, lower) -> mask`` marking domains (indices ``idx`` into the batch, best bounds ``lower``)
    that need no more steps.  The first iterate with default starts is plain CROWN."""
    if not is_two_piece(net):
        raise UnsupportedLayerError("beta-CROWN needs ReLU / leaky-ReLU (slope <= 1) activations")
    acts = net.activations
    L = len(acts)
    B, R = lo.shape[0], C.shape[0]
    C = np.asarray(C, dtype=np.float64)
    mid, rad = (hi + lo) / 2.0, (hi - lo) / 2.0
    alphas = initial_slopes(net, pre, R) if alphas is None else [np.array(a, dtype=np.float64) for a in alphas]
    if betas is None:
        betas = [np.zeros((B, R, s.shape[1])) for s in splits]
    else:
        betas = [np.where(s[:, None, :] != 0, np.maximum(b, 0.0), 0.0) for b, s in zip(betas, splits)]
    sgn = [s.astype(np.float64) for s in splits]
    best = np.full((B, R), -np.inf)
    scale = np.zeros((B, R))
    keep_a = [a.copy() for a in alphas]
    keep_b = [b.copy() for b in betas]
    keep_c = [np.zeros_like(a) for a in alphas]
    keep_x = np.repeat(mid[:, None, :], R, axis=1)
    idx = np.arange(B)
    last: dict = {}

    def evaluate(params):
        al, be = params[:L], params[L:]
        relax = [_make_relax(acts[j], pre[j][0][idx], pre[j][1][idx], alpha=al[j]) for j in range(L)]
        lam, bias, recs, coefs = _backward(net, C, cb, relax, [s[idx] for s in sgn], be)
        m, r = mid[idx], rad[idx]
        val = box_lower(lam, bias, m, r)
        x = np.where(lam >= 0, (m - r)[:, None, :], (m + r)[:, None, :])
        better = val > best[idx]
        best[idx] = np.where(better, val, best[idx])
        mag = np.einsum("bmi,bi->bm", np.abs(lam), np.abs(m) + r) + np.abs(bias)
        scale[idx] = np.where(better, mag, scale[idx])
        w = better[..., None]
        for j in range(L):
            keep_a[j][idx] = np.where(w, al[j], keep_a[j][idx])
            keep_b[j][idx] = np.where(w, be[j], keep_b[j][idx])
            keep_c[j][idx] = np.where(w, coefs[j], keep_c[j][idx])
        keep_x[idx] = np.where(w, x, keep_x[idx])
        last.update(relax=relax, recs=recs, coefs=coefs, x=x)

    def gradient():
        relax, recs, coefs = last["relax"], last["recs"], last["coefs"]
        zs = _preacts_at(net, relax, recs, last["x"])
        ga, gb = [], []
        for j in range(L):
            ga.append(np.where((coefs[j] >= 0) & relax[j].unstable, coefs[j] * zs[j], 0.0))
            gb.append(-sgn[j][idx][:, None, :] * zs[j])
        return ga + gb

    def drop(keep):
        nonlocal idx
        idx = idx[keep]

    ranges = [(min(a.two_piece_slope, 1.0), max(a.two_piece_slope, 1.0)) for a in acts] + [(0.0, np.inf)] * L
    finished = None if done is None else (lambda: done(idx, best[idx]))
    ascend(list(alphas) + list(betas), ranges, evaluate, gradient, iters=iters, lr=lr, done=finished, drop=drop)
    return BetaBounds(best, scale, keep_a, keep_b, keep_c, keep_x)
