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
* n >= 3, Theorem (ours). For every p, every prediction k and t = max p - p_k:
      min regret >= T_lam,n(t)                                   for tau in [0, 1]   (so T_lam,n = T*, tight),
      min regret >= ((2 + beta)/n)^(tau - 1) T_lam,n(t)          for tau in (1, 2].
  Proof. Let j = argmax p, t > 0, and s a minimiser of C_p over R_lam with s_k = max s (compact set).
  (a) s_j = max s: otherwise lower every top class (set S, k in S) by e/|S| and raise s_j by e; this stays
      feasible for small e and changes C_p at rate p_j psi'(s_j) - mean_S(p_i) psi'(max s) < 0, because
      p_i <= p_j on S with p_k < p_j gives p_j > mean_S p_i, and |psi'| = s^(tau-2) is non-increasing. So
      s_j = s_k = m, and m (2 + beta) <= 2m + sum_{others} s_i = 1 (others >= m/r), i.e. 1/n <= m <= 1/(2+beta).
  (b) Move: s' = s + d e_j - (1 + beta) d e_k + (d/r) on each of the n - 2 other classes, 0 <= d <= u* m,
      u* = (1 - 1/r)/(1 + beta + 1/r). It sums to 1, its max is m + d and every entry is >= (m + d)/r, so
      s' is in R_lam and C*(p) <= C_p(s'). The other classes only go up and psi is decreasing, hence
      regret >= p_j (psi(m) - psi(m + d)) + p_k (psi(m) - psi(m - (1 + beta) d)) =: F(d).
  (c) With d = u m: psi(m) - psi(m(1 + u)) = m^(tau-1) (1 - (1 + u)^(tau-1))/(1 - tau) (log(1 + u) at
      tau = 1), so sup_d F = m^(tau-1) g(p_j, p_k) with g >= 0 independent of m.
  (d) With p_k = p_j - t fixed, each F(d) has slope A + B in p_j, A + B = 2 psi(m) - psi(m + d) -
      psi(m - (1 + beta) d) <= 2 psi(m) - 2 psi(m - beta d/2) <= 0 (convexity, then psi decreasing), so g
      is smallest at the largest p_j = (1 + t)/2 (p_j + p_k <= 1): g(p_j, p_k) >= g(a, b).
  (e) m^(tau-1) >= (2 + beta)^(1-tau) for tau <= 1 and >= n^(1-tau) for tau > 1 (by (a)). At p = (a, b, 0, ...)
      C_p depends on s_0, s_1 only and decreases in both, so both minimisers put the other classes at the
      floor: the constrained one is (m, m, m/r, ...), m = 1/(2 + beta), and the unconstrained one has
      s_0 >= s_1 >= s_0/r, s_0 (1 + beta) + s_1 = 1, i.e. it is s' for some d in [0, u* m], so
      (2 + beta)^(1-tau) g(a, b) = T_lam,n(t). Multiply (c)-(e). QED.
  For tau <= 1 the bound is attained by the family, so it is the tight transform T*. For tau > 1 the
  factor ((2 + beta)/n)^(tau-1) (the m = 1/n end of (a); -> (2/n)^(tau-1) as lam -> inf, the factor
  between the paper's n-dependent T_tau and the two-class one) is proved; the family value T_lam,n itself
  (proven=False) is >= T* (it is the regret of one p) but is NOT proved <= T*: it holds in the tests for
  tau <= 1.5 and fails near tau = 2 (lam = 1, n = 3, p = (0.57, 0.43, ~0) predicting its empty class:
  0.003 / 0.015 / 0.024 below it at tau = 1.8 / 1.9 / 2; lam = 2.5, n = 3: 0.011 below at tau = 1.7),
  so proven=False refuses tau > 1.5 for n >= 3. Measured looseness of the proved factor (random p, n = 3
  and 5, lam in {0.3, 1, 2.5}): exact regret / proved value >= 1.01-2.04 at tau in (1, 2].
  Not proved here: convexity of T_lam,n in t (needed by bounded_excess_risk_bound for the step from
  conditional to expected regrets; checked on grids; for n = 2 it is the convex T_tau continued along a
  tangent line).
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
from ._validate import check_n, check_positive, check_prob, check_risk_inputs, check_scores, check_tau

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


def _proven_factor(tau: float, lam: float, n: int) -> float:
    """1 for tau <= 1 (T_lam,n is then the tight transform), ((2 + beta)/n)^(tau - 1) above (module docstring)."""
    if tau <= 1.0:
        return 1.0
    beta = (n - 2) * np.exp(-2.0 * lam)
    return float(((2.0 + beta) / n) ** (tau - 1.0))


def _T(t: np.ndarray, tau: float, lam: float, n: int, proven: bool) -> np.ndarray:
    out = _T_bounded(t, tau, lam, n)
    return out * _proven_factor(tau, lam, n) if proven else out


TAU_MAX_MEASURED = 1.5
"""For n >= 3 the two-class family is the measured minimiser only up to this tau (see module docstring)."""


def _check_measured(tau: float, n: int, fname: str, proven: bool = False) -> None:
    if not isinstance(proven, bool):
        raise TheoryError(f"The 'proven' parameter of {fname} must be a bool. Got {proven!r} instead.")
    if not proven and n >= 3 and tau > TAU_MAX_MEASURED:
        raise TheoryError(
            f"{fname} for n >= 3 needs tau <= {TAU_MAX_MEASURED}: near tau = 2 other distributions have a "
            f"smaller regret than the two-class family (measured from tau = 1.8 at lam = 1), so the value would "
            f"not be a lower bound. Got tau = {tau}, n = {n}. Use proven=True, n = 2 or bounded_min_conditional_regret."
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


def bounded_error_transform(t, tau: float, lam: float, n: int = 2, *, proven: bool = True) -> np.ndarray:
    """Lower bound on the comp-sum conditional regret at 0-1 regret t for scores bounded in [-lam, lam]^n.

    proven=True (default): the proved transform of the module docstring, c * T_lam,n(t) with c = 1 for
    tau <= 1 (then it is the tight transform, for every n) and c = ((2 + beta)/n)^(tau - 1) for tau > 1
    (beta = (n - 2) e^(-2 lam); c = 1 for n = 2, where T_lam,2 is exact and tight). proven=False: the
    family value T_lam,n(t) (the regret of p = ((1+t)/2, (1-t)/2, 0, ...)), an upper bound on the tight
    transform that is NOT proved to be a lower bound of the regret for tau > 1 and n >= 3 (refused for
    tau > 1.5 there). Both are 0 up to bounded_zero_threshold and tend to error_transform(t, tau, 2) (times
    (2/n)^(tau-1) when proven and tau > 1) as lam -> inf.
    """
    tau = check_tau(tau, "bounded_error_transform")
    lam = check_positive(lam, "lam", "bounded_error_transform")
    n = check_n(n, "bounded_error_transform")
    _check_measured(tau, n, "bounded_error_transform", proven)
    out = _T(_check_t(t, "bounded_error_transform"), tau, lam, n, proven)
    return out if np.ndim(out) else float(out)


def bounded_gamma_transform(s, tau: float, lam: float, n: int = 2, *, proven: bool = True) -> np.ndarray:
    """Gamma(s) = sup{t : T(t) <= s} (generalised inverse of bounded_error_transform(., proven)), capped at 1.

    Gamma(0) = bounded_zero_threshold(lam, n) (0 for n = 2). Brent root finding per element.
    """
    tau = check_tau(tau, "bounded_gamma_transform")
    lam = check_positive(lam, "lam", "bounded_gamma_transform")
    n = check_n(n, "bounded_gamma_transform")
    _check_measured(tau, n, "bounded_gamma_transform", proven)
    s_arr = np.asarray(s, dtype=np.float64)
    if np.any(np.isnan(s_arr)):
        raise TheoryError("The 's' parameter of bounded_gamma_transform must not contain NaN.")
    t0 = bounded_zero_threshold(lam, n)
    top = float(_T(np.array(1.0), tau, lam, n, proven))
    flat = s_arr.ravel()
    out = np.empty_like(flat)
    for i, si in enumerate(flat):
        if si >= top:
            out[i] = 1.0
        elif si <= 0:
            out[i] = t0
        else:
            f = lambda x, si=si: float(_T(np.array(x), tau, lam, n, proven)) - si  # noqa: E731
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
    proven: bool = True,
) -> ExcessRiskBound:
    """R_01(h) - R*_01(H_lam) <= Gamma(R_tau(h) - R*_tau(H_lam) + M_tau) - M_01 with Gamma = bounded_gamma_transform.

    proven selects the transform (see bounded_error_transform); `transform_proven` of the result is True
    unless proven=False with n >= 3 and tau > 1.
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
    _check_measured(tau, n, "bounded_excess_risk_bound", proven)
    spread = float(np.max(h.max(1) - h.min(1)))
    if spread > 2.0 * lam * (1.0 + 1e-12):
        raise TheoryError(
            f"The 'scores' parameter of bounded_excess_risk_bound must lie in a box of width 2 lam = {2 * lam}. "
            f"Got a row with spread {spread} instead."
        )
    check_risk_inputs(surrogate_gap, zero_one_gap, p_cond, labels, "bounded_excess_risk_bound")
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
    bound = float(bounded_gamma_transform(max(excess, 0.0), tau, lam, n, proven=proven)) - zero_one_gap
    return ExcessRiskBound(
        tau=tau, n=n, surrogate_risk=r_sur, best_surrogate_risk=float(best_surrogate_risk),
        surrogate_gap=float(surrogate_gap), zero_one_risk=r01, zero_one_gap=float(zero_one_gap),
        surrogate_excess=excess, bound=bound, zero_one_excess=exact01, transform_proven=proven or n == 2 or tau <= 1.0,
    )
