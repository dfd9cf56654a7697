"""Part 2: load fidelity.  The function the toolkit loads must be the function in the file (evaluated by
the file's own runtime: torch / onnxruntime, or our numpy forward), unless it refuses or prints a
``verification: note:`` line saying what it assumed."""

from __future__ import annotations

import json
import os
from collections import OrderedDict

import numpy as np

import formats
from nets import Net, random_net
from runner import HERE, error_issues, notes, success_issues

PART = "p2-fidelity"


def _points(rng, n_in: int, n: int = 300, domain=None) -> np.ndarray:
    X = np.vstack([rng.normal(size=(n // 3, n_in)), rng.normal(size=(n // 3, n_in)) * 10,
                   rng.uniform(-1, 1, size=(n - 2 * (n // 3), n_in))])
    if domain is not None:
        X = np.clip(X, domain[0], domain[1])
    return X


def compare(ctx, name: str, path: str, argv_extra: list, X: np.ndarray, ref, ref_tol: float, expect: str,
            trust: bool = False, input_shape=None, env_note: str = "", part: str = PART) -> None:
    """Load ``path`` through the API (evaluate at X) and the CLI (``info --json``).

    ``ref``: reference outputs (or None when the file's function is undefined/ambiguous);
    ``expect``: "equal" (must load and match), "refuse-or-note" (differs from what a naive loader would read:
    must refuse or note), "refuse" (must refuse)."""
    d = os.path.dirname(path)
    pts = os.path.join(d, f"{os.path.basename(path)}.points.npy")
    outp = os.path.join(d, f"{os.path.basename(path)}.out.npy")
    np.save(pts, X)
    arch = argv_extra[argv_extra.index("--arch") + 1] if "--arch" in argv_extra else None
    args = {"path": path, "points": pts, "out": outp, "trust": trust, "arch": arch,
            "input_shape": list(input_shape) if input_shape else None}
    api = ctx.runner.api("evaluate", args, timeout=60)
    info_argv = ["info", path, "--json", *argv_extra]
    if trust:
        info_argv.append("--trust")
    if input_shape:
        info_argv += ["--input-shape", ",".join(map(str, input_shape))]
    info = ctx.runner.run(info_argv, timeout=60, env={"PYTHONPATH": HERE} if trust else None)
    ctx.camp.case(part, 2)
    files = [path, pts]
    facts = {"case": name, "expect": expect, "note": env_note}
    # ---------------- CLI info: clean outcome
    if info.rc == 2 and not info.timed_out:
        for cat, det in error_issues(info, 60):
            ctx.camp.fail(part, cat, f"info:{name}:{det[:40]}", det, info, files, facts)
    else:
        for cat, det in success_issues(info, {0}, 60):
            ctx.camp.fail(part, cat, f"info:{name}:{det[:40]}", det, info, files, facts)
        obj = info.json() if info.rc == 0 else None
        if isinstance(obj, dict) and ref is not None and ref.ndim == 2:
            if obj.get("in_dim") != X.shape[1] or obj.get("out_dim") != ref.shape[1]:
                ctx.camp.fail(part, "silent_model", f"info dims differ:{name}",
                              f"{name}: info --json says {obj.get('in_dim')} -> {obj.get('out_dim')}, the file's "
                              f"function is {X.shape[1]} -> {ref.shape[1]}", info, files, facts)
    # ---------------- API evaluation
    if api.timed_out or "Traceback" in api.stderr or api.rc not in (0, 2):
        ctx.camp.fail(part, "hang" if api.timed_out else "traceback", f"load_network:{name}",
                      f"load_network/evaluate: exit {api.rc}; {(api.stderr.strip().splitlines() or [''])[-1][:150]}",
                      api, files, facts)
        return
    refused_api = api.rc == 2
    refused_cli = info.rc == 2
    noted = bool(notes(info) or notes(api))
    if expect == "refuse":
        if not refused_api or not refused_cli:
            ctx.camp.fail(part, "silent_model", f"accepted:{name}",
                          f"{name}: accepted (API {'refused' if refused_api else 'loaded'}, CLI exit {info.rc}) but "
                          f"the file's function is not representable / ambiguous{' (with note)' if noted else ''}",
                          info, files, facts)
        ctx.camp.tally("p2 outcomes", f"{name}: refused" if refused_api and refused_cli else f"{name}: ACCEPTED")
        return
    if refused_api or refused_cli:
        if refused_api != refused_cli:
            ctx.camp.fail(part, "wrong_exit", f"api/cli disagree:{name}",
                          f"API {'refused' if refused_api else 'loaded'} but CLI info exit {info.rc}", info, files, facts)
        if expect == "equal":
            # allowed by the promise ("when a loader cannot be sure, it refuses with one line"): tallied only
            first = (info.stderr.strip().splitlines() or [""])[0]
            ctx.camp.tally("valid model files refused by the loader (allowed; not counted as failures)",
                           f"{name.split(':')[0]}: {first[first.find('error:'):][:110]}")
        ctx.camp.tally("p2 outcomes", f"{name}: refused")
        return
    Y = np.load(outp)
    if ref is None:
        if not noted:
            ctx.camp.fail(part, "silent_model", f"ambiguous file loaded without note:{name}",
                          f"{name}: the file's function is ambiguous/undefined, loaded without a note "
                          f"({json.loads(api.stdout).get('describe') if api.stdout.strip() else ''})", info, files, facts)
        ctx.camp.tally("p2 outcomes", f"{name}: loaded{' with note' if noted else ' silently'}")
        return
    # ref_tol: absolute tolerance (array or scalar); None -> 1e-9 of the largest reference value
    if ref_tol is None or np.isscalar(ref_tol):
        tol = (ref_tol or 1e-9) * ref_tol_scale(ref)
    else:
        tol = ref_tol
    if Y.shape != ref.shape:
        diff = float("inf")
    else:
        diff = float(np.max(np.abs(Y - ref) / np.maximum(tol, 1e-300)))
    if diff > 1.0:
        if noted:
            ctx.camp.tally("p2 outcomes", f"{name}: differs, with note")
        else:
            ctx.camp.fail(part, "silent_model", f"different function, no note:{name}",
                          f"{name}: loaded network differs from the file's function (max diff {diff:.3g} x tolerance, "
                          f"shapes {Y.shape} vs {ref.shape}) without refusal or note", info, files,
                          dict(facts, api_describe=api.stdout.strip()[:200]))
    else:
        ctx.camp.tally("p2 outcomes", f"{name}: equal" + (" (note)" if noted else ""))


def ref_tol_scale(ref: np.ndarray) -> float:
    return float(np.abs(ref).max()) + 1e-300


# =========================================================================================== cases
def run(ctx) -> None:
    rng = np.random.default_rng([ctx.seed, 2])
    # 1. the known tricky cases (first: a time budget must not skip them)
    d = os.path.join(ctx.work, "p2_tricky")
    os.makedirs(d, exist_ok=True)
    for fn in TRICKY:
        if ctx.out_of_time(PART):
            ctx.camp.skipped[PART] += 1
            continue
        try:
            fn(ctx, d, rng)
        except Exception as exc:
            import traceback

            traceback.print_exc()
            ctx.camp.notes.append(f"harness error in {fn.__name__}: {type(exc).__name__}: {exc}")
    # 2. every model file written in part 1
    import truth

    for m in ctx.models:
        if ctx.out_of_time(PART):
            ctx.camp.skipped[PART] += 1
            continue
        stored: Net = m["net"]
        X = _points(rng, stored.in_dim, 240, m["domain"])
        ref = stored(X)
        # both evaluations round: allow 3x our rigorous rounding bound of one float64 evaluation
        tol = 3 * truth._magnitude(stored, X) + 1e-12 * np.abs(ref)
        ext_ref = formats.reference_eval(m["fmt"], m["path"], stored, X)
        if ext_ref is not None:
            # our reading of the file vs its own runtime (float32 runtimes: float32 round-off)
            scale = np.abs(ext_ref) + np.abs(ext_ref).max() + 1e-300
            if np.max(np.abs(ext_ref - ref) / scale) > 1e-3:
                ctx.camp.notes.append(f"harness: our forward differs from the runtime on {m['path']}")
        compare(ctx, f"{m['fmt']}:{stored.describe()}", m["path"], m["extra"], X, ref, tol, "equal")


def _torch_ref(module, X, dtype=None):
    import torch

    p = next(module.parameters())
    with torch.no_grad():
        return module(torch.tensor(X, dtype=p.dtype)).double().numpy()


def case_statedict_tanh_no_arch(ctx, d, rng):
    import torch

    torch.manual_seed(1)
    m = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)).double()
    p = os.path.join(d, "tanh_statedict.pt")
    torch.save(m.state_dict(), p)
    X = _points(rng, 3)
    compare(ctx, "state_dict of a tanh model, no --arch", p, [], X, _torch_ref(m, X), 1e-9, "refuse-or-note")


def case_softmax(ctx, d, rng):
    import torch

    torch.manual_seed(2)
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3),
                            torch.nn.Softmax(dim=-1)).double().eval()
    p = os.path.join(d, "softmax_ts.pt")
    torch.jit.save(torch.jit.script(m), p)
    X = _points(rng, 3)
    compare(ctx, "TorchScript ending in Softmax", p, [], X, _torch_ref(m, X), 1e-9, "refuse-or-note")
    # ONNX with a Softmax node
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    W = np.random.default_rng(3).normal(size=(3, 3)).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Softmax", ["h"], ["y"], axis=-1)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], [numpy_helper.from_array(W, "W")])
    mo = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    mo.ir_version = 8
    p2 = os.path.join(d, "softmax.onnx")
    onnx.save(mo, p2)
    Xo = _points(rng, 3)
    ref = formats.reference_eval("onnx", p2, None, Xo)
    compare(ctx, "ONNX ending in Softmax", p2, [], Xo, ref, 1e-5, "refuse-or-note")


def case_twice_linear(ctx, d, rng):
    import torch

    from tricky_models import TwiceLinear

    torch.manual_seed(3)
    m = TwiceLinear(3, 2).double().eval()
    p = os.path.join(d, "twice_linear_ts.pt")
    torch.jit.save(torch.jit.script(m), p)
    X = _points(rng, 3)
    compare(ctx, "TorchScript forward = 2*linear(x)", p, [], X, _torch_ref(m, X), 1e-9, "refuse-or-note")


def case_residual_sequential(ctx, d, rng):
    import torch

    from tricky_models import ResidualSequential, ReorderedSequential

    torch.manual_seed(4)
    m = ResidualSequential(torch.nn.Linear(3, 3), torch.nn.ReLU(), torch.nn.Linear(3, 3)).double().eval()
    p = os.path.join(d, "residual_sequential_pickled.pt")
    torch.save(m, p)
    X = _points(rng, 3)
    compare(ctx, "nn.Sequential subclass with residual forward (--trust)", p, [], X, _torch_ref(m, X), 1e-9,
            "refuse-or-note", trust=True, env_note="run with PYTHONPATH=benchmarks/campaign")
    m2 = ReorderedSequential(torch.nn.Linear(3, 3), torch.nn.Tanh(), torch.nn.Linear(3, 3)).double().eval()
    p2 = os.path.join(d, "reordered_sequential_pickled.pt")
    torch.save(m2, p2)
    compare(ctx, "nn.Sequential subclass applying children in reverse (--trust)", p2, [], X, _torch_ref(m2, X),
            1e-9, "refuse-or-note", trust=True, env_note="run with PYTHONPATH=benchmarks/campaign")
    # the same residual module as TorchScript
    p3 = os.path.join(d, "residual_sequential_ts.pt")
    torch.jit.save(torch.jit.script(m), p3)
    compare(ctx, "TorchScript of a residual nn.Sequential subclass", p3, [], X, _torch_ref(m, X), 1e-9,
            "refuse-or-note")


def case_conv_circular(ctx, d, rng):
    import torch

    torch.manual_seed(5)
    for mode in ("circular", "reflect", "zeros"):
        m = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1, padding_mode=mode), torch.nn.ReLU(),
                                torch.nn.Flatten(), torch.nn.Linear(2 * 4 * 4, 2)).double().eval()
        p = os.path.join(d, f"conv_{mode}_ts.pt")
        torch.jit.save(torch.jit.script(m), p)
        X = _points(rng, 16)
        ref = _torch_ref(m, X.reshape(-1, 1, 4, 4))
        compare(ctx, f"Conv2d padding_mode={mode} (TorchScript, --input-shape 1,4,4)", p, [], X, ref, 1e-9,
                "equal" if mode == "zeros" else "refuse-or-note", input_shape=(1, 4, 4))
    # stride/dilation/groups variants (must be exact)
    m = torch.nn.Sequential(torch.nn.Conv2d(2, 2, 2, stride=2, dilation=1, groups=2, bias=True), torch.nn.Tanh(),
                            torch.nn.Flatten(), torch.nn.Linear(2 * 2 * 2, 1)).double().eval()
    p = os.path.join(d, "conv_groups_ts.pt")
    torch.jit.save(torch.jit.script(m), p)
    X = _points(rng, 32)
    compare(ctx, "Conv2d stride 2, groups 2 (TorchScript, --input-shape 2,4,4)", p, [], X,
            _torch_ref(m, X.reshape(-1, 2, 4, 4)), 1e-9, "equal", input_shape=(2, 4, 4))


def case_resnet_maxpool(ctx, d, rng):
    """ReLU ResNet block + MaxPool (with padding) + leaky residual MLP: ONNX (legacy exporter, float64 weights
    so the reference is exact) and TorchScript (converted through ONNX by the loader) must equal torch."""
    import copy
    import warnings

    import torch

    from tricky_models import LeakyResMLP, TinyResNet

    torch.manual_seed(int(rng.integers(1000)))
    m = TinyResNet().double().eval()
    X = _points(rng, 64)
    ref = _torch_ref(m, X.reshape(-1, 1, 8, 8))
    p = os.path.join(d, "tiny_resnet.onnx")
    m32 = copy.deepcopy(m).float()  # onnxruntime has no float64 Conv: export float32, compare with its weights
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m32, (torch.zeros(1, 1, 8, 8),), p, dynamo=False)
    ref32 = _torch_ref(copy.deepcopy(m32).double(), X.reshape(-1, 1, 8, 8))
    compare(ctx, "ResNet block + MaxPool(3, 2, pad 1) (ONNX)", p, [], X, ref32, 1e-9, "equal")
    p2 = os.path.join(d, "tiny_resnet_ts.pt")
    torch.jit.save(torch.jit.trace(m, torch.zeros(1, 1, 8, 8, dtype=torch.float64)), p2)
    compare(ctx, "ResNet block + MaxPool (traced TorchScript, --input-shape 1,8,8)", p2, [], X, ref, 1e-9, "equal",
            input_shape=(1, 8, 8))
    m3 = LeakyResMLP().eval()
    X3 = _points(rng, 4)
    p3 = os.path.join(d, "leaky_resmlp.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m3, (torch.zeros(1, 4),), p3, dynamo=False)
    compare(ctx, "leaky ReLU residual MLP, input carried (ONNX)", p3, [], X3, _torch_ref(copy.deepcopy(m3).double(), X3),
            1e-9, "equal")


def _onnx_model(nodes, inits, n_in, n_out, extra_opsets=(), in_name="x", out_name="y"):
    from onnx import TensorProto, helper

    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(in_name, TensorProto.FLOAT, [1, n_in])],
                          [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [1, n_out])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), *[helper.make_opsetid(dm, 1)
                                                                           for dm in extra_opsets]])
    m.ir_version = 8
    return m


