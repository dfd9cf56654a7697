"""VNN-LIB bad input: one-line PropertyFormatError naming file:line, fast, bounded; valid files (BOM, UTF-8
comments under LC_ALL=C, deep nesting, many asserts) are not rejected."""

import os
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

import verification.vnnlib as vnnlib
from verification.errors import PropertyFormatError
from verification.vnnlib import parse_vnnlib, read_vnnlib

HEAD = "(declare-const X_0 Real)(declare-const X_1 Real)(declare-const Y_0 Real)(declare-const Y_1 Real)\n"
BOX = "(assert (>= X_0 -1))(assert (<= X_0 1))(assert (>= X_1 0))(assert (<= X_1 0.5))\n"
ROOT = Path(__file__).resolve().parents[2]


def error_of(text, source="bad.vnnlib") -> str:
    with pytest.raises(PropertyFormatError) as exc:
        parse_vnnlib(text, source)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(f"{source}:"), msg
    return msg


@pytest.mark.parametrize(
    "body, line, fragment",
    [
        # NaN / inf anywhere, including constant folding with huge literals
        ("(assert (>= X_0 (- (* 1e200 1e200) (* 1e200 1e200))))", 3, "outside the float64 range"),
        ("(assert (<= Y_0 nan))", 3, "NaN"),
        ("(assert (<= Y_0 (+ 1 NaN)))", 3, "NaN"),
        ("(assert (>= X_0 -inf))", 3, "NaN and infinity"),
        ("(assert (<= Y_0 1e400))", 3, "outside the float64 range"),
        ("(assert (<= Y_0 1.7976931348623159e308))", 3, "outside the float64 range"),
        ("(assert (<= (* 1e300 (* 1e300 Y_0)) 1))", 3, "coefficient is outside"),
        ("(assert (<= (+ Y_0 1e308 1e308) 1))", 3, "outside the float64 range"),
        ("(assert (<= Y_0 1e999999999))", 3, "absurd exponent"),
        ("(assert (<= Y_0 1e-999999))", 3, "too small"),
        ("(assert (<= Y_0 " + "9" * 5000 + "))", 3, "significant digits"),
        ("(assert (<= (* " + "0.3 " * 6000 + "Y_0) 1))", 3, "bits"),
        ("(assert (<= (/ Y_0 0) 1))", 3, "division by zero"),
        ("(assert (<= (/ 1 Y_0) 1))", 3, "division by a variable"),
        # empty input sets
        ("(assert (>= X_0 2))", 3, "contradictory (X_0: lower 2.0 > upper 1.0)"),
        ("(assert (< X_0 -1))", 3, "contradictory (X_0: lower = upper = -1.0 with a strict bound)"),
        ("(assert (or (and (>= X_0 2) (<= Y_0 0)) (and (<= X_1 -1) (<= Y_1 0))))", 3, "contradictory"),
        ("(assert false)", 3, "contradictory"),
        ("(assert (or))", 3, "contradictory"),
        ("(assert (and (<= Y_0 1) (< 0 0)))", 3, "contradictory"),
        # syntax
        ('(set-info :source "abc)', 3, "unterminated string"),
        ("(assert |Y_0)", 3, "unterminated |quoted symbol|"),
        ("(assert (<= Y_0 1) (<= Y_1 1))", 3, "exactly one formula"),
        ("(assert ())", 3, "expected an operator"),
        ("((assert (<= Y_0 1)))", 3, "expected an operator"),
        ("(assert (<= Y_0 1)))", 3, "unbalanced ')'"),
        ("(assert (=> true (<= Y_0 1)))", 3, "unsupported formula operator"),
        ("(assert (<= (and true) 1))", 3, "unsupported term operator"),
        ("(assert (<= Y_0 \u00a01))", 3, "unknown symbol"),
        ("(assert (<= Y_0 1))\nhello", 4, "outside parentheses"),
        ("(assert (and " + "(or (<= Y_0 0) (<= Y_1 0))" * 20 + "))", 3, "more than 100000 DNF terms"),
        ("(assert (or (<= Y_0 0) (<= Y_1 0)))\n" * 20, 19, "more than 100000 DNF terms"),
    ],
)
def test_bad_properties_give_one_line_naming_the_line(body, line, fragment):
    msg = error_of(HEAD + BOX + body)
    assert msg.startswith(f"bad.vnnlib:{line}:") and fragment in msg, msg


@pytest.mark.parametrize(
    "decls, fragment",
    [
        ("(declare-const X_0 Real)(declare-const X_00 Real)", "X_00 and X_0 (line 1) both name input 0"),
        ("(declare-const X_0 Real)(declare-const X_1 Real)(declare-const X_01 Real)", "X_01 and X_1 (line 1) both name input 1"),
        ("(declare-const X_0 Real)(declare-const Y_0 Real)(declare-fun Y_000 () Real)", "both name output 0"),
        ("(declare-const X_0 Real)(declare-const X_99999999999 Real)", "index too large"),
        ("(declare-const X_0 Real)(declare-const X_999999999 Real)(declare-const Y_0 Real)", "missing X_1"),
        ("(declare-fun X_0 (Real) Real)", "malformed declare-fun"),
        ("(declare-const X_0 Real Real)", "malformed declare-const"),
    ],
)
def test_declaration_errors(decls, fragment):
    msg = error_of(decls + "\n(assert (<= Y_0 1))")
    assert fragment in msg, msg


