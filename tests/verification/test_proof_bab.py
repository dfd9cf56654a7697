"""Proofs of ``holds`` answers of ReLU-splitting branch and bound (``method="bab"``, docs/proofs.md, version 2):
the verifier's ReLU-split tree with beta-CROWN certificates, checked by the independent checker.

Instances: random ReLU nets on 20-93 inputs whose truth is known (the MILP minimum of ``c·f`` on the box, an
exact big-M MILP independent of the library, or a robustness margin that bab proves); every proof must be
accepted with no trusted certificate, and tampering (a beta's sign or value, a dropped or swapped split child,
another neuron, another network) must be rejected with a message naming the failing step.
"""

from __future__ import annotations

import copy
import functools
import json

import numpy as np
import pytest

from tests.verification.test_relu_bab import _milp_min, _net, _preacts, milp_instance
from verification import verify
from verification.activations import LeakyReLU
from verification.proofcheck import Chain, check_proof, layer_bounds, rows_lower
from verification.spec import box_property, robustness_property


def _prove(net, prop, path):
    res = verify(net, prop, timeout=60, proof=str(path))
    assert res.status == "holds" and res.method == "bab", res
    return res, json.loads(path.read_text())


@pytest.fixture(scope="module")
def proofs(tmp_path_factory):
    """Five proofs: two 16x16 nets on 20-40 inputs at 2 % of the value range below the MILP minimum, a 5x5 net
    at 1e-4 relative below it (exact LP leaves and empty domains), a robustness property with three disjuncts
    on 74 inputs (one tree each), and one on a leaky-ReLU net with slope -0.2 (not monotone)."""
    d = tmp_path_factory.mktemp("bab")
    out = []
    for seed in (2, 6):
        rng = np.random.default_rng(300 + seed)
        net, lo, hi, c, m, samples = milp_instance(rng, int(rng.integers(20, 41)))
        assert m <= samples.min() + 1e-7
        prop = box_property(lo, hi, c[None], [m - 0.02 * (samples.max() - m)])
        out.append((net, prop) + _prove(net, prop, d / f"milp{seed}.json"))
    rng = np.random.default_rng(703)
    n = int(rng.integers(20, 31))
    net = _net(rng, [n, 5, 5, 2], scale=1.5)
    x0 = rng.uniform(-1, 1, n)
    c = np.array([1.0, -1.0])
    m = _milp_min(net, x0 - 0.5, x0 + 0.5, c)
    prop = box_property(x0 - 0.5, x0 + 0.5, c[None], [m - 1e-4 * (1 + abs(m))])
    out.append((net, prop) + _prove(net, prop, d / "lp.json"))
    rng = np.random.default_rng(1)
    net = _net(rng, [int(rng.integers(50, 101)), 20, 20, 4], scale=1.5)
    x0 = rng.uniform(-1, 1, net.in_dim)
    prop = robustness_property(x0 - 0.05, x0 + 0.05, int(np.argmax(net(x0[None])[0])), 4)
    out.append((net, prop) + _prove(net, prop, d / "robust.json"))
    rng = np.random.default_rng(905)
    n = int(rng.integers(20, 60))
    net = _net(rng, [n, 12, 12, 3], act=functools.partial(LeakyReLU, -0.2), scale=1.5)
    x0 = rng.uniform(-1, 1, n)
    prop = robustness_property(x0 - 0.1, x0 + 0.1, int(np.argmax(net(x0[None])[0])), 3)
    out.append((net, prop) + _prove(net, prop, d / "leaky.json"))
    return out


def _certs(proof, by):
    return [(t, i, c) for tree in [proof["regions"][0]["trees"]] for t, nodes in enumerate(tree)
            for i, nd in enumerate(nodes) for c in nd.get("refute", []) if c["by"] == by]


def _rejects(net, prop, proof, *needles):
    rep = check_proof(net, prop, proof)
    assert not rep.accepted and rep.message.startswith("rejected: "), rep.message
    for s in needles:
        assert s in rep.message, rep.message
    return rep.message


def test_bab_proofs_are_accepted_with_nothing_trusted(proofs):
    kinds = set()
    for net, prop, res, proof in proofs:
        assert proof["version"] == 2 and res.details["proof_trusted"] == 0
        rep = check_proof(net, prop, proof)
        assert rep.accepted and rep.trusted == 0 and rep.checked == rep.leaves, rep.message
        trees = proof["regions"][0]["trees"]
        assert any("relu" in nd for t in trees for nd in t)
        kinds |= {c["by"] for t in trees for nd in t for c in nd.get("refute", [])}
        if len(prop.regions[0].outputs) > 1:  # one tree per disjunct (those refuted on the whole box share one)
            assert len(trees) >= 2
    assert {"beta", "empty"} <= kinds
    lp = proofs[2][3]  # the LP leaves' dual weights: a beta certificate on a combined row
    assert any(float.fromhex(c["w"][0]) not in (0.0, 1.0) or c["betas"] for _, _, c in _certs(lp, "beta"))


