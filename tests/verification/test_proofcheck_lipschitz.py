"""Proofs of certified Lipschitz bounds (docs/proofs.md, "Lipschitz proofs"): every certified bound of the
SDP methods and of ``naive`` on the published LipSDP nets and on random ReLU / leaky-ReLU / tanh nets comes
with a proof the independent checker accepts, at the reported value; mutated proofs (a multiplier, rho, the
bound, a layer norm) and proofs for another network are rejected with the failing step named; the PSD
proofs agree with exact rational arithmetic and are never fooled near the boundary."""

import copy
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from verification.activations import GroupSort, Householder, LeakyReLU, MaxMin, ReLU, Tanh
from verification.cli import main as cli_main
from verification.io import load_network, save_network
from verification.io.common import chain_from_weights
from verification.lipschitz import lipschitz
from verification.proofcheck.lipschitz import _grouped, check_lipschitz_proof, fingerprint
from verification.proofcheck.psd import exact_psd, float_psd

ROOT = Path(__file__).resolve().parents[2]
LIPSDP = ROOT / "tests" / "data" / "lipsdp"


def _net(dims, act=ReLU, seed=0):
    rng = np.random.default_rng(seed)
    ws = [rng.standard_normal((dims[i + 1], dims[i])) / np.sqrt(dims[i]) for i in range(len(dims) - 1)]
    return chain_from_weights(ws, [rng.standard_normal(w.shape[0]) for w in ws], [act() for _ in ws[:-1]], "t")


def _prove(net, tmp_path, **kw):
    path = tmp_path / "lip.json"
    plain = lipschitz(net, **kw)
    res = lipschitz(net, proof=path, **kw)
    info = res.details["proof"]
    assert info["accepted"], info["message"]
    assert res.certified and "_proof" not in res.details
    # the proven value is the method's, raised by at most a tiny relative amount (without a proof, a scalar
    # output's product c·W_L adds its rounding allowance instead: the checker takes c and W_L exactly)
    method_value = plain.value - plain.details.get("deviation_allowance", 0.0)  # up to the last rounding
    assert method_value <= res.value * (1 + 4 * np.finfo(float).eps) and res.value <= plain.value * (1 + 1e-8)
    rep = check_lipschitz_proof(net, path)
    assert rep.accepted and rep.bound == res.value
    return json.loads(path.read_text()), res


@pytest.mark.parametrize("name, methods", [
    ("random", ["lipsdp-neuron", "lipsdp-layer", "eclipse-fast", "eclipse", "naive"]),
    ("mnist", ["lipsdp-neuron", "lipsdp-layer", "eclipse-fast", "naive"]),  # 784 inputs: reduced input block
])
def test_published_lipsdp_nets_get_accepted_proofs(tmp_path, name, methods):
    net = load_network(LIPSDP / f"{name}_weights.mat")
    for m in methods:
        proof, res = _prove(net, tmp_path, method=m)
        assert proof["kind"] == "lipschitz" and proof["method"] == m
    if name == "random":  # the published LipSDP-Neuron value (arobey1/LipSDP README)
        assert lipschitz(net, method="lipsdp-neuron", proof=tmp_path / "n.json").value == pytest.approx(36.482, abs=1e-3)


@pytest.mark.parametrize("dims, act", [([4, 6, 5, 3], ReLU), ([3, 5, 2], Tanh), ([5, 8, 8, 2], LeakyReLU),
                                       ([2, 30, 30, 3], ReLU)])
def test_random_nets_every_method_norm_and_output(tmp_path, dims, act):
    net = _net(dims, act)
    methods = ["naive", "lipsdp-neuron", "lipsdp-layer"] + (["eclipse-fast"] if act is not LeakyReLU else [])
    for m in methods:
        for norm in ([2, "inf"] if not m.startswith("eclipse") else [2]):
            for out in (None, 1):
                proof, _ = _prove(net, tmp_path, method=m, norm=norm, output=out)
                if m.startswith("lipsdp") and norm == "inf" and out is None:
                    assert len(proof["certificate"]["parts"]) == net.out_dim  # one SDP per output row


