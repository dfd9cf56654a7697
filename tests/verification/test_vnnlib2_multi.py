"""VNN-LIB 2.0 queries over several networks: the product network (verification.compose), the query's ties
and tensors (verification.vnnlib2), verdicts against exact enumeration on tiny nets, the CLI and batch."""

from __future__ import annotations

import itertools
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from scipy.linalg import block_diag

from verification import compose
from verification.activations import Identity, LeakyReLU, MaxMin, ReLU, Tanh
from verification.batch.instances import read_instances
from verification.batch.worker import verify_instance
from verification.cli import main
from verification.compose import product_network, query_network
from verification.errors import PropertyFormatError, UnsupportedLayerError
from verification.evaluate import exact_forward, has_exact_forward
from verification.io import load_network, save_network
from verification.layers import Conv2d, Dense, SparseAffine
from verification.network import Network
from verification.smt import verify
from verification.smt.confirm import confirm_property
from verification.vnnlib2 import parse_query, read_query

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "vnnlib2"
ACAS = ROOT / "tests" / "data" / "acasxu" / "onnx"


def _net(rng, sizes, acts) -> Network:
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(Dense(rng.normal(size=(b, a)), rng.normal(size=b)))
        if i < len(acts) and acts[i] is not None:
            layers.append(acts[i])
    return Network(tuple(layers))


def _separate(nets, maps, z):
    return np.concatenate([n(z[:, m]) for n, m in zip(nets, maps)], axis=1)


# --------------------------------------------------------------------------------------------- product network
CASES = [  # (input widths of the net list, hidden layout per net)
    ([(3, [5, 4], [ReLU(), ReLU()], 2), (3, [6], [ReLU()], 2)]),  # depth mismatch: relu passes
    ([(2, [4], [ReLU()], 1), (4, [3, 3, 3], [ReLU(), ReLU(), ReLU()], 3), (1, [], [], 2)]),  # three nets, one affine
    ([(3, [4], [LeakyReLU(0.5)], 2), (3, [4, 4], [ReLU(), ReLU()], 2)]),  # different activations: run in turn
    ([(2, [4, 4], [MaxMin(), ReLU()], 2), (2, [6, 2], [MaxMin(), ReLU()], 1)]),  # grouped map applied by both
    ([(3, [4], [LeakyReLU(-0.5)], 2), (3, [4, 4], [LeakyReLU(-0.5), LeakyReLU(-0.5)], 2)]),  # 1/(1+a) = 2: exact
    ([(2, [3, 3], [ReLU(), Tanh()], 2), (2, [4], [Tanh()], 1)]),  # tanh waits for the other's relu step
]


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("dense_entries", [compose.DENSE_ENTRIES, 0])
def test_product_equals_the_networks_evaluated_separately(case, shared, dense_entries, monkeypatch):
    monkeypatch.setattr(compose, "DENSE_ENTRIES", dense_entries)  # 0: every product layer a SparseAffine
    rng = np.random.default_rng(case)
    nets = [_net(rng, [n_in, *hidden, n_out], acts) for n_in, hidden, acts, n_out in CASES[case]]
    if shared:  # every network reads (a prefix of) one input; the first two inputs of net 0 are tied too
        width = max(n.in_dim for n in nets)
        maps = [np.arange(n.in_dim) for n in nets]
        maps[0] = np.concatenate([[0], np.arange(nets[0].in_dim - 1)])  # input 0 feeds two inputs of net 0
        in_dim = width
    else:
        offs = np.cumsum([0] + [n.in_dim for n in nets])
        maps, in_dim = [np.arange(offs[i], offs[i + 1]) for i in range(len(nets))], int(offs[-1])
    prod = product_network(nets, maps, in_dim)
    assert prod.in_dim == in_dim and prod.out_dim == sum(n.out_dim for n in nets)
    if dense_entries == 0:
        assert all(isinstance(l, SparseAffine) for l in prod.affine_layers)
    z = rng.normal(size=(64, in_dim)) * 2
    np.testing.assert_allclose(prod(z), _separate(nets, maps, z), rtol=1e-12, atol=1e-12)
    # the same real-valued function: exact rational evaluation agrees to the last bit
    for x in z[:3] if has_exact_forward(prod) else []:
        want = [v for n, m in zip(nets, maps) for v in exact_forward(n, x[m])]
        assert exact_forward(prod, x) == want


