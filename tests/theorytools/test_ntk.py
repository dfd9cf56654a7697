"""Tests of theorytools.ntk: analytic kernels, predictions and infinitely deep NTK classifiers.

Golden values: reference notes §B.4, computed with neural-tangents 0.6.5 (jax 0.4.30, jax_enable_x64,
CPU; environment of reference §E) on the 4 fixture inputs below.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import erf as sp_erf
from scipy.stats import dirichlet

from theorytools.errors import TheoryError
from theorytools import ntk

X4 = np.array([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.0, 1.0, 1.0], [-1.0, 0.5, 2.0]])

RELU_NNGP = np.array(
    [
        [0.9576953125, 0.7043992452, 0.6704927782, 0.8484899649],
        [0.7043992452, 0.9576953125, 0.9693287507, 1.0271644221],
        [0.6704927782, 0.9693287507, 1.9069140625, 2.5640882857],
        [0.8484899649, 1.0271644221, 2.5640882857, 4.991875],
    ]
)
RELU_NTK = np.array(
    [
        [2.8652734375, 1.4812355299, 0.9328267961, 0.8225191397],
        [1.4812355299, 2.8652734375, 1.9953426509, 1.3321967092],
        [0.9328267961, 1.9953426509, 5.7129296875, 6.0231144862],
        [0.8225191397, 1.3321967092, 6.0231144862, 14.9678125],
    ]
)
ERF_NNGP = np.array(
    [
        [1.014701462, 0.5502235429, 0.0068577298, -0.3857335485],
        [0.5502235429, 1.014701462, 0.5281590998, -0.0702664334],
        [0.0068577298, 0.5281590998, 1.1312447841, 0.7844033094],
        [-0.3857335485, -0.0702664334, 0.7844033094, 1.2347186698],
    ]
)
ERF_NTK = np.array(
    [
        [3.659715989, 1.7272977234, 0.013285036, -1.1984363067],
        [1.7272977234, 3.659715989, 1.6565461292, -0.218111752],
        [0.013285036, 1.6565461292, 4.4931656409, 2.6872301782],
        [-1.1984363067, -0.218111752, 2.6872301782, 5.8298332473],
    ]
)


def _net(act: ntk.Layer, param: str = "ntk", width: int = 512) -> ntk.Serial:
    d = lambda w: ntk.Dense(w, W_std=1.5, b_std=0.05, parameterization=param)  # noqa: E731
    return ntk.serial(d(width), act, d(width), act, d(1))


# ----------------------------------------------------------------------------- analytic kernels


@pytest.mark.parametrize(
    "act, nngp, ntk_", [(ntk.Relu(), RELU_NNGP, RELU_NTK), (ntk.Erf(), ERF_NNGP, ERF_NTK)], ids=["relu", "erf"]
)
def test_fixture_kernels_match_neural_tangents(act, nngp, ntk_):
    k = _net(act)(X4)
    np.testing.assert_allclose(k.nngp, nngp, rtol=0, atol=1e-8)
    np.testing.assert_allclose(k.ntk, ntk_, rtol=0, atol=1e-8)
    np.testing.assert_allclose(k.var1, np.diag(nngp), atol=1e-8)
    # general (non-symmetric) path and blocked path agree with the symmetric one: every entry (also
    # x·x through the general path) comes from the same scalar computations, so bit for bit
    k2 = _net(act)(X4, X4.copy())
    np.testing.assert_array_equal(k2.ntk, k.ntk)
    np.testing.assert_array_equal(k2.nngp, k.nngp)
    kb = _net(act).kernel_fn(X4, batch_size=3)
    np.testing.assert_allclose(kb.ntk, k.ntk, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(kb.nngp, k.nngp, rtol=1e-13, atol=1e-13)


def test_hand_checked_diagonal():
    # Σ1 = 2.25/3 + 0.0025 = 0.7525 → 2.25·0.7525/2 + 0.0025 = 0.8490625 → 0.9576953125 (reference §B.4)
    k = _net(ntk.Relu())(X4[:1])
    assert k.nngp[0, 0] == pytest.approx(0.9576953125, abs=1e-15)


def test_standard_parameterisation():
    k = _net(ntk.Relu(), param="standard")(X4)
    np.testing.assert_allclose(k.nngp, RELU_NNGP, atol=1e-8)  # NNGP does not depend on the parameterisation
    np.testing.assert_allclose(np.diag(k.ntk), [438.73625, 438.73625, 872.001875, 2280.11515625], rtol=0, atol=1e-8)
    assert k.ntk[0, 1] == pytest.approx(271.0879436353, abs=1e-8)
    with pytest.raises(TheoryError, match="width"):
        ntk.serial(ntk.Dense(None), ntk.Relu(), ntk.Dense(1, parameterization="standard"))(X4)


def _pair_inputs(q1: float, q2: float, s: float) -> np.ndarray:
    """Two inputs of dimension 2 whose NT input covariance x·x'/d is [[q1, s], [s, q2]]."""
    c = np.linalg.cholesky(np.array([[q1, s], [s, q2]]))
    return c * math.sqrt(2.0)


