"""The network IR: evaluation, Jacobians, canonical form, validation."""

from __future__ import annotations

import numpy as np
import pytest

from verification.activations import (
    GroupSort,
    Householder,
    Identity,
    LeakyReLU,
    MaxMin,
    ReLU,
    Sigmoid,
    SiLU,
    Tanh,
    from_spec,
    parse_activation,
)
from verification.errors import InvalidParameterError, InvalidWeightsError, ShapeMismatchError, UnsupportedLayerError
from verification.network import Dense, Network

ACTS = [ReLU(), LeakyReLU(0.2), Tanh(), Sigmoid(), Identity(), MaxMin(), GroupSort(4), Householder(np.array([0.6, 0.8])), SiLU()]


def _net(rng, act, widths=(3, 8, 4, 2)):
    layers = []
    for k in range(len(widths) - 1):
        layers.append(Dense(rng.normal(size=(widths[k + 1], widths[k])), rng.normal(size=widths[k + 1])))
        if k < len(widths) - 2:
            layers.append(act)
    return Network(tuple(layers))


def test_evaluation_matches_manual_forward(rng):
    w0, b0, w1, b1 = rng.normal(size=(5, 3)), rng.normal(size=5), rng.normal(size=(2, 5)), rng.normal(size=2)
    net = Network((Dense(w0, b0), ReLU(), Dense(w1, b1)))
    x = rng.normal(size=(7, 3))
    expected = np.maximum(x @ w0.T + b0, 0) @ w1.T + b1
    np.testing.assert_allclose(net(x), expected, rtol=0, atol=1e-14)
    np.testing.assert_allclose(net(x[0]), expected[0], rtol=0, atol=1e-14)
    assert net(x.astype(np.float32)).dtype == np.float64


@pytest.mark.parametrize("act", ACTS, ids=lambda a: a.describe())
def test_jacobian_matches_finite_differences(rng, act):
    net = _net(rng, act)
    x = rng.normal(size=(6, 3))
    jac = net.jacobian(x)
    h = 1e-6
    fd = np.stack([(net(x + h * e) - net(x - h * e)) / (2 * h) for e in np.eye(3)], axis=-1)
    np.testing.assert_allclose(jac, fd, atol=1e-6)


def test_activation_values():
    z = np.array([[-2.0, -0.5, 0.0, 1.5]])
    np.testing.assert_array_equal(ReLU()(z), [[0, 0, 0, 1.5]])
    np.testing.assert_allclose(LeakyReLU(0.1)(z), [[-0.2, -0.05, 0, 1.5]])
    np.testing.assert_allclose(Sigmoid()(np.array([[-800.0, 0.0, 800.0]])), [[0.0, 0.5, 1.0]])
    np.testing.assert_array_equal(MaxMin()(np.array([[1.0, 3.0, 2.0, -1.0]])), [[3, 1, 2, -1]])
    np.testing.assert_array_equal(GroupSort(4)(np.array([[1.0, 3.0, 2.0, -1.0]])), [[3, 2, 1, -1]])
    assert ReLU().slope_bounds() == (0.0, 1.0)
    assert Sigmoid().slope_bounds() == (0.0, 0.25)
    assert LeakyReLU(0.1).slope_bounds() == (0.1, 1.0)
    assert MaxMin().slope_bounds() is None
    assert parse_activation("leaky_relu(0.3)") == LeakyReLU(0.3)
    assert parse_activation("groupsort(4)") == GroupSort(4)
    with pytest.raises(UnsupportedLayerError):
        parse_activation("swish")


def test_householder_is_norm_preserving_and_continuous(rng):
    v = rng.normal(size=3)
    hh = Householder(v / np.linalg.norm(v))
    z = rng.normal(size=(100, 6))
    np.testing.assert_allclose(np.linalg.norm(hh(z), axis=1), np.linalg.norm(z, axis=1), rtol=1e-13)
    # on the hyperplane v·z = 0 both branches agree
    g = rng.normal(size=3)
    g -= (g @ hh.v) * hh.v
    np.testing.assert_allclose(hh(g[None]), g[None], atol=1e-14)
    np.testing.assert_allclose(hh.reflection @ g, g, atol=1e-14)


@pytest.mark.parametrize("act", ACTS[:4] + [SiLU()], ids=lambda a: a.describe())
def test_interval_is_sound(rng, act):
    lo = rng.normal(size=(1, 8))
    hi = lo + rng.random((1, 8))
    l, u = act.interval(lo, hi)
    z = lo + (hi - lo) * rng.random((2000, 8))
    assert np.all(act(z) >= l - 1e-12) and np.all(act(z) <= u + 1e-12)


