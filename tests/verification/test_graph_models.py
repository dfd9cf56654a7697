"""Residual connections, channel concatenation and max pooling from ONNX graphs (io/onnx_graph.py, io/_lift.py).

The loaded chain must compute the torch model's function (checked against torch in float64 and against
onnxruntime by the loader), and every method run on it must stay sound: bounds contain sampled outputs,
verdicts agree with a grid search plus a Lipschitz argument, Lipschitz bounds are above attained quotients."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from verification import lipschitz, verify  # noqa: E402
from verification.bounds import output_bounds  # noqa: E402
from verification.io import load_network, save_network  # noqa: E402
from verification.layers import SparseAffine  # noqa: E402
from verification.spec import box_property  # noqa: E402


class _Block(nn.Module):
    def __init__(self, c: int, down: bool = False, act=nn.ReLU):
        super().__init__()
        co = 2 * c if down else c
        self.c1 = nn.Conv2d(c, co, 3, stride=2 if down else 1, padding=1)
        self.b1 = nn.BatchNorm2d(co)
        self.c2 = nn.Conv2d(co, co, 3, padding=1)
        self.sc = nn.Sequential(nn.Conv2d(c, co, 1, stride=2), nn.BatchNorm2d(co)) if down else nn.Identity()
        self.act = act()

    def forward(self, x):
        return self.act(self.c2(self.act(self.b1(self.c1(x)))) + self.sc(x))


class ResNet(nn.Module):
    """stem conv -> ReLU -> MaxPool 2x2 -> residual block -> downsampling residual block -> linear."""

    def __init__(self):
        super().__init__()
        self.stem, self.pool = nn.Conv2d(1, 4, 3, padding=1), nn.MaxPool2d(2)
        self.b1, self.b2 = _Block(4), _Block(4, down=True)
        self.fc = nn.Linear(8 * 2 * 2, 3)

    def forward(self, x):
        return self.fc(torch.flatten(self.b2(self.b1(self.pool(torch.relu(self.stem(x))))), 1))


class ResMLP(nn.Module):
    """``y = W3 act(x + W2 act(W1 x))``: the input itself (any sign) is carried past an activation."""

    def __init__(self, d: int = 2, h: int = 8, act=nn.ReLU, sub: bool = False):
        super().__init__()
        self.l1, self.l2, self.l3, self.act, self.sub = nn.Linear(d, h), nn.Linear(h, d), nn.Linear(d, 2), act(), sub

    def forward(self, x):
        f = self.l2(self.act(self.l1(x)))
        return self.l3(self.act(x - f if self.sub else x + f))


class PoolNet(nn.Module):
    """Max pooling on a tensor of any sign (no ReLU before it), with padding / ceil mode / dilation."""

    def __init__(self, pool: nn.Module, act=nn.ReLU, n_out: int = 3):
        super().__init__()
        self.conv, self.pool, self.act = nn.Conv2d(2, 3, 3), pool, act()
        self.conv2 = nn.Conv2d(3, 2, 2)
        self.n_out = n_out
        self.fc = None

    def forward(self, x):
        y = self.conv2(self.act(self.pool(self.conv(x))))
        return torch.flatten(y, 1)[:, : self.n_out]


class ConcatNet(nn.Module):
    """A dense skip: ``conv2(cat([x, relu(conv1 x)]))``."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(2, 3, 3, padding=1), nn.Conv2d(5, 2, 3)
        self.fc = nn.Linear(2 * 4 * 4, 2)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.c2(torch.cat([x, torch.relu(self.c1(x))], 1))), 1))


def _randomise(model: nn.Module, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.3, 0.3)
    return model.eval()


def _export(model: nn.Module, shape: tuple, path, dynamo: bool = False):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opts = {"external_data": False} if dynamo else {}
        torch.onnx.export(model, (torch.zeros(*shape),), str(path), dynamo=dynamo, input_names=["x"], **opts)
    return path


def _torch64(model: nn.Module, x: np.ndarray, shape: tuple) -> np.ndarray:
    m64 = model.double()
    with torch.no_grad():
        out = m64(torch.from_numpy(x.reshape((-1,) + shape[1:]))).numpy().reshape(len(x), -1)
    model.float()
    return out