@pytest.fixture(scope="module")
def mc_samples():
    rng = np.random.default_rng(12345)
    q1, q2, s = 0.8, 1.3, 0.5
    z = rng.standard_normal((1_000_000, 2)) @ np.linalg.cholesky(np.array([[q1, s], [s, q2]])).T
    return (q1, q2, s), z[:, 0], z[:, 1]


@pytest.mark.parametrize(
    "act, fn, dfn",
    [
        (ntk.Relu(), lambda x: np.maximum(x, 0), lambda x: (x > 0) * 1.0),
        (ntk.LeakyRelu(0.2), lambda x: np.where(x > 0, x, 0.2 * x), lambda x: np.where(x > 0, 1.0, 0.2)),
        (ntk.ABRelu(-0.5, 2.0), lambda x: np.where(x > 0, 2 * x, -0.5 * x), lambda x: np.where(x > 0, 2.0, -0.5)),
        (ntk.Abs(), np.abs, np.sign),
        (ntk.Erf(), sp_erf, lambda x: 2 / math.sqrt(math.pi) * np.exp(-(x**2))),
        (
            ntk.Erf(a=1.3, b=0.7, c=0.2),
            lambda x: 1.3 * sp_erf(0.7 * x) + 0.2,
            lambda x: 1.3 * 0.7 * 2 / math.sqrt(math.pi) * np.exp(-((0.7 * x) ** 2)),
        ),
    ],
    ids=["relu", "leaky", "abrelu", "abs", "erf", "erf_abc"],
)
def test_closed_forms_vs_monte_carlo(mc_samples, act, fn, dfn):
    (q1, q2, s), u, v = mc_samples
    k = ntk.serial(ntk.Dense(W_std=1.0, b_std=None), act)(_pair_inputs(q1, q2, s))
    # after Dense: Σ = Θ = input covariance; the activation gives NNGP = E[σσ], NTK = Σ·E[σ'σ']
    assert k.nngp[0, 1] == pytest.approx(np.mean(fn(u) * fn(v)), abs=3e-3)
    assert k.ntk[0, 1] / s == pytest.approx(np.mean(dfn(u) * dfn(v)), abs=3e-3)
    # second moments are larger (up to ~2.8): same 3e-3 budget relative to their size
    assert k.var1[0] == pytest.approx(np.mean(fn(u) ** 2), abs=3e-3, rel=3e-3)
    assert k.var1[1] == pytest.approx(np.mean(fn(v) ** 2), abs=3e-3, rel=3e-3)


def test_relu_angle_identities():
    # θ = 0 → E = q/2, Ė = 1/2;  θ = π/2 → E = √(q1q2)/(2π), Ė = 1/4;  θ = π → E = 0, Ė = 0
    net = ntk.serial(ntk.Dense(b_std=None), ntk.Relu())
    u = np.array([[1.2, -0.4]])
    q = float(np.sum(u * u)) / 2
    w = np.array([[0.4, 1.2]]) * 2.0  # orthogonal to u, variance 4q
    for x2, e, ed in [(u.copy(), q / 2, 0.5), (w, 2 * q / (2 * math.pi), 0.25), (-u, 0.0, 0.0)]:
        k = net(u, x2)  # general (non-symmetric) path
        sigma = float(np.sum(u * x2)) / 2
        assert k.nngp[0, 0] == pytest.approx(e, abs=1e-12)
        assert k.ntk[0, 0] == pytest.approx(sigma * ed, abs=1e-12)
    k = ntk.serial(ntk.Dense(b_std=None), ntk.Relu(), ntk.Dense(b_std=None))(u, w)
    assert k.ntk[0, 0] == pytest.approx(2 * q / (2 * math.pi), abs=1e-12)  # Θ2 = Ė·Θ1 + Σ2 = 0·… + E


# --- round-off at the ends θ = 0 and θ = π, independent of the BLAS kernel (OPENBLAS_CORETYPE)
#
# Reference: the closed forms iterated in mpmath (40 digits) on the input covariances of the pair; the
# only inexact inputs are the float64 data themselves.  The arc-cosine kernels have a square-root
# singularity at c = ±1, so an inconsistency of one ulp between Σ(x, x') and √(q q') used to give
# θ ~ 1e−8 and errors growing ~5e−9 per layer (3.6e−7 at depth 100 for ReLU, 8.7e−7 for Abs).

_DEEP_ACTS = {
    "relu": (ntk.Relu(), ("abrelu", 0.0, 1.0), 1.5, 0.05),
    "relu_nobias": (ntk.Relu(), ("abrelu", 0.0, 1.0), math.sqrt(2.0), None),
    "abs": (ntk.Abs(), ("abrelu", -1.0, 1.0), 1.0, 0.05),
    "leaky": (ntk.LeakyRelu(0.1), ("abrelu", 0.1, 1.0), 1.4, 0.05),
    "abrelu": (ntk.ABRelu(-0.5, 2.0), ("abrelu", -0.5, 2.0), 0.6, 0.1),
    "erf": (ntk.Erf(), ("erf",), 1.5, 0.05),
    "erf_abc": (ntk.Erf(a=1.3, b=0.7, c=0.2), ("erf", 1.3, 0.7, 0.2), 1.2, 0.05),
}


def _deep_net(act: ntk.Layer, depth: int, w_std: float, b_std: float | None) -> ntk.Serial:
    layers = [ntk.Dense(W_std=w_std, b_std=b_std)]
    for _ in range(depth):
        layers += [act, ntk.Dense(W_std=w_std, b_std=b_std)]
    return ntk.serial(*layers)