def test_identity_activations_and_stacked_affine_layers():
    rng = np.random.default_rng(7)
    a = Network((Dense(rng.normal(size=(4, 3)), rng.normal(size=4)), Identity(), Dense(rng.normal(size=(5, 4))),
                 ReLU(), Dense(rng.normal(size=(2, 5)))))
    b = Network((ReLU(), Dense(rng.normal(size=(3, 3)), rng.normal(size=3)), ReLU(), ReLU(), Dense(rng.normal(size=(1, 3)))))
    prod = product_network([a, b])
    z = rng.normal(size=(32, 6))
    np.testing.assert_allclose(prod(z), _separate([a, b], [np.arange(3), np.arange(3, 6)], z), rtol=1e-12, atol=1e-12)


def test_the_same_network_on_the_same_inputs_is_run_once():
    rng = np.random.default_rng(1)
    net = _net(rng, [3, 8, 2], [ReLU()])
    prod = product_network([net, net], [np.arange(3), np.arange(3)], 3)
    assert prod.affine_layers[0].out_features == 8  # not 16: the copy's outputs are selected
    z = rng.normal(size=(10, 3))
    np.testing.assert_array_equal(prod(z)[:, :2], prod(z)[:, 2:])


@pytest.mark.parametrize("a_acts,b_acts,fragment", [
    ([ReLU()], [Tanh()], "network f has no tanh at activation step 2 (it is shallower), and its values cannot "
                         "pass through tanh exactly"),  # tanh waits for the relu step, then f cannot pass tanh
    ([ReLU()], [ReLU(), Tanh()], "network f has no tanh at activation step 2 (it is shallower)"),
    ([LeakyReLU(0.1)], [LeakyReLU(0.1)] * 2, "cannot pass through leaky_relu(0.1) exactly"),  # 1/1.1: not binary
])
def test_networks_that_cannot_run_side_by_side_are_refused_in_one_line(a_acts, b_acts, fragment):
    rng = np.random.default_rng(2)
    a = _net(rng, [2] + [3] * len(a_acts) + [1], a_acts)
    b = _net(rng, [2] + [3] * len(b_acts) + [1], b_acts)
    with pytest.raises(UnsupportedLayerError) as exc:
        product_network([a, b], names=["f", "g"])
    assert "\n" not in str(exc.value) and fragment in str(exc.value), str(exc.value)


# --------------------------------------------------------------------------------------------- queries
HEAD2 = """(vnnlib-version <2.0>)
(declare-network f (declare-input X Real [1,2]) (declare-output Y Real [1]))
(declare-network g {rel}(declare-input A Real [1,2]) (declare-output B Real [1]))
"""
BOX = "(assert (and (>= X[0,0] -1) (<= X[0,0] 1) (>= X[0,1] -1) (<= X[0,1] 1)))\n"
TIE = "(assert (and (== X[0,0] A[0,0]) (== A[0,1] X[0,1])))\n"


def _equivalence(eps: str, rel: str = "(isomorphic-to f) ") -> str:
    return HEAD2.format(rel=rel) + BOX + TIE + f"(assert (or (> B[0] (+ Y[0] {eps})) (< B[0] (- Y[0] {eps}))))\n"


def _vertices(nets, lo, hi):
    """Every vertex of the arrangement of the first-layer hyperplanes of ``nets`` and the box edges (2 inputs,
    one hidden ReLU layer): a piecewise-linear function of the input takes its extremes over the box there."""
    lines = [(np.array([1.0, 0.0]), -lo[0]), (np.array([1.0, 0.0]), -hi[0]),
             (np.array([0.0, 1.0]), -lo[1]), (np.array([0.0, 1.0]), -hi[1])]
    for n in nets:
        w, b = n.weights[0], n.biases[0]
        lines += [(w[i], b[i]) for i in range(w.shape[0])]
    pts = []
    for (a1, c1), (a2, c2) in itertools.combinations(lines, 2):
        m = np.stack([a1, a2])
        if abs(np.linalg.det(m)) > 1e-12:
            p = np.linalg.solve(m, [-c1, -c2])
            if np.all(p >= lo - 1e-12) and np.all(p <= hi + 1e-12):
                pts.append(np.clip(p, lo, hi))
    return np.array(pts)


