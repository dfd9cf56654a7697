"""Bounded-score transform and smooth adversarial comp-sum losses (theorytools.hconsistency, issue 24).

References are brute force: conditional risks evaluated on grids of score vectors, random search over the
simplex, sampling and gradient ascent inside the perturbation ball.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from theorytools.errors import TheoryError
from theorytools.hconsistency import (
    adversarial_zero_one_loss,
    best_conditional_risk_bounded,
    bounded_error_transform,
    bounded_excess_risk_bound,
    bounded_gamma_transform,
    bounded_min_conditional_regret,
    bounded_zero_threshold,
    comp_sum_lipschitz,
    comp_sum_loss,
    conditional_risk,
    error_transform,
    phi_tau,
    score_perturbation_norm,
    smooth_adversarial_comp_sum_loss,
)

TAUS = [0.0, 0.5, 1.0, 1.5, 1.9, 2.0]


def _grid_risks(p: np.ndarray, tau: float, lam: float, G: int):
    """Conditional risks of every score vector (0, a, b) with a, b on a grid and spread <= 2 lam (n = 3)."""
    a = np.linspace(-2 * lam, 2 * lam, G)
    A, B = np.meshgrid(a, a, indexing="ij")
    H = np.stack([np.zeros_like(A), A, B], -1).reshape(-1, 3)
    H = H[H.max(1) - H.min(1) <= 2 * lam + 1e-12]
    return H, conditional_risk(H, np.broadcast_to(p, H.shape), tau)


@pytest.mark.parametrize("tau", TAUS)
@pytest.mark.parametrize("lam", [0.2, 0.8, 2.0])
def test_two_class_transform_equals_grid_bruteforce(tau, lam):
    m = np.linspace(-2 * lam, 2 * lam, 400_001)  # margin h_0 - h_1 over its whole range
    H = np.stack([m, np.zeros_like(m)], -1)
    for t in (0.05, 0.3, 0.6, 0.95, 1.0):
        p = np.array([(1 + t) / 2, (1 - t) / 2])
        risk = conditional_risk(H, np.broadcast_to(p, H.shape), tau)
        brute = risk[m <= 0].min() - risk.min()  # predict class 1 (ties included) minus the best
        assert bounded_error_transform(t, tau, lam, 2) == pytest.approx(brute, abs=1e-9)
        assert bounded_min_conditional_regret(p, 1, tau, lam) == pytest.approx(brute, abs=1e-9)


@pytest.mark.parametrize("tau", [0.0, 1.0, 1.5, 2.0])
def test_two_class_closed_form_pieces(tau):
    lam = 0.7
    t = np.linspace(0, 1, 401)
    T = bounded_error_transform(t, tau, lam, 2)
    knee = np.tanh((2 - tau) * lam)
    below = t <= knee
    assert np.allclose(T[below], error_transform(t[below], tau, 2), rtol=1e-10, atol=1e-15)
    assert np.allclose(np.diff(T[~below], 2), 0.0, atol=1e-12)  # the tangent line above the knee
    s_hi = 1 / (1 + np.exp(-2 * lam))
    if tau == 1.0:
        ref = t / 2 * np.log(s_hi / (1 - s_hi)) + np.log(2) + 0.5 * np.log(s_hi * (1 - s_hi))
        assert np.allclose(T[~below], ref[~below], atol=1e-13)
    if tau == 2.0:
        assert np.allclose(T, t / 2 * np.tanh(lam), atol=1e-15)


@pytest.mark.parametrize("tau", [0.0, 1.0, 1.5, 2.0])
def test_exact_bounded_regret_vs_score_grid_n3(tau):
    rng = np.random.default_rng(7)
    lam = 0.6
    for _ in range(3):
        p = rng.dirichlet(np.ones(3))
        H, risk = _grid_risks(p, tau, lam, 601)
        best = risk.min()
        assert best_conditional_risk_bounded(p, tau, lam) <= best + 1e-12
        assert best_conditional_risk_bounded(p, tau, lam) == pytest.approx(best, abs=2e-5)
        for k in range(3):
            mask = H[:, k] >= H.max(1) - 1e-15
            brute = risk[mask].min() - best
            assert bounded_min_conditional_regret(p, k, tau, lam) == pytest.approx(brute, abs=5e-5)


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0, 1.25, 1.5])
@pytest.mark.parametrize("lam", [0.3, 1.0, 2.5])
def test_transform_below_exact_regret_on_simplex(tau, lam):
    """T_lam,n(t) <= exact minimal regret for random p and every wrong prediction, n = 3, 5."""
    rng = np.random.default_rng(int(10 * lam + 3 * tau))
    for n in (3, 5):
        P = np.concatenate([rng.dirichlet(np.full(n, a), size=300) for a in (0.2, 1.0)])
        P[:100, 2:] *= 1e-3  # near the two-class family
        P /= P.sum(1, keepdims=True)
        k = rng.integers(0, n, len(P))
        k = np.where(k == P.argmax(1), (k + 1) % n, k)
        t = P.max(1) - P[np.arange(len(P)), k]
        R = bounded_min_conditional_regret(P, k, tau, lam)
        T = bounded_error_transform(t, tau, lam, n, proven=False)  # the family value (measured for tau > 1)
        assert np.all(R >= T - 1e-9), (R - T).min()
        Tp = bounded_error_transform(t, tau, lam, n)  # proved: = T for tau <= 1, scaled below it above
        beta = (n - 2) * np.exp(-2 * lam)
        np.testing.assert_allclose(Tp, T * (((2 + beta) / n) ** (tau - 1) if tau > 1 else 1.0), rtol=1e-12)
        # attained on the family p = ((1+t)/2, (1-t)/2, 0, ...)
        for tt in (0.2, 0.7):
            p = np.zeros(n)
            p[:2] = (1 + tt) / 2, (1 - tt) / 2
            assert bounded_min_conditional_regret(p, 1, tau, lam) == pytest.approx(
                bounded_error_transform(tt, tau, lam, n, proven=False), abs=1e-9)


@pytest.mark.parametrize("tau", [1.7, 1.9, 2.0])
@pytest.mark.parametrize("lam", [1.0, 2.5])
def test_proved_transform_holds_where_the_family_fails(tau, lam):
    """tau near 2: the family value fails, the proved ((2+beta)/n)^(tau-1)-scaled transform does not."""
    rng = np.random.default_rng(int(10 * lam + 7 * tau))
    for n in (3, 5):
        P = rng.dirichlet(np.full(n, 0.3), size=150)
        near = np.zeros((50, n))
        near[:, 0] = rng.uniform(0.5, 0.65, 50)
        near[:, 1] = 1 - near[:, 0] - 1e-6
        near[:, 2] = 1e-6
        P = np.concatenate([P, near])
        k = rng.integers(0, n, len(P))
        k[150:] = 2  # predict the (nearly) empty class
        k = np.where(k == P.argmax(1), (k + 1) % n, k)
        t = P.max(1) - P[np.arange(len(P)), k]
        R = bounded_min_conditional_regret(P, k, tau, lam)
        assert np.all(R >= bounded_error_transform(t, tau, lam, n) - 1e-9)
        if n == 3 and tau >= 1.9:
            from theorytools.hconsistency._bounded import _T_bounded

            assert (R - _T_bounded(t, tau, lam, n)).min() < -5e-3  # the family value is not a lower bound


def test_family_is_beaten_near_tau_two_so_n3_refuses():
    """tau = 1.9, lam = 1, n = 3: p ~ (0.57, 0.43, 0) predicting its empty class beats the two-class family."""
    from theorytools.hconsistency._bounded import _T_bounded

    rng = np.random.default_rng(15)
    P = np.concatenate([rng.dirichlet(np.full(3, a), size=700) for a in (0.2, 1.0)])
    k = rng.integers(0, 3, len(P))
    k = np.where(k == P.argmax(1), (k + 1) % 3, k)
    t = P.max(1) - P[np.arange(len(P)), k]
    R = bounded_min_conditional_regret(P, k, 1.9, 1.0)
    assert (R - _T_bounded(t, 1.9, 1.0, 3)).min() < -1e-3
    with pytest.raises(TheoryError, match="tau <= 1.5"):
        bounded_error_transform(0.5, 1.9, 1.0, 3, proven=False)
    assert np.all(R >= bounded_error_transform(t, 1.9, 1.0, 3) - 1e-9)  # the proved transform holds
    assert bounded_error_transform(0.5, 1.9, 1.0, 2) == bounded_error_transform(0.5, 1.9, 1.0, 2, proven=False) > 0


@pytest.mark.parametrize("tau", TAUS)
def test_limits_and_monotonicity(tau):
    t = np.linspace(0, 1, 201)
    for n, proven in [(2, True), (3, True), (10, True)] + ([(3, False), (10, False)] if tau <= 1.5 else []):
        big = bounded_error_transform(t, tau, 40.0, n, proven=proven)
        if proven:  # lam -> inf: the proved transform is the complete-H T_tau of n classes
            assert np.allclose(big, error_transform(t, tau, n), atol=1e-12)
        else:
            assert np.allclose(big, error_transform(t, tau, 2), atol=1e-12)
            assert np.all(big >= error_transform(t, tau, n) - 1e-15)
        prev = np.zeros_like(t)
        for lam in (0.05, 0.2, 0.5, 1.0, 2.0, 5.0):
            T = bounded_error_transform(t, tau, lam, n, proven=proven)
            assert np.all(T >= prev - 1e-13)  # a larger box never lowers the transform
            assert np.all(T <= error_transform(t, tau, 2) + 1e-13)
            assert np.all(np.diff(T) >= -1e-15) and np.all(np.diff(T, 2) >= -1e-12)  # increasing, convex
            t0 = bounded_zero_threshold(lam, n)
            assert np.all(T[t <= t0] == 0.0) and np.all(T[t > t0 + 1e-9] > 0)
            prev = T


@pytest.mark.parametrize("tau", [0.0, 1.0, 1.5, 2.0])
def test_bounded_gamma_inverts(tau):
    for n, lam in ((2, 0.4), (5, 0.8)) if tau <= 1.5 else ((2, 0.4),):
        t0 = bounded_zero_threshold(lam, n)
        t = np.linspace(t0 + 0.01, 1, 30)
        T = bounded_error_transform(t, tau, lam, n)
        assert np.allclose(bounded_gamma_transform(T, tau, lam, n), t, rtol=1e-9, atol=1e-12)
        assert bounded_gamma_transform(0.0, tau, lam, n) == pytest.approx(t0, abs=1e-15)
        assert bounded_gamma_transform(1e9, tau, lam, n) == 1.0
    assert bounded_zero_threshold(0.5, 2) == 0.0
    assert bounded_zero_threshold(0.5, 10) == pytest.approx(8 * np.exp(-1) / (2 + 8 * np.exp(-1)), rel=1e-15)


@pytest.mark.parametrize("tau", [0.0, 1.0, 1.5])
def test_bounded_excess_risk_bound_holds(tau):
    """Random models with scores in the box, exact expected risks: 0 <= R01 excess <= bound."""
    rng = np.random.default_rng(21)
    for n, lam in ((2, 0.5), (3, 1.0), (5, 2.0)):
        p = rng.dirichlet(np.ones(n), size=150)
        h = np.clip(rng.normal(0, 1, (150, n)) + np.log(p), -lam, lam)
        r = bounded_excess_risk_bound(h, tau, lam, p_cond=p)
        assert r.zero_one_excess is not None and 0 <= r.zero_one_excess <= r.bound + 1e-12
        assert r.transform_proven is True
        if n >= 3 and tau > 1:  # the family value: measured, not proved, and never above the proved bound
            rf = bounded_excess_risk_bound(h, tau, lam, p_cond=p, proven=False)
            assert rf.transform_proven is False and rf.bound <= r.bound + 1e-12
        assert r.surrogate_excess >= -1e-12  # R*_tau(H_lam) is the pointwise infimum
        # near-optimal bounded scores: small surrogate excess, bound close to the zero region t_0
        best = np.log(np.maximum(p, 1e-300)) / (2 - tau)
        h2 = np.clip(best - best.max(1, keepdims=True) + lam, -lam, lam)
        r2 = bounded_excess_risk_bound(h2, tau, lam, p_cond=p)
        assert r2.zero_one_excess <= r2.bound + 1e-12
    with pytest.raises(TheoryError, match="box of width"):
        bounded_excess_risk_bound(np.array([[0.0, 3.0]]), tau, 1.0, p_cond=np.array([[0.5, 0.5]]))


# ------------------------------------------------------------------------------ adversarial comp-sum


def test_lipschitz_constant_is_the_sup_of_the_gradient_norm():
    for tau in (1.0, 1.3, 1.5, 2.0):
        q = np.linspace(1e-6, 1, 200_001)
        grid_sup = np.max(q ** (tau - 1) * (1 - q))
        assert comp_sum_lipschitz(tau) == pytest.approx(grid_sup, rel=1e-6 if tau > 1 else 1e-5)
        # n = 2: the gradient of l^tau in Delta (one coordinate) has norm p_y^(tau-1) (1 - p_y)
        d = np.linspace(-8, 8, 4001)
        loss = comp_sum_loss(np.stack([np.zeros_like(d), d], -1), np.zeros(len(d), int), tau)
        slope = np.abs(np.diff(loss) / np.diff(d))
        assert slope.max() <= comp_sum_lipschitz(tau) + 1e-9
    assert comp_sum_lipschitz(2.0) == 0.25 and np.isinf(comp_sum_lipschitz(0.5))


@pytest.mark.parametrize("norm", [1, 2, "inf"])
def test_perturbation_norm_exact_vs_sampling(norm):
    rng = np.random.default_rng(11)
    W = rng.normal(size=(4, 6))
    for y in range(4):
        val, exact = score_perturbation_norm(W, y, 0.5, norm)
        assert exact
        A = W - W[y]
        if norm == 1:
            cand = np.concatenate([np.eye(6), -np.eye(6)])
        elif norm == 2:
            cand = rng.normal(size=(20_000, 6))
            cand /= np.linalg.norm(cand, axis=1, keepdims=True)
        else:
            cand = np.array(np.meshgrid(*[[-1.0, 1.0]] * 6)).reshape(6, -1).T
        sampled = 0.5 * np.max(np.linalg.norm(cand @ A.T, axis=1))
        assert sampled <= val + 1e-12
        if norm == 2:
            assert val == pytest.approx(0.5 * np.sqrt(np.linalg.eigvalsh(A.T @ A).max()), rel=1e-12)
            assert sampled >= 0.97 * val
        else:
            assert sampled == pytest.approx(val, rel=1e-12)
    big = rng.normal(size=(3, 20))
    ub, exact = score_perturbation_norm(big, 0, 1.0, "inf")
    assert not exact and ub >= score_perturbation_norm(big, 0, 1.0, 2)[0] * 1.0


@pytest.mark.parametrize("tau", [1.0, 1.5, 2.0])
@pytest.mark.parametrize("norm", [2, "inf"])
def test_smooth_adversarial_loss_bounds_the_adversarial_losses(tau, norm):
    rng = np.random.default_rng(12)
    n, d, m, gamma = 4, 5, 40, 0.3
    W, b = rng.normal(size=(n, d)), rng.normal(size=n)
    x = rng.normal(size=(m, d))
    y = rng.integers(0, n, m)
    smooth = smooth_adversarial_comp_sum_loss(W, b, x, y, tau, gamma, norm=norm)
    adv01 = adversarial_zero_one_loss(W, b, x, y, gamma, norm=norm)
    assert np.all(adv01 <= smooth / phi_tau(1.0, tau) + 1e-12)
    assert 0 < adv01.mean() < 1
    # sup of l^tau over the ball, by sampling + projected gradient ascent, never exceeds the smooth loss
    for i in range(m):
        def neg(delta, i=i):
            return -float(comp_sum_loss((x[i] + delta) @ W.T + b, np.array(y[i]), tau))

        if norm == 2:
            cand = rng.normal(size=(300, d))
            cand *= gamma / np.linalg.norm(cand, axis=1, keepdims=True)
            cons = [{"type": "ineq", "fun": lambda z: gamma**2 - z @ z}]
            res = minimize(neg, cand[0] * 0.5, constraints=cons, method="SLSQP")
        else:
            cand = gamma * rng.choice([-1.0, 1.0], size=(300, d))
            res = minimize(neg, cand[0] * 0.5, bounds=[(-gamma, gamma)] * d, method="L-BFGS-B")
        vals = comp_sum_loss((x[i] + cand) @ W.T + b, np.full(300, y[i]), tau)
        sup_est = max(vals.max(), -res.fun)
        assert sup_est <= smooth[i] + 1e-9


@pytest.mark.parametrize("norm", [1, 2, "inf"])
def test_adversarial_zero_one_exact_for_linear(norm):
    """Exact: the optimal perturbation towards each wrong class flips the prediction iff the loss is 1."""
    rng = np.random.default_rng(13)
    n, d, m, gamma = 3, 4, 200, 0.4
    W, b = rng.normal(size=(n, d)), rng.normal(size=n)
    x = rng.normal(size=(m, d))
    y = np.argmax(x @ W.T + b, axis=1)  # clean prediction correct
    y[:20] = (y[:20] + 1) % n  # some clean errors
    loss = adversarial_zero_one_loss(W, b, x, y, gamma, norm=norm)
    assert np.all(loss[:20] == 1.0)
    for i in range(m):
        flipped = False
        for k in range(n):
            if k == y[i]:
                continue
            w = W[y[i]] - W[k]  # margin decreases fastest along the dual direction of w
            if norm == 2:
                delta = -gamma * w / np.linalg.norm(w)
            elif norm == "inf":
                delta = -gamma * np.sign(w)
            else:
                j = np.argmax(np.abs(w))
                delta = np.zeros(d)
                delta[j] = -gamma * np.sign(w[j])
            s = (x[i] + delta) @ W.T + b
            flipped |= s[y[i]] <= np.max(np.delete(s, y[i])) + 1e-12
        assert flipped == bool(loss[i])


def test_adversarial_validation():
    W = np.ones((3, 2))
    with pytest.raises(TheoryError, match="'nu'"):
        smooth_adversarial_comp_sum_loss(W, None, np.zeros((1, 2)), np.array([0]), 0.5, 0.1)
    with pytest.raises(TheoryError, match="'norm'"):
        adversarial_zero_one_loss(W, None, np.zeros((1, 2)), np.array([0]), 0.1, norm=3)
    with pytest.raises(TheoryError, match="'x'"):
        adversarial_zero_one_loss(W, None, np.zeros((1, 3)), np.array([0]), 0.1)
    with pytest.raises(TheoryError, match="'lam'"):
        bounded_error_transform(0.5, 1.0, 0.0)
    with pytest.raises(TheoryError, match="'t'"):
        bounded_error_transform(1.5, 1.0, 1.0)
    with pytest.raises(TheoryError, match="'pred'"):
        bounded_min_conditional_regret([0.5, 0.5], 2, 1.0, 1.0)
