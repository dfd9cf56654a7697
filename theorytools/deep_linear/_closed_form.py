"""Closed-form and ODE results of Saxe, McClelland & Ganguli (ICLR 2014, arXiv:1312.6120).

Conventions (as in the paper): correlations are *sums* over the P examples,
Sigma11 = sum_mu x x^T, Sigma31 = sum_mu y x^T; inputs whitened (Sigma11 = I) unless stated;
tau = 1/lambda with lambda the learning rate of the batch rule (eq 1); t counts full-batch
iterations. ``s`` is a singular value of Sigma31 and u = a*b (three-layer) or u = prod_i a_i (deep)
the strength of the corresponding input-output mode.
"""

from __future__ import annotations

import numpy as np
from scipy import integrate

from theorytools.errors import TheoryError
from theorytools.deep_linear import _validation as val

__all__ = [
    "mode_strength",
    "learning_time",
    "half_learning_time",
    "deep_mode_rhs",
    "deep_learning_time",
    "deep_mode_strength",
    "infinite_depth_learning_time",
    "conserved_quantity",
    "mode_energy",
    "energy",
    "mode_flow",
    "best_rank_approximation",
]


def mode_strength(t: np.ndarray | float, s: np.ndarray | float, u0: np.ndarray | float,
                  tau: float = 1.0) -> np.ndarray:
    """Balanced three-layer mode strength u(t), eq 12: u = s e^{2st/tau} / (e^{2st/tau} - 1 + s/u0).

    Evaluated in the overflow-free form s / (1 + (s/u0 - 1) e^{-2st/tau}); for s = 0 the limit
    u0 / (1 + 2 u0 t / tau) of eq 10 is returned. Arguments broadcast; t in iterations.
    """
    f = "mode_strength"
    t = val.positive_array(t, "t", f, allow_zero=True)
    s = val.positive_array(s, "s", f, allow_zero=True)
    u0 = val.positive_array(u0, "u0", f)
    tau = val.positive_float(tau, "tau", f)
    s_safe = np.where(s > 0, s, 1.0)
    with np.errstate(over="ignore"):
        logistic = s_safe / (1.0 + (s_safe / u0 - 1.0) * np.exp(-2.0 * s_safe * t / tau))
    return np.where(s > 0, logistic, u0 / (1.0 + 2.0 * u0 * t / tau))


def _check_same_side(s: np.ndarray, u0: np.ndarray, uf: np.ndarray, func: str) -> None:
    if np.any(u0 == s) or np.any(uf == s) or np.any((u0 < s) != (uf < s)):
        raise TheoryError(
            f"The 'u0' and 'uf' parameters of {func} must lie on the same side of s and differ "
            "from s (the fixed point u = s is reached only as t -> infinity)."
        )


def learning_time(s: np.ndarray | float, u0: np.ndarray | float, uf: np.ndarray | float,
                  tau: float = 1.0) -> np.ndarray:
    """Time (iterations) for a balanced mode to go from u0 to uf, eq 11:
    t = (tau / 2s) ln[ uf (s - u0) / (u0 (s - uf)) ]. Exact inverse of eq 12."""
    f = "learning_time"
    s = val.positive_array(s, "s", f)
    u0 = val.positive_array(u0, "u0", f)
    uf = val.positive_array(uf, "uf", f)
    tau = val.positive_float(tau, "tau", f)
    s, u0, uf = np.broadcast_arrays(s, u0, uf)
    _check_same_side(s, u0, uf, f)
    return tau / (2.0 * s) * np.log(uf * (s - u0) / (u0 * (s - uf)))


def half_learning_time(s: np.ndarray | float, u0: np.ndarray | float, tau: float = 1.0) -> np.ndarray:
    """Time at which u(t) = s/2 (eq 11 with uf = s/2): t_1/2 = (tau / 2s) ln(s/u0 - 1)."""
    f = "half_learning_time"
    s = val.positive_array(s, "s", f)
    u0 = val.positive_array(u0, "u0", f)
    tau = val.positive_float(tau, "tau", f)
    if np.any(u0 >= s / 2):
        raise TheoryError(f"The 'u0' parameter of {f} must be < s/2. Got u0/s = "
                          f"{np.max(u0 / s)!r} instead.")
    return tau / (2.0 * s) * np.log(s / u0 - 1.0)


