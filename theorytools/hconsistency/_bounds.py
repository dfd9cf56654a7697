"""Error transformation T_tau and bound Gamma_tau = T_tau^{-1} for comp-sum losses.

Mao, Mohri, Zhong (ICML 2023, arXiv:2304.07288), theorem on comp-sum H-consistency bounds for symmetric
and complete hypothesis sets. With kappa = 1/(2 - tau) and the power mean
M_kappa(t) = (((1 + t)^kappa + (1 - t)^kappa)/2)^(1/kappa):

    tau in [0, 1):  T(t) = 2^(1-tau)/(1-tau) * (1 - M_kappa(t))
    tau = 1:        T(t) = (1+t)/2 log(1+t) + (1-t)/2 log(1-t)
    tau in (1, 2):  T(t) = (M_kappa(t) - 1)/((tau - 1) n^(tau-1))
    tau = 2:        T(t) = t/n

and R_01(h) - R*_01(H) + M_01(H) <= Gamma_tau(R_l(h) - R*_l(H) + M_l(H)).
Derivation (ours, theory.md D.1 [DERIVED]): T(t) lower-bounds the minimal conditional regret of l^tau
among scores whose prediction has 0-1 conditional regret t; tight for n = 2, n-free for tau <= 1.

Numerics: for kappa <= 3/2 (tau <= 4/3) all quantities are written as
T = c * exprel(L) * Q * log1prel(D), with D = mean((1 +- t)^kappa) - 1 = (kappa - 1) Q,
Q = mean((1 +- t) log(1 +- t) exprel((kappa - 1) log(1 +- t))), L = log1p(D)/kappa = log M_kappa,
c = 2^(1-tau) (tau <= 1) or n^(1-tau) (tau > 1): no division by (1 - tau), exact at tau = 1.
For kappa > 3/2 log M_kappa is evaluated with expm1 or log-sum-exp (no overflow as tau -> 2).
A 3-term binomial series in t^2 is used for very small t (no cancellation).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq

from theorytools.errors import TheoryError

from ._validate import check_n, check_tau, exprel, log1prel

_SMALL_T = 1e-3


def _binom_series(t2: np.ndarray, kappa: float, drop_factor: bool) -> np.ndarray:
    """sum_{k=1..3} binom(kappa, 2k) t^(2k), divided by (kappa - 1) when drop_factor."""
    k = kappa
    a1 = k / 2.0 if drop_factor else k * (k - 1) / 2.0
    a2 = k * (k - 2) * (k - 3) / 24.0 if drop_factor else k * (k - 1) * (k - 2) * (k - 3) / 24.0
    a3 = a2 * (k - 4) * (k - 5) / 30.0
    return t2 * (a1 + t2 * (a2 + t2 * a3))


def _q_near_one(t: np.ndarray, kappa: float) -> np.ndarray:
    """Q = (mean((1 +- t)^kappa) - 1)/(kappa - 1), exact limit at kappa = 1."""
    with np.errstate(all="ignore"):
        terms = []
        for sgn in (1.0, -1.0):
            base = 1.0 + sgn * t
            lb = np.log1p(np.where(base > 0, sgn * t, 0.0))
            term = base * lb * exprel((kappa - 1.0) * lb)
            terms.append(np.where(base > 0, term, 0.0))
        direct = 0.5 * (terms[0] + terms[1])
    series = _binom_series(t * t, kappa, drop_factor=True)
    return np.where(t < _SMALL_T, series, direct)


def _log_power_mean(t: np.ndarray, kappa: float) -> np.ndarray:
    """log M_kappa(t) for kappa > 1 without overflow."""
    with np.errstate(all="ignore"):
        a = kappa * np.log1p(t)
        b = kappa * np.log1p(-t)
        d_exp = 0.5 * (np.expm1(a) + np.expm1(b))
        via_expm1 = np.log1p(d_exp) / kappa
        via_lse = (np.logaddexp(a, b) - np.log(2.0)) / kappa
        series = np.log1p(_binom_series(t * t, kappa, drop_factor=False)) / kappa
    out = np.where(a < 700.0, via_expm1, via_lse)
    return np.where(kappa * t < _SMALL_T, series, out)


def _T_unchecked(t: np.ndarray, tau: float, n: int) -> np.ndarray:
    if tau == 2.0:
        return t / n
    kappa = 1.0 / (2.0 - tau)
    if kappa <= 1.5:
        c = 2.0 ** (1.0 - tau) if tau <= 1.0 else float(n) ** (1.0 - tau)
        q = _q_near_one(t, kappa)
        d = (kappa - 1.0) * q
        L = np.log1p(d) / kappa
        return c * exprel(L) * q * log1prel(d)
    L = _log_power_mean(t, kappa)
    return np.expm1(L) / ((tau - 1.0) * float(n) ** (tau - 1.0))


def error_transform(t, tau: float, n: int = 2) -> np.ndarray:
    """T_tau(t) for t in [0, 1]: lower bound on the comp-sum conditional regret at 0-1 regret t.

    Symmetric & complete H (Mao et al. 2023). n (number of classes) matters only for tau > 1.
    T_tau is convex, increasing, T_tau(0) = 0; T_0(t) = 1 - sqrt(1 - t^2), T_1(1) = log 2, T_2 = t/n.
    Tightness (measured by tight_error_transform): attained for every n when tau <= 1. For tau in (1, 2)
    and n >= 3 it is valid but loose, by (n/2)^(tau-1) where the two-class distribution is the minimiser
    (e.g. tau = 1.5: 2.236 at n = 10), by less close to tau = 2; T_2 = t/n is attained only for
    t <= 1/(n-1). Use tight_error_transform(t, tau, n).looseness for the factor at given (t, tau, n).
    """
    tau = check_tau(tau, "error_transform")
    n = check_n(n, "error_transform")
    t_arr = np.asarray(t, dtype=np.float64)
    if not np.all((t_arr >= 0) & (t_arr <= 1)):
        raise TheoryError(
            f"The 't' parameter of error_transform must lie in [0, 1]. Got values in "
            f"[{np.nanmin(t_arr)}, {np.nanmax(t_arr)}] instead."
        )
    out = _T_unchecked(t_arr, tau, n)
    return out if np.ndim(out) else float(out)


def error_transform_at_one(tau: float, n: int = 2) -> float:
    """T_tau(1): (2^(1-tau) - 1)/(1 - tau) for tau < 1, log 2 at 1, (2^(tau-1) - 1)/((tau-1) n^(tau-1)) above."""
    return float(error_transform(1.0, tau, n))


def gamma_transform(s, tau: float, n: int = 2, *, xtol: float = 1e-300) -> np.ndarray:
    """Gamma_tau(s) = T_tau^{-1}(s), by bracketed root finding (Brent) on [0, 1], capped at 1.

    Gamma_tau(s) = 0 for s <= 0 and 1 for s >= T_tau(1). Closed forms: Gamma_0(s) = sqrt(2s - s^2),
    Gamma_2(s) = n s (until capped).
    """
    tau = check_tau(tau, "gamma_transform")
    n = check_n(n, "gamma_transform")
    s_arr = np.asarray(s, dtype=np.float64)
    if np.any(np.isnan(s_arr)):
        raise TheoryError("The 's' parameter of gamma_transform must not contain NaN.")
    flat = s_arr.ravel()
    out = np.empty_like(flat)
    top = float(_T_unchecked(np.array(1.0), tau, n))
    for i, si in enumerate(flat):
        if si <= 0:
            out[i] = 0.0
        elif si >= top:
            out[i] = 1.0
        elif tau == 2.0:
            out[i] = min(1.0, n * si)
        else:
            f = lambda x, si=si: float(_T_unchecked(np.array(x), tau, n)) - si  # noqa: E731
            out[i] = brentq(f, 0.0, 1.0, xtol=xtol, rtol=4 * np.finfo(float).eps, maxiter=500)
    out = out.reshape(s_arr.shape)
    return out if out.ndim else float(out)


def small_t_coefficient(tau: float, n: int = 2) -> float:
    """c with T_tau(t) = c t^2 + O(t^4): 2^(1-tau)/(2(2-tau)) for tau <= 1, 1/(2(2-tau) n^(tau-1)) for
    1 < tau < 2 (and T_2 is linear: returns nan for tau = 2)."""
    tau = check_tau(tau, "small_t_coefficient")
    n = check_n(n, "small_t_coefficient")
    if tau == 2.0:
        return float("nan")
    c = 2.0 ** (1.0 - tau) if tau <= 1.0 else float(n) ** (1.0 - tau)
    return c / (2.0 * (2.0 - tau))
