"""VNN-LIB exact semantics: exact values as written, strictness per row / bound, outward and inward rounding of
boxes, exact membership at the boundary, and the builders' exact defaults."""

import math
from fractions import Fraction as F

import numpy as np
import pytest

from verification.errors import PropertyFormatError
from verification.vnnlib import InputRegion, OutputConstraint, box_property, parse_vnnlib, robustness_property

HEAD = "(declare-const X_0 Real)(declare-const X_1 Real)(declare-const Y_0 Real)(declare-const Y_1 Real)\n"
BOX = "(assert (>= X_0 -1))(assert (<= X_0 1))(assert (>= X_1 0))(assert (<= X_1 0.5))\n"


def one_constraint(body: str) -> OutputConstraint:
    (reg,) = parse_vnnlib(HEAD + BOX + body).regions
    (oc,) = reg.outputs
    return oc


@pytest.mark.parametrize(
    "body, strict",
    [
        ("(assert (< Y_0 0))", [True]),
        ("(assert (> Y_0 0))", [True]),
        ("(assert (<= Y_0 0))", [False]),
        ("(assert (>= Y_0 0))", [False]),
        ("(assert (= Y_0 0))", [False, False]),
        ("(assert (< Y_0 Y_1 0.5))", [True, True]),
        ("(assert (>= Y_0 Y_1 0.5))", [False, False]),
        ("(assert (and (< Y_0 1) (<= Y_1 2)))", [True, False]),
    ],
)
def test_strictness_is_recorded_per_row(body, strict):
    oc = one_constraint(body)
    assert oc.strict.dtype == bool and oc.strict.tolist() == strict


def test_exact_values_as_written():
    oc = one_constraint("(assert (<= Y_0 0.1))")
    assert oc.b_exact == (F(1, 10),) and oc.b[0] == 0.1
    assert oc.A_exact == ((F(1), F(0)),)
    oc = one_constraint("(assert (<= (* 3 Y_0) (- 1e-3 (/ 1 3))))")
    assert oc.b_exact == (F(1, 1000) - F(1, 3),) and oc.A_exact == ((F(3), F(0)),)
    assert oc.b[0] == float(F(1, 1000) - F(1, 3))
    oc = one_constraint("(assert (<= Y_0 0x1.999999999999ap-4))")  # hex float: exactly the float 0.1
    assert oc.b_exact == (F(0.1),)


def test_box_is_rounded_outward_and_inner_bounds_inward():
    (reg,) = parse_vnnlib(HEAD + "(assert (>= X_0 0.1))(assert (<= X_0 0.3))(assert (>= X_1 0))(assert (<= X_1 1))"
                          "(assert (<= Y_0 0))").regions
    assert reg.lower_exact[0] == F(1, 10) and reg.upper_exact[0] == F(3, 10)
    assert F(float(reg.lower[0])) <= F(1, 10) < F(0.1)  # float(0.1) lies above 1/10: lower is the float below
    assert reg.lower[0] == math.nextafter(0.1, 0) and reg.upper[0] == math.nextafter(0.3, 1)
    lo, hi = reg.inner_bounds()
    assert F(lo[0]) >= F(1, 10) and lo[0] == 0.1
    assert F(hi[0]) <= F(3, 10) and hi[0] == 0.3
    assert reg.contains_input_exact([0.1, 0.0]) and not reg.contains_input_exact([reg.lower[0], 0.0])
    assert reg.contains_input_exact([0.3, 1.0]) and not reg.contains_input_exact([reg.upper[0], 0.0])


