"""Loaders: every format gives the same IR; bad files give precise errors."""

from __future__ import annotations

import numpy as np
import pytest

from verification import load_network, save_network
from verification.activations import LeakyReLU, ReLU, Tanh
from verification.errors import (
    InvalidWeightsError,
    ModelFormatError,
    ShapeMismatchError,
    UnsupportedLayerError,
    UntrustedModelError,
)
from verification.network import Dense, Network

from .onnx_builders import mlp_onnx, write_onnx

ACAS_IDS = [(1, 1), (1, 9), (2, 3)]  # the networks bundled in tests/data/acasxu; all 45 are checked by benchmarks/acasxu.py


def test_acasxu_onnx_equals_nnet(acasxu_dir):
    rng = np.random.default_rng(0)
    worst_rounded = worst_raw = 0.0
    for i, j in ACAS_IDS:
        onnx_net = load_network(acasxu_dir / "onnx" / f"ACASXU_run2a_{i}_{j}_batch_2000.onnx")
        nnet = load_network(acasxu_dir / "nnet" / f"ACASXU_experimental_v2a_{i}_{j}.nnet")
        assert [l.describe() for l in onnx_net.layers] == [l.describe() for l in nnet.layers]
        x = rng.uniform(nnet.input_lower, nnet.input_upper, size=(200, 5))
        y_onnx = onnx_net(x)
        scale = np.abs(y_onnx).max()
        # the ONNX tensors are the float32 roundings of the .nnet decimals: identical function once rounded
        worst_rounded = max(worst_rounded, np.abs(nnet.rounded(np.float32)(x) - y_onnx).max() / scale)
        worst_raw = max(worst_raw, np.abs(nnet(x) - y_onnx).max() / scale)
    assert worst_rounded <= 1e-9
    assert worst_raw <= 1e-5  # float32 rounding of 6-digit decimals through 7 layers, nothing more


