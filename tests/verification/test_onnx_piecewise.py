"""Clip (ReLU6, Hardtanh), PRelu and ``x * Sigmoid(x)`` (SiLU) in ONNX graphs (io/onnx_graph.py).

Each loaded network must equal onnxruntime on random inputs (beyond the loader's own cross-check), use the
exact activation where one exists (scalar PRelu -> leaky ReLU, the product -> SiLU), and stay sound under
bound propagation; unsupported parameter forms are refused in one line."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import helper  # noqa: E402

from verification.activations import LeakyReLU, SiLU  # noqa: E402
from verification.bounds import output_bounds  # noqa: E402
from verification.cli import main  # noqa: E402
from verification.errors import UnsupportedLayerError  # noqa: E402
from verification.io import load_network  # noqa: E402

from .onnx_builders import write_onnx  # noqa: E402

RNG = np.random.default_rng(7)
W0, B0, W1 = RNG.normal(size=(6, 4)), RNG.normal(size=6), RNG.normal(size=(3, 6))


def _net(path, act_nodes, extra_inits=None, opset=13):
    """``x (1,4) -> Gemm -> [act_nodes: h -> a] -> MatMul -> y``."""
    nodes = [helper.make_node("Gemm", ["x", "W0", "B0"], ["h"], transB=1), *act_nodes,
             helper.make_node("MatMul", ["a", "W1T"], ["y"])]
    inits = {"W0": W0, "B0": B0, "W1T": W1.T, **(extra_inits or {})}
    return write_onnx(path, nodes, inits, 4, "y", opset=opset)


def _ort(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.stack([sess.run(None, {"x": xi[None].astype(np.float32)})[0][0] for xi in x])


CASES = {
    "clip-both": ([helper.make_node("Clip", ["h", "lo", "hi"], ["a"])], {"lo": np.array(-0.5), "hi": np.array(1.5)}, 13),
    "relu6": ([helper.make_node("Clip", ["h", "lo", "hi"], ["a"])], {"lo": np.array(0.0), "hi": np.array(6.0)}, 13),
    "clip-min": ([helper.make_node("Clip", ["h", "lo"], ["a"])], {"lo": np.array(0.3)}, 13),
    "clip-max": ([helper.make_node("Clip", ["h", "", "hi"], ["a"])], {"hi": np.array(0.2)}, 13),
    "clip-attrs": ([helper.make_node("Clip", ["h"], ["a"], min=-1.0, max=1.0)], {}, 9),
    "prelu-scalar": ([helper.make_node("PRelu", ["h", "s"], ["a"])], {"s": np.array([0.25])}, 13),
    "prelu-each": ([helper.make_node("PRelu", ["h", "s"], ["a"])], {"s": np.linspace(-0.5, 0.9, 6)}, 13),
    "silu": ([helper.make_node("Sigmoid", ["h"], ["g"]), helper.make_node("Mul", ["h", "g"], ["a"], name="m")], {}, 13),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_piecewise_operators_equal_onnxruntime_and_bounds_hold(tmp_path, name):
    nodes, inits, opset = CASES[name]
    path = _net(tmp_path / f"{name}.onnx", nodes, inits, opset)
    net = load_network(path)
    x = RNG.normal(scale=2.0, size=(64, 4))
    ref = _ort(path, x)
    np.testing.assert_allclose(net(x), ref, rtol=1e-5, atol=1e-5)  # float32 runtime vs float64 weights
    acts = [type(a) for a in net.activations]
    if name == "prelu-scalar":
        assert acts == [LeakyReLU] and net.activations[0].negative_slope == 0.25
    if name == "silu":
        assert acts == [SiLU]
    # bound propagation stays sound on the lifted chain: sampled outputs lie inside the bounds
    lo, hi = -np.ones(4), np.ones(4)
    pts = RNG.uniform(lo, hi, size=(2000, 4))
    vals = net(pts)
    for method in ("ibp", "crown"):
        b = output_bounds(net, lo, hi, method)
        assert np.all(vals >= b.lower - 1e-9) and np.all(vals <= b.upper + 1e-9), method


@pytest.mark.parametrize("nodes,inits,message", [
    ([helper.make_node("Clip", ["h", "lo", "hi"], ["a"])], {"lo": np.array(1.0), "hi": np.array(1.0)}, "min 1.0 >= max"),
    ([helper.make_node("Clip", ["h", "lo", "hi"], ["a"])], {"lo": np.array([0.0, 1.0]), "hi": np.array(2.0)},
     "must be one number"),
    ([helper.make_node("Clip", ["h", "h", "hi"], ["a"])], {"hi": np.array(2.0)}, "data tensor as a bound"),
])
def test_unsupported_parameter_forms_are_refused_in_one_line(tmp_path, capsys, nodes, inits, message):
    path = _net(tmp_path / "bad.onnx", nodes, inits)
    with pytest.raises(UnsupportedLayerError, match=message):
        load_network(path)
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message.split()[0] in err[0]


@pytest.mark.parametrize("kind", ["script", "trace"])
def test_torch_sequential_with_relu6_or_prelu_loads_through_onnx(tmp_path, kind):
    """A saved nn.Sequential with a layer the module walker does not know (ReLU6, Hardtanh, PReLU) is converted
    through torch.onnx.export and the graph loader, then checked against the module itself in float64."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU6(), nn.Linear(6, 5), nn.PReLU(5), nn.Linear(5, 5),
                          nn.Hardtanh(-0.5, 0.5), nn.Linear(5, 2)).eval()
    path = tmp_path / f"m_{kind}.pt"
    saved = torch.jit.script(model) if kind == "script" else torch.jit.trace(model, torch.zeros(1, 4))
    saved.save(str(path))
    net = load_network(path)
    assert "ReLU6" in net.metadata["converted"] and net.metadata["crosscheck"]["max_diff"] < 1e-12
    x = RNG.normal(scale=4.0, size=(100, 4))
    with torch.no_grad():
        ref = model.double()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(net(x), ref, rtol=1e-12, atol=1e-12)
    # an activation the graph loader has no exact form for is still refused in one line, naming the layer
    bad = tmp_path / "elu.pt"
    torch.jit.script(nn.Sequential(nn.Linear(4, 3), nn.ELU(), nn.Linear(3, 2))).save(str(bad))
    with pytest.raises(UnsupportedLayerError, match="unsupported PyTorch layer 'ELU'"):
        load_network(bad)


