"""Best-in-class conditional risks, minimizability gaps and excess-risk bounds for comp-sum losses.

Conventions: p has shape (..., n) (conditional distributions p(.|x)); risks are MEANS over samples
(optionally weighted). Mao, Mohri, Zhong 2023 (arXiv:2304.07288): minimizability gap
M_l(H) = R*_l(H) - E_X[C*_l(H, X)] >= 0 (0 for H = all measurable functions), and the H-consistency bound
R_01(h) - R*_01(H) <= Gamma_tau(R_l(h) - R*_l(H) + M_l(H)) - M_01(H).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theorytools.errors import TheoryError

from ._bounds import gamma_transform
from ._cstar import _cstar
from ._losses import _loss_from_logp, comp_sum_loss, log_softmax, phi_tau
from ._tight import tight_error_transform, tight_gamma_estimate
from ._validate import (
    check_n,
    check_positive,
    check_prob,
    check_scores,
    check_tau,
    exprel,
    log1prel,
)


def best_conditional_risk(p, tau: float) -> np.ndarray:
    """C*_tau(p) = inf_h C_tau(h, x) over complete H (theory.md D.1 [DERIVED]).

    ((sum_y p_y^(1/(2-tau)))^(2-tau) - 1)/(1 - tau) for tau in [0, 2) minus {1}, the entropy
    -sum p log p at tau = 1, 1 - max p at tau = 2; minimiser softmax(h) proportional to p^(1/(2-tau)).
    """
    tau = check_tau(tau, "best_conditional_risk")
    p = check_prob(p, "best_conditional_risk")
    out = _cstar(p, tau)
    return out if np.ndim(out) else float(out)


def optimal_softmax(p, tau: float) -> np.ndarray:
    """Minimiser of the conditional risk over the simplex: s proportional to p^(1/(2-tau)) (argmax one-hot at 2)."""
    tau = check_tau(tau, "optimal_softmax")
    p = check_prob(p, "optimal_softmax")
    if tau == 2.0:
        s = np.zeros_like(p)
        np.put_along_axis(s, np.argmax(p, -1)[..., None], 1.0, -1)
        return s
    kappa = 1.0 / (2.0 - tau)
    with np.errstate(divide="ignore"):
        z = kappa * np.log(p)
    z = z - np.max(z, axis=-1, keepdims=True)
    s = np.exp(z)
    return s / s.sum(-1, keepdims=True)


def _risk_of_scores(h: np.ndarray, p: np.ndarray, tau: float) -> np.ndarray:
    losses = _loss_from_logp(log_softmax(h), tau)
    return np.sum(np.where(p > 0, p * losses, 0.0), axis=-1)


def _clip_search(z: np.ndarray, P: np.ndarray, tau: float, lam: float, grid: int) -> np.ndarray:
    """min over c of the risk (under P, rows) of h = clip(z + c, -lam, lam).

    The risk is smooth in c between the breakpoints c = +-lam - z_y, where a class enters or leaves a
    clip level; a narrow piece can hold the minimum (e.g. one tiny p_y far below the others), so every
    piece is searched: a grid of `grid` // 16 + 3 points per piece, then golden section around the best.
    """
    m, n = z.shape
    fin = np.isfinite(z)
    zmax = z.max(axis=1)
    zmin = np.where(fin, z, np.inf).min(axis=1)
    ends = np.concatenate([np.where(fin, -lam - z, np.nan), np.where(fin, lam - z, np.nan),
                           (-lam - zmax - 1.0)[:, None], (lam - zmin + 1.0)[:, None]], axis=1)
    ends = np.sort(ends, axis=1)  # nan last
    lo_e, hi_e = ends[:, :-1], ends[:, 1:]
    valid = np.isfinite(lo_e) & np.isfinite(hi_e)
    lo_e, hi_e = np.where(valid, lo_e, 0.0), np.where(valid, hi_e, 0.0)
    npc = lo_e.shape[1]

    def f(c):  # c: (m, npc) -> risk (m, npc)
        h = np.clip(z[:, None, :] + c[:, :, None], -lam, lam)
        return _risk_of_scores(h, P[:, None, :], tau)

    k = max(grid // 16, 2) + 3
    u = np.linspace(0.0, 1.0, k)
    vals = np.stack([f(lo_e + ui * (hi_e - lo_e)) for ui in u], axis=2)  # (m, npc, k)
    i = np.argmin(vals, axis=2)
    a = lo_e + u[np.maximum(i - 1, 0)] * (hi_e - lo_e)
    b = lo_e + u[np.minimum(i + 1, k - 1)] * (hi_e - lo_e)
    g = (np.sqrt(5.0) - 1.0) / 2.0
    x1, x2 = b - g * (b - a), a + g * (b - a)
    f1, f2 = f(x1), f(x2)
    for _ in range(64):  # bracket shrinks by 0.618^64 ~ 4e-14
        left = f1 <= f2  # minimum bracketed by [a, x2] (left) or [x1, b]
        a, b = np.where(left, a, x1), np.where(left, x2, b)
        x1n = np.where(left, b - g * (b - a), x2)
        x2n = np.where(left, x1, a + g * (b - a))
        fx = f(np.where(left, x1n, x2n))
        f1, f2 = np.where(left, fx, f2), np.where(left, f1, fx)
        x1, x2 = x1n, x2n
    best = np.minimum(np.minimum(f1, f2), vals.min(axis=2))
    return np.where(valid, best, np.inf).min(axis=1)


def best_conditional_risk_bounded(p, tau: float, lam: float, *, grid: int = 257) -> np.ndarray:
    """C*_tau(H_lam, x) for score sets {h(x, .)} = [-lam, lam]^n (every x).

    The problem is convex in s = softmax(h) over {s : max s <= e^(2 lam) min s}; its KKT points have
    the one-parameter form h_y = clip(kappa log p_y + c, -lam, lam) (ours, by the water-filling KKT
    conditions), so we search c piece by piece between the clip breakpoints (grid, then golden section;
    a single global grid missed narrow pieces, fixed in issue 24). tau = 2: the best vertex
    (top-k classes at lam, others at -lam). Deterministic p: Phi^tau((n-1) e^(-2 lam)).
    """
    tau = check_tau(tau, "best_conditional_risk_bounded")
    lam = check_positive(lam, "lam", "best_conditional_risk_bounded")
    p = check_prob(p, "best_conditional_risk_bounded")
    batch = p.shape[:-1]
    P = p.reshape(-1, p.shape[-1])
    n = P.shape[1]
    if tau == 2.0:
        r = np.exp(2.0 * lam)
        cum = np.cumsum(-np.sort(-P, axis=1), axis=1)
        k = np.arange(1, n + 1)
        vals = 1.0 - (1.0 + (r - 1.0) * cum) / (n + (r - 1.0) * k)
        out = vals.min(axis=1)
        return out.reshape(batch) if batch else float(out[0])
    kappa = 1.0 / (2.0 - tau)
    with np.errstate(divide="ignore"):
        z = kappa * np.log(P)  # -inf where p = 0
    out = _clip_search(z, P, tau, lam, grid)
    return out.reshape(batch) if batch else float(out[0])


def deterministic_bounded_cstar(tau: float, n: int, lam: float) -> float:
    """C*_tau(H_lam, x) for a deterministic label: Phi^tau((n - 1) e^(-2 lam)) (theory.md D.1)."""
    tau = check_tau(tau, "deterministic_bounded_cstar")
    n = check_n(n, "deterministic_bounded_cstar")
    lam = check_positive(lam, "lam", "deterministic_bounded_cstar")
    return float(phi_tau((n - 1) * np.exp(-2.0 * lam), tau))


def _weighted_mean(v: np.ndarray, weights) -> float:
    if weights is None:
        return float(np.mean(v))
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != v.shape or np.any(w < 0) or w.sum() <= 0:
        raise TheoryError(
            f"The 'weights' parameter must be a non-negative array of shape {v.shape} with a positive sum. "
            f"Got shape {w.shape} instead."
        )
    return float(np.sum(w * v) / w.sum())


def minimizability_gap(best_risk: float, p_cond, tau: float, *, lam: float | None = None, weights=None) -> float:
    """M_tau(H) = R*_tau(H) - E_X[C*_tau(H, X)].

    best_risk: R*_tau(H), the best-in-class surrogate risk (a mean over the same samples), e.g. obtained
    by training over H. p_cond: (m, n) conditional distributions at the samples. lam=None: complete H
    (C* closed form); lam > 0: bounded scores [-lam, lam]^n. Raises if the gap is negative (the supplied
    R* lies below the pointwise infimum, so it cannot be a risk of H).
    """
    tau = check_tau(tau, "minimizability_gap")
    p = check_prob(p_cond, "minimizability_gap", "p_cond")
    cs = _cstar(p, tau) if lam is None else best_conditional_risk_bounded(p, tau, lam)
    gap = float(best_risk) - _weighted_mean(np.atleast_1d(cs), weights)
    if gap < -1e-9 * max(1.0, abs(float(best_risk))):
        raise TheoryError(
            f"The 'best_risk' parameter of minimizability_gap ({best_risk}) is below E[C*] "
            f"({best_risk - gap}); it cannot be the best-in-class risk of H."
        )
    return max(gap, 0.0)


def zero_one_minimizability_gap(best_risk: float, p_cond, *, weights=None) -> float:
    """M_01(H) = R*_01(H) - E_X[1 - max_y p(y|X)] (the same for complete and bounded-score H)."""
    p = check_prob(p_cond, "zero_one_minimizability_gap", "p_cond")
    gap = float(best_risk) - _weighted_mean(np.atleast_1d(1.0 - p.max(-1)), weights)
    if gap < -1e-9:
        raise TheoryError(
            f"The 'best_risk' parameter of zero_one_minimizability_gap ({best_risk}) is below the Bayes "
            "0-1 risk; it cannot be the best-in-class risk of H."
        )
    return max(gap, 0.0)


@dataclass(frozen=True)
class ExcessRiskBound:
    """H-consistency bound evaluated for one model h on one data set (risks are sample means)."""

    tau: float
    """Comp-sum parameter."""
    n: int
    """Number of classes."""
    surrogate_risk: float
    """R_tau(h)."""
    best_surrogate_risk: float
    """R*_tau(H) used."""
    surrogate_gap: float
    """M_tau(H) used."""
    zero_one_risk: float
    """R_01(h) (expected over p_cond if given, else empirical on the labels)."""
    zero_one_gap: float
    """M_01(H) used."""
    surrogate_excess: float
    """R_tau(h) - R*_tau(H) + M_tau(H), the argument of Gamma_tau."""
    bound: float
    """Gamma_tau(surrogate_excess) - M_01(H): upper bound on R_01(h) - R*_01(H)."""
    zero_one_excess: float | None
    """R_01(h) - R*_01(H) when known (p_cond given, H = all measurable functions), else None."""
    looseness: float | None = None
    """With tight=True and 1 < tau < 2: tight_error_transform(t, tau, n).looseness at t = min(1, bound +
    M_01), i.e. how far the paper's n-dependent T_tau is below the (numerical) tight T* there; else None."""
    tight_bound_estimate: float | None = None
    """With tight=True and 1 < tau < 2: tight_gamma_estimate(surrogate_excess) - M_01, the bound the tight
    transform would give (<= bound; numerical, NOT proved: see tight_error_transform; the step from
    conditional to expected regret also needs T* convex, as measured at tau = 1.5); else None."""
    transform_proven: bool | None = None
    """Set by bounded_excess_risk_bound only: True when the bounded-score transform used is proved to
    lower-bound the conditional regret (proven=True, or n = 2, or tau <= 1; _bounded.py module docstring),
    False for proven=False with n >= 3 and tau > 1 (measured, not proved). The step from conditional to
    expected regrets also uses convexity of the transform, checked on grids, not proved. None from
    excess_risk_bound."""

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def excess_risk_bound(
    scores,
    tau: float,
    *,
    p_cond=None,
    labels=None,
    best_surrogate_risk: float | None = None,
    surrogate_gap: float = 0.0,
    zero_one_gap: float = 0.0,
    tight: bool = False,
) -> ExcessRiskBound:
    """Evaluate R_01(h) - R*_01(H) <= Gamma_tau(R_tau(h) - R*_tau(H) + M_tau(H)) - M_01(H).

    scores: (m, n) model scores on m samples. Give either p_cond (m, n) true conditional distributions
    (risks are then exact expectations over Y; default R*_tau = E[C*_tau(p)] and zero gaps, i.e. H = all
    measurable functions) or integer labels (empirical risks; best_surrogate_risk required).
    For 1 < tau < 2 the paper's T_tau (hence `bound`) is loose for n >= 3 (see error_transform); tight=True
    also reports `looseness` and `tight_bound_estimate` (a few 1-D searches, O(n) each).
    """
    tau = check_tau(tau, "excess_risk_bound")
    h = check_scores(scores, "excess_risk_bound")
    if h.ndim != 2:
        raise TheoryError(f"The 'scores' parameter of excess_risk_bound must be 2-D (m, n). Got {h.shape} instead.")
    m, n = h.shape
    check_positive(surrogate_gap, "surrogate_gap", "excess_risk_bound", allow_zero=True)
    check_positive(zero_one_gap, "zero_one_gap", "excess_risk_bound", allow_zero=True)
    pred = np.argmax(h, axis=1)
    if (p_cond is None) == (labels is None):
        raise TheoryError("excess_risk_bound needs exactly one of 'p_cond' and 'labels'. Got both or neither.")
    if p_cond is not None:
        p = check_prob(p_cond, "excess_risk_bound", "p_cond")
        if p.shape != h.shape:
            raise TheoryError(f"The 'p_cond' parameter of excess_risk_bound must have shape {h.shape}. Got {p.shape}.")
        r_sur = float(np.mean(_risk_of_scores(h, p, tau)))
        r01 = float(np.mean(1.0 - p[np.arange(m), pred]))
        bayes01 = float(np.mean(1.0 - p.max(1)))
        if best_surrogate_risk is None:
            best_surrogate_risk = float(np.mean(_cstar(p, tau)))
        exact01 = r01 - bayes01 if (surrogate_gap == 0.0 and zero_one_gap == 0.0) else None
    else:
        y = np.asarray(labels)
        r_sur = float(np.mean(comp_sum_loss(h, y, tau)))
        r01 = float(np.mean(pred != y))
        if best_surrogate_risk is None:
            raise TheoryError("excess_risk_bound with 'labels' needs 'best_surrogate_risk' (R*_tau(H)).")
        exact01 = None
    excess = r_sur - float(best_surrogate_risk) + surrogate_gap
    g = float(gamma_transform(max(excess, 0.0), tau, n))
    bound = g - zero_one_gap
    looseness = tight_bound = None
    if tight and 1.0 < tau < 2.0:
        looseness = tight_error_transform(max(g, 1e-6), tau, n).looseness
        tight_bound = tight_gamma_estimate(excess, tau, n) - zero_one_gap
    return ExcessRiskBound(
        tau=tau, n=n, surrogate_risk=r_sur, best_surrogate_risk=float(best_surrogate_risk),
        surrogate_gap=float(surrogate_gap), zero_one_risk=r01, zero_one_gap=float(zero_one_gap),
        surrogate_excess=excess, bound=bound, zero_one_excess=exact01, looseness=looseness,
        tight_bound_estimate=tight_bound,
    )
