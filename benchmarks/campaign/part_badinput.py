"""Part 3: the bad-input corpus.  Every bad input must get exit 2, exactly one non-empty stderr line, no
traceback / usage block / warning, fast, under a 4 GB address-space cap.  Mutated files that stay valid may
get a normal answer instead.  Inputs that are actually valid (BOM, non-ASCII comments under LC_ALL=C, ...)
must be answered normally."""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

import formats
from nets import Net, random_net
from runner import error_issues, success_issues

PART = "p3-bad-input"
SLOW = 10.0  # an error must be reported within this many seconds
LIMIT = 30.0  # wall-clock cap per case

NORMAL_RC = {"info": {0}, "lipschitz": {0, 1}, "verify": {0, 1, 3}, "local-lipschitz": {0}}


@dataclass
class Case:
    cls: str  # class of bad input (reported separately)
    argv: list
    expect: str  # "error" | "either" | "valid"
    files: list = field(default_factory=list)
    env: dict | None = None
    why: str = ""


# =========================================================================================== base files
def base_models(ctx, d: str):
    """One small valid model per format (3 inputs, 2 outputs) and a matching property."""
    rng = np.random.default_rng([ctx.seed, 3])
    net = random_net(rng, n_in=3, n_hidden=2, n_out=2, act=("relu",), mixed=False, scale=1.0)
    net = Net(net.Ws[:1] + [np.random.default_rng(1).normal(size=(4, net.widths[0]))] + [
        np.random.default_rng(2).normal(size=(2, 4))], [net.bs[0], np.zeros(4), np.zeros(2)], [("relu",), ("relu",)])
    out = {}
    for fmt in formats.FORMATS:
        p = os.path.join(d, f"base_{fmt}{ {'npz': '.npz', 'onnx': '.onnx', 'torchscript': '.pt', 'statedict': '.pt', 'nnet': '.nnet', 'mat': '.mat'}[fmt]}")
        p = p.replace("base_torchscript.pt", "base_ts.pt").replace("base_statedict.pt", "base_sd.pt")
        stored, extra = formats.write(net, fmt, p, np.random.default_rng(5), None)
        out[fmt] = (p, extra)
    import torch

    torch.manual_seed(0)
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(2 * 4 * 4, 2)).double().eval()
    cp = os.path.join(d, "base_conv_ts.pt")
    torch.jit.save(torch.jit.script(conv), cp)
    out["conv"] = (cp, ["--input-shape", "1,4,4"])
    prop = os.path.join(d, "base.vnnlib")
    with open(prop, "w") as fh:
        fh.write(valid_vnnlib(3, 2))
    return out, prop


def valid_vnnlib(n_in: int, n_out: int, unsafe: str = "(assert (<= Y_0 -1000000))") -> str:
    lines = [f"(declare-const X_{i} Real)" for i in range(n_in)] + [f"(declare-const Y_{j} Real)" for j in range(n_out)]
    for i in range(n_in):
        lines += [f"(assert (>= X_{i} -1))", f"(assert (<= X_{i} 1))"]
    lines.append(unsafe)
    return "\n".join(lines) + "\n"