def test_deep_nesting_is_iterative():
    n = 100_000
    (reg,) = parse_vnnlib(HEAD + BOX + "(assert " + "(and " * n + "(<= Y_0 0)" + ")" * n + ")").regions
    assert reg.outputs[0].b_exact == (0,)
    (reg,) = parse_vnnlib(HEAD + BOX + "(assert (<= " + "(+ 1 " * n + "Y_0" + ")" * n + " 0))").regions
    assert reg.outputs[0].b_exact == (-n,)
    (reg,) = parse_vnnlib(HEAD + BOX + "(assert (<= " + "(- " * (n + 1) + "Y_0" + ")" * (n + 1) + " 0))").regions
    assert reg.outputs[0].A_exact == ((-1, 0),)
    (reg,) = parse_vnnlib(HEAD + BOX + "(assert " + "(or (<= Y_1 0) " * 3000 + "(<= Y_0 0)" + ")" * 3000 + ")").regions
    assert len(reg.outputs) == 3001


def test_nesting_beyond_the_limit_is_one_line():
    n = vnnlib._MAX_DEPTH + 1
    msg = error_of(HEAD + BOX + "(assert " + "(and " * n + "(<= Y_0 0)" + ")" * n + ")")
    assert f"nesting deeper than {vnnlib._MAX_DEPTH} levels" in msg
    assert "expected an operator" in error_of("(" * 1_000_000)


def test_many_asserts_parse_linearly(tmp_path):
    """The shape of a 4.9 MB / 200k-assert file (many bounds on the same variables), scaled down."""
    lines, tightest = [HEAD], [0, 0]
    for k in range(50_000):
        i = k % 2
        lines.append(f"(assert (<= X_{i} {1 + (k % 977) / 1000}))" if k % 3 == 0 else
                     f"(assert (>= X_{i} {-1 - (k % 991) / 1000}))" if k % 3 == 1 else
                     f"(assert (>= Y_{i} {(k % 997) / 1000}))")
        if k % 3 == 2:
            tightest[i] = max(tightest[i], k % 997)
    path = tmp_path / "many.vnnlib"
    path.write_text("\n".join(lines))
    (reg,) = read_vnnlib(path).regions
    assert reg.lower.tolist() == [-1.0, -1.0] and reg.upper.tolist() == [1.0, 1.0]
    (oc,) = reg.outputs
    assert oc.A.shape == (2, 2)  # duplicate rows keep the tightest bound
    assert oc.A.tolist() == [[-1.0, 0.0], [0.0, -1.0]] and oc.strict.tolist() == [False, False]
    assert list(oc.b_exact) == [-Fraction(t, 1000) for t in tightest]


def test_bom_and_utf8_comments(tmp_path):
    text = HEAD + BOX + "; commentaire: dépassement ✓ 安全\n(assert (<= Y_0 0)) ; ok\n"
    path = tmp_path / "bom.vnnlib"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert len(read_vnnlib(path).regions) == 1
    assert len(parse_vnnlib("\ufeff" + text).regions) == 1
    assert len(parse_vnnlib(b"\xef\xbb\xbf" + text.encode()).regions) == 1


def test_utf8_comment_under_c_locale(tmp_path):
    path = tmp_path / "utf8.vnnlib"
    path.write_bytes(b"\xef\xbb\xbf" + (HEAD + BOX + "; r\xe9sum\xe9 \u2713\n(assert (<= Y_0 0))\n").encode("utf-8"))
    env = dict(os.environ, LC_ALL="C", LANG="C", PYTHONUTF8="0", PYTHONIOENCODING="ascii")
    code = f"from verification.vnnlib import read_vnnlib; print(len(read_vnnlib({str(path)!r}).regions))"
    res = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "1", res.stderr


@pytest.mark.parametrize(
    "data, fragment",
    [
        (b"(declare-const X_0 Real)\n\x00\x01\x02", ":2: not a text file"),
        ((HEAD + "; caf\xe9\n").encode("latin-1"), ":2: invalid UTF-8 (byte 0xe9"),
        ("(declare-const X_0 Real)".encode("utf-16"), "UTF-16"),
    ],
)
def test_binary_and_badly_encoded_files(tmp_path, data, fragment):
    path = tmp_path / "bad.vnnlib"
    path.write_bytes(data)
    with pytest.raises(PropertyFormatError, match=re.escape(fragment)) as exc:
        read_vnnlib(path)
    assert "\n" not in str(exc.value)


def test_unreadable_and_oversized_files(tmp_path, monkeypatch):
    with pytest.raises(PropertyFormatError, match="is a directory"):
        read_vnnlib(tmp_path)
    path = tmp_path / "big.vnnlib"
    path.write_text(HEAD + BOX + "(assert (<= Y_0 0))\n" * 100)
    monkeypatch.setattr(vnnlib, "_MAX_FILE_BYTES", 1000)
    with pytest.raises(PropertyFormatError, match="larger than"):
        read_vnnlib(path)


def test_cli_reports_bad_property_in_one_line(tmp_path, capsys):
    from verification.cli import main

    bad = tmp_path / "nan.vnnlib"
    bad.write_text(HEAD + BOX + "(assert (<= Y_0 (- (* 1e200 1e200) (* 1e200 1e200))))\n")
    assert main(["verify", str(tmp_path / "model.onnx"), str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nan.vnnlib:3:" in err[0] and "float64 range" in err[0]
