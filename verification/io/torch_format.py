"""PyTorch loader: ``.pt`` / ``.pth`` files.

Accepted contents, in order of preference:

1. a **state_dict** (possibly under a ``"state_dict"`` / ``"model_state_dict"`` / ``"model"`` key): 2-D
   ``*.weight`` tensors in insertion order with their ``*.bias``, nothing else; the activations are not in
   the file: they come from ``arch``, else ReLU between layers is assumed and recorded in
   ``metadata["assumed"]``;
2. a **TorchScript** archive (``torch.jit.save``, scripted or traced) of an ``nn.Sequential``-style module;
3. a whole pickled ``nn.Module`` (``torch.save(model)``): unpickling runs code from the file, so it is
   refused unless ``trust=True``.

Everything except (3) is read with ``torch.load(..., weights_only=True)``; zip archives must pass their CRC
check.  Modules are walked as a chain of Linear, Conv2d (kept as a :class:`~verification.layers.Conv2d`,
every padding mode, from its options; traced modules keep no options, so they are read from the traced
graph, else the layer is lowered to a dense matrix on the unit basis; needs ``input_shape``), BatchNorm2d in
evaluation mode (folded into the convolution before it, else a per-channel affine layer), AvgPool2d (a
depthwise convolution), Flatten, the activation modules of the name table
(:data:`verification.activations.names.TORCH_MODULES`: ReLU, LeakyReLU, Tanh, Sigmoid, SiLU), Identity and
Dropout children, nested Sequentials flattened; a final Softmax / LogSoftmax is refused unless ``drop_softmax``.
The module itself is then run (in float64 when it converts) and compared with the loaded network
(:mod:`verification.io._crosscheck`), so a custom ``forward`` that is not the chain is refused.
"""

from __future__ import annotations

import math
import pickle
import warnings
import zipfile
from pathlib import Path

import numpy as np

from verification.activations.names import TORCH_MODULES
from verification.errors import (
    InvalidParameterError,
    ModelFormatError,
    ShapeMismatchError,
    UnsupportedLayerError,
    UntrustedModelError,
)
from verification.io.common import (
    assumed_activations,
    chain_from_weights,
    check_dense_size,
    check_input_shape,
    check_widths,
    parse_arch,
    rounded_pool,
)
from verification.layers import AffineLayer, Conv2d, avg_pool2d, channel_affine
from verification.layers import deviation as dv
from verification.layers.deviation import fold, mark_rounded
from verification.network import Dense, Layer, Network

__all__ = ["load"]

_SKIP = {"Flatten", "Identity", "Dropout"}
_SOFTMAX = {"Softmax", "LogSoftmax"}
_BASIS_CHUNK = 1 << 22  # entries of the basis batch and its image per lowering step


