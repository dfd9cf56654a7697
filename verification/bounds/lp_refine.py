"""Tighter pre-activation bounds from LPs over the triangle (planet) relaxation (Ehlers, ATVA 2017), each
answer certified through its dual by weak duality in float64; HiGHS's reported optimum is never used.

For a layer ``k`` of a ReLU / leaky-ReLU net (activation ``f(z) = max(z, a z)``, ``a <= 1``) with sound bounds
``l_i <= z_i <= u_i`` on the layers before it, the LP over the input box and the relaxation of layers
``0..k-1`` -- ``z_i = W_i f_{i-1} + b_i``, and per unstable neuron ``y >= z``, ``y >= a z``,
``y <= f(l) + s (z - l)`` (the chord, ``s = (u - f(l)) / (u - l)``) -- bounds ``z_{k,j}`` below and above
(:func:`refine_layer`).  Every LP is ``min c·v + c0`` s.t. ``A_ub v <= b_ub``, ``A_eq v = b_eq``,
``lb <= v <= ub`` with every variable bounded, so *any* multipliers ``y_ub <= 0``, ``y_eq`` give the lower
bound ``c0 + y_ub·b_ub + y_eq·b_eq + sum_i min(r_i lb_i, r_i ub_i)``, ``r = c - A_ubᵀ y_ub - A_eqᵀ y_eq``
(:func:`certified_min`, minus a rounding guard of the float64 sums); the LP's duals make it tight.  A wrong
dual only gives a weaker bound, and the result is intersected with the bounds already known
(:func:`refine_bounds`), so it is never looser than CROWN.

The chord's constant is rounded up so that the row, as stored in float64, holds for every ``z`` in
``[l, u]``; the weights and biases enter the rows unchanged.  The bounds ``l, u`` fed in are assumed sound
(CROWN / alpha-CROWN in float64, like the rest of :mod:`verification.bounds`).
"""

from __future__ import annotations

import time

import numpy as np

from verification.network import Network

__all__ = ["LP", "certified_min", "layer_lp", "refine_layer", "refine_bounds", "solve_lp", "unstable_score"]

_EPS = np.finfo(float).eps


class LP:
    """``min c·v + c0`` s.t. ``A_ub v <= b_ub``, ``A_eq v = b_eq``, ``lb <= v <= ub`` (sparse CSR matrices),
    the objective set per query (:meth:`objective`) from the affine map of the target layer."""

    def __init__(self, A_ub, b_ub, A_eq, b_eq, lb, ub, out_cols, W, b, last):
        self.A_ub, self.b_ub, self.A_eq, self.b_eq = A_ub, b_ub, A_eq, b_eq
        self.lb, self.ub = lb, ub
        self.out_cols, self.W, self.b = out_cols, W, b  # target z = W[:, kept] v[out_cols] + b
        self.last = last  # (z, y) columns of each neuron of the last relaxed layer (-1: none)

    def objective(self, j: int, sign: float) -> tuple[np.ndarray, float]:
        """``(c, c0)`` of ``sign * z_j``."""
        c = np.zeros(self.lb.size)
        c[self.out_cols] = sign * self.W[j]
        return c, sign * float(self.b[j])


def certified_min(lp: LP, c: np.ndarray, c0: float, y_ub: np.ndarray, y_eq: np.ndarray) -> float:
    """Rigorous lower bound of ``min c·v + c0`` over the LP from any multipliers (weak duality; ``y_ub`` is
    clipped to ``<= 0``), minus ``4 (m + n + 2) eps`` times the magnitude of every term summed (a bound on the
    float64 rounding of the products and sums, Higham's ``gamma_n``).  ``-inf`` on non-finite input."""
    y_ub = np.minimum(np.asarray(y_ub, dtype=np.float64), 0.0)
    y_eq = np.asarray(y_eq, dtype=np.float64)
    if not (np.all(np.isfinite(y_ub)) and np.all(np.isfinite(y_eq))):
        return -np.inf
    r = c - lp.A_ub.T @ y_ub - lp.A_eq.T @ y_eq
    val = c0 + y_ub @ lp.b_ub + y_eq @ lp.b_eq + np.minimum(r * lp.lb, r * lp.ub).sum()
    big = np.maximum(np.abs(lp.lb), np.abs(lp.ub))
    col = np.abs(c) + abs(lp.A_ub).T @ np.abs(y_ub) + abs(lp.A_eq).T @ np.abs(y_eq)
    mag = abs(c0) + np.abs(y_ub) @ np.abs(lp.b_ub) + np.abs(y_eq) @ np.abs(lp.b_eq) + col @ big
    m, n = lp.A_ub.shape[0] + lp.A_eq.shape[0], lp.lb.size
    val = float(val - 4 * (m + n + 2) * _EPS * mag)
    return val if np.isfinite(val) else -np.inf


