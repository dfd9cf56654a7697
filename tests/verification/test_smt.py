"""Exact Z3 encoding of the IR: evaluating the encoding at rational points reproduces the network, and
z3_decide agrees with a Lipschitz-certified grid on tiny networks."""

from fractions import Fraction

import numpy as np
import pytest
import z3

from verification.activations import GroupSort, Householder, LeakyReLU, ReLU, Tanh
from verification.errors import UnsupportedLayerError
from verification.network import Dense, Network
from verification.smt import encode_network, z3_decide
from verification.bounds.batched import spec_bounds
from verification.vnnlib import OutputConstraint


def _net(act, widths, seed):
    rng = np.random.default_rng(seed)
    layers = []
    for i in range(len(widths) - 1):
        layers.append(Dense(rng.normal(size=(widths[i + 1], widths[i])), rng.normal(size=widths[i + 1])))
        if i < len(widths) - 2:
            layers.append(act)
    return Network(layers)


ACTS = [ReLU(), LeakyReLU(0.1), GroupSort(2), GroupSort(4), Householder(np.array([0.6, 0.8]))]


@pytest.mark.parametrize("act", ACTS, ids=lambda a: a.describe())
def test_encoding_evaluates_to_network(act):
    net = _net(act, [3, 8, 8, 2], 0)
    rng = np.random.default_rng(1)
    for x in rng.uniform(-2, 2, size=(5, 3)):
        xs = [z3.RealVal(Fraction(float(v))) for v in x]
        out, cons = encode_network(net, [z3.Real(f"X_{i}") for i in range(3)])
        sub = [(z3.Real(f"X_{i}"), xs[i]) for i in range(3)]
        # solve the defining equalities by substitution through a solver (exact rationals)
        s = z3.Solver()
        s.add(*[z3.Real(f"X_{i}") == xs[i] for i in range(3)], *cons)
        assert s.check() == z3.sat
        m = s.model()
        vals = [float(Fraction(str(m.eval(o, model_completion=True).as_fraction()))) for o in out]
        np.testing.assert_allclose(vals, net(x), rtol=1e-12, atol=1e-12)
        del sub


def test_bounds_fix_stable_neurons_linearly():
    net = _net(ReLU(), [2, 6, 1], 3)
    lo, hi = np.array([-0.1, -0.1]), np.array([0.1, 0.1])
    pre = spec_bounds(net.canonical(), lo[None], hi[None], np.eye(1), np.zeros(1), method="ibp").pre
    l, u = pre[0][0][0], pre[0][1][0]
    out, cons = encode_network(net, [z3.Real("a"), z3.Real("b")], [(l, u)])
    n_if = str(out[0]).count("If(")
    assert n_if == int(((l < 0) & (u > 0)).sum())


@pytest.mark.parametrize("act", [ReLU(), LeakyReLU(0.2), GroupSort(2)], ids=lambda a: a.describe())
def test_z3_decide_matches_certified_grid(act):
    net = _net(act, [2, 4, 4, 1], 7)
    n = 401
    g = np.stack(np.meshgrid(np.linspace(-1, 1, n), np.linspace(-1, 1, n)), -1).reshape(-1, 2)
    ymin = net(g)[:, 0].min()
    # naive Lipschitz constant (l-inf -> abs): product of ||W||_inf norms, activations are 1-Lipschitz in l-inf
    L = np.prod([np.abs(W).sum(axis=1).max() for W in net.weights])
    h = 2.0 / (n - 1)
    cert = ymin - L * h / 2  # true minimum over the square is >= cert
    unsafe_below = OutputConstraint(np.array([[1.0]]), np.array([cert - 1e-3]))
    st, _ = z3_decide(net, [-1, -1], [1, 1], [unsafe_below], timeout=60)
    assert st == "unsat"
    st, x = z3_decide(net, [-1, -1], [1, 1], [OutputConstraint(np.array([[1.0]]), np.array([ymin + 1e-6]))], timeout=60)
    assert st == "sat" and np.all(np.abs(x) <= 1) and net(x)[0] <= ymin + 1e-6 + 1e-12


