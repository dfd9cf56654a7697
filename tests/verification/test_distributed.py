"""Distributed branch and bound (verification.batch.distributed) on loopback Dask clusters of 1 and 2 workers:
the verdict equals sequential `verify` on ACAS Xu instances and random small nets, the tree of pieces is the
same for 1 and 2 workers, both workers take pieces, and a worker killed mid-run loses no piece and counts
none twice."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")

from verification.activations import ReLU  # noqa: E402
from verification.batch.distributed import verify_distributed  # noqa: E402
from verification.batch.runner import _client, _close  # noqa: E402
from verification.cli import main  # noqa: E402
from verification.io import load_network  # noqa: E402
from verification.network import Dense, Network  # noqa: E402
from verification.smt import verify  # noqa: E402
from verification.spec import box_property  # noqa: E402
from verification.vnnlib import read_vnnlib  # noqa: E402

ACAS = Path(__file__).resolve().parents[2] / "tests" / "data" / "acasxu"
SMALL = {"slice_boxes": 16, "piece_boxes": 4}  # many small pieces: real distribution even on easy instances
WEAK = {"n_samples": 8, "pgd_steps": 0, "pgd_starts": 0}  # leave counterexamples to branch and bound


@pytest.fixture(scope="module")
def client2():
    client, cluster = _client(2, None)
    yield client
    _close(client, cluster)


@pytest.fixture(scope="module")
def client1():
    client, cluster = _client(1, None)
    yield client
    _close(client, cluster)


def _acas(net: str, p: int):
    return (load_network(ACAS / "onnx" / f"ACASXU_run2a_{net}_batch_2000.onnx"),
            read_vnnlib(ACAS / "vnnlib" / f"prop_{p}.vnnlib"))


@pytest.mark.parametrize("net,p", [("1_1", 2), ("5_3", 3), ("1_9", 4), ("2_3", 2), ("1_1", 1)])
def test_acasxu_verdict_equals_sequential(client2, net, p):
    n, prop = _acas(net, p)
    seq = verify(n, prop, timeout=120)
    dist = verify_distributed(n, prop, 120, client=client2, **SMALL)
    assert dist.status == seq.status and seq.status in ("holds", "violated")
    if dist.status == "violated":
        assert prop.is_violated_exactly(dist.counterexample, n(dist.counterexample))


def test_pieces_same_for_1_and_2_workers_and_both_workers_work(client1, client2):
    n, prop = _acas("1_1", 2)
    trees = []
    for client in (client1, client2):
        got: list[dict] = []
        res = verify_distributed(n, prop, 120, client=client, on_piece=got.append, **SMALL)
        assert res.status == "holds" and res.details["duplicates"] == 0
        trees.append({r["id"]: (r["kind"], r["boxes"], r["unresolved"]) for r in got})
        if client is client2:
            assert res.details["workers_used"] == 2  # idle workers took pieces
    assert trees[0] == trees[1] and len(trees[0]) > 20  # the same pieces, decided the same way


def _random_net(seed: int) -> Network:
    r = np.random.default_rng(seed)
    return Network([Dense(r.normal(size=(12, 3)), r.normal(size=12) * 0.5), ReLU(),
                    Dense(r.normal(size=(12, 12)) / 3, r.normal(size=12) * 0.3), ReLU(),
                    Dense(r.normal(size=(2, 12)), r.normal(size=2) * 0.3)])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("offset", [0.01, 0.2])
def test_random_nets_verdict_equals_sequential(client2, seed, offset):
    """Thresholds on y0 - y1 a little (violated) and well (holds, after splitting) above the sampled maximum;
    a counterexample found by a worker (seed 4, 0.01) stops the run."""
    net = _random_net(seed)
    x = np.random.default_rng(seed + 100).uniform(-1, 1, size=(4000, 3))
    y = net(x)
    top = float((y[:, 0] - y[:, 1]).max())
    t = top + offset * (1 + abs(top))
    prop = box_property(-np.ones(3), np.ones(3), np.array([[-1.0, 1.0]]), np.array([-t]))  # y0 - y1 >= t
    seq = verify(net, prop, timeout=60, **WEAK)
    dist = verify_distributed(net, prop, 60, client=client2, **SMALL, **WEAK)
    assert dist.status == seq.status == ("violated" if offset == 0.01 else "holds")
    if dist.status == "violated":
        assert prop.is_violated_exactly(dist.counterexample, net(dist.counterexample))


def test_killed_worker_loses_no_piece(client2):
    """SIGKILL one worker after the first piece result: its pieces are re-run elsewhere (the nanny restarts
    it), every piece is counted once, and the verdict and the tree equal an undisturbed run."""
    n, prop = _acas("1_1", 2)
    ref: list[dict] = []
    base = verify_distributed(n, prop, 120, client=client2, on_piece=ref.append, **SMALL)
    pids = sorted(client2.run(os.getpid).values())
    killed: list[int] = []
    got: list[dict] = []

    def on_piece(res):
        got.append(res)
        if not killed and len(got) == 3:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    res = verify_distributed(n, prop, 120, client=client2, on_piece=on_piece, **SMALL)
    assert killed and res.status == base.status == "holds"
    assert sorted(r["id"] for r in got) == sorted(r["id"] for r in ref)  # no piece lost, none twice
    client2.wait_for_workers(2, timeout=60)


def test_cli_workers_option(tmp_path, capsys):
    onnx = ACAS / "onnx" / "ACASXU_run2a_1_9_batch_2000.onnx"
    out = tmp_path / "r.txt"
    assert main(["verify", str(onnx), str(ACAS / "vnnlib" / "prop_4.vnnlib"), "--workers", "1", "--quiet",
                 "--result-file", str(out)]) == 1
    assert out.read_text().startswith("sat\n((X_0 ")
    capsys.readouterr()
    for extra, fragment in ((["--workers", "0"], "--workers must be"),
                            (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "exclude each other"),
                            (["--workers", "2", "--method", "relu-split"], "cannot be distributed")):
        assert main(["verify", str(onnx), str(ACAS / "vnnlib" / "prop_4.vnnlib"), *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and fragment in err[0], err
