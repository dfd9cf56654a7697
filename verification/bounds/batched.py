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

from dataclasses import dataclass

import numpy as np

from verification.bounds.crown import (_apply_choice, _ibp_next, _make_relax, backsubstitute,
                                       backsubstitute_from, check_supported, crown_layers, make_relaxations)
from verification.errors import InvalidParameterError, UnsupportedLayerError
from verification.network import Dense, Network

__all__ = ["SpecBounds", "spec_bounds", "alpha_spec_bounds", "incremental_crown", "batched_layer_bounds", "is_two_piece",
           "INTERMEDIATE"]

INTERMEDIATE = ("incremental", "crown", "ibp")


@dataclass
class SpecBounds:
    """Bounds of specification rows on a batch of boxes.

    ``lower[b, r]`` is a lower bound of row ``r`` on box ``b``; it is the minimum over the box of the linear
    function ``coef[b, r] · e + lower[b, r] + ||coef[b, r]||_1`` (``e``: normalised input), itself a lower
    bound of the row on the box.  ``pre[j] = (l, u)``: pre-activation bounds of activation ``j``.
    ``scale[b, r]``: magnitude of the terms summed into ``lower`` (float64 rounding is relative to it; a
    refutation must clear a margin proportional to it)."""

    lower: np.ndarray  # (B, R)
    coef: np.ndarray  # (B, R, n0)
    pre: list
    scale: np.ndarray | None = None  # (B, R)

    def guarded(self, tol: float) -> np.ndarray:
        """``lower - tol * (1 + scale)``: a row is refuted on a box when this is ``> 0``."""
        scale = 0.0 if self.scale is None else self.scale
        return self.lower - tol * (1.0 + scale)

    def unstable_counts(self) -> np.ndarray:
        """Number of neurons with ``l < 0 < u`` per box."""
        if not self.pre:
            return np.zeros(self.lower.shape[0], dtype=int)
        return sum(((l < 0) & (u > 0)).sum(axis=1) for l, u in self.pre)


def is_two_piece(net: Network) -> bool:
    """True if every activation is a convex two-piece map ``max(z, a z)``: ReLU, or leaky ReLU with slope
    ``a <= 1`` (negative slopes included; what :func:`incremental_crown`, alpha-CROWN on the specification and
    the exact pattern / MILP leaves support)."""
    return all(a.two_piece_slope is not None and a.two_piece_slope <= 1.0 for a in net.activations)


def incremental_crown(net: Network, lo: np.ndarray, hi: np.ndarray, prior: list | None = None) -> list:
    """Batched CROWN pre-activation bounds of every activation of a canonical ReLU / leaky-ReLU net.

    ``lo, hi``: ``(B, n0)`` boxes; ``prior``: optional per-layer ``(l, u)`` of shape ``(B, n_j)`` (or
    ``None`` entries) known to hold on the boxes, intersected with the new bounds (so a neuron stable on
    the parent box stays stable).  Per layer: interval bounds from the previous layer's bounds, the prior,
    then CROWN back-substitution (:func:`~verification.bounds.crown.backsubstitute`) of the neurons still
    unstable in some box.  Returns ``[(l_j, u_j)]`` per activation."""
    if not is_two_piece(net):
        raise UnsupportedLayerError("incremental_crown needs ReLU / leaky-ReLU (slope <= 1) activations")
    dense, acts = net.dense_layers, net.activations
    mid, rad = (hi + lo) / 2.0, (hi - lo) / 2.0
    B = lo.shape[0]
    pre: list = []
    relax: list = []
    for k in range(len(acts)):
        if k == 0:
            c0 = mid @ dense[0].weight.T + dense[0].bias
            r0 = rad @ np.abs(dense[0].weight).T
        else:  # interval bounds from the previous layer's bounds
            c0, r0 = _ibp_next(acts[k - 1], dense[k], *pre[k - 1])
        l, u = _intersect(c0 - r0, c0 + r0, None if prior is None else prior[k])
        if k > 0:
            unst = np.flatnonzero(((l < 0) & (u > 0)).any(axis=0))
            if unst.size:
                m = unst.size
                Wk, bk = dense[k].weight[unst], dense[k].bias[unst]
                lam, bias, _, _ = backsubstitute_from(net, k, np.concatenate([Wk, -Wk]), np.concatenate([bk, -bk]),
                                                      relax, B)
                val = np.einsum("nmd,nd->nm", lam, mid) - np.einsum("nmd,nd->nm", np.abs(lam), rad) + bias
                l = l.copy()
                u = u.copy()
                l[:, unst] = np.maximum(l[:, unst], val[:, :m])
                u[:, unst] = np.minimum(u[:, unst], -val[:, m:])
                u = np.maximum(u, l)
        pre.append((l, u))
        relax.append(_make_relax(acts[k], l, u))
    return pre


def _intersect(l: np.ndarray, u: np.ndarray, prior) -> tuple[np.ndarray, np.ndarray]:
    """``[l, u] ∩ prior`` for bounds known to hold (``prior`` = ``(l', u')`` or ``None``); keeps ``u >= l``."""
    if prior is None:
        return l, u
    l = np.maximum(l, prior[0])
    return l, np.maximum(np.minimum(u, prior[1]), l)


def _ibp(net: Network, lo: np.ndarray, hi: np.ndarray):
    pre = []
    l, u = lo, hi
    for layer in net.layers:
        if isinstance(layer, Dense):
            mid, rad = (u + l) / 2.0, (u - l) / 2.0
            c = mid @ layer.weight.T + layer.bias
            r = rad @ np.abs(layer.weight).T
            l, u = c - r, c + r
        else:
            pre.append((l, u))
            l, u = (np.asarray(v, dtype=np.float64) for v in layer.interval(l, u))
    return pre, (l, u)


