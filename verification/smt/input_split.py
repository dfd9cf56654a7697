"""Input splitting: branch and bound over sub-boxes of a region, bounded in batches.

Boxes are bounded with :func:`~verification.bounds.batched.spec_bounds` (incremental CROWN that reuses the
parent box's pre-activation bounds, plus one backward pass for the specification rows); a disjunct is
refuted on a box when some row's guarded lower bound is ``> 0``.  Boxes CROWN leaves open with at most
``alpha_unstable`` unstable neurons get alpha-CROWN on the specification rows first.  Every bounded box's
centre and bound minimiser are screened as counterexamples, and the :class:`~verification.smt.attack.AttackPool`
attacks the most promising boxes now and then.  Boxes with few unstable neurons go to the exact leaves
(:mod:`verification.smt.leaves`); the others are bisected along the coordinate maximising
``|c_i| + max|c| * r_i / max r`` (``c``: coefficients of the hardest row's linear lower bound in the
normalised input, ``r``: half widths).  Boxes are kept on a depth-first stack of :class:`BoxBatch`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verification.bounds.batched import alpha_spec_bounds, spec_bounds
from verification.bounds.types import DeadlineReached, SpecBounds
from verification.smt.attack import AttackPool
from verification.smt.leaves import lp_leaf, milp_leaf, pattern_leaf_outcome, z3_leaf
from verification.smt.outcome import REFUTED, Outcome
from verification.smt.task import TOL, Task

__all__ = ["BoxBatch", "BoxStack", "input_split", "root_refuted", "root_batch"]


@dataclass
class BoxBatch:
    """Boxes ``[lower[b], upper[b]]`` (``(n, d)``) with their search state: ``alive[b, k]``: disjunct k not yet
    refuted on box b; ``spec_lower[b, r]``: guarded lower bound of row r (the parent's, valid on the child);
    ``prior``: per activation ``(l, u)`` arrays ``(n, width)`` of pre-activation bounds known to hold on the
    box (the parent's), or ``None`` when bounds are not reused; ``node``: the boxes' ids in the proof log
    (:class:`~verification.smt.proof.ProofLog`; zeros when no proof is recorded)."""

    lower: np.ndarray
    upper: np.ndarray
    alive: np.ndarray
    spec_lower: np.ndarray
    prior: list | None
    node: np.ndarray

    def __len__(self) -> int:
        return self.lower.shape[0]

    def select(self, idx) -> "BoxBatch":
        """The boxes ``idx`` (a slice or an index array)."""
        prior = None if self.prior is None else [(l[idx], u[idx]) for l, u in self.prior]
        return BoxBatch(self.lower[idx], self.upper[idx], self.alive[idx], self.spec_lower[idx], prior,
                        self.node[idx])

    @classmethod
    def concat(cls, parts: list["BoxBatch"]) -> "BoxBatch":
        """The boxes of ``parts`` in order (new arrays)."""
        prior = None
        if parts[0].prior is not None:
            prior = [(np.vstack([p.prior[j][0] for p in parts]), np.vstack([p.prior[j][1] for p in parts]))
                     for j in range(len(parts[0].prior))]
        return cls(np.vstack([p.lower for p in parts]), np.vstack([p.upper for p in parts]),
                   np.vstack([p.alive for p in parts]), np.vstack([p.spec_lower for p in parts]), prior,
                   np.concatenate([p.node for p in parts]))


class BoxStack:
    """Depth-first stack of box batches; :meth:`pop` takes up to ``n`` boxes from the top (siblings are
    bounded together; a partly taken batch leaves its remaining boxes on the stack)."""

    def __init__(self, root: BoxBatch):
        self._parts = [root]

    def __bool__(self) -> bool:
        return bool(self._parts)

    def push(self, batch: BoxBatch) -> None:
        self._parts.append(batch)

    def pop(self, n: int) -> BoxBatch:
        parts, count = [], 0
        while self._parts and count < n:
            part = self._parts.pop()
            take = min(n - count, len(part))
            if take < len(part):  # leave the rest of this part on the stack
                self._parts.append(part.select(slice(take, None)))
                part = part.select(slice(0, take))
            parts.append(part)
            count += take
        return BoxBatch.concat(parts)


@dataclass(frozen=True)
class _Bounds:
    """Bounds of the boxes of a batch: ``spec`` the specification rows' linear lower bounds and pre-activation
    bounds (the better of CROWN and alpha-CROWN per row), ``lb`` their guarded values (refuted where ``> 0``,
    including the parent's), ``unstable`` the boxes' unstable-neuron counts."""

    spec: SpecBounds
    lb: np.ndarray
    unstable: np.ndarray

    def select(self, idx) -> "_Bounds":
        return _Bounds(self.spec.take(idx), self.lb[idx], self.unstable[idx])


def _has_empty_rows(task: Task) -> bool:
    return task.C.shape[0] == 0 or any(oc.A.shape[0] == 0 for oc in task.region.outputs)


def root_refuted(task: Task) -> bool:
    """True if bounds on the whole box already refute every disjunct of the region (a proof)."""
    if _has_empty_rows(task):
        return False
    region = task.region
    try:  # on large nets (a CIFAR ResNet) this alone can take longer than the timeout
        sb = spec_bounds(task.net, region.lower[None, :], region.upper[None, :], task.C, task.cb,
                         method=task.options.intermediate, deadline=task.budget.deadline)
    except DeadlineReached:
        return False
    task.cache["root_pre"] = sb.pre
    task.stats.add("boxes")
    g = sb.guarded(TOL)
    return all(g[0, task.grp == k].max() > 0 for k in range(task.K))


def root_batch(task: Task, lower: np.ndarray, upper: np.ndarray, alive: np.ndarray | None = None) -> BoxBatch:
    """Boxes ``lower[b], upper[b]`` (``(n, d)``) of the task's region as a fresh :class:`BoxBatch` (no bounds
    known yet; ``alive``: the disjuncts not yet refuted per box, default all)."""
    n = lower.shape[0]
    prior = None
    if task.options.intermediate == "incremental":
        prior = [(np.full((n, a.out_features), -np.inf), np.full((n, a.out_features), np.inf))
                 for a in task.net.affine_layers[:len(task.net.activations)]]
    alive = np.ones((n, task.K), dtype=bool) if alive is None else np.array(alive, dtype=bool).reshape(n, task.K)
    return BoxBatch(np.array(lower, dtype=np.float64).reshape(n, -1), np.array(upper, dtype=np.float64).reshape(n, -1),
                    alive, np.full((n, task.C.shape[0]), -np.inf), prior, np.zeros(n, dtype=np.int64))


def input_split(task: Task, *, root: BoxBatch | None = None, left: list | None = None) -> Outcome:
    """Branch and bound on the region's box (see the module docstring).  Refuted when every box is done
    with no leaf given up; a counterexample; undecided with the number of unresolved leaves; or undecided
    with reason ``"timeout"`` / ``"box limit"``.

    Hooks for distributed branch and bound (:mod:`verification.batch.distributed`): ``root`` starts from
    these boxes (sub-boxes of the region, e.g. from :func:`root_batch`) instead of the region's box; with a
    list ``left``, the box limit appends the boxes not yet decided (:class:`BoxBatch` parts) to it, so
    that the work can be continued elsewhere."""
    net, region, opts = task.net, task.region, task.options
    if _has_empty_rows(task):
        found = task.screen(((region.lower + region.upper) / 2)[None, :])[1]  # any point is unsafe
        if found is not None:
            return Outcome.counterexample(found)
    use_prior = opts.intermediate == "incremental"
    use_alpha = opts.alpha_unstable > 0 and task.facts.two_piece and opts.intermediate != "ibp"
    n_act = len(net.activations)
    prior = [(np.full((1, a.out_features), -np.inf), np.full((1, a.out_features), np.inf))
             for a in net.affine_layers[:n_act]] if use_prior else None
    if task.proof is not None:
        task.proof.reset()
    stack = BoxStack(root if root is not None else
                     BoxBatch(region.lower[None, :].copy(), region.upper[None, :].copy(),
                              np.ones((1, task.K), dtype=bool), np.full((1, task.C.shape[0]), -np.inf), prior,
                              np.zeros(1, dtype=np.int64)))
    pool = AttackPool()
    width = np.where(region.upper > region.lower, region.upper - region.lower, 1.0)
    unresolved = 0
    while stack:
        if task.budget.expired():
            return Outcome.undecided(reason="timeout")
        boxes = stack.pop(opts.batch)
        task.stats.add("boxes", len(boxes))
        # volume of the boxes bounded, minus what is split below
        task.stats.add("volume_done", float(np.prod((boxes.upper - boxes.lower) / width, axis=1).sum()))
        if task.budget.boxes_exceeded(task.stats["boxes"]):
            if left is not None:  # hand the undecided boxes back (this batch has not been bounded yet)
                left.append(boxes)
                while stack:
                    left.append(stack.pop(1 << 30))
            return Outcome.undecided(reason="box limit")
        bounds = _bound(task, boxes, use_alpha)
        boxes.prior = None  # superseded by the boxes' own bounds.spec.pre
        keep = boxes.alive.any(axis=1)
        if not keep.any():
            continue
        boxes, bounds = boxes.select(keep), bounds.select(keep)
        found, rows, cm = _screen_boxes(task, boxes, bounds, pool)
        if found is not None:
            return Outcome.counterexample(found)
        outcome, split = _leaves(task, boxes, bounds)
        if outcome.stops:
            return outcome
        unresolved += outcome.unresolved
        idx = np.flatnonzero(split)
        if idx.size == 0:
            continue
        task.stats.add("volume_done", -float(np.prod((boxes.upper[idx] - boxes.lower[idx]) / width, axis=1).sum()))
        # most promising boxes (smallest sampled margin) first: their children are bounded next
        idx = idx[np.argsort(cm[idx], kind="stable")]
        stack.push(_bisect(boxes.select(idx), bounds.select(idx), rows[idx], use_prior, task.proof))
    return REFUTED if unresolved == 0 else Outcome.undecided(unresolved=unresolved)


def _bound(task: Task, boxes: BoxBatch, use_alpha: bool) -> _Bounds:
    """Bound the specification rows on every box (CROWN, then alpha-CROWN on the boxes left open with few
    unstable neurons); the disjuncts refuted are cleared from ``boxes.alive``."""
    lo, hi = boxes.lower, boxes.upper
    sb = spec_bounds(task.net, lo, hi, task.C, task.cb, method=task.options.intermediate, prior=boxes.prior)
    # the parent's guarded bound holds on the child box too
    lb = np.maximum(sb.guarded(TOL), boxes.spec_lower)
    boxes.alive &= ~(task.disjunct_bounds(lb) > 0)
    coef, low, scale = sb.coef, sb.lower, sb.scale
    unstable = sb.unstable_counts()
    if use_alpha:
        sel = np.flatnonzero(boxes.alive.any(axis=1) & (unstable <= task.options.alpha_unstable))
        if sel.size:
            task.stats.add("alpha_boxes", sel.size)
            grp, K = task.grp, task.K
            al_sel = boxes.alive[sel]

            def refuted(idx, low, sc=sb.scale[sel]):
                g = low - TOL * (1.0 + sc[idx])  # the alpha iterates' scale is close to CROWN's
                return np.all([~al_sel[idx, k] | (g[:, grp == k].max(axis=1) > 0) for k in range(K)], axis=0)

            ab = alpha_spec_bounds(task.net, lo[sel], hi[sel], task.C, task.cb, [(l[sel], u[sel]) for l, u in sb.pre],
                                   iters=task.options.alpha_iters, done=refuted)
            ga = ab.guarded(TOL)
            better = ga > lb[sel]
            lb[sel] = np.where(better, ga, lb[sel])
            coef, low, scale = coef.copy(), low.copy(), scale.copy()
            coef[sel] = np.where(better[..., None], ab.coef, coef[sel])
            low[sel] = np.where(better, ab.lower, low[sel])
            scale[sel] = np.where(better, ab.scale, scale[sel])
            boxes.alive &= ~(task.disjunct_bounds(lb) > 0)
    return _Bounds(SpecBounds(low, coef, tuple(sb.pre), scale), lb, unstable)


def _screen_boxes(task: Task, boxes: BoxBatch, bounds: _Bounds, pool: AttackPool):
    """Screen each box's centre and the minimiser of the hardest row of its easiest disjunct, feed the
    attack pool and let it attack.  Returns (a counterexample or ``None``, hardest row per box, smallest
    sampled margin per box)."""
    n = len(boxes)
    cen, rad = (boxes.upper + boxes.lower) / 2, (boxes.upper - boxes.lower) / 2
    dk = task.disjunct_bounds(bounds.lb)
    kk = np.argmin(np.where(boxes.alive, dk, np.inf), axis=1)
    rows = np.empty(n, dtype=int)
    for k in range(task.K):
        idx = np.flatnonzero(task.grp == k)
        rk = idx[np.argmax(bounds.lb[:, idx], axis=1)]
        rows = np.where(kk == k, rk, rows)
    vert = cen - rad * np.sign(bounds.spec.coef[np.arange(n), rows])
    mc, found = task.screen(np.vstack([cen, vert]))
    if found is not None:
        return found, rows, None
    cm = np.minimum(mc[:n], mc[n:])  # an upper bound on the box's smallest margin
    pool.add(cm, boxes.lower, boxes.upper)
    return pool.maybe_attack(task), rows, cm


def _leaves(task: Task, boxes: BoxBatch, bounds: _Bounds) -> tuple[Outcome, np.ndarray]:
    """Decide the boxes that go to exact leaves (disjuncts decided are cleared from ``boxes.alive``).
    Returns (outcome: a counterexample, a timeout, or undecided with the leaves given up; which boxes to
    split further)."""
    opts, facts, grp = task.options, task.facts, task.grp
    lo, hi, alive, unstable = boxes.lower, boxes.upper, boxes.alive, bounds.unstable
    n = len(boxes)
    cen, rad = (hi + lo) / 2, (hi - lo) / 2
    tiny = (rad.max(axis=1) <= 1e-10 * (1.0 + np.abs(cen).max(axis=1)))
    split = np.ones(n, dtype=bool)
    unresolved = 0
    few = (unstable <= opts.leaf_unstable) if facts.two_piece else (unstable == 0)
    pat = ((unstable >= 1) & (unstable <= opts.pattern_unstable) & ~tiny & ~few if facts.two_piece
           else np.zeros(n, bool))
    for i in np.flatnonzero(pat):
        if task.budget.expired():
            return Outcome.undecided(reason="timeout"), split
        pre = [(l[i], u[i]) for l, u in bounds.spec.pre]
        for k in np.flatnonzero(alive[i]):
            tol = TOL * (1.0 + bounds.spec.scale[i, grp == k].max())
            out = pattern_leaf_outcome(task, lo[i], hi[i], pre, k, tol)
            if out.found:
                return out, split
            if out.refuted:
                alive[i, k] = False
                _exact(task, boxes, i, k, "pattern")
        split[i] = bool(alive[i].any())
    for i in np.flatnonzero(few | tiny):
        if task.budget.expired():
            return Outcome.undecided(reason="timeout"), split
        pre = [(l[i], u[i]) for l, u in bounds.spec.pre]
        for k in np.flatnonzero(alive[i]):
            idx = np.flatnonzero(grp == k)
            if unstable[i] == 0:
                # the backward bound is exact when nothing is unstable: value = lower + |G|.sum
                Gk = bounds.spec.coef[i, idx]
                hk = bounds.spec.lower[i, idx] + np.abs(Gk).sum(axis=1)
                out = lp_leaf(task, lo[i], hi[i], Gk, hk, pre, k, TOL * (1.0 + bounds.spec.scale[i, idx].max()),
                              node=int(boxes.node[i]))
            elif few[i] and not tiny[i]:
                out = milp_leaf(task, lo[i], hi[i], pre, k)
                if out.found:
                    return out, split
                if out.refuted:
                    alive[i, k] = False
                    _exact(task, boxes, i, k, "milp")
                continue  # undecided disjuncts stay alive and the box is split further
            else:
                out = z3_leaf(task, lo[i], hi[i], pre, k)
                if out.refuted:
                    _exact(task, boxes, i, k, "z3")
            if out.found:
                return out, split
            unresolved += out.unresolved
            alive[i, k] = False  # refuted, or given up (the final answer will be "unknown")
        split[i] = bool(alive[i].any())
    return Outcome.undecided(unresolved=unresolved), split


def _exact(task: Task, boxes: BoxBatch, i: int, k: int, solver: str) -> None:
    """Note in the proof log that ``solver`` refuted disjunct ``k`` on box ``i``."""
    if task.proof is not None:
        task.proof.exact[(int(boxes.node[i]), int(k))] = solver


def _bisect(boxes: BoxBatch, bounds: _Bounds, rows: np.ndarray, use_prior: bool, log=None) -> BoxBatch:
    """Children of the boxes, interleaved (parent order kept, so a partial pop takes the best parents'
    children), each box halved along its split dimension.

    The dimension maximises the |coefficient| of the bound's linear function (sensitivity x half-width) plus
    a width term of the same scale, ``|c_i| + max_j |c_j| * r_i / max_j r_j``.  The coefficient alone keeps
    halving a short, sensitive side while the looseness comes from unstable neurons spread over the long
    sides; the mix cut the boxes needed on ACAS Xu prop_1 by 5-70x (e.g. 3_3/prop_1: >30 s -> 116 boxes)."""
    lo, hi = boxes.lower, boxes.upper
    m = lo.shape[0]
    rad = (hi - lo) / 2
    score = np.abs(bounds.spec.coef[np.arange(m), rows])
    smax = score.max(axis=1, keepdims=True)
    score = np.where(smax > 0, score + smax * rad / np.maximum(rad.max(axis=1, keepdims=True), 1e-300), rad)
    dim = np.argmax(score, axis=1)
    mid = (lo[np.arange(m), dim] + hi[np.arange(m), dim]) / 2
    lo2, hi2 = lo.copy(), hi.copy()
    hi = hi.copy()
    hi[np.arange(m), dim] = mid
    lo2[np.arange(m), dim] = mid
    prior = [(_pair(l, l), _pair(u, u)) for l, u in bounds.spec.pre] if use_prior else None
    node = np.zeros(2 * m, dtype=np.int64) if log is None else log.split(boxes.node, dim, mid)
    return BoxBatch(_pair(lo, lo2), _pair(hi, hi2), _pair(boxes.alive, boxes.alive), _pair(bounds.lb, bounds.lb),
                    prior, node)


def _pair(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rows a_0, b_0, a_1, b_1, ..."""
    return np.stack([a, b], axis=1).reshape((2 * a.shape[0],) + a.shape[1:])