def test_a_deep_net_with_a_large_lmi_uses_the_float_cholesky_proof(tmp_path):
    net = _net([10, 120, 120, 120, 5], seed=3)  # LMI of 370 rows (exact LDLᵀ only up to 40)
    for m in ("eclipse-fast", "naive"):
        _prove(net, tmp_path, method=m)


def test_constant_neurons_are_dropped_consistently(tmp_path):
    net = _net([3, 6, 4, 2], seed=5)
    ws = [layer.as_matrix().copy() for layer in net.affine_layers]
    ws[0][2] = 0.0  # neuron 2 of layer 1 is constant; so is neuron 1 of layer 2 once its inputs are dropped
    ws[1][1] = 0.0
    net = chain_from_weights(ws, [layer.bias for layer in net.affine_layers], [ReLU(), ReLU()], "t")
    _prove(net, tmp_path, method="lipsdp-neuron")


@pytest.fixture(scope="module")
def random_proof(tmp_path_factory):
    net = load_network(LIPSDP / "random_weights.mat")
    path = tmp_path_factory.mktemp("lip") / "p.json"
    res = lipschitz(net, method="lipsdp-neuron", proof=path)
    return net, json.loads(path.read_text()), res


def _rejected(net, proof, step: str):
    rep = check_lipschitz_proof(net, proof)
    assert not rep.accepted and rep.message.startswith("rejected: ") and step in rep.message, rep.message
    return rep.message


def test_mutations_are_rejected_naming_the_step(random_proof):
    net, proof, res = random_proof
    part = proof["certificate"]["parts"]
    p = copy.deepcopy(proof)  # lower rho, keeping the bound: the LMI fails
    p["certificate"]["parts"][0]["rho"] = (float.fromhex(part[0]["rho"]) * 0.999).hex()
    _rejected(net, p, "certificate part 0: LMI")
    p = copy.deepcopy(proof)  # a smaller bound than rho proves
    p["bound"] = (res.value * 0.999).hex()
    _rejected(net, p, "is below what rho")
    for layer, i, factor in [(0, 3, 0.5), (1, 7, 0.0), (2, 0, 1.5), (0, 0, 100.0)]:  # change one multiplier
        p = copy.deepcopy(proof)
        t = p["certificate"]["parts"][0]["T"][layer]
        if float.fromhex(t[i]) == 0.0:
            i = next(j for j, v in enumerate(t) if float.fromhex(v) > 0)
        t[i] = (float.fromhex(t[i]) * factor).hex()
        _rejected(net, p, "LMI")
    p = copy.deepcopy(proof)
    p["certificate"]["parts"][0]["T"][1][0] = (-1.0).hex()
    _rejected(net, p, "negative")
    p = copy.deepcopy(proof)
    p["certificate"]["parts"][0]["T"][1].pop()
    _rejected(net, p, "T[1]")
    for key, val, step in [("version", 2, "header"), ("kind", "verify", "header"), ("norm", 3, "claim"),
                           ("bound", "0x1.zp+3", "claim: bound")]:
        p = copy.deepcopy(proof)
        p[key] = val
        _rejected(net, p, step)


def test_a_proof_for_one_network_is_rejected_for_another(random_proof, tmp_path):
    net, proof, _ = random_proof
    other = load_network(LIPSDP / "mnist_weights.mat")
    _rejected(other, proof, "network: the fingerprint differs")
    # the same weights with another activation: another network
    ws = [layer.as_matrix() for layer in net.affine_layers]
    tanh = chain_from_weights(ws, [layer.bias for layer in net.affine_layers], [Tanh() for _ in ws[:-1]], "t")
    _rejected(tanh, proof, "fingerprint")
    # a forged fingerprint does not help: the LMI of the other network fails
    scaled = chain_from_weights([w * 1.01 for w in ws], [layer.bias for layer in net.affine_layers],
                                [ReLU() for _ in ws[:-1]], "t")
    p = copy.deepcopy(proof)
    p["network"]["sha256"] = check_lipschitz_proof.__globals__["fingerprint"](scaled)
    _rejected(scaled, p, "LMI")