def _mp_pair(spec, depth: int, w_std: float, b_std: float | None, x1: np.ndarray, x2: np.ndarray):
    """(Σ12, Θ12, Σ11, Θ11) of :func:`_deep_net` for one pair of inputs, in mpmath."""
    import mpmath as mp

    with mp.workdps(40):
        d = x1.size
        w2 = mp.mpf(w_std**2)  # the float64 W_std² that the layers use
        b2 = mp.mpf(0) if b_std is None else mp.mpf(b_std**2)
        dot = lambda a, b: mp.fsum(mp.mpf(float(p)) * mp.mpf(float(q)) for p, q in zip(a, b)) / d  # noqa: E731
        q1, q2, s = w2 * dot(x1, x1) + b2, w2 * dot(x2, x2) + b2, w2 * dot(x1, x2) + b2
        t12, t11 = s, q1

        def act(q1, q2, s):
            if spec[0] == "abrelu":
                a, b = mp.mpf(spec[1]), mp.mpf(spec[2])
                c = max(min(s / mp.sqrt(q1 * q2), mp.mpf(1)), mp.mpf(-1))
                th = mp.acos(c)
                lin = (a * a + b * b) / 2 - (a - b) ** 2 / (2 * mp.pi) * th
                return (a - b) ** 2 / (2 * mp.pi) * mp.sqrt(q1 * q2) * mp.sin(th) + lin * s, lin
            a, b, cc = (mp.mpf(v) for v in (spec[1:] if len(spec) > 1 else (1, 1, 0)))
            q1, q2, s = b * b * q1, b * b * q2, b * b * s
            prod = (1 + 2 * q1) * (1 + 2 * q2)
            e = 2 / mp.pi * mp.asin(2 * s / mp.sqrt(prod))
            return a * a * e + cc * cc, a * a * b * b * 4 / mp.pi / mp.sqrt(prod - 4 * s * s)

        for _ in range(depth):
            e12, l12 = act(q1, q2, s)
            e11, l11 = act(q1, q1, q1)
            e22, _ = act(q2, q2, q2)
            t12, t11 = t12 * l12, t11 * l11
            s, q1, q2 = w2 * e12 + b2, w2 * e11 + b2, w2 * e22 + b2
            t12, t11 = w2 * t12 + s, w2 * t11 + q1
        return tuple(float(v) for v in (s, t12, q1, t11))


def _inputs_for_ends():
    rng = np.random.default_rng(7)
    return [np.array([1.2, -0.4])] + [rng.standard_normal(d) for d in (2, 3, 5, 16, 33)]


@pytest.mark.parametrize("name", list(_DEEP_ACTS))
@pytest.mark.parametrize("depth", [10, 100])
def test_identical_inputs_exact_at_depth(name, depth):
    act, spec, w_std, b_std = _DEEP_ACTS[name]
    net = _deep_net(act, depth, w_std, b_std)
    for u in _inputs_for_ends():
        k = net(u[None], u[None].copy())  # general path, x2 a different array holding the same row
        # angle exactly 0: the cross term equals both variances bit for bit, whatever the BLAS kernel
        assert k.nngp[0, 0] == k.var1[0] == k.var2[0]
        ks = net(u[None])  # symmetric path
        assert k.ntk[0, 0] == ks.ntk[0, 0] and k.nngp[0, 0] == ks.nngp[0, 0]
        s, t, _, _ = _mp_pair(spec, depth, w_std, b_std, u, u)
        # round-off only: ~depth × a few ulps (measured ≤ 1.4e−14 at depth 100)
        assert k.nngp[0, 0] == pytest.approx(s, rel=1e-12, abs=0)
        assert k.ntk[0, 0] == pytest.approx(t, rel=1e-12, abs=0)


@pytest.mark.parametrize("name", list(_DEEP_ACTS))
@pytest.mark.parametrize("depth", [1, 10, 100])
def test_opposite_inputs_exact_at_depth(name, depth):
    # no bias, so that the first activation sees c = −1 exactly (a bias moves Σ(x, −x) off −q); the
    # following layers have generic angles whose 1 − c ~ 1/ℓ² is resolved to ~1e−16/(1 − c) only, which
    # is conditioning, not error: measured ≤ 3e−14 relative at depth 100
    act, spec, w_std, _ = _DEEP_ACTS[name]
    net = _deep_net(act, depth, w_std, None)
    for u in _inputs_for_ends():
        k = net(u[None], -u[None])  # θ = π at the first activation
        s, t, q11, t11 = _mp_pair(spec, depth, w_std, None, u, -u)
        # relative to the diagonal Σ(x, x), Θ(x, x): the pair's own values can vanish (ReLU at depth 1)
        assert abs(k.nngp[0, 0] - s) <= 1e-12 * q11
        assert abs(k.ntk[0, 0] - t) <= 1e-12 * t11


