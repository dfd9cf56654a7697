"""ReLU-splitting branch and bound with beta-CROWN bounds (Wang et al., NeurIPS 2021): the engine for inputs
of many dimensions (e.g. 784-pixel images), where splitting the input box does not scale.

Per region: pre-activation bounds of the whole box (batched CROWN, then alpha-CROWN, :mod:`~verification.bounds`;
then certified LPs for the most unstable neurons, :func:`_lp_refine`, on dense nets with more than 12 inputs and
3 or more activation layers), then per disjunct of the unsafe set not refuted on the whole box a search over *domains* -- the box with
sign constraints on some pre-activations (:mod:`verification.bounds.beta`):

* the domains with the lowest bounds are taken a batch at a time; each is split on one unstable neuron into
  ``z >= 0`` and ``z <= 0`` (two domains that together cover it);
* the neuron: the largest BaBSR-style intercept score (Bunel et al., JMLR 2020; :meth:`_Search.choose`);
* children inherit the parent's slopes and multipliers and are bounded by beta-CROWN (slopes and split
  multipliers optimised jointly, every iterate sound); a domain is refuted when one row of the disjunct has
  a lower bound above the rounding margin ``TOL * (1 + scale)``;
* every bound's minimising input is screened as a counterexample (:meth:`Task.screen`, exact re-check);
* a domain with no unstable neuron left is a leaf: its rows are affine on it, and one LP over the box and
  the split constraints decides it (:func:`leaf_lp`); its dual weights refute it through one sound beta-CROWN
  evaluation, its minimiser is screened, and Z3 decides what is left.

``holds`` needs every domain refuted or decided unsat; ``unknown`` on timeout, on the domain limit (memory)
or when a leaf stays undecided.  ReLU / leaky-ReLU nets only (callers check).
"""

from __future__ import annotations

import time

import numpy as np

from verification.bounds.batched import incremental_crown
from verification.bounds.beta import beta_crown, clamp_to_splits
from verification.bounds.crown import crown_layers
from verification.bounds.lp_refine import refine_bounds
from verification.errors import UnsupportedLayerError
from verification.layers.affine import Dense
from verification.smt.leaves import z3_leaf
from verification.smt.outcome import REFUTED, Outcome
from verification.smt.task import TOL, Task

__all__ = ["relu_bab", "leaf_lp", "empty_margin"]

ROOT_ITERS = 40  # beta-CROWN steps on the whole box
ITERS = 10  # per batch of child domains (5 proves as fast but finds far fewer counterexamples: their minimisers
#            are the candidates; 25 needs fewer domains but is slower)
DOMAIN_BATCH = 256  # parents split per step (fewer on wide nets: see ENTRIES_PER_BATCH)
ENTRIES_PER_BATCH = 1 << 21  # domains x neurons per step: bounds the memory of one step (~100 MB per array set)
ALPHA_ROOT_NEURONS = 8192
MEMORY_BYTES = 2 << 30  # domain storage cap
# Root LP refinement (:func:`_lp_refine`): "on", "off", or "auto" (on for dense nets with more than LP_MIN_INPUTS
# inputs and at least LP_MIN_LAYERS activation layers; convolutions are not measured).
# mnistfc 256x4/256x6, 8 instances open at 60 s: plain LPs (depth 0, 16 neurons) 0/8, depth 2 with 8 neurons 2/8;
# 256x2 (one refinable layer): nothing gained, and prop_0_0.05 (violated) no longer falsified in 120 s.
LP_REFINE = "auto"
LP_MIN_INPUTS = 12
LP_MIN_LAYERS = 3
LP_TIME_FRACTION = 0.25  # of the time left at the root
LP_NEURONS = 8  # per layer
LP_DEPTH = 2  # split neurons of the previous layer per LP bound (2^depth LPs each, plus the unsplit one)


