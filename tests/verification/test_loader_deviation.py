"""Loaders that compute weights (folded normalisation, batch norm, average pools, Gemm alpha) record the
rounding (verification.layers.deviation), and exact paths record nothing.  Checked in exact rationals: the
file's function at random inputs differs from the loaded float weights' exact function by at most
``output_deviation``."""

from decimal import Decimal, getcontext
from fractions import Fraction

import numpy as np
import pytest

from verification.activations import ReLU
from verification.errors import UnsupportedLayerError
from verification.io import load_network
from verification.layers import AffineLayer, Conv2d
from verification.layers.deviation import has_deviation, output_deviation
from verification.network import Network

from .onnx_builders import write_onnx

onnx = pytest.importorskip("onnx")
from onnx import helper  # noqa: E402

F32 = np.float32


def _fr(v) -> Fraction:
    return Fraction(float(v))


def _affine(m, b, h):
    return [sum((_fr(w) * v for w, v in zip(row, h) if w), _fr(bi)) for row, bi in zip(m, b)]


def _net_exact(net, x):
    """The loaded float weights' function in exact arithmetic (ReLU activations)."""
    h = [_fr(v) for v in x]
    for layer in net.layers:
        if isinstance(layer, AffineLayer):
            h = _affine(np.asarray(layer.as_matrix().toarray() if hasattr(layer.as_matrix(), "toarray")
                                   else layer.as_matrix()), layer.bias, h)
        else:
            assert isinstance(layer, ReLU)
            h = [max(v, Fraction(0)) for v in h]
    return h


def _relu(h):
    return [max(v, Fraction(0)) for v in h]


def _sqrt(v: Fraction) -> Fraction:
    getcontext().prec = 60
    return Fraction((Decimal(v.numerator) / Decimal(v.denominator)).sqrt())


def _bn_exact(g, beta, mean, var, eps):
    """Per channel ``(s*, t*)`` of the file's batch norm (sqrt to 60 digits: error ~1e-55)."""
    s = [_fr(gi) / _sqrt(_fr(vi) + _fr(eps)) for gi, vi in zip(g, var)]
    return s, [_fr(bi) - _fr(mi) * si for bi, mi, si in zip(beta, mean, s)]


def _check(net, exact_fn, xs, slack=Fraction(1, 10 ** 40)):
    dev = output_deviation(net, xs.min(axis=0), xs.max(axis=0))
    assert dev is not None
    worst = 0.0
    for x in xs:
        d_pt = output_deviation(net, x)
        for a, b, d, dp in zip(exact_fn(x), _net_exact(net, x), dev, d_pt):
            assert abs(a - b) <= _fr(dp) + slack, (float(a - b), dp)
            assert abs(a - b) <= _fr(d) + slack
            worst = max(worst, float(abs(a - b)))
    return worst


def _conv_matrix(w, b, shape, pads=(0, 0, 0, 0)):
    return Conv2d(np.asarray(w, np.float64), np.asarray(b, np.float64), shape, pads=pads).as_matrix(), \
        Conv2d(np.asarray(w, np.float64), np.asarray(b, np.float64), shape, pads=pads).bias