def test_beta_bound_is_below_the_values_on_the_domain():
    """The checker's beta-CROWN bound on a split domain is below ``c·f(x) - sum beta s z(x)`` at sampled points
    of the domain (split signs taken from one point), for any ``beta >= 0``, and below ``c·f`` there."""
    rng = np.random.default_rng(5)
    net = _net(rng, [30, 12, 12, 3], scale=1.5)
    ch = Chain.of(net)
    x0 = rng.uniform(-1, 1, 30)
    lo, hi = x0 - 0.3, x0 + 0.3
    z0 = _preacts(net, x0[None])
    signs = [np.zeros((1, 12), np.int8) for _ in range(2)]
    for j in range(2):
        for i in rng.choice(12, 4, replace=False):
            signs[j][0, i] = 1 if z0[j][0, i] >= 0 else -1
    (pre, empty) = layer_bounds(ch, lo[None], hi[None], None, full=True, signs=signs)
    assert not empty[0]
    X = rng.uniform(lo, hi, size=(200000, 30))
    Z = _preacts(net, X)
    ok = np.all([np.all(s * z >= 0, axis=1) for s, z in zip(signs, Z)], axis=0)
    assert ok.sum() > 100
    c = np.array([[1.0, -1.0, 0.5]])
    for scale in (0.0, 0.3, 3.0):
        beta = [scale * rng.uniform(0, 1, (1, 1, 12)) * (s[:, None, :] != 0) for s in signs]
        lag = [b * s[:, None, :] for b, s in zip(beta, signs)]
        low = rows_lower(ch, lo[None], hi[None], pre, c, np.zeros(1), lag=lag)[0, 0]
        val = net(X[ok]) @ c[0] - sum(z[ok] @ lg[0, 0] for z, lg in zip(Z, lag))
        assert low <= val.min() and low <= (net(X[ok]) @ c[0]).min()


def test_mutations_of_betas_are_rejected(proofs):
    net, prop, _, proof = proofs[0]
    t, i, c = next(x for x in _certs(proof, "beta") if x[2]["betas"])
    for value, needle in (("-0x1p-4", "negative"), ("0x1p+20", "beta lower bound")):
        p = copy.deepcopy(proof)
        _, _, c2 = _certs(p, "beta")[_certs(proof, "beta").index((t, i, c))]
        c2["betas"][0][2] = value
        _rejects(net, prop, p, f"tree {t}, node {i}", needle)
    p = copy.deepcopy(proof)  # a multiplier on a neuron the node does not split
    _, _, c2 = _certs(p, "beta")[_certs(proof, "beta").index((t, i, c))]
    nodes = p["regions"][0]["trees"][t]
    split = {tuple(nd["relu"]) for nd in nodes if "relu" in nd}
    free = next([j, n] for j in range(2) for n in range(16) if (j, n) not in split)
    c2["betas"].append(free + ["0x1p-10"])
    _rejects(net, prop, p, "not split on this node")


def _end(nodes, i):
    """Index after the subtree rooted at node ``i`` (preorder, two children per split)."""
    todo, j = 1, i
    while todo:
        todo += (2 if ("relu" in nodes[j] or "split" in nodes[j]) else 0) - 1
        j += 1
    return j


