"""Model loaders: every format becomes a :class:`verification.network.Network`.

``load_network(path, trust=False, arch=None, input_shape=None, drop_softmax=False)`` detects the format
from the content (ONNX/TorchScript/zip, MATLAB header, .npz) and the extension.  One module per format,
each with a ``load(path, **opts) -> Network`` function; loaders never compute bounds.

Policies (see docs/network.md): executable formats (ONNX, PyTorch modules) are checked against their own
runtime after loading; an activation that is not stored in the file is taken from ``arch`` or assumed
(recorded in ``metadata["assumed"]``); a final Softmax is refused unless ``drop_softmax`` (recorded in
``metadata["dropped"]``); any failure on a corrupt file is a one-line :class:`ModelFormatError`.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path

import numpy as np

from verification.errors import InvalidParameterError, ModelFormatError, VerificationError
from verification.io.common import check_widths
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
_MODULES = {"onnx": "onnx_graph", "nnet": "nnet", "torch": "torch_format", "mat": "mat", "npz": "npz"}
#: Largest model file read (bytes); text (.nnet) files are parsed into Python objects, hence the lower limit.
MAX_FILE_BYTES = 4 << 30
MAX_TEXT_BYTES = 256 << 20
# format -> options its loader accepts besides the common ones
_OPTIONS = {"nnet": {"include_normalization"}}
# executable formats: loaded networks that passed their cross-check are cached per user (io/cache.py)
_CACHED = ("onnx", "torch")


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


def _loader_options(fmt: str, name: str, trust, arch, input_shape, drop_softmax, check, options: dict) -> dict:
    unknown = sorted(set(options) - _OPTIONS.get(fmt, set()))
    if unknown:
        raise InvalidParameterError(f"unknown option(s) {unknown} for a {fmt} file")
    if arch is not None and fmt in ("onnx", "nnet"):
        raise InvalidParameterError(
            f"--arch / arch applies to weight-only files (state_dict, .mat, .npz without activations); {name!r} "
            f"is an {fmt} file that stores its activations"
        )
    if fmt == "onnx":
        return dict(options, drop_softmax=drop_softmax, check=check)
    if fmt == "torch":
        return dict(options, trust=trust, arch=arch, input_shape=input_shape, drop_softmax=drop_softmax, check=check)
    if fmt in ("mat", "npz"):
        return dict(options, arch=arch)
    return dict(options)


def load_network(
    path: str | os.PathLike,
    trust: bool = False,
    arch: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    drop_softmax: bool = False,
    check: bool = True,
    **options,
) -> Network:
    """Load a network from ``.onnx``, ``.nnet``, ``.pt``/``.pth``, ``.mat`` or ``.npz``.

    Parameters
    ----------
    trust:
        PyTorch only: allow unpickling arbitrary Python objects (a whole saved ``nn.Module``).  This runs code
        from the file; the default (``False``) loads with ``torch.load(weights_only=True)``.
    arch:
        For formats that do not store activations (state_dict, ``.mat``, ``.npz`` without ``activations``):
        one name for all hidden layers (``"relu"``) or a comma-separated list (``"tanh,relu"``).  Without it
        ReLU is assumed and the assumption recorded in ``net.metadata["assumed"]``.  Refused for files that
        store their activations.
    input_shape:
        ``(C, H, W)`` of the input, needed to lower ``Conv2d`` layers of a PyTorch module to dense matrices.
    drop_softmax:
        ONNX / PyTorch modules: drop a final Softmax / LogSoftmax and analyse the logits (recorded in
        ``net.metadata["dropped"]``); without it such models are refused.
    check:
        ONNX / PyTorch modules: compare the loaded network with the model run by onnxruntime / torch and
        refuse on disagreement (default).  ``False`` skips the check (library use only).
    options:
        Format-specific, e.g. ``include_normalization=True`` for ``.nnet``.
    """
    p = _model_file(path)
    try:
        fmt = _detect(p)
    except VerificationError:
        raise
    except Exception as exc:  # unreadable file, corrupt zip directory, ...
        raise ModelFormatError(f"cannot read {str(path)!r}: {type(exc).__name__}") from None
    opts = _loader_options(fmt, p.name, trust, arch, input_shape, drop_softmax, check, options)
    # a trusted pickle of a whole module runs the user's current class code: its function is not fixed by the
    # file's bytes, so it is loaded and cross-checked every time
    cacheable = fmt in _CACHED and check and not (fmt == "torch" and trust)
    net = _cached_load(fmt, p, opts) if cacheable else _run_loader(fmt, p, opts)
    meta = dict(net.metadata)
    meta.setdefault("source", str(p))
    meta.setdefault("format", fmt)
    return check_widths(Network(net.layers, net.input_lower, net.input_upper, meta), p.name)


def _model_file(path: str | os.PathLike) -> Path:
    """``path`` as a regular file of at most ``MAX_FILE_BYTES`` (devices and FIFOs would never end)."""
    try:
        p = Path(path)
        if not p.exists():
            raise ModelFormatError(f"model file not found: {str(path)!r}")
        if p.is_dir():
            raise ModelFormatError(f"{str(path)!r} is a directory, not a model file")
        if not p.is_file():
            raise ModelFormatError(f"{str(path)!r} is not a regular file (a device, FIFO or socket?)")
        size = p.stat().st_size
    except (OSError, ValueError, TypeError) as exc:
        raise ModelFormatError(f"cannot open model file {str(path)[:200]!r}: {type(exc).__name__}") from None
    limit = MAX_TEXT_BYTES if p.suffix.lower() == ".nnet" else MAX_FILE_BYTES
    if size > limit:
        raise ModelFormatError(f"{p.name!r} has {size / 2**20:.0f} MiB, above the limit of {limit / 2**20:.0f} MiB for this format")
    return p


def _cached_load(fmt: str, path: Path, opts: dict) -> Network:
    """Load through the per-user cache of cross-checked networks (:mod:`verification.io.cache`)."""
    from verification.io import cache

    try:
        if path.stat().st_size > cache.MAX_ENTRY_BYTES:  # its network would not be stored: do not hash it
            return _run_loader(fmt, path, opts)
        k = cache.key(path, fmt, opts)
    except OSError:
        return _run_loader(fmt, path, opts)
    hit = cache.lookup(k)
    if hit is not None:
        meta = dict(hit.metadata, cache=f"loaded from the cache of cross-checked networks (key {k[:16]})")
        return Network(hit.layers, hit.input_lower, hit.input_upper, meta)
    net = _run_loader(fmt, path, opts)
    if "crosscheck" in net.metadata and "external_data" not in net.metadata:  # the key covers one file's bytes
        cache.store(k, net)
    return net


def _run_loader(fmt: str, path: Path, opts: dict) -> Network:
    """Run the format's loader; any unexpected exception on a corrupt file becomes one ModelFormatError."""
    import importlib

    mod = importlib.import_module(f"verification.io.{_MODULES[fmt]}")
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return mod.load(path, **opts)
    except VerificationError as exc:
        if path.name in str(exc):
            raise
        raise type(exc)(f"{path.name!r}: {exc}") from None  # name the file in every message
    except (Exception, RecursionError, MemoryError) as exc:
        msg = " ".join(str(exc).split())[:160]
        raise ModelFormatError(
            f"could not load {path.name!r} ({fmt} format; corrupt or unsupported content): {type(exc).__name__}: {msg}"
        ) from None


def save_network(net: Network, path: str | os.PathLike) -> None:
    """Save ``net`` in our ``.npz`` exchange format (round-trips through :func:`load_network`)."""
    from verification.io import npz

    npz.save(net, Path(path))
