"""Smooth adversarial comp-sum losses for linear scores h(x) = W x + b (Mao, Mohri, Zhong 2023, Sec. on
adversarial robustness; the paper text was not available to us: definitions below follow theory.md D.1
[RECALL], the constant nu_tau and the inequality are our derivation, checked in the tests).

Delta_h(x, y) = h(x, .) - h(x, y) in R^n.  Smooth adversarial comp-sum loss, radius gamma in the l_p norm:

    l~(h, x, y) = l^tau(h, x, y) + nu * sup_{||x' - x||_p <= gamma} ||Delta_h(x', y) - Delta_h(x, y)||_2,

for linear h the sup is gamma ||A_y||_{p->2} with A_y = W - 1 w_y^T (exact for p = 1, 2; for p = inf by
enumerating the 2^d sign vectors when d <= 16, else the upper bound sqrt(sum_i ||row_i||_1^2)).

Derived facts (ours): l^tau = Phi^tau(sum_{y' != y} e^{Delta_y'}) has gradient p_y^(tau-1) p_y' in Delta_y',
of l2 norm <= p_y^(tau-1) (1 - p_y) <= nu_tau = sup_q q^(tau-1)(1 - q):
nu_1 = 1, nu_tau = ((tau-1)/tau)^(tau-1)/tau for tau > 1 (1/4 at tau = 2), infinite for tau < 1. Hence for
nu >= nu_tau: sup_{x'} l^tau(h, x', y) <= l~(h, x, y), and, since a misclassified x' has
sum_{y'!=y} e^{Delta_y'} >= 1, the adversarial 0-1 loss
l_gamma(h, x, y) = sup_{x'} 1[h(x', y) <= max_{y' != y} h(x', y')] <= l~(h, x, y) / Phi^tau(1).
This pointwise upper bound is not an H-consistency bound: for l~ no such bound exists (near-tied p, see
_adv_bound.py); the adversarial H-consistency bound is stated there for the rho-margin variant.
"""

from __future__ import annotations

import itertools
import numbers

import numpy as np

from theorytools.errors import TheoryError

from ._losses import comp_sum_loss, phi_tau
from ._validate import check_labels, check_positive, check_tau

__all__ = [
    "adversarial_zero_one_loss",
    "comp_sum_lipschitz",
    "score_perturbation_norm",
    "smooth_adversarial_comp_sum_loss",
]

_ENUM_MAX_D = 16


def comp_sum_lipschitz(tau: float) -> float:
    """nu_tau: the l2-Lipschitz constant of l^tau in Delta_h(x, y) (inf for tau < 1; 1 at tau = 1)."""
    tau = check_tau(tau, "comp_sum_lipschitz")
    if tau < 1.0:
        return float("inf")
    if tau == 1.0:
        return 1.0
    return float(((tau - 1.0) / tau) ** (tau - 1.0) / tau)


def _check_norm(norm, fname: str) -> float:
    if norm in (1, 2, "inf", np.inf) and not isinstance(norm, bool):
        return float(np.inf) if norm in ("inf", np.inf) else float(norm)
    raise TheoryError(f"The 'norm' parameter of {fname} must be 1, 2 or 'inf'. Got {norm!r} instead.")


def _check_linear(W, b, x, fname: str):
    W = np.asarray(W, dtype=np.float64)
    if W.ndim != 2 or W.shape[0] < 2 or not np.all(np.isfinite(W)):
        raise TheoryError(f"The 'W' parameter of {fname} must be a finite (n, d) matrix with n >= 2. Got shape {W.shape}.")
    b = np.zeros(W.shape[0]) if b is None else np.asarray(b, dtype=np.float64)
    if b.shape != (W.shape[0],) or not np.all(np.isfinite(b)):
        raise TheoryError(f"The 'b' parameter of {fname} must be a finite vector of shape ({W.shape[0]},). Got {b.shape}.")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != W.shape[1] or not np.all(np.isfinite(x)):
        raise TheoryError(f"The 'x' parameter of {fname} must be a finite (m, {W.shape[1]}) array. Got shape {x.shape}.")
    return W, b, x


def _op_norm_to_2(A: np.ndarray, p: float) -> tuple[float, bool]:
    """||A||_{p->2} and whether it is exact."""
    if p == 2.0:
        return float(np.linalg.norm(A, 2)), True
    if p == 1.0:
        return float(np.max(np.linalg.norm(A, axis=0))), True
    d = A.shape[1]
    if d <= _ENUM_MAX_D:
        signs = np.array(list(itertools.product((-1.0, 1.0), repeat=d - 1))).reshape(-1, d - 1)
        signs = np.concatenate([np.ones((len(signs), 1)), signs], axis=1)  # sigma and -sigma: same norm
        return float(np.max(np.linalg.norm(signs @ A.T, axis=1))), True
    return float(np.sqrt(np.sum(np.sum(np.abs(A), axis=1) ** 2))), False


