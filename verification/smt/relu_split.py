"""ReLU splitting: bound the whole box, then hand the region to Z3, whose DPLL(T) search splits the
neurons the bounds leave unstable (stable neurons are encoded as linear terms)."""

from __future__ import annotations

import numpy as np

from verification.bounds.batched import spec_bounds
from verification.smt.encode import z3_decide
from verification.smt.outcome import REFUTED, Outcome
from verification.smt.task import TOL, Task

__all__ = ["relu_split"]


def relu_split(task: Task, use_bounds: bool = True) -> Outcome:
    """Decide the region with Z3 on the exact encoding; with ``use_bounds``, disjuncts refuted by bounds on
    the whole box are dropped first and the pre-activation bounds are asserted (``False``: plain Z3).
    Refuted, a counterexample, one unresolved leaf (Z3 unknown or a boundary model), or a timeout."""
    net, region = task.net, task.region
    C, cb, grp, K = task.C, task.cb, task.grp, task.K
    alive = np.ones(K, dtype=bool)
    pre = None
    if use_bounds:
        sb = spec_bounds(net, region.lower[None, :], region.upper[None, :], C, cb, method=task.options.intermediate)
        if C.shape[0]:
            g = sb.guarded(TOL)
            dk = np.array([g[0, grp == k].max() if (grp == k).any() else -np.inf for k in range(K)])
            alive = ~(dk > 0)
        pre = [(l[0], u[0]) for l, u in sb.pre]
        task.stats.set("unstable_after_bounds", int(sb.unstable_counts()[0]) if sb.pre else 0)
    outs = [region.outputs[k] for k in np.flatnonzero(alive)]
    if not outs:
        return REFUTED
    task.stats.add("z3_leaves")
    status, val = z3_decide(net, region.lower, region.upper, outs, pre, timeout=task.budget.remaining(), region=region)
    if status == "unsat":
        return REFUTED
    if status == "sat":
        found = task.screen(val[None, :])[1]
        return Outcome.undecided(unresolved=1) if found is None else Outcome.counterexample(found)
    if task.budget.expired() or val in ("timeout", "canceled"):
        return Outcome.undecided(reason="timeout")
    return Outcome.undecided(unresolved=1)
