"""Proofs of `holds` answers and the independent checker (docs/proofs.md): every `holds` on the quick ACAS Xu
instances and on random ReLU / leaky-ReLU nets comes with a proof the checker accepts; mutated proofs, proofs
for another network or another property are rejected with the failing step named; the checker's rigorous
bounds contain sampled values; the checker imports nothing from the solver side."""

import ast
import copy
import itertools
import json
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from verification.activations import LeakyReLU, ReLU, Tanh
from verification.cli import main as cli_main
from verification.errors import InvalidParameterError
from verification.io import load_network, save_network
from verification.network import Dense, Network
from verification.proofcheck import Chain, ChainError, ProofRejected, check_proof, layer_bounds, rows_lower
from verification.proofcheck.checker import region_rows
from verification.smt import verify
from verification.smt.proof import build_proof
from verification.spec import InputRegion, OutputConstraint, robustness_property
from verification.vnnlib import box_property, parse_vnnlib, read_vnnlib

ROOT = Path(__file__).resolve().parents[2]
ACAS = ROOT / "tests" / "data" / "acasxu"
needs_acas = pytest.mark.skipif(not ACAS.exists(), reason="ACAS Xu benchmark files not present")
FAST = dict(n_samples=200, pgd_steps=5, pgd_starts=4)
# the `unsat` (holds) rows of tests/data/acasxu/instances.csv
ACAS_HOLDS = [("1_9", "prop_1"), ("2_3", "prop_4"), ("5_3", "prop_3")]


def _acas(net_id: str, prop: str):
    return (load_network(ACAS / "onnx" / f"ACASXU_run2a_{net_id}_batch_2000.onnx"),
            read_vnnlib(ACAS / "vnnlib" / f"{prop}.vnnlib"))


def _one_layer(seed: int, h: int = 8, d: int = 2, act=None) -> Network:
    rng = np.random.default_rng(seed)
    return Network([Dense(rng.normal(size=(h, d)), rng.normal(size=h)), act or ReLU(),
                    Dense(rng.normal(size=(2, h)), rng.normal(size=2))])


def _two_layer(seed: int, act) -> Network:
    g = np.random.default_rng(seed)
    return Network([Dense(g.normal(size=(10, 3)), g.normal(size=10)), act,
                    Dense(g.normal(size=(10, 10)) / 3, g.normal(size=10)), act,
                    Dense(g.normal(size=(3, 10)), g.normal(size=3))])


def _grid_min(net, c, lo, hi, n=301):
    g = np.stack(np.meshgrid(np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n)), -1).reshape(-1, 2)
    return float((net(g) @ c).min()), g


def _prove(net, prop, tmp_path, **kw):
    path = tmp_path / "p.json"
    t0 = time.monotonic()
    res = verify(net, prop, timeout=60, proof=path, **FAST, **kw)
    solve = time.monotonic() - t0
    if res.status != "holds":
        return res, None, None, solve
    return res, json.loads(path.read_text()), check_proof(net, prop, path), solve


def _kinds(proof) -> dict:
    out: dict = {}
    for r in proof["regions"]:
        for nd in r["nodes"]:
            for c in nd.get("refute", []):
                out[c["by"]] = out.get(c["by"], 0) + 1
    return out


# ------------------------------------------------------------------------------------------------ accepted
@needs_acas
def test_every_acas_holds_instance_gets_an_accepted_proof(tmp_path):
    rows = []
    for net_id, name in ACAS_HOLDS:
        net, prop = _acas(net_id, name)
        res, proof, rep, solve = _prove(net, prop, tmp_path)
        assert res.status == "holds"
        assert rep.accepted, (net_id, name, rep.message)
        assert rep.trusted == 0 and rep.checked >= 1 and rep.nodes == res.details["proof_nodes"]
        rows.append((net_id, name, solve, rep.seconds, res.details["proof_bytes"], rep.nodes))
    for r in rows:
        print("acasxu %s %s: solve %.3f s (proof included), check %.3f s, %d bytes, %d boxes" % r)