class _Domains:
    """Open domains of one disjunct, as stacked arrays (splits int8, slopes / multipliers float32)."""

    def __init__(self, splits, alphas, betas, lower, depth, layer, neuron, node):
        self.splits, self.alphas, self.betas = splits, alphas, betas
        self.lower, self.depth = lower, depth
        self.layer, self.neuron = layer, neuron  # the split chosen for each domain (layer -1: a leaf)
        self.node = node  # the domain's id in the proof log (0 when no proof is recorded)

    def __len__(self) -> int:
        return self.lower.shape[0]

    def take(self, n: int) -> "_Domains":
        """Remove and return the ``n`` domains with the lowest bounds."""
        if n >= len(self):
            out = _Domains(self.splits, self.alphas, self.betas, self.lower, self.depth, self.layer, self.neuron,
                           self.node)
            self._keep(np.zeros(0, dtype=int))
            return out
        idx = np.argpartition(self.lower, n)[:n]
        rest = np.setdiff1d(np.arange(len(self)), idx, assume_unique=True)
        out = self._select(idx)
        self._keep(rest)
        return out

    def _select(self, idx) -> "_Domains":
        return _Domains([s[idx] for s in self.splits], [a[idx] for a in self.alphas], [b[idx] for b in self.betas],
                        self.lower[idx], self.depth[idx], self.layer[idx], self.neuron[idx], self.node[idx])

    def _keep(self, idx) -> None:
        self.__dict__.update(self._select(idx).__dict__)

    def push(self, other: "_Domains") -> None:
        self.splits = [np.concatenate([a, b]) for a, b in zip(self.splits, other.splits)]
        self.alphas = [np.concatenate([a, b]) for a, b in zip(self.alphas, other.alphas)]
        self.betas = [np.concatenate([a, b]) for a, b in zip(self.betas, other.betas)]
        for name in ("lower", "depth", "layer", "neuron", "node"):
            setattr(self, name, np.concatenate([getattr(self, name), getattr(other, name)]))

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.splits + self.alphas + self.betas) + self.lower.nbytes