def case_onnx_custom_domain(ctx, d, rng):
    import onnx
    from onnx import helper, numpy_helper

    W = np.random.default_rng(6).normal(size=(3, 4)).astype(np.float32)
    W2 = np.random.default_rng(7).normal(size=(4, 2)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]),
             helper.make_node("Relu", ["h"], ["r"], domain="com.example.custom"),
             helper.make_node("MatMul", ["r", "W2"], ["y"])]
    m = _onnx_model(nodes, [numpy_helper.from_array(W, "W"), numpy_helper.from_array(W2, "W2")], 3, 2,
                    extra_opsets=("com.example.custom",))
    p = os.path.join(d, "relu_custom_domain.onnx")
    onnx.save(m, p)
    compare(ctx, "ONNX Relu in a custom domain", p, [], _points(rng, 3), None, 0, "refuse")


def case_onnx_gemm_attrs(ctx, d, rng):
    import onnx
    from onnx import helper, numpy_helper

    r = np.random.default_rng(8)
    W = r.normal(size=(2, 3)).astype(np.float32)
    B = r.normal(size=(2,)).astype(np.float32)
    nodes = [helper.make_node("Gemm", ["x", "W", "B"], ["g"], transB=1, alpha=2.5, beta=-0.5),
             helper.make_node("LeakyRelu", ["g"], ["y"])]
    m = _onnx_model(nodes, [numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "B")], 3, 2)
    p = os.path.join(d, "gemm_alpha_beta.onnx")
    onnx.save(m, p)
    X = _points(rng, 3)
    compare(ctx, "ONNX Gemm alpha=2.5 beta=-0.5 transB + LeakyRelu default alpha", p, [], X,
            formats.reference_eval("onnx", p, None, X), 1e-5, "equal")
    # Sub / Div with constants on either side, Mul broadcast
    C = r.normal(size=(3,)).astype(np.float32)
    nodes = [helper.make_node("Sub", ["C", "x"], ["s"]), helper.make_node("Div", ["s", "D"], ["t"]),
             helper.make_node("MatMul", ["t", "W"], ["y"])]
    m = _onnx_model(nodes, [numpy_helper.from_array(C, "C"), numpy_helper.from_array(np.float32([2.0, -4.0, 0.5]), "D"),
                            numpy_helper.from_array(W.T.copy(), "W")], 3, 2)
    p = os.path.join(d, "sub_div.onnx")
    onnx.save(m, p)
    compare(ctx, "ONNX (C - x) / D then MatMul", p, [], X, formats.reference_eval("onnx", p, None, X), 1e-5, "equal")