@needs_acas
def test_acas_near_zero_margin_box_gets_alpha_certificates_on_the_verifiers_tree(tmp_path):
    """ACAS Xu 4_2 / prop_2 has near-zero margins; on a small box of it the verifier closes leaves with
    alpha-CROWN.  The writer re-runs that optimiser on the checker's own bounds of those leaves: every leaf gets
    a checked certificate (alpha where CROWN is not enough) and the proof adds no box to the verifier's tree."""
    lo = [0.6399288845, -0.0078125, 0.0, 0.45, -0.5]
    hi = [0.679857769, 0.0, 0.03125, 0.475, -0.475]
    text = "".join(f"(declare-const {v}_{i} Real)\n" for v in "XY" for i in range(5))
    text += "".join(f"(assert (>= X_{i} {a!r}))\n(assert (<= X_{i} {b!r}))\n" for i, (a, b) in enumerate(zip(lo, hi)))
    text += "".join(f"(assert (<= Y_{j} Y_0))\n" for j in range(1, 5))  # prop_2's unsafe set on this box
    prop = parse_vnnlib(text)
    net = load_network(ACAS / "onnx" / "ACASXU_run2a_4_2_batch_2000.onnx")
    res, proof, rep, _ = _prove(net, prop, tmp_path)
    assert res.status == "holds" and res.details["alpha_boxes"] >= 5
    assert rep.accepted and rep.trusted == 0, rep.message
    kinds = _kinds(proof)
    assert kinds.get("alpha", 0) >= 5 and set(kinds) <= {"crown", "alpha"}, kinds
    assert res.details["proof_nodes"] < res.details["boxes"]  # nothing bisected below the verifier's leaves
    slopes = [e for r in proof["regions"] for nd in r["nodes"] for c in nd.get("refute", []) if c["by"] == "alpha"
              for e in c["slopes"]]
    assert slopes and all(0.0 <= float.fromhex(e[2]) <= 1.0 for e in slopes)
    # one certificate object shared by two nodes of a dict proof is checked on each node's own bounds: the same
    # verdict as for the proof's JSON copy, where the objects are distinct
    nodes = proof["regions"][0]["nodes"]
    idx = [i for i, nd in enumerate(nodes) if any(c["by"] == "alpha" for c in nd.get("refute", []))]
    rejected = 0
    for a, b in itertools.permutations(idx[:4], 2):
        p = copy.deepcopy(proof)
        nd = p["regions"][0]["nodes"]
        shared = next(c for c in nd[b]["refute"] if c["by"] == "alpha")
        nd[a]["refute"] = [shared if c["by"] == "alpha" else c for c in nd[a]["refute"]]
        msg = check_proof(net, prop, p).message
        assert msg == check_proof(net, prop, json.loads(json.dumps(p))).message
        rejected += msg.startswith("rejected")
    assert rejected >= 1


def test_random_relu_nets_single_rows_tight_margins(tmp_path):
    """Tight margins force deep trees and alpha-CROWN leaves: every holds is accepted, no trusted leaf."""
    rng = np.random.default_rng(1)
    kinds: dict = {}
    n = 0
    for k in range(16):
        net = _one_layer(k, h=12)
        lo = rng.uniform(-1, 0.5, size=2)
        hi = lo + rng.uniform(0.05, 1.0, size=2)
        c = np.array([1.0, -1.0])
        gmin, _ = _grid_min(net, c, lo, hi)
        # 1e-3 below the grid minimum: the true minimum may lie lower, then the answer is violated
        res, proof, rep, _ = _prove(net, box_property(lo, hi, c[None, :], [gmin - 1e-3]), tmp_path)
        if res.status != "holds":
            assert res.status == "violated"
            continue
        n += 1
        assert rep.accepted and rep.trusted == 0, (k, rep.message)
        for key, v in _kinds(proof).items():
            kinds[key] = kinds.get(key, 0) + v
    assert n >= 8 and kinds.get("alpha", 0) >= 1, (n, kinds)


