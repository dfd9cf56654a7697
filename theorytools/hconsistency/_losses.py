"""Comp-sum losses l^tau (Mao, Mohri, Zhong 2023, arXiv:2304.07288; section not confirmed) from scores.

Convention: scores h of shape (..., n); p = softmax(h); labels are integer class indices.
l^tau(h, x, y) = Phi^tau( sum_{y' != y} exp(h_y' - h_y) ) with
Phi^tau(u) = ((1 + u)^(1 - tau) - 1)/(1 - tau) (tau != 1), log(1 + u) (tau = 1).
Since 1 + u = 1/p_y: l^tau = (p_y^(tau-1) - 1)/(1 - tau), i.e. tau = 0 sum-exponential 1/p_y - 1,
tau = 1 logistic -log p_y, tau in (1, 2) generalised cross-entropy (1 - p_y^q)/q with q = tau - 1,
tau = 2 mean absolute error 1 - p_y. Everything is evaluated from L = log p_y (log-sum-exp), as
l^tau = -L * exprel((tau - 1) L), which is exact and continuous in tau (no 0/0 at tau = 1).
"""

from __future__ import annotations

import numpy as np

from ._validate import check_labels, check_prob, check_scores, check_tau, exprel


def log_softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax of scores (..., n), by log-sum-exp."""
    m = np.max(scores, axis=-1, keepdims=True)
    z = scores - m
    return z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))


def phi_tau(u, tau: float) -> np.ndarray:
    """Phi^tau(u) = int_0^u (1+v)^(-tau) dv for u >= 0 (the comp-sum outer function)."""
    tau = check_tau(tau, "phi_tau")
    u = np.asarray(u, dtype=np.float64)
    if np.any(u < 0):
        from theorytools.errors import TheoryError

        raise TheoryError("The 'u' parameter of phi_tau must be >= 0. Got a negative entry instead.")
    lu = np.log1p(u)
    return lu * exprel((1.0 - tau) * lu)


def _loss_from_logp(logp_y: np.ndarray, tau: float) -> np.ndarray:
    # l = (p^(tau-1) - 1)/(1 - tau) = -L * exprel((tau-1) L), L = log p_y <= 0
    with np.errstate(over="ignore", invalid="ignore"):
        out = -logp_y * exprel((tau - 1.0) * logp_y)
    return np.where(logp_y == 0, 0.0, out)


def comp_sum_loss(scores, labels, tau: float, *, return_grad: bool = False):
    """Comp-sum loss l^tau per sample (Mao et al. 2023, eq. for l^tau_comp).

    Parameters
    ----------
    scores : array (..., n) of real scores h(x, .).
    labels : int array (...) of true classes.
    tau : float in [0, 2] (0 sum-exponential, 1 logistic, (1, 2) GCE, 2 MAE).
    return_grad : also return d l / d scores, shape (..., n).

    Returns the losses (...) and, if requested, the gradient
    d l/d h_k = -p_y^(tau - 1) (1[k = y] - p_k).
    """
    tau = check_tau(tau, "comp_sum_loss")
    h = check_scores(scores, "comp_sum_loss")
    n = h.shape[-1]
    y = check_labels(labels, h.shape[:-1], n, "comp_sum_loss")
    logp = log_softmax(h)
    logp_y = np.take_along_axis(logp, y[..., None], axis=-1)[..., 0]
    loss = _loss_from_logp(logp_y, tau)
    if not return_grad:
        return loss
    p = np.exp(logp)
    with np.errstate(over="ignore"):
        w = np.exp((tau - 1.0) * logp_y)  # p_y^(tau-1)
    onehot = np.zeros_like(p)
    np.put_along_axis(onehot, y[..., None], 1.0, axis=-1)
    grad = -w[..., None] * (onehot - p)
    return loss, grad


def conditional_risk(scores, p, tau: float) -> np.ndarray:
    """Conditional risk C_tau(h, x) = sum_y p(y|x) l^tau(h, x, y); scores and p of shape (..., n)."""
    tau = check_tau(tau, "conditional_risk")
    h = check_scores(scores, "conditional_risk")
    p = check_prob(p, "conditional_risk")
    if p.shape[-1] != h.shape[-1]:
        from theorytools.errors import TheoryError

        raise TheoryError(
            f"The 'p' parameter of conditional_risk must have n = {h.shape[-1]} classes like 'scores'. "
            f"Got {p.shape[-1]} instead."
        )
    losses = _loss_from_logp(log_softmax(h), tau)
    return np.sum(np.where(p > 0, p * losses, 0.0), axis=-1)


def zero_one_conditional_regret(scores, p) -> np.ndarray:
    """max_y p_y - p_{h(x)} with h(x) = argmax_y h(x, y) (ties: smallest index, as numpy.argmax)."""
    h = check_scores(scores, "zero_one_conditional_regret")
    p = check_prob(p, "zero_one_conditional_regret")
    pred = np.argmax(h, axis=-1)
    return np.max(p, axis=-1) - np.take_along_axis(p, pred[..., None], axis=-1)[..., 0]


__all__ = ["comp_sum_loss", "conditional_risk", "log_softmax", "phi_tau", "zero_one_conditional_regret"]
