"""Complete verification of a VNN-LIB property: falsify -> bound -> branch and bound -> exact leaves.

Pipeline (per input box of the property):

1. **Cheap falsification**: the centre, box corners (d <= 10) and a few hundred uniform samples.
2. **Bound the whole box** (batched CROWN, below); a box whose disjuncts are all refuted is done, so most
   ``holds`` instances never pay for step 3.
3. **Falsification**: uniform samples, then projected (sign) gradient descent on the unsafe margin
   ``m(x) = min_k max_r (A_k f(x) - b_k)_r`` (``m <= 0`` iff unsafe), gradients by reverse mode.
4. **Branch and bound**:
   * ``input-split`` (default for ``in_dim <= 12``, e.g. ACAS Xu): boxes are bounded in batches with
     :func:`~verification.bounds.batched.incremental_crown` (CROWN pre-activation bounds that reuse the
     parent box's bounds and back-substitute only neurons left unstable by interval bounds) plus one
     backward pass for the specification rows; a disjunct is refuted on a box when some row's lower bound
     is ``> 1e-9``.  Boxes are bisected along the coordinate maximising ``|c_i| + max|c| * r_i / max r``
     (``c``: coefficients of the hardest row's linear lower bound in the normalised input, ``r``: half
     widths); every new box's centre and bound minimiser are tried as counterexamples.  Boxes CROWN leaves
     open with at most ``alpha_unstable`` unstable neurons first get alpha-CROWN on the specification rows
     (optimised lower slopes, :func:`~verification.bounds.batched.alpha_spec_bounds`);
   * ``relu-split`` (default otherwise): after bound tightening on the whole box, the remaining unstable
     ReLUs are split by Z3's own DPLL(T) search on the bounded encoding (stable neurons are linear terms).
5. **Exact leaves**: a box whose neurons are all stable is affine: one LP (HiGHS) decides it; with
   ``leaf_unstable > 0`` boxes with that few unstable neurons are decided by one big-M MILP (HiGHS); with
   ``pattern_unstable > 0`` boxes with 1..k unstable neurons by activation-pattern enumeration with
   certified LP bounds (:mod:`verification.smt._pattern`).  An LP
   / MILP optimum that does not re-evaluate as a violation, or a box too small to split, is decided by Z3 on
   the exact rational encoding.

Outcomes: ``holds`` only from refuted bounds / infeasible exact leaves; ``violated`` only with a
counterexample that lies in the box and whose float64 output meets the unsafe constraint; otherwise
``unknown`` (timeout, Z3 unknown, or an unresolved boundary leaf).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from verification.errors import InvalidParameterError, ShapeMismatchError
from verification.network import Network
from verification.bounds.batched import INTERMEDIATE, alpha_spec_bounds, is_two_piece, spec_bounds
from verification.smt.encode import z3_decide
from verification.smt._pattern import certified_box_margin, pattern_leaf
from verification.smt.confirm import confirm, confirm_property, point_in_region
from verification.smt.result import VerifyResult
from verification.vnnlib import InputRegion, VnnlibProperty, read_vnnlib

__all__ = ["verify", "METHODS"]

METHODS = ("auto", "input-split", "relu-split", "z3-plain")
# A refuting lower bound must exceed _TOL * (1 + scale), scale = magnitude of the terms summed into it: a
# float64 rounding guard relative to the numbers involved (an absolute 1e-9 is no guard at magnitude 1e8).
_TOL = 1e-9


class _Found(Exception):
    def __init__(self, x, y):
        self.x, self.y = x, y


class _BoxLimit(Exception):
    pass


class _Ctx:
    max_boxes: int | None = None
    leaf_unstable: int = 0
    pattern_unstable: int = 0
    alpha_unstable: int = 0
    alpha_iters: int = 10
    patterns_ok: bool = False
    intermediate: str = "incremental"
    slopes: tuple = ()
    exact_ok: bool = True

    def __init__(self, net: Network, prop: VnnlibProperty, deadline: float, rng, stats: dict):
        self.net, self.prop, self.deadline, self.rng, self.stats = net, prop, deadline, rng, stats
        self.unresolved = 0

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def check(self, region: InputRegion, X: np.ndarray) -> np.ndarray:
        """Raise _Found if some row of X (clipped into the box) is a counterexample of the property as written
        (float64 screening, then :func:`~verification.smt.confirm.confirm` in exact terms); else return the
        float unsafe margins of the rows (``<= 0`` where float64 finds them unsafe, non-strictly)."""
        X = np.clip(np.atleast_2d(X), region.lower, region.upper)
        Y = self.net(X)
        m = region.margin(Y)
        hit = np.flatnonzero(region.contains_output(Y))
        self.stats["evaluations"] = self.stats.get("evaluations", 0) + X.shape[0]
        if hit.size:
            for i in hit[np.argsort(m[hit], kind="stable")][:4]:
                x = point_in_region(region, X[i])
                if x is not None and confirm(self.net, region, x):
                    raise _Found(x.copy(), self.net(x))
            # float64 says unsafe, exact arithmetic does not (a boundary point, a strict row): keep searching
            self.stats["rejected_candidates"] = self.stats.get("rejected_candidates", 0) + int(hit.size)
        return m


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
    x = X[np.argsort(marg)[:pgd_starts]].copy()
    x = _pgd(ctx, region, x, lo, hi, pgd_steps, 0.1, 0.002, C, cb, grp)
    # fine phase: the best few end points, step sizes shrinking to 1e-7 of the box (small violating sets)
    if x.shape[0] and not ctx.expired():
        m = _margin_rows(ctx.net(x) @ C.T + cb, grp, len(region.outputs))
        _pgd(ctx, region, x[np.argsort(m)[:8]], lo, hi, 2 * pgd_steps, 0.002, 1e-7, C, cb, grp)


def _pgd(ctx: _Ctx, region: InputRegion, x, lo, hi, steps: int, a0: float, a1: float, C, cb, grp):
    """Projected sign-gradient descent on the unsafe margin from the starts ``x`` (n, d), each kept in its
    box ``[lo, hi]`` (broadcast to (n, d)); the step shrinks geometrically from ``a0`` to ``a1`` times the
    box width.  The gradient is that of the active row (argmin over disjuncts of the max row).  Every
    iterate is checked as a counterexample; returns the final iterates."""
    width = hi - lo
    K = len(region.outputs)
    for step in range(steps):
        if ctx.expired():
            break
        alpha = a0 * (a1 / a0) ** (step / max(1, steps - 1))
        vals = ctx.net(x) @ C.T + cb
        best_r = _active_rows(vals, grp, K)
        g = _row_gradient(ctx.net, x, C[best_r])
        x = np.clip(x - alpha * width * np.sign(g), lo, hi)
        ctx.check(region, x)
    return x


def _row_gradient(net: Network, x: np.ndarray, c: np.ndarray) -> np.ndarray:
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


# ------------------------------------------------------------------------------------------ exact leaves
def _lp_leaf(ctx: _Ctx, region: InputRegion, lo, hi, G, h, pre_l, pre_u, k: int, tol: float) -> bool:
    """All neurons stable on [lo, hi]: rows ``G e + h`` are exact (for other activations: a valid linear lower
    bound of the rows).  Return True if disjunct k is refuted (certified margin ``> tol``)."""
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
        # HiGHS works to ~1e-7 tolerances, so its optimum is not a proof; its duals give one (weak duality)
        if certified_box_margin(G, h, -res.ineqlin.marginals) > tol:
            return True
        ctx.check(region, cen + rad * res.x[:d])
    return _z3_leaf(ctx, region, lo, hi, pre_l, pre_u, k)


def _milp_leaf(ctx: _Ctx, region: InputRegion, lo, hi, pre_l, pre_u, k: int) -> None:
    """Exact leaf as one mixed-integer LP (HiGHS): inputs ``x`` in the box, one real output ``a_i`` and
    one binary ``delta_i`` per unstable neuron with the big-M encoding of ``a = max(z, alpha z)`` on
    ``[l, u]`` (``a >= z``, ``a >= alpha z``, ``a <= alpha z + (1 - alpha) u delta``,
    ``a <= z - (1 - alpha) l (1 - delta)``); stable neurons are linear.  Minimises ``t`` with
    ``A_k f(x) - b_k <= t``: refuted if infeasible or the optimum is ``> 1e-6``; otherwise the optimiser
    is a candidate checked in float64.  Returns True if the disjunct is refuted on the box, False if
    undecided (the caller splits the box further; Z3 only sees boxes that are fully stable or tiny)."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    net = ctx.net
    dense, acts = net.dense_layers, net.activations
    d = lo.size
    n_u = int(sum(((l < 0) & (u > 0)).sum() for l, u in zip(pre_l, pre_u)))
    nv = d + 2 * n_u + 1  # x, a, delta, t
    ctx.stats["milp_leaves"] = ctx.stats.get("milp_leaves", 0) + 1
    H = np.zeros((d, nv))
    H[:, :d] = np.eye(d)
    h = np.zeros(d)
    rows, lb_r, ub_r = [], [], []
    col = d
    for j, act in enumerate(acts):
        Z, zc = dense[j].weight @ H, dense[j].weight @ h + dense[j].bias
        a = _leaky_slope(act)
        l, u = pre_l[j], pre_u[j]
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
    P, p = dense[-1].weight @ H, dense[-1].weight @ h + dense[-1].bias
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
        l, u = pre_l[j], pre_u[j]
        m = (l < 0) & (u > 0)
        al, au = act.interval(l[m][None, :], u[m][None, :])
        lb_v[d + ai:d + ai + m.sum()] = al[0]
        ub_v[d + ai:d + ai + m.sum()] = au[0]
        ai += int(m.sum())
    integrality = np.concatenate([np.zeros(d + n_u), np.ones(n_u), [0]])
    res = milp(e_t, constraints=LinearConstraint(np.array(rows), lb_r, ub_r), integrality=integrality,
               bounds=Bounds(lb_v, ub_v), options={"time_limit": max(0.01, min(ctx.remaining(), 5.0))})
    if res.status == 2:  # infeasible
        return True
    if res.status == 0 and res.fun > 1e-6:
        return True
    if res.x is not None:
        ctx.check(region, res.x[None, :d])
    return False