CASES = {
    "resnet": (lambda: ResNet(), (1, 1, 8, 8)),
    "resmlp": (lambda: ResMLP(), (1, 2)),
    "resmlp-sub-leaky": (lambda: ResMLP(act=lambda: nn.LeakyReLU(0.25), sub=True), (1, 2)),
    "maxpool-pad": (lambda: PoolNet(nn.MaxPool2d(3, stride=2, padding=1)), (1, 2, 9, 9)),
    "maxpool-ceil": (lambda: PoolNet(nn.MaxPool2d(2, stride=2, ceil_mode=True)), (1, 2, 8, 8)),
    "maxpool-dilation": (lambda: PoolNet(nn.MaxPool2d(2, stride=1, dilation=2)), (1, 2, 8, 8)),
    "maxpool-tanh": (lambda: PoolNet(nn.MaxPool2d(2), act=nn.Tanh), (1, 2, 8, 8)),
    "global-maxpool": (lambda: PoolNet(nn.AdaptiveMaxPool2d(1), n_out=2), (1, 2, 6, 6)),
    "concat": (lambda: ConcatNet(), (1, 2, 6, 6)),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("graphs")
    out = {}
    for i, (name, (make, shape)) in enumerate(CASES.items()):
        model = _randomise(make(), i)
        if name == "global-maxpool":  # AdaptiveMaxPool2d(1) exports as GlobalMaxPool after a 2x2 conv
            model.conv2 = nn.Identity()
        out[name] = (model, shape, load_network(_export(model, shape, d / f"{name}.onnx")), d / f"{name}.onnx")
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_loaded_chain_computes_the_torch_model(models, name):
    model, shape, net, _ = models[name]
    assert net.metadata["crosscheck"]["checked_with"] == "onnxruntime"
    assert any(isinstance(l, SparseAffine) for l in net.affine_layers)
    x = np.random.default_rng(0).normal(size=(64, int(np.prod(shape))))
    ref = _torch64(model, x, shape)
    # exact up to float64 round-off, except where the exporter fused BatchNorm into the convolution in float32
    tol = 1e-5 if name == "resnet" else 1e-9
    np.testing.assert_allclose(net(x), ref, rtol=tol, atol=tol * (1 + np.abs(ref).max()))


def test_default_torch_exporter_resnet(tmp_path):
    model = _randomise(ResNet(), 5)
    net = load_network(_export(model, (1, 1, 8, 8), tmp_path / "r.onnx", dynamo=True))
    x = np.random.default_rng(1).normal(size=(32, 64))
    ref = _torch64(model, x, (1, 1, 8, 8))
    np.testing.assert_allclose(net(x), ref, rtol=1e-5, atol=1e-5 * (1 + np.abs(ref).max()))


def test_npz_round_trip_keeps_sparse_layers(models, tmp_path):
    _, shape, net, _ = models["resnet"]
    save_network(net, tmp_path / "r.npz")
    back = load_network(tmp_path / "r.npz")
    x = np.random.default_rng(2).normal(size=(8, net.in_dim))
    assert np.array_equal(back(x), net(x))
    assert sum(isinstance(l, SparseAffine) for l in back.affine_layers) == len(net.affine_layers)


@pytest.mark.parametrize("name", ["resnet", "resmlp", "resmlp-sub-leaky", "maxpool-pad", "maxpool-tanh", "concat"])
@pytest.mark.parametrize("method", ["ibp", "crown", "alpha-crown"])
def test_bounds_contain_sampled_outputs(models, name, method):
    _, shape, net, _ = models[name]
    rng = np.random.default_rng(3)
    n = net.in_dim
    for eps in (0.02, 0.3):
        x0 = rng.normal(size=n)
        b = output_bounds(net, x0 - eps, x0 + eps, method)
        xs = x0 + eps * np.concatenate([rng.uniform(-1, 1, size=(3000, n)), rng.choice([-1.0, 1.0], size=(500, n))])
        y = net(xs)
        assert np.all(y >= b.lower) and np.all(y <= b.upper)
        if method != "ibp":
            ibp = output_bounds(net, x0 - eps, x0 + eps, "ibp")
            assert np.all(b.lower >= ibp.lower) and np.all(b.upper <= ibp.upper)


@pytest.mark.parametrize("name", ["resmlp", "resmlp-sub-leaky"])
def test_verify_agrees_with_grid_and_lipschitz(models, name):
    """2 inputs: the grid maximum ``M`` of ``y_0`` over the box is attained, and the true maximum is at most
    ``M + L h / sqrt 2`` (``L`` a certified l2 Lipschitz bound, ``h`` the grid step).  So ``y_0 >= M - 1e-3`` is
    violated and ``y_0 >= M + L h / sqrt 2 + 1e-3`` holds."""
    _, _, net, _ = models[name]
    lo, hi = np.array([-1.0, -0.5]), np.array([0.5, 1.0])
    k = 401
    g = np.stack(np.meshgrid(np.linspace(lo[0], hi[0], k), np.linspace(lo[1], hi[1], k)), -1).reshape(-1, 2)
    top = float(net(g)[:, 0].max())
    lip = lipschitz(net, method="naive", output=0).value
    h = (hi[0] - lo[0]) / (k - 1)
    c = np.array([-1.0, 0.0])  # unsafe: -y0 <= -t, i.e. y0 >= t
    res = verify(net, box_property(lo, hi, c[None, :], np.array([-(top - 1e-3)])), timeout=60)
    assert res.status == "violated" and net(res.counterexample)[0] >= top - 1e-3
    res = verify(net, box_property(lo, hi, c[None, :], np.array([-(top + lip * h / np.sqrt(2) + 1e-3)])), timeout=60)
    assert res.status == "holds"


@pytest.mark.parametrize("name", ["resnet", "resmlp", "maxpool-pad", "concat"])
def test_lipschitz_bounds_are_above_attained_quotients(models, name):
    _, _, net, _ = models[name]
    low = lipschitz(net, method="sampled").value
    naive = lipschitz(net, method="naive")
    fast = lipschitz(net, method="eclipse-fast")
    assert naive.certified and fast.certified
    assert low <= fast.value * (1 + 1e-9) and low <= naive.value * (1 + 1e-9)
    if net.in_dim <= 2:
        sdp = lipschitz(net, method="lipsdp-neuron")
        assert sdp.certified and low <= sdp.value * (1 + 1e-9)


def test_tanh_residual_is_refused_in_one_line(tmp_path):
    path = _export(_randomise(ResMLP(act=nn.Tanh), 0), (1, 2), tmp_path / "t.onnx")
    out = subprocess.run([sys.executable, "-m", "verification", "info", str(path)], capture_output=True, text=True)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "tanh" in out.stderr and "carries a tensor" in out.stderr


def _graph(nodes, inits, in_shape=(1, 2, 6, 6)):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    return onnx.helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def _bad_graphs():
    from onnx import helper

    relu = helper.make_node("Relu", ["x"], ["r"])
    i64 = lambda *v: np.array(v, dtype=np.int64)  # noqa: E731
    return {
        "kernel above 64 entries": ([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[9, 9])], {}, "64 entries"),
        "window in the padding": ([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], pads=[3, 3, 3, 3])],
                                  {}, "padding"),
        "MaxPool indices": ([helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2])], {}, "Indices"),
        "product of data": ([relu, helper.make_node("Mul", ["x", "r"], ["y"])], {}, "Mul"),
        "concat along the batch axis": ([relu, helper.make_node("Concat", ["x", "r"], ["y"], axis=0)], {}, "non-batch axis"),
        "empty slice": ([helper.make_node("Slice", ["x", "s", "e", "a"], ["y"])],
                        {"s": i64(3), "e": i64(1), "a": i64(2)}, "zero-width"),
        "slice axis out of range": ([helper.make_node("Slice", ["x", "s", "e", "a"], ["y"])],
                                    {"s": i64(0), "e": i64(1), "a": i64(7)}, "out of range"),
        "gather out of range": ([helper.make_node("Gather", ["x", "i"], ["y"], axis=1)], {"i": i64(5)}, "out of bounds"),
        "tanh residual": ([helper.make_node("Tanh", ["x"], ["t"]), helper.make_node("Add", ["x", "t"], ["a"]),
                           helper.make_node("Tanh", ["a"], ["b"]), helper.make_node("Add", ["b", "x"], ["y"])], {}, "tanh"),
        "leaky(-1) residual": ([helper.make_node("LeakyRelu", ["x"], ["t"], alpha=-1.0),
                                helper.make_node("Add", ["x", "t"], ["a"]),
                                helper.make_node("LeakyRelu", ["a"], ["b"], alpha=-1.0),
                                helper.make_node("Add", ["b", "x"], ["y"])], {}, "leaky_relu"),
    }


