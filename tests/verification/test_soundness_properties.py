"""Property tests over generated networks with every supported activation (negative and > 1 slopes
included): attained <= exact <= certified for bounds and Lipschitz constants, and verifier verdicts that
never contradict exact enumeration.

The exact side comes from :mod:`tests.verification.exact_1d` (rational arithmetic on the linear pieces of a
one-input network), written independently of the methods under test.  Examples are derandomized so that CI
sees the same networks every run.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verification import lipschitz, local_lipschitz, output_bounds, verify
from verification.activations import GroupSort, Householder, Identity, LeakyReLU, ReLU, Sigmoid, Tanh
from verification.errors import InvalidParameterError, PreconditionError, SolverError, UnsupportedLayerError
from verification.network import Dense, Network
from verification.vnnlib import InputRegion, OutputConstraint, VnnlibProperty

from .exact_1d import exact_lipschitz, exact_range, violated_exactly

SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
SLOPES = [-3.0, -1.0, -0.5, 0.0, 0.01, 0.5, 1.0, 1.5, 3.0]


def _pwl_activation(draw, width: int):
    kind = draw(st.sampled_from(["relu", "leaky", "leaky", "identity", "maxmin", "groupsort3", "householder"]))
    if kind == "relu":
        return ReLU(), width
    if kind == "leaky":
        return LeakyReLU(draw(st.sampled_from(SLOPES))), width
    if kind == "identity":
        return Identity(), width
    if kind == "maxmin":
        return GroupSort(2), 2 * max(1, width // 2)
    if kind == "groupsort3":
        return GroupSort(3), 3
    v = np.array(draw(st.lists(st.floats(-1, 1), min_size=2, max_size=2)))
    v = v / np.linalg.norm(v) if np.linalg.norm(v) > 1e-3 else np.array([1.0, -1.0]) / np.sqrt(2)
    return Householder(v), 2 * max(1, width // 2)


@st.composite
def networks(draw, n_in=None, smooth: bool = True, pwl: bool = True):
    """A random canonical network: 1-3 hidden layers, any activation (mixed per layer)."""
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    n0 = n_in if n_in is not None else draw(st.integers(1, 3))
    scale = draw(st.sampled_from([0.3, 1.0, 3.0]))
    depth = draw(st.integers(1, 3))
    layers, width_in = [], n0
    for _ in range(depth):
        width = draw(st.integers(2, 6))
        choices = (["pwl"] if pwl else []) + (["tanh", "sigmoid"] if smooth else [])
        kind = draw(st.sampled_from(choices))
        if kind == "tanh":
            act = Tanh()
        elif kind == "sigmoid":
            act = Sigmoid()
        else:
            act, width = _pwl_activation(draw, width)
        layers += [Dense(scale * rng.normal(size=(width, width_in)), rng.normal(size=width)), act]
        width_in = width
    n_out = draw(st.integers(1, 3))
    layers.append(Dense(scale * rng.normal(size=(n_out, width_in)), rng.normal(size=n_out)))
    return Network(tuple(layers))


# ------------------------------------------------------------------------------------------------ bounds
@settings(max_examples=60, **SETTINGS)
@given(net=networks(n_in=1, smooth=False), lo=st.floats(-3, 1), w=st.floats(0, 3))
def test_output_bounds_contain_the_exact_range(net, lo, w):
    hi = lo + w
    emin, emax = exact_range(net, lo, hi)
    for method in ("ibp", "crown", "alpha-crown"):
        try:
            b = output_bounds(net, [lo], [hi], method)
        except UnsupportedLayerError:
            assert method != "ibp"
            continue
        for i in range(net.out_dim):
            assert Fraction(float(b.upper[i])) >= emax[i], (method, i, b.upper[i], float(emax[i]))
            assert Fraction(float(b.lower[i])) <= emin[i], (method, i, b.lower[i], float(emin[i]))


@settings(max_examples=40, **SETTINGS)
@given(net=networks(), data=st.data())
def test_output_bounds_contain_samples_for_every_activation(net, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    lo = rng.uniform(-2, 1, size=net.in_dim)
    hi = lo + rng.uniform(0, 2, size=net.in_dim)
    y = net(lo + (hi - lo) * rng.random((4000, net.in_dim)))
    for method in ("ibp", "crown", "alpha-crown"):
        try:
            b = output_bounds(net, lo, hi, method)
        except UnsupportedLayerError:
            continue
        assert np.all(y >= b.lower - 1e-12 * (1 + np.abs(b.lower))), method
        assert np.all(y <= b.upper + 1e-12 * (1 + np.abs(b.upper))), method


# ------------------------------------------------------------------------------------------------ Lipschitz
@settings(max_examples=30, **SETTINGS)
@given(net=networks(n_in=1, smooth=False), norm=st.sampled_from([2, "inf"]))
def test_global_lipschitz_sampled_le_exact_le_certified(net, norm):
    exact = exact_lipschitz(net, -1e7, 1e7, norm)  # every kink of these nets lies well inside
    low = lipschitz(net, "sampled", norm, n_points=300).value
    assert low <= exact * (1 + 1e-12) + 1e-300
    for method in ("naive", "auto", "lipsdp-neuron", "eclipse-fast", "exact"):
        try:
            res = lipschitz(net, method, norm)
        except (PreconditionError, SolverError, UnsupportedLayerError, InvalidParameterError):
            continue  # the method does not apply to this net / norm
        if res.certified:
            assert res.value >= exact * (1 - 1e-9), (method, res.value, exact)


@settings(max_examples=25, **SETTINGS)
@given(net=networks(), norm=st.sampled_from([2, "inf"]))
def test_certified_lipschitz_is_above_sampled_for_every_activation(net, norm):
    low = lipschitz(net, "sampled", norm, n_points=300).value
    res = lipschitz(net, "auto", norm)
    assert res.certified and res.value >= low * (1 - 1e-12), (res, low)


@settings(max_examples=30, **SETTINGS)
@given(net=networks(n_in=1, smooth=False), c=st.floats(-2, 2), eps=st.floats(0.01, 2))
def test_local_lipschitz_sampled_le_exact_le_certified(net, c, eps):
    try:
        res = local_lipschitz(net, [c], eps, n_samples=200)
    except UnsupportedLayerError:
        return
    exact = exact_lipschitz(net, c - eps, c + eps, "inf")
    assert res.lower <= exact * (1 + 1e-9) + 1e-300
    assert res.value >= exact * (1 - 1e-9), (res.value, exact)


# ------------------------------------------------------------------------------------------------ verify
@st.composite
def one_input_properties(draw):
    net = draw(networks(n_in=1, smooth=False))
    lo = draw(st.floats(-3, 1))
    hi = lo + draw(st.floats(0, 3))
    emin, emax = exact_range(net, lo, hi)
    rows, rhs, strict = [], [], []
    for _ in range(draw(st.integers(1, 2))):
        j = draw(st.integers(0, net.out_dim - 1))
        sign = draw(st.sampled_from([1.0, -1.0]))
        # thresholds at, just inside and just outside the attained range
        ref = float(emax[j]) if sign > 0 else float(emin[j])
        where = draw(st.sampled_from(["at", "in", "out", "mid"]))
        t = {"at": ref, "in": ref - sign * 0.05, "out": ref + sign * 0.05,
             "mid": float((emin[j] + emax[j]) / 2)}[where]
        row = np.zeros(net.out_dim)
        row[j] = -sign  # unsafe: sign * y_j >= t   <=>   -sign * y_j <= -t
        rows.append(row)
        rhs.append(-sign * t)
        strict.append(draw(st.booleans()))
    return net, lo, hi, np.array(rows), np.array(rhs), np.array(strict)


@settings(max_examples=80, **SETTINGS)
@given(case=one_input_properties())
def test_verify_never_contradicts_exact_enumeration(case):
    net, lo, hi, A, b, strict = case
    oc = OutputConstraint(A, b, strict=strict)
    prop = VnnlibProperty(1, net.out_dim, (InputRegion([lo], [hi], (oc,)),))
    truth = violated_exactly(net, lo, hi, A, b, strict)
    res = verify(net, prop, timeout=20)
    if res.status == "holds":
        assert not truth
    elif res.status == "violated":
        assert truth
        x = res.counterexample
        assert lo <= x[0] <= hi
        # the counterexample satisfies the rows as written, strict ones strictly (exact arithmetic)
        assert violated_exactly(net, float(x[0]), float(x[0]), A, b, strict)


@pytest.mark.parametrize("a", [-2.0, -1.0, -0.5])
def test_non_monotone_leaky_relu_regressions(a):
    """The V-shaped activation whose interval [phi(l), phi(u)] used to be taken as its range."""
    act = LeakyReLU(a)
    lo_b, hi_b = act.interval(np.array([[-1.0]]), np.array([[1.0]]))
    assert lo_b[0, 0] == 0.0 and hi_b[0, 0] == max(1.0, -a)
    net = Network((Dense([[1.0]], [0.0]), act, Dense([[1.0]], [0.0])))
    b = output_bounds(net, [-1.0], [1.0], "crown")
    assert b.lower[0] <= 0.0 and b.upper[0] >= max(1.0, -a)
    # "f(x) <= 0.01 somewhere in [-1, 1]" is violated at x = 0 (f(0) = 0)
    prop = VnnlibProperty(1, 1, (InputRegion([-1.0], [1.0], (OutputConstraint([[1.0]], [0.01]),)),))
    res = verify(net, prop, timeout=10)
    assert res.status == "violated" and abs(res.counterexample[0]) * max(1.0, -a) <= 0.01
    loc = local_lipschitz(net, [0.0], 1.0)
    assert loc.value >= max(1.0, -a) and loc.lower <= loc.value