def _leaky_slope(act) -> float:
    a = act.two_piece_slope
    return 0.0 if a is None else float(a)


def _z3_leaf(ctx: _Ctx, region: InputRegion, lo, hi, pre_l, pre_u, k: int) -> bool:
    if not ctx.exact_ok:  # tanh / sigmoid: no exact encoding; the box stays undecided
        ctx.stats["undecided_leaves"] = ctx.stats.get("undecided_leaves", 0) + 1
        ctx.unresolved += 1
        return True
    ctx.stats["z3_leaves"] = ctx.stats.get("z3_leaves", 0) + 1
    pre = list(zip(pre_l, pre_u)) if pre_l is not None else None
    status, val = z3_decide(ctx.net, lo, hi, [region.outputs[k]], pre, timeout=min(ctx.remaining(), 60.0),
                            region=region)
    if status == "unsat":
        return True
    if status == "sat":
        ctx.check(region, val[None, :])
        ctx.stats["boundary_models"] = ctx.stats.get("boundary_models", 0) + 1
    ctx.unresolved += 1  # Z3 unknown, or a model on the boundary that float64 does not reproduce
    return True  # stop exploring this box; the final answer will be "unknown"


# ------------------------------------------------------------------------------------------ input split
def _root_refuted(ctx: _Ctx, region: InputRegion, intermediate: str) -> bool:
    """True if bounds on the whole box already refute every disjunct of the region (a proof)."""
    C, cb, grp = _spec_rows(region)
    K = len(region.outputs)
    if C.shape[0] == 0 or any(oc.A.shape[0] == 0 for oc in region.outputs):
        return False
    sb = spec_bounds(ctx.net, region.lower[None, :], region.upper[None, :], C, cb, method=intermediate)
    ctx.stats["boxes"] = ctx.stats.get("boxes", 0) + 1
    g = sb.guarded(_TOL)
    return all(g[0, grp == k].max() > 0 for k in range(K))


