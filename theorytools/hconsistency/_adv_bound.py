"""Adversarial H-consistency bound for smooth adversarial comp-sum rho-margin losses (linear scores).

The paper (Mao, Mohri, Zhong, ICML 2023, arXiv:2304.07288) states adversarial H-consistency bounds for
smooth adversarial comp-sum losses; its text could not be read here (only the abstract), so the statement
below is OUR theorem, with our constants, proved in this docstring and checked by brute force in
tests/theorytools/test_hconsistency_adversarial.py. It is not claimed to be the paper's statement.

Notation. n classes, scores h(x, .) in R^n, ball B(x) = {x' : ||x' - x||_p <= gamma}, p in {1, 2, inf}.
c_j = Phi^tau(j) (Phi^tau(u) = int_0^u (1 + v)^(-tau) dv, increasing, c_0 = 0), rho > 0,
Phi_rho(u) = min(1, max(0, 1 - u/rho)) (the rho-margin ramp: 1 for u <= 0, 0 for u >= rho).

* Target: adversarial 0-1 loss l_gamma(h, x, y) = sup_{x' in B(x)} 1[y is not the prediction at x'];
  either ties count as errors or argmax ties go to the smallest index (ties="error" | "argmax"; the
  proof covers both). At gamma = 0 with ties="argmax" it is the ordinary 0-1 loss.
* Comp-sum rho-margin loss: L_rho(s, y) = Phi^tau( sum_{y' != y} Phi_rho(s_y - s_y') ).
  Sup-adversarial version L_sup(h, x, y) = sup_{x' in B(x)} L_rho(h(x'), y).
  Smooth version (what we compute; linear h(x) = W x + b):
      L~(h, x, y) = L_rho(h(x), y) + nu * sup_{x' in B(x)} ||Delta_h(x', y) - Delta_h(x, y)||_2
                  = L_rho(h(x), y) + nu * gamma * ||W - 1 w_y^T||_{p->2},     Delta_h(x, y) = h(x, .) - h(x, y).
* H: any hypothesis set containing the constant score functions x -> b, b in R^n (e.g. all affine
  maps W x + b). Conditional risks C(h, x) = sum_y p_y loss(h, x, y), C*(H, x) = inf_H C(., x).

Theorem (ours). For nu >= nu_rho = sqrt(n - 1)/rho, every h in H and every distribution,
    R_gamma(h) - R*_gamma(H) + M_gamma(H) <= (R_L~(h) - R*_L~(H) + M_L~(H)) / Phi^tau(1),
and the same with L_sup in place of L~. Gamma(s) = s / Phi^tau(1) is linear; it is attained (n >= 2,
constant h predicting the second class of p = (a, b, 0, ...)), so no smaller linear constant holds.

Proof. (1) Lipschitz: v -> Phi_rho(-v) is 1/rho-Lipschitz, so g(Delta) = sum_{y'!=y} Phi_rho(-Delta_y')
(Delta_y = 0) changes by <= ||.||_1/rho <= sqrt(n - 1)/rho ||.||_2, and Phi^tau is 1-Lipschitz on
[0, inf) (Phi^tau' = (1 + u)^(-tau) <= 1). Hence L~ >= L_sup >= L_rho(h(x), .).
(2) Lower bound, any function h: let rank_y = 1 + #{y' != y : h(x, y') >= h(x, y)} and let pi sort the
classes by score at x (ties: smallest index first), so pi_y <= rank_y and k = pi^-1(1) is the argmax.
Every y' ranked at or above y contributes Phi_rho(<= 0) = 1, so L_rho(h(x), y) >= c_{rank_y - 1} >= c_{pi_y - 1}.
If y is attacked (some x' where y is not the prediction), some y' has h(x', y') >= h(x', y), so
L_sup(h, x, y) >= c_1.  Let q be p sorted decreasingly; C^# = sum_j q_j c_{j-1}.
(3) Rearrangement with k first: sum_y p_y c_{pi_y - 1} >= C^# + (p_max - p_k) c_1 (moving the class of
rank r to the front costs sum_{j<r} (q_j - q_r)(c_j - c_{j-1}) >= (q_1 - q_r) c_1).
(4) At most one class is never attacked (it must be the prediction at every x'), and it is k. If k is not
attacked: C_gamma = 1 - p_k and C_Lsup >= C^# + (p_max - p_k) c_1. If every class is attacked:
C_gamma = 1 and C_Lsup >= sum_{y != k} p_y c_{pi_y - 1} + p_k c_1 >= C^# + p_max c_1.
(5) Constants b ranked like p with gaps >= rho are never attacked and have L~ = L_sup = L_rho = c_{pi_y - 1}
exactly (penalty 0), and b = e_argmax(p) gives C_gamma = 1 - p_max. So C*_gamma(H, x) = 1 - max p and
C*_L~(H, x) = C*_Lsup(H, x) = C^#; (4) reads C_Lsup - C^# >= c_1 (C_gamma - C*_gamma) in both cases.
(6) R(h) - R*(H) + M(H) = E_X[C(h, X) - C*(H, X)] for both losses (definition of the gap); take expectations
of (4) (Gamma linear: no convexity step). QED.

gamma = 0: the penalty vanishes, L~ = L_rho and (ties="argmax") l_gamma is the 0-1 loss, so the function
returns the non-adversarial H-consistency bound of the comp-sum rho-margin loss (same constant, tight).
It is NOT the T_tau bound of the ordinary comp-sum loss l^tau: for l^tau + nu * penalty (the loss of
smooth_adversarial_comp_sum_loss) no bound with Gamma(0+) = 0 holds for gamma > 0 and any nu: with
p = (1/2 + e, 1/2 - e) and the best scores s at one point x, a linear h with h(x) = s and
gamma ||w_0 - w_1||_q just above s_0 - s_1 has adversarial regret 1/2 + e but surrogate regret
~ nu (s_0 - s_1) -> 0 as e -> 0 (checked in the tests). The ramp Phi_rho makes near-ties costly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theorytools.errors import TheoryError

from ._adversarial import _check_linear, _check_norm, adversarial_zero_one_loss, score_perturbation_norm
from ._losses import phi_tau
from ._validate import check_labels, check_positive, check_prob, check_risk_inputs, check_scores, check_tau

__all__ = [
    "AdversarialExcessRiskBound",
    "adversarial_excess_risk_bound",
    "best_conditional_margin_risk",
    "comp_sum_margin_loss",
    "margin_comp_sum_lipschitz",
    "smooth_adversarial_margin_loss",
]


def margin_comp_sum_lipschitz(n: int, rho: float) -> float:
    """nu_rho = sqrt(n - 1)/rho: l2-Lipschitz constant of L_rho in Delta_h(x, y) (module docstring, step 1)."""
    rho = check_positive(rho, "rho", "margin_comp_sum_lipschitz")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise TheoryError(f"The 'n' parameter of margin_comp_sum_lipschitz must be an int >= 2. Got {n!r}.")
    return float(np.sqrt(n - 1.0) / rho)


def comp_sum_margin_loss(scores, labels, tau: float, rho: float) -> np.ndarray:
    """L_rho(s, y) = Phi^tau(sum_{y' != y} Phi_rho(s_y - s_y')), Phi_rho(u) = clip(1 - u/rho, 0, 1). Shape (...)."""
    tau = check_tau(tau, "comp_sum_margin_loss")
    rho = check_positive(rho, "rho", "comp_sum_margin_loss")
    s = check_scores(scores, "comp_sum_margin_loss")
    n = s.shape[-1]
    y = check_labels(labels, s.shape[:-1], n, "comp_sum_margin_loss")
    sy = np.take_along_axis(s, y[..., None], axis=-1)
    ramp = np.clip(1.0 - (sy - s) / rho, 0.0, 1.0)
    np.put_along_axis(ramp, y[..., None], 0.0, axis=-1)
    return phi_tau(ramp.sum(-1), tau)


def best_conditional_margin_risk(p, tau: float) -> np.ndarray:
    """C^#(p) = sum_j q_j Phi^tau(j - 1), q = p sorted decreasingly: the best conditional risk of L_rho,
    L_sup and L~ over any H containing the constant scores (any rho > 0; module docstring, step 5)."""
    tau = check_tau(tau, "best_conditional_margin_risk")
    p = check_prob(p, "best_conditional_margin_risk")
    q = -np.sort(-p, axis=-1)
    c = phi_tau(np.arange(p.shape[-1], dtype=np.float64), tau)
    out = np.sum(q * c, axis=-1)
    return out if np.ndim(out) else float(out)


def smooth_adversarial_margin_loss(W, b, x, labels, tau: float, rho: float, gamma: float, *, nu: float | None = None,
                                   norm=2) -> np.ndarray:
    """L~ = L_rho(h(x), y) + nu * gamma * ||W - 1 w_y^T||_{p->2} for h(x) = W x + b; nu defaults to sqrt(n-1)/rho.

    An upper bound of sup_{||x'-x||_p <= gamma} L_rho(h(x'), y) whenever nu >= sqrt(n-1)/rho (for p = inf and
    d > 16 the operator norm is itself an upper bound, see score_perturbation_norm). Returns an (m,) array.
    """
    W, b, x = _check_linear(W, b, x, "smooth_adversarial_margin_loss")
    gamma = check_positive(gamma, "gamma", "smooth_adversarial_margin_loss", allow_zero=True)
    n = W.shape[0]
    if nu is None:
        nu = margin_comp_sum_lipschitz(n, check_positive(rho, "rho", "smooth_adversarial_margin_loss"))
    nu = check_positive(nu, "nu", "smooth_adversarial_margin_loss", allow_zero=True)
    y = check_labels(labels, (x.shape[0],), n, "smooth_adversarial_margin_loss")
    base = comp_sum_margin_loss(x @ W.T + b, y, tau, rho)
    if gamma == 0.0:
        return base
    per_class = np.array([score_perturbation_norm(W, k, gamma, norm)[0] for k in range(n)])
    return base + nu * per_class[y]


@dataclass(frozen=True)
class AdversarialExcessRiskBound:
    """Adversarial H-consistency bound evaluated for one linear model on one sample (risks are means)."""

    tau: float
    rho: float
    gamma: float
    norm: float
    """p of the l_p ball (1, 2 or inf)."""
    n: int
    nu: float
    """Penalty weight used (>= sqrt(n - 1)/rho, else the theorem does not apply and the call is refused)."""
    surrogate_risk: float
    """R_L~(h)."""
    best_surrogate_risk: float
    """R*_L~(H) used."""
    surrogate_gap: float
    """M_L~(H) used."""
    adversarial_risk: float
    """R_gamma(h): expected over p_cond if given, else empirical on the labels."""
    zero_one_gap: float
    """M_gamma(H) used."""
    surrogate_excess: float
    """R_L~(h) - R*_L~(H) + M_L~(H)."""
    bound: float
    """min(1, surrogate_excess / Phi^tau(1)) - M_gamma(H): upper bound on R_gamma(h) - R*_gamma(H)."""
    adversarial_excess: float | None
    """R_gamma(h) - E[1 - max p] when p_cond is given and both gaps are 0 (H containing the constants and
    the measurable functions of x), else None."""
    exact_norm: bool
    """False when the perturbation norm is an upper bound (p = inf, d > 16): L~ is then larger, still valid."""

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def adversarial_excess_risk_bound(
    W,
    b,
    x,
    tau: float,
    rho: float,
    gamma: float,
    *,
    p_cond=None,
    labels=None,
    norm=2,
    nu: float | None = None,
    ties: str = "argmax",
    best_surrogate_risk: float | None = None,
    surrogate_gap: float = 0.0,
    zero_one_gap: float = 0.0,
) -> AdversarialExcessRiskBound:
    """R_gamma(h) - R*_gamma(H) <= (R_L~(h) - R*_L~(H) + M_L~(H))/Phi^tau(1) - M_gamma(H) for h(x) = W x + b.

    Our theorem (module docstring): H contains the constant scores, L~ = smooth_adversarial_margin_loss.
    Give p_cond (m, n) (risks are expectations over Y; default R*_L~ = E[C^#(p)], zero gaps) or integer
    labels (empirical risks; best_surrogate_risk required). gamma = 0 gives the non-adversarial bound of the
    comp-sum rho-margin loss. tau in [0, 2]; nu < sqrt(n-1)/rho is refused.
    """
    tau = check_tau(tau, "adversarial_excess_risk_bound")
    rho = check_positive(rho, "rho", "adversarial_excess_risk_bound")
    W, b, x = _check_linear(W, b, x, "adversarial_excess_risk_bound")
    gamma = check_positive(gamma, "gamma", "adversarial_excess_risk_bound", allow_zero=True)
    p_norm = _check_norm(norm, "adversarial_excess_risk_bound")
    m, n = x.shape[0], W.shape[0]
    nu_min = margin_comp_sum_lipschitz(n, rho)
    nu = nu_min if nu is None else check_positive(nu, "nu", "adversarial_excess_risk_bound")
    if nu < nu_min:
        raise TheoryError(
            f"The 'nu' parameter of adversarial_excess_risk_bound must be >= sqrt(n - 1)/rho = {nu_min} "
            f"(the Lipschitz constant of the rho-margin loss). Got {nu} instead."
        )
    check_risk_inputs(surrogate_gap, zero_one_gap, p_cond, labels, "adversarial_excess_risk_bound")
    exact_norm = all(score_perturbation_norm(W, k, 1.0, norm)[1] for k in range(n)) or gamma == 0.0
    if p_cond is not None:
        p = check_prob(p_cond, "adversarial_excess_risk_bound", "p_cond")
        if p.shape != (m, n):
            raise TheoryError(f"The 'p_cond' parameter of adversarial_excess_risk_bound must have shape {(m, n)}. Got {p.shape}.")
        sur = np.zeros(m)
        adv = np.zeros(m)
        for y in range(n):
            lab = np.full(m, y)
            sur += p[:, y] * smooth_adversarial_margin_loss(W, b, x, lab, tau, rho, gamma, nu=nu, norm=norm)
            adv += p[:, y] * adversarial_zero_one_loss(W, b, x, lab, gamma, norm=norm, ties=ties)
        r_sur, r_adv = float(sur.mean()), float(adv.mean())
        if best_surrogate_risk is None:
            best_surrogate_risk = float(np.mean(best_conditional_margin_risk(p, tau)))
        exact = r_adv - float(np.mean(1.0 - p.max(1))) if (surrogate_gap == 0.0 and zero_one_gap == 0.0) else None
    else:
        y = check_labels(labels, (m,), n, "adversarial_excess_risk_bound")
        r_sur = float(np.mean(smooth_adversarial_margin_loss(W, b, x, y, tau, rho, gamma, nu=nu, norm=norm)))
        r_adv = float(np.mean(adversarial_zero_one_loss(W, b, x, y, gamma, norm=norm, ties=ties)))
        if best_surrogate_risk is None:
            raise TheoryError("adversarial_excess_risk_bound with 'labels' needs 'best_surrogate_risk' (R*_L~(H)).")
        exact = None
    excess = r_sur - float(best_surrogate_risk) + surrogate_gap
    bound = min(1.0, max(excess, 0.0) / float(phi_tau(1.0, tau))) - zero_one_gap
    return AdversarialExcessRiskBound(
        tau=tau, rho=rho, gamma=gamma, norm=p_norm, n=n, nu=float(nu), surrogate_risk=r_sur,
        best_surrogate_risk=float(best_surrogate_risk), surrogate_gap=float(surrogate_gap), adversarial_risk=r_adv,
        zero_one_gap=float(zero_one_gap), surrogate_excess=excess, bound=bound, adversarial_excess=exact,
        exact_norm=bool(exact_norm),
    )
