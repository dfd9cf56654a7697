"""The VNN-COMP tool scripts (vnncomp/prepare_instance.sh, run_instance.sh) end to end: result files for
VNN-LIB 1.0 and 2.0 properties (2.0 counterexample format), exit 1 from prepare for a query we refuse,
``error`` for a property that does not parse, ``.gz`` inputs."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from verification.io import load_network
from verification.vnnlib2 import read_query

REPO = Path(__file__).resolve().parents[2]
ACAS = REPO / "tests" / "data" / "acasxu"
NET = ACAS / "onnx" / "ACASXU_run2a_1_9_batch_2000.onnx"
ENV = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or not (REPO / ".venv" / "bin" / "verification").exists(),
                                reason="needs bash and the repository's .venv")


def _run(script: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(REPO / "vnncomp" / script), "v1", "acasxu", *map(str, args)],
                          capture_output=True, text=True, env=ENV, timeout=120)


def test_prepare_accepts_1_0_and_2_0_and_skips_several_networks(tmp_path):
    assert _run("prepare_instance.sh", NET, ACAS / "vnnlib" / "prop_4.vnnlib").returncode == 0
    assert _run("prepare_instance.sh", NET, REPO / "tests" / "data" / "vnnlib2" / "prop_4.vnnlib").returncode == 0
    multi = tmp_path / "multi.vnnlib"
    multi.write_text("(vnnlib-version <2.0>)\n(declare-network f (declare-input X Real [5]) (declare-output Y Real [5]))\n"
                     "(declare-network g (equal-to f) (declare-input A Real [5]) (declare-output B Real [5]))\n"
                     "(assert (<= X[0] A[0]))\n")
    r = _run("prepare_instance.sh", NET, multi)
    assert r.returncode == 1 and "several networks" in r.stderr


def test_run_instance_result_files(tmp_path):
    net = load_network(NET)
    # 1.0: sat with ((X_0 v) ...), checked against the property
    out = tmp_path / "r1.txt"
    assert _run("run_instance.sh", NET, ACAS / "vnnlib" / "prop_4.vnnlib", out, 60).returncode == 0
    text = out.read_text()
    assert text.startswith("sat\n((X_0 ")
    # 2.0, gzipped: sat in the 2.0 assignment format, re-read and checked
    gz = tmp_path / "prop_4.vnnlib.gz"
    gz.write_bytes(gzip.compress((REPO / "tests" / "data" / "vnnlib2" / "prop_4.vnnlib").read_bytes()))
    out2 = tmp_path / "r2.txt"
    assert _run("run_instance.sh", NET, gz, out2, 60).returncode == 0
    text2 = out2.read_text()
    q = read_query(REPO / "tests" / "data" / "vnnlib2" / "prop_4.vnnlib")
    xs, ys = q.parse_assignment(text2)
    assert text2.splitlines()[:2] == ["sat", "X Real [1,5]"] and len(xs) == 5 and len(ys) == 5
    assert q.property.is_violated_exactly(np.array(xs), net(np.array(xs)))
    # a property that does not parse: the result file says error, the script itself succeeds
    bad = tmp_path / "bad.vnnlib"
    bad.write_text("(vnnlib-version <2.0>)\n(declare-network f (declare-input X Real [5]))\n")
    out3 = tmp_path / "r3.txt"
    assert _run("run_instance.sh", NET, bad, out3, 60).returncode == 0
    assert out3.read_text() == "error\n"