def test_naive_proofs_mutated_layer_norms_are_rejected(tmp_path):
    net = _net([4, 9, 7, 3], seed=2)
    for norm in (2, "inf"):
        proof, res = _prove(net, tmp_path, method="naive", norm=norm)
        layers = proof["certificate"]["layers"]
        for j in range(len(layers)):
            p = copy.deepcopy(proof)
            p["certificate"]["layers"][j] = (float.fromhex(layers[j]) * 0.99).hex()
            _rejected(net, p, f"certificate: layer {j}")
        p = copy.deepcopy(proof)
        p["bound"] = (res.value * 0.99).hex()
        _rejected(net, p, "below the product")


def test_methods_without_a_checkable_certificate_are_never_accepted(tmp_path):
    # Householder on groups of 3: the checker has no preserved direction for the neuron-form QC
    v = np.array([1.0, 2.0, 2.0]) / 3.0
    net = chain_from_weights([np.random.default_rng(1).standard_normal((6, 4)), np.ones((2, 6))], [None, None],
                             [Householder(v)], "t")
    res = lipschitz(net, method="lipsdp-neuron", proof=tmp_path / "m.json")
    assert res.certified and not res.details["proof"]["accepted"]
    rep = check_lipschitz_proof(net, tmp_path / "m.json")
    assert not rep.accepted and rep.message.startswith("not checkable")
    _prove(net, tmp_path, method="lipsdp-layer")  # its layer form (lambda only, L from vᵀv) is checked


# ----------------------------------------------------------------- grouped activations (Pauli et al. QCs)
def _grouped_net(dims, acts, seed=0):
    rng = np.random.default_rng(seed)
    ws = [rng.standard_normal((dims[i + 1], dims[i])) / np.sqrt(dims[i]) for i in range(len(dims) - 1)]
    return chain_from_weights(ws, [rng.standard_normal(w.shape[0]) for w in ws], acts, "t")


_V = np.array([-0.28, 0.96])  # vᵀv = 1 - 5.3e-17 in float64: exactly 1-Lipschitz
_W = np.full(2, float.fromhex("0x1.6a09e667f3bcdp-1"))  # fl(1/sqrt 2): vᵀv = 1 + 1.4e-16, L = 2vᵀv - 1 > 1


@pytest.mark.parametrize("dims, acts", [
    ([4, 6, 6, 2], [MaxMin(), MaxMin()]), ([3, 6, 6, 2], [GroupSort(3), GroupSort(3)]),
    ([3, 6, 4, 2], [Householder(_V), Householder(_W)]), ([3, 4, 6, 2], [ReLU(), MaxMin()]),
    ([5, 24, 24, 3], [MaxMin(), GroupSort(4)]),  # LMI of 53 rows: the float Cholesky proof
])
def test_grouped_sdp_bounds_get_accepted_proofs(tmp_path, dims, acts):
    net = _grouped_net(dims, acts)
    for m in ("lipsdp-neuron", "lipsdp-layer"):
        for norm in (2, "inf"):
            for out in (None, 1):
                proof, res = _prove(net, tmp_path, method=m, norm=norm, output=out)
                T = proof["certificate"]["parts"][0]["T"]
                assert [isinstance(t, dict) for t in T] == [not a.elementwise for a in acts]
                assert res.value >= lipschitz(net, method="sampled", norm=norm, output=out, n_points=200).value


@pytest.mark.parametrize("act", [MaxMin(), GroupSort(3), Householder(_V), Householder(_W),
                                 Householder(np.array([0.6, 0.8]))])