def test_strict_input_bounds():
    (reg,) = parse_vnnlib(HEAD + "(assert (> X_0 0.5))(assert (< X_0 0.75))(assert (>= X_1 0))(assert (<= X_1 1))"
                          "(assert (<= Y_0 0))").regions
    assert reg.lower_strict.tolist() == [True, False] and reg.upper_strict.tolist() == [True, False]
    assert reg.lower.tolist() == [0.5, 0.0] and reg.upper.tolist() == [0.75, 1.0]  # closed outward box
    lo, hi = reg.inner_bounds()
    assert lo[0] == math.nextafter(0.5, 1) and hi[0] == math.nextafter(0.75, 0)
    assert not reg.contains_input_exact([0.5, 0.0]) and not reg.contains_input_exact([0.75, 0.0])
    assert reg.contains_input_exact([lo[0], 0.0]) and reg.contains_input_exact([hi[0], 1.0])


def test_no_float_inside_a_tiny_exact_interval():
    (reg,) = parse_vnnlib(HEAD + "(assert (> X_0 0.1))(assert (< X_0 0.10000000000000000001))(assert (>= X_1 0))"
                          "(assert (<= X_1 1))(assert (<= Y_0 0))").regions
    lo, hi = reg.inner_bounds()
    assert lo[0] > hi[0]  # documented: no float lies in the exact interval
    assert reg.lower[0] <= reg.upper[0]  # the outward box is still a valid (closed) box for proofs
    assert not any(reg.contains_input_exact([v, 0.5]) for v in (reg.lower[0], reg.upper[0]))


def test_boundary_is_not_a_counterexample_of_a_strict_row():
    p = parse_vnnlib(HEAD + BOX + "(assert (< Y_0 0))")
    x = np.array([0.0, 0.0])
    assert p.has_strict
    assert not p.is_violated_exactly(x, [F(0), F(0)])
    assert p.is_violated_exactly(x, [F(-1, 10**40), F(0)])
    assert not p.is_violated_by(x, [0.0, 0.0])  # float check respects strictness too
    assert p.is_violated_by(x, [-1e-300, 0.0])
    assert p.regions[0].margin(np.zeros((1, 2)))[0] == 0.0  # margin stays the closure (proofs: < read as <=)
    q = parse_vnnlib(HEAD + BOX + "(assert (<= Y_0 0))")
    assert not q.has_strict and q.is_violated_exactly(x, [F(0), F(5)]) and q.is_violated_by(x, [0.0, 5.0])


def test_contains_batched_and_exact():
    oc = one_constraint("(assert (< Y_0 0.1))(assert (<= Y_1 0))")
    Y = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 1e-300], [np.nan, 0.0], [-np.inf, 0.0]])
    # float 0.1 > 1/10 but the float row b = 0.1: the float check uses the rounded bound
    assert oc.contains(Y).tolist() == [True, False, False, False, False]
    assert oc.contains_exact([F(0), F(0)]) and not oc.contains_exact([F(1, 10), F(0)])
    assert oc.contains_exact([F(1, 10) - F(1, 10**30), F(0)])
    assert not oc.contains_exact([float("nan"), 0.0])
    assert oc.contains(Y, atol=0.2)[1]


def test_is_violated_by_atol_loosens_strict_and_non_strict_rows():
    p = parse_vnnlib(HEAD + BOX + "(assert (< Y_0 0))(assert (<= Y_1 0))")
    x = np.zeros(2)
    assert p.is_violated_by(x, [0.0, 1e-6], atol=1e-5) and p.is_violated_by(x, [1e-6, 0.0], atol=1e-5)
    assert not p.is_violated_by(x, [-1e-6, -1e-6], atol=-1e-5)  # a negative atol demands a margin
    assert p.is_violated_by(np.array([1.0 + 1e-9, 0.0]), [-1.0, -1.0], atol=1e-8)
    assert not p.is_violated_by(np.array([1.0 + 1e-9, 0.0]), [-1.0, -1.0])


