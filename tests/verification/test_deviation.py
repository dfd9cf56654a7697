"""Folded layers record how far their float64 weights may be from the file's (verification.layers.deviation),
and every exact path honours it: the radius bounds the true rounding (exact rationals), a tie of the folded
function is never confirmed as a counterexample, proofs and checks use the widened rows, Lipschitz bounds
cover the perturbed weights."""

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from verification.activations import ReLU
from verification.layers import Dense
from verification.layers.deviation import (deviation_of, fold, lipschitz_allowance, mark_rounded,
                                           output_deviation, radius)
from verification.network import Network
from verification.spec import box_property

REGRESSIONS = Path(__file__).resolve().parents[1] / "data" / "regressions"


def _exact(layer, h):
    return [sum((Fraction(float(w)) * v for w, v in zip(row, h)), Fraction(float(b)))
            for row, b in zip(layer.as_matrix(), layer.bias)]


def _cancelling(rng, n_out, n_in):
    """A weight whose rows nearly cancel against the next layer's: ``|A||B|`` far above ``|AB|``."""
    w = rng.normal(size=(n_out, n_in)) * 10.0 ** rng.integers(-3, 4)
    if n_out >= 2:
        w[1] = w[0] * (1 + 2.0 ** -30)
    return w


@pytest.mark.parametrize("seed", range(12))
def test_radius_bounds_the_rounding_of_folded_chains(seed):
    """For random chains of 2-5 affine layers (with near-cancelling rows) folded by ``canonical()``, the exact
    output of the file's layers differs from the folded float weights' exact output by at most the radius,
    at random inputs; and the radius is not absurdly loose (within 1e6 of the worst error seen)."""
    rng = np.random.default_rng(seed)
    worst = 0.0
    for _ in range(15):
        k = int(rng.integers(2, 6))
        n = rng.integers(1, 6, size=k + 1)
        layers = []
        for i in range(k):
            w = _cancelling(rng, n[i + 1], n[i])
            if i > 0 and n[i] >= 2:  # the next layer subtracts the two nearly equal rows
                w[:, 1] = -w[:, 0]
            layers.append(Dense(w, rng.normal(size=n[i + 1]) * 10.0 ** rng.integers(-2, 3)))
        folded = Network(tuple(layers)).canonical()
        assert len(folded.layers) == 1 and deviation_of(folded.layers[0]) is not None
        x = rng.normal(size=n[0]) * 10.0 ** rng.integers(-2, 3)
        h = [Fraction(float(v)) for v in x]
        for layer in layers:
            h = _exact(layer, h)
        mine = _exact(folded.layers[0], [Fraction(float(v)) for v in x])
        r = radius(folded.layers[0], np.abs(x))
        d = output_deviation(folded, x)
        for a, b, ri, di in zip(h, mine, r, d):
            err = abs(float(a - b))
            assert err <= ri and err <= di
            if err:
                worst = max(worst, err / ri)
    assert worst == 0.0 or worst > 1e-6


def test_mark_rounded_chain_and_exact_folds():
    """A recorded rounding adds to what the layer already carries; folding with an identity records nothing."""
    a = Dense(np.array([[3.0, -1.0]]), np.array([0.5]))
    assert deviation_of(fold(Dense.identity(1), a)) is None
    mark_rounded(a, 1e-3)
    r1 = radius(a, np.array([1.0, 1.0]))
    assert r1[0] >= 1e-3 * 4.5
    mark_rounded(a, 1e-3)
    assert radius(a, np.array([1.0, 1.0]))[0] >= 2 * 1e-3 * 4.5


def _regression():
    d = np.load(REGRESSIONS / "fold_affine.npz")
    return Network(tuple(Dense(d[f"W{k}"], d[f"b{k}"]) for k in range(3)))


@pytest.mark.parametrize("method", ["input-split", "bab", "relu-split", "z3-plain"])
def test_tie_of_the_folded_function_is_never_a_counterexample(method):
    """Campaign case (seed 20): three affine layers folded into one in float64; the property ``Y > c`` with
    ``c`` the exact maximum holds over the reals, but the folded weights put the output at the upper input
    bound just above ``c``.  Before the deviation record, every method answered ``violated``."""
    from verification import verify
    from verification.vnnlib import read_vnnlib

    res = verify(_regression(), read_vnnlib(REGRESSIONS / "fold_affine.vnnlib"), method=method, timeout=20)
    assert res.status in ("unknown", "holds")


