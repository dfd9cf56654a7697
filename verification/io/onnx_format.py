"""ONNX loader: a single-input chain of affine and activation nodes.

Data-path nodes: Gemm, MatMul, Add, Sub, Mul, Div (with constants), Conv (kept as a
:class:`~verification.layers.Conv2d`), BatchNormalization (evaluation mode; folded into the convolution
before it, else a per-channel layer), AveragePool, GlobalAveragePool and ReduceMean over the spatial axes
(depthwise convolutions), the activations of the name table, Flatten, Reshape (of an ``(N, C, H, W)``
tensor only as the flatten to ``(N, C*H*W)``), Squeeze, Unsqueeze, Identity, Dropout, Cast (to a float
type), and a final Softmax / LogSoftmax (refused unless ``drop_softmax=True``).  Constant subgraphs
(Constant, Shape, Gather, Concat, Cast, Unsqueeze, Squeeze, Reshape, Identity, arithmetic) are folded.
Consecutive dense nodes become one dense layer; each activation closes a layer.  Anything else (MaxPool,
residual branches, custom domains, ...) raises :class:`UnsupportedLayerError` naming the operator and the node.

The initial affine map is kept lazily (identity or diagonal) so that memory follows the model's own
weights; no dense layer may exceed :data:`~verification.io.common.MAX_DENSE_ENTRIES` entries.  After
loading, the network is checked against onnxruntime (:mod:`verification.io._crosscheck`).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from verification.activations import Activation
from verification.activations.names import ONNX_OPS
from verification.errors import ModelFormatError, ShapeMismatchError, UnsupportedLayerError
from verification.io.common import MAX_DENSE_ENTRIES, check_dense_size, check_widths, pow2, real_array, rounded_pool
from verification.layers import AffineLayer, Conv2d, avg_pool2d, channel_affine, global_avg_pool
from verification.layers.deviation import deviation_of, fold, gamma, mark_rounded
from verification.network import Dense, Network

__all__ = ["load", "load_chain"]

_SHAPE_OPS = {"Flatten", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Dropout", "Cast"}
_SOFTMAX = {"Softmax", "LogSoftmax"}
_STANDARD_DOMAINS = ("", "ai.onnx")
# element types: TensorProto codes
_FLOAT_INPUTS = {1: np.float32, 11: np.float64, 10: np.float16}
_NUMERIC_TENSORS = {1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13}
_U = 2.0 ** -53  # unit roundoff of float64
_EPS_DEFAULT = float(np.float32(1e-5))  # BatchNormalization's default epsilon: a float32 attribute, as runtimes read it


class _Var:
    """The data tensor: ``value = (A h + c).reshape(shape)``, ``h`` the last activation's output.

    ``A`` is ``None`` (identity), a 1-D array (diagonal) or a dense matrix.

    Rounding (see :mod:`verification.layers.deviation`): ``err`` is a relative bound such that the file's exact
    map ``(A*, c*)`` satisfies ``|A* - A| <= err P`` and ``|c* - c| <= err q`` entrywise, where ``mag = (P, q)``
    (a ``_Var`` of non-negative entries, same lazy forms) also bounds ``|A| <= P``, ``|c| <= q``.  ``err == 0``:
    exact, and ``mag`` is not kept (it is ``(|A|, |c|)`` when needed).  Each node adds its own rounding to
    ``err`` (:meth:`then`) and maps ``(P, q)`` by the absolute values of its constants; the products of
    ``(1 + O(u))`` factors this leaves out (cross terms ``err * u``, the float rounding of ``P`` and ``q``),
    at most ``1 + 8u`` per node, are covered by the factor 2 of :func:`_close_segment`."""

    def __init__(self, a, c: np.ndarray, shape: tuple[int, ...], err: float = 0.0, mag: "_Var | None" = None):
        self.a, self.c, self.shape = a, c, tuple(int(s) for s in shape)
        self.err, self.mag = float(err), (mag if err else None)

    @property
    def n(self) -> int:
        return int(self.c.shape[0])

    def matrix(self, where: str) -> np.ndarray:
        if self.a is None or self.a.ndim == 1:
            check_dense_size(self.n, self.n, where)
            return np.eye(self.n) if self.a is None else np.diag(self.a)
        return self.a

    def scaled(self, k: np.ndarray):
        """``diag(k) A`` in the lazy representation."""
        if self.a is None:
            return k.copy()
        return k * self.a if self.a.ndim == 1 else k[:, None] * self.a

    def left_matmul(self, wt: np.ndarray, where: str) -> np.ndarray:
        """``wt @ A`` for ``wt`` of shape ``(m, n)``."""
        n_in = self.n if self.a is None or self.a.ndim == 1 else self.a.shape[1]
        check_dense_size(wt.shape[0], n_in, where)
        if self.a is None:
            return np.ascontiguousarray(wt)
        return wt * self.a[None, :] if self.a.ndim == 1 else wt @ self.a

    def magnitude(self) -> "_Var":
        """``(P, q)``: the kept magnitudes, or ``(|A|, |c|)`` for an exact map."""
        if self.mag is not None:
            return self.mag
        return _Var(None if self.a is None else np.abs(self.a), np.abs(self.c), self.shape)

    def then(self, a, c: np.ndarray, shape, rounding: float, step) -> "_Var":
        """The next map ``(a, c)``; ``rounding``: the relative error this node adds (0: exact); ``step`` maps the
        magnitude ``_Var`` to the next one (called only when some rounding happened)."""
        err = self.err + rounding
        return _Var(a, c, shape, err, step(self.magnitude()) if err else None)

    def reshaped(self, shape) -> "_Var":
        return _Var(self.a, self.c, shape, self.err, None if self.mag is None else self.mag.reshaped(shape))


class _Graph:
    """Constants of the graph (initializers, Constant nodes, folded subgraphs), converted on first use."""

    def __init__(self, graph, fname: str):
        self.fname = fname
        self.protos = {t.name: t for t in graph.initializer}
        self.values: dict[str, np.ndarray] = {}

    def __contains__(self, name: str) -> bool:
        return name in self.values or name in self.protos

    def get(self, name: str, label: str) -> np.ndarray:
        if name not in self.values:
            if name not in self.protos:
                raise UnsupportedLayerError(
                    f"{self.fname!r}: {label} combines two data-dependent tensors (branches are not supported)"
                )
            self.values[name] = _tensor(self.protos[name], f"{self.fname!r}: initializer {name!r}")
        return self.values[name]


def _tensor(proto, what: str) -> np.ndarray:
    from onnx import numpy_helper

    if proto.data_type not in _NUMERIC_TENSORS:
        raise ModelFormatError(f"{what} has ONNX element type {proto.data_type}, not a real number type")
    if proto.data_location == proto.EXTERNAL:
        raise ModelFormatError(f"{what} is stored in an external data file; save the model with all tensors inside it")
    if math.prod(proto.dims) > MAX_DENSE_ENTRIES:
        raise UnsupportedLayerError(f"{what} has {math.prod(proto.dims):.3g} entries, above the limit of {MAX_DENSE_ENTRIES:.0e}")
    try:
        arr = numpy_helper.to_array(proto)
    except Exception as exc:
        raise ModelFormatError(f"{what} cannot be decoded (corrupt?): {type(exc).__name__}") from None
    return np.asarray(arr)


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _num(node, name: str, default: float) -> float:
    """A finite float attribute; absent: ``default`` as ONNX stores float attributes, a float32 (LeakyRelu's
    default alpha is ``float32(0.01)``, which runtimes use, not the double ``0.01``)."""
    value = _attrs(node).get(name, float(np.float32(default)) if isinstance(default, float) else default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ModelFormatError(f"{node.op_type} node {node.name!r}: attribute {name!r} must be a number, got {value!r}")
    return float(value)


def _builder(row):
    return lambda node: row.make(_num(node, row.onnx_attr, row.default) if row.onnx_attr else None)


# the activation operators of the name table, each a builder from its node
_ACTIVATIONS = {op: _builder(row) for op, row in ONNX_OPS.items()}


def _ints(node, name: str) -> list[int] | None:
    """An ints attribute (``None`` if absent)."""
    value = _attrs(node).get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ModelFormatError(f"{node.op_type} node {node.name!r}: attribute {name!r} must be a list of integers")
    return value


def _int(node, name: str, default: int) -> int:
    """An int attribute (``default`` if absent)."""
    value = _attrs(node).get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelFormatError(f"{node.op_type} node {node.name!r}: attribute {name!r} must be an integer, got {value!r}")
    return value


def _node_label(node, idx: int) -> str:
    return f"node {idx} ({node.name!r})" if node.name else f"node {idx}"


def _read(path: Path):
    """The parsed model, external data (checked by :func:`_external_files`) loaded."""
    return read_with_externals(path)[0]


def read_with_externals(path: Path):
    """The parsed model with its external data loaded, and the names of its external data files."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ModelFormatError(
            f"could not parse ONNX file {path.name!r} (truncated or corrupt?): {type(exc).__name__}"
        ) from None
    if not model.HasField("graph") or not len(model.graph.node):
        raise ModelFormatError(f"could not parse ONNX file {path.name!r} (truncated or corrupt?): the graph has no nodes")
    files = _external_files(model, path)
    if files:
        from onnx.external_data_helper import load_external_data_for_model

        try:
            load_external_data_for_model(model, str(path.parent))
        except Exception as exc:
            raise ModelFormatError(f"{path.name!r}: could not read its external data ({', '.join(files)}): "
                                   f"{type(exc).__name__}") from None
    return model, files