def solve_lp(lp: LP, c: np.ndarray):
    """HiGHS (scipy) on the LP with cost ``c``: ``(y_ub, y_eq)`` (its duals) or ``None``.  Not trusted:
    callers certify with :func:`certified_min`."""
    from scipy.optimize import linprog  # scipy is imported only when an LP is solved

    res = linprog(c, A_ub=lp.A_ub, b_ub=lp.b_ub, A_eq=lp.A_eq, b_eq=lp.b_eq,
                  bounds=np.stack([lp.lb, lp.ub], axis=1), method="highs", options={"presolve": False})
    if res.status != 0:
        return None
    return res.ineqlin.marginals, res.eqlin.marginals


def _chord_const(l, u, a):
    """Constant ``t`` with ``f(z) - s z <= t`` on ``[l, u]`` for the stored slope ``s`` (the max at the end
    points, rounded up), and ``s``."""
    s = (u - a * l) / (u - l)
    e1, e2 = a * l - s * l, u - s * u
    t = np.maximum(e1, e2)
    return s, t + 4 * _EPS * (np.abs(a * l) + np.abs(s * l) + np.abs(u) + np.abs(s * u)) + np.abs(t) * _EPS


class _Rows:
    """COO triplets of constraint rows, numbered as they are added."""

    def __init__(self):
        self.r, self.c, self.v, self.rhs, self.m = [], [], [], [], 0

    def add(self, cols: list, vals: list, rhs: np.ndarray) -> None:
        """``len(rhs)`` rows: row ``q`` has ``vals[t][q]`` at column ``cols[t][q]`` for each term ``t``."""
        m = rhs.size
        for c, v in zip(cols, vals):
            self.r.append(self.m + np.arange(m))
            self.c.append(np.asarray(c))
            self.v.append(np.broadcast_to(np.asarray(v, dtype=np.float64), (m,)))
        self.rhs.append(np.asarray(rhs, dtype=np.float64))
        self.m += m

    def add_dense(self, M: np.ndarray, cols: np.ndarray) -> None:
        """Add ``M`` (m, len(cols)) to the last ``m`` rows added."""
        rr, cc = np.nonzero(M)
        self.r.append(self.m - M.shape[0] + rr)
        self.c.append(cols[cc])
        self.v.append(M[rr, cc])

    def matrix(self, n: int):
        import scipy.sparse as sp  # scipy is imported only when an LP is built

        cat = (lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dtype=dt))
        A = sp.csr_matrix((cat(self.v, np.float64), (cat(self.r, np.int64), cat(self.c, np.int64))),
                          shape=(self.m, n))
        return A, cat(self.rhs, np.float64)