def _is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive; refuses zip archives whose members fail their CRC check."""
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            bad = zf.testzip()
    except Exception as exc:
        raise ModelFormatError(f"{path.name!r} is a corrupt zip archive (truncated?): {type(exc).__name__}") from None
    if bad is not None:
        raise ModelFormatError(f"{path.name!r} is corrupt: member {bad!r} fails its CRC check")
    return any(n.endswith("constants.pkl") for n in names) or any("/code/" in n for n in names)


def load(
    path: Path,
    trust: bool = False,
    arch: str | None = None,
    input_shape=None,
    drop_softmax: bool = False,
    check: bool = True,
) -> Network:
    try:
        import torch
    except ImportError:
        raise UnsupportedLayerError(
            f"{path.name!r} is a PyTorch file and torch is not installed: pip install 'theorytools-verification[torch]'"
            " (or export the model to ONNX)"
        ) from None

    input_shape = check_input_shape(input_shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if _is_torchscript(path):
            try:
                module = torch.jit.load(str(path), map_location="cpu")
            except Exception as exc:
                raise ModelFormatError(
                    f"could not load TorchScript file {path.name!r} (truncated or corrupt?): {type(exc).__name__}"
                ) from None
            return _module_network(module, path.name, arch, input_shape, drop_softmax, check)
        obj = _read_torch_file(path, trust)
        if isinstance(obj, torch.nn.Module):
            return _module_network(obj, path.name, arch, input_shape, drop_softmax, check)
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
        return _from_state_dict(obj, path.name, arch)
    raise ModelFormatError(f"{path.name!r} holds a {type(obj).__name__}, not a state_dict or module")


def _read_torch_file(path: Path, trust: bool):
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" not in str(exc) and "Unsupported global" not in str(exc):
            raise ModelFormatError(f"could not read PyTorch file {path.name!r}: {str(exc).splitlines()[0][:200]}") from None
    except Exception as exc:
        raise ModelFormatError(
            f"could not read PyTorch file {path.name!r} (truncated or corrupt?): {type(exc).__name__}"
        ) from None
    if not trust:
        raise UntrustedModelError(
            f"{path.name!r} contains a pickled Python object (a whole nn.Module); unpickling it runs code "
            "from the file. Save a state_dict or TorchScript instead, or pass --trust / trust=True if you trust it"
        )
    try:
        return torch.load(str(path), map_location="cpu", weights_only=False)  # explicit trust given
    except Exception as exc:
        raise ModelFormatError(f"could not unpickle {path.name!r}: {type(exc).__name__}: {str(exc)[:200]}") from None


# ------------------------------------------------------------------ state_dict
def _tensor(val, key: str, fname: str) -> np.ndarray:
    if val.is_complex():
        raise ModelFormatError(f"{fname}: state_dict entry {key!r} is complex; complex weights are not supported")
    if not val.is_floating_point():
        raise ModelFormatError(f"{fname}: state_dict entry {key!r} has dtype {val.dtype}, not a float type")
    return val.detach().cpu().double().numpy()


def _from_state_dict(sd: dict, fname: str, arch: str | None) -> Network:
    import torch

    weights, biases, used = [], [], set()
    for key, val in sd.items():
        if not isinstance(val, torch.Tensor):
            raise ModelFormatError(f"{fname}: state_dict entry {key!r} is a {type(val).__name__}, not a tensor")
        if not (isinstance(key, str) and key.endswith("weight")):
            continue
        if val.ndim != 2:
            raise UnsupportedLayerError(
                f"{fname}: state_dict entry {key!r} has shape {tuple(val.shape)}; only Linear (2-D) weights can be "
                "read from a state_dict (save other models as TorchScript or export them to ONNX)"
            )
        weights.append(_tensor(val, key, fname))
        bkey = key[: -len("weight")] + "bias"
        used.update({key, bkey})
        biases.append(_tensor(sd[bkey], bkey, fname) if bkey in sd else None)
    if not weights:
        raise ModelFormatError(f"{fname}: no '*.weight' tensors found in the state_dict")
    _check_order([k for k in sd if k in used and k.endswith("weight")], fname)
    extra = [k for k in sd if k not in used]
    if extra:
        raise UnsupportedLayerError(
            f"{fname}: state_dict entries {extra[:4]} are not Linear weights or biases; only chains of Linear "
            "layers can be read from a state_dict (export other models to ONNX or TorchScript)"
        )
    net = chain_from_weights(weights, biases, parse_arch(arch, len(weights) - 1), fname)
    if arch is None:
        net.metadata["assumed"] = assumed_activations(len(weights) - 1, "the state_dict")
    return net


def _check_order(weight_keys: list[str], fname: str) -> None:
    """Sequential-style keys (``layers.0.weight``, ``layers.2.weight``) must be stored in index order."""
    idx = [tuple(int(c) for c in k.split(".")[:-1] if c.isdigit()) for k in weight_keys]
    if all(idx) and any(a >= b for a, b in zip(idx, idx[1:])):
        raise UnsupportedLayerError(
            f"{fname}: the state_dict stores its layers out of index order ({', '.join(weight_keys[:4])}); "
            "the forward order is unknown"
        )


# ------------------------------------------------------------------ modules
def _kind(m) -> str:
    return getattr(m, "original_name", None) or type(m).__name__


def _children(module, fname: str) -> list:
    """Leaf modules in order; containers must be Sequential (or wrap a single child)."""
    import torch

    kids = list(module.children())
    if not kids:
        return [module]
    is_seq = isinstance(module, torch.nn.Sequential) or _kind(module) == "Sequential"
    if not is_seq and len(kids) > 1:
        raise UnsupportedLayerError(
            f"{fname}: module {_kind(module)} is not an nn.Sequential: its forward order is unknown; "
            "export it to ONNX or save a state_dict with --arch"
        )
    out = []
    for k in kids:
        out.extend(_children(k, fname))
    return out


def _to_float64(module) -> tuple:
    """``(module, converted)``: the module in float64 (``converted`` if it was not already), or unchanged
    (``None``) if it does not convert."""
    import torch

    params = list(module.parameters()) + list(module.buffers())
    if all(p.dtype == torch.float64 for p in params if p.is_floating_point()):
        return module, False
    try:
        return module.double(), True
    except Exception:
        return module, None


def _module_network(module, fname: str, arch, input_shape, drop_softmax: bool, check: bool) -> Network:
    import torch

    if arch is not None:
        raise InvalidParameterError(
            f"--arch / arch applies to weight-only files (state_dict, .mat, .npz without activations); {fname!r} "
            "is a module that defines its own activations"
        )
    module.eval()
    module, converted = _to_float64(module)
    with torch.no_grad():
        try:
            leaves = _children(module, fname)
        except UnsupportedLayerError as exc:
            if "not an nn.Sequential" not in str(exc):
                raise
            return _through_onnx(module, converted, fname, input_shape, drop_softmax, check, exc)
        try:
            net, dropped = _walk(leaves, fname, input_shape, drop_softmax)
        except UnsupportedLayerError as exc:  # e.g. ReLU6, Hardtanh, PReLU: the ONNX graph loader writes them exactly
            if "unsupported PyTorch layer" not in str(exc):
                raise
            try:
                return _through_onnx(module, converted, fname, input_shape, drop_softmax, check, exc,
                                     reason=str(exc).split(": ", 1)[-1])
            except UnsupportedLayerError:
                raise exc from None
        net = check_widths(net, fname)
        if dropped is not None:
            net.metadata["dropped"] = f"final {_kind(dropped)}"
        if check:
            net.metadata["crosscheck"] = _check_in_best_precision(net, module, converted, dropped, input_shape, fname)
    return net


def _through_onnx(module, converted, fname: str, input_shape, drop_softmax: bool, check: bool, why,
                  reason: str = "the module is not an nn.Sequential") -> Network:
    """A module that is not a chain of ``nn.Sequential`` children (e.g. a ResNet): exported with
    ``torch.onnx.export`` (the TorchScript-based exporter, which also takes scripted and traced modules),
    loaded by the ONNX graph loader, then checked against the module itself."""
    import tempfile

    import torch

    from verification.io import onnx_graph

    shape = input_shape
    if shape is None:
        first = next((m for m in module.modules() if hasattr(m, "in_features") and not list(m.children())), None)
        if first is not None:
            shape = (int(first.in_features),)
        else:  # traced modules keep no attributes: the first parameter is a Linear's (out, in) weight, if any
            weight = next(iter(module.parameters()), None)
            if weight is None or weight.dim() != 2:
                raise UnsupportedLayerError(f"{why}; or pass --input-shape C,H,W to convert it through ONNX") from None
            shape = (int(weight.shape[1]),)
    dtype = next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / (Path(fname).stem + ".onnx")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(module, (torch.zeros((1,) + tuple(shape), dtype=dtype),), str(path), dynamo=False,
                                  input_names=["input"])
        except Exception as exc:
            msg = " ".join(str(exc).split())[:160]
            raise UnsupportedLayerError(f"{why}; converting it through torch.onnx.export failed: {msg}") from None
        net = onnx_graph.load(path, drop_softmax=drop_softmax, check=False)
    net.metadata["converted"] = f"through torch.onnx.export ({reason})"
    if check:
        dropped = None
        if "dropped" in net.metadata:
            raise UnsupportedLayerError(f"{why}; a final softmax inside it cannot be dropped; export it to ONNX")
        net.metadata["crosscheck"] = _check_in_best_precision(net, module, converted, dropped, input_shape, fname)
    return net


def _check_in_best_precision(net: Network, module, converted, dropped, input_shape, fname: str) -> dict:
    """Check in float64; a float32 module whose forward does not survive conversion is checked as float32."""
    if converted is None:
        return _check_with_torch(net, module, dropped, np.float32, input_shape, fname)
    try:
        return _check_with_torch(net, module, dropped, np.float64, input_shape, fname)
    except UnsupportedLayerError:
        if not converted:
            raise
    return _check_with_torch(net, module.float(), dropped, np.float32, input_shape, fname)


def _walk(leaves: list, fname: str, input_shape, drop_softmax: bool):
    layers: list[Layer] = []
    shape = input_shape
    dropped = None
    for idx, m in enumerate(leaves):
        kind = _kind(m)
        where = f"{fname}: {kind} at position {idx}"
        if kind in _SKIP:
            if kind == "Flatten" and shape is not None:
                shape = (math.prod(shape),)
        elif kind == "Linear":
            dense, shape = _linear(m, shape, where)
            layers.append(dense)
        elif kind in ("Conv2d", "BatchNorm2d", "AvgPool2d"):
            if shape is None or len(shape) != 3:
                raise UnsupportedLayerError(f"{where} needs --input-shape C,H,W (input_shape) and a (C, H, W) input")
            layer, shape = _SPATIAL[kind](m, shape, where)
            if kind == "BatchNorm2d" and layers and isinstance(layers[-1], Conv2d):
                layer = fold(layer, layers.pop())  # folded into the convolution before it (rounding recorded)
            layers.append(layer)
        elif kind in TORCH_MODULES:
            layers.append(_activation(m, TORCH_MODULES[kind]))
        elif kind in _SOFTMAX:
            dropped = _final_softmax(m, leaves[idx + 1 :], where, drop_softmax)
            break
        else:
            raise UnsupportedLayerError(f"{fname}: unsupported PyTorch layer {kind!r} at position {idx}")
    if not any(isinstance(l, AffineLayer) for l in layers):
        raise ModelFormatError(f"{fname}: the module has no Linear or Conv2d layer")
    return Network(tuple(layers)), dropped


def _final_softmax(m, rest: list, where: str, drop: bool):
    kind = _kind(m)
    if any(_kind(r) not in _SKIP for r in rest):
        raise UnsupportedLayerError(f"{where}: a {kind} is supported only as the last layer (dropped with --drop-softmax)")
    if not drop:
        raise UnsupportedLayerError(
            f"{where}: the model ends with a {kind}; pass --drop-softmax (drop_softmax=True) to analyse the logits before it"
        )
    return m


def _param(m, name: str):
    t = getattr(m, name, None)
    return None if t is None else t.detach().double().cpu().numpy()


def _linear(m, shape, where: str) -> tuple[Dense, tuple | None]:
    """A Linear layer from its parameters, or lowered on the unit basis if it acts on a multi-axis tensor."""
    if shape is not None and len(shape) > 1:
        return _lower_by_basis(m, shape, where)
    w = _param(m, "weight")
    if w is None or w.ndim != 2:
        raise UnsupportedLayerError(f"{where} has no 2-D weight")
    if shape is not None and shape[0] != w.shape[1]:
        raise ShapeMismatchError(f"{where} expects {w.shape[1]} inputs but gets {shape[0]}")
    check_dense_size(w.shape[0], w.shape[1], where)
    return Dense(w, _param(m, "bias")), (w.shape[0],)


def _traced_call(m, op: str) -> list | None:
    """Constant arguments of the first ``aten::<op>`` call in a traced module's graph (``None`` if absent).

    Traced modules keep no options as attributes; their graph holds them as constants and lists of constants
    (non-constant arguments are returned as ``None``)."""
    graph = getattr(m, "graph", None)
    if graph is None:
        return None

    def value(v):
        node = v.node()
        if node.kind() == "prim::Constant":
            return v.toIValue()
        if node.kind() == "prim::ListConstruct":
            return [value(i) for i in node.inputs()]
        return None

    for node in graph.nodes():
        if node.kind() == f"aten::{op}":
            return [value(i) for i in node.inputs()]
    return None


def _conv2d(m, shape: tuple, where: str) -> tuple[AffineLayer, tuple]:
    """A :class:`Conv2d` from the module's weights and options; for traced modules the options come from the
    graph (``aten::_convolution``, an ``aten::pad`` before it for non-zero padding modes); a traced layer whose
    graph cannot be read is lowered to a dense matrix on the unit basis."""
    from verification.io._conv import conv2d_layer

    opts = ("stride", "padding", "dilation", "groups", "padding_mode")
    w = _param(m, "weight")
    if w is not None and w.ndim == 4 and all(hasattr(m, a) for a in opts):
        padding = m.padding if isinstance(m.padding, str) else tuple(m.padding)
        layer = conv2d_layer(w, _param(m, "bias"), shape, tuple(m.stride), padding, tuple(m.dilation), int(m.groups),
                             str(m.padding_mode), where)
        return layer, layer.output_shape
    layer = _traced_conv2d(m, w, shape, where)
    if layer is None:
        return _lower_by_basis(m, shape, where)
    return layer, layer.output_shape


def _traced_conv2d(m, w, shape: tuple, where: str) -> Conv2d | None:
    from verification.io._conv import conv2d_layer

    args = _traced_call(m, "_convolution")
    if w is None or w.ndim != 4 or args is None or len(args) < 9 or args[6] is not False:
        return None
    stride, padding, dilation, groups = args[3], args[4], args[5], args[8]
    if not all(isinstance(v, list) and len(v) == 2 for v in (stride, padding, dilation)) or not isinstance(groups, int):
        return None
    mode = "zeros"
    pad = _traced_call(m, "pad")
    if pad is not None:  # F.pad(x, [left, right, top, bottom], mode) before a convolution with padding 0
        if not (isinstance(pad[1], list) and len(pad[1]) == 4 and pad[2] in ("reflect", "replicate", "circular")):
            return None
        if any(padding):
            return None
        left, right, top, bottom = pad[1]
        if (left, top) != (right, bottom):
            return None
        padding, mode = [top, left], pad[2]
    return conv2d_layer(w, _param(m, "bias"), shape, tuple(stride), tuple(padding), tuple(dilation), groups, mode, where)


def _batchnorm2d(m, shape: tuple, where: str) -> tuple[Conv2d, tuple]:
    """An evaluation-mode BatchNorm2d as the per-channel map ``x -> s x + t``, ``s = gamma / sqrt(var + eps)``,
    ``t = beta - mean s`` (folded into a convolution right before it by the caller)."""
    mean, var = _param(m, "running_mean"), _param(m, "running_var")
    eps = getattr(m, "eps", None)
    if eps is None:
        args = _traced_call(m, "batch_norm")
        eps = args[7] if args is not None and len(args) > 7 else None
    if mean is None or var is None or not isinstance(eps, float):
        raise UnsupportedLayerError(f"{where} keeps no running statistics (it normalises with batch statistics)")
    c = shape[0]
    if mean.shape != (c,) or var.shape != (c,):
        raise ShapeMismatchError(f"{where} has {mean.shape[0]} channels but its input has {c}")
    gamma = _param(m, "weight")
    beta = _param(m, "bias")
    from verification.io.onnx_format import bn_scale_shift

    s, t, t_mag = bn_scale_shift(np.ones(c) if gamma is None else gamma, np.zeros(c) if beta is None else beta,
                                 mean, var, eps)
    # |s* - s| <= gamma_4 |s|, |t* - t| <= gamma_7 t_mag (bn_scale_shift)
    return mark_rounded(channel_affine(shape, s, t), dv.gamma(7), channel_affine(shape, np.abs(s), t_mag)), shape


def _avgpool2d(m, shape: tuple, where: str) -> tuple[Conv2d, tuple]:
    """AvgPool2d as a depthwise convolution (count_include_pad=True, no ceil_mode, no divisor_override)."""
    names = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")
    if all(hasattr(m, a) for a in names):
        vals = [getattr(m, a) for a in names]
    else:
        args = _traced_call(m, "avg_pool2d")
        if args is None or len(args) < 7:
            raise UnsupportedLayerError(f"{where}: the options of this traced AvgPool2d cannot be read")
        vals = args[1:7]
    kernel, stride, padding, ceil, include, divisor = vals
    kernel = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
    stride = kernel if stride in (None, []) else ((stride, stride) if isinstance(stride, int) else tuple(stride))
    padding = (padding, padding) if isinstance(padding, int) else tuple(padding)
    if divisor is not None:
        raise UnsupportedLayerError(f"{where} with divisor_override is not supported")
    if any(padding) and not include:
        raise UnsupportedLayerError(f"{where} with count_include_pad=False and padding is not supported")
    pads = (padding[0], padding[0], padding[1], padding[1])
    layer = rounded_pool(avg_pool2d(shape, kernel, stride, pads))
    if ceil:
        _, h, w = shape
        if (h + 2 * padding[0] - kernel[0]) % stride[0] or (w + 2 * padding[1] - kernel[1]) % stride[1]:
            raise UnsupportedLayerError(f"{where} with ceil_mode=True changes the output size; not supported")
    return layer, layer.output_shape


_SPATIAL = {"Conv2d": _conv2d, "BatchNorm2d": _batchnorm2d, "AvgPool2d": _avgpool2d}


def _activation(m, row):
    """The activation of module ``m``; its parameter from the module's attribute, or probed on scalars for
    traced modules that keep no attributes (leaky ReLU: minus its value at -1)."""
    if row.param is None:
        return row.make()
    import torch

    value = getattr(m, row.param, None)
    if value is None:
        dtype = next((p.dtype for p in m.parameters()), torch.float64)
        value = row.torch_probe(lambda x: float(m(torch.tensor([x], dtype=dtype))[0]))
    return row.make(float(value))


def _lower_by_basis(m, shape: tuple, where: str) -> tuple[Dense, tuple]:
    """Dense matrix of an affine layer on inputs of ``shape``: its bias is set to zero while a float64 copy
    of the layer is applied to the unit basis, then restored.  An entry is one weight times 1 (exact) unless
    several taps read the same input (reflect / circular / replicate padding): then it is a rounded sum, and
    the layer records it (:func:`~verification.layers.deviation.mark_rounded`, ``gamma_k`` of the sum of the
    absolute taps, from the same lowering with ``|weights|``; ``k`` from the lowering with weights 1)."""
    import copy

    import torch

    m64 = copy.deepcopy(m).double()
    n = math.prod(shape)
    try:
        with torch.no_grad():
            bias_map = m64(torch.zeros((1,) + tuple(shape), dtype=torch.float64))
    except Exception as exc:
        msg = " ".join(str(exc).split())[:160]
        raise ShapeMismatchError(f"{where} cannot be applied to inputs of shape {tuple(shape)}: {msg}") from None
    out_shape = tuple(bias_map.shape[1:])
    n_out = math.prod(out_shape)
    check_dense_size(n_out, n, where)
    with torch.no_grad():
        bias = getattr(m64, "bias", None)
        if bias is not None:
            bias.zero_()
        mat = _basis_matrix(m64, shape, n, n_out)
        weight = getattr(m64, "weight", None)
        if weight is None:
            return Dense(mat, bias_map.reshape(-1).numpy()), out_shape
        saved = weight.detach().clone()
        weight.fill_(1.0)
        taps = _basis_matrix(m64, shape, n, n_out)
        layer = Dense(mat, bias_map.reshape(-1).numpy())
        if taps.max(initial=0.0) > 1.0:  # sums of several weights: rounded
            weight.copy_(saved.abs())
            mark_rounded(layer, dv.gamma(int(taps.max()) + 1), Dense(_basis_matrix(m64, shape, n, n_out), np.zeros(n_out)))
    return layer, out_shape


def _basis_matrix(m, shape: tuple, n: int, n_out: int) -> np.ndarray:
    """The ``(n_out, n)`` matrix of the (bias-free, float64) module ``m`` on the unit basis, in chunks."""
    import torch

    mat = np.empty((n_out, n))
    step = max(1, _BASIS_CHUNK // max(n, n_out))
    for start in range(0, n, step):
        k = min(step, n - start)
        basis = torch.zeros((k, n), dtype=torch.float64)
        basis[torch.arange(k), torch.arange(start, start + k)] = 1.0
        mat[:, start : start + k] = m(basis.reshape((k,) + tuple(shape))).reshape(k, n_out).numpy().T
    return mat


# ------------------------------------------------------------------ the guard
def _check_with_torch(net: Network, module, dropped, dtype, input_shape, fname: str) -> dict:
    import torch

    from verification.io._crosscheck import crosscheck

    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    shape = tuple(input_shape) if input_shape else (net.in_dim,)
    if math.prod(shape) != net.in_dim:
        raise ShapeMismatchError(f"{fname}: input_shape {shape} has {math.prod(shape)} entries, the network takes {net.in_dim}")
    transform, hook = None, None
    if isinstance(dropped, torch.jit.ScriptModule):  # no hooks: compare after the (log)softmax
        transform = _softmax_transform(_kind(dropped), getattr(dropped, "dim", None))
    elif dropped is not None:  # the logits themselves: the dropped layer returns its input
        hook = dropped.register_forward_hook(lambda mod, inp, out: inp[0])

    def run(x: np.ndarray) -> np.ndarray:
        out = module(torch.from_numpy(np.ascontiguousarray(x)).to(tdtype).reshape((len(x),) + shape))
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"the module returns a {type(out).__name__}, not a tensor")
        return out.detach().double().numpy()

    try:
        return crosscheck(net, run, dtype, fname, "the torch module", transform=transform)
    finally:
        if hook is not None:
            hook.remove()


def _softmax_transform(kind: str, dim):
    """Our logits -> the source's output, for a dropped final (Log)Softmax over the features."""

    def apply(y: np.ndarray) -> np.ndarray:
        z = y - y.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1, keepdims=True))
        return z - lse if kind == "LogSoftmax" else np.exp(z - lse)

    if dim not in (None, 1, -1):
        raise UnsupportedLayerError(f"a final {kind} over dim={dim} (not the features) cannot be dropped")
    return apply
