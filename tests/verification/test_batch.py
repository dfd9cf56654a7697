"""`verification batch`: instances CSV, 2-worker local Dask cluster on loopback vs sequential `verify`,
resume, a worker killed mid-run, Ctrl-C, scoring, and the one-line bad-input contract."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")

import cloudpickle  # noqa: E402

from verification.batch import SCORE_CORRECT, SCORE_WRONG, read_instances, run_batch, score  # noqa: E402
from verification.batch.worker import parse_assignment, verify_instance  # noqa: E402
from verification.cli import main  # noqa: E402

from .onnx_builders import mlp_onnx  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ACAS = REPO / "tests" / "data" / "acasxu"
ENV = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")


def _default_sigint() -> None:
    """In the child: the default SIGINT action (a shell starts background jobs with SIGINT ignored, and an ignored
    signal stays ignored across exec, so the test would measure nothing)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the killer task below runs on the workers


def _vnnlib(path: Path, lo: float, hi: float, rows: str) -> Path:
    decl = "".join(f"(declare-const X_{i} Real)\n" for i in range(2)) + \
        "".join(f"(declare-const Y_{j} Real)\n" for j in range(2))
    box = "".join(f"(assert (>= X_{i} {lo}))\n(assert (<= X_{i} {hi}))\n" for i in range(2))
    path.write_text(decl + box + rows)
    return path


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> Path:
    """2 small ReLU nets x 3 properties (a trivial holds, a trivial violation, a real question), a CSV with
    relative paths, a header and an expected column for two rows."""
    d = tmp_path_factory.mktemp("suite")
    (d / "nets").mkdir()
    (d / "props").mkdir()
    rng = np.random.default_rng(7)
    for k in range(2):
        mlp_onnx(d / "nets" / f"net{k}.onnx", rng.normal(size=(8, 2)), rng.normal(size=8) * 0.3,
                 rng.normal(size=(2, 8)))
    _vnnlib(d / "props" / "big.vnnlib", -1, 1, "(assert (>= Y_0 1000.0))\n")
    _vnnlib(d / "props" / "low.vnnlib", -1, 1, "(assert (>= Y_0 -1000.0))\n")
    _vnnlib(d / "props" / "cmp.vnnlib", -0.5, 0.5, "(assert (>= Y_0 (+ Y_1 0.5)))\n")
    lines = ["onnx,vnnlib,timeout,expected"]
    for k in range(2):
        for p, exp in (("big", "unsat"), ("low", "sat"), ("cmp", "")):
            lines.append(f"nets/net{k}.onnx,props/{p}.vnnlib,30,{exp}")
    (d / "instances.csv").write_text("\n".join(lines) + "\n")
    return d


def _sequential(inst, capsys) -> dict:
    """`verification verify --json`, one instance after the other in this process."""
    code = main(["verify", inst.onnx, inst.vnnlib, "--json", "--timeout", str(inst.timeout)])
    out = capsys.readouterr()
    assert code in (0, 1, 3), out.err
    return json.loads(out.out)


def test_read_instances_relative_paths_header_expected(suite):
    insts = read_instances(suite / "instances.csv")
    assert len(insts) == 6 and len({i.id for i in insts}) == 6
    assert insts[0].onnx == str((suite / "nets" / "net0.onnx").resolve())
    assert [i.expected for i in insts[:3]] == ["unsat", "sat", ""]
    assert insts[0].timeout == 30.0 and insts[0].row == 2
    assert [i.id for i in read_instances(suite / "instances.csv")] == [i.id for i in insts]  # stable ids