class _Search:
    """The search of one disjunct (rows ``C, cb``) of a task's region."""

    def __init__(self, task: Task, k: int, root_pre: list):
        self.task, self.k = task, k
        rows = np.flatnonzero(task.grp == k)
        self.net = task.net
        self.C, self.cb = task.C[rows], task.cb[rows]
        self.root_pre = root_pre
        self.lo, self.hi = task.region.lower, task.region.upper
        self.log = None if task.proof is None else task.proof.relu_log(k)  # the ReLU-split tree, for a proof

    def _boxes(self, n: int):
        return (np.ascontiguousarray(np.broadcast_to(self.lo, (n, self.lo.size))),
                np.ascontiguousarray(np.broadcast_to(self.hi, (n, self.hi.size))))

    def _pre(self, splits: list):
        """Root bounds clamped by the splits of each domain; also the empty domains."""
        n = splits[0].shape[0]
        pre, empty = [], np.zeros(n, dtype=bool)
        for (l, u), s in zip(self.root_pre, splits):
            l2, u2, e = clamp_to_splits(np.broadcast_to(l, s.shape), np.broadcast_to(u, s.shape), s)
            pre.append((l2, u2))
            empty |= e
        return pre, empty

    def _refuted(self, res) -> np.ndarray:
        return np.any(res.lower > TOL * (1.0 + res.scale), axis=1)

    def bound(self, splits, alphas, betas, iters: int):
        """beta-CROWN on the domains; returns (result, pre, empty).  The pre-activation bounds are the root's
        clamped by the splits: recomputing them per domain (batched CROWN) needed 17-85 % fewer domains on
        mnistfc but cost more time than it saved."""
        pre, empty = self._pre(splits)
        lo, hi = self._boxes(splits[0].shape[0])

        budget = self.task.budget

        def done(idx, low):
            if budget.expired():  # every iterate is sound: stop at the deadline with the best so far
                return np.ones(idx.size, dtype=bool)
            return np.any(low > 1e-6, axis=1)

        res = beta_crown(self.net, lo, hi, self.C, self.cb, pre, splits,
                         None if alphas is None else [a.astype(np.float64) for a in alphas],
                         None if betas is None else [b.astype(np.float64) for b in betas],
                         iters=iters, done=done)
        return res, pre, empty

    def choose(self, res, pre, splits) -> tuple[np.ndarray, np.ndarray]:
        """Per domain the (layer, neuron) to split: the largest intercept score ``max(-c, 0) u (-l) / (u - l)``
        (``c``: backward coefficient on the neuron's output in the domain's best row), ties broken by
        ``|c| min(u, -l)``; layer -1 = no unstable neuron left.  (Filtered smart branching with one CROWN
        evaluation per candidate, and a score from the bound's minimiser, needed more domains on mnistfc.)"""
        B = splits[0].shape[0]
        row = np.argmax(res.lower, axis=1)
        b = np.arange(B)
        scores = []
        for j, (l, u) in enumerate(pre):
            c = res.coefs[j][b, row]  # (B, n_j) coefficient on the activation output
            unst = (l < 0) & (u > 0)
            width = np.where(unst, u - l, 1.0)
            inter = np.maximum(-c, 0.0) * (u * -l) / width
            tie = 1e-4 * np.abs(c) * np.minimum(u, -l)
            scores.append(np.where(unst, inter + tie + 1e-12, -np.inf))
        flat = np.concatenate(scores, axis=1)
        offs = np.cumsum([0] + [sc.shape[1] for sc in scores])
        top = np.argmax(flat, axis=1)
        layer = np.searchsorted(offs, top, side="right") - 1
        layer = np.where(np.isfinite(flat[b, top]), layer, -1)
        return layer, top - offs[np.maximum(layer, 0)]

    def leaf(self, pre, splits, i: int, node: int = 0) -> Outcome:
        """Domain ``i`` with no unstable neuron left: the rows are affine on it.  One LP (HiGHS) over the box
        and the split constraints; its duals, used as the rows' weights and the split multipliers of one
        beta-CROWN evaluation, refute it soundly; otherwise its minimiser is screened, and Z3 decides what
        is left (the domain's clamped pre-activation bounds asserted)."""
        task = self.task
        task.stats.add("lp_leaves")
        one = [(l[i:i + 1], u[i:i + 1]) for l, u in pre]
        sp = [s[i:i + 1] for s in splits]
        try:
            lp = leaf_lp(self.net, self.lo, self.hi, self.C, self.cb, one, sp)
        except UnsupportedLayerError:  # a layer too large for dense matrices (big CNN): no exact leaf
            task.stats.add("undecided_leaves")
            return Outcome.undecided(unresolved=1)
        if lp is not None and lp[0] == "empty":
            top, mag = empty_margin(self.net, self.lo, self.hi, one, sp, lp[1])
            if top < -TOL * (1.0 + mag):
                if self.log is not None:
                    self.log.leaf[node] = ("lp", np.zeros(self.C.shape[0]), lp[1])
                return REFUTED
        elif lp is not None:
            _, w, mu, x = lp
            lo, hi = self._boxes(1)
            betas = [m[None, None, :] for m in mu]
            res = beta_crown(self.net, lo, hi, (w @ self.C)[None], np.array([w @ self.cb]), one, sp, betas=betas, iters=1)
            if self._refuted(res)[0]:
                if self.log is not None:
                    self.log.leaf[node] = ("lp", w, mu)
                return REFUTED
            found = task.screen(x[None, :])[1]
            if found is not None:
                return Outcome.counterexample(found)
        out = z3_leaf(task, self.lo, self.hi, [(l[0], u[0]) for l, u in one], self.k)
        if out.refuted and self.log is not None:
            self.log.leaf[node] = ("z3",)
        if not (out.refuted or out.found) and task.budget.expired():
            return Outcome.undecided(reason="timeout")
        return out

    def run(self) -> Outcome:
        task = self.task
        if not self.root_pre:  # an affine network: one leaf
            return self.leaf([], [], 0, 0)
        L = len(self.root_pre)
        zeros = [np.zeros((1, l.shape[-1]), dtype=np.int8) for l, _ in self.root_pre]
        res, pre, _ = self.bound(zeros, None, None, ROOT_ITERS)
        task.stats.set("root_lower", min(task.stats.get("root_lower", np.inf), float(res.lower.max())))
        if self._refuted(res)[0]:
            if self.log is not None:
                self.log.refuted(np.zeros(1, dtype=np.int64), res, pre, np.zeros(1, dtype=bool))
            return REFUTED
        found = task.screen(res.x[0])[1]
        if found is not None:
            return Outcome.counterexample(found)
        lay, neu = self.choose(res, pre, zeros)
        open_ = _Domains(zeros, [a.astype(np.float32) for a in res.alphas], [b.astype(np.float32) for b in res.betas],
                         res.lower.max(axis=1), np.zeros(1, dtype=int), lay, neu, np.zeros(1, dtype=np.int64))
        unresolved = 0
        batch = int(np.clip(ENTRIES_PER_BATCH // max(1, _neurons(self.net)), 1, DOMAIN_BATCH))
        while len(open_):
            if task.budget.expired():
                return Outcome.undecided(reason="timeout")
            par = open_.take(batch)
            lay, neu = par.layer, par.neuron
            leaf = lay < 0
            for i in np.flatnonzero(leaf):
                one = [s[i:i + 1] for s in par.splits]
                out = self.leaf(self._pre(one)[0], one, 0, int(par.node[i]))
                if out.found or out.stops:
                    return out
                unresolved += out.unresolved
            go = np.flatnonzero(~leaf)
            if go.size == 0:
                continue
            n = go.size
            kids_s = []
            for j in range(L):
                s = np.concatenate([par.splits[j][go], par.splits[j][go]])
                sel = np.flatnonzero(lay[go] == j)
                s[sel, neu[go][sel]] = 1
                s[n + sel, neu[go][sel]] = -1
                kids_s.append(s)
            kids_a = [np.concatenate([a[go], a[go]]) for a in par.alphas]
            kids_b = [np.concatenate([b[go], b[go]]) for b in par.betas]
            depth = np.concatenate([par.depth[go], par.depth[go]]) + 1
            task.stats.add("domains", 2 * n)
            res, pre, empty = self.bound(kids_s, kids_a, kids_b, ITERS)
            alive = ~(empty | self._refuted(res))
            node = np.zeros(2 * n, dtype=np.int64)
            if self.log is not None:  # children: z >= 0 (the first n), then z <= 0
                node = self.log.split(par.node[go], lay[go], neu[go])
                dead = np.flatnonzero(~alive)
                self.log.refuted(node[dead], res, pre, empty[dead], dead)
            idx = np.flatnonzero(alive)
            if idx.size:
                X = res.x[idx].reshape(-1, self.lo.size)
                found = task.screen(X)[1]
                if found is not None:
                    return Outcome.counterexample(found)
                k_lay, k_neu = self.choose(res, pre, kids_s)
                open_.push(_Domains([s[idx] for s in kids_s], [a[idx].astype(np.float32) for a in res.alphas],
                                    [b[idx].astype(np.float32) for b in res.betas], res.lower[idx].max(axis=1),
                                    depth[idx], k_lay[idx], k_neu[idx], node[idx]))
            task.stats.set("open_domains", len(open_))
            if open_.nbytes() > MEMORY_BYTES:
                return Outcome.undecided(reason="domain limit (memory)")
        return REFUTED if unresolved == 0 else Outcome.undecided(unresolved=unresolved)


def _affine_maps(net, pre: list) -> list:
    """Pre-activations ``z_j = A_j x + a_j`` of a net whose neurons are all stable under ``pre`` (one domain:
    arrays ``(1, n_j)``): the activation pattern is fixed, so each layer is affine in ``x``."""
    layers = net.affine_layers
    A = layers[0].as_matrix()
    a = layers[0].bias.copy()
    out = []
    for j, act in enumerate(net.activations):
        out.append((A, a))
        l = pre[j][0][0]
        slope = np.where(l >= 0, 1.0, act.two_piece_slope)
        W = layers[j + 1].as_matrix()
        A = W @ (slope[:, None] * A)
        a = W @ (slope * a) + layers[j + 1].bias
    out.append((A, a))
    return out


def _split_rows(maps: list, splits: list):
    """The split constraints ``s z_j(x) >= 0`` of one domain as rows ``G x + g >= 0`` and their positions."""
    G, g, idx = [], [], []
    for j, s in enumerate(splits):
        k = np.flatnonzero(s[0])
        idx.append(k)
        if k.size:
            A, a = maps[j]
            sg = s[0, k].astype(np.float64)
            G.append(sg[:, None] * A[k])
            g.append(sg * a[k])
    n = maps[0][0].shape[1]
    return (np.vstack(G) if G else np.zeros((0, n))), (np.concatenate(g) if g else np.zeros(0)), idx


def _per_layer(vals: np.ndarray, idx: list, splits: list) -> list:
    out, pos = [], 0
    for k, s in zip(idx, splits):
        m = np.zeros(s.shape[1])
        m[k] = vals[pos:pos + k.size]
        pos += k.size
        out.append(m)
    return out


def leaf_lp(net, lo, hi, C, cb, pre: list, splits: list):
    """LP of a fully stable domain: ``min t`` over ``x`` in the box with ``C f(x) + cb <= t`` and the split
    constraints ``s z_j(x) >= 0``.  Returns ``("lp", w, mu, x)``: dual weights of the rows (summing to 1), the
    multipliers of the split constraints per layer (``(n_j,)``, 0 where unsplit) and the minimiser; when HiGHS
    finds the constraints infeasible, ``("empty", mu)`` with multipliers of the split constraints whose
    weighted sum is negative on the whole box (:func:`empty_margin` checks it); ``None`` if HiGHS fails.
    Nothing here is trusted: callers check the duals through a sound bound."""
    from scipy.optimize import linprog  # scipy is imported only when a leaf LP is solved

    maps = _affine_maps(net, pre)
    F, f0 = maps[-1]
    G, g, idx = _split_rows(maps, splits)
    R, n = C.shape[0], lo.size
    A_ub = np.vstack([np.hstack([C @ F, -np.ones((R, 1))]), np.hstack([-G, np.zeros((G.shape[0], 1))])])
    b_ub = np.concatenate([-(C @ f0 + cb), g])
    cost = np.zeros(n + 1)
    cost[-1] = 1.0
    box = list(zip(lo.tolist(), hi.tolist()))
    res = linprog(cost, A_ub=A_ub, b_ub=b_ub, bounds=box + [(None, None)], method="highs")
    if res.status == 2 and G.shape[0]:
        # infeasible: max tau s.t. G x + g >= tau (tau <= 1); a negative optimum's duals prove emptiness
        ph = linprog(-cost, A_ub=np.hstack([-G, np.ones((G.shape[0], 1))]), b_ub=g,
                     bounds=box + [(None, 1.0)], method="highs")
        if ph.status != 0 or not ph.x[-1] < 0:
            return None
        mu = np.maximum(-ph.ineqlin.marginals, 0.0)
        return ("empty", _per_layer(mu, idx, splits)) if mu.sum() > 0 else None
    if res.status != 0:
        return None
    dual = np.maximum(-res.ineqlin.marginals, 0.0)
    total = dual[:R].sum()
    if not total > 0:
        return None
    return "lp", dual[:R] / total, _per_layer(dual[R:] / total, idx, splits), res.x[:n]


def empty_margin(net, lo, hi, pre: list, splits: list, mu: list) -> tuple[float, float]:
    """``(max, scale)``: the maximum over the box of ``sum_j mu_j · s_j z_j(x)`` for a fully stable domain
    (its pre-activations affine in ``x``) and the magnitude of the terms; a maximum below
    ``-TOL * (1 + scale)`` proves that no point of the box meets the split constraints (the domain is empty)."""
    maps = _affine_maps(net, pre)
    v = np.zeros(lo.size)
    c = 0.0
    mag = 0.0
    for (A, a), s, m in zip(maps, splits, mu):
        w = m * s[0]
        v = v + w @ A
        c += float(w @ a)
        mag += float(np.abs(w) @ np.abs(a))
    top = c + float(np.maximum(v * lo, v * hi).sum())
    return top, mag + float(np.abs(v) @ np.maximum(np.abs(lo), np.abs(hi)))


def _root_bounds(task: Task) -> list:
    """Pre-activation bounds of the whole box: batched CROWN (those of the root bound of the verifier's earlier
    stage when it computed them), tightened by alpha-CROWN on nets with at most ``ALPHA_ROOT_NEURONS``
    neurons (its cost grows with the square of the width; it has no deadline)."""
    lo, hi = task.region.lower[None, :], task.region.upper[None, :]
    pre = task.cache.get("root_pre")
    if pre is None:
        pre = incremental_crown(task.net, lo, hi)
    if task.budget.expired() or _neurons(task.net) > ALPHA_ROOT_NEURONS:
        return [(l, u) for l, u in pre]
    lb = crown_layers(task.net, lo, hi, alpha=True, final=False, prior=list(pre))
    pre = [(l, u) for l, u in lb.pre]
    dense = all(isinstance(a, Dense) for a in task.net.affine_layers)
    deep = len(pre) >= LP_MIN_LAYERS
    on = LP_REFINE == "on" or (LP_REFINE == "auto" and dense and deep and task.net.in_dim > LP_MIN_INPUTS)
    if not on or len(pre) < 2 or task.budget.expired():
        return pre
    try:
        return _lp_refine(task, pre)
    except UnsupportedLayerError:  # a layer too large for a dense matrix
        return pre


def _unstable(pre: list) -> int:
    return int(sum(((l < 0) & (u > 0)).sum() for l, u in pre))


def _lp_refine(task: Task, pre: list) -> list:
    """Certified LP bounds (:mod:`verification.bounds.lp_refine`) for the ``LP_NEURONS`` most unstable
    neurons of each layer after the first, layer by layer, within ``LP_TIME_FRACTION`` of the time left;
    after each layer CROWN re-bounds the later ones from the refined bounds (intersected: never looser)."""
    lo, hi = task.region.lower[None, :], task.region.upper[None, :]
    start = time.monotonic()
    deadline = start + LP_TIME_FRACTION * task.budget.remaining()

    def again(p: list) -> list:
        return [(l, u) for l, u in crown_layers(task.net, lo, hi, final=False, prior=list(p)).pre]

    task.stats.set("unstable_before_lp", _unstable(pre))
    out, lps = refine_bounds(task.net, lo[0], hi[0], pre, LP_NEURONS, deadline, again, LP_DEPTH)
    task.stats.set("lp_bounds", lps)
    task.stats.set("lp_seconds", round(time.monotonic() - start, 2))
    return out


def _neurons(net) -> int:
    return int(sum(a.out_features for a in net.affine_layers[:-1]))


def relu_bab(task: Task) -> Outcome:
    """Decide the task's region by ReLU-splitting branch and bound (see the module docstring)."""
    if task.budget.expired():
        return Outcome.undecided(reason="timeout")
    pre = _root_bounds(task)
    if task.budget.expired():
        return Outcome.undecided(reason="timeout")
    n_unstable = int(sum(((l < 0) & (u > 0)).sum() for l, u in pre))
    task.stats.set("unstable_after_bounds", n_unstable)
    unresolved = 0
    for k in range(task.K):
        rows = np.flatnonzero(task.grp == k)
        if rows.size == 0:  # an empty conjunction: every output is unsafe; the attack finds it
            x = task.screen(((task.region.lower + task.region.upper) / 2)[None, :])[1]
            if x is not None:
                return Outcome.counterexample(x)
            return Outcome.undecided(unresolved=1)
        out = _Search(task, k, pre).run()
        if out.stops:
            return out
        unresolved += out.unresolved
    return REFUTED if unresolved == 0 else Outcome.undecided(unresolved=unresolved)
