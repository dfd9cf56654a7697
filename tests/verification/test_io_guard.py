"""Loaders build the function in the file: the executable-source guard, assumed activations, final softmax."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest

from verification import load_network, save_network
from verification.activations import GroupSort, LeakyReLU, ReLU, Tanh
from verification.cli import main
from verification.errors import InvalidParameterError, UnsupportedLayerError

from .onnx_builders import export_onnx, mlp_onnx, torch_mlp, write_onnx

torch = pytest.importorskip("torch")


def _t(x: np.ndarray, shape=None):
    t = torch.tensor(x, dtype=torch.float64)
    return t if shape is None else t.reshape((len(x),) + tuple(shape))


def _ref(model, x: np.ndarray, shape=None) -> np.ndarray:
    """The module's output in float64 (the module is converted in place, then back to float32)."""
    with torch.no_grad():
        out = model.double()(_t(x, shape)).numpy()
    model.float()
    return out


def _script(model, path, trace_input=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mod = torch.jit.trace(model, trace_input) if trace_input is not None else torch.jit.script(model)
        torch.jit.save(mod, str(path))
    return path


def _stderr_lines(capfd) -> list[str]:
    return capfd.readouterr().err.strip().splitlines()


# ------------------------------------------------------------------ activations that are not in the file
def test_state_dict_without_arch_records_the_assumption(tmp_path, rng, capfd):
    model = torch_mlp((3, 8, 6, 2), act=torch.nn.Tanh)
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    net = load_network(tmp_path / "sd.pt")
    assert net.metadata["assumed"] == (
        "the state_dict stores no activations: assumed ReLU after each of the 2 hidden layers and no activation "
        "after the last layer"
    )
    exact = load_network(tmp_path / "sd.pt", arch="tanh")
    assert "assumed" not in exact.metadata
    x = rng.normal(size=(20, 3))
    np.testing.assert_allclose(exact(x), _ref(model, x), atol=1e-12)
    assert main(["info", str(tmp_path / "sd.pt"), "--json"]) == 0
    err = _stderr_lines(capfd)
    assert err == [f"verification: note: {net.metadata['assumed']} (pass --arch to change)"]
    assert main(["info", str(tmp_path / "sd.pt"), "--arch", "tanh"]) == 0
    assert _stderr_lines(capfd) == []


def test_info_json_carries_the_assumption(tmp_path, capfd):
    import json

    torch.save(torch_mlp((3, 4, 2)).state_dict(), tmp_path / "sd.pt")
    assert main(["info", str(tmp_path / "sd.pt"), "--json"]) == 0
    obj = json.loads(capfd.readouterr().out)
    assert obj["assumed"].startswith("the state_dict stores no activations: assumed ReLU")


def test_single_layer_state_dict_notes_the_missing_output_activation(tmp_path):
    torch.save(torch.nn.Linear(3, 2).state_dict(), tmp_path / "lin.pt")
    net = load_network(tmp_path / "lin.pt")
    assert net.metadata["assumed"] == "the state_dict stores no activations: assumed no activation after the last layer"


def test_mat_activation_variable_is_used_and_arch_cannot_contradict_it(tmp_path, rng):
    import scipy.io

    ws = np.empty(2, dtype=object)
    ws[0], ws[1] = rng.normal(size=(4, 3)), rng.normal(size=(2, 4))
    scipy.io.savemat(tmp_path / "mm.mat", {"weights": ws, "activation": "maxmin"})
    net = load_network(tmp_path / "mm.mat")
    assert net.activations == [GroupSort(2)] and "assumed" not in net.metadata
    with pytest.raises(InvalidParameterError, match="stores its activations"):
        load_network(tmp_path / "mm.mat", arch="relu")
    scipy.io.savemat(tmp_path / "plain.mat", {"weights": ws})
    plain = load_network(tmp_path / "plain.mat")
    assert plain.activations == [ReLU()] and "assumed ReLU" in plain.metadata["assumed"]
    assert "assumed" not in load_network(tmp_path / "plain.mat", arch="maxmin").metadata


def test_npz_without_activations_notes_the_assumption(tmp_path, rng):
    np.savez(tmp_path / "n.npz", W0=rng.normal(size=(4, 3)), W1=rng.normal(size=(2, 4)))
    assert "assumed ReLU" in load_network(tmp_path / "n.npz").metadata["assumed"]
    assert load_network(tmp_path / "n.npz", arch="tanh").activations == [Tanh()]


def test_arch_is_refused_for_files_that_store_activations(tmp_path, rng):
    path = mlp_onnx(tmp_path / "m.onnx", rng.normal(size=(4, 3)), rng.normal(size=4), rng.normal(size=(2, 4)))
    with pytest.raises(InvalidParameterError, match="stores its activations"):
        load_network(path, arch="tanh")
    _script(torch_mlp(), tmp_path / "ts.pt")
    with pytest.raises(InvalidParameterError, match="defines its own activations"):
        load_network(tmp_path / "ts.pt", arch="tanh")


def test_state_dict_that_is_not_a_plain_chain_is_refused(tmp_path):
    from collections import OrderedDict

    model = torch_mlp((3, 3, 3))
    sd = model.state_dict()
    torch.save(OrderedDict((k, sd[k]) for k in ["2.weight", "2.bias", "0.weight", "0.bias"]), tmp_path / "rev.pt")
    with pytest.raises(UnsupportedLayerError, match="out of index order"):
        load_network(tmp_path / "rev.pt", arch="relu")
    bn = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    torch.save(bn.state_dict(), tmp_path / "bn.pt")
    with pytest.raises(UnsupportedLayerError, match="'1.weight' has shape \\(4,\\)"):
        load_network(tmp_path / "bn.pt")
    torch.save(dict(model.state_dict(), extra=torch.ones(2)), tmp_path / "extra.pt")
    with pytest.raises(UnsupportedLayerError, match="\\['extra'\\] are not Linear weights or biases"):
        load_network(tmp_path / "extra.pt")


# ------------------------------------------------------------------ the guard catches custom forwards
class _Twice(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)

    def forward(self, x):
        return 2 * self.lin(x)


class _Residual(torch.nn.Sequential):
    def forward(self, x):
        for m in self:
            x = x + m(x)
        return x


class _Reversed(torch.nn.Sequential):
    def forward(self, x):
        for m in reversed(list(self)):
            x = m(x)
        return x


def test_pickled_sequential_applying_children_in_reverse_is_refused(tmp_path):
    torch.manual_seed(0)
    torch.save(_Reversed(torch.nn.Linear(3, 3), torch.nn.Tanh(), torch.nn.Linear(3, 3)), tmp_path / "rev.pt")
    with pytest.raises(UnsupportedLayerError, match="not the function in the file"):
        load_network(tmp_path / "rev.pt", trust=True)


def test_torchscript_with_a_custom_forward_is_refused(tmp_path):
    _script(_Twice(), tmp_path / "twice.pt")
    with pytest.raises(UnsupportedLayerError, match="not the function in the file.*differs from the torch module"):
        load_network(tmp_path / "twice.pt")


def test_sequential_subclass_with_a_residual_forward_is_refused_even_with_trust(tmp_path):
    torch.save(_Residual(torch.nn.Linear(3, 3), torch.nn.ReLU(), torch.nn.Linear(3, 3)), tmp_path / "res.pt")
    with pytest.raises(UnsupportedLayerError, match="not the function in the file"):
        load_network(tmp_path / "res.pt", trust=True)
    # TorchScript keeps the class name: not a plain Sequential, so it is converted through ONNX and checked
    res = _Residual(torch.nn.Linear(3, 3), torch.nn.ReLU(), torch.nn.Linear(3, 3)).double().eval()
    _script(res, tmp_path / "res_ts.pt")
    net = load_network(tmp_path / "res_ts.pt")
    assert "torch.onnx.export" in net.metadata["converted"]
    x = np.random.default_rng(0).normal(size=(8, 3))
    with torch.no_grad():
        np.testing.assert_allclose(net(x), res(torch.from_numpy(x)).numpy(), rtol=1e-12, atol=1e-12)


def _cnn(padding_mode: str):
    torch.manual_seed(1)
    return torch.nn.Sequential(
        torch.nn.Conv2d(2, 3, 3, padding=1, padding_mode=padding_mode), torch.nn.ReLU(),
        torch.nn.Conv2d(3, 2, 2, stride=2), torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.Linear(2 * 2 * 2, 3),
    ).eval()


@pytest.mark.parametrize("padding_mode", ["circular", "reflect", "replicate", "zeros"])
@pytest.mark.parametrize("how", ["script", "trace", "pickle"])
def test_conv_padding_modes_are_lowered_exactly(tmp_path, rng, padding_mode, how):
    model = _cnn(padding_mode)
    path = tmp_path / "cnn.pt"
    if how == "pickle":
        torch.save(model, path)
    else:
        _script(model, path, torch.zeros(1, 2, 4, 4) if how == "trace" else None)
    net = load_network(path, trust=how == "pickle", input_shape=(2, 4, 4))
    x = rng.normal(size=(16, 32))
    np.testing.assert_allclose(net(x), _ref(model, x, (2, 4, 4)), rtol=0, atol=1e-12)
    assert net.metadata["crosscheck"]["max_ratio"] <= 1.0


@pytest.mark.parametrize("how", ["script", "trace"])
def test_conv_options_same_padding_dilation_groups(tmp_path, rng, how):
    torch.manual_seed(2)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 2, padding="same", dilation=2, padding_mode="reflect"), torch.nn.ReLU(),
        torch.nn.Conv2d(4, 4, 3, padding=(2, 1), stride=(2, 1), groups=2), torch.nn.Sigmoid(),
        torch.nn.Conv2d(4, 2, (1, 3), padding="same", padding_mode="circular", bias=False), torch.nn.Flatten(),
    ).eval()
    path = _script(model, tmp_path / "c.pt", torch.zeros(1, 2, 5, 6) if how == "trace" else None)
    net = load_network(path, input_shape=(2, 5, 6))
    x = rng.normal(size=(8, 60))
    np.testing.assert_allclose(net(x), _ref(model, x, (2, 5, 6)), rtol=0, atol=1e-12)