def layer_lp(net: Network, lo: np.ndarray, hi: np.ndarray, pre: list, k: int) -> LP:
    """The LP of layer ``k``'s pre-activations over the box ``lo, hi`` (n0,) and the relaxation of layers
    ``0..k-1`` with bounds ``pre[i] = (l_i, u_i)`` (any shape with n_i entries; see the module docstring).
    Neurons with ``f = 0`` on their range get no variable; a neuron active on its range is its own output."""
    layers, acts = net.affine_layers, net.activations
    lbs, ubs = [np.asarray(lo, dtype=np.float64).reshape(-1)], [np.asarray(hi, dtype=np.float64).reshape(-1)]
    n = lbs[0].size
    prev_cols, prev_keep = np.arange(n), np.arange(n)  # columns of the previous outputs, and which neurons
    eq, ub = _Rows(), _Rows()
    last = (np.zeros(0, dtype=int), np.zeros(0, dtype=int))
    for i in range(k):
        l, u = (np.asarray(v, dtype=np.float64).reshape(-1) for v in pre[i])
        a = float(acts[i].two_piece_slope)
        active, inactive = l >= 0, u <= 0
        zkeep = np.flatnonzero(~(inactive & (a == 0.0)))  # neurons with a z column
        nz = zkeep.size
        zcols = n + np.arange(nz)
        n += nz
        lbs.append(l[zkeep])
        ubs.append(u[zkeep])
        eq.add([zcols], [1.0], layers[i].bias[zkeep])  # z - W f_prev = b
        eq.add_dense(-layers[i].as_matrix()[np.ix_(zkeep, prev_keep)], prev_cols)
        # outputs: an active neuron is its own z; the others get a column y
        extra = np.flatnonzero(~active[zkeep])
        ycols = n + np.arange(extra.size)
        n += extra.size
        out_cols = zcols.copy()
        out_cols[extra] = ycols
        ze = zkeep[extra]
        le, ue = l[ze], u[ze]
        un = ue > 0
        zc = zcols[extra]
        lbs.append(np.nextafter(a * le, -np.inf) if a != 0.0 else np.zeros(ze.size))
        ubs.append(np.where(un, ue, np.nextafter(a * ue, np.inf)))
        li = np.flatnonzero(~un)  # leaky inactive: y - a z = 0
        if li.size:
            eq.add([ycols[li], zc[li]], [1.0, -a], np.zeros(li.size))
        ui = np.flatnonzero(un)  # unstable: z - y <= 0, y - s z <= t, a z - y <= 0 (a != 0)
        if ui.size:
            s, t = _chord_const(le[ui], ue[ui], a)
            ub.add([zc[ui], ycols[ui]], [1.0, -1.0], np.zeros(ui.size))
            ub.add([ycols[ui], zc[ui]], [1.0, -s], t)
            if a != 0.0:
                ub.add([zc[ui], ycols[ui]], [a, -1.0], np.zeros(ui.size))
        prev_cols, prev_keep = out_cols, zkeep
        last = (np.full(l.size, -1), np.full(l.size, -1))
        last[0][zkeep] = zcols
        last[1][ze] = ycols
    A_eq, b_eq = eq.matrix(n)
    A_ub, b_ub = ub.matrix(n)
    return LP(A_ub, b_ub, A_eq, b_eq, np.concatenate(lbs), np.concatenate(ubs), prev_cols,
              layers[k].as_matrix()[:, prev_keep], layers[k].bias, last)


