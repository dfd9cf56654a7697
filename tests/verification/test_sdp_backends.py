"""The SDP backend table and its fallback loop, and the layering of verification/lipschitz/."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import numpy as np
import pytest

from verification.activations import ReLU
from verification.errors import InvalidParameterError, SolverError
from verification.io.common import chain_from_weights
from verification.lipschitz.sdp import solve as sdp_solve
from verification.lipschitz.sdp.chain import build_chain_sdp

LIPSCHITZ = Path(sdp_solve.__file__).resolve().parents[1]
METHODS = {"baseline", "lipsdp", "eclipse", "residual_maxmin"}


def _sdp(widths=(3, 5, 5, 2), seed=0):
    rng = np.random.default_rng(seed)
    ws = [rng.normal(size=(widths[k + 1], widths[k])) / np.sqrt(widths[k]) for k in range(len(widths) - 1)]
    net = chain_from_weights(ws, [None] * len(ws), [ReLU() for _ in ws[:-1]], "net")
    return build_chain_sdp(net, 2, None, "neuron")


def _fake(name, calls, fail=False, status="optimal"):
    def solve(sdp, *, progress=False, label="lipsdp", **options):
        calls.append(name)
        if fail:
            raise SolverError(f"{name} failed")
        y = np.zeros(sdp.nonneg.shape[0])
        y[0] = 1.0
        return y, status, {f"{name}_ran": True}

    return solve


@pytest.fixture
def table(monkeypatch):
    """Replace every backend by a recording fake; returns (install, calls)."""
    calls: list[str] = []
    monkeypatch.setattr(sdp_solve, "mosek_available", lambda: False)

    def install(**behaviour):
        for name, entry in list(sdp_solve.BACKENDS.items()):
            fail, status = behaviour.get(name, (False, "optimal"))
            monkeypatch.setitem(sdp_solve.BACKENDS, name,
                                sdp_solve.Backend(_fake(name, calls, fail, status), entry.fallback, entry.error_key,
                                                  entry.accept))

    return install, calls


def test_every_backend_has_the_one_signature():
    assert sdp_solve.SOLVERS == ("auto", "cvxopt-lowrank", "ipm", "CVXOPT", "CLARABEL", "SCS", "MOSEK")
    for name, backend in sdp_solve.BACKENDS.items():
        params = inspect.signature(backend.solve).parameters
        assert list(params)[0] == "sdp", name
        assert params["progress"].kind is inspect.Parameter.KEYWORD_ONLY, name
        assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()), name


def test_auto_falls_back_along_the_table(table):
    install, calls = table
    sdp = _sdp()  # 2 activation layers, 13 rows, 11 multipliers: plain CVXOPT first
    assert sdp_solve.auto_backend(sdp) == "CVXOPT"
    install(CVXOPT=(True, ""))
    _, used, info = sdp_solve.solve_chain_sdp(sdp)
    assert calls == ["CVXOPT", "CLARABEL"] and used == "CLARABEL"
    assert info["first_solver_error"] == "CVXOPT failed" and info["CLARABEL_ran"]


def test_a_second_cvxpy_failure_is_raised(table):
    install, calls = table
    install(CVXOPT=(True, ""), CLARABEL=(True, ""))
    with pytest.raises(SolverError, match="CLARABEL failed"):
        sdp_solve.solve_chain_sdp(_sdp())
    assert calls == ["CVXOPT", "CLARABEL"]


def test_ipm_failure_goes_to_cvxopt_and_a_forced_solver_is_not_replaced(table):
    install, calls = table
    deep = _sdp((3, 4, 4, 4, 4, 2))  # 4 activation layers: ipm first
    assert sdp_solve.auto_backend(deep) == "ipm"
    install(ipm=(True, ""))
    _, used, info = sdp_solve.solve_chain_sdp(deep)
    assert calls == ["ipm", "CVXOPT"] and used == "CVXOPT" and info["ipm_error"] == "ipm failed"
    calls.clear()
    with pytest.raises(SolverError):
        sdp_solve.solve_chain_sdp(deep, "ipm")
    assert calls == ["ipm"]


def test_a_small_unconverged_ipm_answer_is_retried_under_auto_only(table):
    install, calls = table
    deep = _sdp((3, 4, 4, 4, 4, 2))
    install(ipm=(False, "iteration limit"))
    _, used, info = sdp_solve.solve_chain_sdp(deep)
    assert calls == ["ipm", "CVXOPT"] and "iteration limit" in info["ipm_error"]
    calls.clear()
    _, used, info = sdp_solve.solve_chain_sdp(deep, "ipm")
    assert calls == ["ipm"] and used == "ipm" and info["solver_status"] == "iteration limit"


def test_solver_names(table):
    install, calls = table
    install()
    assert sdp_solve.solve_chain_sdp(_sdp(), "clarabel")[1] == "CLARABEL"
    with pytest.raises(InvalidParameterError, match="must be one of"):
        sdp_solve.solve_chain_sdp(_sdp(), "IPM")


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            if node.module == "verification.lipschitz":
                out |= {f"verification.lipschitz.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return out


def test_layering_of_the_lipschitz_package():
    for path in LIPSCHITZ.rglob("*.py"):
        rel = path.relative_to(LIPSCHITZ)
        own = {m.split(".")[2] for m in _imports(path) if m.startswith("verification.lipschitz.")}
        if rel.parts[0] == "sdp":  # the SDP layer never imports a method or the registry
            assert not own & (METHODS | {"registry", "registration"}), rel
        elif rel.stem in METHODS:  # no method imports another method or the registry
            assert not own & (METHODS | {"registry"}), rel
        assert not any(m.startswith("verification.io") or m.startswith("verification.cli")
                       for m in _imports(path)), rel
    cert = _imports(LIPSCHITZ / "sdp" / "certificate.py")
    assert not any(m.startswith("verification") for m in cert)  # the trust base depends on no solver


def test_methods_use_the_layer_and_activation_protocols():
    probe = re.compile(r"isinstance\(.*(ReLU|LeakyReLU|Tanh|Sigmoid|GroupSort|Householder|Identity|MaxMin)\)")
    raw = re.compile(r"\.weights?\b|dense_layers|isinstance\(.*\bDense\b")
    for path in LIPSCHITZ.rglob("*.py"):
        text = path.read_text()
        assert not probe.search(text), path
        assert not raw.search(text), path
