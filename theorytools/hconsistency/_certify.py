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


def _tau0_lemmas(z3):
    """The four n-free lemmas of the tau = 0 proof, as (hypotheses, conclusion) builders (u = 1/s, v = 1/sum)."""

    def l1(p0, p1, s0, s1, u0, u1, v):  # p0/s0 + p1/s1 >= 2(p0 + p1)/(s0 + s1) when p0 >= p1, s0 <= s1
        return [p0 >= p1, p1 >= 0, s0 > 0, s0 <= s1, u0 * s0 == 1, u1 * s1 == 1, v * (s0 + s1) == 1], \
            p0 * u0 + p1 * u1 >= 2 * (p0 + p1) * v

    def l2(a, b, x, y, ux, uy, v):  # a^2/x + b^2/y >= (a + b)^2/(x + y)  (Cauchy-Schwarz / Sedrakyan)
        return [x > 0, y > 0, ux * x == 1, uy * y == 1, v * (x + y) == 1], a * a * ux + b * b * uy >= (a + b) * (a + b) * v

    def l3(r0, r1, g, R):  # g = sqrt(2(r0^2 + r1^2)) >= r0 + r1 gives (g+R)^2 - (r0+r1+R)^2 >= (r0-r1)^2
        return [r0 >= 0, r1 >= 0, g >= 0, R >= 0, g * g == 2 * (r0 * r0 + r1 * r1)], \
            (g + R) * (g + R) - (r0 + r1 + R) * (r0 + r1 + R) >= (r0 - r1) * (r0 - r1)

    def l4(r0, r1, w):  # (sqrt p0 - sqrt p1)^2 >= 1 - sqrt(1 - t^2) when p0 + p1 <= 1, t = p0 - p1
        t = r0 * r0 - r1 * r1
        return [r0 >= r1, r1 >= 0, r0 * r0 + r1 * r1 <= 1, w >= 0, w * w == 1 - t * t], (r0 - r1) * (r0 - r1) >= 1 - w

    return {"L1": (l1, 7), "L2": (l2, 7), "L3": (l3, 4), "L4": (l4, 3)}


def _certify_tau0_lemma_chain(n: int, timeout_ms: int) -> tuple[bool, str, dict]:
    """tau = 0 for any n: four n-free lemmas proved by Z3 (QF_NRA, negation unsat), then their instances
    composed in linear real arithmetic over atoms (unsat = the claim holds for this n).

    With r = sqrt p, u = 1/s, p0 >= p1 (class 0 most likely, prediction 1 so s0 <= s1 = max s):
    sum p/s >= 2(p0+p1)/(s0+s1) + sum_{i>=2} p_i/s_i [L1] >= (g + R)^2 [L2 applied n-2 times, sum s = 1],
    g = sqrt(2(p0+p1)), R = sum_{i>=2} r_i; (g+R)^2 - (sum r)^2 >= (r0-r1)^2 [L3] >= 1 - sqrt(1-t^2) [L4].
    Every instance's hypotheses are domain constraints (p, s in the simplex, p0 >= p1, s0 <= s1, r, g,
    w >= 0 with their defining squares). Atoms (nonlinear terms as opaque reals): T_i = p_i/s_i,
    Q = (p0+p1)/(s0+s1), S_m = (g + r_2 + ... + r_m)^2/(s_0 + ... + s_m), G = (g+R)^2, H = (sum r)^2,
    D = (r0-r1)^2, w = sqrt(1-t^2); identities S_1 = 2Q (g^2 = 2(p0+p1)) and G = S_{n-1} (sum s = 1).
    """
    import z3

    details: dict = {"lemmas": {}}
    for name, (lem, k) in _tau0_lemmas(z3).items():
        xs = z3.Reals(" ".join(f"x{i}" for i in range(k)))
        hyps, concl = lem(*xs)
        sol = z3.SolverFor("QF_NRA")
        sol.set("timeout", int(timeout_ms))
        sol.add(*hyps, z3.Not(concl))
        res = sol.check()
        details["lemmas"][name] = str(res)
        if res != z3.unsat:
            return False, f"unknown (lemma {name}: {res})", details
    T = [z3.Real(f"T{i}") for i in range(n)]
    S = [None] + [z3.Real(f"S{m}") for m in range(1, n)]
    Q, G, H, D, w = z3.Reals("Q G H D w")
    sol = z3.SolverFor("QF_LRA")
    sol.set("timeout", int(timeout_ms))
    sol.add(T[0] + T[1] >= 2 * Q, S[1] == 2 * Q)  # L1; g^2 = 2(p0 + p1)
    sol.add(*[S[m - 1] + T[m] >= S[m] for m in range(2, n)])  # L2 instances
    sol.add(G == S[n - 1], G - H >= D, D >= 1 - w)  # sum s = 1; L3; L4
    sol.add(z3.Sum(T) - H < 1 - w)  # negated claim: sum p/s - (sum sqrt p)^2 < 1 - sqrt(1 - t^2)
    res = sol.check()
    details["composition"] = str(res)
    if res == z3.unsat:
        return True, "proved (lemma chain: 4 lemmas + linear composition unsat)", details
    return False, f"unknown (composition: {res})", details


def certify_bound_z3(n: int, tau: float, *, timeout_ms: int = 60_000, method: str = "auto") -> CertificationResult:
    """Prove C_tau(h) - C*_tau(p) >= T_tau(max p - p_h(x)) for ALL p and all scores (tau in {0, 2}).

    tau = 2: C = 1 - sum p s, C* = 1 - max p, T = t/n. tau = 0: C = sum p/s - 1,
    C* = (sum sqrt p)^2 - 1, T = 1 - sqrt(1 - t^2). s = softmax(h) ranges over the open simplex with
    s_1 >= s_j (prediction 1). method: 'direct' (one QF_NRA query on the negated claim; for tau = 0 it
    proves n = 2 only, n >= 3 times out) or 'lemmas' (tau = 0 only: see _certify_tau0_lemma_chain, proves
    every n in well under a second); 'auto' = 'lemmas' for tau = 0, 'direct' for tau = 2.
    """
    import z3

    tau = check_tau(tau, "certify_bound_z3")
    n = check_n(n, "certify_bound_z3")
    if tau not in (0.0, 2.0):
        raise TheoryError(f"The 'tau' parameter of certify_bound_z3 must be 0 or 2 (algebraic cases). Got {tau} instead.")
    if method not in ("auto", "direct", "lemmas") or (method == "lemmas" and tau != 0.0):
        raise TheoryError(f"The 'method' parameter of certify_bound_z3 must be 'auto', 'direct' or (tau = 0) 'lemmas'. Got {method!r} instead.")
    t0 = time.perf_counter()
    if tau == 0.0 and method in ("auto", "lemmas"):
        ok, status, details = _certify_tau0_lemma_chain(n, timeout_ms)
        return CertificationResult("z3-lemmas", tau, n, ok, status, seconds=time.perf_counter() - t0, details=details)
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
