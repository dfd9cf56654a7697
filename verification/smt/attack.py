"""Falsification: the centre, box corners and uniform samples, projected sign-gradient descent on the
unsafe margin, and the attack pool of input splitting.  Every candidate goes through
:meth:`~verification.smt.task.Task.screen` (float64 screening, exact confirmation); functions return a
confirmed counterexample or ``None``."""

from __future__ import annotations

import time

import numpy as np

from verification.network import Network
from verification.smt.outcome import OPEN, Outcome
from verification.smt.task import Task

__all__ = ["falsify", "pgd", "row_gradient", "AttackPool"]


SAMPLE_ENTRIES = 1 << 23  # samples x widest layer evaluated at once (64 MB per activation array)
SAMPLE_TOTAL = 1 << 28  # samples x neurons of the random-sampling phase


def falsify(task: Task, n_samples: int, pgd_steps: int, pgd_starts: int) -> Outcome:
    """Centre, corners (``d <= 10``) and ``n_samples`` uniform samples of the box; then ``pgd_starts`` descents
    of ``pgd_steps`` steps from the best samples, and a fine phase from the best few end points.  Returns a
    counterexample or :data:`~verification.smt.outcome.OPEN`."""
    x = _falsify(task, n_samples, pgd_steps, pgd_starts)
    return OPEN if x is None else Outcome.counterexample(x)