def test_acasxu_onnx_matches_onnxruntime(acasxu_dir):
    import onnxruntime as ort

    path = acasxu_dir / "onnx" / "ACASXU_run2a_2_3_batch_2000.onnx"
    net = load_network(path)
    sess = ort.InferenceSession(str(path))
    x = np.random.default_rng(1).uniform(-0.5, 0.5, size=(20, 5))
    ref = np.stack([sess.run(None, {"input": xi.reshape(1, 1, 1, 5).astype(np.float32)})[0].ravel() for xi in x])
    np.testing.assert_allclose(net(x.astype(np.float32).astype(np.float64)), ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def test_nnet_normalisation_folding(acasxu_dir):
    path = acasxu_dir / "nnet" / "ACASXU_experimental_v2a_1_1.nnet"
    core = load_network(path)
    raw = load_network(path, include_normalization=True)
    m = core.metadata
    assert m["input_min"][3] == 100.0 and m["output_range"] == pytest.approx(373.94992)
    rng = np.random.default_rng(2)
    x_raw = rng.uniform(raw.input_lower, raw.input_upper, size=(50, 5))
    x_norm = (x_raw - np.array(m["input_mean"])) / np.array(m["input_range"])
    np.testing.assert_allclose(raw(x_raw), core(x_norm) * m["output_range"] + m["output_mean"], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(core.input_lower, (np.array(m["input_min"]) - m["input_mean"]) / m["input_range"])


def test_example_onnx_and_state_dict_agree(example_dir):
    import onnxruntime as ort

    a = load_network(example_dir / "classifier.onnx")
    b = load_network(example_dir / "classifier.pt", arch="relu")
    x = np.random.default_rng(3).uniform(-1, 1, size=(64, 2))
    np.testing.assert_allclose(a(x), b(x), rtol=1e-12, atol=1e-12)
    sess = ort.InferenceSession(str(example_dir / "classifier.onnx"))
    ref = sess.run(None, {"input": x.astype(np.float32)})[0]
    np.testing.assert_allclose(a(x.astype(np.float32)), ref, atol=1e-4)
    data = np.load(example_dir / "classifier_data.npz")
    assert (a(data["x"]).argmax(1) == data["y"]).mean() > 0.95


def test_lipsdp_mat_files(lipsdp_dir):
    net = load_network(lipsdp_dir / "random_weights.mat")
    assert net.widths[0] == 2 and [d.out_features for d in net.dense_layers] == [10, 30, 20, 2]
    assert all(isinstance(a, ReLU) for a in net.activations)
    mnist = load_network(lipsdp_dir / "mnist_weights.mat", arch="tanh")
    assert mnist.in_dim == 784 and mnist.out_dim == 10 and isinstance(mnist.activations[0], Tanh)


def test_mat_with_W_and_biases(tmp_path, rng):
    import scipy.io

    ws = np.empty(2, dtype=object)
    ws[0], ws[1] = rng.normal(size=(4, 3)), rng.normal(size=(2, 4))
    bs = np.empty(2, dtype=object)
    bs[0], bs[1] = rng.normal(size=(4, 1)), rng.normal(size=(2, 1))
    scipy.io.savemat(tmp_path / "n.mat", {"W": ws, "b": bs})
    net = load_network(tmp_path / "n.mat", arch="leaky_relu(0.1)")
    x = rng.normal(size=(5, 3))
    h = x @ ws[0].T + bs[0].ravel()
    np.testing.assert_allclose(net(x), np.where(h > 0, h, 0.1 * h) @ ws[1].T + bs[1].ravel(), atol=1e-12)
    bad = np.empty(2, dtype=object)
    bad[0], bad[1] = rng.normal(size=(4, 3)), rng.normal(size=(2, 5))
    scipy.io.savemat(tmp_path / "bad.mat", {"weights": bad})
    with pytest.raises(ShapeMismatchError, match="weight 1 expects 5 inputs but weight 0 gives 4"):
        load_network(tmp_path / "bad.mat")


def test_npz_round_trip(tmp_path, rng):
    net = Network(
        (Dense(rng.normal(size=(4, 3)), rng.normal(size=4)), LeakyReLU(0.3), Dense(rng.normal(size=(2, 4)))),
        input_lower=-np.ones(3),
        input_upper=np.ones(3),
    )
    save_network(net, tmp_path / "n.npz")
    back = load_network(tmp_path / "n.npz")
    x = rng.normal(size=(6, 3))
    np.testing.assert_array_equal(back(x), net(x))
    assert back.activations == [LeakyReLU(0.3)]
    np.testing.assert_array_equal(back.input_upper, np.ones(3))


def _torch_model():
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(2 * 4 * 4, 5), torch.nn.LeakyReLU(0.05), torch.nn.Linear(5, 3),
    ).double()


def test_torchscript_with_conv_lowering(tmp_path):
    import torch

    model = _torch_model()
    torch.jit.save(torch.jit.script(model), tmp_path / "m.pt")
    net = load_network(tmp_path / "m.pt", input_shape=(1, 4, 4))
    x = np.random.default_rng(4).normal(size=(8, 16))
    ref = model(torch.tensor(x).reshape(8, 1, 4, 4)).detach().numpy()
    np.testing.assert_allclose(net(x), ref, atol=1e-12)
    with pytest.raises(UnsupportedLayerError, match="input-shape"):
        load_network(tmp_path / "m.pt")


def test_pickled_module_needs_trust(tmp_path):
    import torch

    model = _torch_model()
    torch.save(model, tmp_path / "full.pt")
    with pytest.raises(UntrustedModelError, match="trust"):
        load_network(tmp_path / "full.pt", input_shape=(1, 4, 4))
    net = load_network(tmp_path / "full.pt", trust=True, input_shape=(1, 4, 4))
    assert net.out_dim == 3


def test_state_dict_with_arch(tmp_path, rng):
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.Tanh(), torch.nn.Linear(6, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2))
    torch.save({"state_dict": model.state_dict()}, tmp_path / "sd.pth")
    net = load_network(tmp_path / "sd.pth", arch="tanh,relu")
    x = rng.normal(size=(4, 3))
    ref = model(torch.tensor(x, dtype=torch.float32)).detach().numpy()
    np.testing.assert_allclose(net(x.astype(np.float32)), ref, atol=1e-5)
    with pytest.raises(ShapeMismatchError, match="2 hidden layers"):
        load_network(tmp_path / "sd.pth", arch="tanh,relu,relu")