def test_batch_two_workers_equals_sequential(suite, tmp_path, capsys):
    insts = read_instances(suite / "instances.csv")
    before = os.environ.get("NUMBA_NUM_THREADS")
    run = run_batch(insts, tmp_path, workers=2)
    # the driver's NUMBA_NUM_THREADS is untouched: numba raises if it changes after its threads started
    # (this broke every later numba kernel in the same process)
    assert os.environ.get("NUMBA_NUM_THREADS") == before
    assert not run.interrupted and sorted(run.computed) == sorted(i.id for i in insts)
    assert run.summary["workers"] == 2
    for inst in insts:
        rec = run.records[inst.id]
        seq = _sequential(inst, capsys)
        assert rec["result"] == seq["vnncomp"], inst.id
        assert rec["status"] == seq["status"]
        text = (tmp_path / f"{inst.id}.txt").read_text()
        assert text.split("\n", 1)[0] == rec["result"]
        if rec["result"] == "sat":  # the file's assignment is the counterexample, re-checked from the file
            assert rec["confirmed"] is True
            xs, ys = parse_assignment(text)
            assert xs == rec["counterexample"] and ys == rec["output"]
    assert [r["result"] for r in (run.records[i.id] for i in insts[:2])] == ["unsat", "sat"]
    totals = run.summary["totals"]
    assert totals["scored"] == 4 and totals["score"] == 4 * SCORE_CORRECT and totals["wrong"] == 0
    lines = (tmp_path / "summary.csv").read_text().splitlines()
    assert len(lines) == 7 and lines[0].startswith("id,onnx,vnnlib,timeout,expected,result")
    # one network loaded once per worker: 6 instances, 2 nets, 2 workers -> at least 2 cache hits
    assert sum(run.records[i.id]["cached"] for i in insts) >= 2


def test_resume_recomputes_only_missing(suite, tmp_path):
    insts = read_instances(suite / "instances.csv")
    first = run_batch(insts, tmp_path, workers=2)
    gone = insts[4].id
    (tmp_path / f"{gone}.json").unlink()
    (tmp_path / f"{insts[1].id}.json").write_text("{\"truncated")  # a partial record is recomputed too
    second = run_batch(insts, tmp_path, workers=1)
    assert sorted(second.computed) == sorted([gone, insts[1].id])
    assert sorted(second.skipped) == sorted(i.id for i in insts if i.id not in (gone, insts[1].id))
    for inst in insts:
        assert second.records[inst.id]["result"] == first.records[inst.id]["result"]
    third = run_batch(insts, tmp_path)  # nothing left: no cluster is started
    assert third.computed == [] and len(third.skipped) == 6


def _kill_worker_once(instance: dict, options: dict) -> dict:
    """Runs on a worker: logs the attempt; the first attempt on the target instance kills its own process."""
    opts = dict(options)
    marker, log, target = Path(opts.pop("marker")), Path(opts.pop("log")), opts.pop("target")
    with open(log, "a") as fh:
        fh.write(f"{instance['id']} {os.getpid()} {os.environ.get('NUMBA_NUM_THREADS')}\n")
    if instance["id"] == target and not marker.exists():
        marker.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return verify_instance(instance, opts)


def test_worker_killed_mid_run_every_result_once(suite, tmp_path):
    insts = read_instances(suite / "instances.csv")
    target = insts[2].id
    out = tmp_path / "out"
    opts = {"marker": str(tmp_path / "killed"), "log": str(tmp_path / "log"), "target": target}
    run = run_batch(insts, out, workers=2, options=opts, task=_kill_worker_once)
    assert (tmp_path / "killed").exists()  # a worker process really died
    log = [line.split() for line in (tmp_path / "log").read_text().splitlines()]
    attempts = [row[0] for row in log]
    assert all(row[2] == "1" for row in log)  # every worker runs single-threaded numba (set in the worker)
    assert attempts.count(target) == 2  # Dask ran the task again elsewhere
    assert sorted(run.computed) == sorted(i.id for i in insts)  # every result exactly once
    assert len(run.computed) == len(set(run.computed)) == 6
    assert all(run.records[i.id]["result"] != "error" for i in insts)
    assert sorted(p.stem for p in out.glob("*.json") if p.stem != "summary") == sorted(i.id for i in insts)
    ref = run_batch(insts, tmp_path / "ref", workers=1)
    assert {k: r["result"] for k, r in run.records.items()} == {k: r["result"] for k, r in ref.records.items()}


