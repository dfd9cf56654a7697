"""Batched bounds for input splitting: many small boxes at once, reusing the bounds of the parent boxes.

Input-splitting branch and bound (the SMT verifier, :mod:`verification.smt.verifier`) bounds thousands of
small boxes ``[lo_b, hi_b]`` (arrays ``(B, n0)``).  Everything here is built on the CROWN core of
:mod:`verification.bounds.crown` (relaxations, back-substitution):

* :func:`incremental_crown` -- CROWN pre-activation bounds of a ReLU / leaky-ReLU net (adaptive lower
  slope, Zhang et al. 2018, Thm 3.2) intersected with interval bounds and with *prior* bounds (e.g. of the
  parent box, which stay sound on a sub-box); only neurons that interval bounds leave unstable in some box
  of the batch are back-substituted (rows ``+-e_i``), a small fraction of the ``2 n`` rows of
  :func:`~verification.bounds.crown.crown_layers` on small boxes;
* :func:`batched_layer_bounds` -- pre-activation bounds by ``"incremental"`` (above), ``"crown"``
  (:func:`~verification.bounds.crown.crown_layers`, any activation with a linear relaxation) or
  ``"ibp"`` (intervals);
* :func:`spec_bounds` -- lower bounds of the rows of ``C f(x) + cb`` on every box, each with the linear
  function it comes from (coefficients in the normalised input ``x = mid + rad * e``, ``e in [-1, 1]^n0``);
* :func:`alpha_spec_bounds` -- the same rows with alpha-CROWN (Xu et al., ICLR 2021) on the *last*
  back-substitution only: the lower slopes of the unstable neurons are optimised per box and row by a few
  projected Adam steps, the intermediate bounds stay fixed (e.g. those of :func:`incremental_crown`).

All arithmetic is float64 without directed rounding (as in most verifiers); callers that claim a proof
from these bounds must require a small positive margin.
"""

from __future__ import annotations

import numpy as np

from verification.bounds.alpha import ascend
from verification.bounds.crown import (ROW_BLOCK_ENTRIES, _ibp_next, _make_relax, alpha_gradient, backsubstitute,
                                       backsubstitute_from, box_lower, check_supported, crown_layers, make_relaxations)
from verification.bounds.interval import ibp_layers
from verification.bounds.types import Bounds, LayerBounds, SpecBounds, check_deadline
from verification.errors import InvalidParameterError, UnsupportedLayerError
from verification.network import Network

__all__ = ["SpecBounds", "spec_bounds", "alpha_spec_bounds", "incremental_crown", "intermediate_bounds",
           "batched_layer_bounds", "is_two_piece", "INTERMEDIATE"]

INTERMEDIATE = ("incremental", "crown", "ibp")


def is_two_piece(net: Network) -> bool:
    """True if every activation is a convex two-piece map ``max(z, a z)``: ReLU, or leaky ReLU with slope
    ``a <= 1`` (negative slopes included; what :func:`incremental_crown`, alpha-CROWN on the specification and
    the exact pattern / MILP leaves support)."""
    return all(a.two_piece_slope is not None and a.two_piece_slope <= 1.0 for a in net.activations)