# --- 1-D convolutions and pools (computed on a (1, C, 1, L) view), ReduceMax over the spatial axes -------------

def _spatial_net(path, x_shape, body, inits, n_flat):
    nodes = [*body, helper.make_node("Flatten", ["p"], ["f"]), helper.make_node("Gemm", ["f", "WF", "BF"], ["y"], transB=1)]
    inits = {**inits, "WF": RNG.normal(size=(2, n_flat)), "BF": RNG.normal(size=2)}
    return write_onnx(path, nodes, inits, 0, "y", in_shape=list(x_shape))


SPATIAL = {
    # Conv1d stride 2, pads (1, 2), dilation 2 -> ReLU: a chain (no graph needed)
    "conv1d": ((1, 2, 11), [helper.make_node("Conv", ["x", "W"], ["c"], strides=[2], pads=[1, 2], dilations=[2]),
                            helper.make_node("Relu", ["c"], ["p"])], {"W": RNG.normal(size=(3, 2, 3))}, 3 * 5),
    "avgpool1d": ((1, 2, 10), [helper.make_node("Conv", ["x", "W", "B"], ["c"]), helper.make_node("Relu", ["c"], ["r"]),
                               helper.make_node("AveragePool", ["r"], ["p"], kernel_shape=[2], strides=[2])],
                  {"W": RNG.normal(size=(4, 2, 3)), "B": RNG.normal(size=4)}, 4 * 4),
    "maxpool1d": ((1, 2, 10), [helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1]),
                               helper.make_node("Relu", ["c"], ["r"]),
                               helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[3], strides=[2], pads=[1, 1])],
                  {"W": RNG.normal(size=(3, 2, 3))}, 3 * 5),
    "reducemax": ((1, 2, 5, 5), [helper.make_node("Conv", ["x", "W"], ["c"]), helper.make_node("Relu", ["c"], ["r"]),
                                 helper.make_node("ReduceMax", ["r"], ["p"], axes=[2, 3], keepdims=1)],
                  {"W": RNG.normal(size=(3, 2, 3, 3))}, 3),
}


@pytest.mark.parametrize("name", sorted(SPATIAL))
def test_one_dimensional_layers_and_reducemax_equal_onnxruntime(tmp_path, name):
    x_shape, body, inits, n_flat = SPATIAL[name]
    path = _spatial_net(tmp_path / f"{name}.onnx", x_shape, body, inits, n_flat)
    net = load_network(path)
    x = RNG.normal(size=(32, int(np.prod(x_shape))))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ref = np.stack([sess.run(None, {"x": xi.reshape(x_shape).astype(np.float32)})[0][0] for xi in x])
    np.testing.assert_allclose(net(x), ref, rtol=1e-5, atol=1e-5)
    lo, hi = -np.ones(net.in_dim), np.ones(net.in_dim)
    vals = net(RNG.uniform(lo, hi, size=(1000, net.in_dim)))
    b = output_bounds(net, lo, hi, "crown")
    assert np.all(vals >= b.lower - 1e-9) and np.all(vals <= b.upper + 1e-9)


def test_reducemax_over_channels_is_refused_in_one_line(tmp_path, capsys):
    body = [helper.make_node("Conv", ["x", "W"], ["c"]), helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("ReduceMax", ["r"], ["p"], axes=[1], keepdims=1)]
    path = _spatial_net(tmp_path / "rm.onnx", (1, 2, 5, 5), body, {"W": RNG.normal(size=(3, 2, 3, 3))}, 9)
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "only a maximum over the spatial axes" in err[0]