def test_mutations_of_the_split_tree_are_rejected(proofs):
    net, prop, _, proof = proofs[1]
    nodes = proof["regions"][0]["trees"][0]

    def on_split(i, c):  # a child's multiplier on the neuron its parent splits
        return c["by"] == "beta" and any(e[:2] == nodes[i]["relu"] and float.fromhex(e[2]) > 0 for e in c["betas"])

    # the deepest split whose z >= 0 child is a leaf with a multiplier on the split neuron
    i = max(i for i, nd in enumerate(nodes) if "relu" in nd and "relu" not in nodes[i + 1]
            and on_split(i, nodes[i + 1]["refute"][0]))
    # flip the split's sign: swap the z >= 0 and z <= 0 children (subtrees)
    p = copy.deepcopy(proof)
    tree = p["regions"][0]["trees"][0]
    end = _end(tree, i)
    tree[i + 1:end] = tree[i + 2:end] + [tree[i + 1]]
    _rejects(net, prop, p, "tree 0, node ", "is not > 0")
    # split another neuron: the children's multipliers sit on a neuron they do not split
    p = copy.deepcopy(proof)
    tree = p["regions"][0]["trees"][0]
    split = {tuple(nd["relu"]) for nd in nodes if "relu" in nd}
    tree[i]["relu"] = next([tree[i]["relu"][0], n] for n in range(16) if (tree[i]["relu"][0], n) not in split)
    _rejects(net, prop, p, f"tree 0, node {i + 1}", "not split on this node")
    # drop a split child (its whole subtree): the preorder list ends early
    p = copy.deepcopy(proof)
    tree = p["regions"][0]["trees"][0]
    del tree[i + 2:_end(tree, i + 2)]  # the nodes after it are read as its place: the tree breaks somewhere
    msg = _rejects(net, prop, p, "tree 0")
    assert any(s in msg for s in ("ends early", "already split", "is not refuted", "is not > 0")), msg
    p = copy.deepcopy(proof)
    p["regions"][0]["trees"][0].pop()
    _rejects(net, prop, p, "tree 0: the tree ends early")
    # drop the split itself, keeping one child's certificate: its multiplier is on a neuron no longer split
    p = copy.deepcopy(proof)
    tree = p["regions"][0]["trees"][0]
    tree[i:_end(tree, i)] = [tree[i + 1]]
    _rejects(net, prop, p, f"tree 0, node {i}", "not split on this node")
    # claim emptiness where the bounds do not cross
    p = copy.deepcopy(proof)
    tree = p["regions"][0]["trees"][0]
    tree[i + 1]["refute"] = [{"k": 0, "by": "empty"}]
    _rejects(net, prop, p, f"tree 0, node {i + 1}", "not shown empty")


def test_mutations_of_trees_and_networks_are_rejected(proofs):
    net, prop, _, proof = proofs[3]
    p = copy.deepcopy(proof)  # a tree removed: one disjunct is refuted nowhere
    trees = p["regions"][0]["trees"]
    ks = {c["k"] for nd in trees[-1] for c in nd.get("refute", [])}
    trees.pop()
    if all(any(k in {c["k"] for nd in t for c in nd.get("refute", [])} for t in trees) for k in ks):
        pytest.skip("the last tree's disjuncts are refuted elsewhere too")  # pragma: no cover
    _rejects(net, prop, p, "(leaf): disjunct", "is not refuted")
    # another network (one weight changed): the fingerprint, and with a forged fingerprint the bounds
    layers = list(net.layers)
    W = layers[0].as_matrix().copy()
    W[0, 0] += 0.05
    other = type(net)(tuple([type(layers[0])(W, layers[0].bias)] + layers[1:]))
    _rejects(other, prop, proof, "network: the fingerprint differs")
    p = copy.deepcopy(proof)
    p["network"]["sha256"] = Chain.of(other).fingerprint()
    rng = np.random.default_rng(0)
    W2 = W + 0.2 * rng.normal(size=W.shape)
    other = type(net)(tuple([type(layers[0])(W2, layers[0].bias)] + layers[1:]))
    p["network"]["sha256"] = Chain.of(other).fingerprint()
    _rejects(other, prop, p, "region 0, tree ")
    # the root's alpha-CROWN rows: a slope outside [s, 1], a row on the first layer (nothing to back-substitute)
    root = next(t[0] for t in proof["regions"][0]["trees"] if "tighten" in t[0])
    for mutate, needle in ((lambda r: r[3][0].__setitem__(2, "0x1.8p+0"), "outside [0.0, 1]"),
                           (lambda r: r.__setitem__(0, 0), "bad tighten entry")):
        p = copy.deepcopy(proof)
        r = next(t[0] for t in p["regions"][0]["trees"] if "tighten" in t[0])["tighten"][0]
        mutate(r)
        _rejects(net, prop, p, "node 0", needle)
    assert root["tighten"]
    # version 1 does not read trees
    p = copy.deepcopy(proof)
    p["version"] = 1
    _rejects(net, prop, p, "region 0: 'nodes' is not a list")


def test_recording_does_not_change_the_search(proofs):
    """The same domains with and without a proof (the log only records), and the proof's ReLU-split tree is the
    search's (no node added by the writer on this instance)."""
    net, prop, res, proof = proofs[0]
    plain = verify(net, prop, timeout=60)
    assert plain.status == "holds" and plain.details["domains"] == res.details["domains"] > 100
    tree = proof["regions"][0]["trees"][0]
    assert sum("relu" in nd for nd in tree) == res.details["domains"] // 2