def test_random_nets_polytope_disjuncts_use_lp_certificates(tmp_path):
    """Unsafe set ``y0 <= t0 and y1 <= t1``: on stable boxes one row alone does not refute it, the LP dual
    weights of the exact leaves do."""
    kinds: dict = {}
    n = 0
    for k in range(12):
        net = _one_layer(k, h=6)
        rng = np.random.default_rng(k)
        lo = rng.uniform(-1, 0.5, size=2)
        hi = lo + rng.uniform(0.2, 1.0, size=2)
        _, g = _grid_min(net, np.zeros(2), lo, hi)
        Y = net(g)
        t0 = np.quantile(Y[:, 0], 0.3)
        t1 = Y[Y[:, 0] <= t0, 1].min() - 1e-3 * (1 + np.abs(Y[:, 1]).max())
        res, proof, rep, _ = _prove(net, box_property(lo, hi, np.eye(2), [t0, t1]), tmp_path)
        if res.status != "holds":
            continue
        n += 1
        assert rep.accepted, (k, rep.message)
        for key, v in _kinds(proof).items():
            kinds[key] = kinds.get(key, 0) + v
    assert n >= 8 and kinds.get("lp", 0) >= 5, (n, kinds)


@pytest.mark.parametrize("act", [ReLU(), LeakyReLU(0.1)], ids=["relu", "leaky"])
def test_random_deeper_nets_robustness_several_disjuncts(tmp_path, act):
    n = 0
    for k in range(10):
        net = _two_layer(100 + k, act)
        x0 = np.random.default_rng(k).uniform(-1, 1, size=3)
        prop = robustness_property(x0 - 0.05, x0 + 0.05, int(np.argmax(net(x0))), 3)
        res, proof, rep, _ = _prove(net, prop, tmp_path)
        if res.status != "holds":
            continue
        n += 1
        assert len(proof["regions"][0]["nodes"]) >= 1
        assert rep.accepted and rep.trusted == 0, (k, rep.message)
    assert n >= 5


def test_several_input_boxes_each_get_a_tree(tmp_path):
    net = _one_layer(3)
    src = ("(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"
           "(assert (or (and (>= X_0 0.0) (<= X_0 0.2) (>= X_1 0.0) (<= X_1 0.2))"
           " (and (>= X_0 0.5) (<= X_0 0.6) (>= X_1 -0.3) (<= X_1 -0.1))))\n(assert (<= Y_0 {t}))\n")
    x = np.random.default_rng(0).uniform([0, 0], [0.2, 0.2], size=(2000, 2))
    x2 = np.random.default_rng(1).uniform([0.5, -0.3], [0.6, -0.1], size=(2000, 2))
    t = min(net(x)[:, 0].min(), net(x2)[:, 0].min()) - 0.05
    path = tmp_path / "two.vnnlib"
    path.write_text(src.format(t=repr(float(t))))
    prop = read_vnnlib(path)
    assert len(prop.regions) == 2
    res, proof, rep, _ = _prove(net, prop, tmp_path)
    assert res.status == "holds" and rep.accepted and len(proof["regions"]) == 2, rep.message


def test_relu_split_answers_get_proofs_built_by_the_checkers_bounds(tmp_path):
    net = _one_layer(5, h=6)
    lo, hi = np.array([-0.5, -0.5]), np.array([0.5, 0.5])
    c = np.array([1.0, -1.0])
    gmin, _ = _grid_min(net, c, lo, hi)
    res, proof, rep, _ = _prove(net, box_property(lo, hi, c[None, :], [gmin - 0.05]), tmp_path, method="relu-split")
    assert res.status == "holds" and rep.accepted, rep.message


