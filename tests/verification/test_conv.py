"""Convolutional networks kept as convolutions: the Conv2d protocol against its dense matrix and torch, bounds
and methods against the densified network, loaders (ONNX exports, onnx.helper graphs, traced torch), .npz."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from verification.activations import ReLU  # noqa: E402
from verification.bounds import local_lipschitz, output_bounds  # noqa: E402
from verification.errors import UnsupportedLayerError  # noqa: E402
from verification.io import load_network, save_network  # noqa: E402
from verification.layers import Conv2d, Dense, avg_pool2d, channel_affine, global_avg_pool  # noqa: E402
from verification.lipschitz import lipschitz  # noqa: E402
from verification.network import Network  # noqa: E402
from verification.smt import verify  # noqa: E402
from verification.spec import robustness_property  # noqa: E402

from tests.verification.onnx_builders import write_onnx  # noqa: E402

MODES = ["zeros", "circular", "reflect", "replicate"]
# (weight shape, input shape, stride, dilation, groups, pads)
GEOMETRIES = [
    ((3, 2, 3, 3), (2, 5, 6), (1, 1), (1, 1), 1, (1, 1, 1, 1)),
    ((4, 1, 3, 2), (2, 7, 6), (2, 1), (1, 2), 2, (2, 1, 0, 2)),
    ((4, 1, 2, 3), (4, 6, 7), (2, 3), (2, 1), 4, (1, 0, 2, 1)),
    ((2, 3, 1, 1), (3, 4, 4), (1, 1), (1, 1), 1, (0, 0, 0, 0)),
]


def _layer(rng, geo, mode) -> Conv2d:
    wshape, shape, stride, dil, groups, pads = geo
    return Conv2d(rng.normal(size=wshape), rng.normal(size=wshape[0]), shape, stride, dil, groups, pads, mode)


def _dense(net: Network) -> Network:
    layers = tuple(Dense(l.as_matrix(), l.bias) if hasattr(l, "as_matrix") and not isinstance(l, Dense) else l
                   for l in net.layers)
    return Network(layers, net.input_lower, net.input_upper)


# ------------------------------------------------------------------ protocol
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("geo", GEOMETRIES)
def test_protocol_matches_the_dense_matrix(rng, geo, mode):
    layer = _layer(rng, geo, mode)
    m = layer.as_matrix()
    assert m.shape == (layer.out_features, layer.in_features)
    x = rng.normal(size=(2, 3, layer.in_features))
    y = rng.normal(size=(2, 3, layer.out_features))
    tol = dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.linear(x), x @ m.T, **tol)
    np.testing.assert_allclose(layer(x[0]), x[0] @ m.T + layer.bias, **tol)
    np.testing.assert_allclose(layer.transpose(y), y @ m, **tol)
    np.testing.assert_allclose(layer.abs_linear(x), x @ np.abs(m).T, **tol)
    np.testing.assert_allclose(layer.abs_transpose(y), y @ np.abs(m), **tol)
    np.testing.assert_array_equal(layer.rows(3), m[3])
    np.testing.assert_array_equal(layer.rows(slice(2, 7)), m[2:7])
    np.testing.assert_array_equal(layer.rows(np.array([5, 0, 5])), m[[5, 0, 5]])
    inf = np.abs(m).sum(axis=1).max()
    assert inf <= layer.norm_bound("inf") <= inf * (1 + 1e-12)
    assert layer.norm_bound(2) >= np.linalg.norm(m, 2)
    c = rng.normal(size=(2, layer.out_features))
    sel = layer.select(c)
    np.testing.assert_allclose(sel.as_matrix(), c @ m, **tol)
    r = layer.rounded(np.float32)
    np.testing.assert_array_equal(r.weight, layer.weight.astype(np.float32))
    assert layer.check_finite() is None


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("geo", GEOMETRIES)
def test_forward_equals_torch_conv2d(rng, geo, mode):
    layer = _layer(rng, geo, mode)
    x = rng.normal(size=(5,) + layer.input_shape)
    top, bottom, left, right = layer.pads
    xt = torch.tensor(x)
    xp = F.pad(xt, (left, right, top, bottom)) if mode == "zeros" else F.pad(xt, (left, right, top, bottom), mode=mode)
    ref = F.conv2d(xp, torch.tensor(layer.weight), torch.tensor(layer.bias[:: np.prod(layer.output_shape[1:])]),
                   stride=layer.stride, dilation=layer.dilation, groups=layer.groups)
    np.testing.assert_allclose(layer(x.reshape(5, -1)), ref.reshape(5, -1).numpy(), rtol=1e-12, atol=1e-12)


def test_pooling_and_channel_layers_equal_torch(rng):
    x = rng.normal(size=(3, 2, 6, 8))
    pool = avg_pool2d((2, 6, 8), 3, 2, (1, 1, 1, 1))
    ref = F.avg_pool2d(torch.tensor(x), 3, 2, 1, count_include_pad=True)
    np.testing.assert_allclose(pool(x.reshape(3, -1)), ref.reshape(3, -1).numpy(), rtol=1e-13, atol=1e-14)
    gap = global_avg_pool((2, 6, 8))
    np.testing.assert_allclose(gap(x.reshape(3, -1)), x.mean(axis=(2, 3)), rtol=1e-13)
    bn = channel_affine((2, 6, 8), np.array([2.0, -0.5]), np.array([1.0, 3.0]))
    want = x * np.array([2.0, -0.5])[:, None, None] + np.array([1.0, 3.0])[:, None, None]
    np.testing.assert_allclose(bn(x.reshape(3, -1)), want.reshape(3, -1), rtol=1e-15)


def test_compose_folds_channel_maps_and_tiling_pools(rng):
    conv = _layer(rng, GEOMETRIES[0], "reflect")
    pre = channel_affine(conv.input_shape, rng.normal(size=2), rng.normal(size=conv.in_features))
    post = channel_affine(conv.output_shape, rng.normal(size=3), rng.normal(size=3))
    pool = avg_pool2d((3, 8, 6), 2)
    outer = Conv2d(rng.normal(size=(2, 3, 3, 2)), rng.normal(size=2), pool.output_shape, 1, (2, 1), 1, (2, 1, 1, 0))
    for a, b in [(conv, pre), (post, conv), (outer, pool)]:
        f = a.compose(b)
        assert isinstance(f, Conv2d)
        x = rng.normal(size=(4, b.in_features))
        np.testing.assert_allclose(f(x), a(b(x)), rtol=1e-12, atol=1e-12)
    big = Conv2d(rng.normal(size=(64, 64, 3, 3)), None, (64, 32, 32), 1, 1, 1, (1, 1, 1, 1))
    with pytest.raises(UnsupportedLayerError, match="without an activation between them"):
        big.compose(Conv2d(rng.normal(size=(64, 64, 3, 3)), None, (64, 32, 32), 1, 1, 1, (1, 1, 1, 1)))
    with pytest.raises(UnsupportedLayerError, match="small networks only"):
        big.as_matrix()


# ------------------------------------------------------------------ bounds and methods
def _small_cnn(rng, mode="zeros") -> Network:
    c1 = Conv2d(rng.normal(size=(3, 2, 3, 3)) / 2, rng.normal(size=3) * 0.1, (2, 6, 6), 1, 1, 1, (1, 1, 1, 1), mode)
    bn = channel_affine(c1.output_shape, rng.uniform(0.5, 2, size=3), rng.normal(size=3) * 0.1)
    pool = avg_pool2d(c1.output_shape, 2)
    c2 = Conv2d(rng.normal(size=(4, 3, 2, 2)) / 2, rng.normal(size=4) * 0.1, pool.output_shape, 1, 1, 1, (0, 1, 0, 1))
    head = Dense(rng.normal(size=(3, c2.out_features)) / 4, rng.normal(size=3) * 0.1)
    return Network((c1, ReLU(), bn, pool, c2, ReLU(), head))


@pytest.mark.parametrize("mode", ["zeros", "reflect"])
@pytest.mark.parametrize("method", ["ibp", "crown", "alpha-crown"])
def test_output_bounds_equal_the_densified_net_and_contain_samples(rng, method, mode):
    net = _small_cnn(rng, mode)
    dense = _dense(net)
    x0 = rng.normal(size=net.in_dim)
    lo, hi = x0 - 0.1, x0 + 0.1
    b = output_bounds(net, lo, hi, method)
    d = output_bounds(dense, lo, hi, method)
    np.testing.assert_allclose(b.lower, d.lower, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(b.upper, d.upper, rtol=1e-9, atol=1e-9)
    y = net(rng.uniform(lo, hi, size=(2000, net.in_dim)))
    assert np.all(y >= b.lower) and np.all(y <= b.upper)


def test_random_cnns_bounds_contain_sampled_outputs(rng):
    for trial in range(6):
        net = _small_cnn(rng, MODES[trial % 4])
        x0 = rng.normal(size=net.in_dim)
        eps = rng.uniform(0.01, 0.5)
        pts = x0 + eps * rng.uniform(-1, 1, size=(3000, net.in_dim))
        pts[:8] = x0 + eps * np.sign(rng.normal(size=(8, net.in_dim)))  # vertices
        y = net(pts)
        for method in ("ibp", "crown", "alpha-crown"):
            b = output_bounds(net, x0 - eps, x0 + eps, method)
            assert np.all(y >= b.lower) and np.all(y <= b.upper), (trial, method)


def test_local_lipschitz_and_naive_on_conv_nets(rng):
    net = _small_cnn(rng)
    dense = _dense(net)
    x0 = rng.normal(size=net.in_dim)
    a = local_lipschitz(net, x0, 0.05, output=0)
    b = local_lipschitz(dense, x0, 0.05, output=0)
    np.testing.assert_allclose(a.value, b.value, rtol=1e-9)
    # the naive product uses the certified conv norm bound: at least the dense spectral norms' product
    ln, ld = lipschitz(net, "naive", 2).value, lipschitz(dense, "naive", 2).value
    assert ln >= ld * (1 - 1e-12)
    assert lipschitz(net, "naive", "inf").value == pytest.approx(lipschitz(dense, "naive", "inf").value, rel=1e-9)


def test_verify_verdicts_equal_the_densified_net(rng):
    net = _small_cnn(rng)
    dense = _dense(net)
    x0 = rng.normal(size=net.in_dim)
    label = int(np.argmax(net(x0)))
    for eps in (1e-3, 0.05, 2.0):
        prop = robustness_property(x0 - eps, x0 + eps, label, net.out_dim)
        a, b = verify(net, prop, timeout=30), verify(dense, prop, timeout=30)
        assert a.status == b.status, eps


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_crown_on_image_sized_cnns_is_sound(rng, shape):
    c1 = Conv2d(rng.normal(size=(8, shape[0], 3, 3)) / 3, rng.normal(size=8) * 0.1, shape, 2, 1, 1, (1, 1, 1, 1))
    c2 = Conv2d(rng.normal(size=(16, 8, 3, 3)) / 8, rng.normal(size=16) * 0.1, c1.output_shape, 2, 1, 1, (1, 1, 1, 1))
    head = Dense(rng.normal(size=(10, c2.out_features)) / np.sqrt(c2.out_features), np.zeros(10))
    net = Network((c1, ReLU(), c2, ReLU(), head))
    x0 = rng.uniform(size=net.in_dim)
    b = output_bounds(net, x0 - 0.01, x0 + 0.01, "crown")
    ibp = output_bounds(net, x0 - 0.01, x0 + 0.01, "ibp")
    assert np.all(b.upper - b.lower <= ibp.upper - ibp.lower + 1e-12)
    y = net(x0 + 0.01 * rng.uniform(-1, 1, size=(500, net.in_dim)))
    assert np.all(y >= b.lower) and np.all(y <= b.upper)


def test_npz_round_trip_keeps_convolutions(rng, tmp_path):
    net = _small_cnn(rng, "circular")
    save_network(net, tmp_path / "c.npz")
    back = load_network(tmp_path / "c.npz")
    assert any(isinstance(l, Conv2d) for l in back.layers)
    x = rng.normal(size=(6, net.in_dim))
    np.testing.assert_allclose(back(x), net(x), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ loaders
class _CNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(
            torch.nn.BatchNorm2d(2), torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
            torch.nn.AvgPool2d(2), torch.nn.Conv2d(4, 3, 3, stride=2, padding=1), torch.nn.ReLU(),
            torch.nn.Flatten(), torch.nn.Linear(3 * 2 * 2, 5),
        )
        for bn in (self.body[0], self.body[2]):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.data.uniform_(0.5, 2)
            bn.bias.data.uniform_(-1, 1)
        self.eval()

    def forward(self, x):
        return self.body(x)


def _ort(path, x, shape):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: xi.astype(np.float32).reshape((1,) + shape)})[0] for xi in x])


@pytest.mark.parametrize("dynamo", [False, True])
def test_exported_onnx_cnn_loads_as_convs_and_matches_onnxruntime(rng, tmp_path, dynamo):
    model = _CNN()
    path = tmp_path / "cnn.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opts = {"external_data": False} if dynamo else {}
        torch.onnx.export(model, (torch.zeros(1, 2, 8, 8),), str(path), dynamo=dynamo, input_names=["x"], **opts)
    net = load_network(path)
    assert sum(isinstance(l, Conv2d) for l in net.layers) >= 2
    assert net.metadata["crosscheck"]["max_ratio"] <= 1.0
    x = rng.normal(size=(10, 128))
    np.testing.assert_allclose(net(x), _ort(path, x, (2, 8, 8)), rtol=1e-4, atol=1e-5)
    b = output_bounds(net, x[0] - 0.1, x[0] + 0.1, "crown")
    y = net(x[0] + 0.1 * rng.uniform(-1, 1, size=(500, 128)))
    assert np.all(y >= b.lower) and np.all(y <= b.upper)


def test_helper_built_onnx_conv_graph(rng, tmp_path):
    from onnx import helper

    inits = {
        "W": rng.normal(size=(3, 2, 3, 3)), "B": rng.normal(size=3),
        "s": rng.uniform(0.5, 2, size=3), "bb": rng.normal(size=3), "m": rng.normal(size=3), "v": rng.uniform(0.5, 2, size=3),
        "shape": np.array([1, -1]), "G": rng.normal(size=(3 * 3 * 3, 4)), "mean": rng.normal(size=(1, 2, 1, 1)),
    }
    nodes = [
        helper.make_node("Sub", ["x", "mean"], ["x0"]),
        helper.make_node("Conv", ["x0", "W", "B"], ["c"], auto_pad="SAME_UPPER", strides=[2, 2]),
        helper.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["n"], epsilon=1e-3),
        helper.make_node("Relu", ["n"], ["r"]),
        helper.make_node("AveragePool", ["r"], ["p"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1),
        helper.make_node("Reshape", ["p", "shape"], ["f"]),
        helper.make_node("MatMul", ["f", "G"], ["y"]),
    ]
    from onnx import numpy_helper

    path = write_onnx(tmp_path / "h.onnx", nodes, {k: v for k, v in inits.items() if k != "shape"}, 0, "y",
                      in_shape=[1, 2, 5, 5], raw_initializers=[numpy_helper.from_array(inits["shape"].astype(np.int64), "shape")])
    net = load_network(path)
    assert [type(l).__name__ for l in net.canonical().layers][:2] == ["Conv2d", "ReLU"]
    x = rng.normal(size=(8, 50))
    np.testing.assert_allclose(net(x), _ort(path, x, (2, 5, 5)), rtol=1e-4, atol=1e-4)


def test_maxpool_and_residual_add_load_and_match_onnxruntime(tmp_path):
    """Formerly refused; now compiled into the chain (tests/verification/test_graph_models.py has the rest)."""
    class Res(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c2 = torch.nn.Conv2d(2, 2, 3, padding=1), torch.nn.Conv2d(2, 2, 3, padding=1)

        def forward(self, x):
            h = torch.relu(self.c1(x))
            return (h + self.c2(h)).flatten(1)

    mp = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten())
    for model, shape in [(Res(), (1, 2, 4, 4)), (mp, (1, 1, 6, 6))]:
        path = tmp_path / "m.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model.eval(), (torch.zeros(*shape),), str(path), dynamo=False)
        net = load_network(path)
        x = np.random.default_rng(0).normal(size=(16, int(np.prod(shape))))
        np.testing.assert_allclose(net(x), _ort(path, x, shape[1:]), rtol=1e-5, atol=1e-5)


def test_reshape_other_than_flatten_is_refused(rng, tmp_path):
    from onnx import helper, numpy_helper

    nodes = [helper.make_node("Conv", ["x", "W"], ["c"]), helper.make_node("Reshape", ["c", "shape"], ["y"])]
    path = write_onnx(tmp_path / "r.onnx", nodes, {"W": rng.normal(size=(2, 1, 3, 3))}, 0, "y", in_shape=[1, 1, 5, 5],
                      raw_initializers=[numpy_helper.from_array(np.array([1, 2, 9], dtype=np.int64), "shape")])
    with pytest.raises(UnsupportedLayerError, match="only a flatten to \\(N, C\\*H\\*W\\)"):
        load_network(path)


@pytest.mark.parametrize("how", ["trace", "script"])
def test_torchscript_cnn_with_batchnorm_and_avgpool(rng, tmp_path, how):
    model = _CNN().body
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mod = torch.jit.trace(model, torch.zeros(1, 2, 8, 8)) if how == "trace" else torch.jit.script(model)
        torch.jit.save(mod, str(tmp_path / "m.pt"))
    net = load_network(tmp_path / "m.pt", input_shape=(2, 8, 8))
    assert [type(l).__name__ for l in net.layers].count("Conv2d") >= 3  # BN folded into conv, pool, conv
    x = rng.normal(size=(6, 128))
    ref = model.double()(torch.tensor(x).reshape(6, 2, 8, 8)).detach().numpy()
    np.testing.assert_allclose(net(x), ref, rtol=1e-10, atol=1e-10)
