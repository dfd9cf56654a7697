"""Adversarial H-consistency bound of smooth adversarial comp-sum rho-margin losses (theorytools.hconsistency).

Brute force: a finite input set, every linear hypothesis W x + b with entries in {-1, 0, 1} (19683 of them),
adversarial 0-1 losses by exhaustive search over the vertices of the l_inf / l_1 ball (exact for linear
scores), best-in-class conditional risks as minima over the grid, losses recomputed here independently.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from theorytools.errors import TheoryError
from theorytools.hconsistency import (
    adversarial_excess_risk_bound,
    adversarial_zero_one_loss,
    best_conditional_margin_risk,
    comp_sum_margin_loss,
    margin_comp_sum_lipschitz,
    optimal_softmax,
    phi_tau,
    smooth_adversarial_comp_sum_loss,
    smooth_adversarial_margin_loss,
)

N, D, RHO = 3, 2, 0.5
X = np.array([[0.513, -0.291], [-0.407, 0.223], [0.131, 0.617]])  # no exact ties on the ball for W != rows
P = np.array([[0.5, 0.3, 0.2], [0.2, 0.45, 0.35], [0.34, 0.33, 0.33]])


def _grid():
    vals = np.array([-1.0, 0.0, 1.0])
    Ws = np.array(list(itertools.product(vals, repeat=N * D))).reshape(-1, N, D)
    bs = np.array(list(itertools.product(vals, repeat=N)))
    W = np.repeat(Ws, len(bs), axis=0)
    b = np.tile(bs, (len(Ws), 1))
    return W, b  # (H, n, d), (H, n)


def _vertices(norm):
    if norm == "inf":
        return np.array(list(itertools.product([-1.0, 1.0], repeat=D)))
    return np.concatenate([np.eye(D), -np.eye(D)])  # l_1 ball


def _phi(u, tau):
    return np.log1p(u) if tau == 1.0 else ((1.0 + u) ** (1.0 - tau) - 1.0) / (1.0 - tau)


def _margin_loss(s, y, tau):  # independent: Phi^tau(sum_{y' != y} clip(1 - (s_y - s_y')/rho, 0, 1))
    ramp = np.clip(1.0 - (s[..., [y]] - s) / RHO, 0.0, 1.0)
    ramp[..., y] = 0.0
    return _phi(ramp.sum(-1), tau)


def _penalty(W, y, gamma, norm):  # gamma * ||W - 1 w_y^T||_{p->2}, p = inf (sign vectors) or 1 (columns)
    A = W - W[:, [y], :]
    if norm == "inf":
        signs = np.array(list(itertools.product([-1.0, 1.0], repeat=D)))
        return gamma * np.max(np.linalg.norm(np.einsum("hnd,vd->hvn", A, signs), axis=2), axis=1)
    return gamma * np.max(np.linalg.norm(A, axis=1), axis=1)


def _brute(tau, gamma, norm, ties="argmax"):
    """Conditional adversarial 0-1 risks and smooth-loss risks, (H, m) each, by exhaustive search."""
    W, b = _grid()
    pts = X[:, None, :] + gamma * _vertices(norm)[None]  # (m, V, d): the ball's vertices (and x at gamma 0)
    s_ball = np.einsum("hnd,mvd->hmvn", W, pts) + b[:, None, None, :]
    s_x = np.einsum("hnd,md->hmn", W, X) + b[:, None, :]
    adv = np.zeros(s_x.shape[:2])
    sur = np.zeros(s_x.shape[:2])
    for y in range(N):
        if ties == "argmax":
            attacked = np.any(np.argmax(s_ball, axis=-1) != y, axis=-1)
        else:
            others = np.delete(s_ball, y, axis=-1).max(-1)
            attacked = np.any(s_ball[..., y] <= others, axis=-1)
        attacked |= np.argmax(s_x, -1) != y if ties == "argmax" else s_x[..., y] <= np.delete(s_x, y, -1).max(-1)
        nu = np.sqrt(N - 1) / RHO
        loss = _margin_loss(s_x, y, tau) + nu * _penalty(W, y, gamma, norm)[:, None]
        adv += P[:, y] * attacked
        sur += P[:, y] * loss
    return W, b, adv, sur


@pytest.mark.parametrize("tau", [0.0, 1.0, 1.5, 2.0])
@pytest.mark.parametrize("norm", ["inf", 1])
@pytest.mark.parametrize("ties", ["argmax", "error"])
def test_bound_holds_on_every_grid_hypothesis(tau, norm, ties):
    gamma = 0.3
    W, b, adv, sur = _brute(tau, gamma, norm, ties)
    # best-in-class conditional risks over the grid = the closed forms (the grid holds the needed constants)
    np.testing.assert_allclose(adv.min(0), 1.0 - P.max(1), atol=1e-12)
    np.testing.assert_allclose(sur.min(0), best_conditional_margin_risk(P, tau), atol=1e-12)
    d_adv = (adv - adv.min(0)).mean(1)  # R_gamma(h) - R*_gamma(H) + M_gamma(H), uniform marginal on X
    d_sur = (sur - sur.min(0)).mean(1)
    c1 = _phi(1.0, tau)
    assert np.all(d_adv * c1 <= d_sur + 1e-12)
    # not loose by much on this grid (equality needs a two-class p, see the n = 2 test), and most
    # hypotheses are adversarially worse than the best
    ratio = np.where(d_sur > 0, d_adv * c1 / np.where(d_sur > 0, d_sur, 1.0), 0.0)
    assert 0.5 < ratio.max() <= 1.0 + 1e-12
    assert np.mean(d_adv > 0) > 0.5
    # the library's adversarial 0-1 loss and smooth loss agree with the brute force on a sample of hypotheses
    for h in np.random.default_rng(0).choice(len(W), 40, replace=False):
        lib_adv = sum(P[:, y] * adversarial_zero_one_loss(W[h], b[h], X, np.full(3, y), gamma, norm=norm, ties=ties)
                      for y in range(N))
        lib_sur = sum(P[:, y] * smooth_adversarial_margin_loss(W[h], b[h], X, np.full(3, y), tau, RHO, gamma, norm=norm)
                      for y in range(N))
        np.testing.assert_allclose(lib_adv, adv[h], atol=1e-12)
        np.testing.assert_allclose(lib_sur, sur[h], rtol=1e-12, atol=1e-12)
        res = adversarial_excess_risk_bound(W[h], b[h], X, tau, RHO, gamma, p_cond=P, norm=norm, ties=ties)
        assert res.adversarial_excess == pytest.approx(d_adv[h], abs=1e-12)
        assert res.bound == pytest.approx(min(1.0, d_sur[h] / c1), abs=1e-12)
        assert res.adversarial_excess <= res.bound + 1e-12


@pytest.mark.parametrize("tau", [0.0, 1.0, 2.0])
def test_radius_zero_is_the_non_adversarial_bound(tau):
    W, b, adv, sur = _brute(tau, 0.0, "inf", "argmax")
    s_x = np.einsum("hnd,md->hmn", W, X) + b[:, None, :]
    pred = np.argmax(s_x, -1)
    # adversarial 0-1 risk at radius 0 = ordinary 0-1 risk with argmax ties; smooth loss = plain margin loss
    np.testing.assert_allclose(adv, 1.0 - np.take_along_axis(P[None].repeat(len(W), 0), pred[..., None], -1)[..., 0])
    plain = sum(P[:, y] * comp_sum_margin_loss(s_x, np.full(s_x.shape[:2], y), tau, RHO) for y in range(N))
    np.testing.assert_allclose(sur, plain, rtol=1e-12, atol=1e-15)
    d_adv, d_sur = (adv - adv.min(0)).mean(1), (sur - sur.min(0)).mean(1)
    assert np.all(d_adv * _phi(1.0, tau) <= d_sur + 1e-12)
    # the library's loss at radius 0 (ties="argmax") is the ordinary 0-1 loss, ties included (integer scores)
    for h in range(0, len(W), 97):
        for y in range(N):
            lib = adversarial_zero_one_loss(W[h], b[h], np.round(X), np.full(3, y), 0.0, ties="argmax")
            np.testing.assert_array_equal(lib, np.argmax(np.round(X) @ W[h].T + b[h], 1) != y)
    h = 100
    r0 = adversarial_excess_risk_bound(W[h], b[h], X, tau, RHO, 0.0, p_cond=P)
    assert r0.surrogate_excess == pytest.approx(d_sur[h], abs=1e-12)
    # n = 2 tightness: a constant predicting the minority class robustly attains the bound exactly
    p2 = np.array([[0.7, 0.3]])
    r = adversarial_excess_risk_bound(np.zeros((2, 1)), np.array([0.0, 1.0]), np.zeros((1, 1)), tau, RHO, 0.0, p_cond=p2)
    assert r.adversarial_excess == pytest.approx(0.4) and r.bound == pytest.approx(0.4, rel=1e-12)


def test_plain_smooth_comp_sum_loss_admits_no_adversarial_bound():
    """l^tau + nu * penalty: adversarial regret stays near 1/2 while the surrogate regret -> 0 (near-ties)."""
    gamma, tau = 0.2, 1.0
    x = np.array([[1.0]])
    for eps, max_sur in [(1e-2, 0.05), (1e-4, 5e-4)]:
        p = np.array([[0.5 + eps, 0.5 - eps]])
        s = np.log(optimal_softmax(p, tau))[0]  # best scores at x: zero comp-sum regret
        gap = s[0] - s[1]
        W = np.array([[gap / gamma * 1.01], [0.0]])  # just enough slope for the ball to reach a flip
        b = s - W[:, 0] * x[0, 0]
        adv = sum(p[0, y] * adversarial_zero_one_loss(W, b, x, np.array([y]), gamma, ties="argmax")[0] for y in range(2))
        sur = sum(p[0, y] * smooth_adversarial_comp_sum_loss(W, b, x, np.array([y]), tau, gamma)[0] for y in range(2))
        best = -np.sum(p * np.log(p))  # C*_tau(p) at tau = 1, attained by constants (penalty 0)
        assert adv - (1.0 - p.max()) == pytest.approx(0.5 + eps)
        assert 0 < sur - best < max_sur
        # the rho-margin surrogate does see it: its regret is >= Phi^tau(1) * adversarial regret
        res = adversarial_excess_risk_bound(W, b, x, tau, RHO, gamma, p_cond=p)
        assert res.adversarial_excess <= res.bound and res.surrogate_excess >= np.log(2) * (0.5 + eps)


def test_smooth_margin_loss_bounds_the_sup_over_the_ball():
    rng = np.random.default_rng(5)
    n, d, gamma, tau = 4, 3, 0.25, 1.0
    W, b = rng.normal(size=(n, d)), rng.normal(size=n) * 0.3
    x = rng.normal(size=(30, d)) * 0.3
    y = rng.integers(0, n, 30)
    smooth = smooth_adversarial_margin_loss(W, b, x, y, tau, RHO, gamma, norm="inf")
    cube = gamma * rng.uniform(-1, 1, size=(4000, d))
    cube = np.concatenate([cube, gamma * np.array(list(itertools.product([-1.0, 1.0], repeat=d)))])
    for i in range(30):
        sup = comp_sum_margin_loss((x[i] + cube) @ W.T + b, np.full(len(cube), y[i]), tau, RHO).max()
        assert sup <= smooth[i] + 1e-12
    # the Lipschitz constant sqrt(n-1)/rho is attained: tau = 0 (Phi^0(u) = u), every ramp active, Delta_y' near -rho
    f = lambda dl: float(phi_tau(np.clip(1.0 + dl / RHO, 0.0, 1.0).sum(), 0.0))  # noqa: E731  (dl: Delta_y', y' != y)
    d1 = np.full(n - 1, -RHO + 1e-3)
    d2 = d1 + 1e-3
    ratio = abs(f(d2) - f(d1)) / np.linalg.norm(d2 - d1)
    assert ratio == pytest.approx(margin_comp_sum_lipschitz(n, RHO), rel=1e-9)


def test_margin_loss_and_best_risk_values():
    s = np.array([[2.0, 1.8, 0.0]])
    # label 0: ramps (0, 1 - 0.2/0.5 = 0.6, 0) -> Phi(0.6); label 2: two classes above -> Phi(2)
    for tau in (0.0, 1.0, 2.0):
        assert comp_sum_margin_loss(s, np.array([0]), tau, RHO)[0] == pytest.approx(_phi(0.6, tau))
        assert comp_sum_margin_loss(s, np.array([2]), tau, RHO)[0] == pytest.approx(_phi(2.0, tau))
        p = np.array([0.2, 0.5, 0.3])
        assert best_conditional_margin_risk(p, tau) == pytest.approx(0.3 * _phi(1, tau) + 0.2 * _phi(2, tau))


def test_adversarial_bound_validation():
    W = np.eye(3)[:, :2]
    x = np.zeros((1, 2))
    p = np.array([[0.5, 0.3, 0.2]])
    with pytest.raises(TheoryError, match="'nu'"):
        adversarial_excess_risk_bound(W, None, x, 1.0, RHO, 0.1, p_cond=p, nu=0.1)
    with pytest.raises(TheoryError, match="exactly one"):
        adversarial_excess_risk_bound(W, None, x, 1.0, RHO, 0.1)
    with pytest.raises(TheoryError, match="best_surrogate_risk"):
        adversarial_excess_risk_bound(W, None, x, 1.0, RHO, 0.1, labels=np.array([0]))
    with pytest.raises(TheoryError, match="'rho'"):
        adversarial_excess_risk_bound(W, None, x, 1.0, 0.0, 0.1, p_cond=p)
    with pytest.raises(TheoryError, match="'ties'"):
        adversarial_zero_one_loss(W, None, x, np.array([0]), 0.1, ties="first")
    with pytest.raises(TheoryError, match="'p_cond'"):
        adversarial_excess_risk_bound(W, None, x, 1.0, RHO, 0.1, p_cond=np.array([[0.5, 0.5]]))
