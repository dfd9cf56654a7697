"""The block-tridiagonal barrier method for the l2 LipSDP LMI (verification/lipschitz/_chain_ipm.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from verification.activations import MaxMin, ReLU, Tanh
from verification.errors import SolverError
from verification.io import load_network
from verification.io.common import chain_from_weights
from verification.lipschitz import lipschitz
from verification.lipschitz._chain_ipm import BlockTridiagonalLMI, chain_barrier_solve
from verification.lipschitz.lipsdp import _chain_start, _initial_point, build_chain_sdp

SHARED = Path(__file__).resolve().parents[3] / "shared" / "benchmarks" / "lipsdp"


def _net(dims, act, seed, gain=1.0):
    rng = np.random.default_rng(seed)
    ws = [gain * rng.standard_normal((dims[i + 1], dims[i])) / np.sqrt(dims[i]) for i in range(len(dims) - 1)]
    return chain_from_weights(ws, [None] * len(ws), [act() for _ in ws[:-1]], "test net").canonical()


def _dense_k(lmi: BlockTridiagonalLMI, y):
    dd, ee = lmi.blocks(y)
    st = lmi.starts
    k = np.zeros((lmi.n, lmi.n))
    for b in range(lmi.nb):
        k[st[b] : st[b + 1], st[b] : st[b + 1]] = dd[b]
        if b + 1 < lmi.nb:
            k[st[b] : st[b + 1], st[b + 1] : st[b + 2]] = ee[b]
            k[st[b + 1] : st[b + 2], st[b] : st[b + 1]] = ee[b].T
    return k


@pytest.mark.parametrize(
    "dims, act, form",
    [([6, 5, 7, 4, 3], ReLU, "neuron"), ([6, 5, 7, 4, 3], ReLU, "layer"), ([5, 6, 6, 3], Tanh, "neuron"),
     ([4, 6, 6, 2], MaxMin, "neuron")],
)
def test_structured_linear_algebra_equals_dense(dims, act, form):
    """Blocks, log det, K⁻¹, gradient and Hessian of -log det K agree with dense float64 formulas."""
    net = _net(dims, act, seed=1)
    sdp = build_chain_sdp(net, 2, None, form)
    y = _initial_point(sdp)
    lmi = BlockTridiagonalLMI(sdp)
    k = _dense_k(lmi, y)
    assert np.allclose(k, sdp.matrix(y), rtol=0, atol=1e-12 * np.abs(k).max())
    logdet, chols, ee = lmi.factor(y)
    assert logdet == pytest.approx(np.linalg.slogdet(k)[1], rel=1e-12)
    z = lmi.inverse(chols, ee)
    zd = np.linalg.inv(k)
    assert np.abs(z - zd).max() <= 1e-9 * np.abs(zd).max()
    grad, hess = lmi.grad_hess(z)
    m = y.size
    base = sdp.matrix(np.zeros(m))
    a = [sdp.matrix(np.eye(m)[i]) - base for i in range(m)]
    g_dense = np.array([-np.trace(zd @ ai) for ai in a])
    h_dense = np.array([[np.trace(zd @ ai @ zd @ aj) for aj in a] for ai in a])
    assert np.abs(grad - g_dense).max() <= 1e-9 * np.abs(g_dense).max()
    assert np.abs(hess - h_dense).max() <= 1e-9 * np.abs(h_dense).max()


def test_not_positive_definite_is_detected():
    sdp = build_chain_sdp(_net([4, 5, 5, 2], ReLU, seed=2), 2, None, "neuron")
    y = _initial_point(sdp)
    y[0] = -1.0  # negative rho: the input block is negative definite
    assert BlockTridiagonalLMI(sdp).factor(y) is None


@pytest.mark.parametrize("seed, dims, act", [(0, [10, 20, 20, 20, 5], ReLU), (3, [8, 12, 12, 12, 12, 3], ReLU),
                                             (4, [6, 10, 10, 10, 2], Tanh)])
@pytest.mark.parametrize("method", ["lipsdp-neuron", "lipsdp-layer"])
def test_agrees_with_cvxopt(seed, dims, act, method):
    net = _net(dims, act, seed, gain=1.4)
    a = lipschitz(net, method=method, solver="ipm")
    b = lipschitz(net, method=method, solver="cvxopt-lowrank" if method.endswith("neuron") else "CVXOPT")
    assert a.certified and b.certified
    assert a.details["ipm_status"] == "converged"
    assert a.value == pytest.approx(b.value, rel=1e-5)


@pytest.mark.skipif(not SHARED.exists(), reason="shared LipSDP weights missing")
def test_published_values_with_the_barrier_method():
    net = load_network(SHARED / "random_weights.mat")
    assert lipschitz(net, method="lipsdp-neuron", solver="ipm").value == pytest.approx(36.482, abs=1e-3)
    assert lipschitz(net, method="lipsdp-layer", solver="ipm").value == pytest.approx(39.839, abs=1e-3)


def test_orthogonal_maxmin_net_is_one_with_the_barrier_method():
    rng = np.random.default_rng(5)
    qs = [np.linalg.qr(rng.standard_normal((8, 8)))[0] for _ in range(4)]
    net = chain_from_weights(qs, [None] * 4, [MaxMin() for _ in range(3)], "orthogonal MaxMin net")
    r = lipschitz(net, method="lipsdp-neuron", solver="ipm")
    assert r.certified
    assert r.value == pytest.approx(1.0, abs=1e-5)


def test_every_iterate_is_feasible_so_an_early_stop_still_certifies_an_upper_bound():
    net = _net([10, 16, 16, 16, 4], ReLU, seed=7, gain=1.4)
    sdp = build_chain_sdp(net, 2, None, "neuron")
    y_opt, info = chain_barrier_solve(sdp, _chain_start(sdp))
    assert info["status"] == "converged"
    best = sdp.bound(sdp.certify(y_opt).rho)
    for budget in (1, 3, 10):
        y, info = chain_barrier_solve(sdp, _chain_start(sdp), max_newton=budget)
        assert info["status"] == "iteration limit"
        cert = sdp.certify(y)
        assert cert.certified
        assert sdp.bound(cert.rho) >= best * (1 - 1e-9)


def test_linf_is_refused_with_a_clear_error():
    net = _net([4, 6, 6, 2], ReLU, seed=8)
    with pytest.raises(SolverError, match="l2"):
        lipschitz(net, method="lipsdp-neuron", norm="inf", output=0, solver="ipm")


def test_a_stopped_solve_says_so_in_the_printed_result():
    net = _net([10, 16, 16, 16, 4], ReLU, seed=7, gain=1.4)
    r = lipschitz(net, method="lipsdp-neuron", solver="ipm", max_newton=2)
    assert r.certified and r.details["solver_status"] == "iteration limit"
    assert "stopped early (iteration limit)" in str(r)
    done = lipschitz(net, method="lipsdp-neuron", solver="ipm")
    assert done.value <= r.value and "stopped early" not in str(done)