@pytest.mark.parametrize("case", list(_bad_graphs()))
def test_malformed_graphs_are_refused_in_one_line(tmp_path, case):
    import onnx

    from verification.errors import VerificationError

    nodes, inits, needle = _bad_graphs()[case]
    path = tmp_path / "bad.onnx"
    onnx.save(_graph(nodes, inits), str(path))
    with pytest.raises(VerificationError) as err:
        load_network(path)
    assert needle in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("kind", ["trace", "script", "pickle"])
def test_torch_files_of_residual_models_load_through_onnx(tmp_path, kind):
    """A module that is not an nn.Sequential chain (a ResNet; an MLP with its own forward) is exported with
    torch.onnx.export, compiled by the graph loader and checked against the module itself."""
    model = _randomise(ResNet(), 7)
    path = tmp_path / f"{kind}.pt"
    if kind == "trace":
        torch.jit.trace(model, torch.zeros(1, 1, 8, 8)).save(str(path))
    elif kind == "script":
        torch.jit.script(model).save(str(path))
    else:
        torch.save(model, str(path))
    net = load_network(path, input_shape=(1, 8, 8), trust=kind == "pickle")
    assert "torch.onnx.export" in net.metadata["converted"] and net.metadata["crosscheck"]
    x = np.random.default_rng(4).normal(size=(16, 64))
    ref = _torch64(model, x, (1, 1, 8, 8))
    np.testing.assert_allclose(net(x), ref, rtol=1e-5, atol=1e-5 * (1 + np.abs(ref).max()))