def test_leaves_the_checker_cannot_check_are_reported_not_accepted():
    net = _one_layer(5, h=6)
    lo, hi = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    c = np.array([1.0, -1.0])
    gmin, _ = _grid_min(net, c, lo, hi)
    prop = box_property(lo, hi, c[None, :], [gmin - 0.01])
    proof = build_proof(net, prop, [None], refine_depth=0)  # no search tree, no refinement: the root only
    rep = check_proof(net, prop, proof)
    if proof["stats"]["trusted"]:
        assert not rep.accepted and rep.trusted == proof["stats"]["trusted"]
        assert rep.message.startswith("not fully checked: 1 of 1 certificates are trusted")
    full = build_proof(net, prop, [None])
    assert check_proof(net, prop, full).accepted


# ------------------------------------------------------------------------------------------------ rejected
@pytest.fixture(scope="module")
def acas_proof(tmp_path_factory):
    if not ACAS.exists():
        pytest.skip("ACAS Xu benchmark files not present")
    net, prop = _acas("1_9", "prop_1")
    path = tmp_path_factory.mktemp("proof") / "p.json"
    assert verify(net, prop, timeout=60, proof=path).status == "holds"
    proof = json.loads(path.read_text())
    assert check_proof(net, prop, proof).accepted
    return net, prop, proof


def _rejects(net, prop, proof, *needles):
    rep = check_proof(net, prop, proof)
    assert not rep.accepted, rep.message
    assert rep.message.startswith("rejected: ") and "\n" not in rep.message
    for s in needles:
        assert s in rep.message, rep.message
    return rep.message


def test_mutation_dropping_a_leaf_or_a_certificate(acas_proof):
    net, prop, proof = acas_proof
    nodes = proof["regions"][0]["nodes"]
    leaves = [i for i, nd in enumerate(nodes) if "split" not in nd]
    for i in leaves:
        p = copy.deepcopy(proof)
        del p["regions"][0]["nodes"][i]
        _rejects(net, prop, p, "region 0")
        p = copy.deepcopy(proof)
        p["regions"][0]["nodes"][i].pop("refute")
        _rejects(net, prop, p, f"region 0, node {i} (leaf): disjunct 0 is not refuted")
    p = copy.deepcopy(proof)
    p["regions"][0]["nodes"].append({})
    _rejects(net, prop, p, "node(s) after the end of the tree")


def test_mutation_shrinking_or_moving_a_box(acas_proof):
    net, prop, proof = acas_proof
    for side, j in itertools.product(("lower", "upper"), range(5)):
        p = copy.deepcopy(proof)
        v = float.fromhex(p["regions"][0][side][j])
        p["regions"][0][side][j] = (v + (1e-3 if side == "lower" else -1e-3)).hex()  # a smaller box
        _rejects(net, prop, p, "region 0: the box differs from the property's")
    # a split point outside its box: the halves would not cover it
    nodes = proof["regions"][0]["nodes"]
    for i, nd in enumerate(nodes):
        if "split" in nd:
            p = copy.deepcopy(proof)
            p["regions"][0]["nodes"][i]["split"][1] = (1e6).hex()
            _rejects(net, prop, p, f"node {i}: split point")


def test_mutation_changing_numbers_of_certificates(acas_proof):
    """Moving the root's split point to an edge makes one half the whole box: a certificate below fails, or a
    split point below leaves its box; a changed disjunct index, version or split is caught by its step."""
    net, prop, proof = acas_proof
    p = copy.deepcopy(proof)
    root = p["regions"][0]["nodes"][0]
    dim = root["split"][0]
    root["split"][1] = float(prop.regions[0].upper[dim]).hex()
    msg = _rejects(net, prop, p, "region 0, node ")
    assert "is not > 0" in msg or "split point" in msg, msg
    p = copy.deepcopy(proof)
    leaf = next(nd for nd in p["regions"][0]["nodes"] if "refute" in nd)
    leaf["refute"][0]["k"] = 3
    _rejects(net, prop, p, "bad certificate")
    p = copy.deepcopy(proof)
    p["version"] = 3
    _rejects(net, prop, p, "header: version 3")
    p = copy.deepcopy(proof)
    p["regions"][0]["nodes"][1]["split"] = [7, "0x0p+0"]
    _rejects(net, prop, p, "bad split")


