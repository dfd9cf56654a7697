"""PyTorch loader: ``.pt`` / ``.pth`` files.

Accepted contents, in order of preference:

1. a **state_dict** (possibly under a ``"state_dict"`` / ``"model_state_dict"`` key): 2-D ``*.weight``
   tensors in insertion order with their ``*.bias``; hidden activations from ``arch`` (default ReLU);
2. a **TorchScript** archive (``torch.jit.save``) of an ``nn.Sequential``-style module;
3. a whole pickled ``nn.Module`` (``torch.save(model)``): unpickling runs code from the file, so it is
   refused unless ``trust=True``.

Everything except (3) is read with ``torch.load(..., weights_only=True)``.  Modules are walked as a chain of
Linear, Conv2d (lowered to an exact dense matrix, needs ``input_shape``), Flatten, ReLU, LeakyReLU, Tanh,
Sigmoid, Identity and Dropout children; nested Sequentials are flattened.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from verification.activations import LeakyReLU, ReLU, Sigmoid, Tanh
from verification.errors import ModelFormatError, UnsupportedLayerError, UntrustedModelError
from verification.io.common import chain_from_weights, parse_arch
from verification.network import Dense, Layer, Network

__all__ = ["load"]


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    names = zipfile.ZipFile(path).namelist()
    return any(n.endswith("constants.pkl") for n in names) or any("/code/" in n for n in names)


def load(path: Path, trust: bool = False, arch: str | None = None, input_shape=None) -> Network:
    import pickle

    import torch

    if _is_torchscript(path):
        try:
            module = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:
            raise ModelFormatError(f"could not load TorchScript file {path.name!r}: {type(exc).__name__}") from None
        return _from_module(module, path.name, input_shape)
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" not in str(exc) and "Unsupported global" not in str(exc):
            raise ModelFormatError(f"could not read PyTorch file {path.name!r}: {str(exc).splitlines()[0]}") from None
        if not trust:
            raise UntrustedModelError(
                f"{path.name!r} contains a pickled Python object (a whole nn.Module); unpickling it runs code "
                "from the file. Save a state_dict or TorchScript instead, or pass --trust / trust=True if you trust it"
            ) from None
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=False)  # explicit trust given
        except Exception as exc2:
            raise ModelFormatError(f"could not unpickle {path.name!r}: {type(exc2).__name__}: {exc2}") from None
    except Exception as exc:
        raise ModelFormatError(f"could not read PyTorch file {path.name!r} (truncated or corrupt?): {type(exc).__name__}") from None
    if isinstance(obj, torch.nn.Module):
        return _from_module(obj, path.name, input_shape)
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
        return _from_state_dict(obj, path.name, arch)
    raise ModelFormatError(f"{path.name!r} holds a {type(obj).__name__}, not a state_dict or module")


def _from_state_dict(sd: dict, fname: str, arch: str | None) -> Network:
    import torch

    weights, biases = [], []
    for key, val in sd.items():
        if not isinstance(val, torch.Tensor):
            continue
        if key.endswith("weight"):
            if val.ndim != 2:
                raise UnsupportedLayerError(
                    f"{fname}: state_dict entry {key!r} has shape {tuple(val.shape)}; only Linear (2-D) weights can be "
                    "read from a state_dict (export convolutional models to ONNX or TorchScript)"
                )
            weights.append(val.detach().double().numpy())
            bkey = key[: -len("weight")] + "bias"
            b = sd.get(bkey)
            biases.append(None if b is None else b.detach().double().numpy())
    if not weights:
        raise ModelFormatError(f"{fname}: no '*.weight' tensors found in the state_dict")
    return chain_from_weights(weights, biases, parse_arch(arch, len(weights) - 1), fname)


def _children(module) -> list:
    import torch

    kids = list(module.children())
    if not kids:
        return [module]
    is_seq = isinstance(module, torch.nn.Sequential) or getattr(module, "original_name", "") == "Sequential"
    if not is_seq and len(kids) > 1:
        raise UnsupportedLayerError(
            f"module {type(module).__name__} ({getattr(module, 'original_name', '')}) is not an nn.Sequential: its "
            "forward order is unknown; export it to ONNX or save a state_dict with --arch"
        )
    out = []
    for k in kids:
        out.extend(_children(k))
    return out


def _kind(m) -> str:
    return getattr(m, "original_name", None) or type(m).__name__


def _param(m, name: str):
    t = getattr(m, name, None)
    return None if t is None else t.detach().double().cpu().numpy()


def _from_module(module, fname: str, input_shape) -> Network:
    layers: list[Layer] = []
    shape = tuple(input_shape) if input_shape else None
    for idx, m in enumerate(_children(module)):
        kind = _kind(m)
        if kind == "Linear":
            layers.append(Dense(_param(m, "weight"), _param(m, "bias")))
            shape = None
        elif kind == "Conv2d":
            if shape is None:
                raise UnsupportedLayerError(f"{fname}: Conv2d at position {idx} needs --input-shape C,H,W to be lowered")
            dense, shape = _lower_conv(m, shape)
            layers.append(dense)
        elif kind in ("Flatten", "Identity", "Dropout"):
            continue
        elif kind == "ReLU":
            layers.append(ReLU())
        elif kind == "LeakyReLU":
            layers.append(LeakyReLU(float(m.negative_slope)))
        elif kind == "Tanh":
            layers.append(Tanh())
        elif kind == "Sigmoid":
            layers.append(Sigmoid())
        else:
            raise UnsupportedLayerError(f"{fname}: unsupported PyTorch layer {kind!r} at position {idx}")
    if not any(isinstance(l, Dense) for l in layers):
        raise ModelFormatError(f"{fname}: the module has no Linear or Conv2d layer")
    return Network(tuple(layers))


def _lower_conv(m, shape: tuple) -> tuple[Dense, tuple]:
    """Exact dense matrix of a Conv2d on inputs of shape (C, H, W), by applying it to the unit basis."""
    import torch

    c, h, w = shape
    n = c * h * w
    with torch.no_grad():
        basis = torch.eye(n, dtype=torch.float64).reshape(n, c, h, w)
        weight = m.weight.detach().double()
        out = torch.nn.functional.conv2d(
            basis, weight, None, stride=m.stride, padding=m.padding, dilation=m.dilation, groups=m.groups
        )
    out_shape = tuple(out.shape[1:])
    mat = out.reshape(n, -1).T.numpy()
    bias = np.zeros(out_shape)
    if m.bias is not None:
        bias += m.bias.detach().double().numpy()[:, None, None]
    return Dense(mat, bias.reshape(-1)), out_shape
