"""Tests for theorytools.hconsistency (Mao, Mohri, Zhong 2023 comp-sum H-consistency bounds).

Reference values T_tau(0.5): theory.md D.4 [RUN]; tau = 0 also equals 1 - sqrt(0.75) in closed form and
tau = 2 equals t/n exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from scipy.optimize import minimize, minimize_scalar

from theorytools.errors import TheoryError
from theorytools.hconsistency import (
    PSI_TRANSFORMS,
    best_conditional_risk,
    best_conditional_risk_bounded,
    certify_bound_interval,
    certify_bound_z3,
    check_bound,
    comp_sum_loss,
    conditional_risk,
    deterministic_bounded_cstar,
    error_transform,
    error_transform_series,
    error_transform_symbolic,
    excess_risk_bound,
    gamma_symbolic,
    gamma_transform,
    min_conditional_regret,
    min_conditional_regret_numeric,
    minimizability_gap,
    phi_tau,
    psi_transform,
    small_t_coefficient,
    tight_error_transform,
    tight_gamma_estimate,
    zero_one_minimizability_gap,
)
from theorytools.hconsistency._symbolic import n_sym, s_sym, t_sym

TAUS = [0.0, 0.5, 1.0, 1.5, 1.9, 2.0]

REFERENCE = [  # (tau, n, T_tau(0.5))
    (0.0, 2, 0.13397460), (0.0, 10, 0.13397460), (0.5, 2, 0.12562776), (0.5, 10, 0.12562776),
    (1.0, 2, 0.13081204), (1.0, 10, 0.13081204), (1.5, 2, 0.16692527), (1.5, 10, 0.07465125),
    (2.0, 2, 0.25), (2.0, 10, 0.05),
]


@pytest.mark.parametrize("tau,n,ref", REFERENCE)
def test_reference_values(tau, n, ref):
    assert error_transform(0.5, tau, n) == pytest.approx(ref, abs=1e-7)


def test_closed_form_special_cases():
    t = np.linspace(0, 1, 101)
    assert np.allclose(error_transform(t, 0.0), 1 - np.sqrt(1 - t**2), atol=1e-15)
    assert np.allclose(error_transform(t, 2.0, 7), t / 7, atol=0)
    with np.errstate(all="ignore"):
        ent = (1 + t) / 2 * np.log1p(t) + np.where(t < 1, (1 - t) / 2 * np.log1p(-np.minimum(t, 1 - 1e-300)), 0)
    assert np.allclose(error_transform(t, 1.0), ent, atol=1e-15)
    assert error_transform(1.0, 1.0) == pytest.approx(np.log(2), abs=1e-15)
    assert error_transform(1.0, 0.0) == pytest.approx(1.0, abs=1e-15)
    # tau = 1.5: M_2(t) = sqrt(1 + t^2)
    assert np.allclose(error_transform(t, 1.5, 5), 2 * (np.sqrt(1 + t**2) - 1) / np.sqrt(5), atol=1e-14)


@pytest.mark.parametrize("tau", TAUS)
@pytest.mark.parametrize("n", [2, 10, 100])
def test_gamma_inverts_T_and_T_convex_increasing(tau, n):
    t = np.concatenate([[0.0, 1e-9, 1e-6, 1e-4], np.linspace(0.001, 1.0, 60)])
    T = error_transform(t, tau, n)
    back = gamma_transform(T, tau, n)
    assert np.allclose(back[1:], t[1:], rtol=1e-9, atol=1e-15)
    assert gamma_transform(10.0, tau, n) == 1.0 and gamma_transform(-1.0, tau, n) == 0.0
    grid = np.linspace(0, 1, 401)
    Tg = error_transform(grid, tau, n)
    assert Tg[0] == 0.0 and np.all(np.diff(Tg) > 0)
    assert np.all(np.diff(Tg, 2) >= -1e-15)  # convex


def test_continuity_at_one_and_two():
    for n in (2, 10):
        for eps in (1e-3, 1e-6, 1e-10, 1e-14):
            for tt in (1e-5, 0.3, 0.5, 0.99, 1.0):
                a = error_transform(tt, 1.0, n)
                assert abs(error_transform(tt, 1 - eps, n) - a) < 5 * eps + 1e-15
                assert abs(error_transform(tt, 1 + eps, n) - a) < 5 * eps * (1 + np.log(n)) + 1e-15
                b = error_transform(tt, 2.0, n)
                assert abs(error_transform(tt, 2 - eps, n) - b) < 10 * eps * (1 + np.log(n)) + 1e-15
    # theory.md D.4: T_{1 -+ 1e-5}(0.5) = 0.13081173 / 0.13081024 ... n = 2
    assert error_transform(0.5, 1 - 1e-5) == pytest.approx(0.1308117256, abs=2e-9)


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0, 1.5, 1.75])
def test_small_t_and_sympy(tau):
    n = 10
    c = small_t_coefficient(tau, n)
    for tt in (1e-8, 1e-5, 1e-3):
        assert error_transform(tt, tau, n) / tt**2 == pytest.approx(c, rel=max(1e-9, 50 * (tt * 100) ** 2))
    ser = error_transform_series(tau, 4, n)
    assert float(ser.coeff(t_sym, 2)) == pytest.approx(c, rel=1e-12)
    expr = sp.lambdify(t_sym, error_transform_symbolic(tau, n), "mpmath")
    for tt in (0.1, 0.5, 0.9):
        assert float(expr(tt)) == pytest.approx(error_transform(tt, tau, n), rel=1e-12)


def test_gamma_symbolic_closed_forms():
    s = np.linspace(0.001, 0.5, 7)
    g0 = sp.lambdify(s_sym, gamma_symbolic(0.0))
    assert np.allclose(g0(s), np.sqrt(2 * s - s**2)) and np.allclose(g0(s), gamma_transform(s, 0.0), rtol=1e-12)
    g15 = sp.lambdify(s_sym, gamma_symbolic(1.5, 10))
    sm = s[s < error_transform(1.0, 1.5, 10)]
    assert np.allclose(g15(sm), gamma_transform(sm, 1.5, 10), rtol=1e-12)
    assert sp.simplify(gamma_symbolic(2.0) - n_sym * s_sym) == 0
    with pytest.raises(TheoryError):
        gamma_symbolic(1.0)


@pytest.mark.parametrize("tau", TAUS)
def test_loss_identities_and_gradient(tau):
    rng = np.random.default_rng(0)
    h = rng.normal(0, 2, (50, 6))
    y = rng.integers(0, 6, 50)
    p = np.exp(h - h.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    py = p[np.arange(50), y]
    loss, grad = comp_sum_loss(h, y, tau, return_grad=True)
    if tau == 0.0:
        ref = 1 / py - 1
    elif tau == 1.0:
        ref = -np.log(py)
    elif tau == 2.0:
        ref = 1 - py
    else:
        ref = (py ** (tau - 1) - 1) / (1 - tau)
    assert np.allclose(loss, ref, rtol=1e-12, atol=1e-14) and np.all(loss >= 0)
    # Phi^tau(sum_{y' != y} exp(h_y' - h_y))
    u = np.exp(h - h[np.arange(50), y][:, None]).sum(1) - 1
    assert np.allclose(phi_tau(u, tau), loss, rtol=1e-12)
    eps = 1e-6
    fd = np.zeros_like(h)
    for k in range(6):
        e = np.zeros_like(h)
        e[:, k] = eps
        fd[:, k] = (comp_sum_loss(h + e, y, tau) - comp_sum_loss(h - e, y, tau)) / (2 * eps)
    assert np.allclose(grad, fd, rtol=1e-6, atol=1e-7)


def test_loss_stability():
    h = np.array([[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]])
    y = np.array([0, 1])
    assert np.allclose(comp_sum_loss(h, y, 1.0), [0.0, np.log(3)])
    assert np.allclose(comp_sum_loss(h, y, 1.0 + 1e-12), comp_sum_loss(h, y, 1.0), rtol=1e-10)
    assert np.isinf(comp_sum_loss(np.array([[0.0, 1000.0]]), np.array([0]), 0.0))[0]
    assert np.isfinite(comp_sum_loss(np.array([[0.0, 1000.0]]), np.array([0]), 1.0))[0]


@pytest.mark.parametrize("tau", [0.0, 0.3, 1.0, 1.2, 1.5, 1.8])
def test_best_conditional_risk_vs_numerical_minimisation(tau):
    rng = np.random.default_rng(1)
    for _ in range(4):
        n = int(rng.integers(2, 6))
        p = rng.dirichlet(np.ones(n) * 2)

        def f(z):
            h = np.concatenate([[0.0], z])
            return float(conditional_risk(h, p, tau))

        z0 = np.zeros(n - 1)
        res = minimize(f, z0, method="BFGS", options={"gtol": 1e-12, "maxiter": 10_000})
        res = minimize(f, res.x, method="Nelder-Mead", options={"xatol": 1e-12, "fatol": 1e-15, "maxiter": 20_000})
        assert abs(res.fun - best_conditional_risk(p, tau)) < 1e-8
        assert res.fun >= best_conditional_risk(p, tau) - 1e-14


def test_best_conditional_risk_special_cases():
    p = np.array([0.5, 0.3, 0.2])
    assert best_conditional_risk(p, 0.0) == pytest.approx(np.sum(np.sqrt(p)) ** 2 - 1, abs=1e-15)
    assert best_conditional_risk(p, 1.0) == pytest.approx(-np.sum(p * np.log(p)), abs=1e-15)
    assert best_conditional_risk(p, 2.0) == pytest.approx(0.5, abs=0)
    assert best_conditional_risk(p, 1.0 + 1e-9) == pytest.approx(best_conditional_risk(p, 1.0), abs=1e-8)
    assert best_conditional_risk(p, 2.0 - 1e-9) == pytest.approx(0.5, abs=1e-8)
    # tau = 2: the infimum is approached by scores growing on the argmax
    assert conditional_risk([40.0, 0.0, 0.0], p, 2.0) == pytest.approx(0.5, abs=1e-12)


@pytest.mark.parametrize("tau", TAUS)
@pytest.mark.parametrize("n", [2, 3, 10])
def test_bruteforce_regret_dominates_T(tau, n):
    res = check_bound(n, tau, n_samples=300, seed=n)
    assert res.n_samples == 300 and res.violations == 0
    assert res.min_slack >= -1e-12 and res.min_slack_exact >= -1e-12
    if n == 2:
        assert res.max_rel_gap_exact < 1e-8  # tight for n = 2
    else:
        assert res.max_rel_gap_exact > 0.1  # a strict lower bound for n > 2


@pytest.mark.parametrize("tau", [0.0, 1.0, 1.5, 2.0])
def test_exact_min_regret_vs_scipy(tau):
    rng = np.random.default_rng(2)
    for _ in range(4):
        n = int(rng.integers(2, 6))
        p = rng.dirichlet(np.ones(n))
        k = int(np.argsort(p)[0])
        exact = min_conditional_regret(p, k, tau)
        assert exact == pytest.approx(min_conditional_regret_numeric(p, k, tau), abs=1e-8)
        assert exact >= error_transform(p.max() - p[k], tau, n) - 1e-14
    # n = 2 at p = ((1+t)/2, (1-t)/2): the minimal regret IS T_tau(t) (theory.md D.4)
    for t in (0.1, 0.5, 0.9):
        p2 = np.array([(1 + t) / 2, (1 - t) / 2])
        assert min_conditional_regret(p2, 1, tau) == pytest.approx(error_transform(t, tau), abs=1e-12)


def test_certified_z3_and_interval():
    for n in (2, 3):
        r = certify_bound_z3(n, 2.0, timeout_ms=20_000)
        assert r.certified and r.status.startswith("proved")
    assert certify_bound_z3(2, 0.0, timeout_ms=20_000, method="direct").certified
    r = certify_bound_interval(3, 1.5, grid=6)
    assert r.certified and r.violated == 0 and r.proved > 0 and r.tight == 0
    r = certify_bound_interval(2, 1.0, grid=8)  # attained for n = 2: every enclosure overlaps
    assert r.violated == 0 and r.tight > 0 and r.proved == 0


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0, 1.5, 2.0])
def test_bounded_cstar(tau):
    n, lam = 4, 0.7
    onehot = np.eye(n)[[0, 2]]
    det = deterministic_bounded_cstar(tau, n, lam)
    assert np.allclose(best_conditional_risk_bounded(onehot, tau, lam), det, atol=1e-12)
    # matches the closed form Phi^tau((n-1) e^{-2 lam}) via the loss at h = (lam, -lam, ...)
    h = np.array([lam, -lam, -lam, -lam])
    assert det == pytest.approx(float(conditional_risk(h, np.eye(n)[0], tau)), abs=1e-14)
    rng = np.random.default_rng(3)
    for _ in range(3):
        p = rng.dirichlet(np.ones(n))
        val = best_conditional_risk_bounded(p, tau, lam)
        best = np.inf
        for z0 in [np.zeros(n), rng.uniform(-lam, lam, n), lam * np.sign(p - p.mean())]:
            res = minimize(lambda hh: float(conditional_risk(hh, p, tau)), z0, method="L-BFGS-B",
                           bounds=[(-lam, lam)] * n, options={"ftol": 1e-15, "gtol": 1e-12})
            best = min(best, res.fun)
        assert val <= best + 1e-9 and val >= best - 1e-7
        assert val >= best_conditional_risk(p, tau) - 1e-12
    # large lam recovers the complete hypothesis set
    p = np.array([0.4, 0.3, 0.2, 0.1])
    if tau < 2:
        assert best_conditional_risk_bounded(p, tau, 30.0) == pytest.approx(best_conditional_risk(p, tau), abs=1e-9)


def test_gaps():
    n, lam = 5, 1.0
    dets = [deterministic_bounded_cstar(tau, n, lam) for tau in TAUS]
    assert np.all(np.diff(dets) <= 1e-15)  # deterministic bounded gap ordering (decreasing in tau)
    rng = np.random.default_rng(4)
    p = rng.dirichlet(np.ones(n), size=20)
    for tau in TAUS:
        rstar = float(np.mean(best_conditional_risk(p, tau)))
        assert minimizability_gap(rstar, p, tau) == 0.0  # H = all measurable functions
        assert minimizability_gap(rstar + 0.1, p, tau) == pytest.approx(0.1)
        with pytest.raises(TheoryError):
            minimizability_gap(rstar - 0.1, p, tau)
        rb = float(np.mean(best_conditional_risk_bounded(p, tau, lam)))
        assert minimizability_gap(rb, p, tau, lam=lam) == 0.0
    assert zero_one_minimizability_gap(float(np.mean(1 - p.max(1))) + 0.05, p) == pytest.approx(0.05)


@pytest.mark.parametrize("tau", TAUS)
def test_excess_risk_bound_holds(tau):
    rng = np.random.default_rng(5)
    for n in (2, 3, 10):
        p = rng.dirichlet(np.ones(n), size=200)
        h = rng.normal(0, 1, (200, n)) + 2 * np.log(p)
        r = excess_risk_bound(h, tau, p_cond=p)
        assert r.zero_one_excess is not None
        assert 0 <= r.zero_one_excess <= r.bound + 1e-12
        y = np.array([rng.choice(n, p=pi) for pi in p])
        r2 = excess_risk_bound(h, tau, labels=y, best_surrogate_risk=0.0)
        assert r2.zero_one_excess is None and r2.bound >= 0


def test_psi_table_textbook_entries():
    def psi_numeric(phi, t):  # H^-(eta) - H(eta), eta = (1 + t)/2, binary margin losses
        eta = (1 + t) / 2
        c = lambda a: eta * phi(a) + (1 - eta) * phi(-a)  # noqa: E731
        H = minimize_scalar(c, bounds=(-30, 30), method="bounded", options={"xatol": 1e-10}).fun
        Hm = minimize_scalar(c, bounds=(-30, 0), method="bounded", options={"xatol": 1e-10}).fun
        return min(Hm, c(0.0)) - H

    losses = {"hinge": lambda a: max(0.0, 1 - a), "exponential": lambda a: np.exp(-a),
              "logistic (log2)": lambda a: np.log2(1 + np.exp(-a)), "quadratic": lambda a: (1 - a) ** 2,
              "squared hinge": lambda a: max(0.0, 1 - a) ** 2}
    for name, phi in losses.items():
        entry = psi_transform(name)
        assert entry.provenance == "textbook" and entry.source
        for t in (0.2, 0.6, 0.9):
            assert psi_numeric(phi, t) == pytest.approx(float(entry.T(t)), abs=1e-6)
    # comp-sum tau = 0 improves the earlier sum-exponential transform t^2/2
    t = np.linspace(0, 1, 50)
    assert np.all(error_transform(t, 0.0) >= psi_transform("sum-exponential", "multi-class", "symmetric complete").T(t) - 1e-15)
    assert all(e.source for e in PSI_TRANSFORMS)


def test_validation_messages():
    with pytest.raises(TheoryError, match="'tau' parameter of error_transform"):
        error_transform(0.5, 2.5)
    with pytest.raises(TheoryError, match="'n' parameter"):
        error_transform(0.5, 1.5, 1)
    with pytest.raises(TheoryError, match="'t' parameter"):
        error_transform(1.5, 1.0)
    with pytest.raises(TheoryError, match="'p' parameter"):
        best_conditional_risk([0.5, 0.6], 1.0)
    with pytest.raises(TheoryError, match="'labels'"):
        comp_sum_loss(np.zeros((2, 3)), np.array([0, 3]), 1.0)
    with pytest.raises(TheoryError):
        certify_bound_z3(3, 1.0)
    assert isinstance(TheoryError("x"), ValueError)


# ---------------------------------------------------------------- tight transform / looseness (issue 24)


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0])
def test_tight_transform_equals_paper_for_tau_le_one(tau):
    for n in (3, 10):
        for t in (0.05, 0.3, 0.7, 1.0):
            r = tight_error_transform(t, tau, n)
            assert r.value == pytest.approx(r.paper, rel=1e-9) and r.looseness == pytest.approx(1.0, rel=1e-9)
            p = np.array(r.argmin_p)  # the attaining distribution reproduces the value exactly
            assert p.sum() == pytest.approx(1.0, abs=1e-14) and p.max() - p[r.j + 1] == pytest.approx(t, abs=1e-14)
            assert min_conditional_regret(p, r.j + 1, tau) == pytest.approx(r.value, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("n", [3, 4, 10])
def test_tight_transform_tau_1_5_looseness_is_n_over_2(n):
    for t in (0.05, 0.3, 0.7, 0.95):
        r = tight_error_transform(t, 1.5, n)
        assert r.value >= r.paper  # the paper's T is a valid lower bound
        assert r.value == pytest.approx(error_transform(t, 1.5, 2), rel=1e-9)  # the two-class form
        assert r.looseness == pytest.approx((n / 2) ** 0.5, rel=1e-9)
    assert tight_error_transform(0.5, 1.5, 10).looseness == pytest.approx(2.2360679775, rel=1e-9)


def test_tight_transform_tau_2_and_near_2():
    n = 10
    for t in (0.05, 0.1):  # t <= 1/(n-1): t/n attained by (a, ..., a, b)
        r = tight_error_transform(t, 2.0, n)
        assert r.value == pytest.approx(t / n, rel=1e-9) and r.j == n - 2
    r = tight_error_transform(0.7, 2.0, n)  # larger t: the paper's t/n is loose (0.35 vs 0.07)
    assert r.value == pytest.approx(0.35, rel=1e-9) and r.looseness == pytest.approx(5.0, rel=1e-9)
    # tau = 1.95, n = 3, t = 0.3: a middle level c ~ 0.96 a beats the two-class p; factor 1.056
    r = tight_error_transform(0.3, 1.95, 3)
    assert r.j == 1 and r.value < error_transform(0.3, 1.95, 2) and 1.0 < r.looseness < 1.1
    p = np.array(r.argmin_p)
    assert min_conditional_regret(p, 2, 1.95) == pytest.approx(r.value, rel=1e-9)


@pytest.mark.parametrize("tau", [1.5, 1.8, 1.95])
def test_tight_transform_not_beaten_by_search_over_simplex(tau):
    """Falsification of the search family: no sampled distribution (random, with levels at 0 and at the
    max, and L-BFGS-B polishing) has a smaller exact minimal regret at the same 0-1 regret t."""
    rng = np.random.default_rng(7)
    for n, t in ((4, 0.3), (5, 0.05), (5, 0.7)):
        val = tight_error_transform(t, tau, n).value
        N, cap = 40_000, (1 - t) / t
        U = rng.uniform(0, 1, (N, n - 2)) ** rng.choice([0.05, 0.3, 1, 3], (N, 1))
        U = np.where(rng.uniform(size=U.shape) < 0.3, 0.0, U)
        U = np.where(rng.uniform(size=U.shape) < 0.3, 1.0, U)
        U = U[U.sum(1) <= cap]
        a = (1 + t) / (2 + U.sum(1))
        P = np.concatenate([a[:, None], (a - t)[:, None], a[:, None] * U], axis=1)
        reg = min_conditional_regret(P, np.ones(len(P), dtype=int), tau)
        assert reg.min() >= val - 1e-12

        def f(u):
            u = np.clip(u, 0, 1)
            s = u.sum()
            if s > cap:
                u = u * cap / s
            aa = (1 + t) / (2 + u.sum())
            return float(min_conditional_regret(np.concatenate([[aa, aa - t], aa * u]), 1, tau))

        for _ in range(4):
            res = minimize(f, rng.uniform(0, min(1, cap / (n - 2)), n - 2), method="Nelder-Mead",
                           options={"xatol": 1e-10, "fatol": 1e-15, "maxiter": 4000})
            assert res.fun >= val - 1e-12


def test_excess_risk_bound_reports_looseness():
    rng = np.random.default_rng(5)
    n = 10
    p = rng.dirichlet(np.ones(n), size=200)
    h = rng.normal(0, 1, (200, n)) + 2 * np.log(p)
    r = excess_risk_bound(h, 1.5, p_cond=p, tight=True)
    assert r.looseness == pytest.approx(np.sqrt(5), rel=1e-9)
    assert r.zero_one_excess <= r.tight_bound_estimate <= r.bound
    assert r.tight_bound_estimate == pytest.approx(gamma_transform(r.surrogate_excess, 1.5, 2), rel=1e-8)
    assert excess_risk_bound(h, 1.0, p_cond=p, tight=True).looseness is None
    assert excess_risk_bound(h, 1.5, p_cond=p).looseness is None
    assert tight_gamma_estimate(0.0, 1.5, 4) == 0.0 and tight_gamma_estimate(10.0, 1.5, 4) == 1.0
    with pytest.raises(TheoryError, match="'t' parameter of tight_error_transform"):
        tight_error_transform(0.0, 1.5, 3)


@pytest.mark.parametrize("n", [2, 3, 4, 10])
def test_z3_tau0_lemma_chain(n):
    r = certify_bound_z3(n, 0.0, timeout_ms=10_000)
    assert r.certified and r.method == "z3-lemmas" and r.status.startswith("proved")
    assert r.details["lemmas"] == {k: "unsat" for k in ("L1", "L2", "L3", "L4")} and r.details["composition"] == "unsat"


def test_z3_tau0_lemmas_are_not_vacuous():
    """Each lemma is falsifiable without a key hypothesis (so 'unsat' is not an artefact of the encoding)."""
    import z3

    from theorytools.hconsistency._certify import _tau0_lemmas

    lem = _tau0_lemmas(z3)
    xs = z3.Reals("a b c d e f g")
    for name, drop in (("L1", 3), ("L3", 4), ("L4", 2)):
        fn, k = lem[name]
        hyps, concl = fn(*xs[:k])
        sol = z3.SolverFor("QF_NRA")
        sol.set("timeout", 10_000)
        sol.add(*[h for i, h in enumerate(hyps) if i != drop], z3.Not(concl))
        assert sol.check() == z3.sat, name  # s0 <= s1 / g = sqrt(2(p0+p1)) / p0 + p1 <= 1 are needed
    # the claim is tight at n = 2 (1 - sqrt(1 - t^2) attained): strengthening it by 1e-3 is not provable
    p = np.array([0.8, 0.2])
    assert min_conditional_regret(p, 1, 0.0) == pytest.approx(1 - np.sqrt(1 - 0.6**2), abs=1e-12)
    with pytest.raises(TheoryError):
        certify_bound_z3(3, 2.0, method="lemmas")
