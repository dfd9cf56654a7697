"""VNN-LIB reader: the ACAS Xu properties, DNF handling, and malformed files (errors name the line)."""

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from verification.errors import PropertyFormatError
from verification.vnnlib import parse_vnnlib, read_vnnlib

ACAS = Path(__file__).resolve().parents[1] / "data" / "acasxu" / "vnnlib"  # copied in, see tests/data/README.md
needs_acas = pytest.mark.skipif(not ACAS.exists(), reason="ACAS Xu benchmark files not present")

HEAD = "".join(f"(declare-const X_{i} Real)\n" for i in range(2)) + "".join(
    f"(declare-const Y_{j} Real)\n" for j in range(2)
)
BOX = "(assert (>= X_0 -1))\n(assert (<= X_0 1))\n(assert (>= X_1 0))\n(assert (<= X_1 0.5))\n"


@needs_acas
def test_acas_prop1_box_and_threshold():
    p = read_vnnlib(ACAS / "prop_1.vnnlib")
    assert (p.in_dim, p.out_dim, len(p.regions)) == (5, 5, 1)
    r = p.regions[0]
    # exact values as written; float boxes rounded outward (within one ulp of the nearest float)
    assert r.lower_exact == tuple(map(Fraction, ["0.6", "-0.5", "-0.5", "0.45", "-0.5"]))
    assert r.upper_exact == tuple(map(Fraction, ["0.679857769", "0.5", "0.5", "0.5", "-0.45"]))
    assert all(Fraction(f) <= q for f, q in zip(r.lower.tolist(), r.lower_exact))
    assert all(Fraction(f) >= q for f, q in zip(r.upper.tolist(), r.upper_exact))
    np.testing.assert_allclose(r.lower, [0.6, -0.5, -0.5, 0.45, -0.5], rtol=2.3e-16, atol=0)
    np.testing.assert_allclose(r.upper, [0.679857769, 0.5, 0.5, 0.5, -0.45], rtol=2.3e-16, atol=0)
    (oc,) = r.outputs
    # Y_0 >= 3.991125645861615  <=>  -Y_0 <= -3.99...
    np.testing.assert_array_equal(oc.A, [[-1, 0, 0, 0, 0]])
    assert oc.b[0] == -3.991125645861615


@needs_acas
def test_acas_all_properties_shapes():
    shapes = {i: read_vnnlib(ACAS / f"prop_{i}.vnnlib") for i in range(1, 11)}
    # prop_6 has two input boxes with the same 4 output disjuncts; props 5, 7-10 are output disjunctions
    assert len(shapes[6].regions) == 2 and all(len(r.outputs) == 4 for r in shapes[6].regions)
    assert [len(shapes[i].regions[0].outputs) for i in (2, 3, 4, 5, 7, 8, 9, 10)] == [1, 1, 1, 4, 2, 3, 4, 4]
    assert shapes[2].regions[0].outputs[0].A.shape == (4, 5)
    # prop_4 fixes X_2 = 0 exactly
    assert shapes[4].regions[0].lower[2] == shapes[4].regions[0].upper[2] == 0.0


def test_semantics_of_or_and_linear_terms():
    txt = HEAD + BOX + "(assert (or (and (<= (+ Y_0 (* 2 Y_1)) 3)) (and (>= (- Y_0 Y_1) 1) (< Y_1 0.25))))"
    p = parse_vnnlib(txt)
    (reg,) = p.regions
    assert len(reg.outputs) == 2
    x = np.array([0.0, 0.2])
    assert p.is_violated_by(x, [1.0, 1.0])  # 1 + 2 <= 3
    assert not p.is_violated_by(x, [2.0, 0.6])  # 3.2 > 3, and y1 >= 0.25
    assert p.is_violated_by(x, [2.0, 0.2])  # second disjunct
    assert not p.is_violated_by(np.array([2.0, 0.2]), [1.0, 1.0])  # x outside the box


def test_input_disjunction_distributes_into_boxes():
    txt = HEAD + "(assert (or (and (>= X_0 0) (<= X_0 1)) (and (>= X_0 2) (<= X_0 3))))\n"
    txt += "(assert (>= X_1 0))(assert (<= X_1 1))(assert (<= Y_0 Y_1))"
    p = parse_vnnlib(txt)
    assert sorted(r.lower[0] for r in p.regions) == [0.0, 2.0]


@pytest.mark.parametrize(
    "body, line, fragment",
    [
        (BOX + "(assert (<= Y_0 1)", 9, "missing ')'"),
        (BOX + "(assert (<= Y_7 1))", 9, "not declared"),
        (BOX + "(assert (<= (+ X_0 Y_0) 1))", 9, "mixing inputs"),
        (BOX + "(assert (<= (+ X_0 X_1) 1))\n(assert (<= Y_0 1))", 9, "single X_i"),
        (BOX + "(assert (not (<= Y_0 1)))", 9, "'not'"),
        (BOX + "(assert (<= (* Y_0 Y_1) 1))", 9, "non-linear"),
        (BOX + "(push 1)", 9, "unsupported command"),
        ("(assert (>= X_0 -1))\n(assert (<= X_0 1))\n(assert (<= Y_0 1))", 1, ""),
        (BOX.replace("(assert (<= X_1 0.5))\n", "") + "(assert (<= Y_0 1))", 1, "no finite upper bound"),
    ],
)
def test_malformed_files_report_line(body, line, fragment):
    text = body if body.startswith("(assert (>= X_0 -1))\n(assert (<= X_0 1))\n(assert (<= Y_0 1))") else HEAD + body
    with pytest.raises(PropertyFormatError) as exc:
        parse_vnnlib(text, "bad.vnnlib")
    msg = str(exc.value)
    assert msg.startswith(f"bad.vnnlib:{line}:"), msg
    assert fragment in msg


def test_declaration_errors(tmp_path):
    with pytest.raises(PropertyFormatError, match=r":1: .*Int"):
        parse_vnnlib("(declare-const X_0 Int)")
    with pytest.raises(PropertyFormatError, match="without gaps; missing X_1"):
        parse_vnnlib("(declare-const X_0 Real)(declare-const X_2 Real)(declare-const Y_0 Real)(assert (<= Y_0 1))")
    with pytest.raises(PropertyFormatError, match="no such VNN-LIB file"):
        read_vnnlib(tmp_path / "missing.vnnlib")
    with pytest.raises(PropertyFormatError, match="declared twice"):
        parse_vnnlib("(declare-const X_0 Real)\n(declare-const X_0 Real)")