def test_grouped_quadratic_constraint_holds_exactly_on_random_pairs(act):
    """The checker's QC (``_grouped``) at random multipliers, evaluated in rationals on random pairs of points:
    ``dzᵀ T1 dz - dphiᵀ T2 dphi >= 0`` (``phi`` evaluated exactly), and it is tight for MaxMin / Householder."""
    rng, g = np.random.default_rng(2), act.group_size
    n = 2 * g
    lam, gam = rng.uniform(0, 2, 2), rng.normal(size=2) * 3
    l1, l2, U, gm = _grouped(act, n, {"lambda": [x.hex() for x in lam], "gamma": [x.hex() for x in gam]}, "t")
    T1, T2 = [[[Fraction(float(lv[i])) * (i == j) + sum(Fraction(float(U[i, c])) * Fraction(float(gm[c]))
                                                          * Fraction(float(U[j, c])) for c in range(U.shape[1]))
                for j in range(n)] for i in range(n)] for lv in (l1, l2)]
    worst = None
    for _ in range(200):
        z, z2 = rng.normal(size=(2, n)) * rng.choice([1e-3, 1.0, 1e3])
        dz = [Fraction(float(a)) - Fraction(float(b)) for a, b in zip(z, z2)]
        fz = act.exact_call([Fraction(float(a)) for a in z])
        fz2 = act.exact_call([Fraction(float(a)) for a in z2])
        dp = [a - b for a, b in zip(fz, fz2)]
        quad = lambda T, x: sum(T[i][j] * x[i] * x[j] for i in range(n) for j in range(n))  # noqa: E731
        val = quad(T1, dz) - quad(T2, dp)
        assert val >= 0
        worst = val / quad(T1, dz) if worst is None else min(worst, val / quad(T1, dz))
    assert worst < 1e-12  # pairs on one piece: (almost) no slack


@pytest.fixture(scope="module")
def maxmin_proof(tmp_path_factory):
    net = _grouped_net([4, 6, 6, 2], [MaxMin(), MaxMin()], seed=3)
    path = tmp_path_factory.mktemp("mm") / "p.json"
    res = lipschitz(net, method="lipsdp-neuron", proof=path)
    assert res.details["proof"]["accepted"]
    return net, json.loads(path.read_text()), res


def test_grouped_mutations_are_rejected_naming_the_step(maxmin_proof):
    net, proof, res = maxmin_proof
    T = proof["certificate"]["parts"][0]["T"]
    assert set(T[0]) == {"lambda", "gamma"} and len(T[0]["lambda"]) == 3
    for layer, key, i, factor in [(0, "lambda", 0, 0.5), (1, "lambda", 2, 0.0), (0, "gamma", 1, 3.0),
                                  (1, "gamma", 0, -1.0), (1, "lambda", 1, 10.0)]:
        p = copy.deepcopy(proof)
        t = p["certificate"]["parts"][0]["T"][layer][key]
        t[i] = (float.fromhex(t[i]) * factor + (1.0 if float.fromhex(t[i]) == 0 else 0.0)).hex()
        _rejected(net, p, "certificate part 0: LMI")
    p = copy.deepcopy(proof)
    p["certificate"]["parts"][0]["rho"] = (float.fromhex(proof["certificate"]["parts"][0]["rho"]) * 0.999).hex()
    _rejected(net, p, "certificate part 0: LMI")
    p = copy.deepcopy(proof)
    p["bound"] = (res.value * 0.999).hex()
    _rejected(net, p, "is below what rho")
    p = copy.deepcopy(proof)
    p["certificate"]["parts"][0]["T"][0]["lambda"][0] = (-1.0).hex()
    _rejected(net, p, "certificate part 0: rho or a multiplier is negative")
    p = copy.deepcopy(proof)
    p["certificate"]["parts"][0]["T"][1]["gamma"].pop()
    _rejected(net, p, "T[1]: gamma")
    p = copy.deepcopy(proof)
    p["certificate"]["parts"][0]["T"][1] = proof["certificate"]["parts"][0]["T"][1]["lambda"] * 2
    _rejected(net, p, "malformed proof")


def test_grouped_proof_for_another_network_is_rejected(maxmin_proof):
    net, proof, _ = maxmin_proof
    other = _grouped_net([4, 6, 6, 2], [MaxMin(), MaxMin()], seed=4)
    _rejected(other, proof, "network: the fingerprint differs")
    p = copy.deepcopy(proof)  # even with the other network's fingerprint: its LMI is not PSD at these multipliers
    p["network"]["sha256"] = fingerprint(other)
    _rejected(other, p, "certificate part 0: LMI")
    swapped = _grouped_net([4, 6, 6, 2], [GroupSort(3), GroupSort(3)], seed=3)  # same weights, other activation
    _rejected(swapped, proof, "network: the fingerprint differs")