def test_relu_opposite_inputs_give_zero():
    # θ = π: E[σσ] = 0 and E[σ'σ'] = 0 exactly (was 8e−9 from arccos/√(q1q2 − Σ²) at c = −1 + ulp)
    for u in _inputs_for_ends():
        k = ntk.serial(ntk.Dense(b_std=None), ntk.Relu(), ntk.Dense(b_std=None))(u[None], -u[None])
        assert k.nngp[0, 0] == 0.0 and k.ntk[0, 0] == 0.0
        k = ntk.serial(ntk.Dense(b_std=None), ntk.Abs())(u[None], -u[None])  # |−u| = |u|
        assert k.nngp[0, 0] == k.var1[0] == k.var2[0]


@pytest.mark.parametrize(
    "act",
    [ntk.Relu(), ntk.Abs(), ntk.LeakyRelu(0.1), ntk.Erf(), ntk.Identity(), ntk.Elementwise(np.tanh, lambda x: 1 - np.tanh(x) ** 2, degree=24)],
    ids=["relu", "abs", "leaky", "erf", "identity", "elementwise"],
)
def test_repeated_rows_give_identical_rows(act):
    rng = np.random.default_rng(11)
    base = rng.standard_normal((5, 6))
    x = np.concatenate([base, base[[1, 3]], -base[[1]], base[[1]]])  # rows 5, 8 repeat 1; 6 repeats 3
    depth = 20 if isinstance(act, ntk.Elementwise) else 100
    net = _deep_net(act, depth, 1.2, 0.05)
    for k in (net(x), net(x, x.copy()), net.kernel_fn(x, batch_size=3)):
        for i, j in [(1, 5), (1, 8), (3, 6)]:
            np.testing.assert_array_equal(k.ntk[i], k.ntk[j])
            np.testing.assert_array_equal(k.nngp[i], k.nngp[j])
            np.testing.assert_array_equal(k.ntk[:, i], k.ntk[:, j])
            # the entry between two copies is the diagonal value itself (angle exactly 0)
            assert k.nngp[i, j] == k.nngp[i, i] == k.var1[i] == k.var1[j]
            assert k.ntk[i, j] == k.ntk[i, i]
    k, kg = net(x), net(x, x.copy())
    np.testing.assert_array_equal(kg.ntk, k.ntk)
    np.testing.assert_array_equal(kg.nngp, k.nngp)


def test_elementwise_identical_inputs_exact():
    net = _deep_net(ntk.Elementwise(np.sin, np.cos, degree=32), 30, 1.1, 0.05)
    for u in _inputs_for_ends():
        k = net(u[None], u[None].copy())
        assert k.nngp[0, 0] == k.var1[0] == k.var2[0]
        assert k.ntk[0, 0] == net(u[None]).ntk[0, 0]


def test_elementwise_quadrature_exact_and_vs_closed_form():
    x = _pair_inputs(0.8, 1.3, 0.5)
    k = ntk.serial(ntk.Dense(b_std=None), ntk.Elementwise(np.sin, np.cos))(x)
    # E[sin u sin v] = e^{−(q1+q2)/2} sinh(Σ12),  E[cos u cos v] = e^{−(q1+q2)/2} cosh(Σ12)
    assert k.nngp[0, 1] == pytest.approx(math.exp(-1.05) * math.sinh(0.5), abs=1e-12)
    assert k.ntk[0, 1] / 0.5 == pytest.approx(math.exp(-1.05) * math.cosh(0.5), abs=1e-12)
    assert k.var1[0] == pytest.approx(math.exp(-0.8) * math.sinh(0.8), abs=1e-12)
    # generic quadrature (numerical derivative) reproduces the Erf closed form through a deep net;
    # erf saturates at these variances (up to ~5), so Gauss–Hermite needs many nodes (48 → 6e−3 error)
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((6, 5))
    gen = _net(ntk.Elementwise(sp_erf, degree=160))(xs)
    ref = _net(ntk.Erf())(xs)
    np.testing.assert_allclose(gen.nngp, ref.nngp, atol=1e-10)
    np.testing.assert_allclose(gen.ntk, ref.ntk, atol=1e-8)


def test_identity_activation_gives_depth_times_sigma1():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 4))
    for depth in (1, 3, 6):
        layers = [ntk.Dense(b_std=None)]
        for _ in range(depth - 1):
            layers += [ntk.Identity(), ntk.Dense(b_std=None)]
        k = ntk.serial(*layers)(x)
        sigma1 = x @ x.T / 4
        np.testing.assert_allclose(k.nngp, sigma1, atol=1e-14)
        np.testing.assert_allclose(k.ntk, depth * sigma1, atol=1e-13)


@pytest.mark.parametrize("act", [ntk.Relu(), ntk.Erf(), ntk.Abs(), ntk.LeakyRelu(0.1)], ids=["relu", "erf", "abs", "leaky"])
def test_kernels_symmetric_psd(act):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((40, 7))
    k = _net(act)(x)
    for m in (k.nngp, k.ntk):
        np.testing.assert_array_equal(m, m.T)
        lam = np.linalg.eigvalsh(m)
        assert lam.min() > -1e-10 * lam.max()
    assert np.all(np.diag(k.ntk) >= np.diag(k.nngp))
    # rectangular and blocked evaluations agree with the symmetric one bit for bit (Gram entries from
    # one position-independent routine, not BLAS; the cores are symmetric in (x, x'); identical pairs
    # via the general path get c = 1 exactly, so the √ singularity of the arc-cosine kernel at c = 1
    # is never hit by rounding)
    kr = _net(act).kernel_fn(x[:13], x, batch_size=5)
    np.testing.assert_array_equal(kr.ntk, k.ntk[:13])
    np.testing.assert_array_equal(kr.var2, k.var1)
    only = _net(act).kernel_fn(x, get="nngp")
    assert only.ntk is None
    np.testing.assert_allclose(only.nngp, k.nngp, rtol=1e-14)