def test_clear_violations_and_clear_proofs_survive_the_record():
    """Away from the tie the answers are unchanged: a threshold 1e-6 below the maximum is violated (the
    counterexample confirmed with the deviation margin), 1e-6 above it holds."""
    from verification import verify
    from verification.proofcheck import check_counterexample
    from verification.smt.confirm import confirm_property

    net = _regression()
    lo, hi = np.array([0.041227]), np.array([0.641227])
    top = float(max(net(lo)[0], net(hi)[0]))
    bad = box_property(lo, hi, -np.eye(1), np.array([-(top - 1e-6 * abs(top))]))  # unsafe: Y >= top - margin
    res = verify(net, bad, timeout=20)
    assert res.status == "violated"
    assert confirm_property(net.canonical(), bad, res.counterexample)
    assert check_counterexample(net.canonical(), bad, res.counterexample).accepted
    good = box_property(lo, hi, -np.eye(1), np.array([-(top + 1e-6 * abs(top))]))
    assert verify(net, good, timeout=20).status == "holds"


def _recorded_net(rel: float) -> Network:
    rng = np.random.default_rng(3)
    w0, w1 = rng.normal(size=(6, 3)), rng.normal(size=(1, 6))
    first = Dense(w0, rng.normal(size=6))
    if rel:
        mark_rounded(first, rel)
    return Network((first, ReLU(), Dense(w1, np.zeros(1))))


def test_confirmation_and_independent_check_use_the_deviation():
    """A point whose float-weight output is unsafe by less than the recorded deviation is no counterexample,
    for the confirmation and for the independent checker alike."""
    from verification.proofcheck import check_counterexample
    from verification.smt.confirm import confirm_property

    plain, recorded = _recorded_net(0.0), _recorded_net(1e-6)
    x = np.array([0.1, -0.2, 0.3])
    y = float(plain(x)[0])
    d = float(output_deviation(recorded, x)[0])
    assert 0 < d < 1e-3
    prop = box_property(x - 0.5, x + 0.5, np.eye(1), np.array([y + d / 10]))  # unsafe: Y <= y + d/10
    assert confirm_property(plain, prop, x) and check_counterexample(plain, prop, x).accepted
    assert not confirm_property(recorded, prop, x)
    assert not check_counterexample(recorded, prop, x).accepted


def test_a_proof_for_the_float_weights_is_rejected_when_the_file_may_differ(tmp_path):
    """A ``holds`` proof of the float weights with a margin smaller than the recorded deviation is rejected
    by the checker on the recorded net, and the verifier does not answer ``holds`` there; with a margin
    far above it, both accept."""
    from verification import verify
    from verification.proofcheck import check_proof

    plain, recorded = _recorded_net(0.0), _recorded_net(1e-4)
    lo, hi = np.full(3, -0.05), np.full(3, 0.05)
    grid = np.stack(np.meshgrid(*[np.linspace(-0.05, 0.05, 9)] * 3), -1).reshape(-1, 3)
    top = float(plain(grid).max())
    d = float(output_deviation(recorded, lo, hi)[0])
    from verification.bounds import output_bounds

    ub = float(output_bounds(plain, lo, hi, method="crown")[1][0])
    assert ub >= top
    tight = box_property(lo, hi, -np.eye(1), np.array([-(ub + d / 4)]))  # unsafe: Y >= ub + d/4
    path = tmp_path / "p.json"
    assert verify(plain, tight, proof=path, timeout=20).status == "holds"
    assert check_proof(plain, tight, path).accepted
    assert not check_proof(recorded, tight, path).accepted
    assert verify(recorded, tight, timeout=20).status != "holds"
    loose = box_property(lo, hi, -np.eye(1), np.array([-(ub + 4 * d)]))
    path2 = tmp_path / "q.json"
    assert verify(recorded, loose, proof=path2, timeout=20).status == "holds"
    assert check_proof(recorded, loose, path2).accepted


def test_lipschitz_bounds_cover_the_recorded_deviation():
    """The certified bound of a folded net includes the allowance; a net copied exactly gets none."""
    from verification import lipschitz

    plain, recorded = _recorded_net(0.0), _recorded_net(1e-6)
    a = lipschitz(plain, method="naive")
    b = lipschitz(recorded, method="naive")
    assert "deviation_allowance" not in a.details
    allow = b.details["deviation_allowance"]
    assert allow > 0 and b.value >= a.value + allow
    # |Delta| <= 1e-6 |W0| entrywise: the allowance covers ||Delta|| ||W1|| at least
    w0, w1 = plain.layers[0].weight, plain.layers[2].weight
    assert allow >= 1e-6 * np.linalg.norm(np.abs(w0), 2) * np.linalg.norm(w1, 2) * 0.999
    assert float(lipschitz_allowance(recorded, 2)[0]) == pytest.approx(allow, rel=1e-9)
