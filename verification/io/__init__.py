"""Model loaders: every format becomes a :class:`verification.network.Network`.

``load_network(path, trust=False, arch=None, input_shape=None)`` detects the format from the content
(ONNX/TorchScript/zip, MATLAB header, .npz) and the extension.  One module per format, each with a
``load(path, **opts) -> Network`` function; loaders never compute bounds.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from verification.errors import ModelFormatError
from verification.network import Network

__all__ = ["load_network", "save_network", "FORMATS"]

FORMATS = {
    ".onnx": "onnx",
    ".nnet": "nnet",
    ".pt": "torch",
    ".pth": "torch",
    ".mat": "mat",
    ".npz": "npz",
}


def _detect(path: Path) -> str:
    ext = path.suffix.lower()
    with open(path, "rb") as fh:
        head = fh.read(128)
    if head.startswith(b"MATLAB"):
        return "mat"
    if ext in FORMATS:
        return FORMATS[ext]
    if head.startswith(b"PK") and zipfile.is_zipfile(path):
        names = zipfile.ZipFile(path).namelist()
        return "npz" if all(n.endswith(".npy") for n in names) else "torch"
    raise ModelFormatError(
        f"unknown model format for {path.name!r}: expected one of {', '.join(sorted(FORMATS))}"
    )


def load_network(
    path: str | os.PathLike,
    trust: bool = False,
    arch: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    **options,
) -> Network:
    """Load a network from ``.onnx``, ``.nnet``, ``.pt``/``.pth``, ``.mat`` or ``.npz``.

    Parameters
    ----------
    trust:
        PyTorch only: allow unpickling arbitrary Python objects (a whole saved ``nn.Module``).  This runs code
        from the file; the default (``False``) loads with ``torch.load(weights_only=True)``.
    arch:
        For weight-only formats (state_dict, ``.mat``): the hidden activations, one name for all hidden layers
        (``"relu"``, the default) or a comma-separated list (``"tanh,relu"``).
    input_shape:
        ``(C, H, W)`` of the input, needed to lower ``Conv2d`` layers of a PyTorch module to dense matrices.
    options:
        Format-specific, e.g. ``include_normalization=True`` for ``.nnet``.
    """
    p = Path(path)
    if not p.exists():
        raise ModelFormatError(f"model file not found: {str(path)!r}")
    if p.is_dir():
        raise ModelFormatError(f"{str(path)!r} is a directory, not a model file")
    fmt = _detect(p)
    if fmt == "onnx":
        from verification.io import onnx_format as mod
    elif fmt == "nnet":
        from verification.io import nnet as mod
    elif fmt == "torch":
        from verification.io import torch_format as mod
        options.update(trust=trust, arch=arch, input_shape=input_shape)
    elif fmt == "mat":
        from verification.io import mat as mod
        options.update(arch=arch)
    else:
        from verification.io import npz as mod
    net = mod.load(p, **options)
    meta = dict(net.metadata)
    meta.setdefault("source", str(p))
    meta.setdefault("format", fmt)
    return Network(net.layers, net.input_lower, net.input_upper, meta)


def save_network(net: Network, path: str | os.PathLike) -> None:
    """Save ``net`` in our ``.npz`` exchange format (round-trips through :func:`load_network`)."""
    from verification.io import npz

    npz.save(net, Path(path))
