"""VNN-LIB 2.0 queries (verification.vnnlib2): the same property written in 1.0 and 2.0 gives the same regions
and verdicts; the 2.0 constructs of the standard we support; the ones we refuse, in one line, exit 2; the
counterexample in the 2.0 assignment format.  Section names refer to the VNN-LIB 2.0 standard document
(github.com/VNNLIB/VNNLIB-Standard, document/chapters/query_language.tex and verifier_interface.tex)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from verification.activations import ReLU
from verification.cli import main
from verification.errors import PropertyFormatError
from verification.io import load_network
from verification.network import Dense, Network
from verification.smt import verify
from verification.vnnlib import parse_vnnlib, read_vnnlib
from verification.vnnlib2 import Query, parse_query, read_query

REPO = Path(__file__).resolve().parents[2]
ACAS = REPO / "tests" / "data" / "acasxu"


def to_v2(text: str, shape_in: str = "1,{n}", shape_out: str = "1,{n}", dtype: str = "Real") -> str:
    """A 1.0 file rewritten as a 2.0 query (Syntax: declare-network / declare-input / declare-output, element
    references X[0,i])."""
    nx = len(re.findall(r"declare-const X_", text))
    ny = len(re.findall(r"declare-const Y_", text))
    body = "\n".join(ln for ln in text.splitlines() if "declare-const" not in ln)
    px = "0," if "," in shape_in else ""
    py = "0," if "," in shape_out else ""
    body = re.sub(r"\bX_(\d+)\b", rf"X[{px}\1]", body)
    body = re.sub(r"\bY_(\d+)\b", rf"Y[{py}\1]", body)
    return (f"(vnnlib-version <2.0>)\n(declare-network acas\n  (declare-input X {dtype} [{shape_in.format(n=nx)}])\n"
            f"  (declare-output Y {dtype} [{shape_out.format(n=ny)}]))\n{body}")


def same_property(a, b) -> bool:
    if (a.in_dim, a.out_dim, len(a.regions)) != (b.in_dim, b.out_dim, len(b.regions)):
        return False
    for ra, rb in zip(a.regions, b.regions):
        if ra.lower_exact != rb.lower_exact or ra.upper_exact != rb.upper_exact or len(ra.outputs) != len(rb.outputs):
            return False
        if not (np.array_equal(ra.lower_strict, rb.lower_strict) and np.array_equal(ra.upper_strict, rb.upper_strict)):
            return False
        for oa, ob in zip(ra.outputs, rb.outputs):
            if oa.A_exact != ob.A_exact or oa.b_exact != ob.b_exact or not np.array_equal(oa.strict, ob.strict):
                return False
    return True


@pytest.mark.parametrize("p", range(1, 11))
def test_acasxu_properties_equal_in_1_0_and_2_0(p):
    text = (ACAS / "vnnlib" / f"prop_{p}.vnnlib").read_text()
    q = parse_query(to_v2(text), "q.vnnlib")
    assert q.version == "2.0" and q.network == "acas" and q.input.shape == (1, 5) and q.output.shape == (1, 5)
    assert same_property(read_vnnlib(ACAS / "vnnlib" / f"prop_{p}.vnnlib"), q.property)
    assert read_query(ACAS / "vnnlib" / f"prop_{p}.vnnlib").version == "1.0"  # 1.0 files read as before


def test_verdicts_equal_in_1_0_and_2_0(tmp_path):
    """Network 1_9: prop_1 holds, prop_4 violated, in both versions; the 2.0 counterexample is in the 2.0
    assignment format and re-reads to the same point (verifier_interface.tex: command-line assignment)."""
    net = load_network(ACAS / "onnx" / "ACASXU_run2a_1_9_batch_2000.onnx")
    for p, want in ((1, "holds"), (4, "violated")):
        text = (ACAS / "vnnlib" / f"prop_{p}.vnnlib").read_text()
        q1, q2 = parse_query(text), parse_query(to_v2(text))
        r1 = verify(net, q1.property, timeout=60)
        r2 = verify(net, q2.property, timeout=60)
        assert r1.status == r2.status == want
        if want == "violated":
            out = q2.result_text(r2)
            lines = out.splitlines()
            assert lines[0] == "sat" and lines[1] == "X Real [1,5]" and lines[7] == "Y Real [1,5]" and len(lines) == 13
            xs, ys = q2.parse_assignment(out)
            assert xs == [float(v) for v in r2.counterexample] and ys == [float(v) for v in r2.output]
            assert q2.property.is_violated_exactly(np.array(xs), net(np.array(xs)))
            assert q1.result_text(r1).startswith("sat\n((X_0 ")


def test_shapes_scalars_and_row_major_order():
    """Tensors with zero dimensions (scalar output referenced without indices) and [2,2] inputs numbered in
    row-major order (Syntax: variables; Command-line assignment format: row-major)."""
    q = parse_query("""(vnnlib-version <2.0>)