@pytest.mark.parametrize("h, n0", [(10, 6), (16, 9)])
def test_exact_on_maxmin_gets_a_swap_pattern_proof(tmp_path, h, n0):
    rng = np.random.default_rng(h)
    net = chain_from_weights([rng.standard_normal((h, n0)), rng.standard_normal((3, h))],
                             [rng.standard_normal(h), None], [MaxMin()], "t")
    for norm in (2, "inf"):
        for out in (None, 2):
            proof, res = _prove(net, tmp_path, method="exact", norm=norm, output=out)
            assert proof["certificate"]["by"] == "patterns"
            assert check_lipschitz_proof(net, proof).checked == 2 ** (h // 2)
            p = copy.deepcopy(proof)
            p["bound"] = (res.value * (1 - 1e-6)).hex()  # the exact constant: any lower claim fails
            _rejected(net, p, "certificate: pattern")
    p = copy.deepcopy(proof)  # the same weights read as ReLU: the fingerprint, and with it the patterns, differ
    layers = net.affine_layers
    other = chain_from_weights([la.as_matrix() for la in layers], [la.bias for la in layers], [ReLU()], "t")
    _rejected(other, p, "network: the fingerprint differs")


# ------------------------------------------------------------------------------------- PSD proofs themselves
def _q(a):
    return [[Fraction(float(x)) for x in row] for row in a]


def test_exact_ldlt_decides_semidefiniteness_exactly():
    v = np.array([[1.0, 2.0, -1.0]])
    assert exact_psd(_q(v.T @ v)) is None  # rank one: zero pivots with zero columns
    bad = v.T @ v
    bad[2, 2] -= 2.0 ** -50
    assert "negative" in exact_psd(_q(bad)) or "zero" in exact_psd(_q(bad))
    z = np.zeros((3, 3))
    z[0, 1] = z[1, 0] = 1e-300
    assert exact_psd(_q(z)) is not None


def test_float_cholesky_proof_is_never_fooled_near_the_boundary():
    rng = np.random.default_rng(7)
    accepted = 0
    for trial in range(300):
        n = int(rng.integers(2, 12))
        B = rng.standard_normal((n, n - 1 if trial % 2 else n))
        S = B @ B.T  # rounded: singular or barely definite
        S = (S + S.T) / 2
        shift = float(rng.choice([-1e-13, -1e-15, 0.0, 1e-14, 1e-10, 1e-6]))
        S += shift * np.eye(n)
        why, margin = float_psd(S, np.zeros_like(S))
        exact = exact_psd(_q(S))
        if why is None:
            accepted += 1
            assert exact is None, (trial, shift)  # a float acceptance is always right
            assert margin >= 0
    assert accepted >= 50  # comfortably definite matrices are accepted
    # a definite matrix is rejected when the claimed error bound covers an indefinite neighbour
    S = np.eye(3)
    assert float_psd(S, np.full((3, 3), 0.6))[0] is not None
    assert float_psd(S, np.full((3, 3), 0.01))[0] is None


def test_float_cholesky_proof_of_a_stack_proves_every_matrix():
    rng = np.random.default_rng(8)
    B = rng.standard_normal((64, 6, 5))
    S = B @ np.swapaxes(B, 1, 2) + 1e-6 * np.eye(6)  # 64 definite matrices
    assert all(exact_psd(_q(m)) is None for m in S)
    why, margin = float_psd(S, np.zeros_like(S))
    assert why is None and margin > 0 and margin <= min(float_psd(m, np.zeros_like(m))[1] for m in S) * (1 + 1e-9)
    for shift in (-1e-5, -1e-13):  # one matrix of the stack pushed below PSD (exactly not PSD): the stack fails
        T = S.copy()
        T[37] -= (np.linalg.eigvalsh(S[37])[0] - shift) * np.eye(6)  # smallest eigenvalue about `shift`
        assert exact_psd(_q(T[37])) is not None
        assert float_psd(T, np.zeros_like(T))[0] is not None


def test_cli_lipschitz_proof_and_check_proof(tmp_path, capsys):
    model = str(LIPSDP / "random_weights.mat")
    proof = tmp_path / "lip.json"
    assert cli_main(["lipschitz", model, "--method", "lipsdp-layer", "--proof", str(proof)]) == 0
    out = capsys.readouterr().out
    assert "proof: " in out and "accepted" in out
    assert cli_main(["check-proof", model, str(proof)]) == 0
    assert capsys.readouterr().out.startswith("accepted: Lipschitz bound")
    assert cli_main(["check-proof", model, str(proof), "--json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["accepted"] and obj["bound"] == pytest.approx(39.839, abs=1e-3)
    p = json.loads(proof.read_text())
    p["certificate"]["parts"][0]["rho"] = (float.fromhex(p["certificate"]["parts"][0]["rho"]) / 2).hex()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(p))
    assert cli_main(["check-proof", model, str(bad)]) == 1
    assert capsys.readouterr().out.startswith("rejected: certificate part 0")
    other = tmp_path / "other.npz"
    save_network(_net([2, 10, 2]), other)
    assert cli_main(["check-proof", str(other), str(proof)]) == 1
    assert "fingerprint" in capsys.readouterr().out
    vnn = str(ROOT / "tests" / "data" / "acasxu" / "vnnlib" / "prop_1.vnnlib")
    assert cli_main(["check-proof", model, vnn, str(proof)]) == 2  # a Lipschitz proof takes no property
    assert "without a property" in capsys.readouterr().err
    assert cli_main(["check-proof", model]) == 2


@pytest.mark.parametrize("act", [ReLU, LeakyReLU])
def test_exact_gets_a_pattern_enumeration_proof(tmp_path, act):
    rng = np.random.default_rng(4)
    net = chain_from_weights([rng.standard_normal((10, 12)), rng.standard_normal((3, 10))], [None, None], [act()], "t")
    for norm in (2, "inf"):
        for out in (None, 2):
            proof, res = _prove(net, tmp_path, method="exact", norm=norm, output=out)
            assert proof["certificate"]["by"] == "patterns"
            p = copy.deepcopy(proof)
            p["bound"] = (res.value * (1 - 1e-6)).hex()  # the exact constant: any lower claim fails
            _rejected(net, p, "certificate: pattern")
    assert lipschitz(net, method="auto", proof=tmp_path / "a.json").details["proof"]["accepted"]


def test_conv_nets_checked_when_small_and_never_accepted_when_too_large(tmp_path):
    from verification.layers.conv import Conv2d
    from verification.network import Dense, Network
    from verification.errors import PreconditionError
    rng = np.random.default_rng(0)
    conv = Conv2d(rng.normal(size=(4, 1, 3, 3)), rng.normal(size=4), (1, 8, 8), 1, 1, 1, (1, 1, 1, 1), "zeros")
    net = Network([conv, ReLU(), Dense(rng.normal(size=(3, 256)) / 16)])
    for m, norm in [("naive", 2), ("naive", "inf"), ("eclipse-fast", 2)]:  # (LipSDP: the same LMI check)
        _prove(net, tmp_path, method=m, norm=norm)
    big = Conv2d(rng.normal(size=(4, 4, 3, 3)), None, (4, 48, 48), 1, 1, 1, (1, 1, 1, 1), "zeros")  # 9216 x 9216
    res = lipschitz(Network([big, ReLU(), Dense(rng.normal(size=(3, 4 * 48 * 48)) / 100)]), method="naive",
                    proof=tmp_path / "big.json")
    assert res.certified and not res.details["proof"]["accepted"]
    assert res.details["proof"]["message"].startswith("not checkable: as_matrix()")
    with pytest.raises(PreconditionError):  # the checker takes the net as given: merged layers would round
        lipschitz(Network([Dense(rng.normal(size=(4, 3))), ReLU(), Dense(np.eye(4)), Dense(rng.normal(size=(2, 4)))]),
                  method="naive", proof=tmp_path / "m.json")
