"""Baseline Lipschitz methods: naive >= exact >= sampled, exact cases, refusals."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from verification import lipschitz
from verification.activations import LeakyReLU, MaxMin, ReLU
from verification.errors import InvalidParameterError, PreconditionError
from verification.network import Dense, Network


def one_hidden(rng, n0, h, m, act=ReLU()):
    return Network((Dense(rng.normal(size=(h, n0)), rng.normal(size=h)), act, Dense(rng.normal(size=(m, h)), rng.normal(size=m))))


def brute_force_exact(net: Network, norm, c=None) -> float:
    """Independent enumeration with itertools/numpy (no numba) for the one-hidden-layer case."""
    w0, w1 = net.weights
    act = net.activations[0]
    if c is not None:
        w1 = c[None, :] @ w1
    best = 0.0
    if isinstance(act, (ReLU, LeakyReLU)):
        lo, hi = act.slope_bounds()
        patterns = (np.array(p) for p in itertools.product([lo, hi], repeat=w0.shape[0]))
        mats = (w1 @ (d[:, None] * w0) for d in patterns)
    else:  # MaxMin: swap rows inside pairs
        def swapped(bits):
            rows = w0.copy()
            for j, b in enumerate(bits):
                if b:
                    rows[[2 * j, 2 * j + 1]] = rows[[2 * j + 1, 2 * j]]
            return rows
        mats = (w1 @ swapped(bits) for bits in itertools.product([0, 1], repeat=w0.shape[0] // 2))
    for m in mats:
        val = np.linalg.norm(m, 2) if norm == 2 else np.abs(m).sum(axis=1).max()
        best = max(best, val)
    return best


@pytest.mark.parametrize("norm", [2, "inf"])
def test_naive_ge_exact_ge_sampled_on_random_nets(norm):
    rng = np.random.default_rng(7)
    cases = 0
    for trial in range(24):
        act = [ReLU(), LeakyReLU(0.2), MaxMin()][trial % 3]
        h = [4, 6, 8][trial % 3]
        n0 = h if isinstance(act, (ReLU, LeakyReLU)) else h // 2 + 1
        net = one_hidden(rng, n0 + trial % 2, h, 3, act)
        naive = lipschitz(net, "naive", norm)
        exact = lipschitz(net, "exact", norm)
        low = lipschitz(net, "sampled", norm, n_points=500)
        assert naive.certified and exact.certified and not low.certified
        assert low.details["kind"] == "lower_bound"
        assert exact.value == pytest.approx(brute_force_exact(net, norm), rel=1e-12)
        assert naive.value >= exact.value * (1 - 1e-12)
        assert exact.value >= low.value * (1 - 1e-9)
        cases += 1
    assert cases >= 20


def test_exact_with_output_selector(rng):
    net = one_hidden(rng, 6, 5, 4)
    c = np.array([0.0, 1.0, -1.0, 0.0])
    for norm in (2, "inf"):
        res = lipschitz(net, "exact", norm, output=c)
        assert res.value == pytest.approx(brute_force_exact(net, norm, c), rel=1e-12)
        assert res.output == c.tolist()
        assert lipschitz(net, "naive", norm, output=c).value >= res.value
        assert lipschitz(net, "exact", norm, output=1).value == pytest.approx(brute_force_exact(net, norm, np.eye(4)[1]))


def test_sampled_reaches_exact_on_tiny_net(rng):
    # 2 inputs, 2 hidden units: every region is large, random points find the maximising one
    net = one_hidden(rng, 2, 2, 2)
    assert lipschitz(net, "sampled", 2).value == pytest.approx(lipschitz(net, "exact", 2).value, rel=1e-9)


@pytest.mark.parametrize("norm", [2, "inf"])
def test_affine_network_every_method_returns_the_weight_norm(rng, norm):
    w = rng.normal(size=(4, 6))
    net = Network((Dense(w, rng.normal(size=4)),))
    expected = np.linalg.norm(w, 2) if norm == 2 else np.abs(w).sum(axis=1).max()
    for method in ("naive", "exact", "sampled", "auto"):
        value = lipschitz(net, method, norm).value
        if method == "sampled":  # attained by the (constant) Jacobian at any point
            assert value == pytest.approx(expected, rel=1e-9)
        else:
            assert value == pytest.approx(expected, rel=1e-12)


def test_exact_refuses_when_precondition_fails(rng):
    deep = Network((Dense(rng.normal(size=(4, 4))), ReLU(), Dense(rng.normal(size=(4, 4))), ReLU(), Dense(rng.normal(size=(2, 4)))))
    with pytest.raises(PreconditionError, match="at most one hidden"):
        lipschitz(deep, "exact")
    wide = one_hidden(rng, 3, 6, 2)  # 6 hidden > 3 inputs: not every pattern is realisable
    with pytest.raises(PreconditionError, match="full row rank"):
        lipschitz(wide, "exact")
    big = one_hidden(rng, 30, 30, 2)
    with pytest.raises(PreconditionError, match="2\\^30"):
        lipschitz(big, "exact")


def test_auto_uses_exact_when_cheap_and_refuses_bad_parameters(rng):
    net = one_hidden(rng, 5, 4, 2)
    assert lipschitz(net).method == "exact"
    with pytest.raises(InvalidParameterError, match="'norm'"):
        lipschitz(net, "naive", norm=3)
    with pytest.raises(InvalidParameterError, match="'method'"):
        lipschitz(net, "lipsdp-network")
    with pytest.raises(InvalidParameterError, match="'output'"):
        lipschitz(net, "naive", output=5)


def test_result_json_round_trip(rng):
    import json

    res = lipschitz(one_hidden(rng, 4, 3, 2), "exact", "inf")
    d = json.loads(res.to_json())
    assert {"value", "method", "norm", "certified", "seconds"} <= set(d)
    assert d["value"] == res.value and d["norm"] == "inf" and d["certified"] is True


def test_householder_lipschitz_covers_the_float_v():
    """``v`` is stored in float64, so ``v·v`` can exceed 1 and the reflection is then slightly expansive: the
    activation's constant bounds the exact norms of both pieces (l2 and l-inf), in rationals."""
    from fractions import Fraction

    from verification.activations import Householder

    rng = np.random.default_rng(0)
    vs = [np.array([0.6, 0.8]), np.array([1.0, 1.0]) / np.sqrt(2.0)]
    vs += [v / np.linalg.norm(v) for v in rng.normal(size=(30, 3))]
    above = 0
    for v in vs:
        h = Householder(v=v)
        q = [Fraction(float(c)) for c in h.v]
        vv = sum(c * c for c in q)
        assert Fraction(h.lipschitz(2)) >= max(1, abs(2 * vv - 1))
        rows = [sum(abs((1 if i == j else 0) - 2 * a * b) for j, b in enumerate(q)) for i, a in enumerate(q)]
        assert Fraction(h.lipschitz("inf")) >= max(1, max(rows))
        above += h.lipschitz(2) > 1.0
    assert above >= 1  # (0.6, 0.8): v·v = 1 + 2^-53-ish in float64
