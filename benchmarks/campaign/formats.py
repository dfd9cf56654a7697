"""Writers for every model format, written with the formats' own libraries (onnx.helper, torch, scipy.io,
numpy, plain text), and independent reference evaluators (onnxruntime, torch).  Nothing imports the toolkit.

Every writer returns ``(stored, extra_args)``: ``stored`` is the :class:`nets.Net` whose weights are exactly
what the file holds (float32 roundings for float32 files) -- the ground truth -- and ``extra_args`` the
loader options the CLI needs (``--arch``)."""

from __future__ import annotations

import numpy as np

from nets import Net, act_name, npz_activation_json

FORMATS = ["npz", "onnx", "torchscript", "statedict", "nnet", "mat"]


def can_write(net: Net, fmt: str) -> bool:
    kinds = {a[0] for a in net.acts}
    if fmt in ("npz", "statedict", "mat"):
        return True
    if fmt in ("onnx", "torchscript"):
        return "groupsort" not in kinds
    if fmt == "nnet":
        return kinds <= {"relu"} and len(net.acts) >= 1
    return False


def write(net: Net, fmt: str, path: str, rng, domain=None):
    return {"npz": write_npz, "onnx": write_onnx, "torchscript": write_torchscript, "statedict": write_statedict,
            "nnet": write_nnet, "mat": write_mat}[fmt](net, path, rng, domain)


def write_npz(net: Net, path: str, rng, domain=None):
    arrays = {}
    for k, (w, b) in enumerate(zip(net.Ws, net.bs)):
        arrays[f"W{k}"] = w
        arrays[f"b{k}"] = b
    only_relu = all(a[0] == "relu" for a in net.acts)
    if not (only_relu and rng.random() < 0.3):  # ReLU is the documented default
        arrays["activations"] = np.array(npz_activation_json(net, int(rng.integers(2))))
    if domain is not None:
        arrays["input_lower"], arrays["input_upper"] = domain
    np.savez(path, **arrays)
    return net, []


