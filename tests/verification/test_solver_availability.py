"""Without the optional CVXOPT ([gpl] extra), the default SDP methods still certify through the free solvers."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from verification import lipschitz
from verification.activations import ReLU
from verification.lipschitz.sdp import cvxpy_problem, solve
from verification.network import Dense, Network


def _net(seed: int = 0) -> Network:
    rng = np.random.default_rng(seed)
    return Network([Dense(rng.standard_normal((6, 3))), ReLU(), Dense(rng.standard_normal((5, 6))), ReLU(),
                    Dense(rng.standard_normal((2, 5)))])


@pytest.fixture
def no_cvxopt(monkeypatch):
    real = cvxpy_problem.installed_solvers()
    without = [s for s in real if s != "CVXOPT"]
    monkeypatch.setattr(cvxpy_problem, "installed_solvers", lambda: list(without))
    monkeypatch.setattr(solve, "installed_solvers", lambda: list(without))
    real_available = solve.backend_available
    monkeypatch.setattr(solve, "backend_available",
                        lambda name: False if name in ("CVXOPT", "cvxopt-lowrank") else real_available(name))
    ecl = importlib.import_module("verification.lipschitz.eclipse")  # the package name is shadowed by the function
    monkeypatch.setattr(ecl, "installed_solvers", lambda: list(without))


@pytest.mark.parametrize("method", ["lipsdp-neuron", "lipsdp-layer", "eclipse", "auto"])
def test_sdp_methods_certify_without_cvxopt(no_cvxopt, method):
    net = _net()
    with_all = lipschitz(net, method="naive").value
    res = lipschitz(net, method=method)
    assert res.certified
    sampled = lipschitz(net, method="sampled").value
    assert sampled <= res.value * (1 + 1e-9) and res.value <= with_all * (1 + 1e-9)
    if method.startswith("lipsdp"):
        assert res.solver in ("CLARABEL", "SCS", "ipm"), res.solver


def test_forced_missing_solver_is_bad_input(no_cvxopt):
    from verification.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="not installed"):
        lipschitz(_net(), method="lipsdp-neuron", solver="CVXOPT")