def unstable_score(l: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``-l u / (u - l)`` for unstable neurons (the height of the triangle relaxation at ``z = 0``: the most
    its upper line can overstate ``f``), ``-inf`` for stable ones."""
    unst = (l < 0) & (u > 0)
    return np.where(unst, -l * u / np.where(unst, u - l, 1.0), -np.inf)


def _certified(lp: LP, j: int, sign: float) -> float:
    c, c0 = lp.objective(j, sign)
    duals = solve_lp(lp, c)
    return -np.inf if duals is None else certified_min(lp, c, c0, *duals)


def _split(lp: LP, z: np.ndarray, y: np.ndarray, signs: np.ndarray, a: float) -> LP:
    """The LP with unstable neurons (columns ``z``, ``y`` of the last relaxed layer) fixed to a side:
    ``z >= 0, y <= z`` (sign +1) or ``z <= 0, y <= a z`` (sign -1); with the relaxation's ``y >= z``,
    ``y >= a z`` each becomes exact."""
    import scipy.sparse as sp  # scipy is imported only when an LP is built

    lb, ub = lp.lb.copy(), lp.ub.copy()
    pos = signs > 0
    lb[z[pos]] = np.maximum(lb[z[pos]], 0.0)
    ub[z[~pos]] = np.minimum(ub[z[~pos]], 0.0)
    m = z.size
    rows = sp.csr_matrix((np.concatenate([np.ones(m), np.where(pos, -1.0, -a)]),
                          (np.concatenate([np.arange(m)] * 2), np.concatenate([y, z]))), shape=(m, lb.size))
    return LP(sp.vstack([lp.A_ub, rows], format="csr"), np.concatenate([lp.b_ub, np.zeros(m)]), lp.A_eq, lp.b_eq,
              lb, ub, lp.out_cols, lp.W, lp.b, lp.last)


def _patterns(lp: LP, net: Network, pre: list, k: int, j: int, depth: int):
    """The ``2^d`` LPs of the sign patterns of the ``d <= depth`` unstable neurons of layer ``k - 1`` with the
    largest ``|W_k[j, i]| * score_i`` (:func:`unstable_score`).  The patterns cover every input."""
    l, u = (np.asarray(v, dtype=np.float64).reshape(-1) for v in pre[k - 1])
    zc, yc = lp.last
    sc = unstable_score(l, u)
    ok = np.isfinite(sc) & (yc >= 0)
    w = np.where(ok, np.abs(net.affine_layers[k].as_matrix()[j]) * np.where(ok, sc, 0.0), -np.inf)
    pick = np.argsort(-w, kind="stable")[:depth]
    pick = pick[np.isfinite(w[pick]) & (w[pick] > 0)]
    a = float(net.activations[k - 1].two_piece_slope)
    for bits in range(1 << pick.size):
        signs = np.array([1.0 if bits >> t & 1 else -1.0 for t in range(pick.size)])
        yield _split(lp, zc[pick], yc[pick], signs, a)


def refine_layer(net: Network, lo: np.ndarray, hi: np.ndarray, pre: list, k: int, neurons: np.ndarray,
                 deadline: float = np.inf, depth: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """Certified LP bounds of ``z_{k,j}`` for ``j`` in ``neurons`` (in that order, until ``deadline``,
    ``time.monotonic``), intersected with ``pre[k]``.  With ``depth > 0`` each bound is also the minimum over
    the ``2^depth`` sign patterns of the neurons of layer ``k - 1`` that weigh most on ``z_{k,j}``
    (:func:`_patterns`; a partial MILP: each pattern's LP is certified, and a pattern whose LP fails
    -- e.g. an empty one -- falls back to the unsplit bound, valid since its set is a subset).  Returns
    ``(l, u, lps)`` (flat copies; ``lps``: LPs solved)."""
    l, u = (np.array(v, dtype=np.float64).reshape(-1) for v in pre[k])
    lp = layer_lp(net, lo, hi, pre, k)
    lps = 0
    for j in neurons:
        j = int(j)
        for sign in (1.0, -1.0):
            if time.monotonic() >= deadline:
                return l, u, lps
            v = _certified(lp, j, sign)
            lps += 1
            if depth > 0 and np.isfinite(v):
                best = np.inf
                for p in _patterns(lp, net, pre, k, j, depth):
                    if time.monotonic() >= deadline:
                        best = -np.inf
                        break
                    best = min(best, max(v, _certified(p, j, sign)))
                    lps += 1
                v = max(v, best)
            if sign > 0:
                l[j] = max(l[j], v)
            else:
                u[j] = min(u[j], -v)
    return l, u, lps


def refine_bounds(net: Network, lo: np.ndarray, hi: np.ndarray, pre: list, per_layer: int,
                  deadline: float = np.inf, repropagate=None, depth: int = 0) -> tuple[list, int]:
    """Layers ``1..L-1`` in order: the ``per_layer`` unstable neurons of largest :func:`unstable_score` get
    certified LP bounds (:func:`refine_layer`) over the bounds refined so far.  ``repropagate(pre) -> pre``,
    optional, is called after each layer to tighten the later layers from the refined ones (e.g. CROWN with
    the refined bounds as prior; it must return bounds no looser than its input).  Returns the bounds (same
    shapes as ``pre``) and the number of LPs solved."""
    pre = [(np.array(l, dtype=np.float64), np.array(u, dtype=np.float64)) for l, u in pre]
    lps = 0
    for k in range(1, len(pre)):
        if time.monotonic() >= deadline:
            break
        shape = pre[k][0].shape
        sc = unstable_score(pre[k][0].reshape(-1), pre[k][1].reshape(-1))
        pick = np.argsort(-sc, kind="stable")[:per_layer]
        pick = pick[np.isfinite(sc[pick])]
        if pick.size == 0:
            continue
        l, u, n = refine_layer(net, lo, hi, pre, k, pick, deadline, depth)
        lps += n
        pre[k] = (l.reshape(shape), u.reshape(shape))
        if repropagate is not None and k + 1 < len(pre):
            pre = list(repropagate(pre))
    return pre, lps