def _supports_crown(net: Network) -> bool:
    try:
        check_supported(net)
    except UnsupportedLayerError:
        return False
    return True


def batched_layer_bounds(net: Network, lo: np.ndarray, hi: np.ndarray, method: str = "incremental",
                         prior: list | None = None):
    """Pre-activation bounds ``[(l, u)]`` (each ``(B, n_j)``) of a canonical net on the boxes ``[lo, hi]``
    and the pair-difference bounds of MaxMin layers (list, ``None`` for other layers, or ``None`` if not
    computed).  ``method``: ``"incremental"`` (ReLU / leaky-ReLU nets; others fall back to ``"crown"``),
    ``"crown"`` (nets without a linear relaxation fall back to ``"ibp"``) or ``"ibp"``."""
    if method not in INTERMEDIATE:
        raise InvalidParameterError(f"The bound method must be one of {INTERMEDIATE}. Got {method!r} instead.")
    if method == "incremental" and is_two_piece(net):
        return incremental_crown(net, lo, hi, prior), None
    if method != "ibp" and _supports_crown(net):
        lb = crown_layers(net, lo, hi, final=False, prior=prior)
        return lb.pre, lb.pair
    pre = _ibp(net, lo, hi)[0]
    if prior is not None:
        pre = [_intersect(l, u, p) for (l, u), p in zip(pre, prior)]
    return pre, None


def spec_bounds(net: Network, lo: np.ndarray, hi: np.ndarray, C: np.ndarray, cb: np.ndarray,
                method: str = "incremental", prior: list | None = None) -> SpecBounds:
    """Lower bounds of the rows of ``C f(x) + cb`` (``C``: ``(R, out)``) on each box ``[lo[b], hi[b]]`` of a
    canonical net, with intermediate bounds from :func:`batched_layer_bounds` (``method``, ``prior``) and
    one CROWN back-substitution of the rows.  Without a linear relaxation (e.g. Householder) the rows are
    bounded by interval arithmetic on the output (``coef`` is then 0)."""
    B = lo.shape[0]
    C = np.asarray(C, dtype=np.float64)
    pre, pair = batched_layer_bounds(net, lo, hi, method, prior)
    L = len(net.activations)
    if method != "ibp" and (is_two_piece(net) or _supports_crown(net)):
        relax = make_relaxations(net, pre, pair)
        lam, bias, _, _ = backsubstitute(net, L, C, relax, B)
        mid, rad = (hi + lo) / 2.0, (hi - lo) / 2.0
        lower = np.einsum("bmi,bi->bm", lam, mid) - np.einsum("bmi,bi->bm", np.abs(lam), rad) + bias + cb
        return SpecBounds(lower, lam * rad[:, None, :], pre, _scale(lam, bias, mid, rad, cb))
    # interval bounds of the output
    l, u = _ibp(net, lo, hi)[1]
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
    dense, acts = net.dense_layers, net.activations
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
    mom = [np.zeros_like(a) for a in alphas]
    vel = [np.zeros_like(a) for a in alphas]
    b1, b2 = 0.9, 0.999
    for it in range(1, iters + 1):
        sub_pre = [(l[act_idx], u[act_idx]) for l, u in pre]
        relax = [_make_relax(acts[j], sub_pre[j][0], sub_pre[j][1], alpha=alphas[j]) for j in range(L)]
        lam, bias, recs, coefs = backsubstitute(net, L, C, relax, act_idx.size)
        m, r = mid[act_idx], rad[act_idx]
        val = np.einsum("bmi,bi->bm", lam, m) - np.einsum("bmi,bi->bm", np.abs(lam), r) + bias + cb
        better = val > best[act_idx]
        best[act_idx] = np.where(better, val, best[act_idx])
        best_scale[act_idx] = np.where(better, _scale(lam, bias, m, r, cb), best_scale[act_idx])
        best_lam[act_idx] = np.where(better[..., None], lam, best_lam[act_idx])
        if it == iters:
            break
        keep = np.ones(act_idx.size, dtype=bool) if done is None else ~np.asarray(done(act_idx, best[act_idx]), dtype=bool)
        if not keep.any():
            break
        # gradient: linearised network evaluated at the minimising vertex of each row
        x = np.where(lam >= 0, (m - r)[:, None, :], (m + r)[:, None, :])
        z = x @ dense[0].weight.T + dense[0].bias
        for j in range(L):
            rj = relax[j]
            c = coefs[j]
            side = (c >= 0) if ranges[j][1] == 1.0 else (c < 0)
            g = np.where(side & rj.unstable, c * z, 0.0)
            mom[j] = b1 * mom[j] + (1 - b1) * g
            vel[j] = b2 * vel[j] + (1 - b2) * g * g
            step = lr * (mom[j] / (1 - b1 ** it)) / (np.sqrt(vel[j] / (1 - b2 ** it)) + 1e-12)
            alphas[j] = np.clip(alphas[j] + step, ranges[j][0], ranges[j][1])
            z = _apply_choice(rj, recs[j], z) @ dense[j + 1].weight.T + dense[j + 1].bias
        if not keep.all():
            act_idx = act_idx[keep]
            alphas = [a[keep] for a in alphas]
            mom = [a[keep] for a in mom]
            vel = [a[keep] for a in vel]
    return SpecBounds(best, best_lam * rad[:, None, :], pre, best_scale)
