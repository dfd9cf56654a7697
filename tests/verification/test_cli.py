"""Command line: JSON output, equivalence of entry points, exit code 2 with one-line messages."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from .onnx_builders import mlp_onnx


def run(*args: str, module: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "verification", *args] if module else [shutil.which("verification"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_json_output_and_entry_points_agree(example_dir):
    model = str(example_dir / "classifier.onnx")
    a = run("lipschitz", model, "--method", "naive", "--json")
    assert a.returncode == 0, a.stderr
    obj = json.loads(a.stdout)
    assert {"value", "method", "norm", "certified", "seconds"} <= set(obj)
    assert obj["method"] == "naive" and obj["certified"] is True and obj["norm"] == 2
    if shutil.which("verification"):
        b = run("lipschitz", model, "--method", "naive", "--json", module=False)
        assert json.loads(b.stdout)["value"] == obj["value"]


def test_text_output_and_logit_difference(example_dir):
    model = str(example_dir / "classifier.onnx")
    out = run("lipschitz", model, "--method", "sampled", "--norm", "inf", "--output", "0-2")
    assert out.returncode == 0, out.stderr
    assert "lower bound" in out.stdout and "sampled" in out.stdout
    full = json.loads(run("lipschitz", model, "--method", "naive", "--norm", "inf", "--output", "0-2", "--json").stdout)
    assert full["output"] == [1.0, 0.0, -1.0]
    low = json.loads(run("lipschitz", model, "--method", "sampled", "--norm", "inf", "--output", "0-2", "--json").stdout)
    assert low["value"] <= full["value"]


def _bad_cases(tmp_path, example_dir):
    rng = np.random.default_rng(0)
    data = (example_dir / "classifier.onnx").read_bytes()
    (tmp_path / "trunc.onnx").write_bytes(data[: len(data) // 3])
    mlp_onnx(tmp_path / "softmax.onnx", rng.normal(size=(4, 3)), rng.normal(size=4), rng.normal(size=(2, 4)), extra="Softmax")
    w = rng.normal(size=(4, 3))
    w[0, 0] = np.nan
    mlp_onnx(tmp_path / "nan.onnx", w, rng.normal(size=4), rng.normal(size=(2, 4)))
    np.savez(tmp_path / "shape.npz", W0=rng.normal(size=(4, 3)), b0=np.zeros(4), W1=rng.normal(size=(2, 5)), b1=np.zeros(2))
    (tmp_path / "model.h5").write_bytes(b"\x89HDF\r\n")
    import torch

    torch.save(torch.nn.Sequential(torch.nn.Linear(3, 2)), tmp_path / "pickled.pt")
    return [
        ("trunc.onnx", [], "truncated or corrupt"),
        ("softmax.onnx", [], "unsupported ONNX operator 'Softmax'"),
        ("nan.onnx", [], "NaN"),
        ("shape.npz", [], "weight 1 expects 5 inputs"),
        ("model.h5", [], "unknown model format"),
        ("pickled.pt", [], "--trust"),
        ("missing.onnx", [], "not found"),
    ]


def test_bad_input_gives_exit_2_and_one_line_message(tmp_path, example_dir):
    for name, extra, expected in _bad_cases(tmp_path, example_dir):
        res = run("lipschitz", str(tmp_path / name), *extra)
        assert res.returncode == 2, (name, res.stdout, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], (name, res.stderr)
        assert "Traceback" not in res.stderr


def test_trust_flag_loads_pickled_module(tmp_path):
    import torch

    torch.manual_seed(0)
    torch.save(torch.nn.Sequential(torch.nn.Linear(3, 2)), tmp_path / "pickled.pt")
    res = run("lipschitz", str(tmp_path / "pickled.pt"), "--trust", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["method"] == "exact"  # affine network: exact is the weight norm


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--method", "nosuch"], "'method' parameter"),
        (["--output", "7"], "'output' parameter must be an index"),
        (["--output", "1-x"], "--output must be an index"),
        (["--method", "exact"], "at most one hidden"),
    ],
)
def test_bad_options_exit_2(example_dir, args, expected):
    res = run("lipschitz", str(example_dir / "classifier.onnx"), *args)
    assert res.returncode == 2 and expected in res.stderr, res.stderr


def test_info_command(example_dir):
    res = run("info", str(example_dir / "classifier.onnx"), "--json")
    obj = json.loads(res.stdout)
    assert obj["in_dim"] == 2 and obj["out_dim"] == 3 and obj["format"] == "onnx"


def test_demo_prints_certified_bounds_and_region_checks(example_dir):
    res = subprocess.run([sys.executable, str(example_dir / "demo.py")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    # the certified interval for l2: sampled lower bound <= constant <= best certified upper bound
    line = next(l for l in res.stdout.splitlines() if l.startswith("l2:"))
    low, up = float(line.split()[1]), float(line.split("<=")[2].split()[0])
    assert 0 < low <= up
    assert "x0 = [-0.5 -0.5], eps = 0.1: holds" in res.stdout
    assert "eps = 0.1: violated; counterexample" in res.stdout