def incremental_crown(net: Network, lo: np.ndarray, hi: np.ndarray, prior: list | None = None,
                      deadline: float | None = None) -> list:
    """Batched CROWN pre-activation bounds of every activation of a canonical ReLU / leaky-ReLU net.

    ``lo, hi``: ``(B, n0)`` boxes; ``prior``: optional per-layer bounds (:class:`Bounds` or ``(l, u)``) of
    shape ``(B, n_j)`` (or ``None`` entries) known to hold on the boxes, intersected with the new bounds (so
    a neuron stable on the parent box stays stable).  Per layer: interval bounds from the previous layer's
    bounds, the prior, then CROWN back-substitution (:func:`~verification.bounds.crown.backsubstitute`) of
    the neurons still unstable in some box.  Returns one :class:`Bounds` per activation.  ``deadline``
    (``time.monotonic()``): raise :class:`~verification.bounds.types.DeadlineReached` once it has passed."""
    if not is_two_piece(net):
        raise UnsupportedLayerError("incremental_crown needs ReLU / leaky-ReLU (slope <= 1) activations")
    layers, acts = net.affine_layers, net.activations
    mid, rad = (hi + lo) / 2.0, (hi - lo) / 2.0
    B = lo.shape[0]
    pre: list = []
    relax: list = []
    for k in range(len(acts)):
        check_deadline(deadline)
        if k == 0:
            c0, r0 = layers[0](mid), layers[0].abs_linear(rad)
        else:  # interval bounds from the previous layer's bounds
            c0, r0 = _ibp_next(acts[k - 1], layers[k], *pre[k - 1])
        l, u = Bounds(c0 - r0, c0 + r0).intersect(None if prior is None else prior[k])
        if k > 0:
            unst = np.flatnonzero(((l < 0) & (u > 0)).any(axis=0))
            if unst.size:
                m = unst.size
                Wk, bk = layers[k].rows(unst), layers[k].bias[unst]
                W2, b2 = np.concatenate([Wk, -Wk]), np.concatenate([bk, -bk])
                # rows in blocks: bounded memory, and the deadline is checked between blocks as well
                width = max(a.in_features for a in layers[:k + 1])
                step = max(16, ROW_BLOCK_ENTRIES // (B * width))
                vals = []
                for r0 in range(0, 2 * m, step):
                    lam, bias, _, _ = backsubstitute_from(net, k, W2[r0:r0 + step], b2[r0:r0 + step], relax, B,
                                                          record=False, deadline=deadline)
                    vals.append(np.einsum("nmd,nd->nm", lam, mid) - np.einsum("nmd,nd->nm", np.abs(lam), rad) + bias)
                val = np.concatenate(vals, axis=1)
                l = l.copy()
                u = u.copy()
                l[:, unst] = np.maximum(l[:, unst], val[:, :m])
                u[:, unst] = np.minimum(u[:, unst], -val[:, m:])
                u = np.maximum(u, l)
        pre.append(Bounds(l, u))
        relax.append(_make_relax(acts[k], l, u))
    return pre


def _supports_crown(net: Network) -> bool:
    try:
        check_supported(net)
    except UnsupportedLayerError:
        return False
    return True


def intermediate_bounds(net: Network, lo: np.ndarray, hi: np.ndarray, method: str = "incremental",
                        prior: list | None = None, deadline: float | None = None) -> LayerBounds:
    """Pre-activation bounds (``pre``, each ``(B, n_j)``) of a canonical net on the boxes ``[lo, hi]`` and the
    pair-difference bounds of MaxMin layers (``pair``; ``None`` if not computed), intersected with ``prior``.
    ``method``: ``"incremental"`` (ReLU / leaky-ReLU nets; others fall back to ``"crown"``), ``"crown"``
    (nets without a linear relaxation fall back to ``"ibp"``) or ``"ibp"``."""
    if method not in INTERMEDIATE:
        raise InvalidParameterError(f"The bound method must be one of {INTERMEDIATE}. Got {method!r} instead.")
    if method == "incremental" and is_two_piece(net):
        return LayerBounds(tuple(incremental_crown(net, lo, hi, prior, deadline)))
    if method != "ibp" and _supports_crown(net):
        lb = crown_layers(net, lo, hi, final=False, prior=prior)
        return LayerBounds(lb.pre, lb.pair, infeasible=lb.infeasible)
    pre = ibp_layers(net, lo, hi).pre
    if prior is not None:
        pre = tuple(b.intersect(p) for b, p in zip(pre, prior))
    return LayerBounds(pre)


def batched_layer_bounds(net: Network, lo: np.ndarray, hi: np.ndarray, method: str = "incremental",
                         prior: list | None = None):
    """:func:`intermediate_bounds` as the pair ``(pre, pair)`` (``pre``: list of :class:`Bounds`)."""
    lb = intermediate_bounds(net, lo, hi, method, prior)
    return list(lb.pre), None if lb.pair is None else list(lb.pair)


def spec_bounds(net: Network, lo: np.ndarray, hi: np.ndarray, C: np.ndarray, cb: np.ndarray,
                method: str = "incremental", prior: list | None = None, deadline: float | None = None) -> SpecBounds:
    """Lower bounds of the rows of ``C f(x) + cb`` (``C``: ``(R, out)``) on each box ``[lo[b], hi[b]]`` of a
    canonical net, with intermediate bounds from :func:`batched_layer_bounds` (``method``, ``prior``) and
    one CROWN back-substitution of the rows.  Without a linear relaxation (e.g. Householder) the rows are
    bounded by interval arithmetic on the output (``coef`` is then 0)."""
    B = lo.shape[0]
    C = np.asarray(C, dtype=np.float64)
    lb = intermediate_bounds(net, lo, hi, method, prior, deadline)
    pre = lb.pre
    L = len(net.activations)
    if method != "ibp" and (is_two_piece(net) or _supports_crown(net)):
        relax = make_relaxations(net, pre, lb.pair)
        lam, bias, _, _ = backsubstitute(net, L, C, relax, B, record=False)
        mid, rad = (hi + lo) / 2.0, (hi - lo) / 2.0
        lower = box_lower(lam, bias, mid, rad) + cb
        return SpecBounds(lower, lam * rad[:, None, :], pre, _scale(lam, bias, mid, rad, cb))
    # interval bounds of the output
    l, u = ibp_layers(net, lo, hi).out
    Cp, Cn = np.maximum(C, 0.0), np.minimum(C, 0.0)
    lower = l @ Cp.T + u @ Cn.T + cb
    scale = np.abs(l) @ np.abs(Cp).T + np.abs(u) @ np.abs(Cn).T + np.abs(cb)
    return SpecBounds(lower, np.zeros((B, C.shape[0], lo.shape[1])), pre, scale)


def _scale(lam: np.ndarray, bias: np.ndarray, mid: np.ndarray, rad: np.ndarray, cb) -> np.ndarray:
    """Magnitude ``|lam|·(|mid| + rad) + |bias| + |cb|`` of a row bound ``lam·x + bias + cb`` on a box."""
    return np.einsum("bmi,bi->bm", np.abs(lam), np.abs(mid) + rad) + np.abs(bias) + np.abs(cb)


def alpha_spec_bounds(net: Network, lo: np.ndarray, hi: np.ndarray, C: np.ndarray, cb: np.ndarray, pre: list,
                      iters: int = 10, lr: float = 0.3, done=None) -> SpecBounds:
    """alpha-CROWN lower bounds of the rows of ``C f(x) + cb`` on the boxes ``[lo, hi]`` of a canonical ReLU /
    leaky-ReLU net, with fixed pre-activation bounds ``pre`` (sound on the boxes, e.g. from
    :func:`incremental_crown`).

    Every unstable neuron's lower line ``a_i z`` (slope ``alpha`` in ``[min(s, 1), max(s, 1)]``, ``s`` the
    negative slope) is a free parameter per box and row (Xu et al., ICLR 2021, Sec. 3.1), started at CROWN's
    adaptive choice and moved by ``iters - 1`` projected Adam steps (step ``lr``) along the exact gradient
    ``d bound / d alpha_i = Lambda_i z_i(x*)`` (``Lambda``: backward coefficient of the neuron, ``x*``: the
    minimising box vertex).  Every iterate is a sound bound (a valid relaxation on the box), so the best
    per row is kept; the first iterate is plain CROWN.  With fixed intermediate bounds and one row, the
    optimum over alpha is the value of the triangle-relaxation LP (Salman et al., NeurIPS 2019), which CROWN's
    0/1 slope choice can miss by far more than the gap of the unstable neurons (ACAS Xu 3_3 / prop_2: boxes
    with one unstable neuron and CROWN bound -2e-3 where the LP gives +1.2e-3).

    ``done``: optional ``f(idx, lower) -> bool mask``, called with the indices ``idx`` of the boxes still
    optimised and their best bounds ``lower`` (``(idx.size, R)``); boxes it marks are no longer optimised.  Returns :class:`SpecBounds` (``lower``, ``coef`` of the best iterate per row, ``pre``).
    Float64 without directed rounding, like :func:`spec_bounds`."""
    if not is_two_piece(net):
        raise UnsupportedLayerError("alpha_spec_bounds needs ReLU / leaky-ReLU (slope <= 1) activations")
    acts = net.activations
    L = len(acts)
    B, R = lo.shape[0], C.shape[0]
    C = np.asarray(C, dtype=np.float64)
    mid, rad = (hi + lo) / 2.0, (hi - lo) / 2.0
    best = np.full((B, R), -np.inf)
    best_scale = np.zeros((B, R))
    best_lam = np.zeros((B, R, lo.shape[1]))
    act_idx = np.arange(B)  # boxes still optimised
    alphas = []
    for act, (l, u) in zip(acts, pre):
        s = act.two_piece_slope
        alphas.append(np.repeat(np.where(u > -l, 1.0, s)[:, None, :], R, axis=1))
    ranges = [(min(a.two_piece_slope, 1.0), max(a.two_piece_slope, 1.0)) for a in acts]
    last: dict = {}

    def evaluate(alphas):
        relax = []
        for j, (l, u) in enumerate(pre):
            relax.append(_make_relax(acts[j], l[act_idx], u[act_idx], alpha=alphas[j]))
        lam, bias, recs, coefs = backsubstitute(net, L, C, relax, act_idx.size)
        m, r = mid[act_idx], rad[act_idx]
        val = box_lower(lam, bias, m, r) + cb
        better = val > best[act_idx]
        best[act_idx] = np.where(better, val, best[act_idx])
        best_scale[act_idx] = np.where(better, _scale(lam, bias, m, r, cb), best_scale[act_idx])
        best_lam[act_idx] = np.where(better[..., None], lam, best_lam[act_idx])
        last.update(relax=relax, recs=recs, coefs=coefs, lam=lam, lo=m - r, hi=m + r)

    def gradient():
        return alpha_gradient(net, last["relax"], last["recs"], last["coefs"], last["lam"], last["lo"], last["hi"])

    def drop(keep):
        nonlocal act_idx
        act_idx = act_idx[keep]

    finished = None if done is None else (lambda: done(act_idx, best[act_idx]))
    ascend(alphas, ranges, evaluate, gradient, iters=iters, lr=lr, done=finished, drop=drop)
    return SpecBounds(best, best_lam * rad[:, None, :], tuple(Bounds(l, u) for l, u in pre), best_scale)