def _input_split(ctx: _Ctx, region: InputRegion, batch: int, intermediate: str = "incremental") -> None:
    net = ctx.net
    C, cb, grp = _spec_rows(region)
    K = len(region.outputs)
    if C.shape[0] == 0 or any(oc.A.shape[0] == 0 for oc in region.outputs):
        ctx.check(region, ((region.lower + region.upper) / 2)[None, :])  # any point is unsafe
    use_prior = intermediate == "incremental"
    use_alpha = ctx.alpha_unstable > 0 and ctx.patterns_ok and intermediate != "ibp"
    n_act = len(net.activations)
    # stack of parts: (lo, hi, alive disjuncts, spec lower bounds of the parent, parent pre-activation bounds)
    R = C.shape[0]
    inf_prior = [(np.full((1, a.out_features), -np.inf), np.full((1, a.out_features), np.inf))
                 for a in net.dense_layers[:n_act]]
    pool = _AttackPool()
    width = np.where(region.upper > region.lower, region.upper - region.lower, 1.0)
    stack = [(region.lower[None, :].copy(), region.upper[None, :].copy(), np.ones((1, K), dtype=bool),
              np.full((1, R), -np.inf), inf_prior)]
    while stack:
        if ctx.expired():
            raise TimeoutError
        # pop up to `batch` boxes from the top of the stack (depth first: siblings are bounded together)
        parts, count = [], 0
        while stack and count < batch:
            part = stack.pop()
            size = part[0].shape[0]
            take = min(batch - count, size)
            if take < size:  # leave the rest of this part on the stack
                stack.append(_slice_part(part, slice(take, None)))
                part = _slice_part(part, slice(0, take))
            parts.append(part)
            count += take
        lo = np.vstack([p[0] for p in parts])
        hi = np.vstack([p[1] for p in parts])
        alive = np.vstack([p[2] for p in parts])
        plb = np.vstack([p[3] for p in parts])
        prior = [(np.vstack([p[4][j][0] for p in parts]), np.vstack([p[4][j][1] for p in parts]))
                 for j in range(n_act)] if use_prior else None
        ctx.stats["boxes"] = ctx.stats.get("boxes", 0) + lo.shape[0]
        vol_in = float(np.prod((hi - lo) / width, axis=1).sum())
        ctx.stats["volume_done"] = ctx.stats.get("volume_done", 0.0) + vol_in  # minus what is split below
        if ctx.max_boxes is not None and ctx.stats["boxes"] > ctx.max_boxes:
            raise _BoxLimit
        sb = spec_bounds(net, lo, hi, C, cb, method=intermediate, prior=prior)
        # lb: guarded row bounds (refuted where > 0); the parent's guarded bound holds on the child box too
        lb = np.maximum(sb.guarded(_TOL), plb)
        dk = np.stack([lb[:, grp == k].max(axis=1) for k in range(K)], axis=1)  # (n, K)
        alive &= ~(dk > 0)
        coef_all, low_all, scale_all = sb.coef, sb.lower, sb.scale
        if use_alpha:
            # alpha-CROWN on the specification rows of the boxes CROWN leaves open with few unstable neurons
            sel = np.flatnonzero(alive.any(axis=1) & (sb.unstable_counts() <= ctx.alpha_unstable))
            if sel.size:
                ctx.stats["alpha_boxes"] = ctx.stats.get("alpha_boxes", 0) + sel.size
                al_sel = alive[sel]

                def refuted(idx, low, al_sel=al_sel, sc=sb.scale[sel]):
                    g = low - _TOL * (1.0 + sc[idx])  # the alpha iterates' scale is close to CROWN's
                    return np.all([~al_sel[idx, k] | (g[:, grp == k].max(axis=1) > 0) for k in range(K)], axis=0)

                ab = alpha_spec_bounds(net, lo[sel], hi[sel], C, cb, [(l[sel], u[sel]) for l, u in sb.pre],
                                       iters=ctx.alpha_iters, done=refuted)
                ga = ab.guarded(_TOL)
                better = ga > lb[sel]
                lb[sel] = np.where(better, ga, lb[sel])
                coef_all, low_all, scale_all = coef_all.copy(), low_all.copy(), scale_all.copy()
                coef_all[sel] = np.where(better[..., None], ab.coef, coef_all[sel])
                low_all[sel] = np.where(better, ab.lower, low_all[sel])
                scale_all[sel] = np.where(better, ab.scale, scale_all[sel])
                dk = np.stack([lb[:, grp == k].max(axis=1) for k in range(K)], axis=1)
                alive &= ~(dk > 0)
        keep = alive.any(axis=1)
        if not keep.any():
            continue
        lo, hi, alive, lb, dk = lo[keep], hi[keep], alive[keep], lb[keep], dk[keep]
        coef, low, scl = coef_all[keep], low_all[keep], scale_all[keep]
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
        mc = ctx.check(region, np.vstack([cen, vert]))
        cm = np.minimum(mc[:n], mc[n:])  # an upper bound on the box's smallest margin
        pool.add(cm, lo, hi)
        pool.maybe_attack(ctx, region, C, cb, grp)
        # exact leaves
        unstable = sb.unstable_counts()[keep] if sb.pre else np.zeros(n, dtype=int)
        tiny = (rad.max(axis=1) <= 1e-10 * (1.0 + np.abs(cen).max(axis=1)))
        split = np.ones(n, dtype=bool)
        few = (unstable <= ctx.leaf_unstable) if ctx.patterns_ok else (unstable == 0)
        pat = (unstable >= 1) & (unstable <= ctx.pattern_unstable) & ~tiny & ~few if ctx.patterns_ok else np.zeros(n, bool)
        for i in np.flatnonzero(pat):
            if ctx.expired():
                raise TimeoutError
            pl = [p[0][i] for p in pre]
            pu = [p[1][i] for p in pre]
            for k in np.flatnonzero(alive[i]):
                ctx.stats["pattern_leaves"] = ctx.stats.get("pattern_leaves", 0) + 1
                oc = region.outputs[k]
                tol = _TOL * (1.0 + scl[i, grp == k].max())
                if pattern_leaf(net.dense_layers, ctx.slopes, list(zip(pl, pu)), lo[i], hi[i], oc.A, oc.b, tol,
                                lambda X: ctx.check(region, X)):
                    alive[i, k] = False
            split[i] = bool(alive[i].any())
        for i in np.flatnonzero(few | tiny):
            if ctx.expired():
                raise TimeoutError
            pl = [p[0][i] for p in pre]
            pu = [p[1][i] for p in pre]
            for k in np.flatnonzero(alive[i]):
                idx = np.flatnonzero(grp == k)
                if unstable[i] == 0:
                    # the backward bound is exact when nothing is unstable: value = lower + |G|.sum
                    Gk = coef[i, idx]
                    hk = low[i, idx] + np.abs(Gk).sum(axis=1)
                    _lp_leaf(ctx, region, lo[i], hi[i], Gk, hk, pl, pu, k, _TOL * (1.0 + scl[i, idx].max()))
                elif few[i] and not tiny[i]:
                    if _milp_leaf(ctx, region, lo[i], hi[i], pl, pu, k):
                        alive[i, k] = False
                    continue  # undecided disjuncts stay alive and the box is split further
                else:
                    _z3_leaf(ctx, region, lo[i], hi[i], pl, pu, k)
                alive[i, k] = False
            split[i] = bool(alive[i].any())
        idx_split = np.flatnonzero(split)
        if idx_split.size == 0:
            continue
        ctx.stats["volume_done"] -= float(np.prod((hi[idx_split] - lo[idx_split]) / width, axis=1).sum())
        # most promising boxes (smallest sampled margin) first: their children are bounded next
        idx_split = idx_split[np.argsort(cm[idx_split], kind="stable")]
        lo, hi, alive, coef, rad, lb = (lo[idx_split], hi[idx_split], alive[idx_split], coef[idx_split],
                                        rad[idx_split], lb[idx_split])
        rows = rows[idx_split]
        pre = [(l[idx_split], u[idx_split]) for l, u in pre]
        # split dimension: |coefficient| of the bound's linear function (sensitivity x half-width) plus a
        # width term of the same scale, |c_i| + max_j |c_j| * r_i / max_j r_j.  The coefficient alone keeps
        # halving a short, sensitive side while the looseness comes from unstable neurons spread over the
        # long sides; the mix cut the boxes needed on ACAS Xu prop_1 by 5-70x (e.g. 3_3/prop_1: >30 s -> 116 boxes)
        m = lo.shape[0]
        score = np.abs(coef[np.arange(m), rows])
        smax = score.max(axis=1, keepdims=True)
        score = np.where(smax > 0, score + smax * rad / np.maximum(rad.max(axis=1, keepdims=True), 1e-300), rad)
        dim = np.argmax(score, axis=1)
        mid = (lo[np.arange(m), dim] + hi[np.arange(m), dim]) / 2
        lo2, hi2 = lo.copy(), hi.copy()
        hi[np.arange(m), dim] = mid
        lo2[np.arange(m), dim] = mid
        child_prior = pre if use_prior else inf_prior
        if not use_prior:
            child_prior = [(np.broadcast_to(l, (2 * m, l.shape[1])), np.broadcast_to(u, (2 * m, u.shape[1])))
                           for l, u in inf_prior]
        # children interleaved (parent order kept), so a partial pop takes the best parents' children
        stack.append((_pair(lo, lo2), _pair(hi, hi2), _pair(alive, alive), _pair(lb, lb),
                      [(_pair(l, l), _pair(u, u)) for l, u in child_prior] if use_prior else child_prior))


