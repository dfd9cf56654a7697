"""LipSDP / Pauli QCs / ECLipsE: published values, exact cases, inequalities, certification."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from verification.activations import GroupSort, Householder, MaxMin, ReLU
from verification.lipschitz import lipschitz
from verification.lipschitz.residual_maxmin import maxmin_residual_relu_lipschitz, residual_maxmin_lipschitz
from verification.lipschitz.sdp.certificate import certify_psd
from verification.lipschitz.sdp.chain import build_chain_sdp
from verification.io import load_network
from verification.io.common import chain_from_weights
from verification.network import Dense, Network

warnings.simplefilter("ignore")  # cvxpy/Clarabel chatter

LIPSDP_DIR = Path(__file__).resolve().parents[1] / "data" / "lipsdp"  # copied in, see tests/data/README.md


def _mat_net(name: str) -> Network:
    return load_network(LIPSDP_DIR / f"{name}_weights.mat")


def _chain(ws, act=ReLU) -> Network:
    return chain_from_weights(ws, [None] * len(ws), [act() for _ in ws[:-1]], "test net")


# ---------------------------------------------------------------- published values (arobey1/LipSDP README)
@pytest.mark.parametrize("name, layer_ref, neuron_ref, lmi_size", [
    ("random", 39.839, 36.482, None),
    # MNIST: exact SVD input reduction, 784 inputs -> row space of W0 (50), LMI 50 + 50
    ("mnist", 26.2560, 24.3663, 100),
])
def test_published_values(name, layer_ref, neuron_ref, lmi_size):
    net = _mat_net(name)
    layer = lipschitz(net, method="lipsdp-layer")
    neuron = lipschitz(net, method="lipsdp-neuron")
    assert layer.certified and neuron.certified
    assert layer.value == pytest.approx(layer_ref, abs=1e-3)
    assert neuron.value == pytest.approx(neuron_ref, abs=1e-3)
    if lmi_size is not None:
        assert neuron.details["lmi_size"] == lmi_size


def test_eclipse_on_published_nets():
    net = _mat_net("random")
    fast = lipschitz(net, method="eclipse-fast")
    ecl = lipschitz(net, method="eclipse")
    neuron = lipschitz(net, method="lipsdp-neuron")
    # values measured with eclipse-nn 0.1.7 (Fast) and its per-layer SDPs routed to Clarabel (reference §3.1)
    assert fast.value == pytest.approx(39.9015, abs=1e-3)
    assert ecl.value == pytest.approx(36.5043, abs=2e-3)
    assert fast.certified and ecl.certified
    assert neuron.value <= ecl.value + 1e-6 and neuron.value <= fast.value + 1e-6


# ---------------------------------------------------------------- exact cases
def test_affine_network_equals_operator_norms():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((4, 6))
    net = Network([Dense(w)])
    assert lipschitz(net, method="lipsdp-neuron").value == pytest.approx(np.linalg.norm(w, 2), rel=1e-6)
    # l-inf SDP with no hidden layer returns ||w||_1 exactly (optimal tau_i = |w_i|)
    r = lipschitz(net, method="lipsdp-neuron", norm="inf", output=2)
    assert r.certified and r.value == pytest.approx(np.abs(w[2]).sum(), rel=1e-6)


def test_maxmin_unit_is_one_but_relu_rewrite_gives_sqrt2():
    net = Network([Dense(np.eye(2)), MaxMin(), Dense(np.eye(2))])
    r = lipschitz(net, method="lipsdp-neuron")
    assert r.certified and r.value == pytest.approx(1.0, abs=1e-6) and r.value >= 1.0
    assert r.details["qc"] == ["maxmin-sum-preserving"]
    rewrite = maxmin_residual_relu_lipschitz(np.eye(2), np.eye(2))
    assert rewrite["certified"] and rewrite["value"] == pytest.approx(np.sqrt(2.0), abs=1e-6)


def test_orthogonal_maxmin_net_is_one():
    rng = np.random.default_rng(0)
    ws = [np.linalg.qr(rng.standard_normal((16, 16)))[0] for _ in range(4)]
    r = lipschitz(_chain(ws, MaxMin), method="lipsdp-neuron")
    assert r.certified
    assert r.value == pytest.approx(1.0, abs=1e-5)
    assert r.value >= 1.0 - 1e-12  # certified upper bound of the exact constant 1


# ---------------------------------------------------------------- soundness on random nets
def _random_one_hidden(seed: int, act):
    rng = np.random.default_rng(seed)
    if act is ReLU:
        w1, w2 = rng.standard_normal((5, 6)), rng.standard_normal((2, 5))  # full row rank: exact is exact
    else:
        w1, w2 = rng.standard_normal((6, 4)), rng.standard_normal((3, 6))  # 3 pair differences in R^4
    return _chain([w1, w2], act)


@pytest.mark.parametrize("act", [ReLU, MaxMin])
def test_soundness_random_one_hidden_layer(act):
    for seed in range(15):
        net = _random_one_hidden(seed, act)
        exact = lipschitz(net, method="exact").value
        naive = lipschitz(net, method="naive").value
        neuron = lipschitz(net, method="lipsdp-neuron")
        layer = lipschitz(net, method="lipsdp-layer")
        tol = 1e-6 * naive
        assert neuron.certified and layer.certified
        assert exact <= neuron.value + tol, (seed, exact, neuron.value)
        assert neuron.value <= layer.value + 1e-4 * layer.value
        assert layer.value <= naive + tol
        if act is ReLU:
            for m in ("eclipse", "eclipse-fast"):
                e = lipschitz(net, method=m)
                assert e.certified and neuron.value <= e.value + 1e-4 * e.value
                assert exact <= e.value + tol


def test_soundness_linf_per_output():
    for seed in range(4):
        for act in (ReLU, MaxMin):
            net = _random_one_hidden(100 + seed, act)
            for out in range(net.out_dim):
                exact = lipschitz(net, method="exact", norm="inf", output=out).value
                sdp = lipschitz(net, method="lipsdp-neuron", norm="inf", output=out)
                naive = lipschitz(net, method="naive", norm="inf", output=out).value
                assert sdp.certified
                assert exact <= sdp.value * (1 + 1e-6) and sdp.value <= naive * (1 + 1e-6)
    # logit difference and full l-inf -> l-inf (max over rows)
    net = _random_one_hidden(7, ReLU)
    diff = lipschitz(net, method="lipsdp-neuron", norm="inf", output=np.array([1.0, -1.0]))
    assert diff.value >= lipschitz(net, method="exact", norm="inf", output=np.array([1.0, -1.0])).value - 1e-6
    full = lipschitz(net, method="lipsdp-neuron", norm="inf")
    assert full.value == pytest.approx(max(full.details["per_output"]))


def test_deeper_net_chain_of_inequalities():
    rng = np.random.default_rng(5)
    dims = [8, 16, 16, 16, 3]
    ws = [rng.standard_normal((dims[i + 1], dims[i])) / np.sqrt(dims[i]) for i in range(4)]
    net = _chain(ws)
    lower = lipschitz(net, method="sampled", n_points=500).value
    vals = {m: lipschitz(net, method=m).value for m in ("lipsdp-neuron", "lipsdp-layer", "eclipse", "eclipse-fast", "naive")}
    assert lower <= vals["lipsdp-neuron"] * (1 + 1e-9)
    assert vals["lipsdp-neuron"] <= vals["lipsdp-layer"] * (1 + 1e-6) <= vals["naive"] * (1 + 1e-5)
    assert vals["lipsdp-neuron"] <= min(vals["eclipse"], vals["eclipse-fast"]) * (1 + 1e-6)


# ---------------------------------------------------------------- certification
def test_loose_first_order_answer_is_never_certified_below_the_optimum():
    net = _mat_net("random")
    ref = lipschitz(net, method="lipsdp-neuron").value  # 36.482 (interior point, certified)
    # SCS stopped early (eps 1e-3, 1000 iterations) reports "optimal" 30.82, far *below* the SDP optimum
    r = lipschitz(net, method="lipsdp-neuron", solver="SCS", eps=1e-3, max_iters=1000)
    assert r.details["solver_bound"] < ref - 1.0
    assert not r.certified
    assert r.details["certificate"]["reason"]
    assert "NOT certified" in str(r)
    # whatever a solver says, a certified value is never below the optimum
    for eps, iters in ((1e-4, 2000),):
        r = lipschitz(net, method="lipsdp-neuron", solver="SCS", eps=eps, max_iters=iters)
        assert not r.certified or r.value >= ref - 1e-6


def test_certify_rejects_infeasible_multipliers_and_finds_exact_rho():
    rng = np.random.default_rng(1)
    net = _chain([rng.standard_normal((5, 4)), rng.standard_normal((2, 5))])
    sdp = build_chain_sdp(net.canonical(), 2, None, "neuron")
    y = np.zeros(sdp.nonneg.shape[0])  # all multipliers 0: last block is -W^T W, not PSD
    cert = sdp.certify(y, repair=False)
    assert not cert.certified and cert.reason
    # with the optimal multipliers the certified rho matches the solver to high accuracy
    good = lipschitz(net, method="lipsdp-neuron")
    assert good.certified and good.details["certificate"]["min_eig"] >= 0
    assert good.value == pytest.approx(good.details["solver_bound"], rel=1e-5)
    # generic check: K0 + rho*E_J ⪰ 0 with K0 = [[0, 1], [1, -1]] needs rho >= 1 exactly (1x1 Schur complement)
    c = certify_psd(np.array([[0.0, 1.0], [1.0, -1.0]]), np.array([0]), 1.0, rho_hint=0.5)
    assert not c.certified and "not positive definite" in c.reason
    c = certify_psd(np.array([[0.0, 1.0], [1.0, 1.0]]), np.array([0]), 1.0)
    assert c.certified and c.rho == pytest.approx(1.0, rel=1e-9) and c.rho >= 1.0


# ---------------------------------------------------------------- residual MaxMin form
def test_residual_maxmin_between_sampled_and_naive():
    rng = np.random.default_rng(2)
    d = 6
    w_in = rng.standard_normal((d, 4)) / 2
    inner = [rng.standard_normal((d, d)) / np.sqrt(d) for _ in range(2)]
    w_out = rng.standard_normal((2, d)) / 2
    res = residual_maxmin_lipschitz(w_in, inner, w_out)
    res0 = residual_maxmin_lipschitz(w_in, inner, w_out, cross_terms=False)
    assert res["certified"] and res0["certified"]
    assert res["value"] <= res0["value"] * (1 + 1e-6)  # more multipliers never hurt
    assert res["value"] <= res["naive"]
    act = MaxMin()

    def f(x):
        h = x @ w_in.T
        for v in inner:
            h = h + act(h @ v.T)
        return h @ w_out.T

    x = rng.standard_normal((4000, 4))
    y = x + 1e-4 * rng.standard_normal((4000, 4))
    ratio = np.linalg.norm(f(x) - f(y), axis=1) / np.linalg.norm(x - y, axis=1)
    assert ratio.max() <= res["value"] * (1 + 1e-9)


# ---------------------------------------------------------------- auto and CLI
def test_auto_picks_exact_for_small_and_lipsdp_for_deeper():
    net = _random_one_hidden(0, ReLU)
    assert lipschitz(net).method == "exact"
    rng = np.random.default_rng(0)
    deep = _chain([rng.standard_normal((8, 4)), rng.standard_normal((8, 8)), rng.standard_normal((2, 8))])
    r = lipschitz(deep)
    assert r.method == "lipsdp-neuron" and r.certified


def test_cli_lipsdp_neuron_json():
    path = LIPSDP_DIR / "random_weights.mat"
    out = subprocess.run(
        [sys.executable, "-m", "verification", "lipschitz", str(path), "--method", "lipsdp-neuron", "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["certified"] and abs(d["value"] - 36.482) < 1e-3


@pytest.mark.parametrize("make_act", [lambda: GroupSort(3), lambda: Householder(np.array([0.6, 0.8]))])
def test_groupsort_and_householder_orthogonal_nets_and_bracketing(make_act):
    rng = np.random.default_rng(4)
    act = make_act()
    d = 6
    ws = [np.linalg.qr(rng.standard_normal((d, d)))[0] for _ in range(3)]
    r = lipschitz(_chain(ws, lambda: act), method="lipsdp-neuron")
    assert r.certified and r.value == pytest.approx(1.0, abs=1e-5)  # orthogonal pieces: exactly 1
    ws = [rng.standard_normal((d, 4)), rng.standard_normal((d, d)), rng.standard_normal((2, d))]
    net = _chain(ws, lambda: act)
    lower = lipschitz(net, method="sampled", n_points=500).value
    neuron = lipschitz(net, method="lipsdp-neuron")
    layer = lipschitz(net, method="lipsdp-layer")
    naive = lipschitz(net, method="naive").value
    assert neuron.certified and layer.certified
    assert lower <= neuron.value * (1 + 1e-9) <= layer.value * (1 + 1e-6) <= naive * (1 + 1e-5)


def test_slope_restricted_alpha_nonzero():
    from verification.activations import LeakyReLU

    rng = np.random.default_rng(9)
    w1, w2 = rng.standard_normal((4, 5)), rng.standard_normal((3, 4))  # W1 full row rank: 'exact' applies
    # slope [1, 1] is the identity: ||W2 W1|| is the infimum of the SDP (approached as T -> inf, not attained),
    # so a certified value must lie just above it
    lin = Network([Dense(w1), LeakyReLU(1.0), Dense(w2)])
    r = lipschitz(lin, method="lipsdp-neuron")
    true = np.linalg.norm(w2 @ w1, 2)
    assert r.certified and true * (1 - 1e-9) <= r.value <= true * (1 + 1e-3)
    leaky = Network([Dense(w1), LeakyReLU(0.1), Dense(w2)])
    exact = lipschitz(leaky, method="exact").value
    neuron = lipschitz(leaky, method="lipsdp-neuron")
    assert neuron.certified and exact <= neuron.value * (1 + 1e-6) <= lipschitz(leaky, method="naive").value * (1 + 1e-6)


def test_eclipse_fast_certificate_on_a_deep_net_is_not_looser_than_its_recursion():
    """ECLipsE-Fast's point is tight in the last block, so raising ρ alone certifies it only with large bumps;
    the certificate also tries the multipliers scaled by 1+δ and must end at most 1e-6 above the recursion's
    own bound (it can be below: the exact minimal ρ for those multipliers), and never below LipSDP-Neuron."""
    rng = np.random.default_rng(21)
    dims = [6] + [10] * 19 + [3]
    ws = [1.5 * rng.standard_normal((dims[i + 1], dims[i])) / np.sqrt(dims[i]) for i in range(len(dims) - 1)]
    net = chain_from_weights(ws, [None] * len(ws), [ReLU() for _ in ws[:-1]], "deep net")
    fast = lipschitz(net, method="eclipse-fast")
    neuron = lipschitz(net, method="lipsdp-neuron", solver="ipm")
    assert fast.certified and neuron.certified
    assert fast.value <= fast.details["recursion_bound"] * (1 + 1e-6)
    assert neuron.value <= fast.value * (1 + 1e-9)


def test_auto_uses_lipsdp_neuron_up_to_2100_rows_in_l2_but_600_in_linf():
    """l2 LMIs go to the block-tridiagonal interior-point method, which solves 2048 rows (depth 32 x 64) in about
    25 s; l-inf LMIs still go to CVXOPT, so their cap stays at 600 rows."""
    from verification.lipschitz.registry import available_methods

    ok = available_methods()["lipsdp-neuron"].auto_applicable
    rng = np.random.default_rng(0)
    ws = [rng.standard_normal((64, 16))] + [rng.standard_normal((64, 64)) for _ in range(11)] + [rng.standard_normal((3, 64))]
    net = chain_from_weights(ws, [None] * len(ws), [ReLU() for _ in ws[:-1]], "12 x 64")  # LMI 16 + 12*64 = 784 rows
    assert ok(net, 2, False)
    assert not ok(net, "inf", True)
    deep = chain_from_weights(ws[:1] + ws[1:2] * 32 + ws[-1:], [None] * 34, [ReLU()] * 33, "33 x 64")  # 2128 rows
    assert ok(chain_from_weights(ws[:1] + ws[1:2] * 31 + ws[-1:], [None] * 33, [ReLU()] * 32, "32 x 64"), 2, False)
    assert not ok(deep, 2, False)


# ---------------------------------------------------------------- certificate properties (the one-check start)
@pytest.mark.parametrize("dims", [[2, 10, 10, 2], [5, 30, 30, 4], [3] + [12] * 8 + [2]])
def test_certified_rho_passes_an_independent_eigenvalue_check_and_is_near_the_exact_minimum(dims):
    """For ECLipsE-Fast multipliers, the certified ρ is above the exact minimal ρ by a tiny relative margin, and
    K(ρ) recomputed here (dense, independently of the certificate's balancing) is positive semidefinite by a
    plain eigenvalue check with the rounding margin n·eps·||K||; the block-Cholesky route agrees."""
    from verification.lipschitz.sdp.certificate import certify_block_tridiagonal
    from verification.lipschitz.sdp.chain import ChainBlocks
    from verification.lipschitz.sdp.eclipse_recursion import chain_multipliers, eclipse_chain

    rng = np.random.default_rng(len(dims))
    ws = [rng.standard_normal((dims[i + 1], dims[i])) / np.sqrt(dims[i]) for i in range(len(dims) - 1)]
    sdp = build_chain_sdp(_chain(ws).canonical(), 2, None, "neuron")
    raw, ls, _ = eclipse_chain(sdp.matrices, 0.5, True)
    y = chain_multipliers(sdp, raw, ls)
    y[0] = 0.0
    y = 1.01 * y  # strictly inside: K_RR ≻ 0 with room
    cert = certify_psd(sdp.matrix(y), sdp.j_index, sdp.a)
    assert cert.certified and cert.rho >= cert.rho_schur
    assert cert.rho <= cert.rho_schur * (1 + 1e-8)
    y[0] = cert.rho
    k = sdp.matrix(y)
    assert np.linalg.eigvalsh(k)[0] >= -k.shape[0] * np.finfo(float).eps * np.linalg.norm(k)
    # below the exact minimum the matrix is indefinite, and the certificate does not pass it
    y[0] = cert.rho_schur * (1 - 1e-6)
    assert np.linalg.eigvalsh(sdp.matrix(y))[0] < 0
    blk = certify_block_tridiagonal(*ChainBlocks(sdp).blocks(np.r_[0.0, y[1:]]), sdp.a)
    assert blk.certified and blk.rho_schur == pytest.approx(cert.rho_schur, rel=1e-9)
    assert blk.rho == pytest.approx(cert.rho, rel=1e-8)


def test_certificate_refuses_at_once_when_the_multiplier_block_has_no_margin():
    """K_RR singular (a zero multiplier block next to a nonzero coupling): no ρ can pass, refused without bumps."""
    k0 = np.array([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 1.0]])  # K_RR = [[1, 1], [1, 1]] is singular
    c = certify_psd(k0, np.array([0]), 1.0, rho_hint=3.0)
    assert not c.certified and c.bumps == 0 and "cannot repair" in c.reason