def test_equivalence_with_itself_holds_and_with_another_matches_exact_enumeration():
    rng = np.random.default_rng(11)
    f = _net(rng, [2, 5, 1], [ReLU()])
    f_copy = Network(tuple(f.layers))  # a second object: the product really runs both copies
    g = Network((f.layers[0], ReLU(), Dense(f.layers[2].as_matrix() + rng.normal(scale=0.3, size=(1, 5)),
                                            f.layers[2].bias)))
    lo, hi = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    pts = _vertices([f, g], lo, hi)
    gap = float(np.max(np.abs(g(pts) - f(pts))))  # max |g - f| over the box (exact up to rounding)
    assert gap > 0.05
    q_same = parse_query(_equivalence("0.01"))  # a copy (another object) really runs twice: a tolerance is needed
    r = verify(query_network(q_same, {"f": f, "g": f_copy}), q_same.property, timeout=30)
    assert r.status == "holds"
    for eps, want in ((gap * 0.98, "violated"), (gap * 1.02, "holds")):
        q = parse_query(_equivalence(repr(eps)))
        net = query_network(q, {"f": f, "g": g})
        res = verify(net, q.property, timeout=30)
        assert res.status == want, (eps, gap, res)
        if want == "violated":
            z = np.asarray(res.counterexample)
            assert confirm_property(net, q.property, z)
            x = z[list(q.networks[0].input_index)]
            assert abs(g(x)[0] - f(x)[0]) > eps  # on each network, evaluated separately
            # the result file lists each network's tensors; read back it gives the same point
            text = q.result_text(res)
            assert [ln for ln in text.splitlines() if " Real " in ln] == ["X Real [1,2]", "Y Real [1]", "A Real [1,2]",
                                                                          "B Real [1]"]
            xs, ys = q.parse_assignment(text)
            assert np.array_equal(xs, z) and np.allclose(ys, [f(x)[0], g(x)[0]])


def test_one_network_evaluated_twice_on_separate_boxes_matches_enumeration():
    """(equal-to f) with separate inputs: is there x in box 1 and x' in box 2 with f(x) - f(x') > t?"""
    rng = np.random.default_rng(5)
    f = _net(rng, [2, 6, 1], [ReLU()])
    lo1, hi1, lo2, hi2 = np.array([-1.0, 0.0]), np.array([0.0, 1.0]), np.array([0.0, -1.0]), np.array([1.0, 0.0])
    best = float(np.max(f(_vertices([f], lo1, hi1))) - np.min(f(_vertices([f], lo2, hi2))))
    for t, want in ((best - 0.02 * abs(best) - 1e-3, "violated"), (best + 0.02 * abs(best) + 1e-3, "holds")):
        text = (HEAD2.format(rel="(equal-to f) ")
                + "(assert (and (>= X[0,0] -1) (<= X[0,0] 0) (>= X[0,1] 0) (<= X[0,1] 1)))\n"
                + "(assert (and (>= A[0,0] 0) (<= A[0,0] 1) (>= A[0,1] -1) (<= A[0,1] 0)))\n"
                + f"(assert (> (- Y[0] B[0]) {t!r}))\n")
        q = parse_query(text)
        assert q.property.in_dim == 4 and q.models_needed() == ["f"]
        net = query_network(q, {"f": f})
        res = verify(net, q.property, timeout=30)
        assert res.status == want, (t, best, res)
        # the same verdict on a product built by hand: [W 0; 0 W], relu, [v -v]
        w, b, v, c = f.weights[0], f.biases[0], f.weights[1], f.biases[1]
        manual = Network((Dense(block_diag(w, w), np.concatenate([b, b])), ReLU(),
                          Dense(block_diag(v, v), np.concatenate([c, c]))))
        assert verify(manual, q.property, timeout=30).status == want


def test_ties_and_names():
    q = parse_query(_equivalence("0.1"))
    assert q.is_multi and q.ties == 2 and q.property.in_dim == 2 and q.property.out_dim == 2
    assert [n.input_index for n in q.networks] == [(0, 1), (0, 1)] and q.networks[1].output_offset == 1
    # an unbounded input of g is reported in the query's names
    with pytest.raises(PropertyFormatError, match=r"input A\[0,1\] has no finite lower bound"):
        parse_query(HEAD2.format(rel="") + BOX + "(assert (== X[0,0] A[0,0]))(assert (>= B[0] Y[0]))")
    for rel, fragment in (("(equal-to h) ", "must name a network declared earlier"),):
        with pytest.raises(PropertyFormatError, match=fragment):
            parse_query(_equivalence("0.1", rel))
    bad = _equivalence("0.1").replace("(declare-input A Real [1,2])", "(declare-input A Real [1,3])")
    with pytest.raises(PropertyFormatError, match=r"shape must be equal"):
        parse_query(bad)