def case_npz_gap(ctx, d, rng):
    r = np.random.default_rng(9)
    p = os.path.join(d, "gap_W0_W1_W3.npz")
    np.savez(p, W0=r.normal(size=(4, 3)), b0=r.normal(size=4), W1=r.normal(size=(4, 4)), b1=r.normal(size=4),
             W3=r.normal(size=(2, 4)), b3=r.normal(size=2))
    compare(ctx, ".npz with W0, W1, W3 (W2 missing)", p, [], _points(rng, 3), None, 0, "refuse")


def case_npz_complex(ctx, d, rng):
    r = np.random.default_rng(10)
    p = os.path.join(d, "complex_weights.npz")
    np.savez(p, W0=r.normal(size=(4, 3)) + 1j * r.normal(size=(4, 3)), b0=r.normal(size=4),
             W1=r.normal(size=(2, 4)), b1=r.normal(size=2))
    compare(ctx, ".npz with complex weights", p, [], _points(rng, 3), None, 0, "refuse")


def case_statedict_order(ctx, d, rng):
    import torch

    torch.manual_seed(11)
    m = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.ReLU(), torch.nn.Linear(3, 3)).double()
    sd = m.state_dict()
    rev = OrderedDict((k, sd[k]) for k in ["2.weight", "2.bias", "0.weight", "0.bias"])
    p = os.path.join(d, "statedict_keys_out_of_order.pt")
    torch.save(rev, p)
    X = _points(rng, 3)
    compare(ctx, "state_dict with keys out of layer order", p, [], X, _torch_ref(m, X), 1e-9, "refuse-or-note")