def _external_files(model, path: Path) -> list[str]:
    """Check the external data references of the initializers (``torch.onnx.export``'s default exporter writes
    the weights to ``MODEL.onnx.data``): each must name a regular file inside the model's directory (no
    absolute path, no ``..``), with offset and length inside the file, and together at most
    ``MAX_EXTERNAL_BYTES``.  Returns the file names."""
    import onnx

    from verification.io.common import MAX_EXTERNAL_BYTES

    base = path.parent.resolve()
    files: dict[str, int] = {}
    total = 0
    for t in model.graph.initializer:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in t.external_data}
        loc = info.get("location", "")
        what = f"{path.name!r}: initializer {t.name!r} in external data file {loc!r}"
        target = (base / loc).resolve() if loc else base
        if not loc or Path(loc).is_absolute() or ".." in Path(loc).parts or base not in target.parents:
            raise ModelFormatError(f"{what}: the external data must be a file in the model's directory")
        if not target.is_file():
            raise ModelFormatError(f"{what}: the external data file is missing or not a regular file")
        size = files.setdefault(loc, target.stat().st_size)
        try:
            offset = int(info.get("offset", "0"))
            length = int(info["length"]) if "length" in info else size - offset
        except ValueError:
            raise ModelFormatError(f"{what}: offset / length are not integers") from None
        if offset < 0 or length < 0 or offset + length > size:
            raise ModelFormatError(f"{what}: bytes {offset}..{offset + length} lie outside the file ({size} bytes)")
        total += length
        if total > MAX_EXTERNAL_BYTES:
            raise ModelFormatError(f"{path.name!r}: external data above the limit of {MAX_EXTERNAL_BYTES >> 20} MiB")
    return sorted(files)


def _graph_input(graph, fname: str) -> tuple[str, type, tuple[int, ...], bool]:
    """Name, float dtype, static shape (leading symbolic axis as 1) and whether that axis is symbolic."""
    inits = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise UnsupportedLayerError(f"{fname!r}: expected one graph input, found {len(inputs)}")
    inp = inputs[0]
    tt = inp.type.tensor_type if inp.type.HasField("tensor_type") else None
    if tt is None or tt.elem_type not in _FLOAT_INPUTS:
        raise UnsupportedLayerError(f"{fname!r}: the graph input {inp.name!r} is not a float32/float64/float16 tensor")
    if not tt.HasField("shape") or not len(tt.shape.dim):
        raise UnsupportedLayerError(f"{fname!r}: the graph input {inp.name!r} has no static shape")
    dims, batch = [], False
    for i, d in enumerate(tt.shape.dim):
        if d.HasField("dim_value"):
            if d.dim_value <= 0:
                raise ShapeMismatchError(f"{fname!r}: input dimension {i} is {d.dim_value} (a zero-width or invalid input)")
            dims.append(int(d.dim_value))
        elif i == 0 and len(tt.shape.dim) > 1:
            dims.append(1)
            batch = True
        else:
            raise UnsupportedLayerError(
                f"{fname!r}: input dimension {i} is symbolic ({d.dim_param or '?'}); only the leading batch axis may be"
            )
    n_in = math.prod(dims)
    if n_in > MAX_DENSE_ENTRIES:
        raise UnsupportedLayerError(f"{fname!r}: the input has {n_in:.3g} entries, above the limit of {MAX_DENSE_ENTRIES:.0e}")
    return inp.name, _FLOAT_INPUTS[tt.elem_type], tuple(dims), batch