def _pair(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rows a_0, b_0, a_1, b_1, ..."""
    return np.stack([a, b], axis=1).reshape((2 * a.shape[0],) + a.shape[1:])


class _AttackPool:
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

    def maybe_attack(self, ctx: _Ctx, region: InputRegion, C, cb, grp) -> None:
        now = time.monotonic()
        if self.m.size == 0 or self.spent > self.share * (now - self.t0):
            return
        o = np.argsort(self.m)[: self.n_boxes]
        lo, hi = self.lo[o], self.hi[o]
        reps = 1 + self.n_random
        LO, HI = np.repeat(lo, reps, axis=0), np.repeat(hi, reps, axis=0)
        x = LO + (HI - LO) * ctx.rng.uniform(size=LO.shape)
        x[::reps] = (lo + hi) / 2
        try:
            _pgd(ctx, region, x, LO, HI, self.steps, 0.25, 1e-5, C, cb, grp)
        finally:
            self.spent += time.monotonic() - now
            ctx.stats["attacks"] = ctx.stats.get("attacks", 0) + 1
        # attacked boxes leave the pool (their children come back if they stay promising)
        self.m, self.lo, self.hi = np.zeros(0), None, None


def _slice_part(part, sl):
    lo, hi, al, lb, prior = part
    return (lo[sl], hi[sl], al[sl], lb[sl], [(l[sl], u[sl]) for l, u in prior])


# ------------------------------------------------------------------------------------------ relu split
def _relu_split(ctx: _Ctx, region: InputRegion, use_bounds: bool = True) -> None:
    C, cb, grp = _spec_rows(region)
    K = len(region.outputs)
    alive = np.ones(K, dtype=bool)
    pre = None
    if use_bounds:
        sb = spec_bounds(ctx.net, region.lower[None, :], region.upper[None, :], C, cb, method=ctx.intermediate)
        if C.shape[0]:
            g = sb.guarded(_TOL)
            dk = np.array([g[0, grp == k].max() if (grp == k).any() else -np.inf for k in range(K)])
            alive = ~(dk > 0)
        pre = [(l[0], u[0]) for l, u in sb.pre]
        ctx.stats["unstable_after_bounds"] = int(sb.unstable_counts()[0]) if sb.pre else 0
    outs = [region.outputs[k] for k in np.flatnonzero(alive)]
    if not outs:
        return
    ctx.stats["z3_leaves"] = ctx.stats.get("z3_leaves", 0) + 1
    status, val = z3_decide(ctx.net, region.lower, region.upper, outs, pre, timeout=ctx.remaining(), region=region)
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
    intermediate: str = "incremental",
    max_boxes: int | None = None,
    leaf_unstable: int = 0,
    pattern_unstable: int = 0,
    alpha_unstable: int = 16,
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
    intermediate: intermediate bounds (:func:`verification.bounds.batched.batched_layer_bounds`):
        ``"incremental"`` (default; batched CROWN that reuses the parent box's bounds and back-substitutes
        only neurons left unstable by interval bounds; ReLU / leaky-ReLU nets, others use ``"crown"``),
        ``"crown"`` (batched CROWN of every neuron) or ``"ibp"`` (intervals only).  Activations without a
        linear relaxation (Householder) fall back to intervals.
    max_boxes: optional cap on the number of boxes bounded by input splitting (a deterministic resource
        limit; exceeding it gives ``unknown`` with reason ``"box limit"``).
    leaf_unstable: input splitting stops at boxes with at most this many unstable neurons (ReLU / leaky
        ReLU nets; default 0 = only fully stable boxes) and decides them with one big-M MILP (HiGHS); a MILP
        optimum within 1e-6 of unsafe that is no float64 counterexample sends the box back to splitting.
    pattern_unstable: boxes with 1..k unstable ReLU / leaky-ReLU neurons are decided by enumerating the
        activation patterns (:mod:`verification.smt._pattern`; closed-form Lagrangian bounds, then an LP
        whose dual weights give a float64-checked certificate).  Default 0 (off); undecided boxes are split.
    alpha_unstable: boxes that CROWN leaves unrefuted and that have at most this many unstable neurons get
        alpha-CROWN on the specification rows (:func:`~verification.bounds.batched.alpha_spec_bounds`: lower
        slopes optimised by 10 Adam steps, intermediate bounds fixed, early exit once refuted) before they are
        split.  ReLU / leaky-ReLU nets with CROWN intermediate bounds; ``0`` turns it off.  Default 16.

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
    if intermediate not in INTERMEDIATE:
        raise InvalidParameterError(
            f"The 'intermediate' parameter of verify must be one of {INTERMEDIATE}. Got {intermediate!r} instead.")
    if method not in METHODS:
        raise InvalidParameterError(f"The 'method' parameter of verify must be one of {METHODS}. Got {method!r} instead.")
    net = net.canonical()
    if prop.in_dim != net.in_dim or prop.out_dim != net.out_dim:
        raise ShapeMismatchError(
            f"the property has {prop.in_dim} inputs and {prop.out_dim} outputs, the network has "
            f"{net.in_dim} inputs and {net.out_dim} outputs"
        )
    exact_ok = all(a.is_piecewise_linear for a in net.activations)
    if method == "auto":
        # ReLU splitting hands the leaves to Z3, which needs piecewise-linear activations
        method = "input-split" if net.in_dim <= 12 or not exact_ok else "relu-split"
    stats: dict = {}
    for key in ("assumed", "dropped"):  # what the loader assumed about the file, carried into the result
        if net.metadata.get(key):
            stats[key] = net.metadata[key]
    ctx = _Ctx(net, prop, t0 + timeout, np.random.default_rng(seed), stats)
    if max_boxes is not None:
        if not (isinstance(max_boxes, (int, np.integer)) and max_boxes >= 1):
            raise InvalidParameterError(f"The 'max_boxes' parameter of verify must be an int >= 1 or None. Got {max_boxes!r} instead.")
        ctx.max_boxes = int(max_boxes)
    for name, val in (("leaf_unstable", leaf_unstable), ("pattern_unstable", pattern_unstable),
                      ("alpha_unstable", alpha_unstable)):
        if not (isinstance(val, (int, np.integer)) and not isinstance(val, bool) and val >= 0):
            raise InvalidParameterError(f"The '{name}' parameter of verify must be an int >= 0. Got {val!r} instead.")
    ctx.leaf_unstable = int(leaf_unstable)
    ctx.patterns_ok = is_two_piece(net)
    ctx.pattern_unstable = int(pattern_unstable)
    ctx.alpha_unstable = int(alpha_unstable)
    ctx.slopes = [_leaky_slope(a) for a in net.activations]
    ctx.intermediate = intermediate
    ctx.exact_ok = exact_ok

    def done(status, x=None, y=None, reason=""):
        return VerifyResult(status, x, y, time.monotonic() - t0, method, reason, stats)

    if timeout == 0:
        return done("unknown", reason="timeout")
    if not prop.regions:
        return done("holds", reason="empty input set")
    try:
        regions = list(prop.regions)
        if method == "input-split":
            # cheap falsification, then a bound on each whole box (most `holds` end here), then the full
            # falsification (samples + PGD) and branch and bound on the boxes not yet proved
            for region in regions:
                _falsify(ctx, region, min(n_samples, 256), 0, 0)
            regions = [r for r in regions if not _root_refuted(ctx, r, intermediate)]
        if method != "z3-plain":
            for region in regions:
                _falsify(ctx, region, n_samples, pgd_steps, pgd_starts)
        for region in regions:
            if method == "input-split":
                # non piecewise-linear nets: bounds + splitting still prove; leaves are left unresolved
                _input_split(ctx, region, batch, intermediate)
            elif not exact_ok:  # bounds and the attack may still settle it; otherwise unknown, never an error
                if method != "relu-split" or not _root_refuted(ctx, region, intermediate):
                    ctx.unresolved += 1
                    ctx.stats["undecided_leaves"] = ctx.stats.get("undecided_leaves", 0) + 1
            else:
                _relu_split(ctx, region, use_bounds=(method == "relu-split"))
    except _Found as f:
        x = f.x
        # re-check from scratch against the whole property as written (exact box, exact rows, strictness)
        if not confirm_property(net, prop, x):  # pragma: no cover - defensive
            return done("unknown", reason="counterexample failed re-evaluation")
        return done("violated", x, net(x), "counterexample")
    except TimeoutError:
        return done("unknown", reason="timeout")
    except _BoxLimit:
        return done("unknown", reason="box limit")
    if ctx.unresolved:
        if not exact_ok:
            names = sorted({a.describe() for a in net.activations if not a.is_piecewise_linear})
            return done("unknown", reason=f"{ctx.unresolved} region(s) undecided: bounds did not refute them, no "
                        f"counterexample was found, and {', '.join(names)} has no exact encoding")
        return done("unknown", reason=f"{ctx.unresolved} leaf problem(s) unresolved")
    return done("holds", reason="proved")