@needs_acas
@pytest.mark.parametrize("net_id,name", ACAS_HOLDS)
def test_mutation_moving_each_split_point_to_an_edge_of_its_box(tmp_path, net_id, name):
    """One half becomes the whole parent box: its certificates (or a split point below it) no longer fit."""
    net, prop = _acas(net_id, name)
    assert verify(net, prop, timeout=60, proof=tmp_path / "p.json").status == "holds"
    proof = json.loads((tmp_path / "p.json").read_text())
    nodes = proof["regions"][0]["nodes"]
    boxes, stack = [], [(prop.regions[0].lower, prop.regions[0].upper)]
    for nd in nodes:  # the boxes in preorder, as the checker derives them
        lo, hi = stack.pop()
        boxes.append((lo, hi))
        if "split" in nd:
            d, p = nd["split"][0], float.fromhex(nd["split"][1])
            lo2, hi1 = lo.copy(), hi.copy()
            hi1[d], lo2[d] = p, p
            stack += [(lo2, hi), (lo, hi1)]
    rejected = total = 0
    for i, nd in enumerate(nodes):
        if "split" not in nd:
            continue
        for edge in (0, 1):
            p = copy.deepcopy(proof)
            p["regions"][0]["nodes"][i]["split"][1] = float(boxes[i][edge][nd["split"][0]]).hex()
            rep = check_proof(net, prop, p)
            total += 1
            if not rep.accepted:
                rejected += 1
                assert rep.message.startswith("rejected: region 0, node "), rep.message
    # measured: every one of them (36 on the three instances); a mutated proof may in principle still be valid
    assert total >= 8 and rejected >= 0.9 * total, (rejected, total)


def _paths(o, pre=()):
    if pre:
        yield pre
    if isinstance(o, dict):
        for k, v in o.items():
            yield from _paths(v, pre + (k,))
    elif isinstance(o, list):
        for i, v in enumerate(o):
            yield from _paths(v, pre + (i,))


def test_random_corruptions_never_crash_and_never_pass_on_a_checked_field(acas_proof):
    """Values replaced by junk (wrong types, NaN strings, huge ints, bools) or deleted: the checker returns a
    one-line report, never an exception; a corrupted proof passes only if the change was informational
    (``stats``, ``property.source``) or left a valid certificate."""
    import random

    net, prop, proof = acas_proof
    junk = [None, -1, 0, 1, 7, 2 ** 70, "x", "0x1p+0", "nan", "inf", [], {}, [1, 2], 1e308, True, -0.5,
            [[0, 0, "0x1p-1"]]]
    paths = list(_paths(proof))
    rng = random.Random(0)
    for _ in range(150):
        p = copy.deepcopy(proof)
        touched = []
        for _ in range(rng.randint(1, 3)):
            path = rng.choice(paths)
            o = p
            try:
                for key in path[:-1]:
                    o = o[key]
                new = rng.choice(junk)
                if rng.random() < 0.2 and isinstance(o, list):
                    del o[path[-1]]
                elif o[path[-1]] != new or type(o[path[-1]]) is not type(new):
                    o[path[-1]] = new
                else:
                    continue
                touched.append(path)
            except (KeyError, IndexError, TypeError):
                pass
        rep = check_proof(net, prop, p)
        assert "\n" not in rep.message
        if rep.accepted:
            assert all(t[0] == "stats" or t[:2] == ("property", "source") for t in touched), (touched, rep.message)


