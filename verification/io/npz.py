"""Our ``.npz`` exchange format.

Arrays ``W0 .. W{n-1}`` (weights ``(out, in)``, real floats), optional ``b0 .. b{n-1}``, optional
``input_lower`` / ``input_upper``, optional ``conv`` (a string: JSON list with one entry per weight, ``null``
for a dense layer, ``{"input_shape", "stride", "dilation", "groups", "pads", "padding_mode"}`` for a
convolution, whose ``W{k}`` is the kernel ``(C_out, C_in/groups, kh, kw)`` and ``b{k}`` one bias per output
entry or per channel, or ``{"sparse": [rows, cols]}`` for a sparse layer in CSR form: ``W{k}`` its stored
values, ``I{k}`` their column indices and ``P{k}`` the row pointers; :func:`save` writes it for networks
with convolutions or sparse layers) and at most one of two activation keys:

* ``activations`` (what :func:`save` writes): a string holding a JSON list of activation specs
  (:meth:`Activation.to_spec`), one per hidden layer;
* ``activation`` (the common exchange layout): short names read by
  :func:`~verification.activations.names.parse_activation` (``'tanh'``, ``'leaky_relu(0.1)'``, ...), either
  one string for every hidden layer or a 1-D array of strings, one per hidden layer.

Rules: both keys in one file, or a stored key together with ``arch``, are refused (the file would no longer
say which function it is); a name list of the wrong length is a ``ShapeMismatchError``, an unknown name an
``UnsupportedLayerError``.  Nothing else is read: gaps in the numbering, unknown keys, complex / object
arrays and malformed specs are refused.  With neither key the activations come from ``arch``, else ReLU
between layers is assumed and recorded in ``metadata["assumed"]``.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from verification.activations import Activation, GroupSort, Householder, LeakyReLU, from_spec
from verification.activations.names import NAMES, parse_activation
from verification.errors import (InvalidParameterError, ModelFormatError, ShapeMismatchError, UnsupportedLayerError,
                                 VerificationError)
from verification.io.common import assumed_activations, chain_from_weights, parse_arch, real_array
from verification.layers import Conv2d, SparseAffine
from verification.network import Dense, Network

__all__ = ["load", "save"]

_OPTIONAL = {"activations", "activation", "input_lower", "input_upper", "conv"}
_CONV_KEYS = {"input_shape", "stride", "dilation", "groups", "pads", "padding_mode"}
_SPEC_KEYS = {row.name: {row.param} - {None} for row in NAMES}  # spec type -> its optional fields


def _open(path: Path) -> dict[str, np.ndarray]:
    import zipfile

    if not zipfile.is_zipfile(path):
        raise ModelFormatError(f"{path.name!r} is not an .npz archive (not a zip file; truncated or a single .npy?)")
    try:
        with np.load(str(path), allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except Exception as exc:
        msg = " ".join(str(exc).split())[:160]
        raise ModelFormatError(f"could not read .npz file {path.name!r} (truncated or corrupt?): {msg}") from None


def _check_keys(keys: set[str], fname: str) -> int:
    """Number of layers ``n``; refuses gaps and unknown keys."""
    numbered = [k for k in keys if re.fullmatch(r"[WbIP](0|[1-9][0-9]{0,5})", k)]
    n = 1 + max((int(k[1:]) for k in numbered if k[0] == "W"), default=-1)
    if n == 0:
        raise ModelFormatError(f"{fname!r} has no arrays W0, b0, W1, b1, ...")
    missing = [f"W{k}" for k in range(n) if f"W{k}" not in keys]
    if missing:
        raise ModelFormatError(f"{fname!r} has W{n - 1} but no {missing[0]}: weights must be numbered W0..W{n - 1} without gaps")
    allowed = {f"{c}{k}" for k in range(n) for c in "WbIP"} | _OPTIONAL
    unknown = sorted(keys - allowed)
    if unknown:
        raise ModelFormatError(
            f"{fname!r}: unknown array(s) {unknown[:4]}; expected W0..W{n - 1}, b0..b{n - 1}, activations or "
            "activation, input_lower, input_upper, conv"
        )
    return n


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ModelFormatError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _activation(spec, what: str) -> Activation:
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        raise ModelFormatError(f"{what} must be an object with a 'type', got {str(spec)[:60]!r}")
    kind = spec["type"]
    if kind not in _SPEC_KEYS:
        raise ModelFormatError(f"{what} has unknown type {kind!r}; expected one of {sorted(_SPEC_KEYS)}")
    extra = set(spec) - {"type"} - _SPEC_KEYS[kind]
    if extra:
        raise ModelFormatError(f"{what} ({kind}) has unknown field(s) {sorted(extra)}")
    if kind == "leaky_relu":
        return LeakyReLU(_number(spec.get("negative_slope", 0.01), f"{what} negative_slope"))
    if kind in ("groupsort", "maxmin"):
        g = _number(spec.get("group_size", 2), f"{what} group_size")
        if g != int(g) or g < 2 or (kind == "maxmin" and g != 2):
            raise ModelFormatError(f"{what} ({kind}) group_size must be an integer >= 2 (2 for maxmin), got {g:g}")
        return GroupSort(int(g))
    if kind == "householder":
        v = spec.get("v")
        if not isinstance(v, list) or len(v) < 2:
            raise ModelFormatError(f"{what} (householder) needs a list 'v' of at least 2 numbers")
        return Householder(np.array([_number(c, f"{what} v entry") for c in v]))
    return from_spec({"type": kind})  # activations without parameters


def _json_array(raw: np.ndarray, key: str, fname: str) -> list:
    """The JSON list stored as a 0-d string array under ``key`` (one-line errors otherwise)."""
    if raw.dtype.kind != "U" or raw.ndim != 0:
        raise ModelFormatError(
            f"{fname!r}: {key!r} must be a string holding a JSON list (got dtype {raw.dtype}, shape {raw.shape})"
        )
    try:
        specs = json.loads(str(raw))
    except (ValueError, RecursionError) as exc:
        raise ModelFormatError(f"{fname!r}: {key!r} is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(specs, list):
        raise ModelFormatError(f"{fname!r}: {key!r} must be a JSON list")
    return specs


def _json_list(raw: np.ndarray, key: str, n: int, fname: str) -> list:
    specs = _json_array(raw, key, fname)
    if len(specs) != n:
        raise ModelFormatError(f"{fname!r}: {key!r} must be a JSON list with one entry per weight ({n})")
    return specs


def _conv_layer(w: np.ndarray, b, spec, what: str) -> Conv2d:
    if not isinstance(spec, dict) or set(spec) != _CONV_KEYS:
        raise ModelFormatError(f"{what}: a convolution spec needs exactly the fields {sorted(_CONV_KEYS)}")
    ints = [spec["input_shape"], spec["stride"], spec["dilation"], spec["pads"], [spec["groups"]]]
    if not all(isinstance(v, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in v) for v in ints):
        raise ModelFormatError(f"{what}: convolution spec fields must be integers or lists of integers")
    try:
        return Conv2d(w, b, tuple(spec["input_shape"]), tuple(spec["stride"]), tuple(spec["dilation"]),
                      spec["groups"], tuple(spec["pads"]), str(spec["padding_mode"]))
    except VerificationError as exc:
        raise ModelFormatError(f"{what}: {exc}") from None


def _index_array(raw, what: str) -> np.ndarray:
    arr = np.asarray(raw)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise ModelFormatError(f"{what} must be a 1-D integer array (got dtype {arr.dtype}, shape {arr.shape})")
    return arr.astype(np.int64)


def _sparse_layer(w: np.ndarray, b, spec: dict, data: dict, k: int, what: str) -> SparseAffine:
    from scipy import sparse

    shape = spec.get("sparse")
    if set(spec) != {"sparse"} or not (isinstance(shape, list) and len(shape) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)):
        raise ModelFormatError(f"{what}: a sparse spec is {{\"sparse\": [rows, cols]}} with positive integers")
    if f"I{k}" not in data or f"P{k}" not in data:
        raise ModelFormatError(f"{what}: a sparse layer needs the arrays I{k} (column indices) and P{k} (row pointers)")
    idx, ptr = _index_array(data[f"I{k}"], f"{what} I{k}"), _index_array(data[f"P{k}"], f"{what} P{k}")
    rows, cols = shape
    if w.ndim != 1 or ptr.shape[0] != rows + 1 or ptr[0] != 0 or np.any(np.diff(ptr) < 0) or ptr[-1] != w.shape[0] \
            or idx.shape[0] != w.shape[0] or (idx.size and (idx.min() < 0 or idx.max() >= cols)):
        raise ModelFormatError(f"{what}: inconsistent CSR arrays (values {w.shape}, indices {idx.shape}, pointers "
                               f"{ptr.shape} for a {rows} x {cols} matrix)")
    try:
        return SparseAffine(sparse.csr_array((w, idx, ptr), shape=(rows, cols)), b)
    except VerificationError as exc:
        raise ModelFormatError(f"{what}: {exc}") from None


def _with_convolutions(weights: list, biases: list, acts: list, specs: list, fname: str, data: dict) -> Network:
    layers: list = []
    for k, (w, b, spec) in enumerate(zip(weights, biases, specs)):
        w = real_array(w, f"{fname!r}: weight {k}")
        b = None if b is None else real_array(b, f"{fname!r}: bias {k}")
        if spec is None:
            layers.append(chain_from_weights([w], [b], [], fname).layers[0])
        elif isinstance(spec, dict) and "sparse" in spec:
            layers.append(_sparse_layer(w, b, spec, data, k, f"{fname!r}: layer {k}"))
        else:
            layers.append(_conv_layer(w, b, spec, f"{fname!r}: layer {k}"))
        if k < len(weights) - 1:
            layers.append(acts[k])
    try:
        return Network(tuple(layers))
    except VerificationError as exc:
        raise ModelFormatError(f"{fname!r}: {exc}") from None


def _activations(raw: np.ndarray, n_hidden: int, fname: str) -> list[Activation]:
    specs = _json_array(raw, "activations", fname)
    if len(specs) != n_hidden:
        raise ShapeMismatchError(f"{fname!r}: {len(specs)} activations for {n_hidden + 1} weights (need {n_hidden})")
    return [_activation(s, f"{fname!r}: activation {k}") for k, s in enumerate(specs)]


def _named_activations(raw: np.ndarray, n_hidden: int, fname: str) -> list[Activation]:
    """The ``activation`` key: one short name for every hidden layer, or a 1-D array of one per layer."""
    if raw.dtype.kind not in "US" or raw.ndim > 1:
        raise ModelFormatError(
            f"{fname!r}: 'activation' must be a string or a 1-D array of strings such as 'tanh' "
            f"(got dtype {raw.dtype}, shape {raw.shape})"
        )
    if raw.dtype.kind == "S":
        try:
            raw = np.char.decode(raw, "ascii")
        except UnicodeDecodeError:
            raise ModelFormatError(f"{fname!r}: 'activation' holds non-ASCII bytes") from None
    if raw.ndim == 1 and raw.shape[0] != n_hidden:
        raise ShapeMismatchError(
            f"{fname!r}: 'activation' lists {raw.shape[0]} names for {n_hidden} hidden layers "
            f"(need {n_hidden}, or one string for all)"
        )
    try:
        if raw.ndim == 0:
            return [parse_activation(str(raw))] * n_hidden
        return [parse_activation(str(a)) for a in raw]
    except UnsupportedLayerError as exc:
        raise UnsupportedLayerError(f"{fname!r}: 'activation': {exc}") from None


def load(path: Path, arch: str | None = None) -> Network:
    fname = path.name
    data = _open(path)
    n = _check_keys(set(data), fname)
    weights = [data[f"W{k}"] for k in range(n)]
    biases = [data.get(f"b{k}") for k in range(n)]
    stored = [k for k in ("activations", "activation") if k in data]
    if len(stored) == 2:
        raise ModelFormatError(f"{fname!r} has both 'activations' and 'activation'; keep one of them")
    if stored and arch is not None:
        raise InvalidParameterError(f"{fname!r} stores its activations ({stored[0]!r}); do not pass --arch / arch")
    if "activations" in data:
        acts = _activations(data["activations"], n - 1, fname)
    elif "activation" in data:
        acts = _named_activations(data["activation"], n - 1, fname)
    else:
        acts = parse_arch(arch, n - 1)
    if "conv" in data:
        net = _with_convolutions(weights, biases, acts, _json_list(data["conv"], "conv", n, fname), fname, data)
    else:
        if any(f"{c}{k}" in data for k in range(n) for c in "IP"):
            raise ModelFormatError(f"{fname!r}: arrays I<k>/P<k> belong to sparse layers, declared in 'conv'")
        net = chain_from_weights(weights, biases, acts, fname)
    domain = [_bound(data, k, fname) for k in ("input_lower", "input_upper")]
    if (domain[0] is None) != (domain[1] is None):
        raise ModelFormatError(f"{fname!r}: 'input_lower' and 'input_upper' must be given together")
    meta = {}
    if not stored and arch is None:
        meta["assumed"] = assumed_activations(n - 1, "the .npz file")
    return Network(net.layers, domain[0], domain[1], meta)


def _bound(data: dict, key: str, fname: str) -> np.ndarray | None:
    if key not in data:
        return None
    arr = real_array(data[key], f"{fname!r}: {key!r}")
    if not np.all(np.isfinite(arr)):
        raise ModelFormatError(f"{fname!r}: {key!r} has a NaN or infinite entry")
    return arr


def save(net: Network, path: Path) -> None:
    cnet = net.canonical()
    arrays: dict[str, np.ndarray] = {}
    convs: list = []
    for k, d in enumerate(cnet.affine_layers):
        if isinstance(d, Conv2d):
            convs.append({"input_shape": list(d.input_shape), "stride": list(d.stride), "dilation": list(d.dilation),
                          "groups": d.groups, "pads": list(d.pads), "padding_mode": d.padding_mode})
        elif isinstance(d, SparseAffine):
            convs.append({"sparse": [d.out_features, d.in_features]})
            arrays[f"W{k}"], arrays[f"I{k}"], arrays[f"P{k}"] = d.matrix.data, d.matrix.indices, d.matrix.indptr
            arrays[f"b{k}"] = d.bias
            continue
        elif isinstance(d, Dense):
            convs.append(None)
        else:
            raise ModelFormatError(f"cannot save layer {k} ({d.describe()}) in the .npz format (dense, conv, sparse)")
        arrays[f"W{k}"] = d.weight
        arrays[f"b{k}"] = d.bias
    if any(c is not None for c in convs):
        arrays["conv"] = np.array(json.dumps(convs))
    acts: list[Activation] = cnet.activations
    arrays["activations"] = np.array(json.dumps([a.to_spec() for a in acts]))
    if cnet.input_lower is not None:
        arrays["input_lower"] = cnet.input_lower
    if cnet.input_upper is not None:
        arrays["input_upper"] = cnet.input_upper
    np.savez(str(path), **arrays)
