"""Certified LP refinement of pre-activation bounds (``verification.bounds.lp_refine``).

Soundness: on small random ReLU / leaky-ReLU nets the refined bounds contain the exact range of every
pre-activation (a big-M MILP written in the tests, and sampled points), and are never looser than CROWN;
the dual certificate gives a bound below the exact minimum for any multipliers (a deliberately wrong dual
is not believed: its bound is weaker, never above the truth) and equals the LP optimum with HiGHS's duals;
the chord rows hold in exact rational arithmetic.  Verdicts of ``method="bab"`` with the refinement on equal
the MILP truth on both sides of the true minimum.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from scipy.optimize import linprog

from tests.verification.test_relu_bab import _milp_min, _net, _preacts, milp_instance
from verification import verify
from verification.activations import LeakyReLU
from verification.bounds.crown import crown_layers
from verification.bounds.lp_refine import _chord_const, certified_min, layer_lp, refine_bounds, solve_lp
from verification.network import Network
from verification.smt import relu_bab
from verification.spec import box_property


def _crown(net, lo, hi):
    return [(l[0], u[0]) for l, u in crown_layers(net, lo[None], hi[None], final=False).pre]


def _exact_range(net, lo, hi, k, j):
    """Exact ``min / max`` of pre-activation ``z_{k,j}`` over the box (MILP on the net cut after layer k)."""
    cut = Network(tuple(net.layers[:2 * k + 1]))
    e = np.zeros(net.affine_layers[k].out_features)
    e[j] = 1.0
    return _milp_min(cut, lo, hi, e), -_milp_min(cut, lo, hi, -e)


def _case(seed, act=None):
    rng = np.random.default_rng(900 + seed)
    n_in = int(rng.integers(3, 7))
    net = _net(rng, [n_in, 7, 7, 5, 2], scale=1.5) if act is None else _net(rng, [n_in, 7, 7, 5, 2], act, 1.5)
    x0 = rng.uniform(-1, 1, size=n_in)
    return rng, net, x0 - 0.6, x0 + 0.6


@pytest.mark.parametrize("depth", [0, 2])
@pytest.mark.parametrize("seed", range(3))
def test_refined_bounds_contain_the_exact_range_and_are_never_looser(seed, depth):
    rng, net, lo, hi = _case(seed)
    pre = _crown(net, lo, hi)
    ref, lps = refine_bounds(net, lo, hi, pre, per_layer=8, depth=depth)
    assert lps > 0
    Z = _preacts(net, rng.uniform(lo, hi, size=(20000, lo.size)))
    tighter = 0.0
    for k, ((l, u), (l2, u2)) in enumerate(zip(pre, ref)):
        assert np.all(l2 >= l) and np.all(u2 <= u)  # never looser than CROWN
        assert np.all(Z[k].min(axis=0) >= l2 - 1e-9) and np.all(Z[k].max(axis=0) <= u2 + 1e-9)
        tighter += float(np.sum(l2 - l) + np.sum(u - u2))
        if k >= 1:
            for j in range(l.size):
                zmin, zmax = _exact_range(net, lo, hi, k, j)
                assert l2[j] <= zmin + 1e-7 and u2[j] >= zmax - 1e-7, (k, j, l2[j], zmin, u2[j], zmax)
    assert tighter > 0


@pytest.mark.parametrize("seed", range(2))
def test_leaky_relu_refined_bounds_contain_sampled_values(seed):
    rng, net, lo, hi = _case(seed, lambda: LeakyReLU(0.1))
    pre = _crown(net, lo, hi)
    ref, _ = refine_bounds(net, lo, hi, pre, per_layer=8, depth=1)
    Z = _preacts(net, rng.uniform(lo, hi, size=(20000, lo.size)))
    for k, ((l, u), (l2, u2)) in enumerate(zip(pre, ref)):
        assert np.all(l2 >= l) and np.all(u2 <= u)
        assert np.all(Z[k].min(axis=0) >= l2 - 1e-9) and np.all(Z[k].max(axis=0) <= u2 + 1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_dual_certificate_is_tight_and_a_wrong_dual_is_not_believed(seed):
    rng, net, lo, hi = _case(seed)
    pre = _crown(net, lo, hi)
    lp = layer_lp(net, lo, hi, pre, 2)
    j = int(np.argmax(pre[2][1] - pre[2][0]))
    c, c0 = lp.objective(j, 1.0)
    zmin, _ = _exact_range(net, lo, hi, 2, j)
    res = linprog(c, A_ub=lp.A_ub, b_ub=lp.b_ub, A_eq=lp.A_eq, b_eq=lp.b_eq,
                  bounds=np.stack([lp.lb, lp.ub], axis=1), method="highs")
    y_ub, y_eq = solve_lp(lp, c)
    good = certified_min(lp, c, c0, y_ub, y_eq)
    assert abs(good - (res.fun + c0)) <= 1e-6 * (1 + abs(res.fun))  # tight: the LP optimum
    assert good <= zmin + 1e-9
    # wrong duals: scaled, perturbed, with the wrong sign: each certified value stays below the truth and
    # below the LP optimum (what a trusting caller would have taken: here claimed ``good + 1``)
    for wy_ub, wy_eq in ((1.7 * y_ub, 1.7 * y_eq), (y_ub, y_eq + rng.normal(size=y_eq.size)),
                         (-y_ub, y_eq), (y_ub + 0.5 * rng.normal(size=y_ub.size), 0.3 * y_eq)):
        bad = certified_min(lp, c, c0, wy_ub, wy_eq)
        assert bad <= zmin + 1e-9 and bad <= good + 1e-9 and bad < good + 1.0
    assert certified_min(lp, c, c0, np.full_like(y_ub, np.nan), y_eq) == -np.inf


def test_chord_rows_hold_in_exact_arithmetic():
    rng = np.random.default_rng(7)
    for a in (0.0, 0.01, 0.3):
        l = -np.exp(rng.normal(size=500) * 3)
        u = np.exp(rng.normal(size=500) * 3)
        s, t = _chord_const(l, u, a)
        for li, ui, si, ti in zip(l, u, s, t):
            for z in (Fraction(li), Fraction(ui)):  # f(z) - s z is convex: its max on [l, u] is at an end
                fz = z if z >= 0 else Fraction(a) * z
                assert fz - Fraction(si) * z <= Fraction(ti)


@pytest.mark.parametrize("seed", range(2))
def test_bab_with_lp_refinement_equals_milp_truth(seed, monkeypatch):
    monkeypatch.setattr(relu_bab, "LP_REFINE", "on")
    monkeypatch.setattr(relu_bab, "LP_DEPTH", 1)
    rng = np.random.default_rng(500 + seed)
    net, lo, hi, c, m, samples = milp_instance(rng, int(rng.integers(20, 31)))
    gap = 0.02 * (samples.max() - m)
    for b, want in ((m - gap, "holds"), (m + gap, "violated")):
        res = verify(net, box_property(lo, hi, c[None], [b]), timeout=60)
        assert res.status == want, (seed, b, m, res)
        if want == "violated":
            assert float(c @ net(res.counterexample[None])[0]) <= b
