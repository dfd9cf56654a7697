"""CROWN and alpha-CROWN on the canonical network, batched over input boxes ("domains").

Notation (canonical net): dense layers ``D_0..D_L``, activations ``A_0..A_{L-1}``;
``z_k = D_k(a_{k-1})`` with ``a_{-1} = x``, ``a_k = A_k(z_k)``, output ``z_L``.

CROWN (Zhang et al., NeurIPS 2018, Thm 3.2): a lower bound of ``c·z_k`` on a box is obtained by passing the
coefficient row backwards; at each activation every neuron is replaced by its lower linear bound if its
coefficient is >= 0 and by its upper linear bound otherwise; at the input the linear function is minimised
over the box in closed form.  Upper bounds are ``-lower(-c)``.  Intermediate (pre-activation) bounds are
computed layer by layer the same way and intersected with interval (IBP) bounds, so that every bound here
is at least as tight as IBP.

alpha-CROWN (Xu et al., ICLR 2021, Sec. 3.1): the lower-line slopes of unstable ReLU / leaky-ReLU / MaxMin
neurons are free in their admissible range, one slope vector per bounded quantity (row); they are tuned
by projected Adam ascent on the bound.  The gradient is exact almost everywhere (Danskin): with the
relaxation choices and the minimising input vertex fixed, ``d bound / d alpha_{j,i} = Lambda_{j,i} * z_hat_{j,i}``
where ``Lambda`` is the backward coefficient and ``z_hat`` the pre-activation of the *linearised* network
evaluated at that vertex.  Every iterate is a sound bound; the best per row is kept.

MaxMin (GroupSort(2)) is handled natively: ``(max, min)(p, q) = (q + r, p - r)`` with ``r = relu(p - q)``,
and the ReLU relaxation of ``r`` uses CROWN bounds of the pair differences ``p - q``.
"""

from __future__ import annotations

import numpy as np

from verification.activations import two_piece_relaxation
from verification.bounds.alpha import ascend
from verification.bounds.types import Bounds, LayerBounds, check_deadline
from verification.errors import UnsupportedLayerError
from verification.network import Network

__all__ = ["LayerBounds", "crown_layers", "crown_spec_lower", "backsubstitute", "backsubstitute_from",
           "make_relaxations", "check_supported", "alpha_gradient", "box_lower"]


def check_supported(net: Network) -> None:
    """Raise :class:`UnsupportedLayerError` if an activation of ``net`` has no linear relaxation."""
    for act in net.activations:
        width = 2 * int(act.group_size)
        try:
            act.linear_relaxation(-np.ones((1, width)), np.ones((1, width)))
        except NotImplementedError:
            raise UnsupportedLayerError(
                f"bound propagation does not support the activation {act.describe()} "
                "(supported: relu, leaky_relu, tanh, sigmoid, maxmin/groupsort)"
            ) from None


class _Relax:
    """Relaxation of one activation layer, arrays broadcastable to ``(B, m, n)``."""

    def __init__(self, kind, ls, lb, us, ub, unstable=None, alpha_side=None):
        self.kind, self.ls, self.lb, self.us, self.ub = kind, ls, lb, us, ub
        self.unstable, self.alpha_side = unstable, alpha_side


def _make_relax(act, l, u, pl=None, pu=None, alpha=None) -> _Relax:
    """``l, u``: (B, n) pre-activation bounds; ``alpha``: (B, m, n) (or (B, m, n/2) for MaxMin) or None."""
    if act.pair_form:
        L, U = pl[:, None, :], pu[:, None, :]
        ls, lb, us, ub = two_piece_relaxation(L, U, 0.0, alpha)
        return _Relax("pair", ls, lb, us, ub, unstable=(L < 0) & (U > 0), alpha_side="lower")
    if not act.elementwise:
        ml, bl, mu, bu = act.linear_relaxation(l, u)
        return _Relax("mat", ml, bl, mu, bu)
    a = act.two_piece_slope
    L, U = l[:, None, :], u[:, None, :]
    if a is not None:
        ls, lb, us, ub = two_piece_relaxation(L, U, a, alpha)
        side = "lower" if a <= 1.0 else "upper"
        return _Relax("elem", ls, lb, us, ub, unstable=(L < 0) & (U > 0), alpha_side=side)
    ls, lb, us, ub = act.linear_relaxation(L, U)
    return _Relax("elem", ls, lb, us, ub)