def _check_domains(graph, fname: str) -> None:
    for idx, node in enumerate(graph.node):
        if node.domain not in _STANDARD_DOMAINS:
            raise UnsupportedLayerError(
                f"{fname!r}: {_node_label(node, idx)} ({node.op_type}) is from the custom domain {node.domain!r}; "
                "only standard ONNX operators (domain '' or 'ai.onnx') are supported"
            )
    if len(graph.sparse_initializer):
        raise UnsupportedLayerError(f"{fname!r}: sparse initializers are not supported")


def load(path: Path, drop_softmax: bool = False, check: bool = True) -> Network:
    model, files = read_with_externals(path)
    net = load_chain(model, path, drop_softmax, check)
    if files:
        net.metadata["external_data"] = files
    return net


def load_chain(model, path: Path, drop_softmax: bool = False, check: bool = True) -> Network:
    """The network of a parsed model whose data path is a single chain."""
    graph, fname = model.graph, path.name
    _check_domains(graph, fname)
    in_name, dtype, shape, batch = _graph_input(graph, fname)
    walk = _Walk(graph, fname, in_name, shape, dtype)
    for idx, node in enumerate(graph.node):
        walk.step(idx, node, drop_softmax)
    outputs = [o.name for o in graph.output]
    if outputs != [walk.var_name]:
        raise UnsupportedLayerError(f"{fname!r}: the graph output {outputs} is not the end of a single chain ({walk.var_name!r})")
    walk.flush(fname)
    meta = {"onnx_input": in_name, "onnx_input_shape": list(shape)}
    if walk.dropped:
        meta["dropped"] = f"final {walk.dropped[0]}"
    net = check_widths(Network(tuple(walk.layers), metadata=meta), fname)
    if check:
        precision = max(walk.precisions, key=lambda t: np.finfo(t).eps)
        meta["crosscheck"] = _check_with_onnxruntime(net, model, path, in_name, (dtype, precision), shape, batch, walk.dropped)
    return net


class _Walk:
    """State of the walk along the data path: the lazy affine map since the last activation, the layers so
    far, the current data tensor's name, a dropped final softmax and the float types the data went through."""

    def __init__(self, graph, fname: str, in_name: str, shape: tuple[int, ...], dtype):
        self.graph, self.fname = graph, fname
        self.consts = _Graph(graph, fname)
        self.var = _Var(None, np.zeros(math.prod(shape)), shape)
        self.var_name, self.layers, self.dropped, self.precisions = in_name, [], None, [dtype]
        self.prefix: list[AffineLayer] = []  # convolution / pooling layers since the last activation, before var

    def flush(self, where: str) -> None:
        """Close the affine segment: the layers of ``prefix``, then the lazy map ``var`` (folded into them
        where possible), appended to ``layers``; ``var`` becomes the identity."""
        self.layers.extend(_close_segment(self.prefix, self.var, where))
        self.prefix = []
        self.var = _Var(None, np.zeros(self.var.n), self.var.shape)

    def step(self, idx: int, node, drop_softmax: bool) -> None:
        op, label, fname = node.op_type, _node_label(node, idx), self.fname
        if op == "Shape" and node.input and node.input[0] == self.var_name:
            self.consts.values[node.output[0]] = _shape_of(self.var.shape, _attrs(node))
            return
        data_inputs = [i for i in node.input if i == self.var_name]
        if not data_inputs:
            _fold_constant(node, self.consts, label, fname)
            return
        if len(data_inputs) > 1:
            raise UnsupportedLayerError(
                f"{fname!r}: {label} ({op}) uses the data tensor twice (residual/branching graphs are not supported)"
            )
        others = [i for i in node.input if i and i != self.var_name and i not in self.consts]
        if others and op in ("Add", "Sub", "Mul", "Div", "Sum", "Concat"):
            raise UnsupportedLayerError(
                f"{fname!r}: {label} ({op}) combines the data tensor with another data-dependent tensor "
                f"{others[0]!r} (residual or branching graph: branches are not supported yet)"
            )
        if op in _SOFTMAX:
            self.dropped = _final_softmax(node, self.graph, label, fname, drop_softmax, self.var_name)
        else:
            if op == "Cast" and _int(node, "to", 0) in _FLOAT_INPUTS:
                self.precisions.append(_FLOAT_INPUTS[_int(node, "to", 0)])
            try:
                self.var = _apply(op, node, self, label)
            except ValueError as exc:  # numpy broadcasting / shape errors
                raise ShapeMismatchError(f"{fname!r}: {label} ({op}): {exc}") from None
        self.var_name = node.output[0]


def _final_softmax(node, graph, label: str, fname: str, drop: bool, var_name: str):
    op = node.op_type
    if [o.name for o in graph.output] != [node.output[0]]:
        raise UnsupportedLayerError(
            f"{fname!r}: unsupported ONNX operator {op!r} at {label}: only a {op} at the very end of the graph "
            "can be handled (dropped with --drop-softmax)"
        )
    if not drop:
        raise UnsupportedLayerError(
            f"{fname!r}: unsupported ONNX operator {op!r} at {label}: the model ends with a {op}; pass "
            "--drop-softmax (drop_softmax=True) to analyse the logits before it"
        )
    return (op, var_name, node)


def _shape_of(shape: tuple[int, ...], attrs: dict) -> np.ndarray:
    start, end = attrs.get("start", 0), attrs.get("end", None)
    return np.array(shape[start:end], dtype=np.int64)


