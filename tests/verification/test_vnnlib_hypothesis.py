"""Property test: random small VNN-LIB formulas (and / or / chained comparisons over X and Y with random
decimals); the parsed property's exact membership must agree with a direct exact evaluation of the formula."""

import math
import random
from fractions import Fraction as F

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verification.errors import PropertyFormatError
from verification.vnnlib import parse_vnnlib

OPS = ["<=", ">=", "<", ">", "="]
HEAD = "(declare-const X_0 Real)(declare-const X_1 Real)(declare-const Y_0 Real)(declare-const Y_1 Real)\n"


# ------------------------------------------------------------------ formulas as trees: (text, evaluator, constants)
@st.composite
def decimals(draw):
    m, k = draw(st.integers(-25, 25)), draw(st.integers(0, 3))
    style = draw(st.sampled_from(["dec", "sci", "frac"]))
    if style == "sci":
        return f"{m}e-{k}", F(m, 10**k)
    if style == "frac" and m:
        return f"(/ {m} {10**k})", F(m, 10**k)
    s = f"{abs(m) / 10**k:.{k}f}" if k else str(abs(m))
    return ("-" if m < 0 else "") + s, F(m, 10**k)


@st.composite
def x_terms(draw):
    """A term over one input variable: v, (* c v), (- v), (+ v c)."""
    i = draw(st.integers(0, 1))
    v = (f"X_{i}", lambda x, y, i=i: x[i])
    shape = draw(st.integers(0, 3))
    if shape == 1:
        c, cv = draw(decimals())
        return f"(* {c} {v[0]})", lambda x, y, cv=cv, i=i: cv * x[i]
    if shape == 2:
        return f"(- {v[0]})", lambda x, y, i=i: -x[i]
    if shape == 3:
        c, cv = draw(decimals())
        return f"(+ {v[0]} {c})", lambda x, y, cv=cv, i=i: x[i] + cv
    return v


def y_terms():
    leaf = st.one_of(
        st.integers(0, 1).map(lambda j: (f"Y_{j}", lambda x, y, j=j: y[j])),
        decimals().map(lambda d: (d[0], lambda x, y, v=d[1]: v)),
    )

    def extend(children):
        pair = st.tuples(children, children)
        return st.one_of(
            pair.map(lambda p: (f"(+ {p[0][0]} {p[1][0]})", lambda x, y, a=p[0][1], b=p[1][1]: a(x, y) + b(x, y))),
            pair.map(lambda p: (f"(- {p[0][0]} {p[1][0]})", lambda x, y, a=p[0][1], b=p[1][1]: a(x, y) - b(x, y))),
            st.tuples(decimals(), children).map(
                lambda p: (f"(* {p[0][0]} {p[1][0]})", lambda x, y, c=p[0][1], b=p[1][1]: c * b(x, y))),
        )

    return st.recursive(leaf, extend, max_leaves=4)


def holds(op: str, a: F, b: F) -> bool:
    return {"<=": a <= b, ">=": a >= b, "<": a < b, ">": a > b, "=": a == b}[op]


def comparison(op, terms):
    text = f"({op} {' '.join(t for t, _ in terms)})"
    fns = [f for _, f in terms]
    return text, lambda x, y: all(holds(op, a(x, y), b(x, y)) for a, b in zip(fns, fns[1:]))


@st.composite
def atoms(draw):
    op = draw(st.sampled_from(OPS))
    kind = draw(st.sampled_from(["in", "in-rev", "out", "out", "out", "out-chain", "out-chain", "const"]))
    d = draw(decimals())
    num = (d[0], lambda x, y, v=d[1]: v)
    if kind == "in":
        return comparison(op, [draw(x_terms()), num])
    if kind == "in-rev":
        return comparison(op, [num, draw(x_terms())])
    if kind == "out":
        return comparison(op, [draw(y_terms()), draw(y_terms())])
    if kind == "out-chain":
        return comparison(op, [draw(y_terms()), num, draw(y_terms())])
    e = draw(decimals())
    return comparison(op, [num, (e[0], lambda x, y, v=e[1]: v)])