def _step(r: _Relax, lam: np.ndarray, record: bool = True):
    """Lower-bound backward step through one activation: coefficient on a_j -> on z_j, bias, choice record
    (``None`` without ``record``)."""
    if r.kind == "elem" and not record and r.ls.ndim == 3 and r.ls.shape[1] == 1 and lam.ndim in (2, 3):
        return _elem_step_shared(r, lam if lam.ndim == 3 else np.broadcast_to(lam, r.ls.shape[:1] + lam.shape))
    if r.kind == "elem":
        pos = lam >= 0
        s = np.where(pos, r.ls, r.us)
        t = np.where(pos, r.lb, r.ub)
        return lam * s, (lam * t).sum(-1), (pos, s, t)
    if r.kind == "pair":
        lmax, lmin = lam[..., 0::2], lam[..., 1::2]
        gam = lmax - lmin
        pos = gam >= 0
        s = np.where(pos, r.ls, r.us)
        t = np.where(pos, r.lb, r.ub)
        out = np.empty_like(lam)
        out[..., 0::2] = lmin + gam * s
        out[..., 1::2] = lmax - gam * s
        return out, (gam * t).sum(-1), (gam, s, t)
    lp, ln = np.maximum(lam, 0), np.minimum(lam, 0)
    new = lp @ r.ls + ln @ r.us
    bias = (lp * r.lb[:, None, :]).sum(-1) + (ln * r.ub[:, None, :]).sum(-1)
    return new, bias, (lam >= 0,)


def _elem_step_shared(r: _Relax, lam: np.ndarray):
    """:func:`_step` of an elementwise relaxation shared by all rows (``(B, 1, n)`` slopes and intercepts) without
    the choice record: only the columns whose two lines differ (unstable neurons, in some box) need the sign of
    ``lam``; the others are one multiplication (same value as :func:`_step`, the bias summed in another order)."""
    ls, us, lb, ub = r.ls, r.us, r.lb, r.ub
    cols = np.flatnonzero(np.any((ls != us) | (lb != ub), axis=(0, 1)))
    new = lam * ls
    bias = np.einsum("bmn,bn->bm", lam, lb[:, 0, :]) if np.any(lb) else np.zeros(lam.shape[:2])
    if cols.size:
        lc = lam[..., cols]
        pos = lc >= 0
        new[..., cols] = lc * np.where(pos, ls[..., cols], us[..., cols])
        bias = bias + (lc * np.where(pos, 0.0, ub[..., cols] - lb[..., cols])).sum(-1)
    return new, bias, None


def _apply_choice(r: _Relax, rec, z: np.ndarray) -> np.ndarray:
    """Evaluate the chosen linear pieces at the linearised pre-activation ``z`` (B, m, n)."""
    if r.kind == "elem":
        _, s, t = rec
        return s * z + t
    if r.kind == "pair":
        _, s, t = rec
        p, q = z[..., 0::2], z[..., 1::2]
        rr = s * (p - q) + t
        out = np.empty_like(z)
        out[..., 0::2] = q + rr
        out[..., 1::2] = p - rr
        return out
    (pos,) = rec
    lo = np.einsum("bij,bmj->bmi", r.ls, z) + r.lb[:, None, :]
    hi = np.einsum("bij,bmj->bmi", r.us, z) + r.ub[:, None, :]
    return np.where(pos, lo, hi)


def backsubstitute(net: Network, k: int, C: np.ndarray, relax: list, batch: int | None = None,
                   record: bool = True):
    """Back-substitute the rows ``C`` (``(B, m, n_k)``, or ``(m, n_k)`` shared by all boxes; coefficients on
    ``z_k``) to the input with the lower relaxations ``relax[j]`` of the activations ``j < k``.  Returns
    ``(lam, bias, recs, coefs)``: the linear lower bound ``C z_k >= lam x + bias`` valid for every ``x`` whose
    pre-activations lie in the bounds the relaxations were built from (``lam``: ``(B, m, n0)``; ``batch``
    gives ``B`` for shared rows), the relaxation choices and the coefficients on each activation output (for
    the alpha gradient; ``None`` entries without ``record``)."""
    layer = net.affine_layers[k]
    return backsubstitute_from(net, k, layer.transpose(C), C @ layer.bias, relax, batch, record)