# --------------------------------------------------------------------------------------------- CLI and batch
@pytest.fixture()
def tiny(tmp_path):
    rng = np.random.default_rng(3)
    f = _net(rng, [2, 5, 1], [ReLU()])
    g = Network((f.layers[0], ReLU(), Dense(f.layers[2].as_matrix() + 0.3, f.layers[2].bias)))
    save_network(f, tmp_path / "f.npz")
    save_network(g, tmp_path / "g.npz")
    save_network(_net(rng, [3, 4, 1], [ReLU()]), tmp_path / "wide.npz")
    save_network(_net(rng, [2, 4, 3, 1], [ReLU(), ReLU()]), tmp_path / "deep.npz")
    (tmp_path / "q.vnnlib").write_text(_equivalence("0.01"))
    return tmp_path


def test_cli_two_networks_result_file_in_the_2_0_format(tiny, capsys):
    res = tiny / "out.txt"
    code = main(["verify", "--network", f"f={tiny / 'f.npz'}", "--network", f"g={tiny / 'g.npz'}",
                 str(tiny / "q.vnnlib"), "--result-file", str(res), "--quiet"])
    capsys.readouterr()
    assert code == 1
    lines = res.read_text().splitlines()
    assert lines[0] == "sat" and lines[1] == "X Real [1,2]" and lines[4] == "Y Real [1]" and lines[6] == "A Real [1,2]"
    x = np.array([float(lines[2]), float(lines[3])])
    f, g = load_network(tiny / "f.npz"), load_network(tiny / "g.npz")
    assert [float(lines[7]), float(lines[8])] == x.tolist()  # tied: the same point for both networks
    assert abs(float(lines[10]) - g(x)[0]) < 1e-12 and abs(float(lines[5]) - f(x)[0]) < 1e-12
    assert abs(g(x)[0] - f(x)[0]) > 0.01
    assert main(["verify", "--network", f"f={tiny / 'f.npz'}", "--network", f"g={tiny / 'f.npz'}",
                 str(tiny / "q.vnnlib"), "--quiet"]) == 0