def test_canonical_form_is_equivalent(rng):
    layers = (
        ReLU(),  # leading activation: identity dense inserted
        Dense(rng.normal(size=(4, 3))),
        Dense(rng.normal(size=(6, 4)), rng.normal(size=6)),  # merged with the previous dense
        Tanh(),
        Identity(),  # dropped
        MaxMin(),  # consecutive activations: identity dense inserted
        Dense(rng.normal(size=(2, 6))),
        ReLU(),  # trailing activation: identity dense appended
    )
    net = Network(layers)
    can = net.canonical()
    assert can.is_canonical and not net.is_canonical
    assert [a.describe() for a in can.activations] == ["relu", "tanh", "maxmin", "relu"]
    x = rng.normal(size=(20, 3))
    np.testing.assert_allclose(can(x), net(x), atol=1e-12)
    assert can.canonical() is can


def test_with_output_selects_a_logit_combination(rng):
    net = _net(rng, ReLU())
    x = rng.normal(size=(5, 3))
    np.testing.assert_allclose(net.with_output(1)(x)[:, 0], net(x)[:, 1], atol=1e-13)
    c = np.array([1.0, -1.0])
    np.testing.assert_allclose(net.with_output(c)(x)[:, 0], net(x) @ c, atol=1e-13)
    with pytest.raises(InvalidParameterError):
        net.with_output(2)


def test_validation_errors(rng):
    w = rng.normal(size=(3, 2))
    bad = w.copy()
    bad[1, 1] = np.nan
    with pytest.raises(InvalidWeightsError, match="layer 0"):
        Network((Dense(bad),))
    with pytest.raises(ShapeMismatchError, match="layer 2 .* expects 4 inputs"):
        Network((Dense(w), ReLU(), Dense(rng.normal(size=(2, 4)))))
    with pytest.raises(ShapeMismatchError, match="divisible by 2"):
        Network((Dense(w), MaxMin(), Dense(rng.normal(size=(2, 3)))))
    with pytest.raises(ShapeMismatchError):
        Dense(w, np.zeros(4))
    net = Network((Dense(w),))
    with pytest.raises(ShapeMismatchError, match="expects 2"):
        net(np.zeros(5))


def test_rounded_network_rounds_only_parameters(rng):
    net = _net(rng, ReLU())
    r = net.rounded(np.float32)
    for a, b in zip(net.weights, r.weights):
        np.testing.assert_array_equal(b, a.astype(np.float32).astype(np.float64))
    assert r.dense_layers[0].weight.dtype == np.float64


@pytest.mark.parametrize("act", ACTS, ids=lambda a: a.describe())
def test_vector_jacobian_equals_rows_of_the_jacobian(rng, act):
    net = _net(rng, act, widths=(3, 8, 4, 5))  # out (5) > in (3): jacobian uses forward mode
    x = rng.normal(size=(6, 3))
    jac = net.jacobian(x)
    c = rng.normal(size=(2, 5))
    np.testing.assert_allclose(net.vector_jacobian(x, c), c @ jac, atol=1e-12)
    per_sample = rng.normal(size=(6, 1, 5))
    np.testing.assert_allclose(net.vector_jacobian(x, per_sample)[:, 0], np.einsum("nk,nki->ni", per_sample[:, 0], jac), atol=1e-12)
    with pytest.raises(ShapeMismatchError, match="seeds"):
        net.vector_jacobian(x, np.ones((2, 4)))


@pytest.mark.parametrize("act", ACTS, ids=lambda a: a.describe())
def test_every_activation_round_trips_through_the_name_table(act):
    from verification.activations.names import NAMES, ONNX_OPS, TORCH_MODULES

    assert from_spec(act.to_spec()) == act
    if act.describe() in {row.short for row in NAMES}:
        assert parse_activation(act.describe().upper()) == act
    assert all(row.make().name == row.name for row in ONNX_OPS.values())
    assert {row.torch_module for row in TORCH_MODULES.values()} >= {"ReLU", "LeakyReLU", "Tanh", "Sigmoid", "SiLU"}


def test_unknown_activation_messages_list_the_table():
    from verification.activations.names import short_forms

    with pytest.raises(UnsupportedLayerError, match="expected relu, tanh, sigmoid, silu, identity, leaky_relu\\(a\\), maxmin or groupsort\\(g\\)"):
        parse_activation("gelu")
    assert short_forms().startswith("relu, tanh") and "silu" in short_forms()
    with pytest.raises(UnsupportedLayerError, match="unknown activation type 'gelu'"):
        from_spec({"type": "gelu"})