def test_bad_parameters_raise():
    with pytest.raises(TheoryError, match="W_std"):
        ntk.Dense(W_std=-1.0)
    with pytest.raises(TheoryError, match="parameterization"):
        ntk.Dense(parameterization="mup")
    with pytest.raises(TheoryError, match="get"):
        _net(ntk.Relu()).kernel_fn(X4, get="foo")
    with pytest.raises(TheoryError, match="x2"):
        _net(ntk.Relu())(X4, np.ones((2, 5)))
    with pytest.raises(TheoryError, match="serial"):
        ntk.serial(ntk.Relu(), "dense")
    with pytest.raises(TheoryError, match="learning_rate"):
        ntk.gradient_descent_mse(RELU_NTK, np.ones(4), 1.0, learning_rate=0.0)
    with pytest.raises(TheoryError, match="y_train"):
        ntk.gradient_descent_mse(RELU_NTK, np.ones(3), 1.0)


# ----------------------------------------------------------------------------- predictions

Y3 = np.array([1.0, -1.0, 0.5])
TH_TR, TH_TE = RELU_NTK[:3, :3], RELU_NTK[3:, :3]
K_TR, K_TE, K_TT = RELU_NNGP[:3, :3], RELU_NNGP[3:, :3], RELU_NNGP[3:, 3:]


@pytest.mark.parametrize(
    "t, train, test",
    [
        (1.0, [0.4013874311, -0.2477803448, 0.2730212076], 0.4742924367),
        (10.0, [0.9847584721, -0.9790675715, 0.4938902861], 1.1114379487),
        (None, Y3, 1.1292509157),
    ],
)
def test_gradient_descent_mse_values(t, train, test):
    p = ntk.gradient_descent_mse(TH_TR, Y3, t, ntk_test_train=TH_TE)
    np.testing.assert_allclose(p.train, train, atol=1e-8)
    assert p.test[0] == pytest.approx(test, abs=1e-8)


def test_gradient_descent_mse_dynamics_properties():
    ts = np.array([0.0, 1.0, 10.0, np.inf])
    f0 = np.array([0.3, 0.1, -0.2])
    p = ntk.gradient_descent_mse(TH_TR, Y3, ts, ntk_test_train=TH_TE, fx_train_0=f0, fx_test_0=0.7, learning_rate=0.5)
    np.testing.assert_allclose(p.train[0], f0, atol=1e-14)
    assert p.test[0, 0] == pytest.approx(0.7, abs=1e-14)
    np.testing.assert_allclose(p.train[-1], Y3, atol=1e-14)
    # df/dt at t = 0 equals −(η/m)·Θ(f0 − Y) (time t is in steps; absolute time η·t)
    h = 1e-6
    ph = ntk.gradient_descent_mse(TH_TR, Y3, h, fx_train_0=f0, learning_rate=0.5)
    np.testing.assert_allclose((ph.train - f0) / h, -(0.5 / 3) * TH_TR @ (f0 - Y3), rtol=1e-5)
    # along an eigenvector of Θ the residual decays exactly as exp(−η t λ/m)
    lam, v = np.linalg.eigh(TH_TR)
    pe = ntk.gradient_descent_mse(TH_TR, Y3, 7.0, fx_train_0=Y3 + v[:, 0], learning_rate=0.5)
    np.testing.assert_allclose(pe.train - Y3, math.exp(-0.5 * 7.0 * lam[0] / 3) * v[:, 0], atol=1e-13)
    # the loss ||f − Y||²/(2m) decreases monotonically; multi-output targets use m = y.size
    res = np.linalg.norm(p.train - Y3, axis=1)
    assert np.all(np.diff(res) <= 1e-15)
    y2 = np.stack([Y3, -Y3], axis=1)
    p2 = ntk.gradient_descent_mse(TH_TR, y2, 2.0)
    p1 = ntk.gradient_descent_mse(TH_TR, Y3, 1.0)  # same exponent: 2·Θ/6 = 1·Θ/3
    np.testing.assert_allclose(p2.train[:, 0], p1.train, atol=1e-14)


def test_max_learning_rate():
    assert ntk.max_learning_rate(TH_TR) == pytest.approx(0.8249162477, abs=1e-9)
    assert ntk.max_learning_rate(TH_TR, momentum=0.5) == pytest.approx(1.5 * 0.8249162477, abs=1e-9)