@pytest.mark.parametrize("argv,fragment", [
    (["--network", "f={d}/f.npz", "--network", "h={d}/g.npz"], "the query declares no network h"),
    (["--network", "f={d}/f.npz"], "no model for network g"),
    (["--network", "f={d}/f.npz", "--network", "g={d}/wide.npz"], "network g: the query declares input A Real [1,2]"),
    (["--network", "f={d}/f.npz", "--network", "g={d}/deep.npz"], "(isomorphic-to f) but its model differs"),
    (["--network", "f={d}/f.npz", "--network", "g"], "expected NAME=PATH"),
    (["--network", "f={d}/f.npz", "--network", "f={d}/g.npz"], "--network f is given twice"),
    (["{d}/f.npz"], "declares 2 networks (f, g): give their models with --network"),
    (["--network", "f={d}/f.npz", "--network", "g={d}/g.npz", "--proof", "{d}/p.json"], "--proof is not available"),
    (["--network", "f={d}/f.npz", "--network", "g={d}/g.npz", "{d}/tie_or.vnnlib"], "ties of inputs must be asserted"),
])
def test_cli_bad_input_one_line_exit_2(tiny, capsys, argv, fragment):
    (tiny / "tie_or.vnnlib").write_text(HEAD2.format(rel="") + BOX + "(assert (or (== X[0,0] A[0,0]) (== X[0,1] A[0,1])))"
                                        "(assert (>= B[0] Y[0]))")
    args = [a.format(d=tiny) for a in argv]
    query = [] if any(a.endswith(".vnnlib") for a in args) else [str(tiny / "q.vnnlib")]
    code = main(["verify", *args, *query, "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and fragment in err[0], err


def test_cli_equal_to_takes_no_model(tiny, capsys):
    (tiny / "eq.vnnlib").write_text(_equivalence("0.01", "(equal-to f) "))
    code = main(["verify", "--network", f"f={tiny / 'f.npz'}", "--network", f"g={tiny / 'g.npz'}",
                 str(tiny / "eq.vnnlib"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "is (equal-to f) and uses the model of f" in err[0]
    assert main(["verify", "--network", f"f={tiny / 'f.npz'}", str(tiny / "eq.vnnlib"), "--quiet"]) == 0


def test_batch_rows_with_several_networks(tiny, capsys):
    csv = tiny / "instances.csv"
    csv.write_text("\"[('f', 'f.npz'), ('g', 'g.npz')]\",q.vnnlib,30,sat\n"
                   "\"[('f', 'f.npz'), ('g', 'f.npz')]\",q.vnnlib,30,unsat\n")
    insts = read_instances(csv)
    assert [i.networks[1][0] for i in insts] == ["g", "g"] and insts[0].id != insts[1].id
    sat, unsat = (verify_instance(i.to_dict()) for i in insts)
    assert sat["result"] == "sat" and sat["confirmed"] is True and sat["networks"][1][0] == "g"
    assert "A Real [1,2]" in sat["text"] and unsat["result"] == "unsat"
    for cell, fragment in (("[('f', 'f.npz'), ('h', 'g.npz')]", "network 'h' is not declared by the query"),
                           ("[('f', 'f.npz'), ('g', 'nope.npz')]", "network g file 'nope.npz' does not exist"),
                           ("[('f', 'f.npz'), ('f', 'g.npz')]", "'f' is listed twice")):
        csv.write_text(f"\"{cell}\",q.vnnlib,30\n")
        code = main(["batch", str(csv), "--out", str(tiny / "out"), "--quiet"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and fragment in err[0], err


def test_shipped_acas_xu_equivalence_queries():
    """tests/data/vnnlib2: ACAS Xu 1_1 against 1_9 on tied inputs (the VNN-COMP 2026 template)."""
    q = read_query(DATA / "acasxu_equiv_0.001.vnnlib")
    nets = {"f": load_network(ACAS / "ACASXU_run2a_1_1_batch_2000.onnx"),
            "g": load_network(ACAS / "ACASXU_run2a_1_9_batch_2000.onnx")}
    net = query_network(q, nets)
    res = verify(net, q.property, timeout=30)
    assert res.status == "violated"
    x = np.asarray(res.counterexample)
    y = np.concatenate([nets["f"](x), nets["g"](x)])
    assert q.property.is_violated_exactly(x, [Fraction(v) for v in y]) or confirm_property(net, q.property, x)
    same = query_network(q, {"f": nets["f"], "g": nets["f"]})
    assert verify(same, q.property, timeout=30).status == "holds"


def test_convolutional_networks_stay_sparse():
    """A conv net next to a dense net: the product's conv blocks come from the layer's own sparse matrix (no
    dense lowering) and the product equals the two networks evaluated separately."""
    rng = np.random.default_rng(4)
    conv = Conv2d(rng.normal(size=(8, 3, 3, 3)), rng.normal(size=8), (3, 16, 16), 1, 1, 1, (1, 1, 1, 1))
    cnet = Network((conv, ReLU(), Dense(rng.normal(size=(4, conv.out_features)), rng.normal(size=4))))
    dnet = _net(rng, [3 * 16 * 16, 6, 5, 2], [ReLU(), ReLU()])
    prod = product_network([cnet, dnet], [np.arange(768), np.arange(768)], 768)
    first = prod.affine_layers[0]
    assert isinstance(first, SparseAffine) and first.nnz <= conv.as_sparse().nnz + 768 * 6
    z = rng.normal(size=(8, 768))
    np.testing.assert_allclose(prod(z), np.concatenate([cnet(z), dnet(z)], axis=1), rtol=1e-11, atol=1e-11)


def test_other_relations_between_inputs_of_two_networks_are_refused():
    text = HEAD2.format(rel="") + BOX + TIE + "(assert (<= X[0,0] A[0,1]))(assert (>= B[0] Y[0]))"
    with pytest.raises(PropertyFormatError) as exc:
        parse_query(text, "rel.vnnlib")
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("rel.vnnlib:") and "related only by asserted equalities" in msg