; a comment
(declare-network f
    (declare-input  X float32 [2,2])
    (declare-output Y float32 []))
(assert (and (>= X[0,0] 0.0) (<= X[0,0] 1.0) (>= X[0,1] 2) (<= X[0,1] 3)))
(assert (and (>= X[1,0] 4) (<= X[1,0] 5) (>= X[1,1] 6) (<= X[1,1] 7)))
(assert (>= Y 0.5))
""")
    r = q.property.regions[0]
    assert list(r.lower) == [0, 2, 4, 6] and list(r.upper) == [1, 3, 5, 7]
    assert q.property.out_dim == 1 and q.output.shape == () and q.output.element(0) == "Y"
    assert q.input.element(2) == "X[1,0]"
    oc = r.outputs[0]
    assert oc.A.tolist() == [[-1.0]] and oc.b.tolist() == [-0.5]
    text = q.assignment_text([0.5, 2.5, 4.5, 6.5], [0.75])
    assert text.splitlines() == ["X float32 [2,2]", "0.5", "2.5", "4.5", "6.5", "Y float32 []", "0.75"]


def test_operators_of_the_standard():
    """Assertions: n-ary + and *, unary and left-associative n-ary -, ==, != (Syntax: arithmetic expressions,
    comparisons), and the same in 1.0 form."""
    head = "(vnnlib-version <2.0>)\n(declare-network f (declare-input X Real [2]) (declare-output Y Real [2]))\n"
    box = "(assert (and (>= X[0] -1) (<= X[0] 1) (== X[1] 0.5)))\n"
    q = parse_query(head + box + "(assert (<= (- Y[0] Y[1] 1 (- 2)) (* 2 3 Y[1])))\n(assert (!= Y[0] 3))\n")
    ref = parse_vnnlib("(declare-const X_0 Real)(declare-const X_1 Real)(declare-const Y_0 Real)(declare-const Y_1 Real)"
                       "(assert (and (>= X_0 -1) (<= X_0 1) (= X_1 0.5)))"
                       "(assert (<= (- (- (- Y_0 Y_1) 1) (- 2)) (* 6 Y_1)))(assert (or (< Y_0 3) (> Y_0 3)))")
    assert same_property(q.property, ref)
    assert len(q.property.regions[0].outputs) == 2  # != is a disjunction of two strict rows


def test_random_nets_same_verdicts(tmp_path):
    """Random small ReLU nets: a property and its 2.0 rewrite get the same verdict (and the same point)."""
    rng = np.random.default_rng(3)
    for seed in range(4):
        r = np.random.default_rng(seed)
        net = Network([Dense(r.normal(size=(6, 3)), r.normal(size=6)), ReLU(), Dense(r.normal(size=(2, 6)), r.normal(size=2))])
        t = float(rng.uniform(-1, 2))
        text = ("".join(f"(declare-const X_{i} Real)\n" for i in range(3)) + "(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"
                + "".join(f"(assert (>= X_{i} -0.5))\n(assert (<= X_{i} 0.5))\n" for i in range(3))
                + f"(assert (>= (- Y_0 Y_1) {t}))\n")
        a = verify(net, parse_query(text).property, timeout=30)
        b = verify(net, parse_query(to_v2(text, "{n}", "{n}")).property, timeout=30)
        assert a.status == b.status and a.status in ("holds", "violated")
        if a.status == "violated":
            assert np.array_equal(a.counterexample, b.counterexample)


HEAD = "(vnnlib-version <2.0>)\n(declare-network f\n  (declare-input X Real [1,2])\n  (declare-output Y Real [1,2]))\n"
BOX = "(assert (and (>= X[0,0] 0) (<= X[0,0] 1) (>= X[0,1] 0) (<= X[0,1] 1)))\n"
NET2 = ("(declare-network g\n  (equal-to f)\n  (declare-input A Real [1,2])\n  (declare-output B Real [1,2]))\n")


@pytest.mark.parametrize("text,line,fragment", [
    # Multiple networks (read since the product network; tests/verification/test_vnnlib2_multi.py): an input
    # of the second network left unbounded, and a tie of inputs under or, are refused in one line
    (HEAD + NET2 + BOX + "(assert (>= Y[0,0] B[0,0]))\n", 0, "input A[0,0] has no finite lower bound"),
    (HEAD + NET2 + BOX + "(assert (or (== X[0,0] A[0,0]) (== X[0,1] A[0,1])))\n", 10, "ties of inputs must be asserted"),
    (HEAD.replace("  (declare-output", '  (declare-hidden H Real [1,3] "h")\n  (declare-output') + BOX + "(assert (>= Y[0,0] 0))", 4,
     "declare-hidden"),
    (HEAD.replace("  (declare-output", "  (declare-input Z Real [1])\n  (declare-output") + BOX, 4, "declares 2 inputs"),
    (HEAD.replace("X Real [1,2])", "X Real [1,2] initialized)").replace("<2.0>", "<2.1>") + BOX + "(assert (>= Y[0,0] 0))", 3,
     "'initialized' inputs"),
    (HEAD.replace("X Real", "X int32") + BOX + "(assert (>= Y[0,0] 0))", 3, "element type int32"),
    (HEAD.replace("X Real", "X Reel") + BOX, 3, "unknown element type 'Reel'"),
    (HEAD.replace("[1,2])\n  (declare-output", "[1,0])\n  (declare-output") + "(assert (>= Y[0,0] 0))", 3, "has no elements"),
    # Scoping and typing: declared before use, unique names, indices within the shape
    (HEAD + BOX + "(assert (>= Z[0,0] 0))\n", 6, "unknown variable 'Z'"),
    (HEAD + BOX + "(assert (>= Y[0,2] 0))\n", 6, "Y[0,2] is out of range for shape [1,2]"),
    (HEAD + BOX + "(assert (>= Y[1] 0))\n", 6, "1 indices for a tensor of 2 dimensions"),
    (HEAD + BOX + "(assert (>= Y 0))\n", 6, "refer to an element"),
    (HEAD.replace("Y Real", "X Real") + BOX, 4, "declared twice"),
    (HEAD + BOX + "(declare-network g (declare-input A Real [1]) (declare-output B Real [1]))\n", 6, "before the assertions"),
    # the version line (Syntax: VNNLibQuery ::= Version ...)
    (HEAD.replace("<2.0>", "<3.0>") + BOX, 1, "version 3.0 is not supported"),
    (HEAD.replace("(vnnlib-version <2.0>)", "(vnnlib-version 2.0)") + BOX, 1, "malformed version"),
    # syntax errors
    (HEAD + BOX + "(assert (>= Y[0,0] 0)\n", 6, "missing ')'"),
    (HEAD + BOX + '(assert (>= Y[0,0] "a"))\n', 6, "unexpected '\"a\"'"),
    (HEAD + BOX + "(assert (>= Y[0,0] 0)))\n", 6, "outside a command"),
    (HEAD + BOX + "(declare-const X_0 Real)\n", 6, "declare-const is VNN-LIB 1.0"),
    (HEAD, 1, "no assert"),
    # what the property model does not hold (the 1.0 reader's message, in the query's names)
    (HEAD + BOX + "(assert (>= Y[0,0] X[0,1]))\n", 6, "mixing inputs X and outputs Y"),
    (HEAD + "(assert (<= X[0,0] 1))(assert (>= Y[0,0] 0))\n", 0, "X[0,0] has no finite lower bound"),
    (HEAD + BOX + "(assert (>= Y[0,0] (* X[0,0] Y[0,1])))\n", 6, "non"),
])
def test_bad_queries_are_one_line(text, line, fragment):
    with pytest.raises(PropertyFormatError) as exc:
        parse_query(text, "bad.vnnlib")
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(f"bad.vnnlib:{line}:" if line else "bad.vnnlib:"), msg
    assert fragment in msg, msg


def test_cli_exit_2_one_line_and_2_0_result_file(tmp_path, capsys):
    bad = tmp_path / "two.vnnlib"
    bad.write_text(HEAD + NET2 + BOX + "(assert (and (== X[0,0] A[0,0]) (== X[0,1] A[0,1])))\n(assert (>= Y[0,0] B[0,0]))\n")
    onnx = ACAS / "onnx" / "ACASXU_run2a_1_9_batch_2000.onnx"
    assert main(["verify", str(onnx), str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "declares 2 networks (f, g)" in err[0] and "--network" in err[0]
    good = tmp_path / "p4.vnnlib"
    good.write_text(to_v2((ACAS / "vnnlib" / "prop_4.vnnlib").read_text()))
    res = tmp_path / "out.txt"
    assert main(["verify", str(onnx), str(good), "--result-file", str(res), "--quiet"]) == 1
    text = res.read_text()
    q = read_query(good)
    xs, ys = q.parse_assignment(text)
    assert text.splitlines()[1] == "X Real [1,5]" and len(xs) == 5 and len(ys) == 5
    net = load_network(onnx)
    assert q.property.is_violated_exactly(np.array(xs), net(np.array(xs)))


def test_query_1_0_is_unchanged():
    q = Query(parse_vnnlib("(declare-const X_0 Real)(declare-const Y_0 Real)(assert (>= X_0 0))(assert (<= X_0 1))"
                           "(assert (>= Y_0 0))"))
    assert not q.is_v2 and q.assignment_text([0.25], [1.5]) == "((X_0 0.25)\n(Y_0 1.5))\n"
    assert q.parse_assignment("sat\n" + q.assignment_text([0.25], [1.5])) == ([0.25], [1.5])


@pytest.mark.parametrize("p", [1, 4])
def test_shipped_2_0_files_equal_their_1_0_originals(p):
    """tests/data/vnnlib2 (used by docs/batch.md) holds ACAS Xu properties written in 2.0."""
    q = read_query(REPO / "tests" / "data" / "vnnlib2" / f"prop_{p}.vnnlib")
    assert q.is_v2 and same_property(q.property, read_vnnlib(ACAS / "vnnlib" / f"prop_{p}.vnnlib"))


def test_random_corruptions_give_one_line_errors_only():
    """500 random edits of a valid 2.0 query (deleted / inserted characters and keywords, truncation): each
    either parses or raises one-line PropertyFormatError, never another exception."""
    import random

    base = (REPO / "tests" / "data" / "vnnlib2" / "prop_4.vnnlib").read_text()
    pieces = list("()[],;\"<>=!-+*. \n0123456789XYaefnrt_") + ["declare-network", "declare-input", "(assert",
                                                               "X[0,0]", "<2.0>", "Real", "!=", "==", "int8"]
    rng = random.Random(0)
    refused = 0
    for _ in range(500):
        s = list(base)
        for _ in range(rng.randint(1, 5)):
            i = rng.randrange(len(s) + 1)
            r = rng.random()
            if r < 0.4 and s:
                del s[min(i, len(s) - 1)]
            elif r < 0.85:
                s.insert(i, rng.choice(pieces))
            else:
                s = s[:i]
        try:
            parse_query("".join(s), "f.vnnlib")
        except PropertyFormatError as exc:
            refused += 1
            assert "\n" not in str(exc) and str(exc).startswith("f.vnnlib:")
    assert refused > 250


def test_floating_onnx_types_get_a_note_real_does_not(tmp_path, capsys):
    """The standard reads float32 declarations as a request for float32 analysis; ours is over the reals, which
    the CLI says in one note line (and not for Real)."""
    onnx = ACAS / "onnx" / "ACASXU_run2a_2_3_batch_2000.onnx"
    text = (ACAS / "vnnlib" / "prop_4.vnnlib").read_text()
    for dtype, noted in (("float32", True), ("Real", False)):
        q = tmp_path / f"p4_{dtype}.vnnlib"
        q.write_text(to_v2(text, dtype=dtype))
        assert (read_query(q).type_note() is not None) == noted
        assert main(["verify", str(onnx), str(q), "--timeout", "0"]) == 3  # unknown at once
        err = capsys.readouterr().err
        assert ("not in float32 rounding" in err) == noted
