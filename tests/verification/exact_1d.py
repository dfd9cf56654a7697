"""Exact oracle for networks with one input: the linear pieces of ``f`` on ``[lo, hi]`` in rational arithmetic.

Independent of the toolkit's methods: it reads only the weights and the activation parameters of a
:class:`~verification.network.Network` and splits the interval wherever a piecewise-linear activation
changes piece (a pre-activation crosses a kink, two GroupSort entries swap, ``v·z`` changes sign).  On
every resulting segment ``f`` is affine, so the exact range and the exact Lipschitz constant follow from
the segment end points and slopes.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from verification.activations import GroupSort, Householder, Identity, LeakyReLU, ReLU
from verification.network import Dense

F = Fraction


def _affine_layer(layer: Dense, seg):
    """seg: (x0, x1, value-at-x0 list, slope list) -> same for W h + b."""
    x0, x1, val, slope = seg
    W = [[F(float(w)) for w in row] for row in layer.weight]
    b = [F(float(v)) for v in layer.bias]
    nv = [sum((w * v for w, v in zip(row, val)), F(0)) + bi for row, bi in zip(W, b)]
    ns = [sum((w * s for w, s in zip(row, slope)), F(0)) for row in W]
    return x0, x1, nv, ns


def _crossings(x0, x1, val, slope, funcs):
    """Points strictly inside (x0, x1) where some affine ``g(x) = a + s (x - x0)`` (given as (a, s)) is 0."""
    pts = set()
    for a, s in funcs:
        if s != 0:
            t = x0 - a / s
            if x0 < t < x1:
                pts.add(t)
    return sorted(pts)


def _split(seg, funcs):
    x0, x1, val, slope = seg
    cuts = [x0, *_crossings(x0, x1, val, slope, funcs), x1]
    out = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        out.append((a, b, [v + s * (a - x0) for v, s in zip(val, slope)], list(slope)))
    return out


def _act(act, seg):
    x0, x1, val, slope = seg
    mid = [v + s * (x1 - x0) / 2 for v, s in zip(val, slope)]  # the piece is fixed on the open segment
    if isinstance(act, Identity):
        return seg
    if isinstance(act, (ReLU, LeakyReLU)):
        a = F(0) if isinstance(act, ReLU) else F(act.negative_slope)
        k = [F(1) if m > 0 else a for m in mid]
        return x0, x1, [ki * v for ki, v in zip(k, val)], [ki * s for ki, s in zip(k, slope)]
    if isinstance(act, GroupSort):
        g = act.group_size
        nv, ns = [], []
        for j in range(0, len(val), g):
            order = sorted(range(j, j + g), key=lambda i: mid[i], reverse=True)
            nv += [val[i] for i in order]
            ns += [slope[i] for i in order]
        return x0, x1, nv, ns
    if isinstance(act, Householder):
        v = [F(float(c)) for c in act.v]
        d = len(v)
        nv, ns = [], []
        for j in range(0, len(val), d):
            sm = sum(vi * m for vi, m in zip(v, mid[j:j + d]))
            gv, gs = val[j:j + d], slope[j:j + d]
            if sm > 0:
                nv += gv
                ns += gs
            else:
                pv = sum(vi * t for vi, t in zip(v, gv))
                ps = sum(vi * t for vi, t in zip(v, gs))
                nv += [t - 2 * pv * vi for vi, t in zip(v, gv)]
                ns += [t - 2 * ps * vi for vi, t in zip(v, gs)]
        return x0, x1, nv, ns
    raise TypeError(f"no exact 1-D oracle for {act.describe()}")


def _kinks(act, seg):
    """Affine functions (value at x0, slope) whose zeros are the piece changes of ``act`` on ``seg``."""
    _, _, val, slope = seg
    if isinstance(act, Identity):
        return []
    if isinstance(act, (ReLU, LeakyReLU)):
        return list(zip(val, slope))
    if isinstance(act, GroupSort):
        g = act.group_size
        out = []
        for j in range(0, len(val), g):
            for p in range(j, j + g):
                for q in range(p + 1, j + g):
                    out.append((val[p] - val[q], slope[p] - slope[q]))
        return out
    if isinstance(act, Householder):
        v = [F(float(c)) for c in act.v]
        d = len(v)
        return [(sum(vi * t for vi, t in zip(v, val[j:j + d])), sum(vi * t for vi, t in zip(v, slope[j:j + d])))
                for j in range(0, len(val), d)]
    raise TypeError(f"no exact 1-D oracle for {act.describe()}")


def pieces(net, lo: float, hi: float) -> list:
    """Segments ``(x0, x1, f(x0), f'(x))`` (Fractions) covering ``[lo, hi]`` on which ``net`` is affine."""
    assert net.in_dim == 1
    segs = [(F(float(lo)), F(float(hi)), [F(float(lo))], [F(1)])]
    for layer in net.layers:
        if isinstance(layer, Dense):
            segs = [_affine_layer(layer, s) for s in segs]
        else:
            new = []
            for s in segs:
                new.extend(_act(layer, p) for p in _split(s, _kinks(layer, s)))
            segs = new
    return segs


def exact_range(net, lo: float, hi: float) -> tuple[list, list]:
    """Exact ``(min, max)`` of every output over ``[lo, hi]`` (lists of Fractions)."""
    segs = pieces(net, lo, hi)
    m = net.out_dim
    ends = []
    for x0, x1, val, slope in segs:
        ends.append(val)
        ends.append([v + s * (x1 - x0) for v, s in zip(val, slope)])
    return [min(e[i] for e in ends) for i in range(m)], [max(e[i] for e in ends) for i in range(m)]


def exact_lipschitz(net, lo: float, hi: float, norm) -> float:
    """Exact Lipschitz constant on ``[lo, hi]`` (1 input: the largest slope norm over the pieces)."""
    best = F(0)
    for x0, x1, _, slope in pieces(net, lo, hi):
        if x1 <= x0:
            continue
        if norm == 2:
            val = sum(s * s for s in slope)
            best = max(best, val)
        else:
            best = max(best, max(abs(s) for s in slope))
    return float(np.sqrt(float(best))) if norm == 2 else float(best)


def violated_exactly(net, lo: float, hi: float, A, b, strict) -> bool:
    """Is there ``x`` in ``[lo, hi]`` with ``A f(x) <= b`` (``<`` on strict rows)?  Exact: on each affine
    piece the feasible set of ``x`` is an interval, computed in Fractions."""
    A = [[F(float(a)) for a in row] for row in np.atleast_2d(A)]
    b = [F(float(v)) for v in np.atleast_1d(b)]
    for x0, x1, val, slope in pieces(net, lo, hi):
        # g_r(t) = c_r + d_r t for t in [0, x1 - x0]
        tlo, thi, lo_open, hi_open = F(0), x1 - x0, False, False
        ok = True
        for row, br, st in zip(A, b, strict):
            c = sum((a * v for a, v in zip(row, val)), F(0)) - br
            d = sum((a * s for a, s in zip(row, slope)), F(0))
            if d == 0:
                if c > 0 or (st and c == 0):
                    ok = False
                    break
                continue
            t = -c / d
            if d > 0:  # c + d t <= 0  <=>  t <= t*
                if t < thi or (t == thi and st):
                    thi, hi_open = t, st
            else:
                if t > tlo or (t == tlo and st):
                    tlo, lo_open = t, st
        if not ok:
            continue
        if tlo < thi or (tlo == thi and not lo_open and not hi_open):
            return True
    return False
