"""sympy closed forms of T_tau (Mao, Mohri, Zhong 2023, comp-sum theorem), inverses and small-t series."""

from __future__ import annotations

import sympy as sp

from theorytools.errors import TheoryError

from ._validate import check_n, check_tau

t_sym = sp.Symbol("t", nonnegative=True)
s_sym = sp.Symbol("s", nonnegative=True)
n_sym = sp.Symbol("n", positive=True, integer=True)


def _rational_tau(tau: float, fname: str) -> sp.Rational:
    tau = check_tau(tau, fname)
    return sp.nsimplify(tau, rational=True)


def error_transform_symbolic(tau: float, n: int | None = None) -> sp.Expr:
    """T_tau(t) as a sympy expression in t (and in the symbol n when n is None and tau > 1)."""
    tr = _rational_tau(tau, "error_transform_symbolic")
    nn = n_sym if n is None else sp.Integer(check_n(n, "error_transform_symbolic"))
    t = t_sym
    if tr == 1:
        return (1 + t) / 2 * sp.log(1 + t) + (1 - t) / 2 * sp.log(1 - t)
    if tr == 2:
        return t / nn
    if tr == 0:
        return 1 - sp.sqrt(1 - t**2)
    kappa = 1 / (2 - tr)
    M = (((1 + t) ** kappa + (1 - t) ** kappa) / 2) ** (1 / kappa)
    if tr < 1:
        return 2 ** (1 - tr) / (1 - tr) * (1 - M)
    return (M - 1) / ((tr - 1) * nn ** (tr - 1))


def gamma_symbolic(tau: float, n: int | None = None) -> sp.Expr:
    """Gamma_tau(s) = T_tau^{-1}(s) in closed form, where sympy finds one (tau = 0, 3/2, 2, ...).

    Gamma_0(s) = sqrt(2s - s^2), Gamma_{3/2}(s) = sqrt((1 + sqrt(n) s/2)^2 - 1), Gamma_2(s) = n s.
    Raises TheoryError when no closed form is found (tau = 1 has none in elementary functions).
    """
    T = error_transform_symbolic(tau, n)
    try:
        sols = sp.solve(sp.Eq(T, s_sym), t_sym)
    except NotImplementedError:
        sols = []
    good = []
    for sol in sols:
        # keep the branch that maps a small positive s to a small positive t
        val = sol.subs({s_sym: sp.Rational(1, 100), n_sym: 3})
        if val.is_real and val > 0 and val < 1:
            good.append(sp.simplify(sol))
    if not good:
        raise TheoryError(f"No closed form of Gamma_tau found by sympy for tau = {tau}; use gamma_transform.")
    return good[0]


def error_transform_series(tau: float, order: int = 6, n: int | None = None) -> sp.Expr:
    """Small-t expansion of T_tau up to (not including) t^order; leading term 2^(1-tau) t^2/(2(2-tau))
    for tau <= 1 and t^2/(2(2-tau) n^(tau-1)) for 1 < tau < 2 (theory.md D.1 [DERIVED])."""
    if not isinstance(order, int) or order < 2:
        raise TheoryError(f"The 'order' parameter of error_transform_series must be an int >= 2. Got {order!r} instead.")
    T = error_transform_symbolic(tau, n)
    return sp.series(T, t_sym, 0, order).removeO()