def test_torchscript_mlp_with_own_forward_needs_no_input_shape(tmp_path):
    model = _randomise(ResMLP(d=3, h=5), 8)
    path = tmp_path / "m.pt"
    torch.jit.script(model).save(str(path))
    net = load_network(path)
    x = np.random.default_rng(5).normal(size=(16, 3))
    np.testing.assert_allclose(net(x), _torch64(model, x, (1, 3)), rtol=1e-9, atol=1e-9)


def _random_graph(seed: int, d: int = 3):
    """A random ONNX DAG on a (1, d) input: Gemm, Relu / LeakyRelu, Add / Sub of two earlier tensors of one
    width, Concat, MaxPool-free (dense) -- every tensor may be read by several later nodes."""
    from onnx import helper

    rng = np.random.default_rng(seed)
    act = "LeakyRelu" if seed % 3 == 0 else "Relu"
    tensors, nodes, inits = [("x", d)], [], {}
    for k in range(int(rng.integers(3, 7))):
        kind = rng.choice(["gemm", "act", "add", "concat"], p=[0.35, 0.3, 0.2, 0.15])
        name = f"t{k}"
        src, w = tensors[int(rng.integers(len(tensors)))]
        if kind == "gemm" or (kind == "act" and src == "x"):
            m = int(rng.integers(2, 6))
            inits[f"W{k}"] = (rng.normal(size=(w, m)) / np.sqrt(w)).astype(np.float32)
            inits[f"B{k}"] = (rng.normal(size=m) * 0.3).astype(np.float32)
            nodes.append(helper.make_node("Gemm", [src, f"W{k}", f"B{k}"], [name]))
            tensors.append((name, m))
        elif kind == "act":
            opts = {"alpha": 0.25} if act == "LeakyRelu" else {}
            nodes.append(helper.make_node(act, [src], [name], **opts))
            tensors.append((name, w))
        elif kind == "add":
            same = [t for t in tensors if t[1] == w]
            other = same[int(rng.integers(len(same)))][0]
            nodes.append(helper.make_node("Sub" if rng.random() < 0.3 else "Add", [src, other], [name]))
            tensors.append((name, w))
        else:
            other, w2 = tensors[int(rng.integers(len(tensors)))]
            nodes.append(helper.make_node("Concat", [src, other], [name], axis=1))
            tensors.append((name, w + w2))
    last, w = tensors[-1]
    inits["Wout"] = rng.normal(size=(w, 2)).astype(np.float32)
    nodes.append(helper.make_node("MatMul", [last, "Wout"], ["y"]))
    return _graph(nodes, inits, in_shape=(1, d))