def _alpha_and_lp_proofs(tmp_path):
    """Small proofs with alpha and lp certificates (random nets, as in the tests above)."""
    out = {}
    rng = np.random.default_rng(1)
    for k in range(16):
        if "alpha" in out:
            break
        net = _one_layer(k, h=12)
        lo = rng.uniform(-1, 0.5, size=2)
        hi = lo + rng.uniform(0.05, 1.0, size=2)
        c = np.array([1.0, -1.0])
        gmin, _ = _grid_min(net, c, lo, hi)
        prop = box_property(lo, hi, c[None, :], [gmin - 1e-3])
        res, proof, rep, _ = _prove(net, prop, tmp_path)
        if res.status == "holds" and "alpha" in _kinds(proof):
            out["alpha"] = (net, prop, proof)
    for k in range(12):
        if "lp" in out:
            break
        net = _one_layer(k, h=6)
        r = np.random.default_rng(k)
        lo = r.uniform(-1, 0.5, size=2)
        hi = lo + r.uniform(0.2, 1.0, size=2)
        _, g = _grid_min(net, np.zeros(2), lo, hi)
        Y = net(g)
        t0 = np.quantile(Y[:, 0], 0.3)
        t1 = Y[Y[:, 0] <= t0, 1].min() - 1e-3 * (1 + np.abs(Y[:, 1]).max())
        prop = box_property(lo, hi, np.eye(2), [t0, t1])
        res, proof, rep, _ = _prove(net, prop, tmp_path)
        if res.status == "holds" and "lp" in _kinds(proof):
            out["lp"] = (net, prop, proof)
    return out


def test_mutation_of_alpha_slopes_and_lp_weights(tmp_path):
    found = _alpha_and_lp_proofs(tmp_path)
    assert set(found) == {"alpha", "lp"}
    net, prop, proof = found["alpha"]
    where = [(ri, i, j) for ri, r in enumerate(proof["regions"]) for i, nd in enumerate(r["nodes"])
             for j, c in enumerate(nd.get("refute", [])) if c["by"] == "alpha"]
    ri, i, j = where[0]
    p = copy.deepcopy(proof)
    p["regions"][ri]["nodes"][i]["refute"][j]["slopes"][0][2] = (1.5).hex()
    _rejects(net, prop, p, f"node {i}", "outside [0.0, 1]")
    # every slope at the other end of its range: the bound no longer refutes (or some other slope fails)
    p = copy.deepcopy(proof)
    cert = p["regions"][ri]["nodes"][i]["refute"][j]
    for e in cert["slopes"]:
        e[2] = (0.0 if float.fromhex(e[2]) > 0.5 else 1.0).hex()
    rep = check_proof(net, prop, p)
    assert rep.accepted or f"node {i}: disjunct 0: alpha lower bound" in rep.message
    net, prop, proof = found["lp"]
    where = [(i, j) for i, nd in enumerate(proof["regions"][0]["nodes"])
             for j, c in enumerate(nd.get("refute", [])) if c["by"] == "lp"]
    i, j = where[0]
    p = copy.deepcopy(proof)
    p["regions"][0]["nodes"][i]["refute"][j]["w"] = [(1.0).hex(), (0.0).hex()]  # one row alone
    _rejects(net, prop, p, f"node {i}: disjunct 0: lp lower bound")
    p["regions"][0]["nodes"][i]["refute"][j]["w"] = [(-1.0).hex(), (1.0).hex()]
    _rejects(net, prop, p, "negative lp weight")


@needs_acas
def test_a_proof_for_one_network_is_rejected_for_another(acas_proof):
    net, prop, proof = acas_proof
    other = load_network(ACAS / "onnx" / "ACASXU_run2a_2_3_batch_2000.onnx")
    _rejects(other, prop, proof, "network: the fingerprint differs")
    # with the fingerprint forged, the bounds themselves reject it
    p = copy.deepcopy(proof)
    p["network"]["sha256"] = Chain.of(other).fingerprint()
    _rejects(other, prop, p, "is not > 0")


def test_a_proof_is_rejected_for_a_violated_property(tmp_path):
    """The proof of ``c.f >= t - m`` (holds) checked against ``c.f >= t + m`` (violated)."""
    net = _one_layer(7)
    lo, hi = np.array([-0.5, -0.2]), np.array([0.3, 0.6])
    c = np.array([1.0, -1.0])
    gmin, _ = _grid_min(net, c, lo, hi)
    good = box_property(lo, hi, c[None, :], [gmin - 1e-2])
    bad = box_property(lo, hi, c[None, :], [gmin + 1e-2])
    res, proof, rep, _ = _prove(net, good, tmp_path)
    assert res.status == "holds" and rep.accepted
    assert verify(net, bad, timeout=30, **FAST).status == "violated"
    _rejects(net, bad, proof, "is not > 0")


