"""Tests of theorytools.deep_linear against closed forms, ODE solutions and exact identities
(Saxe, McClelland & Ganguli 2014, arXiv:1312.6120; equation numbers as in that text)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

import theorytools.deep_linear as dl
from theorytools.deep_linear import _simulate
from theorytools.errors import TheoryError


# ----------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("s,u0,tau", [(1.0, 1e-3, 1.0), (3.0, 1e-6, 2000.0), (0.5, 0.2, 10.0)])
def test_eq12_matches_numerical_eq10(s, u0, tau):
    t_end = 3.0 * tau / s * np.log(s / u0)
    ts = np.linspace(0.0, t_end, 400)
    sol = solve_ivp(lambda _t, u: 2.0 * u * (s - u) / tau, (0.0, t_end), [u0],
                    t_eval=ts, rtol=1e-10, atol=1e-14, method="DOP853")
    assert np.max(np.abs(dl.mode_strength(ts, s, u0, tau) - sol.y[0])) < 1e-8


def test_eq12_limits_and_s_zero():
    assert dl.mode_strength(0.0, 2.0, 1e-3) == pytest.approx(1e-3, rel=1e-14)
    assert dl.mode_strength(1e4, 2.0, 1e-3) == pytest.approx(2.0, rel=1e-14)
    # s = 0: tau du/dt = -2u^2 -> u0 / (1 + 2 u0 t / tau)
    assert dl.mode_strength(3.0, 0.0, 0.5, tau=2.0) == pytest.approx(0.5 / (1 + 1.5), rel=1e-14)
    # approach from above (u0 > s) is also eq 12
    assert dl.mode_strength(1.0, 1.0, 2.0) == pytest.approx(1 / (1 - 0.5 * np.exp(-2.0)))


def test_eq11_inverts_eq12():
    rng = np.random.default_rng(0)
    s = rng.uniform(0.1, 5.0, 50)
    u0 = s * rng.uniform(1e-6, 0.4, 50)
    t = rng.uniform(0.0, 20.0, 50)
    u = dl.mode_strength(t, s, u0, tau=3.0)
    ok = u < s * (1 - 1e-9)  # avoid the round-off of u -> s
    np.testing.assert_allclose(dl.learning_time(s[ok], u0[ok], u[ok], tau=3.0), t[ok],
                               rtol=1e-7, atol=1e-9)
    # from above: u0 > s
    u_above = dl.mode_strength(0.3, 1.0, 3.0)
    assert dl.learning_time(1.0, 3.0, u_above) == pytest.approx(0.3, rel=1e-12)


def test_half_learning_time_and_1_over_s_scaling():
    s, u0, tau = np.array([0.5, 1.0, 4.0]), 1e-4, 7.0
    th = dl.half_learning_time(s, u0, tau)
    np.testing.assert_allclose(dl.mode_strength(th, s, u0, tau), s / 2, rtol=1e-12)
    # t ~ (tau/s) ln(s/eps): stronger modes are learned earlier
    assert np.all(np.diff(th) < 0)
    tl = dl.learning_time(s, 1e-6, s - 1e-6, tau)
    np.testing.assert_allclose(tl, tau / s * np.log(s / 1e-6), rtol=1e-5)


def test_eq15_with_three_layers_is_eq10():
    u = np.linspace(0.0, 2.0, 11)
    np.testing.assert_allclose(dl.deep_mode_rhs(u, 1.5, 3, tau=2.0), 2 * u * (1.5 - u) / 2.0,
                               rtol=1e-14, atol=1e-15)
    assert dl.deep_learning_time(1.5, 1e-3, 1.2, 3, tau=2.0) == pytest.approx(
        float(dl.learning_time(1.5, 1e-3, 1.2, tau=2.0)), rel=1e-11)
    ts = np.linspace(0, 10, 21)
    np.testing.assert_allclose(dl.deep_mode_strength(ts, 1.5, 1e-3, 3, tau=2.0),
                               dl.mode_strength(ts, 1.5, 1e-3, tau=2.0), rtol=1e-8)


@pytest.mark.parametrize("n_layers", [2, 4, 7, 30])
@pytest.mark.parametrize("u0,uf", [(0.01, 0.9), (2.0, 1.5)])
def test_deep_learning_time_matches_ode_event(n_layers, u0, uf):
    s, tau = 1.3, 5.0
    k = n_layers - 1
    rhs = lambda _t, u: k * u ** (2 - 2 / k) * (s - u) / tau  # noqa: E731
    hit = lambda _t, u: u[0] - uf  # noqa: E731
    hit.terminal = True
    sol = solve_ivp(rhs, (0, 1e6), [u0], events=hit, rtol=1e-12, atol=1e-14, method="DOP853")
    t_ode = sol.t_events[0][0]
    assert dl.deep_learning_time(s, u0, uf, n_layers, tau) == pytest.approx(t_ode, rel=1e-8)
    # eq 15 at the learning time returns uf
    assert dl.deep_mode_strength(t_ode, s, u0, n_layers, tau) == pytest.approx(uf, rel=1e-7)


def test_large_depth_time_approaches_eq17_with_order_one_over_depth():
    s, u0, uf = 1.0, 0.1, 0.9
    depths = np.array([50, 100, 200, 400, 800])
    rel = np.array([abs(dl.deep_learning_time(s, u0, uf, n) / dl.infinite_depth_learning_time(
        s, u0, uf, n) - 1) for n in depths])
    assert np.all(np.diff(rel) < 0)
    scaled = rel * depths  # O(1/N_l) <=> N_l * rel tends to a constant
    assert np.ptp(scaled) / scaled.mean() < 0.01
    assert rel[-1] < 5e-3


def test_eq17_against_partial_fractions_quadrature():
    # eq 17 equals tau/N_l * int du / (u^2 (s - u)) (eq 16)
    from scipy.integrate import quad

    s, u0, uf, n, tau = 2.0, 0.05, 1.7, 40, 3.0
    ref = tau / n * quad(lambda u: 1 / (u * u * (s - u)), u0, uf, epsrel=1e-13)[0]
    assert dl.infinite_depth_learning_time(s, u0, uf, n, tau) == pytest.approx(ref, rel=1e-10)


def test_learning_time_s_scaling_symmetry():
    # eq 10/15 are invariant under u -> u/s, t -> s t (deep: s^{2-2/(N_l-1)} t)
    s, u0, uf = 2.5, 1e-3, 2.0
    assert float(dl.learning_time(s, u0, uf)) == pytest.approx(
        float(dl.learning_time(1.0, u0 / s, uf / s)) / s, rel=1e-12)
    n = 6
    p = 2 - 2 / (n - 1)
    assert dl.deep_learning_time(s, u0, uf, n) == pytest.approx(
        dl.deep_learning_time(1.0, u0 / s, uf / s, n) / s**p, rel=1e-10)


# ----------------------------------------------------------------------------- mode dynamics
def test_mode_flow_conserves_a2_minus_b2_and_reaches_hyperbola():
    t = np.linspace(0, 30, 200)
    a, b = dl.mode_flow(0.3, -0.05, 1.0, t)
    c = dl.conserved_quantity(a, b)
    assert np.max(np.abs(c - c[0])) < 1e-9
    assert a[-1] * b[-1] == pytest.approx(1.0, abs=1e-9)
    e = dl.mode_energy(a, b, 1.0)
    assert np.all(np.diff(e) <= 1e-15)  # gradient flow on eq 9


def test_mode_gd_conserved_quantity_changes_at_order_lr_squared():
    # one GD step: (a'^2 - b'^2) = (a^2 - b^2)(1 - lr^2 (s - ab)^2) exactly
    a, b = dl.mode_gd(0.4, 0.1, 2.0, 0.05, 1)
    e0 = 2.0 - 0.04
    assert a[1] ** 2 - b[1] ** 2 == pytest.approx((0.16 - 0.01) * (1 - 0.05**2 * e0**2), rel=1e-13)
    drifts = []
    for lr in (1e-2, 5e-3):
        a, b = dl.mode_gd(0.4, 0.1, 2.0, lr, int(40 / lr))
        drifts.append(abs(a[-1] ** 2 - b[-1] ** 2 - 0.15))
    assert drifts[0] / drifts[1] == pytest.approx(2.0, rel=0.1)  # O(lr^2) per step, O(lr) total


def test_energy_eq6_equals_mode_coordinate_sum():
    rng = np.random.default_rng(3)
    s31 = rng.standard_normal((5, 4))
    w21, w32 = rng.standard_normal((3, 4)), rng.standard_normal((5, 3))
    u, s, vt = np.linalg.svd(s31)
    wb21, wb32 = w21 @ vt.T, u.T @ w32  # eq 4
    a, b = wb21.T, wb32  # a^alpha = column alpha of W21bar, b^alpha = row alpha of W32bar
    dots = np.einsum("ak,bk->ab", a, b[: a.shape[0]])  # dots[alpha, beta] = a^alpha . b^beta
    e = 0.5 * sum((s[i] - dots[i, i]) ** 2 for i in range(4))
    e += 0.5 * sum(dots[i, j] ** 2 for i in range(4) for j in range(4) if i != j)
    e += 0.5 * np.sum((b[4] @ a.T) ** 2)  # row 5 of W32bar (no matching s, N3 > N1)
    assert dl.energy(w21, w32, s31, tau=1.0) == pytest.approx(e, rel=1e-12)


def test_best_rank_approximation_loss():
    rng = np.random.default_rng(4)
    s31 = rng.standard_normal((7, 5))
    w, loss = dl.best_rank_approximation(s31, 2)
    s = np.linalg.svd(s31, compute_uv=False)
    assert loss == pytest.approx(np.sum(s[2:] ** 2), rel=1e-12)
    assert np.sum((s31 - w) ** 2) == pytest.approx(loss, rel=1e-10)
    assert np.linalg.matrix_rank(w) == 2


# ----------------------------------------------------------------------------- simulators
def _problem(n_out=6, n_in=5, seed=0):
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((n_out, n_out)))
    v, _ = np.linalg.qr(rng.standard_normal((n_in, n_in)))
    s = np.array([3.0, 2.2, 1.5, 0.8, 0.4])[: min(n_out, n_in)]
    return (u[:, : s.size] * s) @ v[:, : s.size].T, s


def test_gd_from_decoupled_init_stays_decoupled_and_follows_eq12():
    s31, s = _problem()
    errs = []
    for lr in (2e-3, 1e-3):
        n = int(12.0 / lr)
        tr = dl.simulate_linear(s31, 4, lr=lr, n_steps=n, u0=1e-3, record_every=n // 60, rng=1)
        assert np.max(tr.off_diagonal) < 1e-12
        theory = dl.mode_strength(tr.iterations[:, None], s[None, :4], 1e-3, tau=1 / lr)
        errs.append(np.max(np.abs(tr.mode_strengths[:, :4] - theory)))
        np.testing.assert_allclose(tr.singular_values, s, rtol=1e-12)
        assert np.max(np.abs(tr.mode_strengths[:, 4])) < 1e-12  # mode 5 has no hidden unit
    assert errs[1] < 0.02 * s[0]
    assert errs[0] / errs[1] == pytest.approx(2.0, rel=0.15)  # Euler error is O(lr)


def test_gradient_flow_from_decoupled_init_matches_eq12_tightly():
    s31, s = _problem()
    lr = 1e-2
    tr = dl.simulate_linear(s31, 5, lr=lr, n_steps=4800, method="flow", dt=0.25, u0=1e-2,
                            record_every=160, rng=2)
    theory = dl.mode_strength(tr.iterations[:, None], s[None, :], 1e-2, tau=1 / lr)
    assert np.max(np.abs(tr.mode_strengths - theory)) < 1e-8
    assert np.max(tr.off_diagonal) < 1e-12


def test_deep_decoupled_flow_follows_eq15():
    s31, s = _problem()
    lr, u0 = 1e-2, 0.05
    tr = dl.simulate_linear(s31, [5, 4, 5], lr=lr, n_steps=2400, method="flow", dt=0.25, u0=u0,
                            record_every=120, rng=3)
    for a in range(4):
        ref = dl.deep_mode_strength(tr.iterations, s[a], u0, n_layers=5, tau=1 / lr)
        assert np.max(np.abs(tr.mode_strengths[:, a] - ref)) < 1e-7
    assert np.max(tr.off_diagonal) < 1e-12


def test_fixed_point_is_best_rank_approximation_from_random_init():
    s31, s = _problem()
    tr = dl.simulate_linear(s31, 3, lr=0.02, n_steps=4000, init="gaussian", scale=0.1,
                            record_every=4000, rng=5)
    w_tot = tr.weights[1] @ tr.weights[0]
    best, loss = dl.best_rank_approximation(s31, 3)
    assert np.max(np.abs(w_tot - best)) < 1e-8
    assert tr.loss[-1] == pytest.approx(np.sum(s[3:] ** 2), rel=1e-8)
    assert loss == pytest.approx(np.sum(s[3:] ** 2), rel=1e-12)
    assert tr.loss[-1] < tr.loss[0]


def test_orthogonal_init_and_nonwhitened_loss_is_the_batch_error():
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((4, 30)), rng.standard_normal((3, 30))
    tr = dl.simulate_linear(y @ x.T, [5, 5], sigma11=x @ x.T, sigma33_trace=float(np.sum(y * y)),
                            lr=1e-3, n_steps=50, init="orthogonal", scale=0.5, record_every=50,
                            rng=7)
    w = tr.weights[2] @ tr.weights[1] @ tr.weights[0]
    assert tr.loss[-1] == pytest.approx(np.sum((y - w @ x) ** 2), rel=1e-10)
    same_init = dl.random_init([4, 5, 5, 3], "orthogonal", 0.5, np.random.default_rng(7))
    tr2 = dl.simulate_network(x, y, [5, 5], lr=1e-3, n_steps=50, init=same_init, record_every=50)
    np.testing.assert_allclose(tr2.loss, tr.loss, rtol=1e-10)
    for w_a, w_b in zip(tr.weights, tr2.weights):
        np.testing.assert_allclose(w_a, w_b, atol=1e-12)


def test_output_space_reduction_is_exact(monkeypatch):
    rng = np.random.default_rng(8)
    s31 = rng.standard_normal((60, 4))
    init = dl.random_init([4, 3, 60], "gaussian", 0.3, rng)
    a = dl.simulate_linear(s31, 3, lr=5e-3, n_steps=300, init=init, record_every=100)
    monkeypatch.setattr(_simulate, "_reduce_output", lambda *_: None)
    b = dl.simulate_linear(s31, 3, lr=5e-3, n_steps=300, init=init, record_every=100)
    for wa, wb in zip(a.weights, b.weights):
        np.testing.assert_allclose(wa, wb, atol=1e-12)
    np.testing.assert_allclose(a.mode_strengths, b.mode_strengths, atol=1e-12)


@pytest.mark.parametrize("method,dt", [("gd", 1.0), ("flow", 0.5)])
def test_numpy_blas_path_equals_compiled_kernel(monkeypatch, method, dt):
    rng = np.random.default_rng(15)
    x = rng.standard_normal((5, 20))
    s31, s11 = rng.standard_normal((4, 5)), x @ x.T
    init = dl.random_init([5, 6, 6, 4], "gaussian", 0.5, rng)
    kw = dict(lr=2e-3, n_steps=60, init=init, sigma11=s11, method=method, dt=dt, record_every=20)
    a = dl.simulate_linear(s31, [6, 6], **kw)
    monkeypatch.setattr(_simulate, "_BLAS_PATH_MACS", -1)
    b = dl.simulate_linear(s31, [6, 6], **kw)
    for wa, wb in zip(a.weights, b.weights):
        np.testing.assert_allclose(wa, wb, rtol=1e-12, atol=1e-13)
    for fa, fb in ((a.mode_strengths, b.mode_strengths), (a.off_diagonal, b.off_diagonal),
                   (a.loss, b.loss)):
        np.testing.assert_allclose(fa, fb, rtol=1e-11, atol=1e-12)


def test_growing_mode_strength_of_decoupled_init_is_u0():
    s31 = np.diag([3.0, 2.0, 1.0])
    w = dl.decoupled_init(s31, 5, np.array([1e-3, 2e-3, 4e-3]), rng=0)
    np.testing.assert_allclose(dl.growing_mode_strength(w[0], w[1], s31), [1e-3, 2e-3, 4e-3], rtol=1e-12)


def test_random_init_half_times_follow_eq11_with_growing_mode_strength():
    """Random small init, wide hidden layer (no crowding): the gradient-flow half-learning time of each
    mode is eq 11 with u0 = |a + b|^2/4 of that init, to < 0.5 %; the nominal u0 is off by more."""
    rng = np.random.default_rng(3)
    s31 = np.diag([3.0, 2.0, 1.0])
    n2, sig = 200, np.sqrt(2 * 1e-6 / 200)
    w = [sig * rng.standard_normal((n2, 3)), sig * rng.standard_normal((3, n2))]
    u_eff = dl.growing_mode_strength(w[0], w[1], s31)
    s = np.array([3.0, 2.0, 1.0])
    t_pred = dl.half_learning_time(s, u_eff)
    tr = dl.simulate_linear(s31, n2, lr=1.0, n_steps=int(1.2 * t_pred.max() / 0.01), init=w,
                            method="flow", dt=0.01)
    for a in range(3):
        u = tr.mode_strengths[:, a]
        i = int(np.argmax(u >= s[a] / 2))
        t_sim = np.interp(s[a] / 2, u[i - 1:i + 1], tr.iterations[i - 1:i + 1])
        assert t_sim == pytest.approx(t_pred[a], rel=5e-3)


def test_tanh_net_gd_step_is_the_finite_difference_gradient():
    rng = np.random.default_rng(9)
    x, y = rng.standard_normal((3, 8)), rng.standard_normal((2, 8))
    w = dl.random_init([3, 4, 4, 2], "gaussian", 1.0, rng)
    lr = 1e-7
    tr = dl.simulate_network(x, y, [4, 4], activation="tanh", lr=lr, n_steps=1, init=w)

    def loss(ws):
        a = x
        for m in ws[:-1]:
            a = np.tanh(m @ a)
        return 0.5 * np.sum((y - ws[-1] @ a) ** 2)

    for k in range(3):
        num = np.zeros_like(w[k])
        for idx in np.ndindex(*w[k].shape):
            wp = [m.copy() for m in w]
            wm = [m.copy() for m in w]
            wp[k][idx] += 1e-6
            wm[k][idx] -= 1e-6
            num[idx] = (loss(wp) - loss(wm)) / 2e-6
        np.testing.assert_allclose((tr.weights[k] - w[k]) / lr, -num, rtol=1e-5, atol=1e-6)


def test_linear_data_net_matches_correlation_simulator():
    data = dl.hierarchical_dataset(n_levels=3, n_features=40, rng=10)
    init = dl.random_init([8, 8, 40], "gaussian", 0.05, np.random.default_rng(11))
    a = dl.simulate_network(data.x, data.y, 8, lr=2e-3, n_steps=400, init=init, record_every=100)
    b = dl.simulate_linear(data.sigma31, 8, lr=2e-3, n_steps=400, init=init, record_every=100)
    np.testing.assert_allclose(a.mode_strengths, b.mode_strengths, atol=1e-10)
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-9)


# ----------------------------------------------------------------------------- data
def test_hierarchical_dataset_correlations_follow_tree_distance():
    d = dl.hierarchical_dataset(n_levels=3, n_features=40000, flip_prob=0.1, rng=12)
    assert d.y.shape == (40000, 8) and set(np.unique(d.y)) == {-1.0, 1.0}
    np.testing.assert_array_equal(d.x, np.eye(8))
    c = d.y.T @ d.y / d.y.shape[0]
    # items i, j whose lowest common ancestor is h levels up are 2h edges apart:
    # E[y_i y_j] = (1 - 2p)^{2h}
    for i, j, h in [(0, 1, 1), (0, 2, 2), (0, 7, 3), (4, 6, 2)]:
        assert c[i, j] == pytest.approx(0.8 ** (2 * h), abs=0.02)


# ----------------------------------------------------------------------------- random matrices
def test_fuss_catalan_numbers():
    assert [dl.fuss_catalan(1, k) for k in range(6)] == [1, 1, 2, 5, 14, 42]
    assert [dl.fuss_catalan(2, k) for k in range(5)] == [1, 1, 3, 12, 55]
    assert all(dl.fuss_catalan(L, 2) == L + 1 for L in range(1, 8))


@pytest.mark.parametrize("n_mat", [1, 2, 3])
def test_gaussian_product_moments(n_mat):
    sv = dl.product_singular_values(400, n_mat, n_samples=10, rng=100 + n_mat)
    assert np.mean(sv**2) == pytest.approx(dl.fuss_catalan(n_mat, 1), rel=0.02)
    assert np.mean(sv**4) == pytest.approx(dl.fuss_catalan(n_mat, 2), rel=0.02)


def test_orthogonal_products_are_isometries():
    sv = dl.product_singular_values(60, 20, n_samples=2, ensemble="orthogonal", rng=1)
    np.testing.assert_allclose(sv, 1.0, atol=1e-12)
    ev = dl.product_eigenvalues(60, 5, ensemble="orthogonal", rng=2)
    np.testing.assert_allclose(np.abs(ev), 1.0, atol=1e-12)
    # Gaussian products spread: most singular values shrink as depth grows
    deep = dl.product_singular_values(100, 10, rng=3)
    assert np.median(deep) < 0.2 and deep.max() > 1.5


def test_tanh_jacobian_spectrum_bounds_and_variance_map():
    spec = dl.tanh_jacobian_spectrum(200, 12, gain=1.1, q1=1.0, rng=4)
    assert np.all(spec.singular_values <= 1.1**11 * (1 + 1e-12))  # |tanh'| <= 1, W orthogonal
    # q^{l+1} = g^2 (1/N) sum tanh(x^l)^2 ~ mean-field map (eq 21) at large N
    pred = dl.tanh_variance_map(spec.q[0, :-1], 1.1)
    np.testing.assert_allclose(spec.q[0, 1:], pred, rtol=0.1)
    # near-linear regime (tiny q1): J ~ product of orthogonal matrices, all sigma ~ 1
    lin = dl.tanh_jacobian_spectrum(100, 10, gain=1.0, q1=1e-10, rng=5)
    np.testing.assert_allclose(lin.singular_values, 1.0, atol=1e-8)


def test_tanh_variance_map_fixed_points():
    q = 1.0
    for _ in range(2000):
        q = float(dl.tanh_variance_map(q, 0.9))
    assert q < 1e-6  # g < g_c = 1: activity decays
    q = 1.0
    for _ in range(500):
        q = float(dl.tanh_variance_map(q, 1.5))
    assert q == pytest.approx(float(dl.tanh_variance_map(q, 1.5)), rel=1e-10) and q > 0.1


# ----------------------------------------------------------------------------- extension
def test_balanced_riccati_solution_matches_gradient_flow():
    rng = np.random.default_rng(13)
    s31 = rng.standard_normal((5, 4))
    w = dl.lambda_balanced_init(4, 3, 5, balance=0.5, scale=0.3, rng=14)
    tr = dl.simulate_linear(s31, 3, lr=0.01, n_steps=1000, init=w, method="flow", dt=0.5,
                            record_every=1000)
    exact = dl.balanced_flow_solution(tr.iterations, s31, w[0], w[1], tau=100.0)
    np.testing.assert_allclose(exact[-1], tr.weights[1] @ tr.weights[0], atol=1e-10)
    late = dl.balanced_flow_solution(1e4, s31, w[0], w[1], tau=100.0)
    np.testing.assert_allclose(late, dl.best_rank_approximation(s31, 3)[0], atol=1e-10)
    with pytest.raises(TheoryError, match="lambda-balanced"):
        dl.balanced_flow_solution(1.0, s31, w[0], 2 * w[1])


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize("call,match", [
    (lambda: dl.mode_strength(1.0, 1.0, -1e-3), "'u0' parameter of mode_strength"),
    (lambda: dl.learning_time(1.0, 0.1, 1.5), "same side of s"),
    (lambda: dl.deep_learning_time(1.0, 0.1, 0.5, 1), "'n_layers' parameter"),
    (lambda: dl.simulate_linear(np.eye(3), 2, lr=-1.0, n_steps=3), "'lr' parameter"),
    (lambda: dl.simulate_linear(np.eye(3), 2, lr=1.0, n_steps=3, init="xavier"), "'init'"),
    (lambda: dl.product_singular_values(10, 2, ensemble="uniform"), "'ensemble'"),
    (lambda: dl.hierarchical_dataset(flip_prob=0.7), "'flip_prob'"),
])
def test_bad_parameters_raise_theory_error(call, match):
    with pytest.raises(TheoryError, match=match):
        call()