def test_ensemble_and_nngp_posterior_values():
    e10 = ntk.gradient_descent_mse_ensemble(TH_TR, TH_TE, K_TR, K_TE, K_TT, Y3, 10.0)
    assert e10.mean[0] == pytest.approx(1.1114379487, abs=1e-8)
    assert e10.covariance[0, 0] == pytest.approx(1.5973168771, abs=1e-8)
    einf = ntk.gradient_descent_mse_ensemble(TH_TR, TH_TE, K_TR, K_TE, K_TT, Y3, None)
    assert einf.mean[0] == pytest.approx(1.1292509157, abs=1e-8)
    assert einf.covariance[0, 0] == pytest.approx(1.5942480833, abs=1e-8)
    post = ntk.nngp_posterior(K_TR, K_TE, Y3, K_TT)
    assert post.mean[0] == pytest.approx(2.0892356154, abs=1e-8)
    assert post.covariance[0, 0] == pytest.approx(1.3193923762, abs=1e-8)
    # the NNGP-as-NTK ensemble at t = ∞ is the Bayesian posterior; at t = 0 it is the prior
    same = ntk.gradient_descent_mse_ensemble(K_TR, K_TE, K_TR, K_TE, K_TT, Y3, None)
    np.testing.assert_allclose(same.mean, post.mean, atol=1e-10)
    np.testing.assert_allclose(same.covariance, post.covariance, atol=1e-10)
    e0 = ntk.gradient_descent_mse_ensemble(TH_TR, TH_TE, K_TR, K_TE, K_TT, Y3, 0.0)
    assert e0.mean[0] == 0.0 and e0.covariance[0, 0] == pytest.approx(K_TT[0, 0], abs=1e-14)


# ----------------------------------------------------------------------------- infinitely deep NTK


