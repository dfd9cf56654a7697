"""Numerical tight error transformation T*_tau,n(t) and the looseness of the paper's T_tau for tau in (1, 2).

T*_tau,n(t) = inf { C*_tau(p~) - C*_tau(p) : p in the n-simplex, prediction k with max p - p_k = t }, where
p~ is the pooled vector of min_conditional_regret (exact minimal regret at prediction k). It is the best
possible transformation for symmetric complete H; the paper's T_tau <= T*_tau,n.

We minimise over the family (ours, found by search; NOT proved to contain the minimiser)

    p = (a, c, ..., c [j copies], b, 0, ..., 0),  b = a - t,  c = x a,  x in [0, 1],  j = 0..n-2,

with a = (1 + t)/(2 + j x) from sum p = 1 and b >= 0. Per j this is a 1-D problem in x (grid, then
golden-section refinement on the grid minimiser's bracket). Every returned value is the exact regret of an
explicit distribution, so it is an upper bound on T*_tau,n(t) (up to float rounding); it equals T*_tau,n
wherever the family contains a minimiser. The tests compare it against random and structured search over
the whole simplex and L-BFGS multistarts (no sample ever fell below it).

Measured (tests): for tau <= 1 the minimum is j = 0 (the two-class distribution) and equals the paper's
T_tau (tight for all n); at tau = 2 it is j = n - 2, x = 1 and equals t/n (tight). For tau in (1, 2) and
tau not close to 2 (e.g. tau = 1.5 for n <= 10 at t in [0.05, 0.95]) the minimum is again j = 0, i.e. the
n = 2 expression 2^(1-tau) (M_kappa(t) - 1)/(tau - 1), so the paper's T_tau is loose by exactly
(n/2)^(tau - 1) (2.236 at tau = 1.5, n = 10). Closer to tau = 2, c near a (x ~ 0.96) with j >= 1 wins and
the factor is smaller than (n/2)^(tau - 1) but still > 1 (e.g. 1.06 at tau = 1.95, n = 3, t = 0.3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from theorytools.errors import TheoryError

from ._bounds import _T_unchecked
from ._cstar import _cstar
from ._validate import check_n, check_tau

_GOLD = (np.sqrt(5.0) - 1.0) / 2.0


def _family_regret(t: float, tau: float, j: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Exact minimal regret (prediction = b) of p = (a, c x j, b), c = x a, a = (1+t)/(2+jx); j, x broadcast."""
    j = np.asarray(j, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    j, x = np.broadcast_arrays(j, x)
    a = (1.0 + t) / (2.0 + j * x)
    b = np.maximum(a - t, 0.0)
    c = x * a
    lv = np.stack([a, c, b], axis=-1)
    w = np.stack([np.ones_like(j), j, np.ones_like(j)], axis=-1)
    # pooling: b pools with a (mean (a+b)/2); the j copies of c join iff c > (a+b)/2, then all
    # j + 2 entries share the mean 1/(j + 2) (zeros never pool).
    half = (a + b) / 2.0
    join = (j > 0) & (c > half)
    pooled_lv = np.stack([np.where(join, 1.0 / (j + 2.0), half), np.where(join, 0.0, c)], axis=-1)
    pooled_w = np.stack([np.where(join, j + 2.0, 2.0), np.where(join, 0.0, j)], axis=-1)
    return np.maximum(_cstar(pooled_lv, tau, pooled_w) - _cstar(lv, tau, w), 0.0)


def _x_max(t: float, j: np.ndarray) -> np.ndarray:
    """Largest x with b = a - t >= 0 (and x <= 1); 0 for j = 0."""
    with np.errstate(divide="ignore"):
        xm = np.minimum(1.0, ((1.0 + t) / t - 2.0) / np.where(j > 0, j, 1.0))
    return np.where(j > 0, xm, 0.0)


def _min_over_family(t: float, tau: float, n: int, grid: int) -> tuple[float, int, float]:
    """min over j = 0..n-2 and x in [0, x_max(j)]: grid, then golden section on each j's bracket."""
    j = np.arange(n - 1, dtype=np.float64)
    xm = _x_max(t, j)
    xs = xm[:, None] * np.linspace(0.0, 1.0, grid)[None, :]
    vals = _family_regret(t, tau, j[:, None], xs)
    i = np.argmin(vals, axis=1)
    rows = np.arange(n - 1)
    best_v, best_x = vals[rows, i], xs[rows, i]
    lo, hi = xs[rows, np.maximum(i - 1, 0)], xs[rows, np.minimum(i + 1, grid - 1)]
    x1, x2 = hi - _GOLD * (hi - lo), lo + _GOLD * (hi - lo)
    f1, f2 = _family_regret(t, tau, j, x1), _family_regret(t, tau, j, x2)
    for _ in range(60):
        left = f1 <= f2  # minimiser in [lo, x2]
        lo, hi = np.where(left, lo, x1), np.where(left, x2, hi)
        x1n = np.where(left, hi - _GOLD * (hi - lo), x2)
        x2n = np.where(left, x1, lo + _GOLD * (hi - lo))
        fx = _family_regret(t, tau, j, np.where(left, x1n, x2n))
        f1, f2 = np.where(left, fx, f2), np.where(left, f1, fx)
        x1, x2 = x1n, x2n
    for fv, xv in ((f1, x1), (f2, x2)):
        better = fv < best_v
        best_v, best_x = np.where(better, fv, best_v), np.where(better, xv, best_x)
    k = int(np.argmin(best_v))  # first (smallest j) on ties
    return float(best_v[k]), k, float(best_x[k])


@dataclass(frozen=True)
class TightTransform:
    """Numerical tight transformation T*_tau,n(t) vs the paper's T_tau(t) at one t."""

    t: float
    tau: float
    n: int
    paper: float
    """The paper's T_tau(t) (error_transform): a proved lower bound on T*_tau,n(t)."""
    value: float
    """min over the search family: the exact regret of `argmin_p`, hence >= T*_tau,n(t) (= where the
    family holds a minimiser, as measured; not proved)."""
    looseness: float
    """value / paper (1 where the paper's T is tight; (n/2)^(tau-1) when the two-class p is optimal)."""
    argmin_p: tuple
    """The distribution (a, c, ..., c, b, 0, ...) attaining `value`; prediction = index j + 1."""
    j: int
    """Number of classes at the middle level c."""

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def tight_error_transform(t: float, tau: float, n: int, *, grid: int = 513) -> TightTransform:
    """T*_tau,n(t): smallest conditional regret of l^tau at 0-1 regret t over n-class distributions.

    Minimises over the family p = (a, c x j, b, 0...) (see module docstring); O(n grid) work. The paper's
    T_tau(t) <= T*_tau,n(t) <= value; `looseness` = value / T_tau(t) measures how loose the paper's
    n-dependent T_tau is for tau in (1, 2) (1 up to rounding for tau <= 1 and tau = 2).
    """
    tau = check_tau(tau, "tight_error_transform")
    n = check_n(n, "tight_error_transform")
    if not isinstance(grid, int) or grid < 3:
        raise TheoryError(f"The 'grid' parameter of tight_error_transform must be an int >= 3. Got {grid!r} instead.")
    t = float(t)
    if not (0.0 < t <= 1.0):
        raise TheoryError(f"The 't' parameter of tight_error_transform must lie in (0, 1]. Got {t!r} instead.")
    v, j, x = _min_over_family(t, tau, n, grid)
    a = (1.0 + t) / (2.0 + j * x)
    p = (a,) + (x * a,) * j + (max(a - t, 0.0),) + (0.0,) * (n - 2 - j)
    paper = float(_T_unchecked(np.array(t), tau, n))
    return TightTransform(t=t, tau=tau, n=n, paper=paper, value=float(v), looseness=float(v) / paper,
                          argmin_p=tuple(float(q) for q in p), j=int(j))


def tight_gamma_estimate(s: float, tau: float, n: int, *, grid: int = 257) -> float:
    """Inverse of the numerical tight transform at s (Brent on t): the best bound Gamma*_tau,n(s) could be.

    Since `value` >= T*_tau,n, this is <= Gamma*_tau,n(s) = T*^{-1}(s); it is NOT a proved bound unless the
    search family holds the minimiser. Capped at 1; 0 for s <= 0.
    """
    tau = check_tau(tau, "tight_gamma_estimate")
    n = check_n(n, "tight_gamma_estimate")
    s = float(s)
    if s <= 0.0:
        return 0.0
    f = lambda tt: tight_error_transform(tt, tau, n, grid=grid).value - s  # noqa: E731
    if f(1.0) <= 0.0:
        return 1.0
    return float(brentq(f, 1e-12, 1.0, xtol=1e-12, rtol=1e-12, maxiter=200))