# ---------------------------------------------------------------- exact paths: no record
def test_plain_gemm_matmul_add_and_conv_chains_have_no_record(tmp_path):
    rng = np.random.default_rng(0)
    w0, b0, w1, b1 = rng.normal(size=(5, 3)), rng.normal(size=5), rng.normal(size=(5, 2)), rng.normal(size=2)
    nodes = [helper.make_node("Gemm", ["x", "w0", "b0"], ["h"], transB=1), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "w1"], ["m"]), helper.make_node("Add", ["m", "b1"], ["y"])]
    p = write_onnx(tmp_path / "g.onnx", nodes, {"w0": w0, "b0": b0, "w1": w1, "b1": b1}, 3, "y")
    assert output_deviation(load_network(p), np.zeros(3)) is None
    # two Gemms without activation: one dense segment, products n-term sums: recorded
    nodes = [helper.make_node("Gemm", ["x", "w0", "b0"], ["h"], transB=1), helper.make_node("MatMul", ["h", "w1"], ["y"])]
    p = write_onnx(tmp_path / "g2.onnx", nodes, {"w0": w0, "b0": b0, "w1": w1}, 3, "y")
    assert has_deviation(load_network(p))
    # Conv -> Relu -> Conv -> Add(bias constant) -> Flatten -> Gemm; Mul by 0.5: exact
    k0, k1 = rng.normal(size=(2, 1, 3, 3)), rng.normal(size=(2, 2, 2, 2))
    wg = rng.normal(size=(3, 2 * 3 * 3))
    nodes = [helper.make_node("Conv", ["x", "k0"], ["c0"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c0"], ["r0"]),
             helper.make_node("Conv", ["r0", "k1"], ["c1"]), helper.make_node("Add", ["c1", "cb"], ["c2"]),
             helper.make_node("Mul", ["c2", "half"], ["c3"]), helper.make_node("Relu", ["c3"], ["r1"]),
             helper.make_node("Flatten", ["r1"], ["f"]), helper.make_node("Gemm", ["f", "wg"], ["y"], transB=1)]
    p = write_onnx(tmp_path / "c.onnx", nodes, {"k0": k0, "k1": k1, "cb": rng.normal(size=(1, 2, 1, 1)),
                                                 "half": np.array(0.5), "wg": wg}, 16, "y", in_shape=[1, 1, 4, 4])
    net = load_network(p)
    assert output_deviation(net, np.zeros(16)) is None


# ---------------------------------------------------------------- chain loader
@pytest.mark.parametrize("seed", range(4))
def test_onnx_sub_div_mul_gemm_fold_is_bounded(tmp_path, seed):
    """x -> Sub(mean) -> Div(std) -> Mul(k) -> Add(c) -> Gemm(alpha) -> Relu -> Gemm, with near-cancelling
    constants; the folded first layer's deviation bounds the true rounding."""
    rng = np.random.default_rng(seed)
    n = 4
    mean, std = F32(rng.normal(size=n)), F32(rng.uniform(0.1, 0.9, size=n))
    k, c = F32(rng.normal(size=n) * 3), F32(rng.normal(size=n))
    w0, b0 = F32(rng.normal(size=(6, n))), F32(rng.normal(size=6))
    w0[1] = w0[0] * F32(1 + 2 ** -20)
    w1, b1 = F32(rng.normal(size=(2, 6))), F32(rng.normal(size=2))
    alpha = 0.7
    nodes = [helper.make_node("Sub", ["x", "mean"], ["a"]), helper.make_node("Div", ["a", "std"], ["b"]),
             helper.make_node("Mul", ["b", "k"], ["c1"]), helper.make_node("Add", ["c1", "c"], ["d"]),
             helper.make_node("Gemm", ["d", "w0", "b0"], ["h"], transB=1, alpha=alpha),
             helper.make_node("Relu", ["h"], ["r"]), helper.make_node("Gemm", ["r", "w1", "b1"], ["y"], transB=1)]
    p = write_onnx(tmp_path / "n.onnx", nodes, dict(mean=mean, std=std, k=k, c=c, w0=w0, b0=b0, w1=w1, b1=b1), n, "y")
    net = load_network(p)
    a32 = _fr(F32(alpha))  # the attribute is stored as float32

    def exact(x):
        d = [(_fr(xi) - _fr(m)) / _fr(s) * _fr(ki) + _fr(ci) for xi, m, s, ki, ci in zip(x, mean, std, k, c)]
        h = _relu([a32 * v + _fr(bb) for v, bb in zip(_affine(w0, np.zeros(6), d), b0)])
        return _affine(w1, b1, h)

    _check(net, exact, rng.normal(size=(6, n)) * 2)


def test_onnx_conv_batchnorm_avgpool_is_bounded(tmp_path):
    rng = np.random.default_rng(1)
    kw, kb = F32(rng.normal(size=(2, 1, 2, 2))), F32(rng.normal(size=2))
    g, beta, mean, var = (F32(rng.normal(size=2)), F32(rng.normal(size=2)), F32(rng.normal(size=2)),
                          F32(rng.uniform(0.2, 3, size=2)))
    wg = F32(rng.normal(size=(2, 2)))
    nodes = [helper.make_node("Conv", ["x", "kw", "kb"], ["c"]),
             helper.make_node("BatchNormalization", ["c", "g", "beta", "mean", "var"], ["bn"], epsilon=1e-3),
             helper.make_node("Relu", ["bn"], ["r"]),
             helper.make_node("AveragePool", ["r"], ["ap"], kernel_shape=[3, 3]),
             helper.make_node("Flatten", ["ap"], ["f"]), helper.make_node("Gemm", ["f", "wg"], ["y"], transB=1)]
    p = write_onnx(tmp_path / "bn.onnx", nodes, dict(kw=kw, kb=kb, g=g, beta=beta, mean=mean, var=var, wg=wg), 16, "y",
                   in_shape=[1, 1, 4, 4])
    net = load_network(p)
    s, t = _bn_exact(g, beta, mean, var, F32(1e-3))
    cm, cb = _conv_matrix(kw, kb, (1, 4, 4))

    def exact(x):
        h = _affine(cm, cb, x)  # (2, 3, 3)
        h = _relu([s[i // 9] * v + t[i // 9] for i, v in enumerate(h)])
        pooled = [sum(h[ch * 9:(ch + 1) * 9]) / 9 for ch in range(2)]
        return _affine(wg, np.zeros(2), pooled)

    _check(net, exact, rng.normal(size=(5, 16)))


# ---------------------------------------------------------------- graph (lifted) loader
def test_onnx_graph_residual_with_batchnorm_and_div_is_bounded(tmp_path):
    """A residual block (Conv -> BN -> Relu, added to the input divided by 3) through the lifted graph path."""
    rng = np.random.default_rng(2)
    kw = F32(rng.normal(size=(1, 1, 3, 3)))
    g, beta, mean, var = (F32(rng.normal(size=1)), F32(rng.normal(size=1)), F32(rng.normal(size=1)),
                          F32(rng.uniform(0.2, 3, size=1)))
    wg = F32(rng.normal(size=(2, 16)))
    nodes = [helper.make_node("Div", ["x", "three"], ["xd"]),
             helper.make_node("Conv", ["xd", "kw"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "g", "beta", "mean", "var"], ["bn"]),
             helper.make_node("Relu", ["bn"], ["r"]), helper.make_node("Add", ["r", "xd"], ["s"]),
             helper.make_node("Relu", ["s"], ["r2"]),
             helper.make_node("Flatten", ["r2"], ["f"]), helper.make_node("Gemm", ["f", "wg"], ["y"], transB=1)]
    p = write_onnx(tmp_path / "res.onnx", nodes, dict(three=np.array(3.0), kw=kw, g=g, beta=beta, mean=mean, var=var,
                                                       wg=wg), 16, "y", in_shape=[1, 1, 4, 4])
    net = load_network(p)
    assert net.metadata.get("graph")
    s, t = _bn_exact(g, beta, mean, var, F32(1e-5))
    cm, cb = _conv_matrix(kw, np.zeros(1), (1, 4, 4), pads=(1, 1, 1, 1))

    def exact(x):
        xd = [_fr(v) / 3 for v in x]
        r = _relu([s[0] * v + t[0] for v in _affine(cm, cb, xd)])
        return _affine(wg, np.zeros(2), _relu([a + b for a, b in zip(r, xd)]))

    _check(net, exact, rng.normal(size=(5, 16)))


# ---------------------------------------------------------------- nnet, torch
def test_nnet_include_normalization_is_bounded(tmp_path):
    rng = np.random.default_rng(3)
    n_in, n_h, n_out = 3, 4, 2
    w0, b0, w1, b1 = rng.normal(size=(n_h, n_in)), rng.normal(size=n_h), rng.normal(size=(n_out, n_h)), rng.normal(size=n_out)
    means, ranges = [0.3, -1.7, 2.2, 7.1], [0.7, 3.0, 1.3, 11.0]
    lines = ["// test", f"2,{n_in},{n_out},{n_h},", f"{n_in},{n_h},{n_out},", "0,", "-5,-5,-5,", "5,5,5,",
             ",".join(map(repr, means)) + ",", ",".join(map(repr, ranges)) + ","]
    for w, b in ((w0, b0), (w1, b1)):
        lines += [",".join(repr(float(v)) for v in row) + "," for row in w] + [repr(float(v)) + "," for v in b]
    p = tmp_path / "n.nnet"
    p.write_text("\n".join(lines) + "\n")
    net = load_network(p, include_normalization=True)
    m, r = [_fr(v) for v in means], [_fr(v) for v in ranges]

    def exact(x):
        h = _relu(_affine(w0, b0, [(_fr(xi) - m[i]) / r[i] for i, xi in enumerate(x)]))
        return [v * r[-1] + m[-1] for v in _affine(w1, b1, h)]

    _check(net, exact, rng.uniform(-5, 5, size=(6, n_in)))
    assert output_deviation(load_network(p), np.zeros(n_in)) is None  # normalised units: copies


def test_torch_conv_batchnorm_fold_is_bounded(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    conv, bn, lin = torch.nn.Conv2d(1, 2, 2), torch.nn.BatchNorm2d(2), torch.nn.Linear(18, 2)
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(2))
        bn.running_var.copy_(torch.rand(2) + 0.3)
        bn.weight.copy_(torch.randn(2))
        bn.bias.copy_(torch.randn(2))
    model = torch.nn.Sequential(conv, bn, torch.nn.ReLU(), torch.nn.Flatten(), lin).eval()
    p = tmp_path / "m.pt"
    torch.jit.save(torch.jit.script(model), str(p))
    net = load_network(p, input_shape=(1, 4, 4))
    np32 = lambda t: t.detach().numpy()  # noqa: E731
    s, t = _bn_exact(np32(bn.weight), np32(bn.bias), np32(bn.running_mean), np32(bn.running_var), bn.eps)
    cm, cb = _conv_matrix(np32(conv.weight), np32(conv.bias), (1, 4, 4))

    def exact(x):
        h = _relu([s[i // 9] * v + t[i // 9] for i, v in enumerate(_affine(cm, cb, x))])
        return _affine(np32(lin.weight), np32(lin.bias), h)

    _check(net, exact, np.random.default_rng(4).normal(size=(5, 16)))


# ---------------------------------------------------------------- product networks
def test_product_network_refuses_recorded_networks(tmp_path):
    from verification.compose import product_network

    nodes = [helper.make_node("Div", ["x", "s"], ["a"]), helper.make_node("MatMul", ["a", "w"], ["y"])]
    p = write_onnx(tmp_path / "d.onnx", nodes, dict(s=np.array(0.3081), w=np.ones((2, 2))), 2, "y")
    net = load_network(p)
    with pytest.raises(UnsupportedLayerError, match="computed by the loader"):
        product_network([net, net], [[0, 1], [1, 0]], 2)


# ---------------------------------------------------------------- end to end: a tie of the folded net
def test_tie_of_the_folded_normalisation_is_never_violated(tmp_path):
    """x in [m, m+1] -> Sub(m) -> Div(0.3081) -> MatMul(5): the folded weights reach a bound ``b`` that the
    file's function stays strictly below; the verifier must not answer ``violated``."""
    from verification.smt import verify

    s32 = float(F32(0.3081))
    for m in (0.0, 0.25, 0.5, 1.5, 3.0, 0.1, 0.7):
        m = float(F32(m))
        nodes = [helper.make_node("Sub", ["x", "m"], ["a"]), helper.make_node("Div", ["a", "s"], ["b"]),
                 helper.make_node("MatMul", ["b", "w"], ["y"])]
        p = write_onnx(tmp_path / f"t{m}.onnx", nodes, dict(m=np.array(m), s=np.array(s32), w=np.array([[5.0]])), 1, "y")
        net = load_network(p)
        folded = _net_exact(net, [m + 1])[0]
        true_max = Fraction(5) / _fr(s32)
        if folded > true_max:
            break
    else:
        pytest.skip("no folded maximum above the exact one among the candidates")
    assert has_deviation(net)
    b = folded  # dyadic: an exact decimal
    k = b.denominator.bit_length() - 1
    dec = format(Decimal(b.numerator * 5 ** k).scaleb(-k), "f")
    assert Fraction(dec) == b
    prop = (f"(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (>= X_0 {m!r}))\n"
            f"(assert (<= X_0 {m + 1!r}))\n(assert (>= Y_0 {dec}))\n")
    from verification.vnnlib import parse_vnnlib

    res = verify(net, parse_vnnlib(prop), timeout=60)
    assert res.status in ("unknown", "holds"), res.status


def test_onnx_leaky_relu_default_alpha_is_the_float32_runtimes_use(tmp_path):
    """An absent ``alpha`` is ONNX's float attribute default, ``float32(0.01)``, as onnxruntime applies it; the
    double ``0.01`` would be another function (off by ~2e-10 relative on negative inputs)."""
    import onnxruntime as ort

    p = write_onnx(tmp_path / "l.onnx", [helper.make_node("Gemm", ["x", "w", "b"], ["h"], transB=1),
                                         helper.make_node("LeakyRelu", ["h"], ["y"])],
                   {"w": np.eye(2), "b": np.zeros(2)}, 2, "y")
    net = load_network(p)
    slope = [a for a in net.layers if not isinstance(a, AffineLayer)][0].negative_slope
    assert slope == float(np.float32(0.01)) != 0.01
    x = np.array([[-3.0, 5.0]], dtype=np.float32)
    y = ort.InferenceSession(str(p)).run(None, {"x": x})[0]
    assert float(y[0, 0]) == float(np.float32(np.float32(-3.0) * np.float32(slope)))


def test_basis_lowering_records_summed_taps():
    """A layer lowered on the unit basis (a traced conv whose graph is not read) with circular padding on a 2x2
    input: several taps read one input, so entries are rounded sums; the record bounds them exactly.  With
    zero padding every entry is one weight: no record."""
    import torch

    from verification.io import torch_format as tf
    from verification.layers.deviation import radius

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 1, 3, padding=1, padding_mode="circular")
    layer, _ = tf._lower_by_basis(torch.jit.trace(conv, torch.zeros(1, 1, 2, 2)), (1, 2, 2), "t")
    w = [Fraction(float(v)) for v in conv.weight.detach().reshape(-1).tolist()]
    exact = np.zeros((4, 4), dtype=object)
    for i in range(2):
        for j in range(2):
            for a in range(3):
                for b in range(3):
                    exact[i * 2 + j, ((i + a - 1) % 2) * 2 + (j + b - 1) % 2] += w[a * 3 + b]
    err = np.array([[abs(float(Fraction(float(v)) - e)) for v, e in zip(row, erow)]
                    for row, erow in zip(layer.weight, exact)])
    r = radius(layer, np.ones(4))
    assert np.all(err.sum(axis=1) <= r) and r.max() < 1e-13
    plain = torch.nn.Conv2d(1, 1, 3, padding=1)
    layer, _ = tf._lower_by_basis(torch.jit.trace(plain, torch.zeros(1, 1, 2, 2)), (1, 2, 2), "t")
    assert output_deviation(Network((layer,)), np.zeros(4)) is None
