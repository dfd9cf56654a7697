"""Bad input: every corrupt or unsupported model gives one VerificationError (CLI: one stderr line, exit 2),
fast and with bounded memory; never a traceback, a hang or a silently different network."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from verification import load_network, save_network
from verification.cli import main
from verification.errors import (
    InvalidParameterError,
    ModelFormatError,
    ShapeMismatchError,
    UnsupportedLayerError,
    VerificationError,
)

from .onnx_builders import export_onnx, torch_mlp, write_onnx

torch = pytest.importorskip("torch")


# ------------------------------------------------------------------ builders
def _nnet_text(ws, bs, header=None, means=None) -> str:
    n_in, n_out = ws[0].shape[1], ws[-1].shape[0]
    sizes = [n_in] + [w.shape[0] for w in ws]
    lines = ["// test net", header or f"{len(ws)},{n_in},{n_out},{max(sizes)},", ",".join(map(str, sizes)) + ",", "0,"]
    lines += [",".join(["-1"] * n_in) + ",", ",".join(["1"] * n_in) + ","]
    lines += [means or ",".join(["0"] * (n_in + 1)) + ",", ",".join(["1"] * (n_in + 1)) + ","]
    for w, b in zip(ws, bs):
        lines += [",".join(f"{v:.8g}" for v in row) + "," for row in w] + [f"{v:.8g}," for v in b]
    return "\n".join(lines) + "\n"


def _small_weights(rng):
    ws = [rng.normal(size=(4, 3)), rng.normal(size=(2, 4))]
    return ws, [rng.normal(size=4), rng.normal(size=2)]


def _onnx_cases(d: Path, rng) -> list:
    from onnx import TensorProto, helper

    w = {"W": rng.normal(size=(3, 2))}
    mm = lambda src="x": helper.make_node("MatMul", [src, "W"], ["y"])  # noqa: E731
    cases = []
    write_onnx(d / "const_noattr.onnx", [helper.make_node("Constant", [], ["k"]), helper.make_node("Mul", ["x", "k"], ["a"]), mm("a")], w, 3, "y")
    cases.append(("const_noattr.onnx", [], "Constant) must have exactly one value attribute"))
    write_onnx(d / "const_str.onnx", [helper.make_node("Constant", [], ["k"], value_string="hi"), helper.make_node("Mul", ["x", "k"], ["a"]), mm("a")], w, 3, "y")
    cases.append(("const_str.onnx", [], "'value_string' is not supported"))
    s = helper.make_tensor("S", TensorProto.STRING, [3, 2], [b"a"] * 6)
    write_onnx(d / "str_init.onnx", [helper.make_node("MatMul", ["x", "S"], ["y"])], {}, 3, "y", raw_initializers=[s])
    cases.append(("str_init.onnx", [], "not a real number type"))
    write_onnx(d / "dim_1e9.onnx", [mm()], w, 3, "y", in_shape=[1, 10**9])
    cases.append(("dim_1e9.onnx", [], "above the limit"))
    write_onnx(d / "dim_40000.onnx", [mm()], w, 3, "y", in_shape=[1, 40000])
    cases.append(("dim_40000.onnx", [], "cannot be multiplied"))
    write_onnx(d / "sym_inner.onnx", [mm()], w, 3, "y", in_shape=[1, "n"])
    cases.append(("sym_inner.onnx", [], "input dimension 1 is symbolic"))
    write_onnx(d / "zero_dim.onnx", [mm()], w, 3, "y", in_shape=[1, 0])
    cases.append(("zero_dim.onnx", [], "zero-width"))
    write_onnx(d / "zero_width.onnx", [helper.make_node("MatMul", ["x", "Z"], ["y"])], {"Z": np.zeros((3, 0))}, 3, "y")
    cases.append(("zero_width.onnx", [], "zero width"))
    nodes = [mm(), helper.make_node("Gemm", ["y", "V"], ["z"], alpha=float("nan"))]
    write_onnx(d / "nan_alpha.onnx", nodes, dict(w, V=np.ones((2, 2))), 3, "z")
    cases.append(("nan_alpha.onnx", [], "attribute 'alpha' must be a number"))
    return cases


def _nnet_cases(d: Path, rng) -> list:
    ws, bs = _small_weights(rng)
    cases = []
    for name, kwargs, expected in [
        ("nan_header.nnet", {"header": "nan,3,2,4,"}, "contains NaN or inf"),
        ("inf_mean.nnet", {"means": "0,inf,0,0,"}, "contains NaN or inf"),
        ("zero_size.nnet", {"header": "2,0,2,4,"}, "must be positive integers"),
        ("neg_size.nnet", {"header": "2,-3,2,4,"}, "must be positive integers"),
        ("huge_layers.nnet", {"header": "1e300,3,2,4,"}, "more than the file can hold"),
    ]:
        (d / name).write_text(_nnet_text(ws, bs, **kwargs))
        cases.append((name, [], expected))
    bad = [w.copy() for w in ws]
    bad[1][0, 0] = np.nan
    (d / "nan_weight.nnet").write_text(_nnet_text(bad, bs))
    cases.append(("nan_weight.nnet", [], "contains NaN or inf"))
    return cases


def _mat_cases(d: Path, rng) -> list:
    import scipy.io

    ws, _ = _small_weights(rng)
    cell = np.empty(2, dtype=object)
    cell[:] = ws
    mixed = np.empty(2, dtype=object)
    mixed[:] = [ws[0], "relu"]
    cases = []
    for name, variables, expected in [
        ("string.mat", {"weights": "hello"}, "not a real numeric array"),
        ("struct.mat", {"weights": {"a": ws[0]}}, "is a MATLAB struct"),
        ("cell_str.mat", {"weights": mixed}, "weights'{2} is not a real numeric array"),
        ("complex.mat", {"weights": ws[0] + 1j}, "complex"),
        ("extra.mat", {"weights": cell, "scale": 2.0}, "unknown variable(s) ['scale']"),
        ("bad_act.mat", {"weights": cell, "activation": "swish"}, "unknown activation 'swish'"),
        ("num_act.mat", {"weights": cell, "activation": 3.0}, "activation names (strings)"),
    ]:
        scipy.io.savemat(d / name, variables)
        cases.append((name, [], expected))
    return cases


def _npz_cases(d: Path, rng) -> list:
    ws, bs = _small_weights(rng)
    base = {"W0": ws[0], "b0": bs[0], "W1": ws[1], "b1": bs[1]}
    specs = [
        ("act_json.npz", {"activations": np.array("[relu")}, "not valid JSON"),
        ("act_dict.npz", {"activations": np.array('{"type": "relu"}')}, "JSON list"),
        ("act_count.npz", {"activations": np.array('[{"type": "relu"}, {"type": "relu"}]')}, "2 activations for 2 weights"),
        ("act_type.npz", {"activations": np.array('[{"type": "swish"}]')}, "unknown type 'swish'"),
        ("act_nan.npz", {"activations": np.array('[{"type": "leaky_relu", "negative_slope": NaN}]')}, "finite number"),
        ("act_bool.npz", {"activations": np.array('[{"type": "leaky_relu", "negative_slope": true}]')}, "finite number"),
        ("act_group.npz", {"activations": np.array('[{"type": "groupsort", "group_size": 1}]')}, "integer >= 2"),
        ("act_field.npz", {"activations": np.array('[{"type": "relu", "alpha": 1}]')}, "unknown field(s) ['alpha']"),
        ("act_str.npz", {"activations": np.array('["relu"]')}, "must be an object with a 'type'"),
        ("act_array.npz", {"activations": np.array([1.0, 2.0])}, "must be a string"),
        ("w_string.npz", {"W1": np.array([["a", "b", "c", "d"]] * 2)}, "not a real numeric array"),
        ("w_complex.npz", {"W1": ws[1] + 1j}, "complex"),
        ("unknown.npz", {"scale": np.ones(2)}, "unknown array(s) ['scale']"),
        ("gap.npz", {"W3": np.ones((2, 2))}, "has W3 but no W2"),
        ("zero.npz", {"W0": np.zeros((0, 3)), "b0": np.zeros(0)}, "zero-width"),
        ("nan_lower.npz", {"input_lower": np.array([0.0, np.nan, 0.0]), "input_upper": np.ones(3)}, "NaN or infinite"),
        ("upper_only.npz", {"input_upper": np.ones(3)}, "must be given together"),
    ]
    cases = []
    for name, override, expected in specs:
        np.savez(d / name, **dict(base, **override))
        cases.append((name, [], expected))
    np.savez(d / "obj.npz", W0=np.array([ws[0], "x"], dtype=object))
    cases.append(("obj.npz", [], "allow_pickle"))
    np.save(d / "single.npy", ws[0])
    (d / "single.npz").write_bytes((d / "single.npy").read_bytes())
    cases.append(("single.npz", [], "not an .npz archive"))
    return cases


def _torch_cases(d: Path, rng) -> list:
    torch.manual_seed(0)
    cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(32, 3)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(cnn, torch.zeros(1, 1, 4, 4)), str(d / "traced_cnn.pt"))
    cases = [("traced_cnn.pt", [], "needs --input-shape")]
    for shape, expected in [("a,b", "three positive integers"), ("1,5", "three positive integers"), ("-1,4,4", "three positive integers"),
                            ("0,4,4", "three positive integers"), ("1,4,4,1", "three positive integers"),
                            ("1000,1000,1000", "at most 1000000"), ("1,4,5", "expects 32 inputs but gets 40")]:
        cases.append(("traced_cnn.pt", ["--input-shape", shape], expected))
    sd = torch_mlp((3, 4, 2)).state_dict()
    torch.save(dict(sd, **{"1.running_mean": torch.zeros(4)}), d / "sd_extra.pt")
    cases.append(("sd_extra.pt", [], "not Linear weights or biases"))
    torch.save({"0.weight": torch.zeros(3, 2, dtype=torch.complex64)}, d / "sd_complex.pt")
    cases.append(("sd_complex.pt", [], "complex"))
    torch.save({"0.weight": torch.zeros(0, 3), "1.weight": torch.zeros(2, 0)}, d / "sd_zero.pt")
    cases.append(("sd_zero.pt", [], "zero-width"))
    torch.save({"0.weight": torch.ones(2, 3), "0.bias": torch.ones(2)}, d / "sd_ok.pt")
    cases.append(("sd_ok.pt", ["--arch", "leaky_relu(nan)"], "leaky_relu(nan)"))
    return cases


def _all_cases(d: Path) -> list:
    rng = np.random.default_rng(7)
    return _onnx_cases(d, rng) + _nnet_cases(d, rng) + _mat_cases(d, rng) + _npz_cases(d, rng) + _torch_cases(d, rng)


# ------------------------------------------------------------------ library
def test_each_bad_model_raises_one_verification_error(tmp_path):
    from verification.cli.common import parse_input_shape

    for name, args, expected in _all_cases(tmp_path):
        opts = {}
        if args and args[0] == "--input-shape":
            try:
                opts["input_shape"] = parse_input_shape(args[1])
            except InvalidParameterError as exc:
                assert expected in str(exc), (name, args, str(exc))
                continue
        if args and args[0] == "--arch":
            opts["arch"] = args[1]
        start = time.perf_counter()
        with pytest.raises(VerificationError) as info:
            load_network(tmp_path / name, **opts)
        assert expected in str(info.value), (name, args, str(info.value))
        assert "\n" not in str(info.value)
        assert time.perf_counter() - start < 10, name


def test_error_classes(tmp_path):
    cases = {c[0]: c for c in _all_cases(tmp_path) if not c[1]}
    kinds = {
        "zero_width.onnx": ShapeMismatchError, "zero.npz": ShapeMismatchError, "sd_zero.pt": ShapeMismatchError,
        "sym_inner.onnx": UnsupportedLayerError, "dim_1e9.onnx": UnsupportedLayerError,
        "str_init.onnx": ModelFormatError, "w_complex.npz": ModelFormatError, "nan_weight.nnet": ModelFormatError,
        "gap.npz": ModelFormatError, "struct.mat": ModelFormatError,
    }
    for name, kind in kinds.items():
        with pytest.raises(kind):
            load_network(tmp_path / cases[name][0])


def test_onnx_constants_with_value_float_and_value_ints_load(tmp_path, rng):
    from onnx import helper

    w = rng.normal(size=(3, 2))
    nodes = [
        helper.make_node("Constant", [], ["k"], value_float=2.0),
        helper.make_node("Constant", [], ["ks"], value_floats=[1.0, -1.0, 0.5]),
        helper.make_node("Constant", [], ["shape"], value_ints=[1, 3]),
        helper.make_node("Mul", ["x", "k"], ["a"]),
        helper.make_node("Mul", ["a", "ks"], ["b"]),
        helper.make_node("Reshape", ["b", "shape"], ["c"]),
        helper.make_node("MatMul", ["c", "W"], ["y"]),
    ]
    net = load_network(write_onnx(tmp_path / "c.onnx", nodes, {"W": w}, 3, "y"))
    x = rng.normal(size=(4, 3))
    np.testing.assert_allclose(net(x), (x * 2 * np.array([1, -1, 0.5])) @ w.astype(np.float32), rtol=1e-6)


def test_large_declared_input_is_lazy(tmp_path, rng):
    """A 40,000-wide input with a matching first layer loads without an n x n identity."""
    from onnx import helper

    w = rng.normal(size=(40000, 3)) / 200
    nodes = [helper.make_node("Sub", ["x", "M"], ["a"]), helper.make_node("MatMul", ["a", "W"], ["y"])]
    path = write_onnx(tmp_path / "wide.onnx", nodes, {"W": w, "M": rng.normal(size=40000)}, 40000, "y")
    start = time.perf_counter()
    net = load_network(path)
    assert net.in_dim == 40000 and net.out_dim == 3
    assert time.perf_counter() - start < 10


def test_traced_cnn_with_input_shape_loads(tmp_path, rng):
    _torch_cases(tmp_path, rng)
    net = load_network(tmp_path / "traced_cnn.pt", input_shape=(1, 4, 4))
    assert net.in_dim == 16 and net.out_dim == 3


def test_files_that_never_end_or_live_elsewhere_are_refused(tmp_path, rng):
    import os

    import onnx
    from onnx import helper, numpy_helper

    os.mkfifo(tmp_path / "fifo.onnx")
    (tmp_path / "dev.onnx").symlink_to("/dev/zero")
    for name in ("fifo.onnx", "dev.onnx"):
        with pytest.raises(ModelFormatError, match="not a regular file"):
            load_network(tmp_path / name)
    w = numpy_helper.from_array(rng.normal(size=(3, 2)).astype(np.float32), "W")
    w.ClearField("raw_data")
    w.data_location = onnx.TensorProto.EXTERNAL
    entry = w.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    write_onnx(tmp_path / "ext.onnx", [helper.make_node("MatMul", ["x", "W"], ["y"])], {}, 3, "y", raw_initializers=[w])
    with pytest.raises(ModelFormatError, match="external data"):
        load_network(tmp_path / "ext.onnx")


def test_unknown_options_are_refused(tmp_path, rng):
    np.savez(tmp_path / "n.npz", W0=rng.normal(size=(2, 3)))
    with pytest.raises(InvalidParameterError, match="unknown option"):
        load_network(tmp_path / "n.npz", include_normalisation=True)


# ------------------------------------------------------------------ corrupted copies of valid files
def _valid_sources(d: Path) -> dict[str, Path]:
    import scipy.io

    rng = np.random.default_rng(3)
    model = torch_mlp((3, 6, 5, 2))
    out = {"onnx": export_onnx(model, d / "v.onnx", torch.zeros(1, 3))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(model), str(d / "vs.pt"))
        torch.jit.save(torch.jit.trace(model, torch.zeros(1, 3)), str(d / "vt.pt"))
    out["script"], out["trace"] = d / "vs.pt", d / "vt.pt"
    torch.save(model.state_dict(), d / "vsd.pt")
    out["state_dict"] = d / "vsd.pt"
    net = load_network(d / "vs.pt")
    save_network(net, d / "v.npz")
    out["npz"] = d / "v.npz"
    cell = np.empty(3, dtype=object)
    cell[:] = net.weights
    scipy.io.savemat(d / "v.mat", {"weights": cell, "activation": "relu"})
    out["mat"] = d / "v.mat"
    (d / "v.nnet").write_text(_nnet_text(net.weights, net.biases))
    out["nnet"] = d / "v.nnet"
    del rng
    return out


def _corruptions(data: bytes, seed: int) -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(seed)
    out = [(f"truncated at {f:.2f}", data[: int(len(data) * f)]) for f in (0.0, 0.1, 0.5, 0.9, 0.99)]
    for _ in range(9):
        off, bit = int(rng.integers(len(data))), int(rng.integers(8))
        b = bytearray(data)
        b[off] ^= 1 << bit
        out.append((f"bit {bit} of byte {off} flipped", bytes(b)))
    return out


def test_corrupted_files_load_checked_or_fail_cleanly(tmp_path):
    """Truncations and bit flips of a valid file of each format: a checked network or one VerificationError."""
    counts = {"cases": 0, "loaded": 0, "refused": 0}
    for seed, (fmt, path) in enumerate(_valid_sources(tmp_path).items()):
        for what, blob in _corruptions(path.read_bytes(), seed):
            bad = tmp_path / f"bad{path.suffix}"
            bad.write_bytes(blob)
            start = time.perf_counter()
            try:
                net = load_network(bad)
            except VerificationError as exc:
                assert "\n" not in str(exc)
                counts["refused"] += 1
            else:
                if fmt in ("onnx", "script", "trace"):
                    assert net.metadata["crosscheck"]["max_ratio"] <= 1, (fmt, what)
                counts["loaded"] += 1
            counts["cases"] += 1
            assert time.perf_counter() - start < 10, (fmt, what)
    assert counts["cases"] == 7 * 14 and counts["refused"] > counts["cases"] // 3, counts


# ------------------------------------------------------------------ command line: exit 2, exactly one line
def test_cli_bad_models_exit_2_with_one_line(tmp_path, capfd):
    for name, args, expected in _all_cases(tmp_path):
        try:
            rc = main(["info", str(tmp_path / name), *args])
        except SystemExit as exc:  # argparse: "--input-shape -1,4,4" reads as an option
            rc = exc.code
            expected = "--input-shape"
        err = capfd.readouterr().err.strip().splitlines()
        assert rc == 2, (name, args, err)
        assert len(err) == 1 and expected in err[0] and err[0].startswith("verification info: error:"), (name, args, err)


_DRIVER = r"""
import json, os, sys, tempfile
from verification.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    with tempfile.TemporaryFile() as f:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(f.fileno(), 2)
        try:
            rc = main(argv)
        except SystemExit as exc:
            rc = exc.code
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        results.append({"argv": argv, "rc": rc, "err": f.read().decode(errors="replace")})
print(json.dumps(results))
"""


def test_cli_stderr_is_one_line_with_all_warnings_enabled(tmp_path):
    """In a fresh interpreter with ``-W always``: no library warning or log line reaches stderr."""
    cases = _all_cases(tmp_path)
    picked = [c for c in cases if c[0].endswith((".onnx", ".mat", ".pt"))][::2] + cases[-3:]
    argvs = [["info", str(tmp_path / name), *args] for name, args, _ in picked]
    for fmt, path in _valid_sources(tmp_path).items():
        bad = tmp_path / f"trunc_{fmt}{path.suffix}"
        bad.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
        argvs.append(["info", str(bad)])
        argvs.append(["info", str(path)])
    res = subprocess.run([sys.executable, "-W", "always", "-c", _DRIVER, json.dumps(argvs)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    for r in json.loads(res.stdout.strip().splitlines()[-1]):
        lines = r["err"].strip().splitlines()
        valid = not Path(r["argv"][1]).name.startswith(("trunc_",)) and Path(r["argv"][1]).name.startswith("v")
        if valid:
            assert r["rc"] == 0 and all(l.startswith("verification: note:") for l in lines), r
        else:
            assert r["rc"] == 2 and len(lines) == 1 and "Traceback" not in r["err"], r
