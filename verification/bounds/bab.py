"""Branch-and-bound on unstable ReLU / leaky-ReLU neurons for local Lipschitz bounds (Shi et al. 2022, Sec. 4).

A domain is the input box plus sign constraints ``z_{j,i} <= 0`` or ``z_{j,i} >= 0`` on some pre-activations.
Each domain gets an upper bound of ``max ||c^T J(x)||_1`` over its points from the Jacobian bound
propagation (:mod:`verification.bounds.jacobian`) with pre-activation bounds recomputed under its
constraints (and intersected with its parent's).  Domains are kept best-first (largest bound first); a batch
of the worst domains is split at a time on the neuron with the largest relaxation score.

Pruning: a domain whose constraints contradict its bounds, or whose linear constraints (sign constraints of
layer ``j`` are linear in ``x`` once every neuron of layers ``< j`` is fixed) leave no region meeting the box
*interior* with margin ``> MARGIN_TOL`` (an LP solved with scipy/HiGHS), is dropped: the Lipschitz constant
on a box only depends on the full-dimensional linear pieces meeting its interior.  A domain whose derivatives
are all fixed is a leaf: its bound is the exact norm of one linear piece, attained at the LP's interior
point, so it is also a lower bound.  The upper bound reported is the maximum over open domains, closed
domains and the best lower bound; once no open domain exceeds the best attained value the two coincide and
the result is the exact local constant (up to the LP margin tolerance).
"""

from __future__ import annotations

import heapq
import itertools
import time

import numpy as np

from verification.bounds.crown import crown_layers
from verification.bounds.jacobian import derivative_ranges, jacobian_l1_upper
from verification.bounds.types import Bounds
from verification.network import Network

__all__ = ["BranchAndBound", "branch_and_bound", "MARGIN_TOL"]

MARGIN_TOL = 1e-9


def _evaluate(net, lo, hi, c, splits, prior, alpha, relaxation):
    B = splits[0].shape[0]
    lob = np.ascontiguousarray(np.broadcast_to(lo, (B, lo.size)))
    hib = np.ascontiguousarray(np.broadcast_to(hi, (B, hi.size)))
    lb = crown_layers(net, lob, hib, alpha=alpha, splits=splits, final=False, prior=prior)
    ranges = derivative_ranges(net, lb, splits)
    jb = jacobian_l1_upper(net, ranges, np.broadcast_to(c, (B, c.size)), relaxation)
    return lb, ranges, jb


def _choose(net, lb, ranges, jb, splittable):
    """Per domain: (layer, neuron) to split, or None when no splittable unstable neuron is left."""
    B = lb.pre[0].lower.shape[0]
    best = np.full(B, -1.0)
    choice = [None] * B
    for j, ok in enumerate(splittable):
        if not ok:
            continue
        l, u = lb.pre[j]
        kind, dl, du = ranges[j]
        unstable = dl < du
        score = np.where(unstable, jb.coef[j] + 1e-12 * np.minimum(u, -l), -1.0)
        idx = np.argmax(score, axis=1)
        val = score[np.arange(B), idx]
        for b in np.nonzero(val > best)[0]:
            best[b] = val[b]
            choice[b] = (j, int(idx[b]))
    return choice


def _linear_constraints(net, splits, ranges, b):
    """Rows ``(A, c)`` with ``A x + c >= 0`` implied by the split constraints of domain ``b`` that are linear."""
    # the LP needs the constraint rows as dense arrays
    W = [layer.as_matrix() for layer in net.affine_layers]
    bias = [layer.bias for layer in net.affine_layers]
    A = W[0]
    c0 = bias[0]
    rows_a, rows_c = [], []
    for j in range(len(splits)):
        s = splits[j][b]
        idx = np.nonzero(s)[0]
        if idx.size:
            rows_a.append(s[idx, None] * A[idx])
            rows_c.append(s[idx] * c0[idx])
        kind, dl, du = ranges[j]
        if j + 1 >= len(splits) or kind != "elem" or not np.all(dl[b] == du[b]):
            break
        d = dl[b]
        A = W[j + 1] @ (d[:, None] * A)
        c0 = W[j + 1] @ (d * c0) + bias[j + 1]
    if not rows_a:
        return None, None
    return np.concatenate(rows_a), np.concatenate(rows_c)