# ------------------------------------------------------------------------------------------- the bounds
@pytest.mark.parametrize("act", [ReLU(), LeakyReLU(0.2), LeakyReLU(-0.5)], ids=["relu", "leaky", "negative"])
def test_rigorous_bounds_contain_samples_and_match_crown(act):
    from verification.bounds.batched import incremental_crown

    net = _two_layer(3, act).canonical()
    ch = Chain.of(net)
    rng = np.random.default_rng(0)
    lo = rng.uniform(-1, 0.5, size=(4, 3))
    hi = lo + rng.uniform(0.01, 0.8, size=(4, 3))
    pre = layer_bounds(ch, lo, hi)
    C = rng.normal(size=(5, 3))
    low = rows_lower(ch, lo, hi, pre, C, np.zeros(5))
    for b in range(4):
        x = rng.uniform(lo[b], hi[b], size=(3000, 3))
        trace = net.forward_trace(x)
        for j in range(len(net.activations)):
            z = trace[2 * j + 1]
            assert np.all(z >= pre[j][0][b]) and np.all(z <= pre[j][1][b])
        assert np.all(net(x) @ C.T >= low[b])
    for b in range(4):  # the verifier's algorithm on one box at a time, up to rounding
        ref = incremental_crown(net, lo[b:b + 1], hi[b:b + 1])
        for (l, u), r in zip(pre, ref):
            assert np.allclose(l[b], r.lower[0], atol=1e-9) and np.allclose(u[b], r.upper[0], atol=1e-9)
    # a box's bounds do not depend on the boxes bounded with it
    alone = layer_bounds(ch, lo[2:3], hi[2:3])
    for (l, u), (la, ua) in zip(pre, alone):
        assert np.allclose(l[2], la[0], rtol=0, atol=1e-12) and np.allclose(u[2], ua[0], rtol=0, atol=1e-12)
    full = layer_bounds(ch, lo, hi, full=True)  # every neuron back-substituted: never looser
    for (l, u), (lf, uf) in zip(pre, full):
        assert np.all(lf >= l - 1e-12) and np.all(uf <= u + 1e-12)


def test_checker_refuses_nets_it_does_not_handle_and_verify_says_so(tmp_path):
    net = _one_layer(0, act=Tanh())
    with pytest.raises(ChainError):
        Chain.of(net)
    prop = box_property([0, 0], [0.1, 0.1], np.array([[1.0, 0.0]]), [-100.0])
    with pytest.raises(InvalidParameterError, match="no proof can be written"):
        verify(net, prop, proof=tmp_path / "p.json")
    two = Network([Dense(np.eye(2), np.zeros(2)), Dense(np.eye(2), np.zeros(2)), ReLU(), Dense(np.eye(2), np.zeros(2))])
    with pytest.raises(InvalidParameterError, match="alternating"):
        verify(two, prop, proof=tmp_path / "p.json")
    # 1/10 is not a float64: the checker does not round output coefficients
    oc = OutputConstraint(np.array([[0.1, 0.0]]), np.array([-100.0]), A_exact=((Fraction(1, 10), Fraction(0)),))
    with pytest.raises(ProofRejected, match="not exactly a float64"):
        region_rows(InputRegion(np.zeros(2), np.full(2, 0.1), (oc,)))