def case_statedict_batchnorm(ctx, d, rng):
    import torch

    torch.manual_seed(12)
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.ReLU(),
                            torch.nn.Linear(4, 2)).double().eval()
    with torch.no_grad():
        m[1].running_mean.copy_(torch.randn(4))
        m[1].running_var.copy_(torch.rand(4) + 0.5)
    p = os.path.join(d, "statedict_batchnorm.pt")
    torch.save(m.state_dict(), p)
    X = _points(rng, 3)
    compare(ctx, "state_dict with BatchNorm1d", p, [], X, _torch_ref(m, X), 1e-9, "refuse-or-note")
    p2 = os.path.join(d, "batchnorm_ts.pt")
    torch.jit.save(torch.jit.script(m), p2)
    compare(ctx, "TorchScript with BatchNorm1d", p2, [], X, _torch_ref(m, X), 1e-9, "refuse-or-note")


def case_scaled_activation(ctx, d, rng):
    import torch

    from tricky_models import ScaledTanh

    torch.manual_seed(13)
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), ScaledTanh(), torch.nn.Linear(4, 2)).double().eval()
    p = os.path.join(d, "scaled_tanh_ts.pt")
    torch.jit.save(torch.jit.script(m), p)
    X = _points(rng, 3)
    compare(ctx, "TorchScript with a custom activation module (3*tanh)", p, [], X, _torch_ref(m, X), 1e-9,
            "refuse-or-note")


