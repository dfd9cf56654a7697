"""Counterexamples re-checked by the independent checker (docs/proofs.md, "Counterexamples"): the network is
evaluated exactly at the float input (integers times powers of two), the box and the unsafe constraint as
written (exact rationals, strict rows strictly); agreement with verification.evaluate's exact forward pass,
and refusals that name the reason."""

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from verification.activations import LeakyReLU, ReLU, Tanh
from verification.cli import main as cli_main
from verification.evaluate import exact_forward
from verification.io import load_network, save_network
from verification.network import Dense, Network
from verification.proofcheck import ChainError, check_counterexample
from verification.proofcheck.counterexample import exact_outputs
from verification.smt import verify
from verification.spec import InputRegion, OutputConstraint, VnnlibProperty
from verification.vnnlib import read_vnnlib

ACAS = Path(__file__).resolve().parents[2] / "tests" / "data" / "acasxu"


def _prop(lo, hi, A, b, strict=None):
    oc = OutputConstraint(np.atleast_2d(np.asarray(A, float)), np.atleast_1d(np.asarray(b, float)), strict=strict)
    return VnnlibProperty(len(lo), oc.A.shape[1], (InputRegion(np.asarray(lo, float), np.asarray(hi, float), (oc,)),))


@pytest.mark.parametrize("act", [ReLU(), LeakyReLU(0.1), LeakyReLU(-0.3)])
def test_exact_outputs_equal_the_exact_forward_pass(act):
    rng = np.random.default_rng(0)
    net = Network([Dense(rng.normal(size=(7, 3)), rng.normal(size=7)), act, Dense(rng.normal(size=(5, 7)), rng.normal(size=5)),
                   act, Dense(rng.normal(size=(2, 5)), rng.normal(size=2))])
    for x in rng.normal(size=(20, 3)) * [1.0, 1e-8, 1e5]:
        assert exact_outputs(net, x) == list(exact_forward(net, x))
    affine = Network([Dense(rng.normal(size=(3, 2))), Dense(rng.normal(size=(2, 3)))])  # consecutive affine layers
    x = rng.normal(size=2)
    W0, W1 = (np.vectorize(Fraction)(layer.as_matrix()) for layer in affine.layers)
    assert exact_outputs(affine, x) == list(W1.dot(W0.dot([Fraction(v) for v in x])))


def test_acas_counterexample_is_confirmed_and_wrong_ones_rejected():
    net = load_network(ACAS / "onnx" / "ACASXU_run2a_2_3_batch_2000.onnx")
    prop = read_vnnlib(ACAS / "vnnlib" / "prop_2.vnnlib")
    res = verify(net, prop, timeout=60)
    assert res.status == "violated"
    x = np.asarray(res.counterexample)
    rep = check_counterexample(net, prop, x)
    assert rep.accepted and "region 0" in rep.message
    other = read_vnnlib(ACAS / "vnnlib" / "prop_1.vnnlib")
    assert "meets no unsafe constraint" in check_counterexample(net, other, x).message or \
        "no region's box" in check_counterexample(net, other, x).message
    out = x.copy()
    out[0] = float(prop.regions[0].upper[0]) + 1.0
    rep = check_counterexample(net, prop, out)
    assert not rep.accepted and "no region's box" in rep.message
    assert not check_counterexample(net, prop, x[:3]).accepted


def test_strict_rows_and_bounds_are_checked_as_written():
    net = Network([Dense(np.eye(1))])  # y = x
    assert check_counterexample(net, _prop([0.0], [1.0], [[1.0]], [0.5]), [0.5]).accepted  # y <= 0.5
    rep = check_counterexample(net, _prop([0.0], [1.0], [[1.0]], [0.5], strict=[True]), [0.5])  # y < 0.5
    assert not rep.accepted and "meets no unsafe constraint" in rep.message
    # bounds as written (0.1 is not a float): the float nearest 0.1 is above it, so y <= 0.1 fails exactly
    region = InputRegion(np.array([0.0]), np.array([1.0]),
                         (OutputConstraint(np.array([[1.0]]), np.array([0.1]), b_exact=(Fraction(1, 10),)),))
    prop = VnnlibProperty(1, 1, (region,))
    assert Fraction(0.1) > Fraction(1, 10) and not check_counterexample(net, prop, [0.1]).accepted


def test_smooth_networks_are_refused():
    net = Network([Dense(np.ones((2, 1))), Tanh(), Dense(np.ones((1, 2)))])
    with pytest.raises(ChainError):
        check_counterexample(net, _prop([0.0], [1.0], [[1.0]], [5.0]), [0.5])


def test_cli_rechecks_result_files_and_verify_json(tmp_path, capsys):
    model = str(ACAS / "onnx" / "ACASXU_run2a_2_3_batch_2000.onnx")
    vnn, vnn1 = str(ACAS / "vnnlib" / "prop_2.vnnlib"), str(ACAS / "vnnlib" / "prop_1.vnnlib")
    res = tmp_path / "res.txt"
    cli_main(["verify", model, vnn, "--result-file", str(res)])
    assert res.read_text().startswith("sat")
    capsys.readouterr()
    assert cli_main(["check-proof", model, vnn, str(res)]) == 0
    assert capsys.readouterr().out.startswith("accepted: the counterexample lies in region 0")
    assert cli_main(["check-proof", model, vnn1, str(res)]) == 1
    capsys.readouterr()
    cli_main(["verify", model, vnn, "--json"])
    js = tmp_path / "v.json"
    js.write_text(capsys.readouterr().out)
    assert cli_main(["check-proof", model, vnn, str(js), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accepted"] is True
    bad = tmp_path / "bad.txt"
    bad.write_text("sat\n((Y_0 1.0))\n")
    assert cli_main(["check-proof", model, vnn, str(bad)]) == 2
    assert cli_main(["check-proof", model, str(res)]) == 2  # a counterexample needs its property
    tanh = tmp_path / "tanh.npz"
    save_network(Network([Dense(np.ones((4, 5)), np.zeros(4)), Tanh(), Dense(np.ones((5, 4)), np.zeros(5))]), tanh)
    capsys.readouterr()
    assert cli_main(["check-proof", str(tanh), vnn, str(res)]) == 2
