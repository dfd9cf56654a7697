"""VNN-LIB properties as our own small AST: written to text, encoded in Z3 and evaluated exactly from the
same AST (never parsed back with the toolkit's reader).

Formula: ``("and", [F...])``, ``("or", [F...])``, ``("cmp", op, T, T)`` with op in ``<= < >= > =``.
Term: ``("X", i)``, ``("Y", j)``, ``("num", text)``, ``("+", [T...])``, ``("-", [T...])``, ``("*", text, T)``.
Numbers keep their text; their value "as written" is ``Fraction(text)`` (exact decimal)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import numpy as np

OPS = ("<=", "<", ">=", ">", "=")


def num_text(v: float, style: int = 0) -> str:
    """A float as VNN-LIB text: 0 = shortest repr, 1 = 6 significant digits, 2 = exact decimal of the float."""
    v = float(v)
    if v == 0:
        return "0.0"
    if style == 1:
        return f"{v:.6g}" if "e" not in f"{v:.6g}" else repr(float(f"{v:.6g}"))
    if style == 2:
        return format(Decimal(v), "f")
    r = repr(v)
    return r


def neg_text(t: str) -> str:
    return t[1:] if t.startswith("-") else "-" + t


class Prop:
    def __init__(self, n_in: int, n_out: int, asserts: list, kind: str = "", note: str = ""):
        self.n_in, self.n_out, self.asserts = n_in, n_out, asserts
        self.kind, self.note = kind, note
        self.expect = None  # optional known answer ("holds"/"violated") from construction

    # ------------------------------------------------------------------ text
    def text(self, declare_order=None, header: str = "") -> str:
        out = [header] if header else []
        out += [f"(declare-const X_{i} Real)" for i in range(self.n_in)]
        out += [f"(declare-const Y_{j} Real)" for j in range(self.n_out)]
        for a in self.asserts:
            out.append(f"(assert {ftext(a)})")
        return "\n".join(out) + "\n"

    # ------------------------------------------------------------------ exact semantics
    def holds_at(self, x: list, y: list):
        """Does ``(x, y)`` satisfy every assert (the unsafe condition)?  ``x``/``y``: Fractions (exact) or
        Decimals (then a comparison closer than 1e-40 is undecidable -> returns None)."""
        from decimal import localcontext

        from nets import DEC_CTX

        dec = any(isinstance(v, Decimal) for v in y)
        if dec:
            x = [Decimal(v) if isinstance(v, float) else Decimal(v.numerator) / Decimal(v.denominator) for v in x]
        else:
            x = [Fraction(v) for v in x]
        env = {"X": x, "Y": y}
        with localcontext(DEC_CTX):
            vals = [fval(a, env) for a in self.asserts]
        if any(v is False for v in vals):
            return False
        if any(v is None for v in vals):
            return None
        return True

    def in_box(self, x: list):
        """Input constraints only (the unsafe output part taken as true)."""
        env = {"X": [Fraction(v) for v in x], "Y": None}
        vals = [fval(a, env, inputs_only=True) for a in self.asserts]
        return all(v is not False for v in vals)

    def z3(self, z3, xs, ys):
        return z3.And([fz3(z3, a, xs, ys) for a in self.asserts])

    def hull(self):
        """Bounding box of all input constraints (Fractions); assumes atoms ``X_i op num``."""
        lo = [None] * self.n_in
        hi = [None] * self.n_in
        for a in self.asserts:
            _collect_bounds(a, lo, hi)
        return lo, hi

    def boxes(self):
        """The list of input boxes, for sampling (each disjunct of a top-level 'or' of input boxes)."""
        return self._boxes


def _collect_bounds(f, lo, hi):
    if f[0] in ("and", "or"):
        for g in f[1]:
            _collect_bounds(g, lo, hi)
        return
    if f[0] == "chain":
        return
    _, op, a, b = f
    coef = Fraction(1)
    if a[0] == "*" and a[2][0] == "X":  # (op (* c X_i) num): X_i op' num / c
        coef, a = Fraction(a[1]), a[2]
        if coef < 0:
            op = {"<=": ">=", "<": ">", ">=": "<=", ">": "<", "=": "="}[op]
    if a[0] == "X" and b[0] == "num":
        i, v = a[1], Fraction(b[1]) / coef
        if op in ("<=", "<", "="):
            hi[i] = v if hi[i] is None else max(hi[i], v)
        if op in (">=", ">", "="):
            lo[i] = v if lo[i] is None else min(lo[i], v)


def ttext(t) -> str:
    k = t[0]
    if k in ("X", "Y"):
        return f"{k}_{t[1]}"
    if k == "num":
        return t[1]
    if k == "*":
        return f"(* {t[1]} {ttext(t[2])})"
    return f"({k} {' '.join(ttext(s) for s in t[1])})"


def ftext(f) -> str:
    if f[0] in ("and", "or"):
        return f"({f[0]} {' '.join(ftext(g) for g in f[1])})"
    if f[0] == "chain":
        return f"({f[1]} {' '.join(ttext(t) for t in f[2])})"
    return f"({f[1]} {ttext(f[2])} {ttext(f[3])})"


def tval(t, env):
    k = t[0]
    if k in ("X", "Y"):
        v = env[k]
        if v is None:
            raise LookupError
        return v[t[1]]
    if k == "num":
        return _lit(t[1], env)
    if k == "*":
        return _lit(t[1], env) * tval(t[2], env)
    vals = [tval(s, env) for s in t[1]]
    if k == "+":
        return sum(vals[1:], vals[0])
    if len(vals) == 1:
        return -vals[0]
    return vals[0] - sum(vals[2:], vals[1])


def _lit(text, env):
    dec = env.get("_dec")
    return Decimal(text) if dec else Fraction(text)


def _unchain(f):
    return ("and", [("cmp", f[1], a, b) for a, b in zip(f[2][:-1], f[2][1:])])


def fval(f, env, inputs_only=False):
    if f[0] == "chain":
        return fval(_unchain(f), env, inputs_only)
    if f[0] == "and":
        vals = [fval(g, env, inputs_only) for g in f[1]]
        if any(v is False for v in vals):
            return False
        return None if any(v is None for v in vals) else True
    if f[0] == "or":
        vals = [fval(g, env, inputs_only) for g in f[1]]
        if any(v is True for v in vals):
            return True
        return None if any(v is None for v in vals) else False
    _, op, a, b = f
    try:
        dec = any(isinstance(v, Decimal) for v in (env.get("Y") or []))
        env2 = dict(env, _dec=dec)
        lhs, rhs = tval(a, env2), tval(b, env2)
    except LookupError:
        return True if inputs_only else None
    if dec:
        if isinstance(lhs, Fraction):
            lhs = Decimal(lhs.numerator) / Decimal(lhs.denominator)
        if isinstance(rhs, Fraction):
            rhs = Decimal(rhs.numerator) / Decimal(rhs.denominator)
        if abs(lhs - rhs) <= Decimal("1e-40") * (1 + abs(lhs) + abs(rhs)):
            return None
    return {"<=": lhs <= rhs, "<": lhs < rhs, ">=": lhs >= rhs, ">": lhs > rhs, "=": lhs == rhs}[op]


def tz3(z3, t, xs, ys):
    k = t[0]
    if k == "X":
        return xs[t[1]]
    if k == "Y":
        return ys[t[1]]
    if k == "num":
        f = Fraction(t[1])
        return z3.Q(f.numerator, f.denominator)
    if k == "*":
        f = Fraction(t[1])
        return z3.Q(f.numerator, f.denominator) * tz3(z3, t[2], xs, ys)
    vals = [tz3(z3, s, xs, ys) for s in t[1]]
    if k == "+":
        return z3.Sum(vals)
    if len(vals) == 1:
        return -vals[0]
    return vals[0] - z3.Sum(vals[1:])


def fz3(z3, f, xs, ys):
    if f[0] == "chain":
        return fz3(z3, _unchain(f), xs, ys)
    if f[0] == "and":
        return z3.And([fz3(z3, g, xs, ys) for g in f[1]])
    if f[0] == "or":
        return z3.Or([fz3(z3, g, xs, ys) for g in f[1]])
    _, op, a, b = f
    l, r = tz3(z3, a, xs, ys), tz3(z3, b, xs, ys)
    return {"<=": l <= r, "<": l < r, ">=": l >= r, ">": l > r, "=": l == r}[op]


# =========================================================================== generation
def X(i):
    return ("X", i)


def Y(j):
    return ("Y", j)


def N(text):
    return ("num", text)


def cmp(op, a, b):
    return ("cmp", op, a, b)


def box_atoms(lo_txt: list, hi_txt: list) -> list:
    out = []
    for i, (l, h) in enumerate(zip(lo_txt, hi_txt)):
        out.append(cmp(">=", X(i), N(l)))
        out.append(cmp("<=", X(i), N(h)))
    return out


def float_constants(prop) -> bool:
    """Are all numbers of the property exactly float64 values (so float parsing loses nothing)?"""
    import re

    for tok in re.findall(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", prop.text()):
        if Fraction(tok) != Fraction(float(tok)):
            return False
    return True


def scaled_box_atoms(rng, lo_txt: list, hi_txt: list) -> list:
    """The same box written with coefficients: ``(<= (* c X_i) c*hi)`` where ``c*hi`` is written to a few
    digits, so the exact bound ``text / c`` is (usually) not a float64: a counterexample at the float
    rounding of the bound can lie outside the box as written."""
    out = []
    for i, (l, h) in enumerate(zip(lo_txt, hi_txt)):
        c = str(rng.choice(["3", "0.1", "-7", "1e-3", "10"]))
        cf = Fraction(c)
        lo_b, hi_b = Fraction(l) * cf, Fraction(h) * cf
        lt, ht = repr(float(lo_b)), repr(float(hi_b))
        if cf > 0:
            out += [cmp(">=", ("*", c, X(i)), N(lt)), cmp("<=", ("*", c, X(i)), N(ht))]
        else:
            out += [cmp("<=", ("*", c, X(i)), N(lt)), cmp(">=", ("*", c, X(i)), N(ht))]
    return out


def random_box(rng, n_in: int, center_scale=1.0, huge=False, dyadic=False):
    """Box texts (as written) and their float values for sampling."""
    lo_t, hi_t = [], []
    for _ in range(n_in):
        if dyadic:
            c = int(rng.integers(-8, 9)) / 8
            r = float(rng.choice([0.125, 0.25, 0.5, 1.0]))
            lo_t.append(repr(c - r))
            hi_t.append(repr(c + r))
            continue
        if huge:
            c, r = 0.0, 1e6
        else:
            c = float(rng.uniform(-1, 1)) * center_scale
            r = float(rng.choice([1e-3, 0.05, 0.3, 1.0])) * center_scale
        style = int(rng.integers(3))
        lt, ht = num_text(c - r, style if style != 2 else 1), num_text(c + r, style if style != 2 else 1)
        if Fraction(lt) > Fraction(ht):
            lt, ht = ht, lt
        lo_t.append(lt)
        hi_t.append(ht)
    return lo_t, hi_t


def sample_box(rng, lo_t, hi_t, n) -> np.ndarray:
    lo = np.array([float(Fraction(t)) for t in lo_t])
    hi = np.array([float(Fraction(t)) for t in hi_t])
    X_ = lo + (hi - lo) * rng.random((n, lo.size))
    X_ = np.vstack([X_, lo + (hi - lo) * rng.integers(0, 2, size=(min(2 ** lo.size, 64), lo.size))])
    # keep inside the box as written (float rounding of the text)
    return np.clip(X_, lo, hi), lo, hi


def output_constraint(rng, n_out: int, stats: dict, ops=None):
    """A random unsafe output condition whose threshold comes from the sampled range so that about half of
    the properties hold.  ``stats[j] = (min, max)`` of sampled outputs."""
    ops = ops or OPS[:4]
    kind = int(rng.integers(5))
    j = int(rng.integers(n_out))
    lo, hi = stats[j]
    span = (hi - lo) or max(abs(hi), 1e-30)
    op = str(rng.choice(ops))
    style = int(rng.integers(3))
    if kind <= 1:  # Y_j vs threshold near an end of the range
        if op in ("<=", "<"):
            t = lo + span * float(rng.uniform(-0.15, 0.1))
        else:
            t = hi - span * float(rng.uniform(-0.15, 0.1))
        return cmp(op, Y(j), N(num_text(t, style)))
    if kind == 2 and n_out > 1:  # Y_i vs Y_j
        i = int(rng.choice([k for k in range(n_out) if k != j]))
        return cmp(op, Y(i), Y(j))
    if kind == 3 and n_out > 1:  # linear combination
        i = int(rng.choice([k for k in range(n_out) if k != j]))
        a = str(rng.choice(["2", "0.5", "-1", "3", "0.1", "1e-3"]))
        li, hi_i = stats[i]
        cand = [float(Fraction(a)) * v + w for v in (li, hi_i) for w in (lo, hi)]
        t = float(rng.uniform(min(cand), max(cand)))
        return cmp(op, ("+", [("*", a, Y(i)), Y(j)]), N(num_text(t, style)))
    if rng.random() < 0.3:
        # chained comparison (<= a Y_j b): a <= Y_j and Y_j <= b
        a_ = lo + span * float(rng.uniform(-0.1, 0.4))
        b_ = a_ + span * float(rng.uniform(0.0, 0.3))
        return ("chain", "<=", [N(num_text(a_, style)), Y(j), N(num_text(b_, style))])
    # disjunction of two threshold conditions
    k = int(rng.integers(n_out))
    lk, hk = stats[k]
    spk = (hk - lk) or max(abs(hk), 1e-30)
    a1 = cmp(str(rng.choice(["<=", "<"])), Y(j), N(num_text(lo + span * float(rng.uniform(-0.2, 0.05)), style)))
    a2 = cmp(str(rng.choice([">=", ">"])), Y(k), N(num_text(hk - spk * float(rng.uniform(-0.2, 0.05)), style)))
    return ("or", [a1, a2])