def case_nnet_normalisation(ctx, d, rng):
    """A .nnet file with non-trivial normalisation: the default is the normalised network (documented)."""
    r = np.random.default_rng(14)
    net = random_net(r, n_in=2, n_hidden=1, n_out=1, act=("relu",), scale=1.0)
    p = os.path.join(d, "normalised.nnet")
    formats.write_nnet(net, p, r, (np.array([-3.0, -3.0]), np.array([3.0, 3.0])))
    X = _points(rng, 2, domain=(np.array([-3.0, -3.0]), np.array([3.0, 3.0])))
    compare(ctx, ".nnet with zero means / unit ranges", p, [], X, net(X), 1e-9, "equal")


def case_onnx_float64(ctx, d, rng):
    r = np.random.default_rng(15)
    net = random_net(r, n_in=3, n_hidden=2, n_out=2, act=("tanh",), scale=1.0)
    p = os.path.join(d, "float64_matmul.onnx")
    stored, _ = formats.write_onnx(net, p, r, None, dtype=np.float64)
    X = _points(rng, 3)
    compare(ctx, "ONNX float64 tanh", p, [], X, stored(X), 1e-9, "equal")


def case_piecewise_and_1d(ctx, d, rng):
    """Layers written with ReLU steps or views by the loaders: ReLU6 / Hardtanh / per-channel PReLU / SiLU
    (x * sigmoid(x)) exported to ONNX by both torch exporters, a Conv1d + MaxPool1d net, and a TorchScript
    Sequential with ReLU6 (converted through ONNX by the loader): each must equal torch."""
    import contextlib
    import copy
    import io
    import logging
    import warnings

    import torch

    nn = torch.nn
    torch.manual_seed(int(rng.integers(1000)))
    mlp = nn.Sequential(nn.Linear(6, 8), nn.ReLU6(), nn.Linear(8, 8), nn.PReLU(8), nn.Linear(8, 8),
                        nn.Hardtanh(-0.75, 1.25), nn.Linear(8, 6), nn.SiLU(), nn.Linear(6, 3)).eval()
    conv1d = nn.Sequential(nn.Conv1d(2, 3, 3, padding=1, stride=2), nn.ReLU(), nn.MaxPool1d(2),
                           nn.Conv1d(3, 2, 3, dilation=2, padding=2), nn.ReLU(), nn.Flatten(), nn.Linear(6, 2)).eval()
    for name, m, shape in (("relu6/prelu/hardtanh/silu MLP", mlp, (6,)), ("Conv1d + MaxPool1d", conv1d, (2, 12))):
        n_in = int(np.prod(shape))
        X = _points(rng, n_in) * 4.0  # reach the clipping ranges
        ref = _torch_ref(copy.deepcopy(m).double(), X.reshape((-1,) + shape))
        for dynamo in (False, True):
            p = os.path.join(d, f"{name.split()[0].replace('/', '_')}_{int(dynamo)}.onnx")
            try:  # quietly: the dynamo exporter logs its stages and missing torchvision ops
                with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                    warnings.simplefilter("ignore")
                    logging.getLogger("torch").setLevel(logging.ERROR)
                    torch.onnx.export(m, (torch.zeros((1,) + shape),), p, dynamo=dynamo, verbose=False)
            except Exception as exc:  # the exporter itself failed: nothing to compare
                ctx.camp.notes.append(f"harness: torch.onnx.export(dynamo={dynamo}) of {name} failed: {exc}"[:200])
                continue
            compare(ctx, f"{name} (ONNX, dynamo={dynamo})", p, [], X, ref, 1e-9, "equal")
    p2 = os.path.join(d, "relu6_mlp_ts.pt")
    torch.jit.save(torch.jit.script(copy.deepcopy(mlp).double()), p2)
    X2 = _points(rng, 6) * 4.0
    compare(ctx, "relu6/prelu/hardtanh/silu MLP (TorchScript, converted through ONNX)", p2, [], X2,
            _torch_ref(copy.deepcopy(mlp).double(), X2), 1e-9, "equal")


TRICKY = [case_resnet_maxpool, case_piecewise_and_1d, case_statedict_tanh_no_arch, case_softmax, case_twice_linear, case_residual_sequential,
          case_conv_circular, case_onnx_custom_domain, case_onnx_gemm_attrs, case_npz_gap, case_npz_complex,
          case_statedict_order, case_statedict_batchnorm, case_scaled_activation, case_nnet_normalisation,
          case_onnx_float64]