def test_deep_relu_ntk_equals_analytic_construction():
    rng = np.random.default_rng(3)
    d = 4
    x = rng.standard_normal((7, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    for depth in (1, 6):
        kd, rho = ntk.deep_ntk(x, None, "relu", depth)
        layers = [ntk.Dense(W_std=math.sqrt(2.0), b_std=None)]
        for _ in range(depth):
            layers += [ntk.Relu(), ntk.Dense(W_std=math.sqrt(2.0), b_std=None)]
        ka = ntk.serial(*layers)(x * math.sqrt(d / 2.0))
        np.testing.assert_allclose(kd, ka.ntk, atol=1e-12)
        np.testing.assert_allclose(rho, ka.nngp, atol=1e-12)
        np.testing.assert_allclose(np.diag(kd), depth + 1, atol=1e-12)
    stacked, _ = ntk.deep_ntk(x, x[:3], "relu", [1, 6])
    np.testing.assert_allclose(stacked[1], ntk.deep_ntk(x, x[:3], "relu", 6)[0], atol=1e-14)


@pytest.mark.parametrize(
    "name, kw",
    [("relu", {}), ("erf", {}), ("sine", {"a": 2.0}), ("hermite", {"k": 3}), ("optimal_2d", {}), ("optimal_3d", {}), ("optimal_5d", {}), ("optimal_9d", {})],
)
def test_duals_normalised_and_derivatives(name, kw):
    dual = ntk.dual_activation(name, **kw)
    assert float(dual.value(np.array(1.0))) == pytest.approx(1.0, abs=1e-14)
    r = np.linspace(-0.95, 0.95, 11)
    h = 1e-6
    np.testing.assert_allclose(dual.deriv(r), (dual.value(r + h) - dual.value(r - h)) / (2 * h), atol=1e-6)
    assert np.all(np.abs(dual.value(r)) <= 1.0 + 1e-12)


def test_erf_dual_matches_analytic_erf_kernel():
    # ν̌ of erf normalised: Σ_out/Σ_out(1) for unit-variance inputs; compare with the Erf layer
    rho = np.array([[-0.7, 0.0, 0.4, 0.9]])
    e = [ntk.serial(ntk.Dense(b_std=None), ntk.Erf())(_pair_inputs(1.0, 1.0, r)).nngp[0, 1] for r in rho[0]]
    e1 = ntk.serial(ntk.Dense(b_std=None), ntk.Erf())(_pair_inputs(1.0, 1.0, 1.0 - 1e-15)).var1[0]
    np.testing.assert_allclose(np.array(e) / e1, ntk.dual_activation("erf").value(rho[0]), atol=1e-12)


def test_classifiers_and_baselines():
    a1, a2, prior = (1.0, 2.0), (2.0, 1.0), 0.4
    x, y, p = ntk.dirichlet_sample(300, a1, a2, prior, seed=0)
    xt, yt, pt = ntk.dirichlet_sample(1000, a1, a2, prior, seed=1)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0)
    # Bayes rule equals the direct density comparison
    bayes = ntk.dirichlet_bayes_classify(xt, a1, a2, prior)
    direct = (prior * dirichlet.pdf(pt.T, a1) > (1 - prior) * dirichlet.pdf(pt.T, a2)).astype(int)
    np.testing.assert_array_equal(bayes, direct)
    acc_bayes = np.mean(bayes == yt)
    # interpolating classifiers reproduce their training labels (where K(X, X) is numerically
    # invertible: smooth duals at small depth on this 1-D arc have cond ~1e19 and are solved by lstsq)
    np.testing.assert_array_equal(ntk.deep_ntk_classify(x, y, x, "optimal_2d", 20), y)
    np.testing.assert_array_equal(ntk.deep_ntk_classify(x, y, x, "relu", 3), y)
    np.testing.assert_array_equal(ntk.nearest_neighbor_classify(x, y, x), y)
    np.testing.assert_array_equal(ntk.singular_kernel_classify(x, y, x), y)
    mv = ntk.majority_vote_classify(y, 5)
    assert np.all(mv == np.bincount(y).argmax())
    # the Bayes rule is optimal: no classifier beats it by more than sampling noise (1000 test points)
    accs = {
        "relu_L2": np.mean(ntk.deep_ntk_classify(x, y, xt, "relu", 2) == yt),
        "opt": np.mean(ntk.deep_ntk_classify(x, y, xt, "optimal_2d", 50) == yt),
        "1nn": np.mean(ntk.nearest_neighbor_classify(x, y, xt) == yt),
        "singular": np.mean(ntk.singular_kernel_classify(x, y, xt) == yt),
        "majority": np.mean(ntk.majority_vote_classify(y, len(yt)) == yt),
    }
    for name, acc in accs.items():
        assert acc <= acc_bayes + 0.04, name
    assert accs["majority"] < acc_bayes - 0.05
    assert accs["opt"] > accs["majority"] + 0.05


@pytest.mark.parametrize("name, power", [("optimal_2d", 3.0), ("optimal_3d", 4.0), ("optimal_5d", 6.0)])
def test_deep_limit_is_a_singular_kernel_vote(name, power):
    # [DERIVED] for ν̌'(1) = a > 1 and ν̌'(0) = b < 1, nearby points (1 − ρ = ε) keep ρ ≈ 1 for
    # log_a(1/ε) layers, so K_L(x, z) ≈ C·b^L·ε^{−log(a/b)/log a} ∝ ||x − z||^{−2 log(a/b)/log a}, while
    # K_L(X, X)/K_L(x, x) → I.  Deep interpolation is therefore a singular-kernel vote with that power.
    dual = ntk.dual_activation(name)
    a, b = float(dual.deriv(np.array(1.0))), float(dual.deriv(np.array(0.0)))
    assert 2 * math.log(a / b) / math.log(a) == pytest.approx(power)
    x, y, _ = ntk.dirichlet_sample(200, (1.0, 2.0), (2.0, 1.0), 0.4, seed=4)
    xt, _, _ = ntk.dirichlet_sample(1000, (1.0, 2.0), (2.0, 1.0), 0.4, seed=5)
    deep = ntk.deep_ntk_classify(x, y, xt, dual, 60)
    vote = ntk.singular_kernel_classify(x, y, xt, power=power)
    assert np.mean(deep == vote) >= 0.99
    # the scaled kernel is K_L/K_L(x, x): unit diagonal, same ratios as the unscaled one
    k, _ = ntk.deep_ntk(x[:20], None, dual, 20)
    ks, _ = ntk.deep_ntk(x[:20], None, dual, 20, scale_diagonal=True)
    np.testing.assert_allclose(np.diag(ks), 1.0, rtol=1e-14)
    np.testing.assert_allclose(ks, k / k[0, 0], rtol=1e-12, atol=0)


def _mp_deep(name: str, depth: int, rho: float) -> tuple[float, float]:
    """(K_L, ρ_L) of the deep NTK recursion for the duals relu, erf, optimal_2d, in mpmath."""
    import mpmath as mp

    with mp.workdps(40):
        if name == "relu":
            v = lambda r: (r * (mp.pi - mp.acos(r)) + mp.sqrt(1 - r * r)) / mp.pi  # noqa: E731
            dv = lambda r: (mp.pi - mp.acos(r)) / mp.pi  # noqa: E731
        elif name == "erf":
            c = mp.asin(mp.mpf(2) / 3)
            v = lambda r: mp.asin(2 * r / 3) / c  # noqa: E731
            dv = lambda r: (mp.mpf(2) / 3) / mp.sqrt(1 - (2 * r / 3) ** 2) / c  # noqa: E731
        else:
            v = lambda r: r**7 / 2 + r / 2  # noqa: E731
            dv = lambda r: 7 * r**6 / 2 + mp.mpf(1) / 2  # noqa: E731
        r = mp.mpf(rho)
        k = r
        for _ in range(depth):
            k, r = v(r) + k * dv(r), max(min(v(r), mp.mpf(1)), mp.mpf(-1))
        return float(k), float(r)


@pytest.mark.parametrize("name", ["relu", "erf", "optimal_2d"])
@pytest.mark.parametrize("depth", [10, 100])
def test_deep_ntk_exact_at_the_ends(name, depth):
    # identical rows: ρ = 1 and K = κ_L; opposite rows: ρ = −1 (1 + ρ from ||x + z||²/2, and the ReLU dual
    # via atan2 is exact at ρ = −1; optimal_2d has ν̌'(−1) = 4, so any rounding there grew 4^L)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 6))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x = np.concatenate([x, x[[0, 2]], -x[[0]]])
    k, rho = ntk.deep_ntk(x, None, name, depth)
    kappa, _ = _mp_deep(name, depth, 1.0)
    kpi, rpi = _mp_deep(name, depth, -1.0)
    assert np.all(np.diag(rho) == 1.0)
    np.testing.assert_allclose(np.diag(k), kappa, rtol=1e-12, atol=0)
    for i, j in [(0, 4), (2, 5)]:
        np.testing.assert_array_equal(k[i], k[j])
        assert k[i, j] == k[i, i] and rho[i, j] == 1.0
    assert rho[0, 6] == pytest.approx(rpi, rel=1e-12, abs=1e-15)
    assert k[0, 6] == pytest.approx(kpi, rel=1e-12, abs=1e-12 * kappa)
    if name == "relu":
        assert np.all(np.diag(k) == depth + 1)  # K_L(x, x) = L + 1 exactly
    ks, _ = ntk.deep_ntk(x, x.copy(), name, depth, scale_diagonal=True)
    assert np.all(np.diag(ks) == 1.0) and ks[0, 4] == 1.0


# --------------------------------------------------------------------------- stable kernel solve


def test_kernel_solve_well_conditioned_equals_direct_solve():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((30, 30)))
    k = (q * np.linspace(1.0, 10.0, 30)) @ q.T
    y = rng.standard_normal((30, 2))
    res = ntk.kernel_solve(k, y, ridge=0.0)
    np.testing.assert_allclose(res.weights, np.linalg.solve(k, y), rtol=1e-10, atol=1e-12)
    assert res.condition == pytest.approx(10.0, rel=1e-10) == pytest.approx(np.linalg.cond(k))
    assert res.numerical_rank == 30 and res.relative_residual < 1e-13 and res.ridge == 0.0
    # relative ridge: (K + ridge * mean(diag K) I)^-1 Y; absolute ridge: (K + ridge I)^-1 Y
    rel = ntk.kernel_solve(k, y[:, 0], ridge=0.1)
    np.testing.assert_allclose(rel.weights, np.linalg.solve(k + 0.1 * np.trace(k) / 30 * np.eye(30), y[:, 0]),
                               rtol=1e-10)
    ab = ntk.kernel_solve(k, y, ridge=0.1, relative=False)
    np.testing.assert_allclose(ab.weights, np.linalg.solve(k + 0.1 * np.eye(30), y), rtol=1e-10)
    assert ab.condition_regularised == pytest.approx(10.1 / 1.1, rel=1e-10)


