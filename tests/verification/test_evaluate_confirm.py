"""Rigorous enclosures of the forward pass and exact confirmation of counterexamples.

``enclose`` must contain the exact (Fraction) output on any float input; ``confirm_property`` must accept a
point exactly when the property as written (exact decimals, strict rows strictly) is violated there.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from verification import Dense, Network
from verification.activations import Identity, LeakyReLU, ReLU, Tanh
from verification.evaluate import differentiable_at, enclose, exact_forward
from verification.smt.confirm import confirm_property
from verification.vnnlib import parse_vnnlib


def _random_net(rng, widths, act) -> Network:
    layers = []
    for k in range(len(widths) - 1):
        scale = 10.0 ** rng.integers(-3, 4)
        layers.append(Dense(rng.normal(size=(widths[k + 1], widths[k])) * scale, rng.normal(size=widths[k + 1])))
        if k < len(widths) - 2:
            layers.append(act)
    return Network(tuple(layers))


@pytest.mark.parametrize("act", [ReLU(), LeakyReLU(-0.7), LeakyReLU(0.3), Identity()])
def test_enclosure_contains_the_exact_output(act):
    rng = np.random.default_rng(7)
    for trial in range(15):
        net = _random_net(rng, [3, 6, 5, 2], act)
        xs = rng.normal(size=(4, 3)) * 10.0 ** rng.integers(-2, 3)
        lo, hi = enclose(net, xs)
        assert np.all(lo <= hi)
        for x, l, u in zip(xs, lo, hi):
            exact = exact_forward(net, x)
            for e, a, b in zip(exact, l, u):
                assert Fraction(a) <= e <= Fraction(b), (trial, float(e), a, b)
            # the enclosure is tight: a few ulps of the magnitudes involved, not a vacuous interval
            assert np.all(u - l <= 1e-9 * (1 + np.abs(net(x)).max() + np.abs(xs).max() * 1e6))


def test_enclosure_of_a_tanh_net_contains_the_float_output_and_is_tight():
    rng = np.random.default_rng(3)
    net = _random_net(rng, [4, 8, 8, 3], Tanh())
    xs = rng.normal(size=(50, 4))
    lo, hi = enclose(net, xs)
    y = net(xs)
    assert np.all((lo <= y) & (y <= hi))
    assert np.all(hi - lo <= 1e-8 * (1 + np.abs(y)))


def test_differentiability_is_refused_at_a_kink_and_granted_away_from_it():
    net = Network((Dense(np.array([[1.0], [-1.0]]), np.array([0.0, 0.5])), ReLU(), Dense(np.ones((1, 2)))))
    mask = differentiable_at(net, np.array([[0.0], [0.5], [0.25], [2.0]]))
    assert mask.tolist() == [False, False, True, True]


def _prop(text_out: str, lo: str = "-1", hi: str = "1"):
    return parse_vnnlib(
        f"(declare-const X_0 Real)\n(declare-const Y_0 Real)\n"
        f"(assert (>= X_0 {lo}))\n(assert (<= X_0 {hi}))\n(assert {text_out})\n"
    )


IDENT = Network((Dense(np.array([[1.0]]), np.array([0.0])),))


def test_strict_boundary_is_not_a_counterexample():
    strict = _prop("(< Y_0 0)")
    assert not confirm_property(IDENT, strict, np.array([0.0]))  # y = 0 only reaches the boundary
    assert confirm_property(IDENT, strict, np.array([-0.5]))
    assert confirm_property(IDENT, _prop("(<= Y_0 0)"), np.array([0.0]))


def test_decimal_constants_are_exact_not_rounded_to_float():
    # float(0.1) = 0.1000000000000000055... > 1/10, so y = float(0.1) does not satisfy Y_0 <= 0.1 as written
    prop = _prop("(<= Y_0 0.1)")
    assert not confirm_property(IDENT, prop, np.array([0.1]))
    assert confirm_property(IDENT, prop, np.array([np.nextafter(0.1, 0.0)]))
    # and an input outside the box as written (the box's upper bound 0.1 is below the float 0.1) is refused
    box = _prop("(<= Y_0 1)", lo="0", hi="0.1")
    assert not confirm_property(IDENT, box, np.array([0.1]))
    assert confirm_property(IDENT, box, np.array([np.nextafter(0.1, 0.0)]))


def test_confirmation_decides_margins_below_float_rounding_exactly():
    # y = x + 1e16 - 1e16: float64 gives 0 or 2 depending on order; the exact value is x
    net = Network((Dense(np.array([[1.0], [1.0]]), np.array([1e16, 0.0])), ReLU(),
                   Dense(np.array([[1.0, 0.0]]), np.array([-1e16]))))
    prop = _prop("(<= Y_0 0.5)", lo="0", hi="4")
    assert confirm_property(net, prop, np.array([0.25]))       # f = 0.25 exactly
    assert not confirm_property(net, prop, np.array([0.75]))   # f = 0.75 exactly