def score_perturbation_norm(W, y: int, gamma: float, norm=2) -> tuple[float, bool]:
    """sup_{||delta||_p <= gamma} ||(W - 1 w_y^T) delta||_2 for linear scores, and whether it is exact.

    Exact for p = 1 (largest column norm), p = 2 (spectral norm) and p = inf with d <= 16 (sign-vector
    enumeration, 2^(d-1) products); for p = inf and d > 16 the upper bound sqrt(sum_i ||row_i||_1^2).
    """
    W = np.asarray(W, dtype=np.float64)
    p = _check_norm(norm, "score_perturbation_norm")
    gamma = check_positive(gamma, "gamma", "score_perturbation_norm", allow_zero=True)
    if not isinstance(y, numbers.Integral) or not 0 <= int(y) < W.shape[0]:
        raise TheoryError(f"The 'y' parameter of score_perturbation_norm must be a class index in [0, {W.shape[0]}).")
    A = W - W[int(y)][None, :]
    val, exact = _op_norm_to_2(A, p)
    return gamma * val, exact


def smooth_adversarial_comp_sum_loss(W, b, x, labels, tau: float, gamma: float, *, nu: float | None = None,
                                     norm=2) -> np.ndarray:
    """l~ = l^tau(h, x, y) + nu * gamma * ||W - 1 w_y^T||_{p->2} per sample, for h(x) = W x + b.

    nu defaults to comp_sum_lipschitz(tau) (required explicitly for tau < 1, where no finite constant makes
    l~ an upper bound of the adversarial comp-sum loss). Returns an (m,) array.
    """
    tau = check_tau(tau, "smooth_adversarial_comp_sum_loss")
    W, b, x = _check_linear(W, b, x, "smooth_adversarial_comp_sum_loss")
    gamma = check_positive(gamma, "gamma", "smooth_adversarial_comp_sum_loss", allow_zero=True)
    if nu is None:
        nu = comp_sum_lipschitz(tau)
        if not np.isfinite(nu):
            raise TheoryError("smooth_adversarial_comp_sum_loss needs an explicit 'nu' for tau < 1 (nu_tau is infinite).")
    nu = check_positive(nu, "nu", "smooth_adversarial_comp_sum_loss", allow_zero=True)
    n = W.shape[0]
    y = check_labels(labels, (x.shape[0],), n, "smooth_adversarial_comp_sum_loss")
    per_class = np.array([score_perturbation_norm(W, k, gamma, norm)[0] for k in range(n)])
    return comp_sum_loss(x @ W.T + b, y, tau) + nu * per_class[y]


def adversarial_zero_one_loss(W, b, x, labels, gamma: float, *, norm=2, ties: str = "error") -> np.ndarray:
    """Exact adversarial 0-1 loss of linear scores h(x) = W x + b over the ball ||x' - x||_p <= gamma.

    ties="error" (default): 1 iff some x' has h(x', y) <= max_{y' != y} h(x', y') (a tie counts as an error),
    i.e. iff min_{y' != y} (h_y - h_y')(x) - gamma ||w_y - w_y'||_q <= 0 (q the dual exponent).
    ties="argmax": 1 iff some x' has argmax h(x') != y with ties broken towards the smallest index (as
    numpy.argmax), i.e. iff some y' has worst margin < 0, or = 0 with y' < y; at gamma = 0 this is the
    ordinary 0-1 loss 1[argmax h(x) != y]. The minimum of a linear function over the ball is attained, so
    both tests are exact. Returns an (m,) float array of 0/1.
    """
    W, b, x = _check_linear(W, b, x, "adversarial_zero_one_loss")
    p = _check_norm(norm, "adversarial_zero_one_loss")
    gamma = check_positive(gamma, "gamma", "adversarial_zero_one_loss", allow_zero=True)
    if ties not in ("error", "argmax"):
        raise TheoryError(f"The 'ties' parameter of adversarial_zero_one_loss must be 'error' or 'argmax'. Got {ties!r}.")
    n = W.shape[0]
    y = check_labels(labels, (x.shape[0],), n, "adversarial_zero_one_loss")
    q = {1.0: np.inf, 2.0: 2.0, np.inf: 1.0}[p]
    scores = x @ W.T + b
    margin = scores[np.arange(len(y)), y][:, None] - scores  # (m, n)
    diff = W[y][:, None, :] - W[None, :, :]  # (m, n, d)
    worst = margin - gamma * np.linalg.norm(diff, ord=q, axis=2) if gamma > 0 else margin
    worst[np.arange(len(y)), y] = np.inf
    if ties == "error":
        return (worst.min(axis=1) <= 0).astype(np.float64)
    lower = np.arange(n)[None, :] < y[:, None]
    return np.any((worst < 0) | ((worst == 0) & lower), axis=1).astype(np.float64)