def deep_mode_rhs(u: np.ndarray | float, s: float, n_layers: int, tau: float = 1.0) -> np.ndarray:
    """du/dt of a balanced mode in a net with N_l layers (N_l - 1 weight matrices), eq 15:
    tau du/dt = (N_l - 1) u^{2 - 2/(N_l - 1)} (s - u). N_l = 3 gives eq 10."""
    f = "deep_mode_rhs"
    n_layers = val.positive_int(n_layers, "n_layers", f, minimum=2)
    u = val.positive_array(u, "u", f, allow_zero=True)
    tau = val.positive_float(tau, "tau", f)
    k = n_layers - 1
    return k * u ** (2.0 - 2.0 / k) * (s - u) / tau


def _smooth_part(c: float, x0: float, xf: float) -> float:
    """int_{x0}^{xf} (1 - y^c) / (1 - y) dy (bounded, smooth integrand; value c at y = 1)."""

    def g(y: float) -> float:
        if y == 1.0:
            return c
        return -np.expm1(c * np.log(y)) / (1.0 - y)

    pts = [1.0] if min(x0, xf) < 1.0 < max(x0, xf) else None
    val_, _ = integrate.quad(g, x0, xf, points=pts, epsabs=0.0, epsrel=1e-13, limit=200)
    return val_


def _check_depth_args(s, u0, uf, n_layers, tau, f: str) -> tuple:
    """Validated ``(s, u0, uf, n_layers, tau)`` for the depth-dependent learning times (eq 15-17)."""
    s = val.positive_float(s, "s", f)
    u0 = val.positive_float(u0, "u0", f)
    uf = val.positive_float(uf, "uf", f)
    n_layers = val.positive_int(n_layers, "n_layers", f, minimum=2)
    tau = val.positive_float(tau, "tau", f)
    _check_same_side(np.asarray(s), np.asarray(u0), np.asarray(uf), f)
    return s, u0, uf, n_layers, tau


def deep_learning_time(s: float, u0: float, uf: float, n_layers: int, tau: float = 1.0) -> float:
    """Time (iterations) for a balanced mode of an N_l-layer net to go from u0 to uf under eq 15.

    t = tau/(N_l-1) * s^{-p} * int_{x0}^{xf} x^{-p} / (1 - x) dx with p = 2 - 2/(N_l-1), x = u/s.
    The integrand is split as x^{-p} + x^{1-p} + 1/(1-x) - (1 - x^c)/(1-x), c = 2 - p; the first
    three parts are integrated in closed form and the last (bounded, smooth) by adaptive quadrature,
    so the result is accurate to ~1e-13 relative even for u0 -> 0 or uf -> s.
    """
    s, u0, uf, n_layers, tau = _check_depth_args(s, u0, uf, n_layers, tau, "deep_learning_time")
    k = n_layers - 1
    p = 2.0 - 2.0 / k
    c = 2.0 - p
    x0, xf = u0 / s, uf / s
    if abs(1.0 - p) < 1e-15:
        first = np.log(xf / x0)
    else:
        first = (xf ** (1.0 - p) - x0 ** (1.0 - p)) / (1.0 - p)
    second = (xf ** c - x0 ** c) / c
    third = -np.log(abs(1.0 - xf) / abs(1.0 - x0))
    total = first + second + third - _smooth_part(c, x0, xf)
    return float(tau / k * s ** (-p) * total)


def deep_mode_strength(t: np.ndarray | float, s: float, u0: float, n_layers: int,
                       tau: float = 1.0, rtol: float = 1e-10) -> np.ndarray:
    """Balanced mode strength u(t) of an N_l-layer net: numerical solution of eq 15.

    Integrated in v = ln u with scipy's DOP853 (rtol as given, atol = rtol * 1e-2); t in iterations.
    """
    f = "deep_mode_strength"
    t = val.positive_array(t, "t", f, allow_zero=True)
    s = val.positive_float(s, "s", f)
    u0 = val.positive_float(u0, "u0", f)
    n_layers = val.positive_int(n_layers, "n_layers", f, minimum=2)
    tau = val.positive_float(tau, "tau", f)
    k = n_layers - 1
    p = 2.0 - 2.0 / k

    def rhs(_t: float, v: np.ndarray) -> np.ndarray:
        u = np.exp(v)
        return k * u ** (p - 1.0) * (s - u) / tau

    tt = np.atleast_1d(t).ravel()
    if tt.max() == 0.0:
        return np.full(np.shape(t), u0)
    sol = integrate.solve_ivp(rhs, (0.0, float(tt.max())), [np.log(u0)], method="DOP853",
                              rtol=rtol, atol=rtol * 1e-2, dense_output=True)
    if not sol.success:  # pragma: no cover - DOP853 on a scalar monotone ODE
        raise TheoryError(f"deep_mode_strength: ODE solver failed ({sol.message}).")
    return np.exp(sol.sol(tt)[0]).reshape(np.shape(t))