# =========================================================================================== mutations
def mutations(ctx, d, models, prop, n_flip: int, n_trunc: int) -> list[Case]:
    rng = np.random.default_rng([ctx.seed, 31])
    cases = []
    for fmt, (path, extra) in models.items():
        data = open(path, "rb").read()
        n = len(data)
        offs = sorted(set(np.linspace(0, n - 1, n_flip // 2).astype(int).tolist() +
                          rng.integers(0, n, size=n_flip - n_flip // 2).tolist()))
        ext = os.path.splitext(path)[1]
        for k, o in enumerate(offs):
            b = bytearray(data)
            bit = int(rng.integers(8))
            b[o] ^= 1 << bit
            p = os.path.join(d, f"flip_{fmt}_{o}_{bit}{ext}")
            with open(p, "wb") as fh:
                fh.write(bytes(b))
            cases.append(Case(f"bitflip/{fmt}", _cmd_for(k, p, extra, prop), "either", [p, prop],
                              why=f"bit {bit} of byte {o} flipped"))
        cuts = sorted(set([0, 1, 2, 7, 16, 64, n // 2, n - 1, n - 2] +
                          np.linspace(0, n - 1, max(n_trunc - 9, 1)).astype(int).tolist()))
        for k, c in enumerate(cuts[:max(n_trunc, 9)]):
            p = os.path.join(d, f"trunc_{fmt}_{c}{ext}")
            with open(p, "wb") as fh:
                fh.write(data[:c])
            cases.append(Case(f"truncated/{fmt}", _cmd_for(k, p, extra, prop), "either" if c > n - 3 else "error",
                              [p, prop], why=f"truncated to {c} of {n} bytes"))
    return cases


def _cmd_for(k: int, path: str, extra: list, prop: str) -> list:
    if k % 6 == 5:
        return ["lipschitz", path, "--method", "naive", *extra]
    if k % 6 == 3:
        return ["verify", path, prop, "--timeout", "5", *extra]
    return ["info", path, *extra]


# =========================================================================================== ONNX
def onnx_cases(d) -> list[Case]:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    r = np.random.default_rng(40)
    W = r.normal(size=(3, 2)).astype(np.float32)
    Wi = numpy_helper.from_array(W, "W")

    def model(nodes, inits, in_dims=(1, 3), out_dims=(1, 2), opsets=(("", 13),), inputs=None, outputs=None,
              ir=8):
        ins = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_dims))]
        outs = outputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_dims))]
        g = helper.make_graph(nodes, "g", ins, outs, inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid(a, b) for a, b in opsets])
        m.ir_version = ir
        return m

    mm = helper.make_node("MatMul", ["x", "W"], ["y"])
    specs = {
        "constant value_float": model([helper.make_node("Constant", [], ["c"], value_float=2.0),
                                       helper.make_node("MatMul", ["x", "W"], ["h"]),
                                       helper.make_node("Mul", ["h", "c"], ["y"])], [Wi]),
        "constant value_floats": model([helper.make_node("Constant", [], ["c"], value_floats=[2.0, 3.0]),
                                        helper.make_node("MatMul", ["x", "W"], ["h"]),
                                        helper.make_node("Mul", ["h", "c"], ["y"])], [Wi]),
        "constant without attribute": model([helper.make_node("Constant", [], ["c"]),
                                             helper.make_node("MatMul", ["x", "W"], ["h"]),
                                             helper.make_node("Add", ["h", "c"], ["y"])], [Wi]),
        "constant value_string": model([helper.make_node("Constant", [], ["c"], value_string="abc"),
                                        helper.make_node("MatMul", ["x", "W"], ["h"]),
                                        helper.make_node("Add", ["h", "c"], ["y"])], [Wi]),
        "constant value_int": model([helper.make_node("Constant", [], ["c"], value_int=3),
                                     helper.make_node("MatMul", ["x", "W"], ["h"]),
                                     helper.make_node("Add", ["h", "c"], ["y"])], [Wi]),
        "string initializer": model([helper.make_node("MatMul", ["x", "S"], ["y"])],
                                    [helper.make_tensor("S", TensorProto.STRING, [3, 2], [b"a"] * 6)]),
        "bool initializer": model([helper.make_node("MatMul", ["x", "S"], ["y"])],
                                  [numpy_helper.from_array(np.ones((3, 2), dtype=bool), "S")]),
        "input dim 0": model([mm], [Wi], in_dims=(1, 0)),
        "input dim 1e9": model([helper.make_node("MatMul", ["x", "W"], ["y"])], [Wi], in_dims=(1, 1_000_000_000)),
        "input dim 40000": model([helper.make_node("MatMul", ["x", "W"], ["y"])], [Wi], in_dims=(1, 40000)),
        "input dims 1x200x200": model([helper.make_node("Flatten", ["x"], ["f"]),
                                       helper.make_node("MatMul", ["f", "W"], ["y"])], [Wi], in_dims=(1, 200, 200)),
        "input symbolic dim": model([mm], [Wi], inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                       ["N", "M"])]),
        "input no shape": model([mm], [Wi], inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, None)]),
        "custom domain op": model([helper.make_node("MatMul", ["x", "W"], ["h"]),
                                   helper.make_node("Foo", ["h"], ["y"], domain="com.example")], [Wi],
                                  opsets=(("", 13), ("com.example", 1))),
        "Tanh in custom domain": model([helper.make_node("MatMul", ["x", "W"], ["h"]),
                                        helper.make_node("Tanh", ["h"], ["y"], domain="ai.custom")], [Wi],
                                       opsets=(("", 13), ("ai.custom", 1))),
        "cycle": model([helper.make_node("MatMul", ["x", "W"], ["a"]), helper.make_node("Add", ["a", "b"], ["c"]),
                        helper.make_node("Relu", ["c"], ["b"]), helper.make_node("Identity", ["b"], ["y"])], [Wi]),
        "self loop": model([helper.make_node("Add", ["x", "y"], ["y"])], [], out_dims=(1, 3)),
        "missing input": model([helper.make_node("MatMul", ["x", "NOPE"], ["y"])], []),
        "missing node output": model([helper.make_node("MatMul", ["x", "W"], ["h"])], []),
        "two graph inputs": model([helper.make_node("Add", ["x", "z"], ["y"])], [],
                                  inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3]),
                                          helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 3])],
                                  out_dims=(1, 3)),
        "no nodes": model([], [], out_dims=(1, 3)),
        "empty op_type": model([helper.make_node("", ["x"], ["y"])], [], out_dims=(1, 3)),
        "Gemm transA": model([helper.make_node("Gemm", ["x", "W"], ["y"], transA=1)], [Wi]),
        "MatMul 3-D weight": model([helper.make_node("MatMul", ["x", "W3"], ["y"])],
                                   [numpy_helper.from_array(np.ones((2, 3, 2), np.float32), "W3")]),
        "MatMul shape mismatch": model([helper.make_node("MatMul", ["x", "W5"], ["y"])],
                                       [numpy_helper.from_array(np.ones((5, 2), np.float32), "W5")]),
        "Add bad broadcast": model([helper.make_node("MatMul", ["x", "W"], ["h"]),
                                    helper.make_node("Add", ["h", "B"], ["y"])],
                                   [Wi, numpy_helper.from_array(np.ones((7,), np.float32), "B")]),
        "Div by zero constant": model([helper.make_node("MatMul", ["x", "W"], ["h"]),
                                       helper.make_node("Div", ["h", "Z"], ["y"])],
                                      [Wi, numpy_helper.from_array(np.zeros((2,), np.float32), "Z")]),
        "NaN initializer": model([helper.make_node("MatMul", ["x", "Wn"], ["y"])],
                                 [numpy_helper.from_array(np.full((3, 2), np.nan, np.float32), "Wn")]),
        "inf in Mul": model([helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Mul", ["h", "I"], ["y"])],
                            [Wi, numpy_helper.from_array(np.array([np.inf, 1], np.float32), "I")]),
        "Reshape invalid": model([helper.make_node("Reshape", ["x", "s"], ["r"]),
                                  helper.make_node("MatMul", ["r", "W"], ["y"])],
                                 [Wi, numpy_helper.from_array(np.array([5, 7], np.int64), "s")]),
        "Flatten axis 5": model([helper.make_node("Flatten", ["x"], ["f"], axis=5),
                                 helper.make_node("MatMul", ["f", "W"], ["y"])], [Wi]),
        "Conv node": model([helper.make_node("Conv", ["x", "W"], ["y"])], [Wi]),
        "opset 1": model([mm], [Wi], opsets=(("", 1),)),
        "ir_version 999": model([mm], [Wi], ir=999),
        "LeakyRelu alpha nan": model([helper.make_node("MatMul", ["x", "W"], ["h"]),
                                      helper.make_node("LeakyRelu", ["h"], ["y"], alpha=float("nan"))], [Wi]),
        "Gemm alpha inf": model([helper.make_node("Gemm", ["x", "W"], ["y"], alpha=float("inf"))], [Wi]),
        "output not produced": model([helper.make_node("MatMul", ["x", "W"], ["h"])], [Wi]),
        "graph output is input": model([helper.make_node("MatMul", ["x", "W"], ["h"])], [Wi],
                                       outputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])]),
        "10000 Identity nodes": model([helper.make_node("Identity", ["x" if i == 0 else f"i{i - 1}"], [f"i{i}"])
                                       for i in range(10000)] + [helper.make_node("MatMul", ["i9999", "W"], ["y"])], [Wi]),
        "3000 Relu nodes": model([helper.make_node("MatMul", ["x", "W"], ["r0"])] +
                                 [helper.make_node("Relu", [f"r{i}"], [f"r{i + 1}"]) for i in range(3000)] +
                                 [helper.make_node("Identity", ["r3000"], ["y"])], [Wi]),
    }
    # raw data of the wrong length
    bad = numpy_helper.from_array(W, "W")
    bad.raw_data = bad.raw_data[:-4]
    specs["initializer raw_data too short"] = model([mm], [bad])
    ext = numpy_helper.from_array(W, "W")
    ext.ClearField("raw_data")
    ext.data_location = onnx.TensorProto.EXTERNAL
    e = ext.external_data.add()
    e.key, e.value = "location", "missing_weights.bin"
    specs["external data missing"] = model([mm], [ext])
    ext2 = numpy_helper.from_array(W, "W")
    ext2.ClearField("raw_data")
    ext2.data_location = onnx.TensorProto.EXTERNAL
    e = ext2.external_data.add()
    e.key, e.value = "location", "../../../../../../etc/passwd"
    specs["external data path traversal"] = model([mm], [ext2])
    # graphs (residual / max pooling / indexing): compiled by the graph loader (io/onnx_graph.py)
    img = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 6, 6])]
    anyout = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    i64 = lambda name, *v: numpy_helper.from_array(np.array(v, np.int64), name)  # noqa: E731
    relu = helper.make_node("Relu", ["x"], ["r"])
    graph_specs = {
        "graph MaxPool 9x9 window": [helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[9, 9])],
        "graph MaxPool window in padding": [helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2],
                                                             pads=[3, 3, 3, 3])],
        "graph MaxPool Indices output": [helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2])],
        "graph MaxPool kernel 0": [helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[0, 2])],
        "graph Mul of two data tensors": [relu, helper.make_node("Mul", ["x", "r"], ["y"])],
        "graph Concat along the batch axis": [relu, helper.make_node("Concat", ["x", "r"], ["y"], axis=0)],
        "graph valid Concat along H": [relu, helper.make_node("Concat", ["x", "r"], ["y"], axis=2)],
        "graph Add of different shapes": [helper.make_node("MaxPool", ["x"], ["m"], kernel_shape=[2, 2]),
                                          helper.make_node("Add", ["m", "x"], ["y"])],
        "graph tanh residual": [helper.make_node("Tanh", ["x"], ["t"]), helper.make_node("Add", ["x", "t"], ["a"]),
                                helper.make_node("Tanh", ["a"], ["b"]), helper.make_node("Add", ["b", "x"], ["y"])],
        "graph leaky(-1) residual": [helper.make_node("LeakyRelu", ["x"], ["t"], alpha=-1.0),
                                     helper.make_node("Add", ["x", "t"], ["a"]),
                                     helper.make_node("LeakyRelu", ["a"], ["b"], alpha=-1.0),
                                     helper.make_node("Add", ["b", "x"], ["y"])],
        "graph empty Slice": [helper.make_node("Slice", ["x", "s3", "e1", "a2"], ["y"])],
        "graph Slice axis 7": [helper.make_node("Slice", ["x", "s0", "e1", "a7"], ["y"])],
        "graph Gather out of range": [helper.make_node("Gather", ["x", "i5"], ["y"], axis=1)],
        "graph Transpose repeated axis": [helper.make_node("Transpose", ["x"], ["y"], perm=[0, 0, 1, 2])],
        "graph valid ResNet-like block": [relu, helper.make_node("MaxPool", ["r"], ["m"], kernel_shape=[2, 2]),
                                          helper.make_node("Relu", ["m"], ["q"]), helper.make_node("Add", ["q", "m"], ["y"])],
    }
    graph_inits = [i64("s3", 3), i64("e1", 1), i64("a2", 2), i64("s0", 0), i64("a7", 7), i64("i5", 5)]
    for name, nodes in graph_specs.items():
        used = {i for n in nodes for i in n.input}
        specs[name] = model(nodes, [t for t in graph_inits if t.name in used], inputs=img, outputs=anyout)
    cases = []
    valid_ok = {"constant value_float", "constant value_floats", "input dims 1x200x200", "10000 Identity nodes", "3000 Relu nodes",
                "opset 1", "input symbolic dim", "graph valid ResNet-like block", "graph valid Concat along H"}
    for k, (name, m) in enumerate(specs.items()):
        p = os.path.join(d, f"odd_{k:02d}.onnx")
        with open(p, "wb") as fh:
            fh.write(m.SerializeToString())
        cases.append(Case(f"onnx-odd/{name}", ["info", p], "either" if name in valid_ok else "error", [p]))
    return cases


