"""Exact leaves of input splitting: a box (or one disjunct on it) decided without further splitting.

* :func:`lp_leaf` -- all neurons stable: the rows are affine on the box; one LP
  (:func:`~verification.smt.lp.min_max_affine`) whose duals give a float64-checked bound
  (:func:`~verification.smt.lp.certified_box_margin`); not refuted -> the LP minimiser is screened and Z3
  decides;
* :func:`milp_leaf` -- opt-in (``leaf_unstable``): a few unstable ReLU / leaky-ReLU neurons, one big-M MILP;
* :func:`pattern_leaf_outcome` -- opt-in (``pattern_unstable``): activation-pattern enumeration
  (:mod:`verification.smt._pattern`);
* :func:`z3_leaf` -- Z3 on the exact rational encoding (fully stable boxes the LP did not refute, tiny boxes).

Each returns an :class:`~verification.smt.outcome.Outcome`: refuted, a counterexample, undecided with one
unresolved leaf (the box is given up; the answer will be ``unknown``), or open (the box is split further).
"""

from __future__ import annotations

import numpy as np

from verification.smt._pattern import pattern_leaf
from verification.smt.encode import z3_decide
from verification.smt.lp import certified_box_margin, min_max_affine
from verification.smt.outcome import OPEN, REFUTED, Outcome
from verification.smt.task import Task

__all__ = ["lp_leaf", "milp_leaf", "pattern_leaf_outcome", "z3_leaf"]


def _screened(task: Task, X: np.ndarray, otherwise: Outcome) -> Outcome:
    found = task.screen(X)[1]
    return otherwise if found is None else Outcome.counterexample(found)


def lp_leaf(task: Task, lo, hi, G, h, pre, k: int, tol: float, node: int = 0) -> Outcome:
    """All neurons stable on ``[lo, hi]``: rows ``G e + h`` (normalised input ``e``) are exact (for other
    activations: a valid linear lower bound of the rows).  Refuted if the certified margin is ``> tol``;
    otherwise the LP minimiser is screened and Z3 decides disjunct ``k``.  ``node``: the box's id in the
    proof log, which keeps the LP's dual weights (``task.proof``)."""
    task.stats.add("lp_leaves")
    w, e = min_max_affine(G, h)
    if w is not None:
        if certified_box_margin(G, h, w) > tol:
            if task.proof is not None:
                task.proof.lp[(node, k)] = np.clip(np.asarray(w, dtype=np.float64), 0.0, None)
            return REFUTED
        cen, rad = (hi + lo) / 2, (hi - lo) / 2
        found = task.screen(cen + rad * e)[1]
        if found is not None:
            return Outcome.counterexample(found)
    out = z3_leaf(task, lo, hi, pre, k)
    if out.refuted and task.proof is not None:
        task.proof.exact[(node, k)] = "z3"
    return out


