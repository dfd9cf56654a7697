"""Brute-force and certified checks of T_tau(0-1 regret) <= comp-sum conditional regret.

For given p and a predicted class k, the smallest conditional regret over complete H among scores with
argmax k is a convex problem in s = softmax(h) over {s in simplex : s_j <= s_k}. Its solution (ours, by
the KKT conditions, checked against scipy in the tests) pools k with the largest other classes while they
exceed the running mean ("pool adjacent violators"): with p~ equal to p except that the pooled set A gets
mean_A(p), the minimum is C*_tau(p~) - C*_tau(p).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

from theorytools.errors import TheoryError

from ._bounds import _T_unchecked
from ._losses import _loss_from_logp, log_softmax
from ._risk import _cstar
from ._validate import check_n, check_prob, check_tau


def _pooled(p: np.ndarray, k: np.ndarray) -> np.ndarray:
    P = p.reshape(-1, p.shape[-1])
    k = np.broadcast_to(k, P.shape[:1]).astype(np.intp)
    m, n = P.shape
    rows = np.arange(m)
    pk = P[rows, k]
    others = P.copy()
    others[rows, k] = -np.inf
    order = np.argsort(-others, axis=1)[:, : n - 1]
    srt = np.take_along_axis(others, order, axis=1)
    means = (pk[:, None] + np.concatenate([np.zeros((m, 1)), np.cumsum(srt, axis=1)], axis=1)) / np.arange(1, n + 1)
    msize = np.argmax(means, axis=1)  # number of other classes pooled with k
    pbar = means[rows, msize]
    out = P.copy()
    out[rows, k] = pbar
    pooled = np.arange(n - 1)[None, :] < msize[:, None]
    np.put_along_axis(out, order, np.where(pooled, pbar[:, None], srt), axis=1)
    return out.reshape(p.shape)


def min_conditional_regret(p, pred, tau: float) -> np.ndarray:
    """inf over complete-H scores with argmax = pred of C_tau(h, x) - C*_tau(p) (exact, pooled form)."""
    tau = check_tau(tau, "min_conditional_regret")
    p = check_prob(p, "min_conditional_regret")
    k = np.asarray(pred)
    if not np.issubdtype(k.dtype, np.integer) or np.any(k < 0) or np.any(k >= p.shape[-1]):
        raise TheoryError(f"The 'pred' parameter of min_conditional_regret must be class indices in [0, {p.shape[-1]}).")
    pt = _pooled(p, k.reshape(-1) if k.ndim else k)
    out = np.maximum(_cstar(pt, tau) - _cstar(p, tau), 0.0)
    return out if np.ndim(out) else float(out)


def _risk_and_grad(h: np.ndarray, p: np.ndarray, tau: float):
    logp = log_softmax(h)
    s = np.exp(logp)
    losses = _loss_from_logp(logp, tau)
    w = p * np.exp((tau - 1.0) * logp)  # p_y s_y^(tau-1)
    val = float(np.sum(np.where(p > 0, p * losses, 0.0)))
    grad = -w + w.sum() * s
    return val, grad


def min_conditional_regret_numeric(p, pred: int, tau: float, *, bound: float = 40.0, n_starts: int = 3, seed: int = 0) -> float:
    """Brute force: minimise C_tau(h) - C*_tau(p) over h with h_pred = 0 >= h_j >= -bound (L-BFGS-B)."""
    tau = check_tau(tau, "min_conditional_regret_numeric")
    p = check_prob(p, "min_conditional_regret_numeric")
    if p.ndim != 1:
        raise TheoryError("The 'p' parameter of min_conditional_regret_numeric must be one vector (n,).")
    n = p.size
    free = [j for j in range(n) if j != pred]
    rng = np.random.default_rng(seed)

    def fun(z):
        h = np.zeros(n)
        h[free] = z
        v, g = _risk_and_grad(h, p, tau)
        return v, g[free]

    best = np.inf
    starts = [np.zeros(n - 1)] + [-rng.uniform(0, 3, n - 1) for _ in range(n_starts - 1)]
    for z0 in starts:
        res = minimize(fun, z0, jac=True, method="L-BFGS-B", bounds=[(-bound, 0.0)] * (n - 1),
                       options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 5000})
        best = min(best, float(res.fun))
    return best - float(_cstar(p, tau))


@dataclass(frozen=True)
class BoundCheck:
    """Result of a randomized check of C_tau(h) - C*_tau(p) >= T_tau(max p - p_h(x))."""

    tau: float
    n: int
    n_samples: int
    violations: int
    """Samples where the regret of the sampled h fell below T_tau (beyond 1e-12)."""
    min_slack: float
    """min over samples of regret(h) - T_tau(0-1 regret of h)."""
    min_slack_exact: float
    """min over samples of (exact minimal regret at that prediction) - T_tau; 0 up to rounding for n = 2."""
    max_rel_gap_exact: float
    """max over samples of (exact minimal regret - T)/T: 0 means T is attained (tight)."""
    seconds: float = field(default=0.0)


def check_bound(n: int, tau: float, *, n_samples: int = 300, seed: int = 0, alpha: float = 1.0, score_scale: float = 3.0) -> BoundCheck:
    """Sample p ~ Dirichlet(alpha) and scores h ~ N(0, score_scale^2), keep pairs with a wrong
    prediction, and compare the conditional regret of h (and the exact minimum at that prediction)
    with T_tau(max p - p_h(x))."""
    tau = check_tau(tau, "check_bound")
    n = check_n(n, "check_bound")
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    ps, hs = [], []
    while sum(len(x) for x in ps) < n_samples:
        p = rng.dirichlet(np.full(n, alpha), size=2 * n_samples)
        h = rng.normal(0, score_scale, size=p.shape)
        wrong = p[np.arange(len(p)), h.argmax(1)] < p.max(1)
        ps.append(p[wrong])
        hs.append(h[wrong])
    p = np.concatenate(ps)[:n_samples]
    h = np.concatenate(hs)[:n_samples]
    pred = h.argmax(1)
    t = p.max(1) - p[np.arange(n_samples), pred]
    T = _T_unchecked(t, tau, n)
    reg = np.sum(np.where(p > 0, p * _loss_from_logp(log_softmax(h), tau), 0.0), axis=1) - _cstar(p, tau)
    exact = _cstar(_pooled(p, pred), tau) - _cstar(p, tau)
    slack = reg - T
    with np.errstate(all="ignore"):
        rel = np.where(T > 1e-12, (exact - T) / T, 0.0)
    return BoundCheck(tau=tau, n=n, n_samples=n_samples, violations=int(np.sum(slack < -1e-12)),
                      min_slack=float(slack.min()), min_slack_exact=float((exact - T).min()),
                      max_rel_gap_exact=float(rel.max()), seconds=time.perf_counter() - t0)