# =========================================================================================== .nnet
def nnet_cases(d) -> list[Case]:
    good = ["// c", "2,2,1,3,", "2,3,1,", "0,", "-1,-1,", "1,1,", "0,0,0,", "1,1,1,",
            "1,2,", "3,4,", "5,6,", "0.1,", "0.2,", "0.3,", "1,1,1,", "0.5,"]
    variants = {
        "NaN weight": (4 + 4, "nan,2,"), "inf weight": (4 + 4, "inf,2,"), "-inf bias": (11, "-inf,"),
        "negative sizes": (2, "2,-3,1,"), "zero layers": (1, "0,2,1,3,"), "negative layers": (1, "-2,2,1,3,"),
        "non-integer size": (2, "2,2.5,1,"), "huge width": (2, "2,1000000000,1,"), "huge layer count": (1, "1000000000,2,1,3,"),
        "sizes disagree": (2, "3,3,1,"), "zero range": (7, "0,1,1,"), "NaN mean": (6, "nan,0,0,"),
        "text in numbers": (8, "1,abc,"), "1e400 weight": (8, "1e400,2,"), "missing line": (9, None),
        "extra data": (None, "7,"), "binary garbage": (5, "\x00\x01\x02\xff"),
    }
    cases = []
    for k, (name, (idx, repl)) in enumerate(variants.items()):
        lines = list(good)
        if idx is None:
            lines.append(repl)
        elif repl is None:
            del lines[idx]
        else:
            lines[idx] = repl
        p = os.path.join(d, f"bad_{k:02d}.nnet")
        with open(p, "w", encoding="latin-1") as fh:
            fh.write("\n".join(lines) + "\n")
        cases.append(Case(f"nnet-bad/{name}", ["info", p], "error", [p]))
    for name, content in {"empty": b"", "only comments": b"// a\n// b\n", "latin-1 bytes": b"\xe9\xe8\n2,2,1\n",
                          "10 MB line": b"1," * 5_000_000 + b"\n", "utf-16": "2,2,1,3,\n".encode("utf-16")}.items():
        p = os.path.join(d, f"bad_{name.replace(' ', '_')}.nnet")
        with open(p, "wb") as fh:
            fh.write(content)
        cases.append(Case(f"nnet-bad/{name}", ["info", p], "error", [p]))
    return cases


