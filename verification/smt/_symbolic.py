"""Batched symbolic bounds for input-splitting branch and bound on low-dimensional inputs.

Input splitting evaluates bounds on thousands of small boxes, so this engine works on a *batch* of boxes
at once (arrays ``(N, ...)``), which the single-box public entry points of :mod:`verification.bounds`
do not do.  It has two passes:

1. **Forward symbolic intervals** (ReluVal / Neurify style): every neuron carries a lower and an upper
   linear function of the normalised input ``e in [-1, 1]^d`` (``x = c + r * e``); ReLU, leaky ReLU
   (slope in [0, 1]) and MaxMin are relaxed linearly, any other activation is bounded by its
   ``interval`` method.  This gives concrete pre-activation bounds ``[l, u]`` for every neuron.
2. **One backward pass for the specification rows** (only for ReLU / leaky-ReLU networks, whose
   intermediate bounds are then taken from the batched CROWN of :mod:`verification.bounds.crown`): the rows
   ``A_k y - b_k`` are back-substituted through the network with the standard triangle / adaptive
   relaxations built from the forward ``[l, u]``.  The best of the two lower bounds is kept.

All arithmetic is float64 without directed rounding (as in most verifiers); the verifier therefore only
claims ``holds`` from a lower bound above a small positive tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verification.activations import GroupSort, LeakyReLU, ReLU
from verification.bounds._relax import two_piece_relaxation
from verification.errors import UnsupportedLayerError
from verification.network import Dense, Network

__all__ = ["SpecBounds", "spec_bounds", "supports_backward"]


@dataclass
class SpecBounds:
    lower: np.ndarray  # (N, R) lower bound of each spec row on each box
    coef: np.ndarray  # (N, R, d) coefficients of a linear lower bound in normalised input e
    pre: list  # per activation: (l, u) each (N, n)

    def unstable_counts(self) -> np.ndarray:
        if not self.pre:
            return np.zeros(self.lower.shape[0], dtype=int)
        return sum(((l < 0) & (u > 0)).sum(axis=1) for l, u in self.pre)


def supports_backward(net: Network) -> bool:
    return all(isinstance(a, ReLU) or (isinstance(a, LeakyReLU) and 0.0 <= a.negative_slope <= 1.0) for a in net.activations)


def _relu_forward(Gl, hl, Gu, hu):
    """Equations ``G`` have shape (N, d, n) (neuron axis last), constants ``h`` (N, n)."""
    sl = np.abs(Gl).sum(1)
    su = np.abs(Gu).sum(1)
    l, ul = hl - sl, hl + sl
    lu, u = hu - su, hu + su
    inactive = u <= 0
    active = l >= 0
    unstable = ~(inactive | active)
    # upper function: chord of relu over [lu, u] applied to the upper equation
    chord = unstable & (lu < 0)
    s = np.where(chord, u / np.where(chord, u - lu, 1.0), 1.0)
    Gu2 = Gu * s[:, None, :]
    hu2 = np.where(chord, s * (hu - lu), hu)
    # lower function: lam * lower equation, lam in {0, 1} (relu(z) >= relu(z_low) >= lam z_low)
    lam = np.where(unstable, (ul > -l).astype(np.float64), 1.0)
    keep = ~inactive
    Gl2 = Gl * (lam * keep)[:, None, :]
    Gu2 = Gu2 * keep[:, None, :]
    hl2 = hl * lam
    zero = inactive
    hl2 = np.where(zero, 0.0, hl2)
    hu2 = np.where(zero, 0.0, hu2)
    return Gl2, hl2, Gu2, hu2, l, u


def _forward(net: Network, c: np.ndarray, r: np.ndarray):
    """Symbolic forward pass through all but the last dense layer.  Returns eqs of the last hidden layer
    and the concrete pre-activation bounds per activation."""
    N, d = c.shape
    G = np.zeros((N, d, d))
    idx = np.arange(d)
    G[:, idx, idx] = r
    Gl, hl, Gu, hu = G, c.copy(), G.copy(), c.copy()  # layout (N, d, n)
    pre = []
    layers = net.layers
    for layer in layers[:-1]:
        if isinstance(layer, Dense):
            Wp = np.maximum(layer.weight, 0.0)
            Wn = np.minimum(layer.weight, 0.0)
            Gl, Gu = Gl @ Wp.T + Gu @ Wn.T, Gu @ Wp.T + Gl @ Wn.T
            hl, hu = hl @ Wp.T + hu @ Wn.T + layer.bias, hu @ Wp.T + hl @ Wn.T + layer.bias
            continue
        if isinstance(layer, ReLU):
            Gl, hl, Gu, hu, l, u = _relu_forward(Gl, hl, Gu, hu)
            pre.append((l, u))
        elif isinstance(layer, LeakyReLU) and 0.0 <= layer.negative_slope <= 1.0:
            a = layer.negative_slope
            rl, rhl, ru, rhu, l, u = _relu_forward(Gl, hl, Gu, hu)
            Gl, hl, Gu, hu = a * Gl + (1 - a) * rl, a * hl + (1 - a) * rhl, a * Gu + (1 - a) * ru, a * hu + (1 - a) * rhu
            pre.append((l, u))
        elif isinstance(layer, GroupSort) and layer.group_size == 2:
            l = hl - np.abs(Gl).sum(1)
            u = hu + np.abs(Gu).sum(1)
            pre.append((l, u))
            pl, ql = Gl[:, :, 0::2], Gl[:, :, 1::2]
            pu, qu = Gu[:, :, 0::2], Gu[:, :, 1::2]
            hpl, hql, hpu, hqu = hl[:, 0::2], hl[:, 1::2], hu[:, 0::2], hu[:, 1::2]
            # d = p - q ; max = q + relu(d) ; min = p - relu(d)
            dGl, dhl, dGu, dhu = pl - qu, hpl - hqu, pu - ql, hpu - hql
            rGl, rhl, rGu, rhu, _, _ = _relu_forward(dGl, dhl, dGu, dhu)
            nGl = np.empty_like(Gl)
            nGu = np.empty_like(Gu)
            nhl = np.empty_like(hl)
            nhu = np.empty_like(hu)
            nGl[:, :, 0::2], nhl[:, 0::2] = ql + rGl, hql + rhl
            nGu[:, :, 0::2], nhu[:, 0::2] = qu + rGu, hqu + rhu
            nGl[:, :, 1::2], nhl[:, 1::2] = pl - rGu, hpl - rhu
            nGu[:, :, 1::2], nhu[:, 1::2] = pu - rGl, hpu - rhl
            Gl, hl, Gu, hu = nGl, nhl, nGu, nhu
        else:  # generic: concretise and use the activation's interval map
            l = hl - np.abs(Gl).sum(1)
            u = hu + np.abs(Gu).sum(1)
            pre.append((l, u))
            lo, hi = layer.interval(l, u)
            Gl = np.zeros_like(Gl)
            Gu = np.zeros_like(Gu)
            hl, hu = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    return Gl, hl, Gu, hu, pre


def _backward(net: Network, C: np.ndarray, cb: np.ndarray, pre, c: np.ndarray, r: np.ndarray):
    """Lower bound of ``C f(x) + cb`` (rows of C) by back-substitution with fixed relaxations."""
    N = c.shape[0]
    dense = net.dense_layers
    acts = net.activations
    last = dense[-1]
    Lam = np.broadcast_to(C @ last.weight, (N,) + (C.shape[0], last.weight.shape[1])).copy()
    const = np.broadcast_to(C @ last.bias + cb, (N, C.shape[0])).copy()
    for j in range(len(acts) - 1, -1, -1):
        l, u = pre[j]
        sl, su, tu = _two_piece(l, u, _neg_slope(acts[j]))
        Lp = np.maximum(Lam, 0.0)
        Ln = np.minimum(Lam, 0.0)
        const = const + np.einsum("nrk,nk->nr", Ln, tu)
        Lam = Lp * sl[:, None, :] + Ln * su[:, None, :]
        W, b = dense[j].weight, dense[j].bias
        const = const + Lam @ b
        Lam = Lam @ W
    # Lam (N, R, d) in x; x = c + r e
    lower = const + np.einsum("nrd,nd->nr", Lam, c) - np.einsum("nrd,nd->nr", np.abs(Lam), r)
    return lower, Lam * r[:, None, :]


def spec_bounds(net: Network, lo: np.ndarray, hi: np.ndarray, C: np.ndarray, cb: np.ndarray,
                backward: bool = True, intermediate: str = "forward", prior: list | None = None) -> SpecBounds:
    """Lower bounds of the rows of ``C f(x) + cb`` on each box ``[lo[i], hi[i]]`` (net canonical).

    ``intermediate``: ``"incremental"`` (:func:`crown_incremental`, with optional ``prior`` bounds of
    enclosing boxes), ``"crown"`` (:func:`verification.bounds.crown.crown_layers`) or ``"forward"``
    (symbolic intervals)."""
    c = (hi + lo) / 2.0
    r = (hi - lo) / 2.0
    if intermediate == "incremental" and backward and net.activations and supports_backward(net):
        pre = crown_incremental(net, lo, hi, prior)
        lower, coef = _backward(net, C, cb, pre, c, r)
        return SpecBounds(lower, coef, pre)
    if intermediate == "crown" and backward and net.activations and supports_backward(net):
        # intermediate bounds: batched CROWN of verification.bounds (tighter than forward symbolic
        # intervals), then one backward pass for the specification rows
        try:
            from verification.bounds.crown import crown_layers

            pre = crown_layers(net, lo, hi, final=False).pre
        except Exception:  # engine unavailable or unsupported: use the forward intervals below
            pre = None
        if pre is not None:
            lower, coef = _backward(net, C, cb, pre, c, r)
            return SpecBounds(lower, coef, pre)
    Gl, hl, Gu, hu, pre = _forward(net, c, r)
    last = net.layers[-1]
    Wc = C @ last.weight
    bc = C @ last.bias + cb
    Wp, Wn = np.maximum(Wc, 0.0), np.minimum(Wc, 0.0)
    G = np.swapaxes(Gl @ Wp.T + Gu @ Wn.T, 1, 2)  # (N, R, d)
    h = hl @ Wp.T + hu @ Wn.T + bc
    lower = h - np.abs(G).sum(-1)
    coef = G
    if backward and pre and supports_backward(net):  # backward pass with the forward intermediate bounds
        lb2, coef2 = _backward(net, C, cb, pre, c, r)
        better = lb2 > lower
        lower = np.where(better, lb2, lower)
        coef = np.where(better[..., None], coef2, coef)
    return SpecBounds(lower, coef, pre)


# ------------------------------------------------------------------------------ incremental batched CROWN
def _two_piece(l: np.ndarray, u: np.ndarray, a: float):
    """CROWN relaxation of ``max(z, a z)`` (0 <= a <= 1) on ``[l, u]`` (arrays (N, n)), from
    :func:`verification.bounds._relax.two_piece_relaxation`: lower line ``sl * z`` (adaptive slope),
    upper line ``su * z + tu`` (the chord); stable neurons are exact."""
    if a > 1.0:
        raise UnsupportedLayerError(f"the verifier's bounds need a leaky-ReLU slope <= 1, got {a:g}")
    sl, _, su, tu = two_piece_relaxation(l, u, a)  # lower offset is 0 for a <= 1
    return sl, su, tu


def _neg_slope(act) -> float:
    return float(act.negative_slope) if isinstance(act, LeakyReLU) else 0.0


def crown_incremental(net: Network, lo: np.ndarray, hi: np.ndarray, prior: list | None = None) -> list:
    """Batched CROWN pre-activation bounds of every activation of a ReLU / leaky-ReLU net (canonical).

    Same bounds as CROWN with the adaptive lower slope (Zhang et al. 2018, Thm 3.2) intersected with
    interval bounds, but cheaper on the many small boxes of input splitting:

    * ``prior`` (per layer ``(l, u)`` of shape (N, n), e.g. the bounds of the parent box, which stay sound
      on a sub-box) is intersected with the new bounds, so a neuron stable on the parent stays stable;
    * interval bounds from the previous layer are computed first (one matrix product) and only neurons
      still unstable in *some* box of the batch get a CROWN back-substitution (rows ``+-e_i``), which on
      small boxes is a small fraction of the ``2 n`` rows of full CROWN.

    Returns ``[(l_j, u_j)]`` per activation.
    """
    dense, acts = net.dense_layers, net.activations
    mid, rad = (hi + lo) / 2.0, (hi - lo) / 2.0
    N = lo.shape[0]
    W0, b0 = dense[0].weight, dense[0].bias
    c0 = mid @ W0.T + b0
    r0 = rad @ np.abs(W0).T
    l, u = c0 - r0, c0 + r0
    pre = []
    relax = []
    for k in range(len(acts)):
        if k > 0:
            # interval bounds from the previous layer's bounds
            a = _neg_slope(acts[k - 1])
            pl, pu = pre[k - 1]
            al, au = np.maximum(pl, a * pl), np.maximum(pu, a * pu)
            am, ar = (au + al) / 2.0, (au - al) / 2.0
            Wk, bk = dense[k].weight, dense[k].bias
            cm = am @ Wk.T + bk
            cr = ar @ np.abs(Wk).T
            l, u = cm - cr, cm + cr
        if prior is not None and prior[k] is not None:
            l = np.maximum(l, prior[k][0])
            u = np.minimum(u, prior[k][1])
            u = np.maximum(u, l)
        if k > 0:
            unst_any = np.flatnonzero(((l < 0) & (u > 0)).any(axis=0))
            if unst_any.size:
                m = unst_any.size
                Wk, bk = dense[k].weight[unst_any], dense[k].bias[unst_any]
                lam = np.broadcast_to(np.concatenate([Wk, -Wk])[None], (N, 2 * m, Wk.shape[1]))
                bias = np.broadcast_to(np.concatenate([bk, -bk])[None], (N, 2 * m)).copy()
                for j in range(k - 1, -1, -1):
                    sl, su, tu = relax[j]
                    pos = lam >= 0
                    bias += np.where(pos, 0.0, lam * tu[:, None, :]).sum(-1)
                    lam = lam * np.where(pos, sl[:, None, :], su[:, None, :])
                    bias += lam @ dense[j].bias
                    lam = lam @ dense[j].weight
                val = np.einsum("nmd,nd->nm", lam, mid) - np.einsum("nmd,nd->nm", np.abs(lam), rad) + bias
                l = l.copy()
                u = u.copy()
                l[:, unst_any] = np.maximum(l[:, unst_any], val[:, :m])
                u[:, unst_any] = np.minimum(u[:, unst_any], -val[:, m:])
                u = np.maximum(u, l)
        pre.append((l, u))
        relax.append(_two_piece(l, u, _neg_slope(acts[k])))
    return pre