def test_non_piecewise_linear_has_no_encoding():
    with pytest.raises(NotImplementedError, match="tanh"):
        Tanh().z3_terms([z3.Real("a")])
    with pytest.raises(UnsupportedLayerError):
        encode_network(_net(Tanh(), [2, 3, 1], 0), [z3.Real("a"), z3.Real("b")])


@pytest.mark.parametrize("act", [ReLU(), LeakyReLU(0.2)], ids=lambda a: a.describe())
def test_incremental_crown_bounds_contain_samples_and_tighten_with_the_parent(act):
    from verification.bounds import layer_bounds
    from verification.bounds.batched import incremental_crown as crown_incremental

    net = _net(act, [3, 12, 12, 12, 2], 4).canonical()
    rng = np.random.default_rng(1)
    lo = rng.uniform(-1, 0, size=(6, 3))
    hi = lo + rng.uniform(0.1, 1.0, size=(6, 3))
    parent = crown_incremental(net, lo, hi)
    # at least as tight as interval bound propagation, and strictly tighter somewhere
    ibp = [layer_bounds(net, lo[i], hi[i], method="ibp") for i in range(6)]
    gain = 0.0
    for j, (l, u) in enumerate(parent):
        il = np.array([ib[j].lower for ib in ibp])
        iu = np.array([ib[j].upper for ib in ibp])
        assert np.all(l >= il - 1e-9) and np.all(u <= iu + 1e-9)
        gain += float(np.sum(iu - il) - np.sum(u - l))
    assert gain > 0
    # children: the lower half of each box along x_0, with the parent bounds as prior
    mid = (lo[:, 0] + hi[:, 0]) / 2
    hi_c = hi.copy()
    hi_c[:, 0] = mid
    child = crown_incremental(net, lo, hi_c, prior=parent)
    X = lo[:, None, :] + (hi_c - lo)[:, None, :] * rng.uniform(size=(6, 500, 3))
    trace = net.forward_trace(X.reshape(-1, 3))
    for j, ((l, u), (pl, pu)) in enumerate(zip(child, parent)):
        z = trace[2 * j + 1].reshape(6, 500, -1)
        assert np.all(z >= l[:, None, :] - 1e-9) and np.all(z <= u[:, None, :] + 1e-9)
        assert np.all(l >= pl) and np.all(u <= pu)


def test_row_gradient_matches_the_jacobian():
    from verification.smt.attack import row_gradient as _row_gradient

    rng = np.random.default_rng(2)
    for act in (ReLU(), LeakyReLU(0.1), Tanh(), GroupSort(2)):
        net = _net(act, [3, 6, 6, 4], 3).canonical()
        x, c = rng.normal(size=(5, 3)), rng.normal(size=(5, 4))
        np.testing.assert_allclose(_row_gradient(net, x, c), np.einsum("nm,nmd->nd", c, net.jacobian(x)), atol=1e-12)


def test_certified_box_margin_is_a_lower_bound_and_tight_with_lp_duals():
    from verification.smt.lp import certified_box_margin, min_max_affine

    rng = np.random.default_rng(0)
    for _ in range(5):
        F, f = rng.normal(size=(6, 4)), rng.normal(size=6)
        E = rng.uniform(-1, 1, size=(20000, 4))
        sampled = (E @ F.T + f).max(axis=1).min()
        w, e = min_max_affine(F, f)
        lp_opt = (F @ e + f).max()
        cert = certified_box_margin(F, f, w)
        assert cert <= sampled and abs(cert - lp_opt) < 1e-9  # LP duals: the bound is the LP optimum
        assert certified_box_margin(F, f, rng.uniform(size=6)) <= cert + 1e-12  # any weights: weaker, still sound