# =========================================================================================== .mat
def mat_cases(d) -> list[Case]:
    import scipy.io

    r = np.random.default_rng(50)

    def cell(*arrs):
        c = np.empty(len(arrs), dtype=object)
        for i, a in enumerate(arrs):
            c[i] = a
        return c

    W0, W1 = r.normal(size=(4, 3)), r.normal(size=(2, 4))
    specs = {
        "weights is a string": {"weights": "hello"},
        "cell of strings": {"weights": cell("a", "b")},
        "struct": {"weights": {"a": W0, "b": W1}},
        "cell of cells": {"weights": cell(cell(W0), cell(W1))},
        "empty cell": {"weights": np.empty(0, dtype=object)},
        "3-D weight": {"weights": cell(np.ones((2, 3, 4)), W1)},
        "biases count mismatch": {"weights": cell(W0, W1), "biases": cell(np.ones(4))},
        "bias length mismatch": {"weights": cell(W0, W1), "biases": cell(np.ones(5), np.ones(2))},
        "complex weights": {"weights": cell(W0 + 1j, W1)},
        "NaN weight": {"weights": cell(np.full((4, 3), np.nan), W1)},
        "shape mismatch": {"weights": cell(W0, r.normal(size=(2, 5)))},
        "logical weights": {"weights": cell(W0 > 0, W1 > 0)},
        "char matrix W": {"W": np.array(["abc", "def"])},
        "no weights key": {"foo": W0},
        "sparse weight": {"weights": cell(__import__("scipy.sparse", fromlist=["csr_matrix"]).csr_matrix(W0), W1)},
        "biases is a struct": {"weights": cell(W0, W1), "biases": {"x": 1}},
    }
    cases = []
    for k, (name, dct) in enumerate(specs.items()):
        p = os.path.join(d, f"bad_{k:02d}.mat")
        try:
            scipy.io.savemat(p, dct)
        except Exception:
            continue
        cases.append(Case(f"mat-bad/{name}", ["info", p], "either" if name == "logical weights" else "error", [p]))
    p = os.path.join(d, "v4.mat")
    scipy.io.savemat(p, {"W": W0}, format="4")
    cases.append(Case("mat-bad/v4 format single matrix", ["info", p], "either", [p]))
    p = os.path.join(d, "not_a_mat.mat")
    with open(p, "wb") as fh:
        fh.write(b"MATLAB 5.0 MAT-file" + b"\x00" * 200)
    cases.append(Case("mat-bad/header only", ["info", p], "error", [p]))
    return cases


