"""Structured (block-tridiagonal) linear algebra and the primal-dual interior-point method for the l2 LipSDP LMI
(verification/lipschitz/sdp/block_tridiagonal.py, sdp/backends/chain_pd.py)."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

from verification.activations import MaxMin, ReLU, Tanh
from verification.errors import InvalidParameterError, SolverError
from verification.io import load_network
from verification.io.common import chain_from_weights
from verification.lipschitz import lipschitz
from verification.lipschitz.sdp.backends.chain_pd import (
    _bt_factors,
    _bt_solve,
    _bt_times,
    _gram_pattern,
    _pattern,
    _sym_of,
    _sym_pattern,
    chain_pd_solve,
    completion_inverse,
)
from verification.lipschitz.sdp.block_tridiagonal import BlockTridiagonalLMI
from verification.lipschitz.sdp.certificate import block_cholesky
from verification.lipschitz.sdp.chain import build_chain_sdp
from verification.lipschitz.sdp.starts import chain_start, initial_point

SHARED = Path(__file__).resolve().parents[1] / "data" / "lipsdp"  # copied in, see tests/data/README.md


def _net(dims, act, seed, gain=1.0):
    rng = np.random.default_rng(seed)
    ws = [gain * rng.standard_normal((dims[i + 1], dims[i])) / np.sqrt(dims[i]) for i in range(len(dims) - 1)]
    return chain_from_weights(ws, [None] * len(ws), [act() for _ in ws[:-1]], "test net").canonical()


def _dense_k(lmi: BlockTridiagonalLMI, y):
    return _dense_blocks(*lmi.blocks(y), lmi.starts)


def _dense_blocks(dd, ee, st):
    n, nb = st[-1], len(dd)
    k = np.zeros((n, n))
    for b in range(nb):
        k[st[b] : st[b + 1], st[b] : st[b + 1]] = dd[b]
        if b + 1 < nb:
            k[st[b] : st[b + 1], st[b + 1] : st[b + 2]] = ee[b]
            k[st[b + 1] : st[b + 2], st[b] : st[b + 1]] = ee[b].T
    return k


@pytest.mark.parametrize(
    "dims, act, form",
    [([6, 5, 7, 4, 3], ReLU, "neuron"), ([6, 5, 7, 4, 3], ReLU, "layer"), ([5, 6, 6, 3], Tanh, "neuron"),
     ([4, 6, 6, 2], MaxMin, "neuron"),
     # more than one 64 x 64 tile of atom pairs in the Schur kernel, variables spanning tile boundaries
     ([6, 40, 40, 30, 3], ReLU, "neuron"), ([6, 40, 40, 30, 3], ReLU, "layer")],
)
def test_structured_linear_algebra_equals_dense(dims, act, form):
    """Blocks, log det, K⁻¹, the adjoint map A(M) = (tr C_a M) and the Schur complement tr(C_a X C_b Z) agree with
    dense float64 formulas (X = Z = K⁻¹: the Hessian of -log det K; X ≠ Z: the HKM Schur complement)."""
    net = _net(dims, act, seed=1)
    sdp = build_chain_sdp(net, 2, None, form)
    y = initial_point(sdp)
    lmi = BlockTridiagonalLMI(sdp)
    k = _dense_k(lmi, y)
    assert np.allclose(k, sdp.matrix(y), rtol=0, atol=1e-12 * np.abs(k).max())
    logdet, chols, ee = lmi.factor(y)
    assert logdet == pytest.approx(np.linalg.slogdet(k)[1], rel=1e-12)
    z = lmi.inverse(chols, ee)
    zd = np.linalg.inv(k)
    assert np.abs(z - zd).max() <= 1e-9 * np.abs(zd).max()
    proj_z = lmi.projections(z)
    # slope QCs (ReLU, tanh) take the gather path (β = scaled unit vectors), MaxMin the general one
    assert proj_z[0] == ("general" if act is MaxMin else "selected")
    grad, hess = lmi.trace_products(proj_z), lmi.schur(proj_z, proj_z)
    assert np.array_equal(np.tril(lmi.schur(proj_z, proj_z, lower=True)), np.tril(hess))
    m = y.size
    base = sdp.matrix(np.zeros(m))
    a = [sdp.matrix(np.eye(m)[i]) - base for i in range(m)]
    g_dense = np.array([np.trace(zd @ ai) for ai in a])
    h_dense = np.array([[np.trace(zd @ ai @ zd @ aj) for aj in a] for ai in a])
    assert np.abs(grad - g_dense).max() <= 1e-9 * np.abs(g_dense).max()
    assert np.abs(hess - h_dense).max() <= 1e-9 * np.abs(h_dense).max()
    # a second (primal) matrix: X = max-det completion of a random positive definite matrix's pattern
    rng = np.random.default_rng(0)
    b = rng.standard_normal((lmi.n, lmi.n))
    xd, xe = _pattern(b @ b.T + lmi.n * np.eye(lmi.n), lmi.starts)
    x = np.linalg.inv(_dense_blocks(*completion_inverse(xd, xe), lmi.starts))
    h2 = lmi.schur(lmi.projections(x), proj_z)
    h2_dense = np.array([[np.trace(ai @ x @ aj @ zd) for aj in a] for ai in a])
    assert np.abs(h2 - h2_dense).max() <= 1e-9 * np.abs(h2_dense).max()
    assert np.abs(lmi.trace_pattern(xd, xe) - [np.trace(ai @ x) for ai in a]).max() <= 1e-9 * np.abs(x).max()


@pytest.mark.parametrize("sizes", [[3, 4, 2, 5, 3], [2, 2], [4, 1, 3]])
def test_block_tridiagonal_solve(sizes):
    """S⁻¹ R by block forward/back substitution (used by the second-order corrector) equals a dense solve."""
    rng = np.random.default_rng(7)
    st = list(np.concatenate([[0], np.cumsum(sizes)]))
    b = rng.standard_normal((st[-1], st[-1]))
    sd, se = _pattern(b @ b.T + st[-1] * np.eye(st[-1]), st)
    s = _dense_blocks(sd, se, st)
    _, chols = block_cholesky(sd, se)
    r = rng.standard_normal((st[-1], 6))
    x = _bt_solve(_bt_factors(se, chols), r, st)
    assert np.abs(x - np.linalg.solve(s, r)).max() <= 1e-12 * np.abs(r).max()


@pytest.mark.parametrize("sizes", [[3, 4, 2, 5, 3], [2, 2], [4, 1, 3]])
def test_corrector_products_from_the_completion_solve(sizes):
    """The corrector's pattern terms from ``Y = ΔS Z`` and ``X̂ Y = W⁻¹ Y`` (block solves with the completion's
    inverse ``W``): ``P(sym(X̂ Y))``, ``P(sym(X̂ Y Y))`` and ``P(Yᵀ X̂ Y)`` equal the dense products, and the
    block-row products with a reused output array equal ``ΔS Z``."""
    rng = np.random.default_rng(11)
    st = list(np.concatenate([[0], np.cumsum(sizes)]))
    n = st[-1]
    b = rng.standard_normal((n, n))
    xd, xe = _pattern(b @ b.T + 0.5 * np.eye(n), st)
    wd, we = completion_inverse(xd, xe)
    xhat = np.linalg.inv(_dense_blocks(wd, we, st))
    c = rng.standard_normal((n, n))
    z = np.linalg.inv(c @ c.T + n * np.eye(n))
    dd, de = _pattern(rng.standard_normal((n, n)), st)
    dd = [(d + d.T) / 2 for d in dd]
    ds = _dense_blocks(dd, de, st)
    out = np.full((n, n), np.nan)
    y = _bt_times(dd, de, z, st, out=out)
    assert y is out and np.abs(y - ds @ z).max() <= 1e-12 * np.abs(ds @ z).max()
    _, wchols = block_cholesky(wd, we)
    xy = _bt_solve(_bt_factors(we, wchols), y.copy(), st, overwrite=True)
    assert np.abs(xy - xhat @ y).max() <= 1e-9 * np.abs(xhat @ y).max()

    def dense_pattern(m):
        return _dense_blocks(*_pattern(m, st), st)

    def sym(m):
        return (m + m.T) / 2

    for (got_d, got_e), want in (
        (_sym_of(xy, st), sym(xhat @ y)),
        (_sym_pattern(xy, y, st), sym(xhat @ y @ y)),
        (_gram_pattern(y, xy, st), y.T @ xhat @ y),
        (_sym_pattern(xhat, y, st), sym(xhat @ y)),
    ):
        assert np.abs(_dense_blocks(got_d, got_e, st) - dense_pattern(want)).max() <= 1e-9 * np.abs(want).max()


@pytest.mark.parametrize("sizes", [[3, 4, 2, 5, 3], [2, 2], [4, 1, 3]])
def test_max_determinant_completion(sizes):
    """W = Σ_cliques X_C⁻¹ - Σ_separators X_S⁻¹ is block tridiagonal and W⁻¹ reproduces the given blocks; a
    clique block that is not positive definite is reported (the partial matrix is then not completable)."""
    rng = np.random.default_rng(len(sizes))
    st = list(np.concatenate([[0], np.cumsum(sizes)]))
    b = rng.standard_normal((st[-1], st[-1]))
    xd, xe = _pattern(b @ b.T + 0.3 * np.eye(st[-1]), st)
    w = _dense_blocks(*completion_inverse(xd, xe), st)
    xd2, xe2 = _pattern(np.linalg.inv(w), st)
    assert max(np.abs(p - q).max() for p, q in zip(xd + xe, xd2 + xe2)) <= 1e-10
    if len(sizes) > 2:
        xe[1] = 10.0 * np.ones_like(xe[1])  # breaks the second clique
        assert completion_inverse(xd, xe) is None


def test_not_positive_definite_is_detected():
    sdp = build_chain_sdp(_net([4, 5, 5, 2], ReLU, seed=2), 2, None, "neuron")
    y = initial_point(sdp)
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
    assert a.details["solver_status"] == "optimal"
    assert a.value == pytest.approx(b.value, rel=1e-5)


def test_published_values_with_the_interior_point_method():
    net = load_network(SHARED / "random_weights.mat")
    assert lipschitz(net, method="lipsdp-neuron", solver="ipm").value == pytest.approx(36.482, abs=1e-3)
    assert lipschitz(net, method="lipsdp-layer", solver="ipm").value == pytest.approx(39.839, abs=1e-3)


def test_orthogonal_maxmin_net_is_one_with_the_interior_point_method():
    rng = np.random.default_rng(5)
    qs = [np.linalg.qr(rng.standard_normal((8, 8)))[0] for _ in range(4)]
    net = chain_from_weights(qs, [None] * 4, [MaxMin() for _ in range(3)], "orthogonal MaxMin net")
    r = lipschitz(net, method="lipsdp-neuron", solver="ipm")
    assert r.certified
    assert r.value == pytest.approx(1.0, abs=1e-5)


def test_every_iterate_is_feasible_so_an_early_stop_still_certifies_an_upper_bound():
    net = _net([10, 16, 16, 16, 4], ReLU, seed=7, gain=1.4)
    sdp = build_chain_sdp(net, 2, None, "neuron")
    y_opt, info = chain_pd_solve(sdp, chain_start(sdp))
    assert info["status"] == "converged"
    best = sdp.bound(sdp.certify(y_opt).rho)
    for budget in (1, 3, 10):
        y, info = chain_pd_solve(sdp, chain_start(sdp), max_iter=budget)
        assert info["status"] == "iteration limit"
        cert = sdp.certify(y)
        assert cert.certified
        assert sdp.bound(cert.rho) >= best * (1 - 1e-9)


def test_a_numerical_failure_stops_with_the_last_feasible_iterate(monkeypatch):
    """A linear-algebra failure inside an iteration (here injected into the primal step) ends the solve with
    a status instead of an exception, and the returned multipliers still certify an upper bound."""
    pd = importlib.import_module("verification.lipschitz.sdp.backends.chain_pd")

    net = _net([10, 16, 16, 16, 4], ReLU, seed=7, gain=1.4)
    sdp = build_chain_sdp(net, 2, None, "neuron")
    best = sdp.bound(sdp.certify(chain_pd_solve(sdp, chain_start(sdp))[0]).rho)
    calls = {"n": 0}
    real = pd._clique_step

    def failing(*args):
        calls["n"] += 1
        if calls["n"] > 6:
            raise np.linalg.LinAlgError("Eigenvalues did not converge")
        return real(*args)

    monkeypatch.setattr(pd, "_clique_step", failing)
    y, info = chain_pd_solve(sdp, chain_start(sdp))
    assert info["status"].startswith("numerical failure") and info["iterations"] == 4
    cert = sdp.certify(y)
    assert cert.certified and sdp.bound(cert.rho) >= best * (1 - 1e-9)


def test_min_rho_matches_the_certificate_and_a_finite_difference_gradient():
    """BlockTridiagonalLMI.min_rho: the exact minimal ρ for given multipliers (the certificate's Schur value) and
    its envelope gradient (central differences)."""
    sdp = build_chain_sdp(_net([6, 8, 8, 8, 8, 3], ReLU, seed=11, gain=1.3), 2, None, "neuron")
    y = initial_point(sdp)
    lmi = BlockTridiagonalLMI(sdp)
    rho, grad = lmi.min_rho(y)
    assert rho == pytest.approx(sdp.certify(y).rho_schur, rel=1e-8)
    for v in (1, 5, 12, 30):
        h = 1e-5 * y[v]
        up, dn = y.copy(), y.copy()
        up[v] += h
        dn[v] -= h
        fd = (lmi.min_rho(up)[0] - lmi.min_rho(dn)[0]) / (2 * h)
        assert grad[v] == pytest.approx(fd, rel=1e-4, abs=1e-9 * abs(rho) / y[v])
    y_bad = y.copy()
    y_bad[sdp.var_offsets[-1] :] = 0.0  # no multipliers in the last layer: the deep blocks are not definite
    assert lmi.min_rho(y_bad)[0] == float("inf")


def test_layer_scaled_start_is_strictly_feasible_lower_and_leads_to_the_same_optimum():
    from verification.lipschitz.sdp.starts import LAYER_SCALE_MIN_LAYERS, fast_start, layer_scaled_start

    dims = [6] + [7] * LAYER_SCALE_MIN_LAYERS + [3]
    sdp = build_chain_sdp(_net(dims, ReLU, seed=12, gain=1.5), 2, None, "neuron")
    y_fast = fast_start(sdp)
    y = layer_scaled_start(sdp, y_fast)
    assert y is not None and y[0] < y_fast[0]
    assert BlockTridiagonalLMI(sdp).factor(y) is not None and np.all(y[sdp.nonneg] > 0)
    assert np.array_equal(chain_start(sdp), y)  # used for nets this deep
    a, ia = chain_pd_solve(sdp, y)
    b, ib = chain_pd_solve(sdp, y_fast)
    assert ia["status"] == ib["status"] == "converged"
    # the per-iteration trace: one row per step taken, steps in (0, 1], the relative gap ends below the tolerance
    assert len(ia["trace"]) == ia["iterations"] - 1 and ia["rel_gap"] <= 1e-7
    assert all(0 < r[3] <= 1 and 0 < r[4] <= 1 and r[6] > 0 for r in ia["trace"])
    assert sdp.bound(sdp.certify(a).rho) == pytest.approx(sdp.bound(sdp.certify(b).rho), rel=1e-6)
    # an independent solver: at gain 1.5 CVXOPT and Clarabel both report this LMI infeasible (its entries span too
    # many orders), so the cross-check uses the same shape at gain 1; the ipm starts from the layer-scaled point
    net = _net(dims, ReLU, seed=12, gain=1.0)
    sdp1 = build_chain_sdp(net, 2, None, "neuron")
    assert np.array_equal(chain_start(sdp1), layer_scaled_start(sdp1, fast_start(sdp1)))
    ours = lipschitz(net, method="lipsdp-neuron", solver="ipm")
    ref = lipschitz(net, method="lipsdp-neuron", solver="cvxopt-lowrank")
    assert ours.certified and ref.certified
    assert ours.value == pytest.approx(ref.value, rel=1e-5)


def test_linf_is_refused_with_a_clear_error():
    net = _net([4, 6, 6, 2], ReLU, seed=8)
    with pytest.raises(SolverError, match="l2"):
        lipschitz(net, method="lipsdp-neuron", norm="inf", output=0, solver="ipm")


def test_a_stopped_solve_says_so_in_the_printed_result():
    net = _net([10, 16, 16, 16, 4], ReLU, seed=7, gain=1.4)
    with pytest.raises(InvalidParameterError, match="unknown option.*max_newton"):
        lipschitz(net, method="lipsdp-neuron", solver="ipm", max_newton=2)  # the removed barrier method's option
    r = lipschitz(net, method="lipsdp-neuron", solver="ipm", max_iter=2)
    assert r.certified and r.details["solver_status"] == "iteration limit"
    assert "stopped early (iteration limit)" in str(r)
    done = lipschitz(net, method="lipsdp-neuron", solver="ipm")
    assert done.value <= r.value and "stopped early" not in str(done)


def test_deep_net_with_widely_scaled_layers_is_solved_and_certified():
    """Positive homogeneity: scaling W_k by c_k scales every Lipschitz bound by Π c_k.  With c_k = 8 over 14
    layers the LMI's entries span ~1e25; the solve and the float64 certificate (power-of-two balancing) must
    still give the unscaled answer times 8^14, and equal the dense CVXOPT answer on the unscaled net."""
    dims = [6] + [7] * 13 + [3]
    rng = np.random.default_rng(11)
    ws = [1.3 * rng.standard_normal((dims[i + 1], dims[i])) / np.sqrt(dims[i]) for i in range(len(dims) - 1)]
    net = chain_from_weights(ws, [None] * len(ws), [ReLU() for _ in ws[:-1]], "deep net")
    big = chain_from_weights([8.0 * w for w in ws], [None] * len(ws), [ReLU() for _ in ws[:-1]], "scaled net")
    a = lipschitz(net, method="lipsdp-neuron", solver="ipm")
    b = lipschitz(big, method="lipsdp-neuron", solver="ipm")
    ref = lipschitz(net, method="lipsdp-neuron", solver="cvxopt-lowrank")
    assert a.certified and b.certified and ref.certified
    assert a.details["ipm_status"] == b.details["ipm_status"] == "converged"
    assert a.value == pytest.approx(ref.value, rel=1e-5)
    assert b.value == pytest.approx(a.value * 8.0 ** len(ws), rel=1e-5)
    assert a.value <= lipschitz(net, method="naive").value  # LipSDP is never above the norm product


@pytest.mark.parametrize("dims", [[6, 8, 8, 8, 3], [5] + [7] * 10 + [2]])
def test_structured_certificate_equals_the_dense_one(dims):
    """The block-Cholesky certificate (used for large chain LMIs) gives the dense certificate's minimal ρ and
    verdict, and rejects multipliers for which no ρ works."""
    from verification.lipschitz.sdp.certificate import certify_block_tridiagonal, certify_psd

    rng = np.random.default_rng(len(dims))
    ws = [1.3 * rng.standard_normal((dims[i + 1], dims[i])) / np.sqrt(dims[i]) for i in range(len(dims) - 1)]
    sdp = build_chain_sdp(chain_from_weights(ws, [None] * len(ws), [ReLU() for _ in ws[:-1]], "n"), 2, None, "neuron")
    y, info = chain_pd_solve(sdp, chain_start(sdp))
    y[0] = 0.0
    dense = certify_psd(sdp.matrix(y), sdp.j_index, sdp.a)
    structured = certify_block_tridiagonal(*BlockTridiagonalLMI(sdp).blocks(y), sdp.a)
    assert dense.certified and structured.certified
    assert structured.rho_schur == pytest.approx(dense.rho_schur, rel=1e-10)
    assert structured.rho == pytest.approx(dense.rho, rel=1e-8)
    y[1 + sdp.qcs[0].n_vars :] = 0.0  # multipliers of the deeper layers zero: their diagonal blocks are ⪯ 0
    assert not certify_block_tridiagonal(*BlockTridiagonalLMI(sdp).blocks(y), sdp.a).certified