def test_ctrl_c_writes_partial_summary_and_resume_finishes(tmp_path):
    # a fast instance, then ACAS Xu 1_1/prop_3 (seconds): the interrupt lands while the second runs
    rows = ["onnx/ACASXU_run2a_1_9_batch_2000.onnx,vnnlib/prop_4.vnnlib,30,sat",
            "onnx/ACASXU_run2a_1_1_batch_2000.onnx,vnnlib/prop_3.vnnlib,1,"]
    (tmp_path / "onnx").symlink_to(ACAS / "onnx")
    (tmp_path / "vnnlib").symlink_to(ACAS / "vnnlib")
    csv = tmp_path / "inst.csv"
    csv.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "verification", "batch", str(csv), "--out", str(out), "--workers", "1",
           "--json", "--timeout-scale", "60"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            preexec_fn=_default_sigint)
    first = read_instances(csv)[0].id
    deadline = time.monotonic() + 90
    while not (out / f"{first}.json").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["totals"]["finished"] == 1
    assert json.loads(stdout)["interrupted"] is True
    assert "interrupted" in stderr.strip().splitlines()[-1]
    # resume: only the unfinished instance runs (now with its own 1 s budget: timeout or unsat)
    done = subprocess.run(cmd[:-2] + ["--quiet"], capture_output=True, text=True, env=ENV, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "1 instance(s) already finished, 1 to run" in done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["totals"]["finished"] == 2 and not summary["interrupted"]
    assert summary["totals"]["score"] == SCORE_CORRECT  # the sat row, counterexample confirmed


def test_score_vnncomp_rules():
    assert score({"expected": "unsat", "result": "unsat"}) == SCORE_CORRECT
    assert score({"expected": "sat", "result": "sat", "confirmed": True}) == SCORE_CORRECT
    assert score({"expected": "sat", "result": "sat", "confirmed": False}) == SCORE_WRONG
    assert score({"expected": "unsat", "result": "sat", "confirmed": True}) == SCORE_WRONG
    assert score({"expected": "sat", "result": "unsat"}) == SCORE_WRONG
    assert score({"expected": "sat", "result": "timeout"}) == 0
    assert score({"expected": "", "result": "unsat"}) is None


def test_single_network_list_cell(suite):
    csv = suite / "pairs.csv"
    csv.write_text("\"[('f', 'nets/net0.onnx')]\",props/big.vnnlib,10\n")
    (inst,) = read_instances(csv)
    assert inst.onnx == str((suite / "nets" / "net0.onnx").resolve())


@pytest.mark.parametrize("content, needle", [
    (None, "does not exist"),
    ("", "no instances"),
    ("a.onnx,b.vnnlib\n", "expected onnx,vnnlib,timeout"),
    ("nets/net0.onnx,props/big.vnnlib,abc\n", "timeout 'abc' is not a number"),
    ("nets/net0.onnx,props/big.vnnlib,-1\n", "timeout must be"),
    ("nets/net0.onnx,props/big.vnnlib,10,maybe\n", "expected answer 'maybe'"),
    ("nets/missing.onnx,props/big.vnnlib,10\n", "onnx file 'nets/missing.onnx' does not exist"),
    # VNN-COMP 2026 lists the networks of a VNN-LIB 2.0 query as (name, path) pairs
    ("\"[('f', 'nets/net0.onnx'), ('g', 'nets/net1.onnx')]\",props/big.vnnlib,10\n", "2 networks listed, but props/big.vnnlib is a VNN-LIB 1.0"),
    ("\"[('f', 'nets/net0.onnx'), ('f', 'nets/net1.onnx')]\",props/big.vnnlib,10\n", "'f' is listed twice"),
    ("\"[('f', 3)]\",props/big.vnnlib,10\n", "neither a path nor a list"),
])
def test_bad_csv_one_line_exit_2(suite, tmp_path, capsys, content, needle):
    csv = suite / f"bad_{abs(hash(needle))}.csv"
    if content is not None:
        csv.write_text(content)
    code = main(["batch", str(csv if content is not None else tmp_path / "nope.csv"), "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("verification batch: error:") and needle in err[0]


def test_bad_options_exit_2(suite, tmp_path, capsys):
    for extra in (["--workers", "0"], ["--timeout-scale", "nan"], ["--workers", "2", "--scheduler", "tcp://x:1"]):
        code = main(["batch", str(suite / "instances.csv"), "--out", str(tmp_path), *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1, (extra, err)