# =========================================================================================== .npz
def npz_cases(d) -> list[Case]:
    r = np.random.default_rng(60)
    W0, b0, W1, b1 = r.normal(size=(4, 3)), r.normal(size=4), r.normal(size=(2, 4)), r.normal(size=2)
    base = {"W0": W0, "b0": b0, "W1": W1, "b1": b1}

    def acts(x):
        return {"activations": np.array(x if isinstance(x, str) else json.dumps(x))}

    specs = {
        "string weights": {**base, "W0": np.array([["a"] * 3] * 4)},
        "object weights": None,  # written by hand below (needs pickle)
        "complex bias": {**base, "b0": b0 + 1j},
        "bool weights": {**base, "W0": W0 > 0},
        "3-D weight": {**base, "W0": np.ones((4, 3, 2))},
        "1-D weight": {**base, "W0": np.ones(3)},
        "bias wrong length": {**base, "b0": np.ones(7)},
        "shape mismatch": {**base, "W1": np.ones((2, 5))},
        "NaN weight": {**base, "W1": np.full((2, 4), np.nan)},
        "inf bias": {**base, "b1": np.array([np.inf, 0])},
        "empty weight": {**base, "W0": np.ones((0, 3)), "W1": np.ones((2, 0))},
        "no W0 (only W1)": {"W1": W1, "b1": b1},
        "activations not JSON": {**base, **acts("relu relu")},
        "activations JSON dict": {**base, **acts({"type": "relu"})},
        "activations list of strings": {**base, **acts(["relu"])},
        "activations list of numbers": {**base, **acts([1])},
        "activation without type": {**base, **acts([{"negative_slope": 0.1}])},
        "unknown activation type": {**base, **acts([{"type": "swish"}])},
        "too many activations": {**base, **acts([{"type": "relu"}, {"type": "relu"}])},
        "too few activations": {**base, **acts([])},
        "groupsort size 0": {**base, **acts([{"type": "groupsort", "group_size": 0}])},
        "groupsort size -2": {**base, **acts([{"type": "groupsort", "group_size": -2}])},
        "groupsort size 3 on width 4": {**base, **acts([{"type": "groupsort", "group_size": 3}])},
        "groupsort size '2' (string)": {**base, **acts([{"type": "groupsort", "group_size": "2"}])},
        "groupsort size 2.5": {**base, **acts([{"type": "groupsort", "group_size": 2.5}])},
        "groupsort size 1e9": {**base, **acts([{"type": "groupsort", "group_size": 1000000000}])},
        "leaky slope string": {**base, **acts([{"type": "leaky_relu", "negative_slope": "abc"}])},
        "leaky slope NaN": {**base, **acts('[{"type": "leaky_relu", "negative_slope": NaN}]')},
        "leaky slope Infinity": {**base, **acts('[{"type": "leaky_relu", "negative_slope": Infinity}]')},
        "leaky slope null": {**base, **acts([{"type": "leaky_relu", "negative_slope": None}])},
        "leaky slope list": {**base, **acts([{"type": "leaky_relu", "negative_slope": [0.1]}])},
        "householder v wrong length": {**base, **acts([{"type": "householder", "v": [1.0, 0.0, 0.0]}])},
        "householder v zero": {**base, **acts([{"type": "householder", "v": [0.0, 0.0]}])},
        "householder v missing": {**base, **acts([{"type": "householder"}])},
        "householder v NaN": {**base, **acts('[{"type": "householder", "v": [NaN, 1.0]}]')},
        "activations 2-D array": {**base, "activations": np.array([["relu"]])},
        "activations as number": {**base, "activations": np.array(3.0)},
        "input_lower wrong length": {**base, "input_lower": np.zeros(5), "input_upper": np.ones(5)},
        "input_lower > input_upper": {**base, "input_lower": np.ones(3), "input_upper": np.zeros(3)},
        "input_lower NaN": {**base, "input_lower": np.full(3, np.nan), "input_upper": np.ones(3)},
        "input_lower string": {**base, "input_lower": np.array(["a", "b", "c"]), "input_upper": np.ones(3)},
        "input_upper without lower": {**base, "input_upper": np.ones(3)},
    }
    npz_either = {"input_upper without lower", "bool weights"}  # unambiguous functions: may be accepted
    cases = []
    for k, (name, dct) in enumerate(specs.items()):
        p = os.path.join(d, f"bad_{k:02d}.npz")
        if dct is None:
            np.savez(p, W0=np.array([W0, "x"], dtype=object), b0=b0, W1=W1, b1=b1)
        else:
            np.savez(p, **dct)
        cases.append(Case(f"npz-bad/{name}", ["info", p], "either" if name in npz_either else "error", [p]))
    # a .npy header claiming a huge shape with tiny data
    p = os.path.join(d, "huge_header.npz")
    hdr_big = np.lib.format.header_data_from_array_1_0(np.zeros((2, 3)))
    hdr_big["shape"] = (200000, 300000)
    b2 = io.BytesIO()
    np.lib.format.write_array_header_1_0(b2, hdr_big)
    b3 = io.BytesIO()
    np.lib.format.write_array(b3, W1)
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("W0.npy", b2.getvalue() + b"\x00" * 48)
        z.writestr("W1.npy", b3.getvalue())
    cases.append(Case("npz-bad/npy header with huge shape", ["info", p], "error", [p]))
    p = os.path.join(d, "zip_bomb_like.npz")
    with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED) as z:
        bufz = io.BytesIO()
        np.lib.format.write_array(bufz, np.zeros((4000, 4000)))  # 128 MB of zeros, compresses to ~130 KB
        z.writestr("W0.npy", bufz.getvalue())
        del bufz
        z.writestr("W1.npy", b"")
    cases.append(Case("npz-bad/128 MB compressed zeros + empty W1", ["info", p], "error", [p]))
    p = os.path.join(d, "not_npy_members.npz")
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("W0.npy", b"this is not a npy file")
    cases.append(Case("npz-bad/member is not .npy", ["info", p], "error", [p]))
    return cases