@pytest.mark.parametrize("act", [ReLU(), LeakyReLU(0.1)], ids=lambda a: a.describe())
def test_pattern_leaf_decides_small_boxes_exactly(act):
    """On a 2-input net the minimum of the output over a box is bracketed by a dense grid and its
    Lipschitz certificate; pattern enumeration must refute ``y <= min - 1e-3`` and must not refute
    ``y <= min + 1e-6`` (it either finds a float64 counterexample or reports the box undecided)."""
    from verification.bounds.batched import batched_layer_bounds
    from verification.smt._pattern import pattern_leaf

    net = _net(act, [2, 4, 4, 1], 7).canonical()
    lo, hi = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    n = 401
    g = np.stack(np.meshgrid(np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n)), -1).reshape(-1, 2)
    ymin = net(g)[:, 0].min()
    L = np.prod([np.abs(W).sum(axis=1).max() for W in net.weights])
    cert = ymin - L * (hi - lo).max() / (n - 1) / 2
    pre = [(l[0], u[0]) for l, u in batched_layer_bounds(net, lo[None], hi[None], "crown")[0]]
    assert sum(((l < 0) & (u > 0)).sum() for l, u in pre) >= 2  # a real pattern enumeration
    slopes = [float(a.two_piece_slope) for a in net.activations]

    thr = cert - 1e-3
    refuted, cand = pattern_leaf(net.affine_layers, slopes, pre, lo, hi, np.eye(1), np.array([thr]), 1e-9, 4096)
    assert refuted and cand is None
    thr = ymin + 1e-6
    refuted, cand = pattern_leaf(net.affine_layers, slopes, pre, lo, hi, np.eye(1), np.array([thr]), 1e-9, 4096)
    assert not refuted  # undecided; its candidate (the LP minimiser of an open pattern) lies in the box
    assert cand is None or (np.all(cand >= lo) and np.all(cand <= hi))


# --- pre-activation bounds are float64 computations: loosened by their magnitude before Z3 uses them ---------

REGRESSIONS = __import__("pathlib").Path(__file__).resolve().parents[1] / "data" / "regressions"


@pytest.mark.parametrize("name", ["tie_relu", "tie_leaky"])
@pytest.mark.parametrize("method", ["input-split", "bab"])
def test_exact_tie_at_a_non_float_point_is_never_proved(name, method):
    """Weights scaled by 1e4 (pre-activations ~1e8): the exact minimum of the output equals the property's
    constant at one non-float input only, so no float64 counterexample exists and the property is violated
    over the reals.  Float bounds loosened by an absolute 1e-9 cut that point off in Z3 (``holds``); the answer
    must be ``unknown`` (or a re-checked counterexample), never ``holds``."""
    from verification import verify
    from verification.io import load_network
    from verification.vnnlib import read_vnnlib

    net = load_network(REGRESSIONS / f"{name}.npz")
    prop = read_vnnlib(REGRESSIONS / f"{name}.vnnlib")
    res = verify(net, prop, method=method, timeout=20)
    assert res.status != "holds"
    if res.status == "violated":
        from verification.smt.confirm import confirm_property

        assert confirm_property(net, prop, res.counterexample)


def test_pre_bound_slack_follows_the_magnitude_of_the_terms(monkeypatch):
    """A pre-activation bound off by 1e-7 (float rounding of terms of size 1e4 * 0.75) must not exclude the true
    value: the encoding loosens it by 1e-9 of the magnitude of its terms.  With the magnitude term switched off
    (only the absolute 1e-9 of before) the true point is cut off: the test would see the old bug."""
    import verification.smt.encode as enc

    net = Network([Dense(np.array([[1e4], [-1e4]]), np.array([0.0, 0.0])), ReLU(), Dense(np.array([[1e4, 1e4]]))])
    x = [z3.Real("x0")]
    top = 1e4 * 0.75 - 1e-7  # the first neuron's true value at x = 3/4 is 7500: this bound is 1e-7 too low
    pre = [(np.array([0.0, -7500.0]), np.array([top, -7500.0]))]

    def feasible() -> bool:
        out, cons = encode_network(net, x, pre, in_mag=[0.75])
        s = z3.Solver()
        s.add(*cons, x[0] == z3.RealVal(Fraction(3, 4)))
        return s.check() == z3.sat

    assert feasible()
    monkeypatch.setattr(enc, "SLACK", 0.0)
    assert not feasible()
