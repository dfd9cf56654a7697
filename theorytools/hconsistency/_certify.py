"""Certified checks of 'minimal comp-sum conditional regret >= T_tau(0-1 regret)'.

* certify_bound_z3: a proof over the WHOLE simplex for the algebraic cases tau = 2 (MAE) and tau = 0
  (sum-exponential), by Z3 nonlinear real arithmetic on the negated claim (unsat = proved). Without loss
  of generality (symmetric H) the most likely class is 0 and the prediction is 1.
* certify_bound_interval: rigorous evaluation on a rational grid of the simplex: for every grid point p
  and wrong prediction k, outward-rounded interval arithmetic (mpmath.iv) encloses the exact minimal
  regret (pooled closed form, pooling decided in exact rational arithmetic) and T_tau(t). A point is
  'proved' when the regret enclosure lies above the T enclosure; 'tight' when they overlap (expected
  where the bound is attained, e.g. n = 2 or tau <= 1 on faces); 'violated' would be a counterexample.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from fractions import Fraction

from theorytools.errors import TheoryError

from ._validate import check_n, check_tau


@dataclass(frozen=True)
class CertificationResult:
    """Outcome of a certified check."""

    method: str
    tau: float
    n: int
    certified: bool
    """True iff no counterexample was possible: Z3 unsat, or no grid point 'violated' (interval)."""
    status: str
    proved: int = 0
    tight: int = 0
    violated: int = 0
    seconds: float = 0.0
    details: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def certify_bound_z3(n: int, tau: float, *, timeout_ms: int = 60_000) -> CertificationResult:
    """Prove C_tau(h) - C*_tau(p) >= T_tau(max p - p_h(x)) for ALL p and all scores (tau in {0, 2}).

    tau = 2: C = 1 - sum p s, C* = 1 - max p, T = t/n. tau = 0: C = sum p/s - 1,
    C* = (sum sqrt p)^2 - 1, T = 1 - sqrt(1 - t^2). s = softmax(h) ranges over the open simplex with
    s_1 >= s_j (prediction 1).
    """
    import z3

    tau = check_tau(tau, "certify_bound_z3")
    n = check_n(n, "certify_bound_z3")
    if tau not in (0.0, 2.0):
        raise TheoryError(f"The 'tau' parameter of certify_bound_z3 must be 0 or 2 (algebraic cases). Got {tau} instead.")
    t0 = time.perf_counter()
    p = [z3.Real(f"p{i}") for i in range(n)]
    s = [z3.Real(f"s{i}") for i in range(n)]
    sol = z3.SolverFor("QF_NRA")
    sol.set("timeout", int(timeout_ms))
    sol.add(*[pi >= 0 for pi in p], z3.Sum(p) == 1, *[p[0] >= pj for pj in p])
    sol.add(*[si > 0 for si in s], z3.Sum(s) == 1, *[s[1] >= sj for sj in s])
    t = p[0] - p[1]
    if tau == 2.0:
        regret = p[0] - z3.Sum([pi * si for pi, si in zip(p, s)])
        sol.add(regret < t / n)
    else:
        r = [z3.Real(f"r{i}") for i in range(n)]
        u = [z3.Real(f"u{i}") for i in range(n)]  # u = 1/s
        w = z3.Real("w")  # w = sqrt(1 - t^2)
        sol.add(*[ri >= 0 for ri in r], *[ri * ri == pi for ri, pi in zip(r, p)])
        sol.add(*[ui * si == 1 for ui, si in zip(u, s)])
        sol.add(w >= 0, w * w == 1 - t * t)
        regret = z3.Sum([pi * ui for pi, ui in zip(p, u)]) - z3.Sum(r) * z3.Sum(r)
        sol.add(regret < 1 - w)
    res = sol.check()
    if res == z3.unsat:
        status = "proved (negation unsat)"
    elif res == z3.sat:
        status = "counterexample"
    else:
        status = "unknown (timeout)"
    details = {"z3_reason": sol.reason_unknown()} if res == z3.unknown else {}
    if res == z3.sat:
        details["model"] = str(sol.model())
    return CertificationResult("z3", tau, n, res == z3.unsat, status, seconds=time.perf_counter() - t0, details=details)


def _lattice(n: int, N: int):
    for c in itertools.product(range(N + 1), repeat=n - 1):
        if sum(c) <= N:
            yield [Fraction(ci, N) for ci in c] + [Fraction(N - sum(c), N)]


def certify_bound_interval(n: int, tau: float, *, grid: int = 12, prec: int = 80) -> CertificationResult:
    """Interval-arithmetic check of min-regret >= T_tau(t) at every point of the lattice {p : N p integer},
    N = grid, and every wrong prediction. tau is taken as the exact rational nearest to the float."""
    from mpmath import iv

    tau = check_tau(tau, "certify_bound_interval")
    n = check_n(n, "certify_bound_interval")
    if not isinstance(grid, int) or grid < 1:
        raise TheoryError(f"The 'grid' parameter of certify_bound_interval must be an int >= 1. Got {grid!r} instead.")
    t0 = time.perf_counter()
    iv.prec = prec
    tr = Fraction(tau).limit_denominator(10_000)
    one = iv.mpf(1)

    def ivq(q: Fraction):
        return iv.mpf(q.numerator) / q.denominator

    tau_i = ivq(tr)

    def cstar(q):  # q: list of Fractions (a probability vector)
        if tr == 2:
            return one - ivq(max(q))
        if tr == 1:
            return -sum((ivq(x) * iv.log(ivq(x)) for x in q if x > 0), iv.mpf(0))
        kappa = one / (2 - tau_i)
        z = sum((ivq(x) ** kappa for x in q if x > 0), iv.mpf(0))
        return (z ** (2 - tau_i) - one) / (one - tau_i)

    def T(t: Fraction):
        ti = ivq(t)
        if tr == 2:
            return ti / n
        if tr == 1:
            a = (one + ti) / 2 * iv.log(one + ti)
            b = (one - ti) / 2 * iv.log(one - ti) if t < 1 else iv.mpf(0)
            return a + b
        kappa = one / (2 - tau_i)
        lo = (one - ti) ** kappa if t < 1 else iv.mpf(0)
        M = (((one + ti) ** kappa + lo) / 2) ** (one / kappa)
        if tr < 1:
            return iv.mpf(2) ** (one - tau_i) / (one - tau_i) * (one - M)
        return (M - one) / ((tau_i - one) * iv.mpf(n) ** (tau_i - one))

    proved = tight = violated = 0
    worst = None
    for p in _lattice(n, grid):
        pmax = max(p)
        cs = cstar(p)
        for k in range(n):
            if p[k] == pmax:
                continue
            others = sorted((p[j] for j in range(n) if j != k), reverse=True)
            best_m, best_mean, acc = 0, p[k], p[k]
            for m, x in enumerate(others, start=1):
                acc += x
                if acc / (m + 1) > best_mean:
                    best_m, best_mean = m, acc / (m + 1)
            pt = [best_mean] * (best_m + 1) + others[best_m:]
            reg = cstar(pt) - cs
            bound = T(pmax - p[k])
            if reg.a >= bound.b:
                proved += 1
                slack = reg.a - bound.b
                if worst is None or slack < worst[0]:
                    worst = (slack, [str(x) for x in p], k)
            elif reg.b < bound.a:
                violated += 1
            else:
                tight += 1
    details = {"grid": grid, "prec_bits": prec, "tau_rational": str(tr),
               "min_certified_slack": None if worst is None else float(worst[0].mid)}
    status = "no violation on grid" if violated == 0 else "VIOLATION found"
    return CertificationResult("interval", tau, n, violated == 0, status, proved, tight, violated,
                               time.perf_counter() - t0, details)