# =========================================================================================== VNN-LIB
def vnnlib_cases(d, model: str, extra: list) -> list[Case]:
    head = [f"(declare-const X_{i} Real)" for i in range(3)] + [f"(declare-const Y_{j} Real)" for j in range(2)]
    box = []
    for i in range(3):
        box += [f"(assert (>= X_{i} -1))", f"(assert (<= X_{i} 1))"]
    body = "\n".join(head + box)
    bad = {
        "unbalanced ) ": body + "\n(assert (<= Y_0 1)))\n",
        "unbalanced (": body + "\n(assert (<= Y_0 1)\n",
        "X_0 and X_00": body + "\n(declare-const X_00 Real)\n(assert (<= Y_0 1))\n",
        "undeclared Y_7": body + "\n(assert (<= Y_7 1))\n",
        "undeclared name foo": body + "\n(assert (<= foo 1))\n",
        "NaN constant": body + "\n(assert (<= Y_0 nan))\n",
        "NaN constant (NaN)": body + "\n(assert (<= Y_0 NaN))\n",
        "inf constant": body + "\n(assert (<= Y_0 inf))\n",
        "1e400 constant": body + "\n(assert (<= Y_0 1e400))\n",
        "inf - inf": body + "\n(assert (<= Y_0 (- (* 1e200 1e200) (* 1e200 1e200))))\n",
        "1e200*1e200 coefficient": body + "\n(assert (<= (* (* 1e200 1e200) Y_0) 1))\n",
        "0 * inf coefficient": body + "\n(assert (<= (* 0 (* 1e200 1e200) Y_0) 1))\n",
        "input bound inf": "\n".join(head) + "\n(assert (>= X_0 -1))\n(assert (<= X_0 (* 1e200 1e200)))\n"
                           "(assert (>= X_1 -1))(assert (<= X_1 1))(assert (>= X_2 -1))(assert (<= X_2 1))\n"
                           "(assert (<= Y_0 1))\n",
        "lower > upper box": "\n".join(head) + "\n(assert (>= X_0 1))\n(assert (<= X_0 -1))\n"
                             "(assert (>= X_1 -1))(assert (<= X_1 1))(assert (>= X_2 -1))(assert (<= X_2 1))\n"
                             "(assert (<= Y_0 1))\n",
        "unbounded input": "\n".join(head) + "\n(assert (>= X_0 -1))\n(assert (<= Y_0 1))\n",
        "general input polytope": body + "\n(assert (<= (+ X_0 X_1) 1))\n(assert (<= Y_0 1))\n",
        "mixed X and Y": body + "\n(assert (<= (+ X_0 Y_1) 1))\n",
        "nonlinear product": body + "\n(assert (<= (* Y_0 Y_1) 1))\n",
        "division by zero": body + "\n(assert (<= (/ Y_0 0) 1))\n",
        "not": body + "\n(assert (not (<= Y_0 1)))\n",
        "Int sort": body.replace("(declare-const X_0 Real)", "(declare-const X_0 Int)") + "\n(assert (<= Y_0 1))\n",
        "Z_0 variable": body + "\n(declare-const Z_0 Real)\n(assert (<= Y_0 1))\n",
        "empty assert": body + "\n(assert)\n",
        "one-argument <=": body + "\n(assert (<= Y_0))\n",
        "unknown command push": body + "\n(push 1)\n(assert (<= Y_0 1))\n",
        "unterminated string": body + '\n(set-info :source "abc)\n(assert (<= Y_0 1))\n',
        "empty file": "",
        "only declarations": "\n".join(head) + "\n",
        "no assert on outputs (no Y declared)": "\n".join(head[:3] + box) + "\n",
        "X gap (X_0, X_2)": body.replace("(declare-const X_1 Real)", "").replace("(assert (>= X_1 -1))", "")
        .replace("(assert (<= X_1 1))", "") + "\n(assert (<= Y_0 1))\n",
        "too many inputs for the model": "\n".join(head) + "\n(declare-const X_3 Real)\n" + "\n".join(box) +
        "\n(assert (>= X_3 0))(assert (<= X_3 1))\n(assert (<= Y_0 1))\n",
        "too few outputs for the model": body.replace("(declare-const Y_1 Real)", "") + "\n(assert (<= Y_0 1))\n",
        "DNF explosion 2^40": body + "\n(assert (and " + " ".join("(or (<= Y_0 1) (>= Y_1 2))" for _ in range(40)) + "))\n",
        "latin-1 bytes": None,
        "token outside parens": body + "\nassert\n",
        "declare twice": body + "\n(declare-const Y_0 Real)\n",
    }
    deep = body + "\n(assert " + "(and " * 3000 + "(<= Y_0 -1000000)" + ")" * 3000 + ")\n"
    many = body + "\n" + "(assert (<= Y_0 1000000000))\n" * 200_000
    valid = {
        "BOM": "\ufeff" + body + "\n(assert (<= Y_0 -1000000))\n",
        "CRLF line endings": (body + "\n(assert (<= Y_0 -1000000))\n").replace("\n", "\r\n"),
        "tabs and comments": "; comment\n" + body.replace(" ", "\t") + "\n(assert (<= Y_0 -1000000)) ; end\n",
        "declare-fun, set-logic, check-sat": "(set-logic QF_LRA)\n" + body.replace("declare-const X_0 Real",
                                                                                   "declare-fun X_0 () Real")
        + "\n(assert (<= Y_0 -1000000))\n(check-sat)\n(get-model)\n(exit)\n",
        "UTF-8 comment": "; température ≤ 3 — ok\n" + body + "\n(assert (<= Y_0 -1000000))\n",
        "exponent and sign forms": body.replace("(assert (<= X_0 1))", "(assert (<= X_0 +1.0e0))") +
        "\n(assert (<= Y_0 -1E6))\n",
    }
    cases = []
    for k, (name, text) in enumerate(bad.items()):
        p = os.path.join(d, f"bad_{k:02d}.vnnlib")
        with open(p, "wb") as fh:
            if text is None:
                fh.write((body + "\n; caf\xe9\n(assert (<= Y_0 1))\n").encode("utf-8").replace(b"\xc3\xa9", b"\xe9"))
            else:
                fh.write(text.encode("utf-8"))
        exp = "error"
        cases.append(Case(f"vnnlib-bad/{name}", ["verify", model, p, "--timeout", "5", *extra], exp, [model, p]))
    for k, (name, text) in enumerate({"3000-deep nesting": deep, "200k asserts (~5 MB)": many}.items()):
        p = os.path.join(d, f"big_{k}.vnnlib")
        with open(p, "w") as fh:
            fh.write(text)
        cases.append(Case(f"vnnlib-big/{name}", ["verify", model, p, "--timeout", "5", *extra], "either", [model, p]))
    for k, (name, text) in enumerate(valid.items()):
        p = os.path.join(d, f"valid_{k:02d}.vnnlib")
        with open(p, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        cases.append(Case(f"vnnlib-valid/{name}", ["verify", model, p, "--timeout", "5", *extra], "valid", [model, p]))
        if name in ("UTF-8 comment", "BOM"):
            cases.append(Case(f"vnnlib-valid/{name} under LC_ALL=C", ["verify", model, p, "--timeout", "5", *extra],
                              "valid", [model, p], env={"LC_ALL": "C", "LANG": "C"}))
    p = os.path.join(d, "prop_is_dir.vnnlib")
    os.makedirs(p, exist_ok=True)
    cases.append(Case("vnnlib-bad/property is a directory", ["verify", model, p], "error", [model]))
    cases.append(Case("vnnlib-bad/missing property file", ["verify", model, os.path.join(d, "nope.vnnlib")], "error",
                      [model]))
    return cases


# =========================================================================================== CLI options
def cli_cases(d, models, prop) -> list[Case]:
    npz = models["npz"][0]
    sd, sd_extra = models["statedict"]
    conv = models["conv"][0]
    strings = os.path.join(d, "center_strings.npy")
    np.save(strings, np.array(["a", "b", "c"]))
    cplx = os.path.join(d, "center_complex.npy")
    np.save(cplx, np.array([1 + 1j, 0, 0]))
    objnpy = os.path.join(d, "center_object.npy")
    np.save(objnpy, np.array([1, "a", None], dtype=object), allow_pickle=True)
    adir = os.path.join(d, "a_directory")
    os.makedirs(adir, exist_ok=True)
    emptyf = {ext: os.path.join(d, f"empty{ext}") for ext in (".onnx", ".npz", ".pt", ".nnet", ".mat")}
    for p in emptyf.values():
        open(p, "wb").close()
    txt = os.path.join(d, "model.txt")
    with open(txt, "w") as fh:
        fh.write("not a model\n")
    V = ["verify", npz, prop, "--timeout", "5"]
    L = ["lipschitz", npz]
    LL = ["local-lipschitz", npz, "--center", "0", "--eps", "0.1"]
    specs = {
        "--input-shape a,b": ["info", conv, "--input-shape", "a,b"],
        "--input-shape 1,5": ["info", conv, "--input-shape", "1,5"],
        "--input-shape -1,2,2": ["info", conv, "--input-shape", "-1,2,2"],
        "--input-shape 0,1,1": ["info", conv, "--input-shape", "0,1,1"],
        "--input-shape 100000,100000,100000": ["info", conv, "--input-shape", "100000,100000,100000"],
        "--input-shape 2,4,4 (wrong channels)": ["info", conv, "--input-shape", "2,4,4"],
        "--input-shape 1,4,4,4": ["info", conv, "--input-shape", "1,4,4,4"],
        "--input-shape empty": ["info", conv, "--input-shape", ","],
        "--seed -1": [*V, "--seed", "-1"],
        "--seed 2**70": [*V, "--seed", str(2 ** 70)],
        "--result-file in missing directory": [*V, "--result-file", os.path.join(d, "no_such_dir", "r.txt")],
        "--result-file is a directory": [*V, "--result-file", adir],
        "--center .npy of strings": ["local-lipschitz", npz, "--center", strings, "--eps", "0.1"],
        "--center .npy complex": ["local-lipschitz", npz, "--center", cplx, "--eps", "0.1"],
        "--center .npy object (pickle)": ["local-lipschitz", npz, "--center", objnpy, "--eps", "0.1"],
        "--center wrong length": ["local-lipschitz", npz, "--center", "1,2", "--eps", "0.1"],
        "--center nan": ["local-lipschitz", npz, "--center", "nan", "--eps", "0.1"],
        "--center inf": ["local-lipschitz", npz, "--center", "0,inf,0", "--eps", "0.1"],
        "--center garbage": ["local-lipschitz", npz, "--center", "x,y,z", "--eps", "0.1"],
        "--center directory": ["local-lipschitz", npz, "--center", adir, "--eps", "0.1"],
        "--eps nan": ["local-lipschitz", npz, "--center", "0", "--eps", "nan"],
        "--eps -1": ["local-lipschitz", npz, "--center", "0", "--eps", "-1"],
        "--eps inf": ["local-lipschitz", npz, "--center", "0", "--eps", "inf"],
        "--eps abc": ["local-lipschitz", npz, "--center", "0", "--eps", "abc"],
        "--timeout -1 (verify)": [*V[:-2], "--timeout", "-1"],
        "--timeout nan (verify)": [*V[:-2], "--timeout", "nan"],
        "--timeout -5 (local --bab)": [*LL, "--bab", "--timeout", "-5"],
        "--timeout nan (local --bab)": [*LL, "--bab", "--timeout", "nan"],
        "lipschitz --method foo": [*L, "--method", "foo"],
        "verify --method foo": [*V, "--method", "foo"],
        "lipschitz --norm 3": [*L, "--norm", "3"],
        "lipschitz --norm 1": [*L, "--norm", "1"],
        "lipschitz --output 99": [*L, "--output", "99"],
        "lipschitz --output -1": [*L, "--output", "-1"],
        "lipschitz --output 0-0": [*L, "--output", "0-0"],
        "lipschitz --output 1-2-3": [*L, "--output", "1-2-3"],
        "lipschitz --output a": [*L, "--output", "a"],
        "lipschitz --output 0-99": [*L, "--output", "0-99"],
        "local-lipschitz --output 99": [*LL, "--output", "99"],
        "local-lipschitz --output -1": [*LL, "--output", "-1"],
        "local-lipschitz --relaxation foo": [*LL, "--relaxation", "foo"],
        "lipschitz --solver FOO": [*L, "--method", "lipsdp-neuron", "--solver", "FOO"],
        "--arch foo": ["info", sd, "--arch", "foo"],
        "--arch count mismatch": ["info", sd, "--arch", "relu,tanh,relu,relu,relu"],
        "--arch leaky_relu(nan)": ["info", sd, "--arch", "leaky_relu(nan)"],
        "--arch leaky_relu(inf)": ["info", sd, "--arch", "leaky_relu(inf)"],
        "--arch groupsort(0)": ["info", sd, "--arch", "groupsort(0)"],
        "--arch groupsort(-2)": ["info", sd, "--arch", "groupsort(-2)"],
        "--arch groupsort(3) on width 4": ["info", sd, "--arch", "groupsort(3)"],
        "--arch empty": ["info", sd, "--arch", ""],
        "--arch ,,,": ["info", sd, "--arch", ",,,"],
        "missing model file": ["info", os.path.join(d, "nope.onnx")],
        "model is a directory": ["info", adir],
        "unknown extension .txt": ["info", txt],
        "empty .onnx": ["info", emptyf[".onnx"]],
        "empty .npz": ["info", emptyf[".npz"]],
        "empty .pt": ["info", emptyf[".pt"]],
        "empty .nnet": ["info", emptyf[".nnet"]],
        "empty .mat": ["info", emptyf[".mat"]],
        "no command": [],
        "unknown command": ["foo"],
        "lipschitz without model": ["lipschitz"],
        "local-lipschitz without --eps": ["local-lipschitz", npz, "--center", "0"],
        "verify without property": ["verify", npz],
        "unknown option": ["info", npz, "--frobnicate"],
        "property dims mismatch (model with 2 inputs)": None,
    }
    either = {"--seed 2**70"}  # numpy accepts any non-negative integer seed
    cases = []
    for name, argv in specs.items():
        if argv is None:
            continue
        cases.append(Case(f"cli-bad/{name}", argv, "either" if name in either else "error",
                          [a for a in argv if isinstance(a, str) and os.path.isfile(a)]))
    return cases


# =========================================================================================== run
def judge(ctx, case: Case, run) -> list[tuple[str, str]]:
    cmd = case.argv[0] if case.argv else ""
    normal = NORMAL_RC.get(cmd, {0})
    if run.timed_out:
        return [("hang", f"no answer within {LIMIT:g} s")]
    if case.expect == "error":
        if run.rc in normal and "Traceback (most recent call last)" not in run.stderr:
            iss = [("wrong_exit", f"accepted (exit {run.rc}), expected a refusal (exit 2)")] + [
                i for i in success_issues(run, normal, LIMIT) if i[0] != "wrong_exit"]
        else:
            iss = error_issues(run, LIMIT)
    elif case.expect == "valid":
        iss = success_issues(run, normal, LIMIT)
        if run.rc == 2 and iss:
            first = (run.stderr.strip().splitlines() or [""])[0]
            iss = [("wrong_exit", f"valid input rejected: {first[:120]}")] + [i for i in iss if i[0] != "wrong_exit"]
    else:
        if run.rc == 2:
            iss = error_issues(run, LIMIT)
        else:
            iss = success_issues(run, normal, LIMIT)
    if not iss and run.seconds > SLOW:
        iss = [("hang", f"slow: {run.seconds:.1f} s (> {SLOW:g} s)")]
    return iss


def run(ctx) -> None:
    d = os.path.join(ctx.work, "p3")
    os.makedirs(d, exist_ok=True)
    models, prop = base_models(ctx, d)
    prof = ctx.profile
    cases: list[Case] = []
    cases += cli_cases(os.path.join(d), models, prop)
    cases += vnnlib_cases(d, *models["npz"])
    cases += onnx_cases(d)
    cases += nnet_cases(d)
    cases += mat_cases(d)
    cases += npz_cases(d)
    cases += mutations(ctx, d, models, prop, prof["p3_flips"], prof["p3_truncs"])
    # interleave so that a time-out of the part still covers every class
    by_cls = defaultdict(list)
    for c in cases:
        by_cls[c.cls.split("/")[0]].append(c)
    order = []
    while any(by_cls.values()):
        for k in list(by_cls):
            if by_cls[k]:
                order.append(by_cls[k].pop(0))
    per = ctx.p3_table
    for i, case in enumerate(order):
        if ctx.out_of_time(PART):
            ctx.camp.skipped[PART] += len(order) - i
            break
        mode = "exec" if (case.env or (prof["p3_exec_every"] and i % prof["p3_exec_every"] == 0)) else "fork"
        run_ = ctx.runner.run(case.argv, timeout=LIMIT, mode=mode, env=case.env)
        ctx.camp.case(PART)
        iss = judge(ctx, case, run_)
        top = case.cls.split("/")[0]
        ctx.camp.tally("p3 CLI seconds by input class", top, round(run_.seconds, 2))
        per[top]["cases"] += 1
        if not iss:
            per[top]["ok"] += 1
            continue
        for cat, det in iss:
            per[top][cat] += 1
            # failure class: input class + what went wrong (exception type / first words)
            what = det.split(":")[0] if cat != "traceback" else det.split(":")[0].split(".")[-1]
            ctx.camp.fail(PART, cat, f"{case.cls}:{what[:60]}",
                          f"[{case.cls}] {case.why + ': ' if case.why else ''}{det}", run_, case.files,
                          {"input class": case.cls, "expected": case.expect})
