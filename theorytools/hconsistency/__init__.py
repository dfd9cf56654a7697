"""H-consistency bounds for comp-sum losses (Mao, Mohri, Zhong, ICML 2023, arXiv:2304.07288).

Comp-sum losses l^tau (tau in [0, 2]), their error transformation T_tau and bound Gamma_tau = T_tau^{-1}
for symmetric complete hypothesis sets, best-in-class conditional risks, minimizability gaps, excess-risk
bound evaluation, brute-force / certified checks of the bound, a table of earlier psi-transforms, the
bounded-score transform (scores in [-lam, lam]^n; proved for every n, tight for n = 2 or tau <= 1; ours,
_bounded.py), smooth adversarial comp-sum losses of linear scores and an adversarial H-consistency bound
for smooth adversarial comp-sum rho-margin losses (ours, _adv_bound.py).
The paper's text could not be read here (only its abstract): theorem numbers are not cited.
"""

from ._adv_bound import (
    AdversarialExcessRiskBound,
    adversarial_excess_risk_bound,
    best_conditional_margin_risk,
    comp_sum_margin_loss,
    margin_comp_sum_lipschitz,
    smooth_adversarial_margin_loss,
)
from ._adversarial import (
    adversarial_zero_one_loss,
    comp_sum_lipschitz,
    score_perturbation_norm,
    smooth_adversarial_comp_sum_loss,
)
from ._bounded import (
    bounded_error_transform,
    bounded_excess_risk_bound,
    bounded_gamma_transform,
    bounded_min_conditional_regret,
    bounded_zero_threshold,
)
from ._bounds import error_transform, error_transform_at_one, gamma_transform, small_t_coefficient
from ._certify import CertificationResult, certify_bound_interval, certify_bound_z3
from ._losses import comp_sum_loss, conditional_risk, log_softmax, phi_tau, zero_one_conditional_regret
from ._regret import BoundCheck, check_bound, min_conditional_regret, min_conditional_regret_numeric
from ._risk import (
    ExcessRiskBound,
    best_conditional_risk,
    best_conditional_risk_bounded,
    deterministic_bounded_cstar,
    excess_risk_bound,
    minimizability_gap,
    optimal_softmax,
    zero_one_minimizability_gap,
)
from ._symbolic import error_transform_series, error_transform_symbolic, gamma_symbolic
from ._tight import TightTransform, tight_error_transform, tight_gamma_estimate
from ._transforms import PSI_TRANSFORMS, PsiTransform, psi_transform

__all__ = [
    "AdversarialExcessRiskBound",
    "adversarial_excess_risk_bound",
    "best_conditional_margin_risk",
    "comp_sum_margin_loss",
    "margin_comp_sum_lipschitz",
    "smooth_adversarial_margin_loss",
    "BoundCheck",
    "CertificationResult",
    "ExcessRiskBound",
    "PSI_TRANSFORMS",
    "PsiTransform",
    "TightTransform",
    "adversarial_zero_one_loss",
    "best_conditional_risk",
    "best_conditional_risk_bounded",
    "bounded_error_transform",
    "bounded_excess_risk_bound",
    "bounded_gamma_transform",
    "bounded_min_conditional_regret",
    "bounded_zero_threshold",
    "certify_bound_interval",
    "certify_bound_z3",
    "check_bound",
    "comp_sum_lipschitz",
    "comp_sum_loss",
    "conditional_risk",
    "deterministic_bounded_cstar",
    "error_transform",
    "error_transform_at_one",
    "error_transform_series",
    "error_transform_symbolic",
    "excess_risk_bound",
    "gamma_symbolic",
    "gamma_transform",
    "log_softmax",
    "min_conditional_regret",
    "min_conditional_regret_numeric",
    "minimizability_gap",
    "optimal_softmax",
    "phi_tau",
    "psi_transform",
    "score_perturbation_norm",
    "small_t_coefficient",
    "smooth_adversarial_comp_sum_loss",
    "tight_error_transform",
    "tight_gamma_estimate",
    "zero_one_conditional_regret",
    "zero_one_minimizability_gap",
]
