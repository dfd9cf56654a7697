"""Exit-code contract of the CLI beyond bad models: bad options, solver failures, internal errors, and the
``auto`` fallback that must always certify.  See docs/guarantees.md."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from verification import Dense, Network, lipschitz
from verification.activations import Tanh
from verification.cli import main
from verification.errors import InternalCheckError, SolverError


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "verification", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def tiny(tmp_path):
    """A 2-input ReLU net and a property that is violated near x = (0, 0)."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "net.npz", W0=rng.normal(size=(4, 2)), b0=np.zeros(4), W1=rng.normal(size=(1, 4)),
             b1=np.zeros(1), activations=np.array('[{"type": "relu"}]'))
    (tmp_path / "p.vnnlib").write_text(
        "(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n"
        "(assert (>= X_0 -1))\n(assert (<= X_0 1))\n(assert (>= X_1 -1))\n(assert (<= X_1 1))\n"
        "(assert (>= Y_0 -1000))\n"
    )
    return tmp_path


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--seed", "-1"], "--seed"),
        (["--timeout", "nan"], "--timeout"),
        (["--timeout", "-3"], "--timeout"),
        (["--result-file", "no/such/dir/out.txt"], "result"),
        (["--method", "bogus"], "--method"),
    ],
)
def test_bad_verify_options_are_one_line_exit_2(tiny, extra, expected):
    res = run("verify", str(tiny / "net.npz"), str(tiny / "p.vnnlib"), *extra)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and expected in lines[0], res.stderr
    assert res.stdout == ""


def test_result_file_is_written_on_success(tiny):
    res = run("verify", str(tiny / "net.npz"), str(tiny / "p.vnnlib"), "--result-file", str(tiny / "r.txt"))
    assert res.returncode == 1, res.stderr  # Y_0 >= -1000 is met everywhere: violated
    text = (tiny / "r.txt").read_text()
    assert text.startswith("sat") and "X_0" in text


def test_center_file_with_strings_is_bad_input(tiny):
    np.save(tiny / "c.npy", np.array(["a", "b"]))
    res = run("local-lipschitz", str(tiny / "net.npz"), "--center", str(tiny / "c.npy"), "--eps", "0.1")
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and "--center" in lines[0], res.stderr


def _patch(monkeypatch, exc: BaseException):
    def boom(*args, **kwargs):
        raise exc

    # ``verification.lipschitz`` the attribute is the function; the CLI imports it from the subpackage
    monkeypatch.setattr(sys.modules["verification.lipschitz"], "lipschitz", boom)


def test_solver_failure_on_valid_input_is_not_certified_exit_1(tiny, monkeypatch, capsys):
    _patch(monkeypatch, SolverError("CLARABEL returned status 'infeasible'; no bound"))
    code = main(["lipschitz", str(tiny / "net.npz"), "--method", "lipsdp-neuron", "--json"])
    out, err = capsys.readouterr()
    assert code == 1
    assert json.loads(out) == {"certified": False, "value": None,
                               "reason": "CLARABEL returned status 'infeasible'; no bound"}
    assert err.strip().splitlines() == ["verification lipschitz: not certified: CLARABEL returned status "
                                        "'infeasible'; no bound"]


@pytest.mark.parametrize("exc, expected", [
    (InternalCheckError("bound 1.0 below attained quotient 2.0"), "internal error: bound 1.0"),
    (RuntimeError("unexpected"), "please report"),
])
def test_internal_errors_exit_4_with_one_line_and_no_result(tiny, monkeypatch, capsys, exc, expected):
    _patch(monkeypatch, exc)
    code = main(["lipschitz", str(tiny / "net.npz"), "--json"])
    out, err = capsys.readouterr()
    assert code == 4 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0]


def test_auto_certifies_an_ill_conditioned_tanh_net_and_never_exceeds_naive():
    rng = np.random.default_rng(5)
    net = Network((Dense(rng.normal(size=(3, 2)) * 1e4, rng.normal(size=3)), Tanh(),
                   Dense(rng.normal(size=(1, 3)) * 1e4)))
    auto = lipschitz(net, "auto")
    naive = lipschitz(net, "naive")
    low = lipschitz(net, "sampled")
    assert auto.certified and np.isfinite(auto.value)
    assert low.value <= auto.value <= naive.value
    assert "auto_tried" in auto.details


def test_sampled_lower_bound_is_attained_on_a_tiny_weight_net():
    # weights near the float64 underflow: quotients of rounded outputs once exceeded the naive bound
    rng = np.random.default_rng(1)
    net = Network((Dense(rng.normal(size=(5, 3)) * 1e-160, rng.normal(size=5) * 1e-160), Tanh(),
                   Dense(rng.normal(size=(2, 5)) * 1e-150)))
    low = lipschitz(net, "sampled")
    naive = lipschitz(net, "naive")
    assert 0 <= low.value <= naive.value


@pytest.mark.parametrize("flag", ["--json", "--quiet"])
def test_json_and_quiet_keep_stderr_empty(flag, capsys):
    """Status lines of the SDP solvers go to the progress bar only: nothing on stderr with --json / --quiet."""
    code = main(["lipschitz", "examples/classifier.onnx", "--method", "lipsdp-neuron", flag])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    if flag == "--json":
        assert json.loads(out)["certified"] is True