def backsubstitute_from(net: Network, k: int, lam: np.ndarray, bias: np.ndarray, relax: list,
                        batch: int | None = None, record: bool = True, deadline: float | None = None):
    """:func:`backsubstitute` starting from the coefficients ``lam`` on the activation outputs ``a_{k-1}``
    (``C W_k``) and the constant ``bias`` (``C b_k``); with ``deadline`` it raises
    :class:`~verification.bounds.types.DeadlineReached` between layers once the deadline has passed."""
    layers = net.affine_layers
    if lam.ndim == 2 and k > 0 and relax[k - 1].kind != "elem":  # only elementwise steps broadcast rows
        lam = np.broadcast_to(lam, (1 if batch is None else batch,) + lam.shape)
    recs = [None] * k
    coefs = [None] * k
    for j in range(k - 1, -1, -1):
        check_deadline(deadline)
        coefs[j] = lam
        lam, add, recs[j] = _step(relax[j], lam, record)
        bias = bias + add
        bias = bias + lam @ layers[j].bias
        lam = layers[j].transpose(lam)
    if lam.ndim == 2:  # shared rows and no activation: same bound for every box
        B = 1 if batch is None else batch
        lam = np.broadcast_to(lam, (B,) + lam.shape)
        bias = np.broadcast_to(bias, (B,) + bias.shape)
    return lam, bias, recs, coefs


def box_lower(lam: np.ndarray, bias: np.ndarray, mid: np.ndarray, rad: np.ndarray) -> np.ndarray:
    """Minimum of the linear functions ``lam[b, m] · x + bias[b, m]`` over the boxes ``mid[b] ± rad[b]``."""
    return np.einsum("bmi,bi->bm", lam, mid) - np.einsum("bmi,bi->bm", np.abs(lam), rad) + bias


def crown_spec_lower(net: Network, k: int, C: np.ndarray, relax: list, lo: np.ndarray, hi: np.ndarray,
                     want_grad: bool = False):
    """Lower bounds of ``C z_k`` (C: (B, m, n_k)) for x in the boxes ``[lo, hi]`` ((B, n0)).

    Returns ``(lower (B, m), grads)`` where ``grads[j]`` is the alpha gradient of layer ``j`` (or None)."""
    lam, bias, recs, coefs = backsubstitute(net, k, C, relax, record=want_grad)
    val = box_lower(lam, bias, (hi + lo) / 2, (hi - lo) / 2)
    if not want_grad:
        return val, None
    return val, alpha_gradient(net, relax, recs, coefs, lam, lo, hi)


def alpha_gradient(net: Network, relax: list, recs: list, coefs: list, lam: np.ndarray, lo: np.ndarray,
                   hi: np.ndarray) -> list:
    """Gradient of the bound ``min_x lam x + bias`` of a back-substitution (``relax``, choices ``recs``,
    coefficients ``coefs`` on the activation outputs, from :func:`backsubstitute`) in the free slopes of
    each layer (``None`` for layers without one): ``Lambda_{j,i} * z_hat_{j,i}`` with ``z_hat`` the
    pre-activation of the linearised network at the minimising vertex of ``[lo, hi]`` (``(B, n0)``)."""
    layers = net.affine_layers
    k = len(recs)
    x = np.where(lam >= 0, lo[:, None, :], hi[:, None, :])
    grads = [None] * k
    z = layers[0](x)
    for j in range(k):
        r = relax[j]
        if r.alpha_side is not None:
            if r.kind == "pair":
                gam = recs[j][0]
                dz = z[..., 0::2] - z[..., 1::2]
                grads[j] = np.where((gam >= 0) & r.unstable, gam * dz, 0.0)
            else:
                c = coefs[j]
                side = c >= 0 if r.alpha_side == "lower" else c < 0
                grads[j] = np.where(side & r.unstable, c * z, 0.0)
        if j + 1 < k:
            z = layers[j + 1](_apply_choice(r, recs[j], z))
    return grads


def _ibp_next(act, layer, l, u):
    """Interval bounds (centre, radius) of the next pre-activation from pre-activation bounds ``l, u``."""
    al, au = act.interval(l, u)
    mid, rad = (au + al) / 2, (au - al) / 2
    return layer(mid), layer.abs_linear(rad)