def test_is_violated_exactly_needs_the_same_disjunct():
    txt = HEAD + "(assert (or (and (>= X_0 0) (<= X_0 1) (<= Y_0 0)) (and (>= X_0 2) (<= X_0 3) (>= Y_0 5))))"
    p = parse_vnnlib(txt + "(assert (>= X_1 0))(assert (<= X_1 1))")
    assert len(p.regions) == 2
    assert p.is_violated_exactly([0.5, 0.5], [F(0), F(0)]) and not p.is_violated_exactly([0.5, 0.5], [F(5), F(0)])
    assert p.is_violated_exactly([2.5, 0.5], [F(5), F(0)]) and not p.is_violated_exactly([2.5, 0.5], [F(0), F(0)])
    assert not p.is_violated_exactly([1.5, 0.5], [F(0), F(0)])


def test_equal_bounds_and_duplicate_rows_are_tightened():
    p = parse_vnnlib(HEAD + BOX + "(assert (<= Y_0 1))(assert (< Y_0 1))(assert (<= Y_0 2))(assert (>= X_0 -1))")
    (oc,) = p.regions[0].outputs
    assert oc.b_exact == (F(1),) and oc.strict.tolist() == [True]
    p = parse_vnnlib(HEAD + BOX + "(assert (<= Y_0 1))(assert (< X_0 1))")
    assert p.regions[0].upper_strict.tolist() == [True, False]


def test_one_empty_disjunct_is_dropped_silently():
    p = parse_vnnlib(HEAD + BOX + "(assert (or (and (>= X_0 2) (<= Y_0 0)) (<= Y_1 0) (and (< 1 0) (<= Y_0 3))))")
    (reg,) = p.regions
    assert len(reg.outputs) == 1 and reg.outputs[0].A.tolist() == [[0.0, 1.0]]


def test_common_box_shared_by_all_output_disjuncts():
    txt = HEAD + BOX + "(assert (or " + " ".join(f"(and (>= Y_0 {k}) (< Y_1 {k}))" for k in range(50)) + "))"
    (reg,) = parse_vnnlib(txt).regions
    assert len(reg.outputs) == 50 and all(oc.strict.tolist() == [False, True] for oc in reg.outputs)


def test_builders_take_floats_exactly():
    p = box_property([0.1, 0.0], [0.3, 1.0], [[1.0, -1.0]], [0.1])
    reg = p.regions[0]
    assert reg.lower_exact == (F(0.1), F(0)) and reg.lower.tolist() == [0.1, 0.0]
    assert reg.outputs[0].b_exact == (F(0.1),) and not p.has_strict
    assert p.is_violated_exactly([0.1, 0.0], [F(0.1), F(0)])  # ties count
    r = robustness_property([0, 0], [1, 1], 1, 3)
    assert [oc.A_exact for oc in r.regions[0].outputs] == [((F(-1), F(1), F(0)),), ((F(0), F(1), F(-1)),)]
    assert r.is_violated_exactly([0.5, 0.5], [F(2), F(2), F(0)]) and not r.is_violated_exactly([0.5, 0.5], [F(1), F(2), F(1)])


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda: box_property([1.0], [0.0], [[1.0]], [0.0]), "lower <= upper"),
        (lambda: box_property([0.0], [1.0], [[1.0]], [float("nan")]), "NaN"),
        (lambda: box_property([0.0], [1.0], [[float("inf")]], [0.0]), "NaN"),
        (lambda: robustness_property([1.0], [0.0], 0, 2), "empty input box"),
        (lambda: robustness_property([0.0], [float("nan")], 0, 2), "finite"),
        (lambda: robustness_property([0.0], [1.0], 2, 2), "label"),
        (lambda: InputRegion(np.zeros(1), np.ones(1), (), lower_exact=(F(-1, 3),)), "do not contain"),
        (lambda: InputRegion(np.zeros(1), np.zeros(1), (), lower_strict=[True]), "strict"),
        (lambda: OutputConstraint(np.ones((1, 2)), [0.0], strict=[True, False]), "do not match"),
    ],
)
def test_builders_reject_bad_values(call, fragment):
    with pytest.raises(PropertyFormatError, match=fragment):
        call()