def test_onnx_node_from_a_custom_domain_is_refused(tmp_path, rng):
    from onnx import helper

    nodes = [
        helper.make_node("Gemm", ["x", "W0", "B0"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["a"], domain="com.example"),
        helper.make_node("MatMul", ["a", "W1T"], ["y"]),
    ]
    path = write_onnx(tmp_path / "d.onnx", nodes, {"W0": rng.normal(size=(4, 3)), "B0": np.zeros(4), "W1T": np.ones((4, 2))}, 3, "y")
    with pytest.raises(UnsupportedLayerError, match="node 1 \\(Relu\\) is from the custom domain 'com.example'"):
        load_network(path)


# ------------------------------------------------------------------ final softmax
@pytest.mark.parametrize("final", ["Softmax", "LogSoftmax"])
def test_final_softmax_is_refused_or_dropped_explicitly(tmp_path, rng, final, capfd):
    logits = torch_mlp((3, 8, 4))
    model = torch.nn.Sequential(*logits, getattr(torch.nn, final)(dim=1)).eval()
    x = rng.normal(size=(10, 3))
    want = _ref(logits, x)
    paths = {
        "onnx": export_onnx(model, tmp_path / "m.onnx", torch.zeros(1, 3)),
        "script": _script(model, tmp_path / "s.pt"),
        "trace": _script(model, tmp_path / "t.pt", torch.zeros(1, 3)),
    }
    torch.save(model, tmp_path / "p.pt")
    paths["pickle"] = tmp_path / "p.pt"
    for kind, path in paths.items():
        with pytest.raises(UnsupportedLayerError, match=f"ends with a {final}; pass --drop-softmax"):
            load_network(path, trust=True)
        net = load_network(path, trust=True, drop_softmax=True)
        assert net.metadata["dropped"] == f"final {final}", kind
        tol = 1e-12 if kind != "onnx" else 1e-5
        np.testing.assert_allclose(net(x.astype(np.float32)), _ref(logits, x.astype(np.float32)), atol=tol, err_msg=kind)
    assert np.abs(want).max() > 0
    assert main(["info", str(paths["onnx"]), "--drop-softmax"]) == 0
    assert _stderr_lines(capfd) == [f"verification: note: dropped the final {final} (--drop-softmax): the logits are analysed"]
    assert main(["info", str(paths["onnx"])]) == 2
    err = _stderr_lines(capfd)
    assert len(err) == 1 and "--drop-softmax" in err[0]


def test_softmax_before_the_end_is_refused(tmp_path, rng):
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Softmax(dim=1), torch.nn.Linear(4, 2)).eval()
    _script(model, tmp_path / "s.pt")
    with pytest.raises(UnsupportedLayerError, match="only as the last layer"):
        load_network(tmp_path / "s.pt", drop_softmax=True)
    export_onnx(model, tmp_path / "s.onnx", torch.zeros(1, 3))
    with pytest.raises(UnsupportedLayerError, match="very end of the graph"):
        load_network(tmp_path / "s.onnx", drop_softmax=True)