@pytest.mark.parametrize("seed", range(24))
def test_random_graphs_bounds_and_verdicts_are_sound(tmp_path, seed):
    import onnx

    from verification.errors import UnsupportedLayerError

    path = tmp_path / "g.onnx"
    onnx.save(_random_graph(seed), str(path))
    try:
        net = load_network(path)  # checked against onnxruntime on 256 points by the loader
    except UnsupportedLayerError as exc:  # only refusal allowed: none for these operators
        pytest.fail(f"refused: {exc}")
    rng = np.random.default_rng(seed)
    lo, hi = -np.ones(3), np.ones(3)
    xs = rng.uniform(lo, hi, size=(4000, 3))
    y = net(xs)
    for method in ("crown", "alpha-crown"):
        b = output_bounds(net, lo, hi, method)
        assert np.all(y >= b.lower) and np.all(y <= b.upper)
    top = float(y[:, 0].max())
    c = np.array([[-1.0, 0.0]])
    res = verify(net, box_property(lo, hi, c, np.array([-(top - 1e-6)])), timeout=30)
    assert res.status != "holds"  # a sampled point violates it
    if res.status == "violated":
        assert net(res.counterexample)[0] >= top - 1e-6 - 1e-9
    res = verify(net, box_property(lo, hi, c, np.array([-(b.upper[0] + 1e-6)])), timeout=30)
    assert res.status == "holds"  # above a certified upper bound


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_keras_style_graph_with_transpose_pad_and_bias_add(tmp_path, mode):
    """NHWC input transposed to NCHW (tf2onnx), Pad, Conv, MatMul + Add of a constant bias: the loader's
    onnxruntime cross-check is the reference, and the numpy re-computation below agrees."""
    import onnx
    from onnx import helper

    rng = np.random.default_rng(1)
    w = rng.normal(size=(2, 2, 3, 3)).astype(np.float32)
    m = rng.normal(size=(2 * 5 * 6, 3)).astype(np.float32)
    b = rng.normal(size=3).astype(np.float32)
    pads = np.array([0, 0, 1, 0, 0, 0, 0, 2], dtype=np.int64)  # H: 1 before; W: 2 after
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
             helper.make_node("Pad", ["t", "pads", "cv"] if mode == "constant" else ["t", "pads"], ["p"], mode=mode),
             helper.make_node("Conv", ["p", "W"], ["c"]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Reshape", ["r", "shape"], ["f"]), helper.make_node("MatMul", ["f", "M"], ["h"]),
             helper.make_node("Add", ["h", "B"], ["y"])]
    inits = {"W": w, "M": m, "B": b, "pads": pads, "shape": np.array([1, -1], dtype=np.int64),
             "cv": np.array(0.5, dtype=np.float32)}
    path = tmp_path / "k.onnx"
    onnx.save(_graph(nodes, inits, in_shape=(1, 6, 6, 2)), str(path))
    net = load_network(path)
    x = rng.normal(size=(4, 72))
    t = x.reshape(4, 6, 6, 2).transpose(0, 3, 1, 2)
    npmode = {"constant": "constant", "reflect": "reflect", "edge": "edge"}[mode]
    kw = {"constant_values": 0.5} if mode == "constant" else {}
    p = np.pad(t, ((0, 0), (0, 0), (1, 0), (0, 2)), mode=npmode, **kw)
    c = torch.nn.functional.conv2d(torch.from_numpy(p), torch.from_numpy(w.astype(np.float64))).numpy()
    ref = np.maximum(c, 0).reshape(4, -1) @ m.astype(np.float64) + b.astype(np.float64)
    np.testing.assert_allclose(net(x), ref, rtol=1e-10, atol=1e-10)
