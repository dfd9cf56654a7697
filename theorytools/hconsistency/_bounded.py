"""Comp-sum H-consistency with bounded scores: H_lam = {h : h(x, .) in [-lam, lam]^n for every x}.

Derivation (ours; the paper text was not available to us, see docs/hconsistency.md):

* softmax([-lam, lam]^n) = R_lam = {s in the simplex : max s <= r min s}, r = e^(2 lam) (take h = log s + c).
  The conditional risk sum_y p_y psi(s_y), psi(s) = (s^(tau-1) - 1)/(1 - tau), is convex in s
  (psi'' = (2 - tau) s^(tau-3) >= 0), and R_lam is a polytope, so both the best risk and the best risk
  among scores predicting class k are convex problems.
* Their minimisers have the form h_y = clip(kappa log p~_y + c, -lam, lam), with p~ = p for the best risk
  and p~ = p pooled at k (see min_conditional_regret) for prediction k; we search c in 1-D
  (bounded_min_conditional_regret). The tests check it against a grid over all score vectors (n = 3).
* Two-class distribution p = (a, b, 0, ..., 0), a = (1 + t)/2, b = (1 - t)/2, beta = (n - 2)/r: the n - 2
  empty classes sit at the floor max(s)/r. The best prediction-1 scores tie (s_0 = s_1 = 1/(2 + beta)); the
  best scores have s_1/s_0 = rho = clip((b (1 + beta)/a)^kappa, 1/r, 1), s_0 = 1/(1 + beta + rho). Hence

      T_lam,n(t) = psi(1/(2 + beta)) - a psi(s_0) - b psi(s_1)      (kappa = inf at tau = 2: rho in {1/r, 1})

  It is 0 for t <= t_0 = beta/(2 + beta) (the best bounded scores tie at the top: no non-trivial bound
  there, for any tau), equals the complete-H two-class transform between t_0 and the clipping point, and is
  linear (a tangent line) once rho = 1/r.
* n = 2 (beta = 0): T_lam,2 is the exact minimal regret over all p with 0-1 regret t (proved: with two
  classes the problem is one-dimensional and convex in s_0, minimised over s_0 <= 1/2 at s_0 = 1/2). It equals
  error_transform(t, tau, 2) for t <= tanh((2 - tau) lam) and continues along its tangent line above.
* n >= 3: T_lam,n is the exact regret of an explicit distribution, hence an UPPER bound on the tight
  transform T*; that no distribution has a smaller regret is measured (random search over the simplex in
  the tests for tau in [0, 1.5] and lam in {0.3, 1, 2.5}), not proved. Near tau = 2 another distribution
  wins: at lam = 1, n = 3, p = (0.57, 0.43, ~0) predicting its empty class has a regret 0.003 / 0.015 / 0.024
  below the family value at tau = 1.8 / 1.9 / 2 (none found at tau <= 1.7; at lam = 2.5, tau = 1.9 the gap
  reaches 0.06), so for n >= 3 the functions refuse tau > 1.5.
* What is established and what is not (n >= 3). Established: (i) T_lam,n(t) is the regret of the explicit
  distribution above (closed form derived in the bullets above, equal to bounded_min_conditional_regret of
  that p to 1e-9 in the tests), so T* <= T_lam,n for the tight transform T*: no bound better than
  Gamma_lam,n exists; (ii) hence for t <= t_0 no non-trivial bound exists at all.
  NOT proved: T_lam,n <= T*, i.e. that no distribution has a smaller regret. A certified bound needs it,
  so for n >= 3 every value of bounded_gamma_transform / bounded_excess_risk_bound is an estimate
  (ExcessRiskBound.transform_proven is False). A sound certification (interval branch and bound over
  (p, s)) was not attempted: the inequality is an equality along the two-class family, so boxes never
  separate there (the obstacle that makes certify_bound_interval report such points as tight, not
  proved). Measured: no smaller regret in the tests for tau in {0, 0.5, 1, 1.25, 1.5}, n = 3 and 5,
  lam in {0.3, 1, 2.5} (600 random p each); at lam = 1, n = 3 none up to tau = 1.7. Refused for tau > 1.5.
* lam -> inf: beta -> 0, r -> inf, and T_lam,n -> error_transform(t, tau, 2) (= error_transform(t, tau, n)
  for tau <= 1; for 1 < tau < 2 it is the tight two-class value, above the paper's n-dependent T_tau).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq

from theorytools.errors import TheoryError

from ._losses import _loss_from_logp, comp_sum_loss
from ._regret import _pooled
from ._risk import ExcessRiskBound, _clip_search, _risk_of_scores, best_conditional_risk_bounded
from ._validate import check_n, check_positive, check_prob, check_scores, check_tau

__all__ = [
    "bounded_error_transform",
    "bounded_excess_risk_bound",
    "bounded_gamma_transform",
    "bounded_min_conditional_regret",
    "bounded_zero_threshold",
]


def _psi_log(logs: np.ndarray, tau: float) -> np.ndarray:
    """psi(s) = (s^(tau-1) - 1)/(1 - tau) from log s (exact at tau = 1)."""
    return _loss_from_logp(np.asarray(logs, dtype=np.float64), tau)


def _check_t(t, fname: str) -> np.ndarray:
    t_arr = np.asarray(t, dtype=np.float64)
    if not np.all((t_arr >= 0) & (t_arr <= 1)):
        raise TheoryError(f"The 't' parameter of {fname} must lie in [0, 1]. Got values outside [0, 1] instead.")
    return t_arr


def _T_bounded(t: np.ndarray, tau: float, lam: float, n: int) -> np.ndarray:
    a = (1.0 + t) / 2.0
    b = (1.0 - t) / 2.0
    log_beta1 = np.log1p((n - 2) * np.exp(-2.0 * lam))  # log(1 + beta)
    beta = np.expm1(log_beta1)
    with np.errstate(divide="ignore"):
        log_ratio = np.log(b) + log_beta1 - np.log(a)  # log(b (1 + beta)/a) <= 0 above t_0
    if tau == 2.0:
        log_rho = np.where(log_ratio < 0, -2.0 * lam, 0.0)
    else:
        log_rho = np.clip(log_ratio / (2.0 - tau), -2.0 * lam, 0.0)
    log_s0 = -np.log1p(beta + np.exp(log_rho))
    log_s1 = log_rho + log_s0
    top = _psi_log(-np.log(2.0 + beta), tau)
    with np.errstate(invalid="ignore"):
        bterm = np.where(b > 0, b * _psi_log(log_s1, tau), 0.0)
    out = top - a * _psi_log(log_s0, tau) - bterm
    return np.where(log_ratio >= 0, 0.0, np.maximum(out, 0.0))


TAU_MAX_MEASURED = 1.5
"""For n >= 3 the two-class family is the measured minimiser only up to this tau (see module docstring)."""


def _check_measured(tau: float, n: int, fname: str) -> None:
    if n >= 3 and tau > TAU_MAX_MEASURED:
        raise TheoryError(
            f"{fname} for n >= 3 needs tau <= {TAU_MAX_MEASURED}: near tau = 2 other distributions have a "
            f"smaller regret than the two-class family (measured from tau = 1.8 at lam = 1), so the value would "
            f"not be a lower bound. Got tau = {tau}, n = {n}. Use n = 2 or bounded_min_conditional_regret."
        )


def bounded_zero_threshold(lam: float, n: int) -> float:
    """t_0 = beta/(2 + beta), beta = (n - 2) e^(-2 lam): below it the bounded-score transform is 0 (any tau).

    For n >= 3 the best scores in [-lam, lam]^n of p = ((1+t)/2, (1-t)/2, 0, ...) tie at the top when
    t <= t_0, so predicting the second class costs no surrogate regret: no bound better than
    R_01 excess <= t_0 + ... exists for that H. 0 for n = 2.
    """
    lam = check_positive(lam, "lam", "bounded_zero_threshold")
    n = check_n(n, "bounded_zero_threshold")
    beta = (n - 2) * np.exp(-2.0 * lam)
    return float(beta / (2.0 + beta))


def bounded_error_transform(t, tau: float, lam: float, n: int = 2) -> np.ndarray:
    """T_lam,n(t): comp-sum conditional regret at 0-1 regret t for scores bounded in [-lam, lam]^n.

    Exact and tight for n = 2 (the complete-H T_tau(t) up to t = tanh((2 - tau) lam), then its tangent
    line). For n >= 3: the regret of p = ((1+t)/2, (1-t)/2, 0, ...), zero up to bounded_zero_threshold;
    >= the tight transform (it is attained), measured but NOT proved to be <= it, i.e. not a proved lower
    bound of the regret, for tau <= 1.5 (module docstring).
    Tends to error_transform(t, tau, 2) as lam -> inf.
    """
    tau = check_tau(tau, "bounded_error_transform")
    lam = check_positive(lam, "lam", "bounded_error_transform")
    n = check_n(n, "bounded_error_transform")
    _check_measured(tau, n, "bounded_error_transform")
    out = _T_bounded(_check_t(t, "bounded_error_transform"), tau, lam, n)
    return out if np.ndim(out) else float(out)


def bounded_gamma_transform(s, tau: float, lam: float, n: int = 2) -> np.ndarray:
    """Gamma(s) = sup{t : T_lam,n(t) <= s} (generalised inverse), capped at 1.

    Gamma(0) = bounded_zero_threshold(lam, n) (0 for n = 2). Brent root finding per element.
    """
    tau = check_tau(tau, "bounded_gamma_transform")
    lam = check_positive(lam, "lam", "bounded_gamma_transform")
    n = check_n(n, "bounded_gamma_transform")
    _check_measured(tau, n, "bounded_gamma_transform")
    s_arr = np.asarray(s, dtype=np.float64)
    if np.any(np.isnan(s_arr)):
        raise TheoryError("The 's' parameter of bounded_gamma_transform must not contain NaN.")
    t0 = bounded_zero_threshold(lam, n)
    top = float(_T_bounded(np.array(1.0), tau, lam, n))
    flat = s_arr.ravel()
    out = np.empty_like(flat)
    for i, si in enumerate(flat):
        if si >= top:
            out[i] = 1.0
        elif si <= 0:
            out[i] = t0
        else:
            f = lambda x, si=si: float(_T_bounded(np.array(x), tau, lam, n)) - si  # noqa: E731
            out[i] = brentq(f, t0, 1.0, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500)
    out = out.reshape(s_arr.shape)
    return out if out.ndim else float(out)


def bounded_min_conditional_regret(p, pred, tau: float, lam: float, *, grid: int = 257) -> np.ndarray:
    """inf over h in [-lam, lam]^n with argmax h = pred (ties allowed) of C_tau(h) - C*_tau(H_lam, x).

    Minimiser form h = clip(kappa log p~ + c, -lam, lam) with p~ = p pooled at pred, found by a 1-D search
    over c (see module docstring); tau = 2: best two-level vertex with pred in the top level.
    """
    tau = check_tau(tau, "bounded_min_conditional_regret")
    lam = check_positive(lam, "lam", "bounded_min_conditional_regret")
    p = check_prob(p, "bounded_min_conditional_regret")
    P = p.reshape(-1, p.shape[-1])
    n = P.shape[1]
    k = np.broadcast_to(np.asarray(pred), P.shape[:1])
    if not np.issubdtype(k.dtype, np.integer) or np.any(k < 0) or np.any(k >= n):
        raise TheoryError(f"The 'pred' parameter of bounded_min_conditional_regret must be class indices in [0, {n}).")
    k = k.astype(np.intp)
    best = np.atleast_1d(best_conditional_risk_bounded(P, tau, lam))
    if tau == 2.0:
        rows = np.arange(len(P))
        r = np.exp(2.0 * lam)
        others = P.copy()
        others[rows, k] = -np.inf
        srt = -np.sort(-others, axis=1)[:, : n - 1]
        cum = P[rows, k][:, None] + np.concatenate([np.zeros((len(P), 1)), np.cumsum(srt, axis=1)], axis=1)
        m = np.arange(1, n + 1)  # size of the top level (pred plus the m - 1 largest others)
        risk = (1.0 - (1.0 + (r - 1.0) * cum) / (n + (r - 1.0) * m)).min(axis=1)
    else:
        kappa = 1.0 / (2.0 - tau)
        with np.errstate(divide="ignore"):
            z = kappa * np.log(_pooled(P, k))
        risk = _clip_search(z, P, tau, lam, grid)
    out = np.maximum(risk - best, 0.0).reshape(p.shape[:-1])
    return out if out.ndim else float(out)


def bounded_excess_risk_bound(
    scores,
    tau: float,
    lam: float,
    *,
    p_cond=None,
    labels=None,
    best_surrogate_risk: float | None = None,
    surrogate_gap: float = 0.0,
    zero_one_gap: float = 0.0,
) -> ExcessRiskBound:
    """R_01(h) - R*_01(H_lam) <= Gamma(R_tau(h) - R*_tau(H_lam) + M_tau) - M_01 with Gamma = bounded_gamma_transform.

    As excess_risk_bound, for H_lam = {h : h(x, .) in [-lam, lam]^n}: the scores (m, n) must have a spread
    max - min <= 2 lam per row (the losses depend on score differences only). With p_cond the default
    R*_tau(H_lam) is E[C*_tau(H_lam, x)] (H_lam = all such functions, zero gaps). Needs T convex (measured on
    grids in the tests) for the step from conditional to expected regrets.
    """
    tau = check_tau(tau, "bounded_excess_risk_bound")
    lam = check_positive(lam, "lam", "bounded_excess_risk_bound")
    h = check_scores(scores, "bounded_excess_risk_bound")
    if h.ndim != 2:
        raise TheoryError(f"The 'scores' parameter of bounded_excess_risk_bound must be 2-D (m, n). Got {h.shape} instead.")
    m, n = h.shape
    _check_measured(tau, n, "bounded_excess_risk_bound")
    spread = float(np.max(h.max(1) - h.min(1)))
    if spread > 2.0 * lam * (1.0 + 1e-12):
        raise TheoryError(
            f"The 'scores' parameter of bounded_excess_risk_bound must lie in a box of width 2 lam = {2 * lam}. "
            f"Got a row with spread {spread} instead."
        )
    check_positive(surrogate_gap, "surrogate_gap", "bounded_excess_risk_bound", allow_zero=True)
    check_positive(zero_one_gap, "zero_one_gap", "bounded_excess_risk_bound", allow_zero=True)
    if (p_cond is None) == (labels is None):
        raise TheoryError("bounded_excess_risk_bound needs exactly one of 'p_cond' and 'labels'. Got both or neither.")
    pred = np.argmax(h, axis=1)
    if p_cond is not None:
        p = check_prob(p_cond, "bounded_excess_risk_bound", "p_cond")
        if p.shape != h.shape:
            raise TheoryError(f"The 'p_cond' parameter of bounded_excess_risk_bound must have shape {h.shape}. Got {p.shape}.")
        r_sur = float(np.mean(_risk_of_scores(h, p, tau)))
        r01 = float(np.mean(1.0 - p[np.arange(m), pred]))
        if best_surrogate_risk is None:
            best_surrogate_risk = float(np.mean(best_conditional_risk_bounded(p, tau, lam)))
        exact01 = r01 - float(np.mean(1.0 - p.max(1))) if (surrogate_gap == 0.0 and zero_one_gap == 0.0) else None
    else:
        y = np.asarray(labels)
        r_sur = float(np.mean(comp_sum_loss(h, y, tau)))
        r01 = float(np.mean(pred != y))
        if best_surrogate_risk is None:
            raise TheoryError("bounded_excess_risk_bound with 'labels' needs 'best_surrogate_risk' (R*_tau(H)).")
        exact01 = None
    excess = r_sur - float(best_surrogate_risk) + surrogate_gap
    bound = float(bounded_gamma_transform(max(excess, 0.0), tau, lam, n)) - zero_one_gap
    return ExcessRiskBound(
        tau=tau, n=n, surrogate_risk=r_sur, best_surrogate_risk=float(best_surrogate_risk),
        surrogate_gap=float(surrogate_gap), zero_one_risk=r01, zero_one_gap=float(zero_one_gap),
        surrogate_excess=excess, bound=bound, zero_one_excess=exact01, transform_proven=(n == 2),
    )