# ------------------------------------------------------------------ bad input
def test_truncated_onnx(tmp_path, example_dir):
    data = (example_dir / "classifier.onnx").read_bytes()
    (tmp_path / "t.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFormatError, match="truncated or corrupt"):
        load_network(tmp_path / "t.onnx")


def test_unsupported_onnx_op_is_named(tmp_path, rng):
    path = mlp_onnx(tmp_path / "s.onnx", rng.normal(size=(4, 3)), rng.normal(size=4), rng.normal(size=(2, 4)), extra="Softmax")
    with pytest.raises(UnsupportedLayerError, match="'Softmax' at node 3"):
        load_network(path)


def test_onnx_nan_weight(tmp_path, rng):
    w0 = rng.normal(size=(4, 3))
    w0[2, 1] = np.nan
    with pytest.raises(InvalidWeightsError, match="NaN"):
        load_network(mlp_onnx(tmp_path / "n.onnx", w0, rng.normal(size=4), rng.normal(size=(2, 4))))


def test_onnx_shape_mismatch(tmp_path, rng):
    from onnx import helper

    nodes = [helper.make_node("MatMul", ["x", "W"], ["y"])]
    path = write_onnx(tmp_path / "m.onnx", nodes, {"W": rng.normal(size=(4, 2))}, 3, "y")
    with pytest.raises(ShapeMismatchError, match="MatMul"):
        load_network(path)


def test_onnx_graph_reading_a_tensor_twice_loads_as_its_function(tmp_path, rng):
    """``y = h + h`` (the data tensor read twice, formerly refused) is the affine map ``2 W x``."""
    from onnx import helper

    w = rng.normal(size=(3, 3))
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Add", ["h", "h"], ["y"])]
    path = write_onnx(tmp_path / "r.onnx", nodes, {"W": w}, 3, "y")
    net = load_network(path)
    x = rng.normal(size=(6, 3))
    np.testing.assert_allclose(net(x), 2 * x @ np.asarray(w, dtype=np.float32).astype(np.float64), rtol=1e-12)


def test_onnx_leaky_relu_and_affine_folding(tmp_path, rng):
    from onnx import helper

    w = rng.normal(size=(3, 4))
    nodes = [
        helper.make_node("Sub", ["x", "M"], ["a"]),
        helper.make_node("Div", ["a", "S"], ["b"]),
        helper.make_node("MatMul", ["b", "W"], ["c"]),
        helper.make_node("LeakyRelu", ["c"], ["d"], alpha=0.2),
        helper.make_node("Mul", ["d", "K"], ["y"]),
    ]
    m, s, k = rng.normal(size=3), rng.uniform(1, 2, size=3), rng.normal(size=4)
    path = write_onnx(tmp_path / "f.onnx", nodes, {"M": m, "S": s, "W": w, "K": k}, 3, "y")
    net = load_network(path)
    f32 = lambda a: np.asarray(a, dtype=np.float32).astype(np.float64)  # noqa: E731
    x = rng.normal(size=(5, 3))
    h = ((x - f32(m)) / f32(s)) @ f32(w)
    np.testing.assert_allclose(net(x), np.where(h > 0, h, f32(0.2) * h) * f32(k), rtol=1e-12)
    assert net.activations == [LeakyReLU(np.float32(0.2))]


def test_unknown_extension_and_missing_file(tmp_path):
    (tmp_path / "model.txt").write_text("hello")
    with pytest.raises(ModelFormatError, match="unknown model format"):
        load_network(tmp_path / "model.txt")
    with pytest.raises(ModelFormatError, match="not found"):
        load_network(tmp_path / "nope.onnx")


def test_corrupt_nnet_reports_line(tmp_path, acasxu_dir):
    text = (acasxu_dir / "nnet" / "ACASXU_experimental_v2a_1_1.nnet").read_text().splitlines()
    (tmp_path / "short.nnet").write_text("\n".join(text[:40]))
    with pytest.raises(ModelFormatError, match="truncated"):
        load_network(tmp_path / "short.nnet")
    assert "2.63619e-02" in text[11]
    text[11] = text[11].replace("2.63619e-02", "abc")
    (tmp_path / "bad.nnet").write_text("\n".join(text))
    with pytest.raises(ModelFormatError, match="line 12 is not a list of numbers"):
        load_network(tmp_path / "bad.nnet")
