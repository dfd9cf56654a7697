"""Proofs of ``holds`` answers (docs/proofs.md): the input-split tree the search built, completed so that the
independent checker (:mod:`verification.proofcheck`) can confirm every node.

During the search :class:`ProofLog` records each bisection (dimension and split point, so the children's
boxes are reproduced bit for bit), the LP dual weights of exact leaves and which leaves a solver (Z3, MILP,
pattern LPs) decided.  :func:`build_proof` then walks the tree with the checker's own rigorous bounds: a
disjunct the checker refutes at a node gets a ``crown`` (or ``lp``) certificate there and the subtree below
is dropped for it; one it does not refute follows the verifier's children.  On the leaves left open (where
the verifier used alpha-CROWN, or its batches tightened more neurons) the verifier's alpha-CROWN optimiser
runs again on the checker's bounds of the leaf (then on its ``full`` bounds) and the slopes that make the
checker's bound positive become an ``alpha`` certificate; what is still open gets LP weights or is bisected
further (at most ``refine_depth`` levels), else written as ``trusted`` with the solver that decided it, and
the checker reports such a proof as not fully checked.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from verification.bounds.alpha import ascend
from verification.bounds.batched import spec_bounds
from verification.bounds.crown import _make_relax, alpha_gradient, backsubstitute, box_lower
from verification.network import Network
from verification.proofcheck import FORMAT, VERSION, Chain, layer_bounds, rows_lower
from verification.bounds.beta import beta_crown
from verification.proofcheck.checker import CHUNK, RELU_VERSION, combine, hexf, region_rows
from verification.smt.lp import min_max_affine
from verification.spec import VnnlibProperty

__all__ = ["ProofLog", "build_proof", "write_proof"]

LEAF_BATCH = 128  # leaves bounded and alpha-optimised together
RELU_REFINE = 10  # ReLU splits the writer adds below a leaf of the verifier's ReLU-split tree


class ProofLog:
    """The split tree of one region as the search builds it (node 0: the region's box)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Start again from the root (a new search of the region)."""
        self.children: dict[int, tuple[int, float, int, int]] = {}  # node -> (dim, point, lower, upper child)
        self.lp: dict[tuple[int, int], np.ndarray] = {}  # (node, disjunct) -> dual weights
        self.exact: dict[tuple[int, int], str] = {}  # (node, disjunct) -> solver that refuted it
        self.relu: dict[int, ReluLog] = {}  # disjunct -> the ReLU-split tree of its branch and bound
        self._next = 1

    def relu_log(self, k: int) -> "ReluLog":
        """A new ReLU-split tree for disjunct ``k`` (replacing an earlier search's)."""
        self.relu[k] = ReluLog()
        return self.relu[k]

    def split(self, nodes: np.ndarray, dims: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Record the bisection of ``nodes``; returns the children's ids interleaved (lower, upper, ...)."""
        out = np.empty(2 * nodes.size, dtype=np.int64)
        for i, (n, d, p) in enumerate(zip(nodes.tolist(), dims.tolist(), points.tolist())):
            self.children[n] = (int(d), float(p), self._next, self._next + 1)
            out[2 * i], out[2 * i + 1] = self._next, self._next + 1
            self._next += 2
        return out


class ReluLog:
    """The ReLU-split tree of one disjunct's branch and bound (:mod:`verification.smt.relu_bab`; node 0: the
    whole box): each split neuron and how each domain was refuted."""

    def __init__(self) -> None:
        self.kids: dict[int, tuple[int, int, int, int]] = {}  # node -> (layer, neuron, z >= 0 child, z <= 0 child)
        # node -> ("beta", row, slopes, betas, empty) | ("lp", weights, multipliers) | ("z3",)
        self.leaf: dict[int, tuple] = {}
        self._next = 1

    def split(self, nodes: np.ndarray, layers: np.ndarray, neurons: np.ndarray) -> np.ndarray:
        """Record the split of ``nodes``; returns the children's ids: every ``z >= 0`` child, then every ``z <= 0``."""
        n = nodes.size
        out = np.arange(self._next, self._next + 2 * n, dtype=np.int64)
        for t, (d, j, i) in enumerate(zip(nodes.tolist(), layers.tolist(), neurons.tolist())):
            self.kids[d] = (int(j), int(i), int(out[t]), int(out[n + t]))
        self._next += 2 * n
        return out

    def refuted(self, nodes: np.ndarray, res, pre: list, empty: np.ndarray, idx: np.ndarray | None = None) -> None:
        """Domains ``nodes`` (entries ``idx`` of the beta-CROWN result ``res``, bounds ``pre``) refuted or found
        empty: the row with the best bound, its slopes on the unstable neurons and its non-zero multipliers,
        each as ``(index, value)`` per layer (slopes in float32: any slope in range is valid)."""
        idx = np.arange(nodes.size) if idx is None else idx
        for d, i, e in zip(nodes.tolist(), idx.tolist(), empty.tolist()):
            r = int(np.argmax(res.lower[i]))
            keep = [np.flatnonzero((l[i] < 0) & (u[i] > 0)) for l, u in pre]
            alphas = [(k, a[i, r][k].astype(np.float32)) for k, a in zip(keep, res.alphas)]
            betas = [(np.flatnonzero(b[i, r]), b[i, r][b[i, r] != 0]) for b in res.betas]
            self.leaf[d] = ("beta", r, alphas, betas, e)


@dataclass
class _Item:
    """A node of the proof being built."""

    lo: np.ndarray
    hi: np.ndarray
    src: int | None  # the verifier's node, or None below its leaves
    need: list
    extra: int  # levels bisected below the verifier's tree
    prior: list | None
    certs: list = field(default_factory=list)
    split: tuple | None = None
    kids: list = field(default_factory=list)
    full: bool = False  # pre-activation bounds by back-substitution of every neuron


def _alpha_opt(net: Network, lo: np.ndarray, hi: np.ndarray, pre: list, C: np.ndarray, cb: np.ndarray,
               margin: np.ndarray, iters: int = 40, lr: float = 0.3, k: int | None = None) -> tuple[np.ndarray, list]:
    """alpha-CROWN on the rows ``C`` of the boxes ``[lo, hi]`` with fixed pre-activation bounds ``pre`` (the
    checker's own, ``[(l, u)]`` each ``(B, n_j)``): the verifier's optimiser (projected Adam along the exact
    gradient, :func:`~verification.bounds.alpha.ascend`), keeping the best slopes per box and row; a box stops
    once a row's bound exceeds its ``margin``.  Returns (best float bound ``(B, R)``, best lower slopes per
    activation ``(B, R, n_j)``).  Not rigorous: the checker's bound at these slopes decides.  ``k``: the rows are
    on the pre-activations of layer ``k`` (``pre``: the ``k`` layers before it), not on the output."""
    acts, L = net.activations, len(net.activations) if k is None else k
    R = C.shape[0]
    mid, rad = (hi + lo) / 2.0, (hi - lo) / 2.0
    alphas = [np.repeat(np.where(u > -l, 1.0, a.two_piece_slope)[:, None, :], R, axis=1)
              for a, (l, u) in zip(acts[:L], pre)]
    best, best_a = np.full((lo.shape[0], R), -np.inf), [a.copy() for a in alphas]
    idx = np.arange(lo.shape[0])  # boxes still optimised
    last: dict = {}

    def evaluate(al):
        relax = [_make_relax(acts[j], l[idx], u[idx], alpha=al[j]) for j, (l, u) in enumerate(pre)]
        lam, bias, recs, coefs = backsubstitute(net, L, C, relax, idx.size)
        val = box_lower(lam, bias, mid[idx], rad[idx]) + cb
        better = val > best[idx]
        best[idx] = np.where(better, val, best[idx])
        for j in range(L):
            best_a[j][idx] = np.where(better[..., None], al[j], best_a[j][idx])
        last.update(relax=relax, recs=recs, coefs=coefs, lam=lam)

    def gradient():
        return alpha_gradient(net, last["relax"], last["recs"], last["coefs"], last["lam"], lo[idx], hi[idx])

    def drop(keep):
        nonlocal idx
        idx = idx[keep]

    ranges = [(min(a.two_piece_slope, 1.0), max(a.two_piece_slope, 1.0)) for a in acts[:L]]
    ascend(alphas, ranges, evaluate, gradient, iters=iters, lr=lr,
           done=lambda: best[idx].max(axis=1) > margin[idx], drop=drop)
    return best, best_a


def lp_lower(ch: Chain, lo: np.ndarray, hi: np.ndarray, pre: list, w: np.ndarray, C: np.ndarray,
             cb: np.ndarray) -> np.ndarray:
    """The checker's rigorous lower bounds ``(B,)`` of ``sum_r w_r (C_r y + cb_r)`` over the boxes (``w >= 0``)."""
    M, c = combine(w, C, cb, pre[-1])
    return rows_lower(ch, lo, hi, pre, M[None], c[:, None])[:, 0]


def _lp_cert(net: Network, ch: Chain, it: "_Item", lo, hi, pre, b: int, C, cb, grp, k: int) -> bool:
    """Weights on the rows of disjunct ``k`` from the LP ``min_e max_r (G_r e + h_r)`` over the rows' CROWN
    linear lower bounds (exact where every neuron is stable); on success add the ``lp`` certificate."""
    rows = np.flatnonzero(grp == k)
    if rows.size < 2:
        return False
    sb = spec_bounds(net, lo, hi, C[rows], cb[rows], method="crown")
    G = sb.coef[0]
    w, _ = min_max_affine(G, sb.lower[0] + np.abs(G).sum(axis=1))
    if w is None:
        return False
    w = np.clip(np.asarray(w, dtype=np.float64), 0.0, None)
    one = [(l[b:b + 1], u[b:b + 1]) for l, u in pre]
    if not lp_lower(ch, lo, hi, one, w, C[rows], cb[rows])[0] > 0:
        return False
    it.certs.append({"k": k, "by": "lp", "w": [hexf(v) for v in w]})
    return True


def _crown_lp(ch: Chain, log, it: "_Item", need: list, lo1, hi1, one: list, low1: np.ndarray, C, cb, grp) -> list:
    """Add the ``crown`` (a row bound ``low1 > 0``) and recorded ``lp`` certificates of the disjuncts ``need`` on
    the item's box; returns the disjuncts left."""
    left = []
    for k in need:
        if low1[grp == k].max() > 0:
            it.certs.append({"k": k, "by": "crown"})
            continue
        w = None if log is None or it.src is None else log.lp.get((it.src, k))
        if w is not None and lp_lower(ch, lo1, hi1, one, w, C[grp == k], cb[grp == k])[0] > 0:
            it.certs.append({"k": k, "by": "lp", "w": [hexf(v) for v in w]})
            continue
        left.append(k)
    return left


def _stack_prior(items: list, depth: int) -> list | None:
    if items[0].prior is None:
        return None
    return [(np.stack([it.prior[j][0] for it in items]), np.stack([it.prior[j][1] for it in items]))
            for j in range(depth + 1)]


def _split(it: "_Item", d: int, p: float, c0, c1, extra: int, left: list, one: list) -> list:
    """Halve the item's box at ``x_d = p``; returns the two children."""
    it.split = (d, p)
    hi1, lo2 = it.hi.copy(), it.lo.copy()
    hi1[d], lo2[d] = p, p
    mine = [(l[0], u[0]) for l, u in one]
    it.kids = [_Item(it.lo, hi1, c0, left, extra, mine), _Item(lo2, it.hi, c1, left, extra, mine)]
    return it.kids


def _alpha_certs(net: Network, ch: Chain, items: list, lefts: list, lo, hi, bnds: list, C, cb, grp, K: int) -> None:
    """``alpha`` certificates for the disjuncts ``lefts[b]`` of the boxes ``items[b]`` with the bounds ``bnds``
    (the ones the checker computes for those nodes); the disjuncts certified are removed from ``lefts``."""
    yl, yu = bnds[-1]
    ymax = np.maximum(np.abs(yl), np.abs(yu))
    for k in range(K):
        sel = np.array([b for b, left in enumerate(lefts) if k in left], dtype=np.int64)
        if sel.size == 0:
            continue
        rows = np.flatnonzero(grp == k)
        pre = [(l[sel], u[sel]) for l, u in bnds]
        margin = 1e-10 * (1.0 + (ymax[sel] @ np.abs(C[rows]).T + np.abs(cb[rows])).max(axis=1))
        _, slopes = _alpha_opt(net, lo[sel], hi[sel], pre[:-1], C[rows], cb[rows], margin)
        val = rows_lower(ch, lo[sel], hi[sel], pre, C[rows], cb[rows], slopes)
        # slopes on a 2^-20 grid write shorter; kept where the bound stays positive
        short = [np.clip(np.round(a * 2.0 ** 20) / 2.0 ** 20, s, 1.0) for a, s in zip(slopes, ch.s)]
        val_s = rows_lower(ch, lo[sel], hi[sel], pre, C[rows], cb[rows], short)
        for t, b in enumerate(sel.tolist()):
            r = int(np.argmax(val_s[t]))
            use = short
            if not val_s[t, r] > 0:
                r, use = int(np.argmax(val[t])), slopes
                if not val[t, r] > 0:
                    continue
            # only the unstable neurons whose slope is not the checker's default (1 if u > -l, else s)
            entries = []
            for j, (l, u) in enumerate(pre[:-1]):
                a = use[j][t, r]
                moved = (l[t] < 0) & (u[t] > 0) & (a != np.where(u[t] > -l[t], 1.0, ch.s[j]))
                entries += [[j, int(i), hexf(a[i])] for i in np.flatnonzero(moved)]
            items[b].certs.append({"k": k, "by": "alpha", "row": r, "slopes": entries})
            lefts[b].remove(k)


def _close_leaves(net: Network, ch: Chain, log, todo: list, C, cb, grp, K: int, width, refine_depth: int,
                  room: bool) -> list:
    """The leaves ``todo`` (``(item, disjuncts left, its bounds)``; boxes the verifier did not split further, or
    below its tree): alpha slopes from the verifier's optimiser on the checker's bounds; for the boxes still
    open, bounds by back-substitution of every neuron (``full``: every disjunct again, ``crown`` / ``lp`` /
    ``alpha``), then LP weights, else bisection (``room``: the node budget allows it) or ``trusted``.
    Returns the children to bound next."""
    items = [it for it, _, _ in todo]
    lefts = [list(left) for _, left, _ in todo]
    lo, hi = np.stack([it.lo for it in items]), np.stack([it.hi for it in items])
    pre = [(np.concatenate([o[j][0] for _, _, o in todo]), np.concatenate([o[j][1] for _, _, o in todo]))
           for j in range(ch.depth + 1)]
    _alpha_certs(net, ch, items, lefts, lo, hi, pre, C, cb, grp, K)
    again = [b for b, left in enumerate(lefts) if left]
    full = None
    if again:  # every neuron back-substituted; the node's certificates are all made again on these bounds
        sel = np.array(again)
        lo2, hi2, its = lo[sel], hi[sel], [items[b] for b in again]
        full = layer_bounds(ch, lo2, hi2, _stack_prior(its, ch.depth), full=True)
        low = rows_lower(ch, lo2, hi2, full, C, cb)
        lefts2 = []
        for t, it in enumerate(its):
            it.full, it.certs = True, []
            one = [(l[t:t + 1], u[t:t + 1]) for l, u in full]
            lefts2.append(_crown_lp(ch, log, it, it.need, lo2[t:t + 1], hi2[t:t + 1], one, low[t], C, cb, grp))
        _alpha_certs(net, ch, its, lefts2, lo2, hi2, full, C, cb, grp, K)
        for b, left in zip(again, lefts2):
            lefts[b] = left
        pre = [(l.copy(), u.copy()) for l, u in pre]
        for j, (l, u) in enumerate(full):
            pre[j][0][sel], pre[j][1][sel] = l, u
    kids = []
    for b, (it, left) in enumerate(zip(items, lefts)):
        if not left:
            continue
        one = [(l[b:b + 1], u[b:b + 1]) for l, u in pre]
        left = [k for k in left if not _lp_cert(net, ch, it, lo[b:b + 1], hi[b:b + 1], one, 0, C, cb, grp, k)]
        if not left:
            continue
        if it.extra < refine_depth and room:
            d = int(np.argmax((it.hi - it.lo) / width))
            kids.extend(_split(it, d, (it.lo[d] + it.hi[d]) / 2, None, None, it.extra + 1, left, one))
            continue
        for k in left:
            why = "unchecked" if log is None or it.src is None else log.exact.get((it.src, k), "unchecked")
            it.certs.append({"k": k, "by": "trusted", "reason": why})
    return kids


def _region_tree(net: Network, ch: Chain, region, log: ProofLog | None, refine_depth: int, max_nodes: int,
                 deadline: float, need: list):
    C, cb, grp = region_rows(region)
    K = len(region.outputs)
    width = np.where(region.upper > region.lower, region.upper - region.lower, 1.0)
    root = _Item(region.lower.copy(), region.upper.copy(), None if log is None else 0, need, 0, None)
    frontier, count = [root], 1
    while frontier:
        nxt, todo = [], []
        for s in range(0, len(frontier), CHUNK):
            items = frontier[s:s + CHUNK]
            lo, hi = np.stack([it.lo for it in items]), np.stack([it.hi for it in items])
            pre = layer_bounds(ch, lo, hi, _stack_prior(items, ch.depth))
            low = rows_lower(ch, lo, hi, pre, C, cb)
            for b, it in enumerate(items):
                one = [(l[b:b + 1], u[b:b + 1]) for l, u in pre]
                left = _crown_lp(ch, log, it, it.need, lo[b:b + 1], hi[b:b + 1], one, low[b], C, cb, grp)
                if left and log is not None and it.src is not None and it.src in log.children:
                    d, p, c0, c1 = log.children[it.src]  # follow the verifier's split
                    nxt.extend(_split(it, d, p, c0, c1, 0, left, one))
                elif left:
                    todo.append((it, left, one))
        for s in range(0, len(todo), LEAF_BATCH):
            room = count + len(nxt) + 2 * LEAF_BATCH <= max_nodes and time.monotonic() < deadline
            nxt.extend(_close_leaves(net, ch, log, todo[s:s + LEAF_BATCH], C, cb, grp, K, width, refine_depth, room))
        count += len(nxt)
        frontier = nxt
    nodes = []
    stack = [root]
    while stack:  # preorder, lower child first
        it = stack.pop()
        e: dict = {"full": True} if it.full else {}
        if it.split is not None:
            e["split"] = [it.split[0], hexf(it.split[1])]
            stack.extend(reversed(it.kids))
        if it.certs:
            e["refute"] = it.certs
        nodes.append(e)
    return nodes


def _dense(rec: list, signs: list, base: list | None = None) -> list:
    """Per layer ``(n_j,)`` values from their ``(index, value)`` record; the others from ``base`` (default 0)."""
    out = [np.zeros(s.shape[-1]) if base is None else np.array(b, dtype=np.float64) for s, b in zip(signs, base or signs)]
    for o, (i, v) in zip(out, rec):
        o[i] = v
    return out


def _beta_eval(ch: Chain, lo, hi, pre: list, signs: list, cands: list, C, cb) -> np.ndarray:
    """The checker's rigorous bound of each candidate ``(w, slopes, betas)`` (``slopes`` / ``betas``: per layer
    ``(n_j,)``; ``None`` slopes: CROWN's) on the domains (rows of ``lo, hi``, bounds ``pre``, split ``signs``)."""
    A = len(cands)
    alpha = [np.where(u > -l, 1.0, s)[:, None, :].copy() for (l, u), s in zip(pre[:-1], ch.s)]
    lag = [np.zeros((A, 1, l.shape[1])) for l, _ in pre[:-1]]
    Mc = []
    for a, (w, sl, be) in enumerate(cands):
        for j in range(ch.depth):
            if sl is not None:
                alpha[j][a, 0] = np.clip(np.asarray(sl[j], np.float64), ch.s[j], 1.0)
            lag[j][a, 0] = np.where(signs[j][a] != 0, np.maximum(be[j], 0.0), 0.0) * signs[j][a]
        Mc.append(combine(w, C, cb, (pre[-1][0][a:a + 1], pre[-1][1][a:a + 1])))
    return rows_lower(ch, lo, hi, pre, np.stack([m for m, _ in Mc])[:, None, :], np.stack([c for _, c in Mc]),
                      alpha, lag)[:, 0]


def _beta_cert(ch: Chain, k: int, pre: list, signs: list, w, sl, be) -> dict:
    """A ``beta`` certificate: only slopes of unstable neurons that differ from CROWN's, only non-zero betas."""
    slopes, betas = [], []
    for j, (l, u) in enumerate(pre[:-1]):
        if sl is not None:
            a = np.clip(np.asarray(sl[j], np.float64), ch.s[j], 1.0)
            moved = (l < 0) & (u > 0) & (a != np.where(u > -l, 1.0, ch.s[j]))
            slopes += [[j, int(i), hexf(a[i])] for i in np.flatnonzero(moved)]
        b = np.where(signs[j] != 0, np.maximum(be[j], 0.0), 0.0)
        betas += [[j, int(i), hexf(b[i])] for i in np.flatnonzero(b)]
    return {"k": k, "by": "beta", "w": [hexf(v) for v in w], "slopes": slopes, "betas": betas}


def _close_relu(net: Network, ch: Chain, leaves: list, k: int, C, cb, lo, hi) -> list:
    """Certificates for the leaves of a ReLU-split tree (dicts with ``data`` (the verifier's record), ``signs``,
    ``pre``, ``empty``, ``prior``, ``entry``): ``empty`` where the checker's bounds cross, else the recorded
    slopes and multipliers (or LP weights) checked on the checker's bounds, else beta-CROWN run again on them
    (warm-started), then the same on bounds back-substituting every neuron (``full``).  Returns the leaves
    left open."""
    R = C.shape[0]
    todo = list(leaves)
    for full in (False, True):
        if full:
            if not todo:
                return []
            for it in todo:
                if it["prior"] is not None:  # the root is already full
                    one = [(l[None], u[None]) for l, u in it["prior"]]
                    sg = [s[None] for s in it["signs"]]
                    b, e = layer_bounds(ch, lo[None], hi[None], one, full=True, signs=sg)
                    it.update(pre=[(l[0], u[0]) for l, u in b], empty=bool(e[0]))
                    it["entry"]["full"] = True
        left = []
        for it in todo:
            if it["empty"]:
                it["entry"]["refute"] = [{"k": k, "by": "empty"}]
            else:
                left.append(it)
        todo = left
        for attempt in ("record", "optimise"):
            if not todo:
                return []
            B = len(todo)
            pre = [(np.stack([it["pre"][j][0] for it in todo]), np.stack([it["pre"][j][1] for it in todo]))
                   for j in range(ch.depth + 1)]
            signs = [np.stack([it["signs"][j] for it in todo]) for j in range(ch.depth)]
            los, his = np.repeat(lo[None], B, 0), np.repeat(hi[None], B, 0)
            crown = [[np.where(u[t] > -l[t], 1.0, sj) for (l, u), sj in zip(pre[:-1], ch.s)] for t in range(B)]
            if attempt == "record":
                cands = []
                for t, it in enumerate(todo):
                    d = it["data"]
                    if d is not None and d[0] == "beta":
                        cands.append((np.eye(R)[d[1]], _dense(d[2], signs, crown[t]), _dense(d[3], signs)))
                    elif d is not None and d[0] == "lp":
                        cands.append((np.asarray(d[1], np.float64), None, d[2]))
                    else:
                        cands.append((np.zeros(R), None, [np.zeros(s.shape[1]) for s in signs]))
            else:
                warm_a = [np.stack([np.repeat(_dense(it["data"][2], signs, crown[t])[j][None], R, 0) if it["data"] and it["data"][0] == "beta"
                                    else np.repeat(np.where(pre[j][1][t] > -pre[j][0][t], 1.0, ch.s[j])[None], R, 0)
                                    for t, it in enumerate(todo)]) for j in range(ch.depth)]
                warm_b = [np.stack([np.repeat(_dense(it["data"][3], signs)[j][None], R, 0) if it["data"] and it["data"][0] == "beta"
                                    else np.zeros((R, signs[j].shape[1])) for it in todo]) for j in range(ch.depth)]
                res = beta_crown(net, los, his, C, cb, pre[:-1], signs, warm_a, warm_b, iters=20,
                                 done=lambda idx, low: np.any(low > 1e-9, axis=1))
                rows = np.argmax(res.lower, axis=1)
                cands = [(np.eye(R)[r], [a[t, r] for a in res.alphas], [b[t, r] for b in res.betas])
                         for t, r in enumerate(rows)]
            val = _beta_eval(ch, los, his, pre, signs, cands, C, cb)
            left = []
            for t, it in enumerate(todo):
                if val[t] > 0:
                    w, sl, be = cands[t]
                    one = [(l[t], u[t]) for l, u in pre]
                    it["entry"]["refute"] = [_beta_cert(ch, k, one, [s[t] for s in signs], w, sl, be)]
                else:
                    left.append(it)
            todo = left
    return todo


def _refine_split(it: dict) -> tuple[int, int] | None:
    """The unstable neuron (in the leaf's own bounds) to split below a leaf left open: the largest area
    ``u (-l) / (u - l)`` of its triangle relaxation, in the first layer that has one."""
    for j, (l, u) in enumerate(it["pre"][:-1]):
        unst = (l < 0) & (u > 0)
        if unst.any():
            score = np.where(unst, u * -l / np.where(unst, u - l, 1.0), -1.0)
            return j, int(np.argmax(score))
    return None


def _tight_root(net: Network, ch: Chain, lo: np.ndarray, hi: np.ndarray) -> tuple[list, list]:
    """The whole box's pre-activation bounds as the checker computes them for a root marked ``full`` with the
    ``tighten`` rows returned: the unstable neurons of each layer after the first bounded by alpha-CROWN
    (the verifier's optimiser on the checker's bounds, as the verifier bounds its root).  Returns the bounds
    (``(1, n_j)`` arrays) and the rows (JSON)."""
    rows, parsed = [], []
    b = layer_bounds(ch, lo[None], hi[None], None, full=True)
    for k in range(1, ch.depth):
        l, u = b[k]
        idx = np.flatnonzero((l[0] < 0) & (u[0] > 0))
        m = idx.size
        if m == 0:
            continue
        C = np.zeros((2 * m, l.shape[1]))
        C[np.arange(m), idx], C[m + np.arange(m), idx] = 1.0, -1.0
        _, slopes = _alpha_opt(net, lo[None], hi[None], b[:k], C, np.zeros(2 * m), np.full(1, np.inf), k=k)
        for t in range(2 * m):
            sl = [(j, int(i), float(slopes[j][0, t, i])) for j, (x, y) in enumerate(b[:k])
                  for i in np.flatnonzero((x[0] < 0) & (y[0] > 0) & (slopes[j][0, t] != np.where(y[0] > -x[0], 1.0, ch.s[j])))]
            if sl:
                parsed.append((k, int(idx[t % m]), 1 if t < m else -1, sl))
                rows.append([k, int(idx[t % m]), 1 if t < m else -1, [[j, i, hexf(v)] for j, i, v in sl]])
        b = layer_bounds(ch, lo[None], hi[None], None, full=True, tight=[parsed])
    return b, rows


def _relu_tree(net: Network, ch: Chain, region, rlog: ReluLog, k: int, root_bounds: tuple) -> list:
    """The proof tree of disjunct ``k`` from the verifier's ReLU-split tree: the nodes' bounds as the checker
    computes them (the root's by back-substitution of every neuron, a child's as its parent's clamped by its
    split), level by level, and certificates for the leaves (:func:`_close_relu`)."""
    C, cb, grp = region_rows(region)
    rows = np.flatnonzero(grp == k)
    C, cb = C[rows], cb[rows]
    lo, hi = region.lower, region.upper
    kids, data, nid = dict(rlog.kids), dict(rlog.leaf), rlog._next  # extended by the writer's own splits
    b, rows = root_bounds
    root = {"id": 0, "signs": [np.zeros(w.shape[0], np.int8) for w in ch.W[:-1]], "prior": None,
            "entry": {"full": True, "tighten": rows} if rows else {"full": True}, "extra": 0}
    root.update(pre=[(l[0], u[0]) for l, u in b], empty=False)
    level, entries = [root], {}
    while level:
        leaves, nxt = [], []
        for it in level:
            entries[it["id"]] = it["entry"]
            if it["id"] in kids and not it["empty"]:
                j, i, pos, neg = kids[it["id"]]
                it["entry"]["relu"] = [j, i]
                for c, sgn in ((pos, 1), (neg, -1)):
                    signs = [s.copy() for s in it["signs"]]
                    signs[j][i] = sgn
                    nxt.append({"id": c, "signs": signs, "prior": it["pre"], "entry": {}, "extra": it["extra"]})
            else:
                it["data"] = data.get(it["id"])
                leaves.append(it)
        for s in range(0, len(leaves), LEAF_BATCH):
            for it in _close_relu(net, ch, leaves[s:s + LEAF_BATCH], k, C, cb, lo, hi):
                pick = _refine_split(it) if it["extra"] < RELU_REFINE else None
                if pick is None:
                    d = it["data"]
                    why = "unchecked" if d is None else {"beta": "unchecked", "lp": "lp", "z3": "z3"}[d[0]]
                    it["entry"]["refute"] = [{"k": k, "by": "trusted", "reason": why}]
                    continue
                # split further below the verifier's leaf (children warm-started from its record)
                kids[it["id"]], nid = (pick[0], pick[1], nid, nid + 1), nid + 2
                for c, sgn in ((nid - 2, 1), (nid - 1, -1)):
                    signs = [a.copy() for a in it["signs"]]
                    signs[pick[0]][pick[1]] = sgn
                    data[c] = it["data"]
                    it["entry"].pop("refute", None)
                    nxt.append({"id": c, "signs": signs, "prior": it["pre"], "entry": {}, "extra": it["extra"] + 1})
                it["entry"]["relu"] = list(pick)
        for s in range(0, len(nxt), LEAF_BATCH):
            part = nxt[s:s + LEAF_BATCH]
            prior = [(np.stack([it["prior"][j][0] for it in part]), np.stack([it["prior"][j][1] for it in part]))
                     for j in range(ch.depth + 1)]
            sg = [np.stack([it["signs"][j] for it in part]) for j in range(ch.depth)]
            B = len(part)
            b, e = layer_bounds(ch, np.repeat(lo[None], B, 0), np.repeat(hi[None], B, 0), prior, full=None, signs=sg)
            for t, it in enumerate(part):
                it.update(pre=[(l[t], u[t]) for l, u in b], empty=bool(e[t]))
        for it in level:  # the children keep only their parent's bounds
            it.pop("pre", None), it.pop("prior", None)
        level = nxt
    out, stack = [], [0]
    while stack:  # preorder: z >= 0 child first
        i = stack.pop()
        e = entries[i]
        out.append(e)
        if "relu" in e:
            stack += [kids[i][3], kids[i][2]]
    return out


def build_proof(net: Network, prop: VnnlibProperty, logs: list, *, refine_depth: int = 12,
                max_nodes: int = 200_000, time_limit: float = 600.0) -> dict:
    """The proof (a JSON-ready dict) that the canonical ReLU / leaky-ReLU ``net`` satisfies ``prop``, from
    the search's logs (one :class:`ProofLog` or ``None`` per region)."""
    t0 = time.monotonic()
    ch = Chain.of(net)
    regions, relu = [], False
    for reg, log in zip(prop.regions, logs):
        reg = reg.widened(net.deviation(reg.lower, reg.upper))  # as the checker: computed weights
        root = _tight_root(net, ch, reg.lower, reg.upper) if log is not None and log.relu else None
        trees = [] if log is None else [_relu_tree(net, ch, reg, log.relu[k], k, root) for k in sorted(log.relu)]
        need = [k for k in range(len(reg.outputs)) if log is None or k not in log.relu]
        if need:
            trees.insert(0, _region_tree(net, ch, reg, log, refine_depth, max_nodes, t0 + time_limit, need))
        relu |= len(trees) != 1 or any("relu" in n for n in trees[0])
        regions.append({"lower": [hexf(v) for v in reg.lower], "upper": [hexf(v) for v in reg.upper], "trees": trees})
    every = [n for r in regions for t in r["trees"] for n in t]
    stats = {"nodes": len(every), "trusted": sum(c["by"] == "trusted" for n in every for c in n.get("refute", [])),
             "seconds": round(time.monotonic() - t0, 4)}
    if not relu:  # version 1: one input-split tree per region
        for r in regions:
            r["nodes"] = r.pop("trees")[0]
    return {"format": FORMAT, "version": RELU_VERSION if relu else VERSION,
            "network": {"sha256": ch.fingerprint(), "in_dim": net.in_dim, "out_dim": net.out_dim,
                        "widths": [int(w.shape[0]) for w in ch.W]},
            "property": {"regions": len(prop.regions), "source": prop.source},
            "regions": regions, "stats": stats}


def write_proof(proof: dict, path: str | Path) -> int:
    """Write the proof as JSON; returns its size in bytes."""
    text = json.dumps(proof, separators=(",", ":"))
    Path(path).write_text(text, encoding="utf-8")
    return len(text.encode("utf-8"))
