"""Proofs of ``holds`` answers (docs/proofs.md): the input-split tree the search built, completed so that the
independent checker (:mod:`verification.proofcheck`) can confirm every node.

During the search :class:`ProofLog` records each bisection (dimension and split point, so the children's
boxes are reproduced bit for bit), the LP dual weights of exact leaves and which leaves a solver (Z3, MILP,
pattern LPs) decided.  :func:`build_proof` then walks the tree with the checker's own rigorous bounds: a
disjunct the checker refutes at a node gets a ``crown`` (or ``lp``) certificate there and the subtree below
is dropped for it; one it does not refute follows the verifier's children, or, below a leaf, is bisected
further (at most ``refine_depth`` levels); what is still open is written as ``trusted`` with the solver
that decided it, and the checker reports such a proof as not fully checked.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from verification.bounds.batched import spec_bounds
from verification.network import Network
from verification.proofcheck import FORMAT, VERSION, Chain, layer_bounds, rows_lower
from verification.proofcheck.checker import CHUNK, hexf, lp_lower, region_rows
from verification.smt.lp import min_max_affine
from verification.spec import VnnlibProperty

__all__ = ["ProofLog", "build_proof", "write_proof"]


class ProofLog:
    """The split tree of one region as the search builds it (node 0: the region's box)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Start again from the root (a new search of the region)."""
        self.children: dict[int, tuple[int, float, int, int]] = {}  # node -> (dim, point, lower, upper child)
        self.lp: dict[tuple[int, int], np.ndarray] = {}  # (node, disjunct) -> dual weights
        self.exact: dict[tuple[int, int], str] = {}  # (node, disjunct) -> solver that refuted it
        self._next = 1

    def split(self, nodes: np.ndarray, dims: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Record the bisection of ``nodes``; returns the children's ids interleaved (lower, upper, ...)."""
        out = np.empty(2 * nodes.size, dtype=np.int64)
        for i, (n, d, p) in enumerate(zip(nodes.tolist(), dims.tolist(), points.tolist())):
            self.children[n] = (int(d), float(p), self._next, self._next + 1)
            out[2 * i], out[2 * i + 1] = self._next, self._next + 1
            self._next += 2
        return out


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


def _alpha_search(ch: Chain, lo, hi, pre: list, C: np.ndarray, cb: np.ndarray, iters: int = 25):
    """Lower slopes of the unstable neurons that raise the rigorous bound of each row (projected sign-gradient
    ascent with finite differences, all rows at once, until a row's bound is positive; any slopes are valid,
    the checker re-checks).  Returns
    (best bound per row, the unstable neurons ``[(layer, neuron)]``, their best slopes ``(R, n)``), or
    ``None`` with no (or too many) unstable neurons."""
    idx = [(j, i) for j, (l, u) in enumerate(pre[:-1]) for i in np.flatnonzero((l[0] < 0) & (u[0] > 0))]
    n, R = len(idx), C.shape[0]
    if n == 0 or n > 16:  # the verifier's alpha-CROWN leaves have at most 16 (alpha_unstable)
        return None
    lo_s = np.array([ch.s[j] for j, _ in idx])
    cur = np.stack([np.full(R, 1.0 if pre[j][1][0, i] > -pre[j][0][0, i] else ch.s[j]) for j, i in idx], axis=1)
    best, best_a = np.full(R, -np.inf), cur.copy()
    reps = [(np.repeat(l, n + 1, axis=0), np.repeat(u, n + 1, axis=0)) for l, u in pre]
    blo, bhi = np.repeat(lo, n + 1, axis=0), np.repeat(hi, n + 1, axis=0)
    h, step = 1e-4, 0.5
    for _ in range(iters):
        trial = np.repeat(cur[None], n + 1, axis=0)  # (n + 1, R, n)
        sgn = np.where(cur > (lo_s + 1.0) / 2, -1.0, 1.0)  # finite differences towards the inside
        trial[np.arange(1, n + 1), :, np.arange(n)] += h * sgn[:, np.arange(n)].T
        alpha = [np.repeat(np.where(u > -l, 1.0, s)[:, None, :], R, axis=1).repeat(n + 1, axis=0)
                 for (l, u), s in zip(pre[:-1], ch.s)]
        for t, (j, i) in enumerate(idx):
            alpha[j][:, :, i] = trial[:, :, t]
        vals = rows_lower(ch, blo, bhi, reps, C, cb, alpha)
        better = vals[0] > best
        best = np.where(better, vals[0], best)
        best_a[better] = cur[better]
        if best.max() > 0:  # one refuting row is all a certificate needs
            break
        grad = (vals[1:] - vals[0][None, :]).T * sgn  # (R, n)
        cur = np.clip(cur + step * np.sign(grad), lo_s, 1.0)
        step *= 0.8
    return best, idx, best_a


def _alpha_cert(ch: Chain, it: "_Item", lo, hi, pre, b: int, C, cb, grp, k: int) -> bool:
    """Try alpha slopes for disjunct ``k`` on the item's box; on success add the certificate."""
    one = [(l[b:b + 1], u[b:b + 1]) for l, u in pre]
    rows = np.flatnonzero(grp == k)
    found = _alpha_search(ch, lo, hi, one, C[rows], cb[rows])
    if found is None:
        return False
    best, idx, best_a = found
    r = int(np.argmax(best))
    if not best[r] > 0:
        return False
    it.certs.append({"k": k, "by": "alpha", "row": r,
                     "slopes": [[int(j), int(i), hexf(best_a[r, t])] for t, (j, i) in enumerate(idx)]})
    return True


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


def _crown_lp(ch: Chain, log, it: "_Item", lo1, hi1, one: list, low1: np.ndarray, C, cb, grp) -> list:
    """Add the ``crown`` (a row bound ``low1 > 0``) and recorded ``lp`` certificates of the item's box; returns
    the disjuncts left."""
    left = []
    for k in it.need:
        if low1[grp == k].max() > 0:
            it.certs.append({"k": k, "by": "crown"})
            continue
        w = None if log is None or it.src is None else log.lp.get((it.src, k))
        if w is not None and lp_lower(ch, lo1, hi1, one, w, C[grp == k], cb[grp == k])[0] > 0:
            it.certs.append({"k": k, "by": "lp", "w": [hexf(v) for v in w]})
            continue
        left.append(k)
    return left


def _region_tree(net: Network, ch: Chain, region, log: ProofLog | None, refine_depth: int, max_nodes: int,
                 deadline: float):
    C, cb, grp = region_rows(region)
    K = len(region.outputs)
    width = np.where(region.upper > region.lower, region.upper - region.lower, 1.0)
    root = _Item(region.lower.copy(), region.upper.copy(), None if log is None else 0, list(range(K)), 0, None)
    frontier, count = [root], 1
    while frontier:
        nxt = []
        for s in range(0, len(frontier), CHUNK):
            items = frontier[s:s + CHUNK]
            lo, hi = np.stack([it.lo for it in items]), np.stack([it.hi for it in items])
            prior = None
            if items[0].prior is not None:
                prior = [(np.stack([it.prior[j][0] for it in items]), np.stack([it.prior[j][1] for it in items]))
                         for j in range(ch.depth + 1)]
            pre = layer_bounds(ch, lo, hi, prior)
            low = rows_lower(ch, lo, hi, pre, C, cb)
            for b, it in enumerate(items):
                one = [(l[b:b + 1], u[b:b + 1]) for l, u in pre]
                lo1, hi1 = lo[b:b + 1], hi[b:b + 1]
                left = _crown_lp(ch, log, it, lo1, hi1, one, low[b], C, cb, grp)
                kids = None
                if left and log is not None and it.src is not None and it.src in log.children:
                    d, p, c0, c1 = log.children[it.src]  # follow the verifier's split
                    kids = (d, p, c0, c1, 0)
                elif left:
                    # a leaf: every neuron back-substituted (the verifier's batches tighten more neurons than
                    # a box alone does), alpha slopes, LP weights, else bisect further
                    pb = None if it.prior is None else [(l[None], u[None]) for l, u in it.prior]
                    full = layer_bounds(ch, lo1, hi1, pb, full=True)
                    trial = _Item(it.lo, it.hi, it.src, it.need, it.extra, it.prior)
                    left_f = _crown_lp(ch, log, trial, lo1, hi1, full, rows_lower(ch, lo1, hi1, full, C, cb)[0],
                                       C, cb, grp)
                    if len(left_f) < len(left):
                        it.certs, it.full, left, one = trial.certs, True, left_f, full
                    left = [k for k in left if not _alpha_cert(ch, it, lo1, hi1, one, 0, C, cb, grp, k)]
                    left = [k for k in left if not _lp_cert(net, ch, it, lo1, hi1, one, 0, C, cb, grp, k)]
                    if left and it.extra < refine_depth and count + 2 <= max_nodes and time.monotonic() < deadline:
                        d = int(np.argmax((it.hi - it.lo) / width))
                        kids = (d, (it.lo[d] + it.hi[d]) / 2, None, None, it.extra + 1)
                if not left:
                    continue
                mine = [(l[0], u[0]) for l, u in one]
                if kids is None:
                    for k in left:
                        why = "unchecked" if log is None or it.src is None else log.exact.get((it.src, k), "unchecked")
                        it.certs.append({"k": k, "by": "trusted", "reason": why})
                    continue
                d, p, c0, c1, extra = kids
                it.split = (d, p)
                hi1, lo2 = it.hi.copy(), it.lo.copy()
                hi1[d], lo2[d] = p, p
                it.kids = [_Item(it.lo, hi1, c0, left, extra, mine), _Item(lo2, it.hi, c1, left, extra, mine)]
                nxt.extend(it.kids)
                count += 2
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
    return {"lower": [hexf(v) for v in region.lower], "upper": [hexf(v) for v in region.upper], "nodes": nodes}


def build_proof(net: Network, prop: VnnlibProperty, logs: list, *, refine_depth: int = 12,
                max_nodes: int = 200_000, time_limit: float = 600.0) -> dict:
    """The proof (a JSON-ready dict) that the canonical ReLU / leaky-ReLU ``net`` satisfies ``prop``, from
    the search's logs (one :class:`ProofLog` or ``None`` per region)."""
    t0 = time.monotonic()
    ch = Chain.of(net)
    regions = [_region_tree(net, ch, reg, log, refine_depth, max_nodes, t0 + time_limit)
               for reg, log in zip(prop.regions, logs)]
    stats = {"nodes": sum(len(r["nodes"]) for r in regions),
             "trusted": sum(c["by"] == "trusted" for r in regions for n in r["nodes"] for c in n.get("refute", [])),
             "seconds": round(time.monotonic() - t0, 4)}
    return {"format": FORMAT, "version": VERSION,
            "network": {"sha256": ch.fingerprint(), "in_dim": net.in_dim, "out_dim": net.out_dim,
                        "widths": [int(w.shape[0]) for w in ch.W]},
            "property": {"regions": len(prop.regions), "source": prop.source},
            "regions": regions, "stats": stats}


def write_proof(proof: dict, path: str | Path) -> int:
    """Write the proof as JSON; returns its size in bytes."""
    text = json.dumps(proof, separators=(",", ":"))
    Path(path).write_text(text, encoding="utf-8")
    return len(text.encode("utf-8"))