def formulas():
    leaf = st.one_of(atoms(), st.just(("true", lambda x, y: True)), st.just(("false", lambda x, y: False)))

    def extend(children):
        kids = st.lists(children, min_size=1, max_size=3)
        return st.one_of(
            kids.map(lambda ks: (f"(and {' '.join(t for t, _ in ks)})", lambda x, y, fs=[f for _, f in ks]: all(f(x, y) for f in fs))),
            kids.map(lambda ks: (f"(or {' '.join(t for t, _ in ks)})", lambda x, y, fs=[f for _, f in ks]: any(f(x, y) for f in fs))),
        )

    return st.recursive(leaf, extend, max_leaves=6)


@st.composite
def properties(draw):
    box = []
    for i in range(2):
        (a, av), (b, bv) = draw(decimals()), draw(decimals())
        if av > bv:
            (a, av), (b, bv) = (b, bv), (a, av)
        box.append(((a, av), (b, bv)))
    text, fn = draw(formulas())
    asserts = "".join(f"(assert (>= X_{i} {lo[0]}))(assert (<= X_{i} {hi[0]}))" for i, (lo, hi) in enumerate(box))
    return HEAD + asserts + f"(assert {text})", box, fn, draw(st.integers(0, 2**32))


def boundary_point(rng: random.Random, p, plain: list) -> list | None:
    """Outputs on the boundary of a random row of the parsed property (only a way to pick test points: the
    verdict comes from the independent evaluator)."""
    rows = [(r, b) for reg in p.regions for oc in reg.outputs for r, b in zip(oc.A_exact, oc.b_exact)]
    if not rows:
        return None
    (a0, a1), b = rng.choice(rows)
    if a1:
        y0 = rng.choice(plain)
        return [y0, (b - a0 * y0) / a1]
    return [b / a0, rng.choice(plain)]


def candidates(rng: random.Random, box, text: str, p):
    """Float inputs at / next to every decimal of the text and exact outputs from its constants or on the
    boundary of a row."""
    consts = {F(0)}
    for tok in text.replace("(", " ").replace(")", " ").split():
        try:
            consts.add(F(tok))
        except ValueError:
            pass
    plain = sorted(consts)
    consts |= {a / b for a in list(consts) for b in list(consts) if b}
    xs = set()
    for c in consts:
        f = float(c)
        xs |= {f, math.nextafter(f, -math.inf), math.nextafter(f, math.inf)}
    near = [[v for v in sorted(xs) if float(lo[1]) - 1e-9 <= v <= float(hi[1]) + 1e-9] for lo, hi in box]
    ys = sorted(consts)
    for _ in range(60):
        x = [rng.choice(nb) if nb and rng.random() < 0.8 else rng.uniform(float(lo[1]) - 0.1, float(hi[1]) + 0.1)
             for nb, (lo, hi) in zip(near, box)]
        y = boundary_point(rng, p, plain) if p is not None and rng.random() < 0.5 else None
        yield x, y or [rng.choice(plain if rng.random() < 0.5 else ys) for _ in range(2)]


def exact_box(box, x) -> bool:
    return all(lo[1] <= F(v) <= hi[1] for (lo, hi), v in zip(box, x))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(properties())
def test_parsed_membership_matches_direct_exact_evaluation(prop):
    text, box, fn, seed = prop
    try:
        p = parse_vnnlib(text)
    except PropertyFormatError as exc:
        assert "contradictory" in str(exc), str(exc)
        p = None
    for x, y in candidates(random.Random(seed), box, text, p):
        expected = exact_box(box, x) and fn([F(v) for v in x], y)
        got = p is not None and p.is_violated_exactly(x, y)
        assert got == expected, (text, x, y)