def infinite_depth_learning_time(s: float, u0: float, uf: float, n_layers: int,
                                 tau: float = 1.0) -> float:
    """Learning time of the N_l -> infinity dynamics tau du/dt = N_l u^2 (s - u) (eq 16), eq 17:
    t = (tau/N_l) [ (1/s^2) ln( uf (u0 - s) / (u0 (uf - s)) ) + 1/(s u0) - 1/(s uf) ]."""
    s, u0, uf, n_layers, tau = _check_depth_args(s, u0, uf, n_layers, tau, "infinite_depth_learning_time")
    bracket = np.log(uf * (u0 - s) / (u0 * (uf - s))) / s**2 + 1.0 / (s * u0) - 1.0 / (s * uf)
    return float(tau / n_layers * bracket)


def conserved_quantity(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """a^2 - b^2, conserved by the continuous-time mode dynamics eq 8 (scaling symmetry)."""
    return np.asarray(a, dtype=np.float64) ** 2 - np.asarray(b, dtype=np.float64) ** 2


def mode_energy(a: np.ndarray | float, b: np.ndarray | float, s: np.ndarray | float,
                tau: float = 1.0) -> np.ndarray:
    """Energy of one decoupled mode, eq 9: E(a, b) = (s - ab)^2 / (2 tau)."""
    tau = val.positive_float(tau, "tau", "mode_energy")
    a, b, s = (np.asarray(v, dtype=np.float64) for v in (a, b, s))
    return (s - a * b) ** 2 / (2.0 * tau)


def energy(w21: np.ndarray, w32: np.ndarray, sigma31: np.ndarray, tau: float = 1.0) -> float:
    """Energy of the three-layer net with whitened inputs, eq 6.

    E = (1/2tau) sum_a (s_a - a^a.b^a)^2 + (1/2tau) sum_{a != b} (a^a.b^b)^2, which equals
    (1/2tau) ||Sigma31 - W32 W21||_F^2 because the change of variables (eq 4) is orthogonal.
    Shapes: w21 (N2, N1), w32 (N3, N2), sigma31 (N3, N1).
    """
    f = "energy"
    w21, w32, sigma31 = val.chained(w21, w32, sigma31, f)
    tau = val.positive_float(tau, "tau", f)
    r = sigma31 - w32 @ w21
    return float(np.sum(r * r) / (2.0 * tau))


def mode_flow(a0: float, b0: float, s: float, t: np.ndarray, tau: float = 1.0,
              rtol: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
    """Numerical solution of the scalar mode dynamics eq 8, tau da/dt = b(s - ab),
    tau db/dt = a(s - ab), at times t (iterations). Returns (a(t), b(t))."""
    f = "mode_flow"
    s = val.positive_float(s, "s", f, allow_zero=True)
    tau = val.positive_float(tau, "tau", f)
    tt = val.positive_array(t, "t", f, allow_zero=True).ravel()

    def rhs(_t: float, y: np.ndarray) -> np.ndarray:
        a, b = y
        e = s - a * b
        return np.array([b * e, a * e]) / tau

    sol = integrate.solve_ivp(rhs, (0.0, float(tt.max()) if tt.size else 0.0),
                              [float(a0), float(b0)], method="DOP853", rtol=rtol,
                              atol=rtol * 1e-3, dense_output=True)
    y = sol.sol(tt)
    return y[0], y[1]


def best_rank_approximation(sigma31: np.ndarray, rank: int) -> tuple[np.ndarray, float]:
    """Stable fixed point of eq 2 with whitened inputs, eq 7: W32 W21 = sum_{a<=N2} s_a u_a v_a^T.

    Returns (W_tot, loss) where loss = sum_{a > N2} s_a^2 = ||Sigma31 - W_tot||_F^2 is the
    batch squared error sum_mu ||y - W x||^2 minus its irreducible part (Eckart-Young).
    """
    f = "best_rank_approximation"
    sigma31 = val.matrix(sigma31, "sigma31", f)
    rank = val.positive_int(rank, "rank", f)
    u, s, vt = np.linalg.svd(sigma31, full_matrices=False)
    r = min(rank, s.size)
    w = (u[:, :r] * s[:r]) @ vt[:r]
    return w, float(np.sum(s[r:] ** 2))