# ------------------------------------------------------------------ the guard itself
def test_guard_catches_a_slightly_wrong_onnx_load(tmp_path, rng, monkeypatch):
    from verification.io import onnx_format

    path = mlp_onnx(tmp_path / "m.onnx", rng.normal(size=(16, 5)), rng.normal(size=16), rng.normal(size=(3, 16)))
    assert load_network(path).metadata["crosscheck"]["max_ratio"] < 1
    monkeypatch.setitem(onnx_format._ACTIVATIONS, "Relu", lambda node: LeakyReLU(0.01))
    with pytest.raises(UnsupportedLayerError, match=r"differs from onnxruntime by .* \(tolerance .*\)"):
        load_network(path)
    assert load_network(path, check=False).activations == [LeakyReLU(0.01)]  # the escape hatch


def test_guard_catches_a_slightly_wrong_torch_load(tmp_path, monkeypatch):
    from verification.io import torch_format
    from verification.network import Dense

    _script(torch_mlp((5, 16, 3)), tmp_path / "m.pt")
    real = torch_format._linear

    def off_by_a_little(m, shape, where):
        dense, out = real(m, shape, where)
        w = dense.weight.copy()
        w[0, 0] *= 1 + 1e-4
        return Dense(w, dense.bias), out

    monkeypatch.setattr(torch_format, "_linear", off_by_a_little)
    with pytest.raises(UnsupportedLayerError, match="differs from the torch module"):
        load_network(tmp_path / "m.pt")