def _int_list(arr: np.ndarray, what: str) -> list[int]:
    a = np.asarray(arr).reshape(-1)
    if a.dtype.kind == "f" and not np.all(np.isfinite(a) & (a == np.round(a))):
        raise ModelFormatError(f"{what} must hold integers, got {a[:8]}")
    if a.dtype.kind not in "fiu":
        raise ModelFormatError(f"{what} must hold integers (dtype {a.dtype})")
    return [int(v) for v in a]


def _reshape_target(shape: tuple[int, ...], target: list[int], allowzero: int) -> tuple[int, ...]:
    n = math.prod(shape)
    out = [shape[i] if (s == 0 and not allowzero and i < len(shape)) else s for i, s in enumerate(target)]
    if out.count(-1) > 1 or any(s < -1 for s in out):
        raise ValueError(f"invalid Reshape target {target}")
    if -1 in out:
        known = math.prod(s for s in out if s != -1)
        if known == 0 or n % known:
            raise ValueError(f"cannot reshape {shape} to {target}")
        out[out.index(-1)] = n // known
    if math.prod(out) != n:
        raise ValueError(f"cannot reshape {shape} ({n} entries) to {target}")
    return tuple(out)


def _squeeze_axes(node, consts: _Graph, label: str, rank: int) -> list[int] | None:
    axes = _ints(node, "axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = _int_list(consts.get(node.input[1], label), f"{label} axes")
    if axes is None:
        return None
    if any(not -rank <= a < rank for a in axes):
        raise ValueError(f"axes {axes} out of range for rank {rank}")
    return sorted(a % rank for a in axes)


def _new_shape(op: str, node, shape: tuple[int, ...], consts: _Graph, label: str) -> tuple[int, ...]:
    """Output shape of a shape-only operator."""
    n = math.prod(shape)
    if op == "Flatten":
        axis = _int(node, "axis", 1)
        if not -len(shape) <= axis <= len(shape):
            raise ValueError(f"Flatten axis {axis} out of range for shape {shape}")
        lead = math.prod(shape[: axis + len(shape) if axis < 0 else axis])
        return (lead, n // lead)
    if op == "Reshape":
        target = _int_list(consts.get(node.input[1], label), f"{label} shape")
        return _reshape_target(shape, target, _int(node, "allowzero", 0))
    if op == "Squeeze":
        axes = _squeeze_axes(node, consts, label, len(shape))
        if axes is None:
            return tuple(s for s in shape if s != 1)
        if any(shape[a] != 1 for a in axes):
            raise ValueError(f"cannot squeeze axes {axes} of shape {shape}")
        return tuple(s for i, s in enumerate(shape) if i not in axes)
    if op == "Unsqueeze":
        raw = _ints(node, "axes")
        if raw is None:
            if len(node.input) < 2 or not node.input[1]:
                raise ValueError("Unsqueeze without axes")
            raw = _int_list(consts.get(node.input[1], label), f"{label} axes")
        rank = len(shape) + len(raw)
        axes = {a % rank for a in raw if -rank <= a < rank}
        if len(axes) != len(raw):
            raise ValueError(f"invalid Unsqueeze axes {raw} for shape {shape}")
        it = iter(shape)
        return tuple(1 if i in axes else next(it) for i in range(rank))
    return shape


def _apply(op: str, node, walk: "_Walk", label: str) -> _Var:
    var, var_name, consts, fname = walk.var, walk.var_name, walk.consts, walk.fname
    where = f"{fname!r}: {label} ({op})"
    if op in _ACTIVATIONS:
        act: Activation = _ACTIVATIONS[op](node)
        walk.flush(where)
        walk.layers.append(act)
        return walk.var
    if op in _SPATIAL or op == "ReduceMean":
        node, four = as_2d(node, consts, var.shape, where)
        if four != var.shape:  # a 1-D layer, computed on the (1, C, 1, L) view
            layer = _SPATIAL[op](node, four[1:], consts, label, where)
            walk.flush(where)
            walk.prefix.append(layer)
            return _Var(None, np.zeros(layer.out_features), (1, layer.output_shape[0], layer.output_shape[2]))
        if len(var.shape) != 4 or var.shape[0] != 1:
            raise ShapeMismatchError(f"{where} needs a (1, C, H, W) data tensor, got shape {var.shape}")
        keep = True
        if op == "ReduceMean":  # the mean over the two spatial axes: a global average pool
            keep = bool(_int(node, "keepdims", 1))
            axes = _squeeze_axes(node, consts, label, 4)
            if axes != [2, 3] or _int(node, "noop_with_empty_axes", 0):
                raise UnsupportedLayerError(f"{where}: only a mean over the spatial axes (2, 3) is supported, got {axes}")
            layer = rounded_pool(global_avg_pool(var.shape[1:]))
        else:
            layer = _SPATIAL[op](node, var.shape[1:], consts, label, where)
        walk.flush(where)
        walk.prefix.append(layer)
        shape = (1,) + layer.output_shape if keep else (1, layer.output_shape[0])
        return _Var(None, np.zeros(layer.out_features), shape)
    if op == "BatchNormalization":
        return _batchnorm(node, var, consts, label, where)
    if op in _SHAPE_OPS:
        _check_shape_op(op, node, consts, label, fname)
        new = _new_shape(op, node, var.shape, consts, label)
        if op == "Reshape" and len(var.shape) == 4 and new not in ((var.shape[0], var.n // var.shape[0]), (var.n,)):
            raise UnsupportedLayerError(
                f"{where} reshapes the (N, C, H, W) data tensor {var.shape} to {new}; only a flatten to "
                "(N, C*H*W) is supported"
            )
        return var.reshaped(new)
    if op in ("Add", "Sub", "Mul", "Div"):
        return _elementwise(op, node, var, var_name, consts, label, fname)
    if op in ("MatMul", "Gemm"):
        return _matmul(op, node, var, var_name, consts, label, where)
    if op in _NOT_YET:
        raise UnsupportedLayerError(f"{fname!r}: ONNX operator {op!r} at {label} is not supported yet")
    raise UnsupportedLayerError(f"{fname!r}: unsupported ONNX operator {op!r} at {label}")


def _check_shape_op(op: str, node, consts: _Graph, label: str, fname: str) -> None:
    if op == "Cast":
        from onnx import helper

        to = _int(node, "to", 0)
        if to not in _FLOAT_INPUTS:
            raise UnsupportedLayerError(
                f"{fname!r}: {label} casts the data tensor to {helper.tensor_dtype_to_string(to) if to else to} "
                "(only casts to float types keep the network affine)"
            )
    if op == "Dropout" and len(node.input) > 2 and node.input[2]:
        if np.any(consts.get(node.input[2], label)):
            raise UnsupportedLayerError(f"{fname!r}: {label} (Dropout) runs in training mode (random outputs)")


def _elementwise(op: str, node, var: _Var, var_name: str, consts: _Graph, label: str, fname: str) -> _Var:
    i_var = list(node.input).index(var_name)
    k = real_array(consts.get(node.input[1 - i_var], label), f"{fname!r}: {label} constant")
    out_shape = np.broadcast_shapes(k.shape, var.shape)
    if math.prod(out_shape) != var.n:
        raise ValueError(f"constant of shape {k.shape} broadcasts the data tensor {var.shape} to {out_shape}")
    kf = np.ascontiguousarray(np.broadcast_to(k, out_shape)).reshape(-1)
    ak = np.abs(kf)
    if op in ("Add", "Sub"):  # c +- k (k - x: A -> -A, exact): one rounding where both terms are nonzero
        r = _U if np.any((var.c != 0) & (kf != 0)) else 0.0
        shifted = lambda m: _Var(m.a, m.c + ak, out_shape)  # noqa: E731
        if op == "Add":
            return var.then(var.a, var.c + kf, out_shape, r, shifted)
        if i_var == 0:
            return var.then(var.a, var.c - kf, out_shape, r, shifted)
        return var.then(var.scaled(-np.ones(var.n)), kf - var.c, out_shape, r, shifted)
    if op == "Mul":  # diag(k) A, k c: exact for powers of two (and A = I: the diagonal is k itself)
        exact = pow2(kf) or (var.a is None or pow2(var.a)) and pow2(var.c)
        return var.then(var.scaled(kf), kf * var.c, out_shape, 0.0 if exact else _U,
                        lambda m: _Var(m.scaled(ak), ak * m.c, out_shape))
    if i_var != 0:
        raise UnsupportedLayerError(f"{fname!r}: {label} (Div) divides a constant by the data tensor (not affine)")
    with np.errstate(all="ignore"):  # A / k (A = I: fl(1 / k)), c / k: one rounding each unless k = 2^j
        return var.then(var.scaled(1.0 / kf) if var.a is None else _divide(var.a, kf), var.c / kf, out_shape,
                        0.0 if pow2(kf) else _U,
                        lambda m: _Var(m.scaled(1.0 / ak) if m.a is None else _divide(m.a, ak), m.c / ak, out_shape))


def _divide(a: np.ndarray, kf: np.ndarray) -> np.ndarray:
    return a / kf if a.ndim == 1 else a / kf[:, None]


def _matmul(op: str, node, var: _Var, var_name: str, consts: _Graph, label: str, where: str) -> _Var:
    if list(node.input).index(var_name) != 0:
        raise UnsupportedLayerError(f"{where}: only the data tensor times a constant weight (data on the left) is supported")
    w = real_array(consts.get(node.input[1], label), f"{where} weight")
    bias, r = None, 0.0
    if op == "Gemm":
        if _int(node, "transA", 0):
            raise UnsupportedLayerError(f"{where} with transA=1 is not supported")
        if len(var.shape) != 2:
            raise ValueError(f"Gemm needs a 2-D data tensor, got shape {var.shape}")
        alpha, beta = _num(node, "alpha", 1.0), _num(node, "beta", 1.0)
        w = (w.T if _int(node, "transB", 0) else w) * alpha
        r += 0.0 if pow2(alpha) else _U  # fl(alpha W)
        if len(node.input) > 2 and node.input[2]:
            bias = real_array(consts.get(node.input[2], label), f"{where} bias") * beta
            r += 0.0 if pow2(beta) else _U
    if w.ndim != 2:
        raise UnsupportedLayerError(f"{where} with a {w.ndim}-D weight is not supported")
    rows = math.prod(var.shape[:-1])
    if rows != 1 or var.shape[-1] != w.shape[0]:
        raise ValueError(f"data tensor of shape {var.shape} cannot be multiplied by a weight of shape {w.shape}")
    a, c = var.left_matmul(w.T, where), w.T @ var.c
    b = np.zeros(w.shape[1]) if bias is None else np.broadcast_to(bias, (1, w.shape[1])).reshape(-1)
    if bias is not None:
        c = c + b
    # W^T A: a copy (A = I) or one product per entry (A diagonal, exact for powers of two), else n-term sums;
    # W^T c + b: exact for c = 0, else at most n + 1 terms (gamma_{n+1}, any order)
    n = w.shape[0]
    if var.a is not None and not (var.a.ndim == 1 and pow2(var.a)):
        r += _U if var.a.ndim == 1 else gamma(n)
    if np.any(var.c):
        r += gamma(n + 1)
    aw, ab = np.abs(w.T), np.abs(b)
    return var.then(a, c, var.shape[:-1] + (w.shape[1],), r,
                    lambda m: _Var(m.left_matmul(aw, where), aw @ m.c + ab, var.shape[:-1] + (w.shape[1],)))


# ------------------------------------------------------------------ convolutional layers
def _close_segment(prefix: list, var: _Var, where: str) -> list:
    """The layers of one affine segment: ``prefix`` (convolutions, pooling) then the lazy map ``var``.

    A constant shift or a per-channel scale after a convolution is folded into it; on a ``(1, C, H, W)``
    tensor an identity or per-channel map is a per-channel layer (never an ``n x n`` dense matrix).  A map
    with rounding (``var.err > 0``) is recorded with ``mark_rounded(layer, 2 err, (P, q))`` (see
    :class:`_Var`); folds into a convolution use :func:`~verification.layers.deviation.fold` unless exact."""
    out = list(prefix)
    spatial = len(var.shape) == 4 and var.shape[0] == 1
    rel, mag = 2.0 * var.err, var.mag
    if not out and not spatial:  # dense networks: as before
        return [_marked(Dense(var.matrix(where), var.c), rel, lambda: Dense(mag.matrix(where), mag.c))]
    if var.a is None and not np.any(var.c) and not (rel and np.any(mag.c)):
        return out
    if var.a is None and out:  # a shift (A = I exactly): into the bias of the convolution before it
        inner, shape = out[-1], out[-1].output_shape
        shift = _marked(channel_affine(shape, np.ones(shape[0]), var.c), rel,
                        lambda: channel_affine(shape, np.zeros(shape[0]), mag.c))
        if deviation_of(shift) is None and deviation_of(inner) is None and not np.any((inner.bias != 0) & (var.c != 0)):
            out[-1] = replace(inner, bias=inner.bias + var.c)  # exact: one nonzero term per entry
        else:
            out[-1] = fold(shift, inner)
        return out
    scale, pscale = None, None
    if spatial and var.a is None:
        scale = pscale = np.ones(var.shape[1])
    elif spatial and var.a.ndim == 1:
        per = var.a.reshape(var.shape[1], -1)
        if np.all(per == per[:, :1]):
            scale = per[:, 0].copy()
            pscale = np.ones_like(scale) if mag is None or mag.a is None else mag.a.reshape(var.shape[1], -1).max(axis=1)
    if scale is not None:
        shape = var.shape[1:]
        diag = _marked(channel_affine(shape, scale, var.c), rel, lambda: channel_affine(shape, pscale, mag.c))
        if out and isinstance(out[-1], Conv2d):
            inner = out[-1]
            exact = (deviation_of(diag) is None and deviation_of(inner) is None and pow2(scale)
                     and not (np.any(inner.bias) and np.any(var.c)))  # s W, s b + c: exact products / sums
            out[-1] = diag.compose(inner) if exact else fold(diag, inner)
        else:
            out.append(diag)
        return out
    out.append(_marked(Dense(var.matrix(where), var.c), rel, lambda: Dense(mag.matrix(where), mag.c)))
    return out


def _marked(layer: AffineLayer, rel: float, magnitude) -> AffineLayer:
    """``layer`` with ``mark_rounded(layer, rel, magnitude())`` when ``rel > 0``."""
    return mark_rounded(layer, rel, magnitude()) if rel else layer


def _spatial_pads(node, shape: tuple, kernel: tuple, strides: tuple, dil: tuple, where: str) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` from ``pads`` (ONNX order: begins then ends) or ``auto_pad``."""
    auto = _attrs(node).get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        out = []
        for n, k, s, d in zip(shape, kernel, strides, dil):
            total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
            small = total // 2
            out += [small, total - small] if auto == "SAME_UPPER" else [total - small, small]
        return tuple(out)
    if auto == "VALID":
        return (0, 0, 0, 0)
    if auto != "NOTSET":
        raise ModelFormatError(f"{where}: unknown auto_pad {auto!r}")
    pads = _ints(node, "pads") or [0, 0, 0, 0]
    if len(pads) != 4 or min(pads) < 0:
        raise ModelFormatError(f"{where}: pads {pads} must be four non-negative integers")
    return (pads[0], pads[2], pads[1], pads[3])


def _pair_attr(node, name: str, where: str, default=(1, 1)) -> tuple[int, int]:
    v = _ints(node, name)
    if v is None:
        return default
    if len(v) != 2 or min(v) < 1:
        raise ModelFormatError(f"{where}: attribute {name!r} must be two positive integers, got {v}")
    return (v[0], v[1])


def _conv(node, shape: tuple, consts: _Graph, label: str, where: str) -> Conv2d:
    w = real_array(consts.get(node.input[1], label), f"{where} weight")
    if w.ndim != 4:
        raise UnsupportedLayerError(f"{where}: only 2-D convolutions (4-D weights) are supported, got {w.ndim}-D")
    bias = None
    if len(node.input) > 2 and node.input[2]:
        bias = real_array(consts.get(node.input[2], label), f"{where} bias")
    kernel = _ints(node, "kernel_shape")
    if kernel is not None and tuple(kernel) != tuple(w.shape[2:]):
        raise ModelFormatError(f"{where}: kernel_shape {kernel} does not match the weight {w.shape}")
    strides, dil = _pair_attr(node, "strides", where), _pair_attr(node, "dilations", where)
    pads = _spatial_pads(node, shape[1:], w.shape[2:], strides, dil, where)
    try:
        return Conv2d(w, bias, shape, strides, dil, _int(node, "group", 1), pads, "zeros")
    except (ShapeMismatchError, UnsupportedLayerError) as exc:
        raise type(exc)(f"{where}: {exc}") from None


def _avgpool(node, shape: tuple, consts: _Graph, label: str, where: str) -> Conv2d:
    kernel = _ints(node, "kernel_shape")
    if kernel is None or len(kernel) != 2 or min(kernel) < 1:
        raise ModelFormatError(f"{where}: kernel_shape must be two positive integers, got {kernel}")
    strides = _pair_attr(node, "strides", where)
    if _pair_attr(node, "dilations", where) != (1, 1):
        raise UnsupportedLayerError(f"{where} with dilations is not supported")
    pads = _spatial_pads(node, shape[1:], tuple(kernel), strides, (1, 1), where)
    if any(pads) and not _int(node, "count_include_pad", 0):
        raise UnsupportedLayerError(f"{where} with padding and count_include_pad=0 is not supported yet")
    layer = avg_pool2d(shape, tuple(kernel), strides, pads)
    if _int(node, "ceil_mode", 0):
        for n, k, s, (a, b) in zip(shape[1:], kernel, strides, (pads[:2], pads[2:])):
            if (n + a + b - k) % s:
                raise UnsupportedLayerError(f"{where} with ceil_mode=1 changes the output size; not supported")
    return rounded_pool(layer)


def _global_avgpool(node, shape: tuple, consts: _Graph, label: str, where: str) -> Conv2d:
    return rounded_pool(global_avg_pool(shape))


_SPATIAL = {"Conv": _conv, "AveragePool": _avgpool, "GlobalAveragePool": _global_avgpool}
_ONE_D_ATTRS = {"kernel_shape": 1, "strides": 1, "dilations": 1}  # 1-D value v -> (fill, v)


def as_2d(node, consts: _Graph, shape: tuple, where: str):
    """A spatial node on a ``(1, C, L)`` tensor (Conv1d, AvgPool1d, MaxPool1d, global pools) as the same node on
    ``(1, C, 1, L)``: kernel ``(1, k)``, strides / dilations ``(1, s)``, pads ``(0, b, 0, e)``, a Conv weight
    ``(O, I, k)`` stored as ``(O, I, 1, k)`` under a new constant name.  The 2-D node computes exactly the 1-D
    one on that view; other nodes and shapes are returned unchanged."""
    if len(shape) != 3 or node.op_type not in (*_SPATIAL, "MaxPool", "GlobalMaxPool"):
        return node, shape
    from onnx import helper

    attrs = _attrs(node)
    new = {}
    for name, value in attrs.items():
        if name in _ONE_D_ATTRS or name == "pads":
            if not isinstance(value, list) or len(value) != (2 if name == "pads" else 1):
                raise UnsupportedLayerError(f"{where}: attribute {name}={value!r} does not fit a 1-D input {shape}")
            new[name] = [0, value[0], 0, value[1]] if name == "pads" else [_ONE_D_ATTRS[name], value[0]]
        else:
            new[name] = value.decode() if isinstance(value, bytes) else value
    inputs = list(node.input)
    if node.op_type == "Conv":
        w = real_array(consts.get(node.input[1], where), f"{where} weight")
        if w.ndim != 3:
            raise UnsupportedLayerError(f"{where}: a Conv on a 1-D input needs a 3-D weight, got {w.ndim}-D")
        inputs[1] = f"{node.input[1]}::as_2d"
        consts.values[inputs[1]] = w[:, :, None, :]
    return helper.make_node(node.op_type, inputs, list(node.output), name=node.name, **new), (shape[0], shape[1], 1,
                                                                                            shape[2])
_NOT_YET = {"MaxPool", "GlobalMaxPool", "Pad", "ConvTranspose"}


def _batchnorm(node, var: _Var, consts: _Graph, label: str, where: str) -> _Var:
    """Evaluation-mode BatchNormalization: ``x -> s (x - mean) + beta`` per channel (axis 1), ``s = gamma /
    sqrt(var + eps)``; kept lazily (folded into the convolution before it when the segment closes)."""
    if _int(node, "training_mode", 0) or len(node.output) > 1 and any(node.output[1:]):
        raise UnsupportedLayerError(f"{where} runs in training mode (batch statistics)")
    if len(node.input) != 5:
        raise ModelFormatError(f"{where} needs 5 inputs (X, scale, B, mean, var), got {len(node.input)}")
    g, beta, mean, variance = (real_array(consts.get(i, label), f"{where} {n}").reshape(-1)
                               for i, n in zip(node.input[1:], ("scale", "B", "mean", "var")))
    if len(var.shape) < 2 or not all(a.shape == (var.shape[1],) for a in (g, beta, mean, variance)):
        raise ShapeMismatchError(f"{where}: parameters do not match the channels of the data tensor {var.shape}")
    eps = _num(node, "epsilon", _EPS_DEFAULT)
    s, t, t_mag = bn_scale_shift(g, beta, mean, variance, eps)
    shape = (1, var.shape[1]) + (1,) * (len(var.shape) - 2)
    kf, tf, tm = (np.ascontiguousarray(np.broadcast_to(v.reshape(shape), var.shape)).reshape(-1) for v in (s, t, t_mag))
    ak = np.abs(kf)
    # s A, s c + t: the float s, t carry gamma_4 / gamma_7 (bn_scale_shift); with the products and the sum,
    # at most gamma_8 of |s| P and |s| q + t_mag
    return var.then(var.scaled(kf), kf * var.c + tf, var.shape, gamma(8),
                    lambda m: _Var(m.scaled(ak), ak * m.c + tm, var.shape))


def bn_scale_shift(g: np.ndarray, beta: np.ndarray, mean: np.ndarray, variance: np.ndarray,
                   eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batch norm as ``x -> s x + t``: ``s = g / sqrt(var + eps)``, ``t = beta - mean s`` in float64, and the
    magnitude ``|beta| + |mean| |s|`` of ``t``'s terms.  Rounding: ``var + eps``, ``sqrt`` (halves the error
    of its argument, plus one rounding) and the division give ``|s* - s| <= gamma_4 |s|``; then
    ``|t* - t| <= u(|beta| + |mean s|) + u |mean s| + |mean| |s* - s| <= gamma_7 (|beta| + |mean| |s|)``."""
    s = g / np.sqrt(variance + eps)
    return s, beta - mean * s, np.abs(beta) + np.abs(mean) * np.abs(s)


# ------------------------------------------------------------------ constant folding
def _fold_constant(node, consts: _Graph, label: str, fname: str) -> None:
    """Evaluate a node whose inputs are all constants (shape arithmetic exported by PyTorch)."""
    op = node.op_type
    if op == "Constant":
        consts.values[node.output[0]] = _constant_value(node, label, fname)
        return
    if not node.input or not all(i in consts or i == "" for i in node.input):
        raise UnsupportedLayerError(f"{fname!r}: {label} ({op}) does not read the network's data path")
    args = [consts.get(i, label) if i else None for i in node.input]
    try:
        value = _fold(op, node, args, consts, label)
    except (ValueError, IndexError, TypeError) as exc:
        raise ShapeMismatchError(f"{fname!r}: {label} ({op}) on constants: {exc}") from None
    if value is None:
        raise UnsupportedLayerError(f"{fname!r}: unsupported ONNX operator {op!r} at {label} (on constants)")
    if np.asarray(value).size > MAX_DENSE_ENTRIES:
        raise UnsupportedLayerError(f"{fname!r}: {label} ({op}) builds a constant above the size limit")
    consts.values[node.output[0]] = np.asarray(value)


def _fold(op: str, node, args: list, consts: _Graph, label: str):
    x = args[0]
    if op == "Identity":
        return x
    if op == "Cast":
        return _cast(x, _int(node, "to", 0))
    if x is None:
        return None
    if op == "ConstantOfShape":
        shape = [int(d) for d in np.asarray(x).reshape(-1)]
        if any(d < 0 for d in shape) or math.prod(shape) > MAX_DENSE_ENTRIES:
            raise ValueError(f"ConstantOfShape of shape {shape}")
        attrs = {a.name: a for a in node.attribute}
        value = _tensor(attrs["value"].t, f"{label} (ConstantOfShape) value") if "value" in attrs else np.zeros(1, np.float32)
        if value.size != 1:
            raise ValueError("ConstantOfShape needs a one-element value")
        return np.full(shape, value.reshape(-1)[0], dtype=value.dtype)
    if op in ("Reshape", "Squeeze", "Unsqueeze", "Flatten"):
        return x.reshape(_new_shape(op, node, x.shape, consts, label))
    if op == "Transpose":
        perm = [int(p) for p in next((a.ints for a in node.attribute if a.name == "perm"), range(x.ndim - 1, -1, -1))]
        return np.transpose(x, perm)
    if op == "Slice" and len(args) >= 3:
        starts, ends = (np.asarray(a, dtype=np.int64).reshape(-1) for a in args[1:3])
        axes = np.asarray(args[3], dtype=np.int64).reshape(-1) if len(args) > 3 and args[3] is not None \
            else np.arange(starts.size)
        steps = np.asarray(args[4], dtype=np.int64).reshape(-1) if len(args) > 4 and args[4] is not None \
            else np.ones(starts.size, np.int64)
        if not (starts.size == ends.size == axes.size == steps.size) or np.any(steps == 0):
            raise ValueError("Slice: starts, ends, axes and steps must have equal lengths and nonzero steps")
        index = [slice(None)] * x.ndim
        for a, b, e, st in zip(axes, starts, ends, steps):
            index[int(a)] = np.arange(*slice(int(b), int(e), int(st)).indices(x.shape[int(a)]))
        for a, idx in enumerate(index):
            if not isinstance(idx, slice):
                x = np.take(x, idx, axis=a)
        return x
    if op == "Concat":
        return np.concatenate([a for a in args if a is not None], axis=_int(node, "axis", 0))
    if op == "Gather":
        idx = np.asarray(args[1])
        if idx.dtype.kind not in "iu":
            raise ValueError("Gather indices must be integers")
        return np.take(x, idx, axis=_int(node, "axis", 0))
    if op in ("Add", "Sub", "Mul", "Div") and len(args) == 2 and args[1] is not None:
        fn = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op]
        if op == "Div" and x.dtype.kind in "iu":
            return np.asarray(np.trunc(np.divide(x, args[1])), dtype=x.dtype)
        return fn(x, args[1])
    return None


def _cast(x: np.ndarray, to) -> np.ndarray:
    from onnx import helper

    if to not in _NUMERIC_TENSORS:
        raise ValueError(f"Cast to ONNX element type {to} is not supported on constants")
    dt = np.dtype(helper.tensor_dtype_to_np_dtype(to))
    if dt.kind in "iu" and x.dtype.kind == "f":
        x = np.trunc(x)
    with np.errstate(all="ignore"):
        return x.astype(dt)


def _constant_value(node, label: str, fname: str) -> np.ndarray:
    attrs = list(node.attribute)
    if len(attrs) != 1:
        raise ModelFormatError(f"{fname!r}: {label} (Constant) must have exactly one value attribute, found {len(attrs)}")
    a = attrs[0]
    if a.name == "value":
        return _tensor(a.t, f"{fname!r}: {label} (Constant)")
    if a.name == "value_float":
        return np.array(a.f, dtype=np.float32)
    if a.name == "value_floats":
        return np.array(list(a.floats), dtype=np.float32)
    if a.name == "value_int":
        return np.array(a.i, dtype=np.int64)
    if a.name == "value_ints":
        return np.array(list(a.ints), dtype=np.int64)
    raise UnsupportedLayerError(f"{fname!r}: {label} (Constant) with attribute {a.name!r} is not supported (numbers only)")


# ------------------------------------------------------------------ the guard
def _check_with_onnxruntime(net: Network, model, path: Path, in_name: str, dtypes, shape, batch, dropped) -> dict:
    """``dtypes``: the input's dtype and the lowest float precision on the data path."""
    from verification.io._crosscheck import crosscheck

    source = str(path) if dropped is None else _without_final_softmax(model, dropped)
    run = _ort_runner(source, path.name, in_name, dtypes[0], shape, batch)
    return crosscheck(net, run, dtypes[0], repr(path.name), "onnxruntime", precision=dtypes[1])


def _without_final_softmax(model, dropped) -> bytes:
    """The model with its final Softmax removed and the logits as the graph output."""
    import onnx
    from onnx import helper

    _, logits, node = dropped
    m = onnx.ModelProto()
    m.CopyFrom(model)
    keep = [n for n in m.graph.node if not (n.op_type == node.op_type and list(n.output) == list(node.output))]
    del m.graph.node[:]
    m.graph.node.extend(keep)
    elem = m.graph.output[0].type.tensor_type.elem_type or 1
    del m.graph.output[:]
    m.graph.output.append(helper.make_tensor_value_info(logits, elem, None))
    return m.SerializeToString()


def _ort_runner(source, fname: str, in_name: str, dtype, shape: tuple[int, ...], batch: bool):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 4
    try:
        sess = ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        msg = " ".join(str(exc).split())[:200]
        raise ModelFormatError(
            f"{fname!r}: onnxruntime cannot load the model, so the loaded network cannot be checked against it: {msg}"
        ) from None

    def one_by_one(x: np.ndarray) -> np.ndarray:
        return np.stack([np.asarray(sess.run(None, {in_name: xi.astype(dtype).reshape(shape)})[0]).reshape(-1) for xi in x])

    def run(x: np.ndarray) -> np.ndarray:
        if batch and len(x) > 1:
            try:
                out = sess.run(None, {in_name: x.astype(dtype).reshape((len(x),) + shape[1:])})[0]
                return np.asarray(out).reshape(len(x), -1)
            except Exception:  # e.g. a Reshape with a hard-coded batch of 1
                pass
        return one_by_one(x)

    return run