def _interior_point(lo, hi, A, c):
    """Maximise the margin ``t`` of ``A x + c >= t ||A_i||`` inside the box; return ``(t, x)``."""
    from scipy.optimize import linprog

    n = lo.size
    free = hi > lo
    norms = np.linalg.norm(A, axis=1)
    norms = np.where(norms > 0, norms, 1.0)
    # variables (x, t); maximise t
    a_ub = [np.hstack([-A, norms[:, None]])]
    b_ub = [c]
    eye = np.eye(n)[free]
    if eye.size:
        a_ub += [np.hstack([-eye, np.ones((eye.shape[0], 1))]), np.hstack([eye, np.ones((eye.shape[0], 1))])]
        b_ub += [-lo[free], hi[free]]
    bounds = [(lo[i], hi[i]) for i in range(n)] + [(None, 1.0)]
    res = linprog(np.r_[np.zeros(n), -1.0], A_ub=np.vstack(a_ub), b_ub=np.concatenate(b_ub), bounds=bounds,
                  method="highs")
    if res.status != 0:
        return -np.inf, None
    return float(res.x[-1]), res.x[:n]


class BranchAndBound:
    """Resumable best-first BaB for one output vector ``c`` on the box ``[lo, hi]``.

    ``lower``: a value already attained (e.g. a sampled gradient norm).  Call :meth:`run` with a deadline
    (``time.perf_counter()`` value) as often as wanted; ``upper``, ``lower``, ``converged`` hold the state.
    The LP interior check runs on leaves (needed for exactness) and, if ``lp_internal``, on every domain."""

    def __init__(self, net: Network, lo: np.ndarray, hi: np.ndarray, c: np.ndarray, *, lower: float,
                 relaxation: str = "crown", alpha: bool = True, batch_size: int = 32, max_domains: int = 200_000,
                 lp_internal: bool = False):
        self.net, self.lo, self.hi, self.c = net, lo, hi, np.asarray(c, dtype=np.float64)
        self.relaxation, self.batch_size, self.max_domains, self.lp_internal = relaxation, batch_size, max_domains, lp_internal
        self.widths = [layer.out_features for layer in net.affine_layers[:-1]]
        self.splittable = [a.two_piece_slope is not None for a in net.activations]
        self.counter = itertools.count()
        self.best_lower, self.witness, self.closed = float(lower), None, -np.inf
        self.heap: list = []
        root_splits = [np.zeros((1, n), dtype=np.int8) for n in self.widths]
        lb, ranges, jb = _evaluate(net, lo, hi, self.c, root_splits, None, alpha, relaxation)
        self.n_eval = 1
        choice = _choose(net, lb, ranges, jb, self.splittable)
        self._consider(float(jb.value[0]), bool(jb.exact[0]), choice[0], root_splits, lb.pre, ranges, 0)

    def _consider(self, value, exact, choice, splits, pre, ranges_b, b):
        if value <= self.best_lower:
            return
        x = None
        if exact or self.lp_internal:
            A, cc = _linear_constraints(self.net, splits, ranges_b, b)
            if A is not None:
                t, x = _interior_point(self.lo, self.hi, A, cc)
                if t <= MARGIN_TOL:
                    return
        if exact:
            if x is None:  # no constraint: the whole box is one piece
                x = (self.lo + self.hi) / 2
            self.best_lower, self.witness = value, x
            return
        if choice is None:
            self.closed = max(self.closed, value)
            return
        heapq.heappush(self.heap, (-value, next(self.counter), [s[b].copy() for s in splits],
                                   [Bounds(l[b].copy(), u[b].copy()) for l, u in pre], choice))

    @property
    def upper(self) -> float:
        open_max = -self.heap[0][0] if self.heap else -np.inf
        return float(max(self.best_lower, self.closed, open_max))

    @property
    def lower(self) -> float:
        return float(self.best_lower)

    @property
    def converged(self) -> bool:
        return self.upper <= self.best_lower

    @property
    def done(self) -> bool:
        return not self.heap or -self.heap[0][0] <= max(self.best_lower, self.closed) or self.n_eval >= self.max_domains

    def run(self, deadline: float, progress=None) -> None:
        """Split until ``deadline`` (``time.perf_counter()``) or done; ``progress(dict)`` after every batch
        (``upper``, ``open``, ``domains``).  On Ctrl-C the batch being split goes back on the heap (so
        ``upper`` stays a bound) and the ``KeyboardInterrupt`` is re-raised."""
        while not self.done and time.perf_counter() < deadline:
            batch = [heapq.heappop(self.heap) for _ in range(min(self.batch_size, len(self.heap)))]
            try:
                self._split(batch)
            except (KeyboardInterrupt, SystemError) as exc:
                # Ctrl-C inside a numba kernel surfaces as a SystemError caused by the KeyboardInterrupt
                if not isinstance(exc, KeyboardInterrupt) and not isinstance(exc.__cause__, KeyboardInterrupt):
                    raise
                for item in batch:  # parents bound their children: keeping both is sound
                    heapq.heappush(self.heap, item)
                raise KeyboardInterrupt from None
            if progress is not None:
                progress({"upper": self.upper, "open": len(self.heap), "domains": int(self.n_eval)})

    def _split(self, batch: list) -> None:
        """Split every domain of ``batch`` (popped from the heap) on its chosen neuron and push the children."""
        widths = self.widths
        m = 2 * len(batch)
        splits = [np.zeros((m, n), dtype=np.int8) for n in widths]
        prior = [Bounds(np.zeros((m, n)), np.zeros((m, n))) for n in widths]
        parent = np.zeros(m)
        for i, (negv, _, sp, pr, (j, k)) in enumerate(batch):
            for layer in range(len(widths)):
                splits[layer][2 * i:2 * i + 2] = sp[layer]
                prior[layer].lower[2 * i:2 * i + 2] = pr[layer].lower
                prior[layer].upper[2 * i:2 * i + 2] = pr[layer].upper
            splits[j][2 * i, k] = -1
            splits[j][2 * i + 1, k] = 1
            parent[2 * i:2 * i + 2] = -negv
        # children: plain CROWN intersected with the parent's bounds (cheaper than alpha-CROWN per
        # domain; many more domains per second pays off)
        clb, cranges, cjb = _evaluate(self.net, self.lo, self.hi, self.c, splits, prior, False, self.relaxation)
        self.n_eval += m
        values = np.minimum(cjb.value, parent)
        choices = _choose(self.net, clb, cranges, cjb, self.splittable)
        for b in np.argsort(-values, kind="stable"):
            if clb.infeasible[b]:
                continue
            self._consider(float(values[b]), bool(cjb.exact[b]), choices[b], splits, clb.pre, cranges, b)

    def stats(self) -> dict:
        return {"domains": int(self.n_eval), "open": len(self.heap), "converged": self.converged}


def branch_and_bound(net: Network, lo: np.ndarray, hi: np.ndarray, c: np.ndarray, *, lower: float,
                     deadline: float, **options) -> dict:
    """Run :class:`BranchAndBound` until ``deadline``; returns ``upper``, ``lower``, ``converged``,
    ``domains`` (evaluated), ``open`` (left) and ``witness`` (interior point attaining ``lower`` or None)."""
    bab = BranchAndBound(net, lo, hi, c, lower=lower, **options)
    bab.run(deadline)
    out = bab.stats()
    out.update(upper=bab.upper, lower=bab.lower,
               witness=None if bab.witness is None else np.asarray(bab.witness).tolist())
    return out