def milp_leaf(task: Task, lo, hi, pre, k: int) -> Outcome:
    """Exact leaf as one mixed-integer LP (HiGHS): inputs ``x`` in the box, one real output ``a_i`` and
    one binary ``delta_i`` per unstable neuron with the big-M encoding of ``a = max(z, alpha z)`` on
    ``[l, u]`` (``a >= z``, ``a >= alpha z``, ``a <= alpha z + (1 - alpha) u delta``,
    ``a <= z - (1 - alpha) l (1 - delta)``); stable neurons are linear.  Minimises ``t`` with
    ``A_k f(x) - b_k <= t``: refuted if infeasible or the optimum is ``> 1e-6``; otherwise the optimiser
    is screened and the outcome is open (the caller splits the box further; Z3 only sees boxes that are
    fully stable or tiny)."""
    from scipy.optimize import Bounds, LinearConstraint, milp  # scipy only when a MILP leaf is solved

    net, region = task.net, task.region
    layers, acts = net.affine_layers, net.activations
    # the MILP rows are built from each layer's dense matrix
    mats = [layer.as_matrix() for layer in layers]
    d = lo.size
    n_u = int(sum(((l < 0) & (u > 0)).sum() for l, u in pre))
    nv = d + 2 * n_u + 1  # x, a, delta, t
    task.stats.add("milp_leaves")
    H = np.zeros((d, nv))
    H[:, :d] = np.eye(d)
    h = np.zeros(d)
    rows, lb_r, ub_r = [], [], []
    col = d
    for j in range(len(acts)):
        Z, zc = mats[j] @ H, mats[j] @ h + layers[j].bias
        a = task.facts.slopes[j]
        l, u = pre[j]
        slope = np.where(l >= 0, 1.0, a)
        H, h = Z * slope[:, None], zc * slope
        for i in np.flatnonzero((l < 0) & (u > 0)):
            ai, di = col, col + n_u
            col += 1
            e_a = np.zeros(nv)
            e_a[ai] = 1.0
            e_d = np.zeros(nv)
            e_d[di] = 1.0
            # a - z >= c ; a - alpha z >= alpha c
            rows.append(e_a - Z[i]); lb_r.append(zc[i]); ub_r.append(np.inf)
            rows.append(e_a - a * Z[i]); lb_r.append(a * zc[i]); ub_r.append(np.inf)
            # a - alpha z - (1 - alpha) u delta <= alpha c
            rows.append(e_a - a * Z[i] - (1 - a) * u[i] * e_d); lb_r.append(-np.inf); ub_r.append(a * zc[i])
            # a - z - (1 - alpha) l delta <= c - (1 - alpha) l
            rows.append(e_a - Z[i] - (1 - a) * l[i] * e_d); lb_r.append(-np.inf); ub_r.append(zc[i] - (1 - a) * l[i])
            H[i] = e_a
            h[i] = 0.0
    P, p = mats[-1] @ H, mats[-1] @ h + layers[-1].bias
    oc = region.outputs[k]
    e_t = np.zeros(nv)
    e_t[-1] = 1.0
    for r in range(oc.A.shape[0]):  # A_r (P v + p) - b_r - t <= 0
        rows.append(oc.A[r] @ P - e_t); lb_r.append(-np.inf); ub_r.append(oc.b[r] - oc.A[r] @ p)
    lb_v = np.concatenate([lo, np.full(n_u, -np.inf), np.zeros(n_u), [-np.inf]])
    ub_v = np.concatenate([hi, np.full(n_u, np.inf), np.ones(n_u), [np.inf]])
    # outputs of unstable neurons lie in the activation's exact range on [l, u]
    ai = 0
    for j, act in enumerate(acts):
        l, u = pre[j]
        m = (l < 0) & (u > 0)
        al, au = act.interval(l[m][None, :], u[m][None, :])
        lb_v[d + ai:d + ai + m.sum()] = al[0]
        ub_v[d + ai:d + ai + m.sum()] = au[0]
        ai += int(m.sum())
    integrality = np.concatenate([np.zeros(d + n_u), np.ones(n_u), [0]])
    res = milp(e_t, constraints=LinearConstraint(np.array(rows), lb_r, ub_r), integrality=integrality,
               bounds=Bounds(lb_v, ub_v), options={"time_limit": max(0.01, min(task.budget.remaining(), 5.0))})
    if res.status == 2:  # infeasible
        return REFUTED
    if res.status == 0 and res.fun > 1e-6:
        return REFUTED
    if res.x is not None:
        return _screened(task, res.x[None, :d], OPEN)
    return OPEN


def pattern_leaf_outcome(task: Task, lo, hi, pre, k: int, tol: float) -> Outcome:
    """Disjunct ``k`` on the box by activation patterns: refuted, a counterexample (the LP minimiser of an
    undecided pattern, screened), or open."""
    task.stats.add("pattern_leaves")
    oc = task.region.outputs[k]
    refuted, cand = pattern_leaf(task.net.affine_layers, task.facts.slopes, pre, lo, hi, oc.A, oc.b, tol)
    if refuted:
        return REFUTED
    return OPEN if cand is None else _screened(task, cand, OPEN)


def z3_leaf(task: Task, lo, hi, pre, k: int) -> Outcome:
    """Disjunct ``k`` on the box by Z3 on the exact encoding (with the pre-activation bounds ``pre``): refuted
    (unsat), a counterexample (a model that screens as one), or one unresolved leaf (Z3 unknown, a model on
    the boundary that float64 does not reproduce, or a net without exact encoding)."""
    if not task.facts.exact:  # tanh / sigmoid: no exact encoding; the box stays undecided
        task.stats.add("undecided_leaves")
        return Outcome.undecided(unresolved=1)
    task.stats.add("z3_leaves")
    status, val = z3_decide(task.net, lo, hi, [task.region.outputs[k]], pre,
                            timeout=min(task.budget.remaining(), 60.0), region=task.region)
    if status == "unsat":
        return REFUTED
    if status == "sat":
        found = task.screen(val[None, :])[1]
        if found is not None:
            return Outcome.counterexample(found)
        task.stats.add("boundary_models")
    return Outcome.undecided(unresolved=1)
