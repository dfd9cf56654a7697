"""`verification batch --lipschitz`: Lipschitz jobs over many models on a 2-worker loopback cluster equal the
sequential `lipschitz` calls, resume skips finished jobs, a bad model is an error record (the batch goes on),
and bad rows / options are one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")

from verification import Network, lipschitz  # noqa: E402
from verification.activations import ReLU, Tanh  # noqa: E402
from verification.batch import run_batch  # noqa: E402
from verification.batch.lipschitz_jobs import (  # noqa: E402
    job_error_record, lipschitz_job, load_job_record, read_jobs, write_job_summary)
from verification.cli import main  # noqa: E402
from verification.io import load_network, save_network  # noqa: E402
from verification.layers import Dense  # noqa: E402

KIND = {"task": lipschitz_job, "load": load_job_record, "summarize": write_job_summary,
        "error_record": job_error_record}


@pytest.fixture(scope="module")
def jobs_csv(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("lipjobs")
    rng = np.random.default_rng(3)
    for k, act in enumerate((ReLU(), Tanh(), ReLU())):
        w = [rng.normal(size=(6, 3)), rng.normal(size=(6, 6)) / 2, rng.normal(size=(2, 6))]
        save_network(Network((Dense(w[0], rng.normal(size=6)), act, Dense(w[1]), act, Dense(w[2]))),
                     d / f"net{k}.npz")
    (d / "broken.npz").write_bytes(b"not a zip file")
    (d / "jobs.csv").write_text("model,method,norm,time_limit\n"
                                "net0.npz,naive\nnet0.npz,naive,inf\nnet1.npz,eclipse-fast,2,60\n"
                                "net2.npz,lipsdp-neuron\nbroken.npz,naive\nnet0.npz,naive\n")
    return d / "jobs.csv"


def test_two_workers_equal_sequential_calls_and_resume(jobs_csv, tmp_path):
    jobs = read_jobs(jobs_csv)
    assert len(jobs) == 5  # the repeated (model, method, norm) row is one job
    run = run_batch(jobs, tmp_path / "out", workers=2, **KIND)
    assert sorted(run.computed) == sorted(j.id for j in jobs) and not run.skipped
    for job in jobs:
        rec = run.records[job.id]
        if job.model.endswith("broken.npz"):
            assert rec["result"] == "error" and "broken.npz" in rec["error"] and "\n" not in rec["error"]
            continue
        ref = lipschitz(load_network(job.model), job.method, job.norm)
        assert rec["result"] == "certified" and rec["method_used"] == ref.method
        # deterministic methods give the same float; the SDP may differ by the solver's last digits
        assert rec["value"] == pytest.approx(ref.value, rel=0 if job.method != "lipsdp-neuron" else 1e-6)
        assert (tmp_path / "out" / f"{job.id}.txt").read_text().startswith(repr(rec["value"]))
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["totals"] == {**summary["totals"], "jobs": 5, "finished": 5, "certified": 4, "error": 1}
    # a rerun skips every finished job and computes nothing
    again = run_batch(jobs, tmp_path / "out", workers=1, **KIND)
    assert sorted(again.skipped) == sorted(j.id for j in jobs) and not again.computed
    assert again.records == run.records


@pytest.mark.parametrize("row,needle", [
    ("missing.npz\n", "not found"),
    ("net0.npz,fast-magic\n", "unknown Lipschitz method"),
    ("net0.npz,naive,3\n", "norm must be 2 or inf"),
    ("net0.npz,naive,2,-1\n", "time limit"),
    ("net0.npz,naive,2,10,extra\n", "expected model"),
])
def test_bad_rows_one_line_exit_2(jobs_csv, tmp_path, capsys, row, needle):
    bad = jobs_csv.parent / f"bad_{abs(hash(row))}.csv"
    bad.write_text(row)
    assert main(["batch", "--lipschitz", str(bad), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and "line 1" in err[0]


def test_verify_method_option_is_refused_with_lipschitz(jobs_csv, tmp_path, capsys):
    assert main(["batch", "--lipschitz", str(jobs_csv), "--method", "bab", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "second column" in err[0]
