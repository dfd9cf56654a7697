"""Complete verification of a VNN-LIB property: falsify -> bound -> branch and bound -> exact leaves.

Pipeline (per input box of the property):

1. **Falsification**: uniform samples, box corners (d <= 10) and the centre, then projected gradient
   descent on the unsafe margin ``m(x) = min_k max_r (A_k f(x) - b_k)_r`` (``m <= 0`` iff unsafe).
2. **Bounds**: batched forward symbolic intervals plus a backward pass for the specification rows
   (:mod:`verification.smt._symbolic`).  A disjunct ``k`` is refuted on a box when some row has a lower
   bound ``> tol``.
3. **Branch and bound**:
   * ``input-split`` (default for ``in_dim <= 12``, e.g. ACAS Xu): bisect boxes along the input
     coordinate with the largest (bound coefficient x width), every new box's centre and bound minimiser
     are tried as counterexamples;
   * ``relu-split`` (default otherwise): after bound tightening on the whole box, the remaining unstable
     ReLUs are split by Z3's own DPLL(T) search on the bounded encoding (stable neurons are linear terms).
4. **Exact leaves**: a box whose neurons are all stable is affine: one LP (HiGHS) decides it; an LP
   optimum that does not re-evaluate as a violation, or a box too small to split, is decided by Z3 on the
   exact rational encoding.

Outcomes: ``holds`` only from refuted bounds / infeasible exact leaves; ``violated`` only with a
counterexample that lies in the box and whose float64 output meets the unsafe constraint; otherwise
``unknown`` (timeout, Z3 unknown, or an unresolved boundary leaf).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from verification.errors import InvalidParameterError, PropertyFormatError, ShapeMismatchError
from verification.network import Network
from verification.smt._symbolic import spec_bounds
from verification.smt.encode import z3_decide
from verification.smt.result import VerifyResult
from verification.vnnlib import InputRegion, VnnlibProperty, read_vnnlib

__all__ = ["verify", "METHODS"]

METHODS = ("auto", "input-split", "relu-split", "z3-plain")
_TOL = 1e-9  # a refuting lower bound must exceed this (float64 rounding guard)


class _Found(Exception):
    def __init__(self, x, y):
        self.x, self.y = x, y


class _Ctx:
    def __init__(self, net: Network, prop: VnnlibProperty, deadline: float, rng, stats: dict):
        self.net, self.prop, self.deadline, self.rng, self.stats = net, prop, deadline, rng, stats
        self.unresolved = 0

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def check(self, region: InputRegion, X: np.ndarray) -> None:
        """Raise _Found if some row of X (clipped into the box) is a float64 counterexample."""
        X = np.clip(np.atleast_2d(X), region.lower, region.upper)
        Y = self.net(X)
        m = region.margin(Y)
        hit = np.flatnonzero(m <= 0.0)
        self.stats["evaluations"] = self.stats.get("evaluations", 0) + X.shape[0]
        if hit.size:
            i = hit[np.argmin(m[hit])]
            raise _Found(X[i].copy(), Y[i].copy())


# ------------------------------------------------------------------------------------------ falsification
def _spec_rows(region: InputRegion):
    rows, rhs, grp = [], [], []
    for k, oc in enumerate(region.outputs):
        rows.extend(oc.A)
        rhs.extend(oc.b)
        grp.extend([k] * oc.A.shape[0])
    m = len(region.outputs[0].A[0]) if rows else 0
    C = np.array(rows).reshape(len(rows), -1) if rows else np.zeros((0, m))
    return C, -np.array(rhs, dtype=np.float64), np.array(grp, dtype=int)


def _falsify(ctx: _Ctx, region: InputRegion, n_samples: int, pgd_steps: int, pgd_starts: int) -> None:
    lo, hi = region.lower, region.upper
    d = lo.size
    rng = ctx.rng
    ctx.check(region, ((lo + hi) / 2)[None, :])
    if d <= 10:
        corners = np.array(np.meshgrid(*[[0.0, 1.0]] * d)).reshape(d, -1).T
        ctx.check(region, lo + (hi - lo) * corners)
    X = lo + (hi - lo) * rng.uniform(size=(n_samples, d))
    for chunk in np.array_split(X, max(1, n_samples // 4096)):
        ctx.check(region, chunk)
    if pgd_steps <= 0 or ctx.expired():
        return
    C, cb, grp = _spec_rows(region)
    if C.shape[0] == 0:
        return
    Y = ctx.net(X)
    vals = Y @ C.T + cb
    marg = _margin_rows(vals, grp, len(region.outputs))
    start = X[np.argsort(marg)[:pgd_starts]]
    width = hi - lo
    x = start.copy()
    for step in range(pgd_steps):
        if ctx.expired():
            return
        alpha = 0.1 * (0.02 ** (step / max(1, pgd_steps - 1)))
        y = ctx.net(x)
        vals = y @ C.T + cb
        # active row: argmin over disjuncts of the max row
        best_r = _active_rows(vals, grp, len(region.outputs))
        J = ctx.net.jacobian(x)  # (N, m, d)
        g = np.einsum("nm,nmd->nd", C[best_r], J)
        x = np.clip(x - alpha * width * np.sign(g), lo, hi)
        ctx.check(region, x)


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


# ------------------------------------------------------------------------------------------ exact leaves
def _lp_leaf(ctx: _Ctx, region: InputRegion, lo, hi, G, h, pre_l, pre_u, k: int) -> bool:
    """All neurons stable on [lo, hi]: rows ``G e + h`` are exact.  Return True if disjunct k is refuted."""
    from scipy.optimize import linprog

    ctx.stats["lp_leaves"] = ctx.stats.get("lp_leaves", 0) + 1
    R, d = G.shape
    # variables (e_1..e_d, t): min t  s.t.  G e - t <= -h
    c = np.zeros(d + 1)
    c[-1] = 1.0
    A = np.hstack([G, -np.ones((R, 1))])
    res = linprog(c, A_ub=A, b_ub=-h, bounds=[(-1, 1)] * d + [(None, None)], method="highs")
    cen, rad = (hi + lo) / 2, (hi - lo) / 2
    if res.status == 0:
        if res.fun > _TOL:
            return True
        ctx.check(region, cen + rad * res.x[:d])
    return _z3_leaf(ctx, region, lo, hi, pre_l, pre_u, k)


def _z3_leaf(ctx: _Ctx, region: InputRegion, lo, hi, pre_l, pre_u, k: int) -> bool:
    ctx.stats["z3_leaves"] = ctx.stats.get("z3_leaves", 0) + 1
    pre = list(zip(pre_l, pre_u)) if pre_l is not None else None
    status, val = z3_decide(ctx.net, lo, hi, [region.outputs[k]], pre, timeout=min(ctx.remaining(), 60.0))
    if status == "unsat":
        return True
    if status == "sat":
        ctx.check(region, val[None, :])
        ctx.stats["boundary_models"] = ctx.stats.get("boundary_models", 0) + 1
    ctx.unresolved += 1  # Z3 unknown, or a model on the boundary that float64 does not reproduce
    return True  # stop exploring this box; the final answer will be "unknown"


# ------------------------------------------------------------------------------------------ input split
def _input_split(ctx: _Ctx, region: InputRegion, batch: int, intermediate: str = "forward") -> None:
    net = ctx.net
    C, cb, grp = _spec_rows(region)
    K = len(region.outputs)
    if C.shape[0] == 0 or any(oc.A.shape[0] == 0 for oc in region.outputs):
        ctx.check(region, ((region.lower + region.upper) / 2)[None, :])  # any point is unsafe
    d = region.lower.size
    stack_lo = [region.lower[None, :].copy()]
    stack_hi = [region.upper[None, :].copy()]
    stack_al = [np.ones((1, K), dtype=bool)]
    n_boxes = 0
    while stack_lo:
        if ctx.expired():
            raise TimeoutError
        # pop up to `batch` boxes from the top of the stack
        lo_parts, hi_parts, al_parts, count = [], [], [], 0
        while stack_lo and count < batch:
            a, b, c = stack_lo.pop(), stack_hi.pop(), stack_al.pop()
            take = min(batch - count, a.shape[0])
            if take < a.shape[0]:  # leave the rest of this part on the stack
                stack_lo.append(a[take:])
                stack_hi.append(b[take:])
                stack_al.append(c[take:])
                a, b, c = a[:take], b[:take], c[:take]
            lo_parts.append(a)
            hi_parts.append(b)
            al_parts.append(c)
            count += take
        lo, hi, alive = np.vstack(lo_parts), np.vstack(hi_parts), np.vstack(al_parts)
        n_boxes += lo.shape[0]
        sb = spec_bounds(net, lo, hi, C, cb, intermediate=intermediate)
        lb = sb.lower
        dk = np.stack([lb[:, grp == k].max(axis=1) for k in range(K)], axis=1)  # (n, K)
        alive &= ~(dk > _TOL)
        keep = alive.any(axis=1)
        if not keep.any():
            continue
        lo, hi, alive, lb, dk = lo[keep], hi[keep], alive[keep], lb[keep], dk[keep]
        coef = sb.coef[keep]
        pre = [(l[keep], u[keep]) for l, u in sb.pre]
        n = lo.shape[0]
        cen, rad = (hi + lo) / 2, (hi - lo) / 2
        # candidate counterexamples: centre and the minimiser of the hardest row of the easiest disjunct
        kk = np.argmin(np.where(alive, dk, np.inf), axis=1)
        rows = np.empty(n, dtype=int)
        for k in range(K):
            idx = np.flatnonzero(grp == k)
            rk = idx[np.argmax(lb[:, idx], axis=1)]
            rows = np.where(kk == k, rk, rows)
        vert = cen - rad * np.sign(coef[np.arange(n), rows])
        ctx.check(region, np.vstack([cen, vert]))
        # exact leaves
        unstable = sb.unstable_counts()[keep] if sb.pre else np.zeros(n, dtype=int)
        tiny = (rad.max(axis=1) <= 1e-10 * (1.0 + np.abs(cen).max(axis=1)))
        split = np.ones(n, dtype=bool)
        for i in np.flatnonzero((unstable == 0) | tiny):
            if ctx.expired():
                raise TimeoutError
            pl = [p[0][i] for p in pre]
            pu = [p[1][i] for p in pre]
            for k in np.flatnonzero(alive[i]):
                idx = np.flatnonzero(grp == k)
                if unstable[i] == 0:
                    # forward lower functions are exact when nothing is unstable: value = lower + |G|.sum
                    Gk = coef[i, idx]
                    hk = lb[i, idx] + np.abs(Gk).sum(axis=1)
                    _lp_leaf(ctx, region, lo[i], hi[i], Gk, hk, pl, pu, k)
                else:
                    _z3_leaf(ctx, region, lo[i], hi[i], pl, pu, k)
            split[i] = False
        idx_split = np.flatnonzero(split)
        if idx_split.size == 0:
            continue
        lo, hi, alive, coef, rad = lo[idx_split], hi[idx_split], alive[idx_split], coef[idx_split], rad[idx_split]
        rows = rows[idx_split]
        # split dimension: largest |coefficient| of the bound (already scaled by the half-width)
        score = np.abs(coef[np.arange(lo.shape[0]), rows])
        score = np.where(score.max(axis=1, keepdims=True) > 0, score, rad)
        dim = np.argmax(score, axis=1)
        mid = (lo[np.arange(lo.shape[0]), dim] + hi[np.arange(lo.shape[0]), dim]) / 2
        lo2, hi2 = lo.copy(), hi.copy()
        hi[np.arange(lo.shape[0]), dim] = mid
        lo2[np.arange(lo.shape[0]), dim] = mid
        stack_lo.append(np.vstack([lo, lo2]))
        stack_hi.append(np.vstack([hi, hi2]))
        stack_al.append(np.vstack([alive, alive]))
    ctx.stats["boxes"] = ctx.stats.get("boxes", 0) + n_boxes


# ------------------------------------------------------------------------------------------ relu split
def _relu_split(ctx: _Ctx, region: InputRegion, use_bounds: bool = True) -> None:
    C, cb, grp = _spec_rows(region)
    K = len(region.outputs)
    alive = np.ones(K, dtype=bool)
    pre = None
    if use_bounds:
        sb = spec_bounds(ctx.net, region.lower[None, :], region.upper[None, :], C, cb)
        if C.shape[0]:
            dk = np.array([sb.lower[0, grp == k].max() if (grp == k).any() else -np.inf for k in range(K)])
            alive = ~(dk > _TOL)
        pre = [(l[0], u[0]) for l, u in sb.pre]
        ctx.stats["unstable_after_bounds"] = int(sb.unstable_counts()[0]) if sb.pre else 0
    outs = [region.outputs[k] for k in np.flatnonzero(alive)]
    if not outs:
        return
    ctx.stats["z3_leaves"] = ctx.stats.get("z3_leaves", 0) + 1
    status, val = z3_decide(ctx.net, region.lower, region.upper, outs, pre, timeout=ctx.remaining())
    if status == "sat":
        ctx.check(region, val[None, :])
        ctx.unresolved += 1
    elif status == "unknown":
        if ctx.expired() or val in ("timeout", "canceled"):
            raise TimeoutError
        ctx.unresolved += 1


# ------------------------------------------------------------------------------------------ entry point
def _as_property(prop) -> VnnlibProperty:
    if isinstance(prop, VnnlibProperty):
        return prop
    if isinstance(prop, (str, Path)):
        return read_vnnlib(prop)
    raise InvalidParameterError(
        f"The 'prop' parameter of verify must be a VnnlibProperty or a path to a .vnnlib file. Got {type(prop).__name__}."
    )


def verify(
    net: Network,
    prop: VnnlibProperty | str | Path,
    timeout: float = 60.0,
    *,
    method: str = "auto",
    seed: int = 0,
    n_samples: int = 5000,
    pgd_steps: int = 40,
    pgd_starts: int = 32,
    batch: int = 64,
    intermediate: str = "crown",
) -> VerifyResult:
    """Decide whether ``net`` satisfies ``prop`` (no input of any box reaches its unsafe output set).

    Parameters
    ----------
    net: the network (any IR network; exact leaves need piecewise-linear activations).
    prop: a :class:`~verification.vnnlib.VnnlibProperty` or a path to a ``.vnnlib`` file.
    timeout: wall-clock budget in seconds (``0`` returns ``unknown`` at once).
    method: ``"auto"`` (input splitting for ``in_dim <= 12``, else ReLU splitting), ``"input-split"``,
        ``"relu-split"``, or ``"z3-plain"`` (the whole network handed to Z3 without bounds; a baseline).
    seed, n_samples, pgd_steps, pgd_starts: falsification budget (random samples, projected-gradient steps
        and restarts).
    batch: boxes bounded per vectorised step of input splitting.
    intermediate: intermediate bounds in input splitting: ``"crown"`` (default; batched CROWN of
        :mod:`verification.bounds`, falls back to forward intervals for MaxMin/other activations) or
        ``"forward"`` (symbolic intervals: ~50x cheaper per box but far looser on deep nets).

    Returns a :class:`VerifyResult` with status ``holds`` / ``violated`` (counterexample re-checked in
    float64) / ``unknown``.
    """
    t0 = time.monotonic()
    prop = _as_property(prop)
    if not isinstance(net, Network):
        raise InvalidParameterError(f"The 'net' parameter of verify must be a Network. Got {type(net).__name__}.")
    try:
        timeout = float(timeout)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"The 'timeout' parameter of verify must be a number >= 0. Got {timeout!r} instead.") from None
    if not timeout >= 0:
        raise InvalidParameterError(f"The 'timeout' parameter of verify must be a number >= 0. Got {timeout!r} instead.")
    if method not in METHODS:
        raise InvalidParameterError(f"The 'method' parameter of verify must be one of {METHODS}. Got {method!r} instead.")
    net = net.canonical()
    if prop.in_dim != net.in_dim or prop.out_dim != net.out_dim:
        raise ShapeMismatchError(
            f"the property has {prop.in_dim} inputs and {prop.out_dim} outputs, the network has "
            f"{net.in_dim} inputs and {net.out_dim} outputs"
        )
    if method == "auto":
        method = "input-split" if net.in_dim <= 12 else "relu-split"
    exact_ok = all(a.is_piecewise_linear for a in net.activations)
    stats: dict = {}
    ctx = _Ctx(net, prop, t0 + timeout, np.random.default_rng(seed), stats)

    def done(status, x=None, y=None, reason=""):
        return VerifyResult(status, x, y, time.monotonic() - t0, method, reason, stats)

    if timeout == 0:
        return done("unknown", reason="timeout")
    if not prop.regions:
        return done("holds", reason="empty input set")
    try:
        if method != "z3-plain":
            for region in prop.regions:
                _falsify(ctx, region, n_samples, pgd_steps, pgd_starts)
        for region in prop.regions:
            if method == "input-split":
                if not exact_ok:
                    # bounds + splitting still prove; leaves cannot be decided exactly
                    pass
                _input_split(ctx, region, batch, intermediate)
            else:
                if not exact_ok:
                    raise PropertyFormatError(
                        "relu-split needs piecewise-linear activations (use method='input-split' for tanh/sigmoid)"
                    )
                _relu_split(ctx, region, use_bounds=(method == "relu-split"))
    except _Found as f:
        x, y = f.x, f.y
        # re-check in float64 from scratch
        y2 = net(x)
        if not prop.is_violated_by(x, y2):  # pragma: no cover - defensive
            return done("unknown", reason="counterexample failed re-evaluation")
        return done("violated", x, y2, "counterexample")
    except TimeoutError:
        return done("unknown", reason="timeout")
    if ctx.unresolved:
        return done("unknown", reason=f"{ctx.unresolved} leaf problem(s) unresolved")
    return done("holds", reason="proved")