def test_kernel_solve_singular_kernel():
    """Rank-5 kernel of 40 points: the automatic ridge sits at the round-off floor n*eps*lam_max,
    the weights stay bounded, targets in the range of K are fitted, others are projected."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((40, 5))
    k = a @ a.T
    res = ntk.kernel_solve(k, k @ rng.standard_normal(40))
    lam = np.linalg.eigvalsh(k)
    assert res.noise_floor == pytest.approx(40 * np.finfo(float).eps * lam[-1])
    assert res.ridge == res.noise_floor and res.numerical_rank == 5
    assert res.condition > 1e12  # inf or round-off sized lam_min
    assert res.condition_regularised < 2 / (40 * np.finfo(float).eps)
    assert res.relative_residual < 1e-8
    y = rng.standard_normal(40)
    res = ntk.kernel_solve(k, y)
    proj = a @ np.linalg.lstsq(a, y, rcond=None)[0]  # orthogonal projection of y onto range(K)
    # the 35 round-off eigenvalues (|lam| ~ eps * lam_max) keep a weight lam/(lam + r) < 1/2 in K alpha
    noise = np.maximum(res.eigenvalues[:35], 0.0)
    leak = np.max(noise / (noise + res.ridge))
    assert leak < 0.5
    assert np.linalg.norm(res.fitted - proj) <= leak * np.linalg.norm(y - proj) + 1e-8
    # null-space components of y are divided by the ridge: ||alpha|| <= ||y|| / r, not larger
    assert np.linalg.norm(res.weights) <= np.linalg.norm(y) / res.ridge * (1 + 1e-8)


def test_kernel_solve_deep_ntk_numerically_singular():
    """The deep Erf NTK at depth 20 on 2-D Dirichlet data is singular in float64 (lam_min < 0): the
    stable solve classifies above the majority vote and fits most training labels."""
    x_tr, y_tr, _ = ntk.dirichlet_sample(250, (1.0, 2.0), (2.0, 1.0), 0.4, seed=0)
    x_te, y_te, _ = ntk.dirichlet_sample(1500, (1.0, 2.0), (2.0, 1.0), 0.4, seed=1)
    xs = np.concatenate([x_tr, x_te])
    k, _ = ntk.deep_ntk(xs, x_tr, "erf", 20, scale_diagonal=True)
    res = ntk.kernel_solve(k[:250], np.where(y_tr == 1, 1.0, -1.0))
    assert res.eigenvalues[0] < res.noise_floor and res.numerical_rank < 250
    acc = np.mean((k[250:] @ res.weights > 0) == (y_te == 1))
    assert acc > np.mean(y_te == 0) + 0.05  # majority vote + 5 points
    assert np.mean(np.sign(res.fitted) == np.where(y_tr == 1, 1.0, -1.0)) > 0.9


def test_kernel_solve_bad_input():
    k = np.eye(3)
    with pytest.raises(TheoryError, match="ridge"):
        ntk.kernel_solve(k, np.ones(3), ridge=-1.0)
    with pytest.raises(TheoryError, match="ridge"):
        ntk.kernel_solve(k, np.ones(3), ridge="tiny")
    with pytest.raises(TheoryError, match="targets"):
        ntk.kernel_solve(k, np.ones(4))
    with pytest.raises(TheoryError, match="square"):
        ntk.kernel_solve(np.ones((3, 2)), np.ones(3))
    with pytest.raises(TheoryError, match="positive"):
        ntk.kernel_solve(-np.eye(3), np.ones(3))