def _falsify(task: Task, n_samples: int, pgd_steps: int, pgd_starts: int) -> np.ndarray | None:
    region = task.region
    lo, hi = region.lower, region.upper
    d = lo.size
    _, found = task.screen(((lo + hi) / 2)[None, :])
    if found is not None:
        return found
    if d <= 10:
        corners = np.array(np.meshgrid(*[[0.0, 1.0]] * d)).reshape(d, -1).T
        _, found = task.screen(lo + (hi - lo) * corners)
        if found is not None:
            return found
    # on very wide nets (lifted CNNs) fewer samples: at most SAMPLE_TOTAL neuron evaluations
    neurons = sum(layer.out_features for layer in task.net.affine_layers)
    n_samples = min(n_samples, max(256, SAMPLE_TOTAL // max(1, neurons)))
    X = lo + (hi - lo) * task.rng.uniform(size=(n_samples, d))
    # chunks of bounded memory (rows x widest layer); the budget is checked between them
    widest = max([d] + [layer.out_features for layer in task.net.affine_layers])
    parts = max(1, n_samples // 4096, -(-n_samples * widest // SAMPLE_ENTRIES))
    marg = np.full(n_samples, np.inf)
    start = 0
    for chunk in np.array_split(X, parts):
        if start and task.budget.expired():
            break
        m, found = task.screen(chunk)
        if found is not None:
            return found
        marg[start:start + chunk.shape[0]] = m
        start += chunk.shape[0]
    if pgd_steps <= 0 or task.budget.expired():
        return None
    C, cb, grp = task.C, task.cb, task.grp
    if C.shape[0] == 0:
        return None
    x = X[np.argsort(marg)[:pgd_starts]].copy()
    x, found = pgd(task, x, lo, hi, pgd_steps, 0.1, 0.002)
    if found is not None:
        return found
    # fine phase: the best few end points, step sizes shrinking to 1e-7 of the box (small violating sets)
    if x.shape[0] and not task.budget.expired():
        m = _margin_rows(task.net(x) @ C.T + cb, grp, task.K)
        return pgd(task, x[np.argsort(m)[:8]], lo, hi, 2 * pgd_steps, 0.002, 1e-7)[1]
    return None


def pgd(task: Task, x: np.ndarray, lo, hi, steps: int, a0: float, a1: float) -> tuple[np.ndarray, np.ndarray | None]:
    """Projected sign-gradient descent on the unsafe margin from the starts ``x`` (n, d), each kept in its
    box ``[lo, hi]`` (broadcast to (n, d)); the step shrinks geometrically from ``a0`` to ``a1`` times the
    box width.  The gradient is that of the active row (argmin over disjuncts of the max row).  Every
    iterate is screened; returns the final iterates and the first counterexample (or ``None``)."""
    C, cb, grp = task.C, task.cb, task.grp
    width = hi - lo
    for step in range(steps):
        if task.budget.expired():
            break
        alpha = a0 * (a1 / a0) ** (step / max(1, steps - 1))
        vals = task.net(x) @ C.T + cb
        best_r = _active_rows(vals, grp, task.K)
        g = row_gradient(task.net, x, C[best_r])
        x = np.clip(x - alpha * width * np.sign(g), lo, hi)
        _, found = task.screen(x)
        if found is not None:
            return x, found
    return x, None


def row_gradient(net: Network, x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Gradient of ``c_n · f(x_n)`` for each row ``n`` (one reverse pass, no full Jacobian)."""
    return net.vector_jacobian(x, c[:, None, :])[:, 0, :]


def _margin_rows(vals: np.ndarray, grp: np.ndarray, K: int) -> np.ndarray:
    out = np.full(vals.shape[0], np.inf)
    for k in range(K):
        sel = grp == k
        out = np.minimum(out, vals[:, sel].max(axis=1) if sel.any() else -np.inf)
    return out


def _active_rows(vals: np.ndarray, grp: np.ndarray, K: int) -> np.ndarray:
    best = np.full(vals.shape[0], np.inf)
    row = np.zeros(vals.shape[0], dtype=int)
    for k in range(K):
        idx = np.flatnonzero(grp == k)
        r = idx[np.argmax(vals[:, idx], axis=1)]
        v = vals[np.arange(vals.shape[0]), r]
        better = v < best
        best = np.where(better, v, best)
        row = np.where(better, r, row)
    return row


class AttackPool:
    """Boxes met during input splitting with the smallest sampled unsafe margin (centre / bound
    minimiser).  Now and then (at most ``share`` of the splitting time) projected gradient descent is run
    inside the best of them: a violating set too small for the initial attack is usually found once the
    splitting has narrowed it down to a few boxes, long before a leaf containing it is reached."""

    keep, n_boxes, n_random, steps, share = 64, 16, 3, 30, 0.2

    def __init__(self):
        self.t0 = time.monotonic()
        self.spent = 0.0
        self.m = np.zeros(0)
        self.lo = self.hi = None

    def add(self, m: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        if self.lo is None:
            self.lo, self.hi = np.zeros((0, lo.shape[1])), np.zeros((0, lo.shape[1]))
        self.m = np.concatenate([self.m, m])
        self.lo = np.vstack([self.lo, lo])
        self.hi = np.vstack([self.hi, hi])
        if self.m.size > self.keep:
            o = np.argsort(self.m)[: self.keep]
            self.m, self.lo, self.hi = self.m[o], self.lo[o], self.hi[o]

    def maybe_attack(self, task: Task) -> np.ndarray | None:
        """Attack the best boxes if the pool's share of the time allows; a counterexample or ``None``."""
        now = time.monotonic()
        if self.m.size == 0 or self.spent > self.share * (now - self.t0):
            return None
        o = np.argsort(self.m)[: self.n_boxes]
        lo, hi = self.lo[o], self.hi[o]
        reps = 1 + self.n_random
        LO, HI = np.repeat(lo, reps, axis=0), np.repeat(hi, reps, axis=0)
        x = LO + (HI - LO) * task.rng.uniform(size=LO.shape)
        x[::reps] = (lo + hi) / 2
        try:
            found = pgd(task, x, LO, HI, self.steps, 0.25, 1e-5)[1]
        finally:
            self.spent += time.monotonic() - now
            task.stats.add("attacks")
        # attacked boxes leave the pool (their children come back if they stay promising)
        self.m, self.lo, self.hi = np.zeros(0), None, None
        return found