def _pair_rows(n: int) -> np.ndarray:
    """The ``(n/2, n)`` rows ``e_{2i} - e_{2i+1}`` (pair differences ``p - q`` of a MaxMin layer)."""
    d = np.zeros((n // 2, n))
    d[np.arange(n // 2), 2 * np.arange(n // 2)] = 1.0
    d[np.arange(n // 2), 2 * np.arange(n // 2) + 1] = -1.0
    return d


def _spec(n: int, maxmin: bool, B: int) -> np.ndarray:
    rows = [np.eye(n), -np.eye(n)]
    if maxmin:
        d = _pair_rows(n)
        rows += [d, -d]
    c = np.concatenate(rows)
    return np.ascontiguousarray(np.broadcast_to(c, (B,) + c.shape))


def crown_layers(net: Network, lo: np.ndarray, hi: np.ndarray, alpha: bool = False, splits=None,
                 iters: int = 20, lr: float = 0.1, final: bool = True, prior=None) -> LayerBounds:
    """CROWN (or alpha-CROWN) bounds of every pre-activation (and the output if ``final``).

    ``lo, hi``: (B, n0) input boxes.  ``splits``: optional list (per activation layer) of int arrays
    (B, n_j) with +1 (``z >= 0`` imposed), -1 (``z <= 0``) or 0; imposed constraints clamp the bounds.
    ``prior``: optional list of known sound bounds (:class:`Bounds` or ``(l, u)``, or ``None``) per layer
    (e.g. of a parent domain) to intersect with.  ``infeasible[b]`` is set when the constraints of domain
    ``b`` contradict the bounds.
    """
    layers, acts = net.affine_layers, net.activations
    L = len(acts)
    B = lo.shape[0]
    pre, pair = [], []
    infeasible = np.zeros(B, dtype=bool)
    last = L + 1 if final else L
    for k in range(last):
        n = layers[k].out_features
        mm = k < L and acts[k].pair_form
        if k == 0:
            mid, rad = (hi + lo) / 2, (hi - lo) / 2
            c0, r0 = layers[0](mid), layers[0].abs_linear(rad)
            vals = np.concatenate([c0 - r0, -(c0 + r0)], axis=1)
            if mm:
                cd = c0[:, 0::2] - c0[:, 1::2]
                # radius of the pair differences: |rows of W p - W q| (the product with +-1 rows is exact)
                rd = layers[0].select(_pair_rows(n)).abs_linear(rad)
                vals = np.concatenate([vals, cd - rd, -(cd + rd)], axis=1)
        else:
            il, ir = _ibp_next(acts[k - 1], layers[k], *pre[k - 1])
            if k < L and not mm and acts[k].two_piece_slope is not None:
                # a two-piece activation's relaxation depends only on the sign pattern where the interval
                # bounds (from the previous layer's bounds) are one-signed: back-substitute the other rows only
                idx = np.nonzero(np.any((il - ir < 0) & (il + ir > 0), axis=0))[0]
                vals = np.concatenate([il - ir, -(il + ir)], axis=1)
                if idx.size:
                    sub = _chunked_rows(net, k, n, mm, B, pre, pair, lo, hi, alpha, iters, lr, idx)
                    vals[:, idx] = np.maximum(vals[:, idx], sub[:, :idx.size])
                    vals[:, n + idx] = np.maximum(vals[:, n + idx], sub[:, idx.size:])
            else:
                vals = _chunked_rows(net, k, n, mm, B, pre, pair, lo, hi, alpha, iters, lr)
                # intersect with interval bounds
                vals[:, :n] = np.maximum(vals[:, :n], il - ir)
                vals[:, n:2 * n] = np.maximum(vals[:, n:2 * n], -(il + ir))
        l, u = vals[:, :n], -vals[:, n:2 * n]
        u = np.maximum(u, l)
        if k < L:
            if prior is not None and prior[k] is not None:
                pl, pu = prior[k]
                l = np.maximum(l, pl)
                u = np.minimum(u, pu)
                infeasible |= np.any(l > u + 1e-9 * (1 + np.abs(u)), axis=1)
                u = np.maximum(u, l)
            if splits is not None and splits[k] is not None:
                s = splits[k]
                infeasible |= np.any(((s < 0) & (l > 0)) | ((s > 0) & (u < 0)), axis=1)
                u = np.where(s < 0, np.minimum(u, 0.0), u)
                l = np.where(s > 0, np.maximum(l, 0.0), l)
                u = np.maximum(u, l)
            pre.append(Bounds(l, u))
            if mm:
                h = n // 2
                pl, pu = vals[:, 2 * n:2 * n + h], -vals[:, 2 * n + h:]
                # also implied by the box of (p, q)
                pl = np.maximum(pl, l[:, 0::2] - u[:, 1::2])
                pu = np.minimum(pu, u[:, 0::2] - l[:, 1::2])
                pair.append(Bounds(pl, np.maximum(pu, pl)))
            else:
                pair.append(None)
        else:
            return LayerBounds(tuple(pre), tuple(pair), Bounds(l, u), infeasible)
    return LayerBounds(tuple(pre), tuple(pair), None, infeasible)


#: Largest number of entries of one block of back-substituted rows (rows x widest layer x boxes): the rows
#: ``+-e_i`` of a wide (e.g. convolutional) layer are bounded in blocks so memory stays bounded; rows are
#: independent (alpha-CROWN optimises per row), so the result does not depend on the blocking.
ROW_BLOCK_ENTRIES = 1 << 24


def _chunked_rows(net, k, n, mm, B, pre, pair, lo, hi, alpha, iters, lr, idx=None):
    """:func:`_optimise` of the rows of :func:`_spec` for layer ``k``, in blocks of rows; with ``idx`` (not
    for MaxMin layers) only the rows ``e_i`` then ``-e_i`` of the neurons ``i`` in ``idx``."""
    width = max(layer.in_features for layer in net.affine_layers[:k + 1])
    sel = np.arange(n) if idx is None else np.asarray(idx)
    m = sel.size
    total = 2 * m + (n if mm else 0)
    step = max(1, ROW_BLOCK_ENTRIES // (B * max(width, n)))
    if mm or (idx is None and step >= total):
        return _optimise(net, k, _spec(n, mm, B), pre, pair, lo, hi, alpha, iters, lr)
    out = []
    for start in range(0, total, step):
        rows = np.arange(start, min(total, start + step))
        c = np.zeros((rows.size, n))
        c[np.arange(rows.size), sel[rows % m]] = np.where(rows < m, 1.0, -1.0)
        out.append(_optimise(net, k, np.ascontiguousarray(np.broadcast_to(c, (B,) + c.shape)), pre, pair, lo, hi,
                             alpha, iters, lr))
    return np.concatenate(out, axis=1)


def make_relaxations(net: Network, pre: list, pair: list | None = None, upto: int | None = None) -> list:
    """CROWN relaxations (adaptive lower slope) of the activations ``j < upto`` from their pre-activation
    bounds ``pre[j]`` (``(B, n_j)`` each) and, for MaxMin layers, the pair-difference bounds ``pair[j]``."""
    acts = net.activations
    upto = len(acts) if upto is None else upto
    out = []
    for j in range(upto):
        pl, pu = pair[j] if pair is not None and pair[j] is not None else (None, None)
        l, u = pre[j]
        out.append(_make_relax(acts[j], l, u, pl, pu, None))
    return out


def _optimise(net, k, C, pre, pair, lo, hi, alpha, iters, lr):
    """Lower bounds of the rows ``C`` of ``z_k``: CROWN, then (``alpha``) the best alpha-CROWN iterate."""
    acts = net.activations
    m = C.shape[1]

    def relax_with(alphas):
        out = []
        for j in range(k):
            pl, pu = pair[j] if pair[j] is not None else (None, None)
            l, u = pre[j]
            out.append(_make_relax(acts[j], l, u, pl, pu, None if alphas is None else alphas[j]))
        return out

    base = relax_with(None)
    val, _ = crown_spec_lower(net, k, C, base, lo, hi)
    opt = [r.alpha_side is not None and bool(np.any(r.unstable)) for r in base]
    if not alpha or not any(opt):
        return val
    # initial alphas: the adaptive CROWN choice, one copy per row
    alphas = []
    ranges = []
    for j, r in enumerate(base):
        if not opt[j]:
            alphas.append(None)
            ranges.append(None)
            continue
        init = r.ls if r.alpha_side == "lower" else r.us
        a = acts[j].two_piece_slope
        a = 0.0 if a is None else a
        ranges.append((min(a, 1.0), max(a, 1.0)))
        alphas.append(np.ascontiguousarray(np.broadcast_to(init, init.shape[:1] + (m,) + init.shape[2:])).copy())
    best = val.copy()
    mid, rad = (hi + lo) / 2, (hi - lo) / 2
    last: dict = {}

    def evaluate(alphas):
        nonlocal best
        relax = relax_with(alphas)
        lam, bias, recs, coefs = backsubstitute(net, k, C, relax)
        best = np.maximum(best, box_lower(lam, bias, mid, rad))
        last.update(relax=relax, recs=recs, coefs=coefs, lam=lam)

    def gradient():
        return alpha_gradient(net, last["relax"], last["recs"], last["coefs"], last["lam"], lo, hi)

    ascend(alphas, ranges, evaluate, gradient, iters=iters, lr=lr)
    return best