# ------------------------------------------------------------------------------------------------- CLI
@needs_acas
def test_cli_verify_proof_and_check_proof(tmp_path, capsys):
    model = str(ACAS / "onnx" / "ACASXU_run2a_5_3_batch_2000.onnx")
    vnn = str(ACAS / "vnnlib" / "prop_3.vnnlib")
    proof = tmp_path / "p.json"
    assert cli_main(["verify", model, vnn, "--proof", str(proof)]) == 0
    assert "proof: " in capsys.readouterr().out
    assert cli_main(["check-proof", model, vnn, str(proof)]) == 0
    assert capsys.readouterr().out.startswith("accepted: ")
    p = json.loads(proof.read_text())
    p["regions"][0]["nodes"] = p["regions"][0]["nodes"][:1]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(p))
    assert cli_main(["check-proof", model, vnn, str(bad)]) == 1
    out = capsys.readouterr().out.strip()
    assert out.startswith("rejected: region 0") and "\n" not in out
    assert cli_main(["check-proof", model, vnn, str(tmp_path / "missing.json")]) == 2
    assert cli_main(["check-proof", model, vnn, "--json", str(proof)]) == 0
    assert json.loads(capsys.readouterr().out)["accepted"] is True
    tanh = tmp_path / "tanh.npz"
    save_network(Network([Dense(np.ones((4, 5)), np.zeros(4)), Tanh(), Dense(np.ones((5, 4)), np.zeros(5))]), tanh)
    capsys.readouterr()
    assert cli_main(["check-proof", str(tanh), vnn, str(proof)]) == 2
    assert "ReLU / leaky-ReLU" in capsys.readouterr().err


@needs_acas
def test_cli_check_proof_reads_vnnlib2_properties_and_result_files(tmp_path, capsys):
    """check-proof reads VNN-LIB 2.0 queries as verify does: a 2.0 proof is accepted, the 2.0 assignment
    format of a `sat` result file is re-checked (accepted for its query, rejected for another)."""
    v2 = ROOT / "tests" / "data" / "vnnlib2"
    model = str(ACAS / "onnx" / "ACASXU_run2a_1_9_batch_2000.onnx")
    proof, cex = tmp_path / "p.json", tmp_path / "cex.txt"
    assert cli_main(["verify", model, str(v2 / "prop_1.vnnlib"), "--proof", str(proof)]) == 0
    capsys.readouterr()
    assert cli_main(["check-proof", model, str(v2 / "prop_1.vnnlib"), str(proof)]) == 0
    assert capsys.readouterr().out.startswith("accepted: ")
    # the same proof against the 1.0 file of the same property (same box and rows)
    assert cli_main(["check-proof", model, str(ACAS / "vnnlib" / "prop_1.vnnlib"), str(proof)]) == 0
    capsys.readouterr()
    assert cli_main(["verify", model, str(v2 / "prop_4.vnnlib"), "--result-file", str(cex)]) == 1
    text = cex.read_text()
    assert text.startswith("sat\nX Real [1,5]\n")
    capsys.readouterr()
    assert cli_main(["check-proof", model, str(v2 / "prop_4.vnnlib"), str(cex)]) == 0
    assert capsys.readouterr().out.startswith("accepted: the counterexample lies in region 0")
    assert cli_main(["check-proof", model, str(v2 / "prop_1.vnnlib"), str(cex)]) == 1
    assert capsys.readouterr().out.startswith("rejected: ")
    cex.write_text("sat\nX Real [1,5]\n0.1\nnot-a-number\n")
    assert cli_main(["check-proof", model, str(v2 / "prop_4.vnnlib"), str(cex)]) == 2


# ------------------------------------------------------------------------------------------ independence
_SOLVER_SIDE = ("verification.bounds", "verification.lipschitz", "verification.smt", "verification.batch",
                "verification.cli", "verification.evaluate")
_STDLIB = {"__future__", "hashlib", "json", "math", "time", "dataclasses", "fractions", "pathlib", "typing"}


def test_checker_imports_only_numpy_stdlib_and_the_model():
    files = sorted((ROOT / "verification" / "proofcheck").glob("*.py"))
    assert files
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, path
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top in _STDLIB | {"numpy", "verification"}, (path.name, name)
                assert not name.startswith(_SOLVER_SIDE), (path.name, name)
                if top == "verification":
                    assert name.split(".")[1] in ("network", "spec", "proofcheck"), (path.name, name)
    assert sum(len(p.read_text().splitlines()) for p in files) <= 1025  # issue 23 goal: 1,000 (1,100 before)
