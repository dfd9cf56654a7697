"""Certified spectral norms of convolutions (verification/layers/conv_norms.py) against the dense lowering's
norm, power-iteration lower bounds, the Schur bound, and the naive Lipschitz bound of CNNs against sampled
lower bounds."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from verification.activations import ReLU, Tanh
from verification.layers import Conv2d, Dense, avg_pool2d
from verification.layers.conv_norms import circular_norm_bound
from verification.lipschitz import lipschitz
from verification.network import Network

MODES = ["zeros", "circular", "reflect", "replicate"]
# (stride, dilation, groups) over every combination the issue names
SETTINGS = list(itertools.product([1, 2], [1, 2], [1, 2]))


def _random_layer(rng, mode: str, stride: int, dil: int, groups: int) -> Conv2d | None:
    c_in = groups * int(rng.integers(1, 3 if groups == 2 else 4))
    c_out = groups * int(rng.integers(1, 3))
    k = int(rng.integers(1, 4))
    h, w = (int(rng.integers(max(2, (k - 1) * dil + 1), 9)) for _ in range(2))
    pads = [int(p) for p in rng.integers(0, 3, 4)]
    if mode == "reflect":
        pads = [min(p, n - 1) for p, n in zip(pads, (h, h, w, w))]
    weight = rng.normal(size=(c_out, c_in // groups, k, k))
    try:
        return Conv2d(weight, None, (c_in, h, w), (stride, stride), (dil, dil), groups, tuple(pads), mode)
    except Exception:  # the kernel does not fit this random input: draw again
        return None


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("stride,dil,groups", SETTINGS)
def test_certified_bound_between_true_norm_and_schur(mode, stride, dil, groups):
    rng = np.random.default_rng([MODES.index(mode), stride, dil, groups])
    done = 0
    while done < 6:
        layer = _random_layer(rng, mode, stride, dil, groups)
        if layer is None:
            continue
        true = np.linalg.norm(layer.as_matrix(), 2)
        bound = layer.norm_bound(2)
        assert bound >= true
        assert bound <= layer.schur_norm_bound
        lower = layer.norm_lower(200)
        assert lower <= true * (1 + 1e-12)
        assert lower >= 0.5 * true  # power iteration converges on these tiny operators
        done += 1


@pytest.mark.parametrize("dil", [1, 2])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_circular_stride1_is_exact(rng, k, dil):
    for _ in range(5):
        h, w = (int(rng.integers(max(2, (k - 1) * dil + 1), 9)) for _ in range(2))
        total = dil * (k - 1)  # one output per position: the operator is block-circulant
        pads = (total // 2, total - total // 2, total - total // 2, total // 2)
        c_in, c_out = (int(v) for v in rng.integers(1, 4, 2))
        layer = Conv2d(rng.normal(size=(c_out, c_in, k, k)), None, (c_in, h, w), 1, dil, 1, pads, "circular")
        true = np.linalg.norm(layer.as_matrix(), 2)
        assert layer.norm_bound(2) == pytest.approx(true, rel=1e-9)
        assert layer.norm_bound(2) >= true


def test_circular_stride2_dividing_the_grid_is_exact(rng):
    for groups in (1, 2):
        layer = Conv2d(rng.normal(size=(4, 2, 3, 3)), None, (2 * groups, 8, 6), 2, 1, groups, (1, 1, 1, 1),
                       "circular")
        true = np.linalg.norm(layer.as_matrix(), 2)
        assert layer.norm_bound(2) == pytest.approx(true, rel=1e-9)


def test_average_pool_norm_is_exact():
    pool = avg_pool2d((3, 8, 8), 2)  # each output the mean of 4 disjoint inputs: norm 1/2 (Schur gives 1/2 too)
    assert pool.norm_bound(2) == pytest.approx(0.5, rel=1e-12)
    assert pool.spectral_norm_bound[0] == pytest.approx(0.5, rel=1e-12)
    overlapping = avg_pool2d((1, 8, 8), 3, 1, (1, 1, 1, 1))  # zero-padded 3x3 mean, stride 1: norm < 1
    true = np.linalg.norm(overlapping.as_matrix(), 2)
    assert true <= overlapping.norm_bound(2) <= 1.0 + 1e-12


def test_huge_dynamic_range_is_still_certified(rng):
    for mode in MODES:
        w = rng.normal(size=(3, 2, 3, 3)) * 10.0 ** rng.choice([-8, 0, 8], size=(3, 2, 3, 3))
        layer = Conv2d(w, None, (2, 6, 7), 1, 1, 1, (1, 1, 1, 1), mode)
        true = np.linalg.norm(layer.as_matrix(), 2)
        assert layer.norm_bound(2) >= true
        if mode == "circular":  # one output per position: exact
            assert layer.norm_bound(2) == pytest.approx(true, rel=1e-9)
    tiny = Conv2d(rng.normal(size=(2, 2, 3, 3)) * 1e-300, None, (2, 5, 5), 1, 1, 1, (1, 1, 1, 1), "zeros")
    assert tiny.norm_bound(2) >= np.linalg.norm(tiny.as_matrix(), 2)


def test_circular_bound_against_a_brute_force_symbol(rng):
    """The frequency matrices themselves: max over frequencies of ||sum_taps w e^{-i phase}||_2."""
    w = rng.normal(size=(3, 2, 3, 2))
    n = (5, 6)
    best = 0.0
    for a in range(n[0]):
        for b in range(n[1]):
            ph = np.exp(-2j * np.pi * (a * np.arange(3)[:, None] * 2 / n[0] + b * np.arange(2)[None, :] / n[1]))
            best = max(best, np.linalg.norm((w * ph).sum(axis=(2, 3)), 2))
    assert circular_norm_bound(w, 1, n, (1, 1), (2, 1)) == pytest.approx(best, rel=1e-12)
    with pytest.raises(ValueError):
        circular_norm_bound(w, 1, (5, 6), (2, 1), (1, 1))


def test_non_finite_weight_gives_no_finite_bound():
    assert circular_norm_bound(np.full((1, 1, 2, 2), np.inf), 1, (4, 4), (1, 1), (1, 1)) == np.inf


def _cnn(rng, act, mode: str) -> Network:
    l1 = Conv2d(rng.normal(size=(3, 1, 3, 3)) / 3, rng.normal(size=3) * 0.1, (1, 8, 8), 1, 1, 1, (1, 1, 1, 1), mode)
    l2 = Conv2d(rng.normal(size=(4, 3, 3, 3)) / 3, rng.normal(size=4) * 0.1, l1.output_shape, 2, 1, 1,
                (1, 1, 1, 1), mode)
    l3 = Dense(rng.normal(size=(3, l2.out_features)) / np.sqrt(l2.out_features), np.zeros(3))
    return Network((l1, act, l2, act, l3))


@pytest.mark.parametrize("act", [ReLU(), Tanh()])
@pytest.mark.parametrize("mode", ["zeros", "circular"])
def test_naive_cnn_bound_is_certified_and_above_sampled(rng, act, mode):
    net = _cnn(rng, act, mode)
    naive = lipschitz(net, "naive", 2)
    low = lipschitz(net, "sampled", 2, n_points=200, n_refine=5)
    assert naive.certified and not low.certified
    assert 0 < low.value <= naive.value
    norms = naive.details["layer_norms"]
    for layer, norm in zip(net.affine_layers[:2], norms):
        assert norm == layer.norm_bound(2) <= layer.schur_norm_bound
        assert norm >= np.linalg.norm(layer.as_matrix(), 2)
    # the product of the true layer norms is still an upper bound of the sampled value
    true_product = np.prod([np.linalg.norm(layer.as_matrix(), 2) for layer in net.affine_layers])
    assert low.value <= true_product * (1 + 1e-12)


def test_auto_on_a_cnn_too_large_for_dense_weights_answers_without_dense_matrices(rng):
    l1 = Conv2d(rng.normal(size=(4, 1, 3, 3)) / 3, None, (1, 64, 64), 1, 1, 1, (1, 1, 1, 1))  # 16384 x 4096 dense
    l2 = Conv2d(rng.normal(size=(2, 4, 3, 3)) / 3, None, l1.output_shape, 2, 1, 1, (1, 1, 1, 1))
    l3 = Dense(rng.normal(size=(3, l2.out_features)) / np.sqrt(l2.out_features))
    net = Network((l1, ReLU(), l2, ReLU(), l3))
    res = lipschitz(net, "auto", 2, time_limit=8.0)
    # the dense methods refuse; lipsdp-conv (frequency domain, no dense matrix) answers within the limit (its
    # solver stops with a certified iterate), and auto returns the smallest certified value found, <= naive
    assert res.method in ("lipsdp-conv", "naive") and res.certified
    assert res.value <= lipschitz(net, "naive", 2).value
    # ECLipsE-Fast (dense lowering) is not run: refused, or skipped as too slow for the limit
    assert any(t["method"] == "eclipse-fast" for t in res.details["auto_tried"])
    # the time limit reaches the frequency solver (a named method too): it stops with a certified iterate
    short = lipschitz(net, "lipsdp-conv", 2, time_limit=0.5)
    assert short.certified and short.details["solver_status"] == "time limit"
    low = lipschitz(net, "sampled", 2, n_points=100, n_refine=3)
    assert 0 < low.value <= res.value