def test_guard_accepts_float32_round_off(tmp_path, rng, monkeypatch):
    """The network may hold float64 values that round to the file's float32 weights."""
    from verification.io import onnx_format

    path = mlp_onnx(tmp_path / "m.onnx", rng.normal(size=(64, 20)), rng.normal(size=64), rng.normal(size=(5, 64)), act="Tanh")
    real = onnx_format._matmul

    def jittered(*args):
        var = real(*args)
        var.a = var.a * (1 + 2.0**-25 * np.sign(rng.normal(size=var.a.shape)))
        return var

    monkeypatch.setattr(onnx_format, "_matmul", jittered)
    assert load_network(path).metadata["crosscheck"]["max_ratio"] < 1


def test_valid_models_in_every_format_load_without_note_and_agree(tmp_path, rng):
    import scipy.io

    model = torch_mlp((4, 12, 8, 3), act=torch.nn.Tanh)
    x = rng.normal(size=(30, 4)).astype(np.float32).astype(np.float64)
    want = _ref(model, x)
    export_onnx(model, tmp_path / "m.onnx", torch.zeros(1, 4))
    _script(model, tmp_path / "s.pt")
    _script(model, tmp_path / "t.pt", torch.zeros(1, 4))
    torch.save(model, tmp_path / "p.pt")
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    nets = {name: load_network(tmp_path / name, trust=True) for name in ("m.onnx", "s.pt", "t.pt", "p.pt")}
    nets["sd.pt"] = load_network(tmp_path / "sd.pt", arch="tanh")
    save_network(nets["s.pt"], tmp_path / "n.npz")
    nets["n.npz"] = load_network(tmp_path / "n.npz")
    ws, bs = np.empty(3, dtype=object), np.empty(3, dtype=object)
    ws[:] = [d.weight for d in nets["s.pt"].dense_layers]
    bs[:] = [d.bias for d in nets["s.pt"].dense_layers]
    scipy.io.savemat(tmp_path / "m.mat", {"weights": ws, "biases": bs, "activation": "tanh"})
    nets["m.mat"] = load_network(tmp_path / "m.mat")
    for name, net in nets.items():
        assert "assumed" not in net.metadata and "dropped" not in net.metadata, name
        assert [l.describe() for l in net.layers] == ["dense(4->12)", "tanh", "dense(12->8)", "tanh", "dense(8->3)"]
        np.testing.assert_allclose(net(x), want, atol=1e-12 if name != "m.onnx" else 1e-5, err_msg=name)
        if name.endswith(".onnx") or name in ("s.pt", "t.pt", "p.pt"):
            assert net.metadata["crosscheck"]["max_ratio"] < 1, name


def test_onnx_export_with_view_and_fixed_batch_loads(tmp_path, rng):
    class View(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(12, 2)

        def forward(self, x):
            return self.lin(torch.relu(x.view(x.size(0), -1)))

    torch.manual_seed(0)
    model = View().eval()
    export_onnx(model, tmp_path / "v.onnx", torch.zeros(1, 3, 2, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.zeros(1, 3, 2, 2), str(tmp_path / "fixed.onnx"), dynamo=False)
    x = rng.normal(size=(6, 12)).astype(np.float32).astype(np.float64)
    for name in ("v.onnx", "fixed.onnx"):
        net = load_network(tmp_path / name)
        np.testing.assert_allclose(net(x), _ref(model, x, (3, 2, 2)), atol=1e-5)


@pytest.mark.parametrize("widths, limit", [((8, 32, 32, 4), 0.5), ((784, 256, 256, 10), 2.0)])
def test_guard_is_fast(tmp_path, widths, limit):
    model = torch_mlp(widths)
    export_onnx(model, tmp_path / "m.onnx", torch.zeros(1, widths[0]))
    _script(model, tmp_path / "m.pt")
    load_network(tmp_path / "m.onnx")  # warm up onnxruntime
    for name in ("m.onnx", "m.pt"):
        start = time.perf_counter()
        net = load_network(tmp_path / name)
        assert time.perf_counter() - start < limit, name
        assert net.metadata["crosscheck"]["points"] == 256
