"""theorytools command line: values equal the library's, bad parameters exit 2 with one line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "theorytools", *args], capture_output=True, text=True, timeout=120)


def test_hconsistency_command_matches_library():
    from theorytools.hconsistency import error_transform, gamma_transform

    res = run("hconsistency", "--tau", "1.5", "--n", "10", "--t", "0.25,0.5", "--s", "0.01", "--json")
    assert res.returncode == 0, res.stderr
    obj = json.loads(res.stdout)
    assert obj["T"] == pytest.approx(list(error_transform([0.25, 0.5], 1.5, 10)), rel=1e-12)
    assert obj["T"][1] == pytest.approx(0.07465125, abs=1e-7)  # reference value, theory.md D.4
    assert obj["Gamma"][0] == pytest.approx(float(gamma_transform(0.01, 1.5, 10)), rel=1e-12)


def test_bad_parameter_exit_2():
    res = run("hconsistency", "--tau", "3", "--t", "0.5")
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1 and "'tau'" in res.stderr
    assert run("hconsistency", "--tau", "1").returncode == 2