def write_onnx(net: Net, path: str, rng, domain=None, dtype=None):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if dtype is None:
        dtype = np.float32 if rng.random() < 0.7 else np.float64
    stored = net.rounded(dtype)
    tp = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    nodes, inits = [], []
    cur = "input"
    use_gemm = rng.random() < 0.6
    # sometimes the first layer is written as (W (s x)) / s + b: the same real function, but a loader that
    # folds it rounds W s / s (the analysed function must still be the file's: ties must not flip)
    rescale = dtype(rng.choice([3.0, 0.3081, 7.0, 1.7])) if rng.random() < 0.35 else None
    for k, (w, b) in enumerate(zip(stored.Ws, stored.bs)):
        if k == 0 and rescale is not None:
            inits.append(numpy_helper.from_array(np.array([rescale], dtype=dtype), "S0"))
            inits.append(numpy_helper.from_array(np.ascontiguousarray(w.T.astype(dtype)), "W0"))
            inits.append(numpy_helper.from_array(b.astype(dtype), "B0"))
            nodes += [helper.make_node("Mul", [cur, "S0"], ["s0"], name="scale0"),
                      helper.make_node("MatMul", ["s0", "W0"], ["m0"], name="matmul0"),
                      helper.make_node("Div", ["m0", "S0"], ["d0"], name="unscale0"),
                      helper.make_node("Add", ["d0", "B0"], ["a0"], name="add0")]
            cur = "a0"
        elif use_gemm:
            trans = bool(rng.integers(2))
            wt = w if trans else w.T
            inits.append(numpy_helper.from_array(np.ascontiguousarray(wt.astype(dtype)), f"W{k}"))
            inits.append(numpy_helper.from_array(b.astype(dtype), f"B{k}"))
            nodes.append(helper.make_node("Gemm", [cur, f"W{k}", f"B{k}"], [f"g{k}"], transB=int(trans), name=f"gemm{k}"))
            cur = f"g{k}"
        else:
            inits.append(numpy_helper.from_array(np.ascontiguousarray(w.T.astype(dtype)), f"W{k}"))
            inits.append(numpy_helper.from_array(b.astype(dtype), f"B{k}"))
            nodes.append(helper.make_node("MatMul", [cur, f"W{k}"], [f"m{k}"], name=f"matmul{k}"))
            nodes.append(helper.make_node("Add", [f"m{k}", f"B{k}"], [f"a{k}"], name=f"add{k}"))
            cur = f"a{k}"
        if k < len(stored.acts):
            a = stored.acts[k]
            out = f"h{k}"
            if a[0] == "relu":
                nodes.append(helper.make_node("Relu", [cur], [out]))
            elif a[0] == "leaky":
                nodes.append(helper.make_node("LeakyRelu", [cur], [out], alpha=float(a[1])))
            elif a[0] == "tanh":
                nodes.append(helper.make_node("Tanh", [cur], [out]))
            elif a[0] == "sigmoid":
                nodes.append(helper.make_node("Sigmoid", [cur], [out]))
            elif a[0] == "identity":
                out = cur
            else:
                raise ValueError(a)
            cur = out
    # LeakyRelu's alpha is a float32 attribute: the function in the file uses its rounding
    acts = [(a[0], float(np.float32(a[1]))) if a[0] == "leaky" else a for a in stored.acts]
    stored = Net(stored.Ws, stored.bs, acts, stored.label)
    nodes.append(helper.make_node("Identity", [cur], ["output"]))
    graph = helper.make_graph(nodes, "campaign", [helper.make_tensor_value_info("input", tp, [1, net.in_dim])],
                              [helper.make_tensor_value_info("output", tp, [1, net.out_dim])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return stored, []


def torch_sequential(net: Net, dtype):
    import torch

    mods = []
    for k, (w, b) in enumerate(zip(net.Ws, net.bs)):
        lin = torch.nn.Linear(w.shape[1], w.shape[0], dtype=torch.float64)  # no float32 detour
        with torch.no_grad():
            lin.weight.copy_(torch.tensor(w))
            lin.bias.copy_(torch.tensor(b))
        mods.append(lin)
        if k < len(net.acts):
            a = net.acts[k]
            mods.append({"relu": lambda: torch.nn.ReLU(), "tanh": lambda: torch.nn.Tanh(),
                         "sigmoid": lambda: torch.nn.Sigmoid(), "identity": lambda: torch.nn.Identity(),
                         "leaky": lambda: torch.nn.LeakyReLU(a[1] if a[0] == "leaky" else 0.01)}[a[0]]())
    seq = torch.nn.Sequential(*mods)
    return seq.to(torch.float32 if dtype == np.float32 else torch.float64).eval()


def write_torchscript(net: Net, path: str, rng, domain=None):
    import torch

    dtype = np.float32 if rng.random() < 0.5 else np.float64
    stored = net.rounded(dtype)
    torch.jit.save(torch.jit.script(torch_sequential(stored, dtype)), path)
    return stored, []


def write_statedict(net: Net, path: str, rng, domain=None):
    import torch

    dtype = np.float32 if rng.random() < 0.5 else np.float64
    stored = net.rounded(dtype)
    td = torch.float32 if dtype == np.float32 else torch.float64
    sd = {}
    for k, (w, b) in enumerate(zip(stored.Ws, stored.bs)):
        sd[f"layers.{2 * k}.weight"] = torch.tensor(w, dtype=td)
        sd[f"layers.{2 * k}.bias"] = torch.tensor(b, dtype=td)
    torch.save(sd, path)
    return stored, ["--arch", net.arch()] if (net.acts and not all(a[0] == "relu" for a in net.acts)
                                             or rng.random() < 0.5) else []


def write_nnet(net: Net, path: str, rng, domain=None):
    n_in, n_out = net.in_dim, net.out_dim
    lo, hi = domain if domain is not None else (-np.ones(n_in) * 1e3, np.ones(n_in) * 1e3)
    sizes = [n_in, *net.widths, n_out]
    lines = ["// campaign network", f"{len(net.Ws)},{n_in},{n_out},{max(sizes)},", ",".join(map(str, sizes)) + ",", "0,",
             ",".join(repr(float(v)) for v in lo) + ",", ",".join(repr(float(v)) for v in hi) + ",",
             ",".join(["0.0"] * (n_in + 1)) + ",", ",".join(["1.0"] * (n_in + 1)) + ","]
    for w, b in zip(net.Ws, net.bs):
        for row in w:
            lines.append(",".join(repr(float(v)) for v in row) + ",")
        for v in b:
            lines.append(repr(float(v)) + ",")
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return net, []


def write_mat(net: Net, path: str, rng, domain=None):
    import scipy.io

    W = np.empty(len(net.Ws), dtype=object)
    B = np.empty(len(net.bs), dtype=object)
    for k, (w, b) in enumerate(zip(net.Ws, net.bs)):
        W[k] = w
        B[k] = b.reshape(-1, 1)
    scipy.io.savemat(path, {"weights": W, "biases": B})
    return net, ["--arch", net.arch()] if (net.acts and not all(a[0] == "relu" for a in net.acts)
                                          or rng.random() < 0.5) else []


# ------------------------------------------------------------------------ independent reference evaluation
def reference_eval(fmt: str, path: str, stored: Net, X: np.ndarray):
    """Outputs of the file's own runtime (onnxruntime / torch) where one exists, else None."""
    if fmt == "onnx":
        try:
            import onnxruntime as ort

            so = ort.SessionOptions()
            so.intra_op_num_threads = 1
            so.inter_op_num_threads = 1
            sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            inp = sess.get_inputs()[0]
            dt = np.float32 if "float)" in inp.type or inp.type == "tensor(float)" else np.float64
            return np.concatenate([sess.run(None, {inp.name: X[i:i + 1].astype(dt)})[0].reshape(1, -1)
                                   for i in range(X.shape[0])]).astype(np.float64)
        except Exception:
            return None
    if fmt == "torchscript":
        import torch

        m = torch.jit.load(path)
        p = next(m.parameters())
        with torch.no_grad():
            return m(torch.tensor(X, dtype=p.dtype)).double().numpy()
    return None


def act_names(net: Net) -> list[str]:
    return [act_name(a) for a in net.acts]
