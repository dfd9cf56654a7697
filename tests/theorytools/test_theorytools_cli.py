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


def test_lr_batch_command_closed_form():
    res = run("lr-batch", "--lam1", "3", "--sigma", "1", "--P", "1500", "--B", "8,512", "--json")
    assert res.returncode == 0, res.stderr
    obj = json.loads(res.stdout)
    # below B* = P sigma^2 / lam1^2 = 166.7 the top batch eigenvalue is the bulk edge 2 sigma sqrt(P/B)
    assert obj["critical_batch_size"] == pytest.approx(1500 / 9)
    assert obj["lambda_batch_max"][0] == pytest.approx(2 * (1500 / 8) ** 0.5, rel=1e-12)
    # above it, the outlier lam1 + P sigma^2 / (B lam1)
    assert obj["lambda_batch_max"][1] == pytest.approx(3 + 1500 / (512 * 3), rel=1e-12)
    assert obj["sgd_max_lr"] == pytest.approx([2 / v for v in obj["lambda_batch_max"]], rel=1e-12)


def test_deep_linear_command_matches_eq11_for_three_layers():
    import math

    res = run("deep-linear", "--s", "3", "--u0", "0.01", "--uf", "1.5", "--layers", "3,100", "--json")
    assert res.returncode == 0, res.stderr
    obj = json.loads(res.stdout)
    # eq 11: t = tau/(2s) ln(uf (s - u0) / (u0 (s - uf)))
    assert obj["learning_time"][0] == pytest.approx(math.log(1.5 * 2.99 / (0.01 * 1.5)) / 6, rel=1e-10)
    # large depth: eq 15 approaches eq 17
    assert obj["learning_time"][1] == pytest.approx(obj["large_depth_learning_time"][1], rel=0.1)
    bad = run("deep-linear", "--s", "3", "--u0", "0.01", "--uf", "4")
    assert bad.returncode == 2 and "'u0' and 'uf'" in bad.stderr
