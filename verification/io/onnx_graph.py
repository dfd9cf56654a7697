"""ONNX loader for graphs that are not a single chain: residual connections (``Add``/``Sub``/``Sum`` of two
data tensors, ``Concat`` of data tensors along the channel axis), a data tensor read by several nodes, and
``MaxPool`` / ``GlobalMaxPool``.

Single chains go to :func:`verification.io.onnx_format.load_chain` unchanged.  Other graphs are walked in
topological order with every tensor kept as an affine expression over the activation outputs, then laid out
as a chain by :class:`verification.io._lift.Lifter` (see there for how skip connections and max pooling
become exact chain layers).  The node semantics (Conv, BatchNormalization, Gemm/MatMul, pooling, shape
operators, constants) are those of the chain loader; the result is cross-checked against onnxruntime.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from verification.activations import LeakyReLU, ReLU, SiLU
from verification.errors import ShapeMismatchError, UnsupportedLayerError
from verification.io import onnx_format as fmt
from verification.io.common import check_widths, pow2, real_array, rounded_pool
from verification.layers import Dense, global_avg_pool
from verification.layers.deviation import gamma
from verification.network import Network

if TYPE_CHECKING:  # scipy.sparse (≈0.2 s to import) loads only for graphs that need lifting
    from verification.io._lift import Expr

__all__ = ["load", "needs_graph"]

_COMBINE = {"Add", "Sub", "Sum", "Concat"}
_MAXPOOL = {"MaxPool", "GlobalMaxPool", "ReduceMax"}
_INDEXING = {"Slice", "Gather", "Transpose", "Pad"}  # rearrange entries: a selection matrix
_MAX_WINDOW = 64  # entries of one max-pooling window (each level of the max tree is a layer)
_PIECEWISE = {"Clip", "PRelu"}  # written with ReLU steps (exactly): see :meth:`_GraphWalk._piecewise`


def load(path: Path, drop_softmax: bool = False, check: bool = True) -> Network:
    model, files = fmt.read_with_externals(path)
    graph = model.graph
    fmt._check_domains(graph, path.name)
    in_name = fmt._graph_input(graph, path.name)[0]
    if not needs_graph(graph, in_name):
        net = fmt.load_chain(model, path, drop_softmax, check)
    else:
        net = _load_graph(model, path, drop_softmax, check)
    if files:
        net.metadata["external_data"] = files  # read with the model; the load cache skips such models
    return net


def needs_graph(graph, in_name: str) -> bool:
    """True if the data path branches (a data tensor read twice, a node with two data inputs) or max-pools."""
    data, uses = {in_name}, {}
    for node in graph.node:
        ins = [i for i in node.input if i in data]
        if not ins or node.op_type == "Shape":
            continue
        if node.op_type in _MAXPOOL or node.op_type in _INDEXING or node.op_type in _PIECEWISE or len(ins) > 1:
            return True
        for i in ins:
            uses[i] = uses.get(i, 0) + 1
        data.update(o for o in node.output[:1] if o)
    return any(v > 1 for v in uses.values())


def _silu_products(graph) -> dict:
    """``{sigmoid output: Mul node name}`` for each ``Mul(x, Sigmoid(x))`` whose Sigmoid output is read by that
    Mul only (how exporters write SiLU / swish)."""
    readers: dict = {}
    for node in graph.node:
        for i in node.input:
            readers.setdefault(i, []).append(node)
    readers.update({o.name: readers.get(o.name, []) + [None] for o in graph.output})
    out = {}
    for node in graph.node:
        if node.op_type != "Sigmoid" or len(node.input) != 1:
            continue
        sig, x = node.output[0], node.input[0]
        users = readers.get(sig, [])
        if len(users) == 1 and users[0] is not None and users[0].op_type == "Mul" and users[0].name and \
                sorted(users[0].input) == sorted([x, sig]):
            out[sig] = users[0].name
    return out


def _load_graph(model, path: Path, drop_softmax: bool, check: bool) -> Network:
    graph, fname = model.graph, path.name
    in_name, dtype, shape, batch = fmt._graph_input(graph, fname)
    walk = _GraphWalk(graph, fname, in_name, shape, dtype)
    for idx, node in enumerate(graph.node):
        walk.step(idx, node, drop_softmax)
    outputs = [o.name for o in graph.output]
    if len(outputs) != 1 or outputs[0] not in walk.vals:
        raise UnsupportedLayerError(f"{fname!r}: expected one graph output computed from the input, found {outputs}")
    expr, _ = walk.vals[outputs[0]]
    layers = walk.lift.chain(expr)
    carried = walk.lift.carrying_steps
    meta = {"onnx_input": in_name, "onnx_input_shape": list(shape),
            "graph": f"{walk.n_skip} skip connection(s), {walk.n_pool} max pooling layer(s) as a chain of "
                     f"{len(layers) // 2} activation steps ({carried} carry earlier tensors)"}
    if walk.dropped:
        meta["dropped"] = f"final {walk.dropped[0]}"
    net = check_widths(Network(tuple(layers), metadata=meta), fname)
    if check:
        precision = max(walk.precisions, key=lambda t: np.finfo(t).eps)
        meta["crosscheck"] = fmt._check_with_onnxruntime(net, model, path, in_name, (dtype, precision), shape, batch,
                                                         walk.dropped)
    return net


class _GraphWalk:
    """Tensor name -> (expression, shape) along the data path."""

    def __init__(self, graph, fname: str, in_name: str, shape: tuple[int, ...], dtype):
        self.graph, self.fname = graph, fname
        self.consts = fmt._Graph(graph, fname)
        from verification.io._lift import Lifter

        self.lift = Lifter(math.prod(shape))
        self.vals: dict[str, tuple[Expr, tuple[int, ...]]] = {in_name: (self.lift.input(), tuple(shape))}
        self.dropped = None
        self.silu = _silu_products(graph)  # Sigmoid outputs read only by Mul(x, Sigmoid(x)) -> that Mul
        self.precisions: list = [dtype]
        self.n_skip = self.n_pool = 0

    def step(self, idx: int, node, drop_softmax: bool) -> None:
        op, label, fname = node.op_type, fmt._node_label(node, idx), self.fname
        where = f"{fname!r}: {label} ({op})"
        data = [i for i in node.input if i in self.vals]
        if op == "Shape" and data:
            self.consts.values[node.output[0]] = fmt._shape_of(self.vals[data[0]][1], fmt._attrs(node))
            return
        if not data:
            fmt._fold_constant(node, self.consts, label, fname)
            return
        if op == "Sigmoid" and node.output[0] in self.silu:  # computed with its product as one SiLU
            return
        if op == "Mul" and node.name and node.name in self.silu.values() and any(
                self.silu.get(i) == node.name for i in node.input):
            x = next(i for i in node.input if self.silu.get(i) != node.name)
            e, shape = self.vals[x]
            self.vals[node.output[0]] = (self.lift.activate(e, SiLU()), shape)
            return
        try:
            out = self._apply(op, node, data, label, where, drop_softmax)
        except (ValueError, IndexError, TypeError) as exc:  # numpy broadcasting / shape / index errors
            raise ShapeMismatchError(f"{where}: {exc}") from None
        if out[0].n == 0 or math.prod(out[1]) != out[0].n:
            raise ShapeMismatchError(f"{where} produces a tensor of shape {out[1]} ({out[0].n} entries); a zero-width "
                                     "or inconsistent data tensor is not a network")
        self.vals[node.output[0]] = out

    def _apply(self, op: str, node, data: list, label: str, where: str, drop_softmax: bool):
        lift, consts = self.lift, self.consts
        e, shape = self.vals[data[0]]
        if op in fmt._SOFTMAX:
            self.dropped = fmt._final_softmax(node, self.graph, label, self.fname, drop_softmax, data[0])
            return e, shape
        if op in _PIECEWISE:
            if len(data) > 1 or node.input[0] != data[0]:
                raise UnsupportedLayerError(f"{where} takes the data tensor as a bound or slope (not supported)")
            return self._piecewise(op, node, e, shape, label, where), shape
        if len(data) > 1 or (op in _COMBINE and any(i and i not in consts and i not in self.vals for i in node.input)):
            return self._combine(op, node, where)
        if op in fmt._ACTIVATIONS:
            return lift.activate(e, fmt._ACTIVATIONS[op](node)), shape
        if op in fmt._SPATIAL or op in _MAXPOOL:
            node, four = fmt.as_2d(node, consts, shape, where)
            if four != shape:  # a 1-D layer, computed on the (1, C, 1, L) view
                if op in _MAXPOOL:
                    out, s2 = self._max_pool(op, node, e, four, where)
                else:
                    layer = fmt._SPATIAL[op](node, four[1:], consts, label, where)
                    out, s2 = lift.affine(e, layer), (1,) + layer.output_shape
                return out, (s2[0], s2[1], s2[3])
        if op == "ReduceMax":  # the maximum over the two spatial axes: a global max pool
            if len(shape) != 4 or fmt._squeeze_axes(node, consts, label, 4) != [2, 3] or \
                    fmt._int(node, "noop_with_empty_axes", 0):
                raise UnsupportedLayerError(f"{where}: only a maximum over the spatial axes (2, 3) is supported")
            out, out_shape = self._max_pool("GlobalMaxPool", node, e, shape, where)
            return out, (out_shape if fmt._int(node, "keepdims", 1) else out_shape[:2])
        if op in fmt._SPATIAL or op == "ReduceMean":
            if len(shape) != 4 or shape[0] != 1:
                raise ShapeMismatchError(f"{where} needs a (1, C, H, W) data tensor, got shape {shape}")
            keep = True
            if op == "ReduceMean":
                keep = bool(fmt._int(node, "keepdims", 1))
                if fmt._squeeze_axes(node, consts, label, 4) != [2, 3] or fmt._int(node, "noop_with_empty_axes", 0):
                    raise UnsupportedLayerError(f"{where}: only a mean over the spatial axes (2, 3) is supported")
                layer = rounded_pool(global_avg_pool(shape[1:]))
            else:
                layer = fmt._SPATIAL[op](node, shape[1:], consts, label, where)
            out_shape = (1,) + layer.output_shape if keep else (1, layer.output_shape[0])
            return lift.affine(e, layer), out_shape
        if op in _MAXPOOL:
            return self._max_pool(op, node, e, shape, where)
        if op in _INDEXING:
            if node.input[0] != data[0]:
                raise UnsupportedLayerError(f"{where} indexes a constant with the data tensor (not affine)")
            if op == "Pad":
                idx, fill = self._pad(node, shape, label, where)
                return self.lift.gather(e, idx, fill), idx.shape
            idx = self._index(op, node, shape, label)
            return self.lift.select(e, idx.reshape(-1)), idx.shape
        if op == "BatchNormalization":
            return self._batchnorm(node, e, shape, label, where), shape
        if op in fmt._SHAPE_OPS:
            fmt._check_shape_op(op, node, consts, label, self.fname)
            if op == "Cast" and fmt._int(node, "to", 0) in fmt._FLOAT_INPUTS:
                self.precisions.append(fmt._FLOAT_INPUTS[fmt._int(node, "to", 0)])
            new = fmt._new_shape(op, node, shape, consts, label)
            n = math.prod(shape)
            if op == "Reshape" and len(shape) == 4 and new not in ((shape[0], n // shape[0]), (n,)):
                raise UnsupportedLayerError(f"{where} reshapes the (N, C, H, W) data tensor {shape} to {new}; only a "
                                            "flatten to (N, C*H*W) is supported")
            return e, new
        if op in ("Add", "Sub", "Mul", "Div"):
            return self._with_constant(op, node, data[0], e, shape, label, where)
        if op in ("MatMul", "Gemm"):
            return self._matmul(op, node, data[0], e, shape, label, where)
        if op in fmt._NOT_YET:
            raise UnsupportedLayerError(f"{self.fname!r}: ONNX operator {op!r} at {label} is not supported yet")
        raise UnsupportedLayerError(f"{self.fname!r}: unsupported ONNX operator {op!r} at {label}")

    # ---------------------------------------------------------------- nodes
    def _combine(self, op: str, node, where: str):
        """Add / Sub / Sum of data tensors of one shape; Concat of data tensors along a non-batch axis."""
        names = [i for i in node.input if i]
        missing = [i for i in names if i not in self.vals and i not in self.consts]
        if missing:
            raise UnsupportedLayerError(f"{where} reads {missing[0]!r}, which is neither a constant nor computed by an "
                                        "earlier node (the graph must be topologically sorted)")
        if any(i not in self.vals for i in names):
            raise UnsupportedLayerError(f"{where} combines a data tensor with a constant in a way that is not supported")
        parts = [self.vals[i] for i in names]
        shapes = {s for _, s in parts}
        if op == "Concat":
            axis = fmt._int(node, "axis", 0)
            base = parts[0][1]
            rank = len(base)
            axis = axis % rank if -rank <= axis < rank else -1
            if axis < 1 or any(len(s) != rank or s[0] != 1 or s[:axis] + s[axis + 1:] != base[:axis] + base[axis + 1:]
                               for _, s in parts):
                raise UnsupportedLayerError(f"{where}: only a Concat along a non-batch axis of tensors with a batch "
                                            "of 1 and equal other sizes is supported")
            out_shape = tuple(base[:axis]) + (sum(s[axis] for _, s in parts),) + tuple(base[axis + 1:])
            flat = self.lift.concat([p for p, _ in parts])  # the parts one after the other
            if axis == 1:
                self.n_skip += 1
                return flat, out_shape
            # along a spatial axis (e.g. circular padding exported as Slice + Concat): reorder the entries
            offsets = np.cumsum([0] + [math.prod(s) for _, s in parts])
            order = np.concatenate([np.arange(o, o + math.prod(s)).reshape(s) for o, (_, s) in zip(offsets, parts)],
                                   axis=axis)
            return self.lift.select(flat, order.reshape(-1)), out_shape
        if op not in ("Add", "Sub", "Sum") or len(shapes) != 1:
            raise UnsupportedLayerError(
                f"{where} combines data tensors of shapes {sorted(shapes)} (only Add/Sub/Sum of equal shapes and a "
                "channel Concat are supported)")
        acc = parts[0][0]
        for p, _ in parts[1:]:
            acc = self.lift.add(acc, p, -1.0 if op == "Sub" else 1.0)
        self.n_skip += 1
        return acc, parts[0][1]

    def _piecewise(self, op: str, node, e: "Expr", shape: tuple, label: str, where: str) -> "Expr":
        """Clip and PRelu with constant parameters, exactly: ``clip(x, a, b) = a + relu(x - a) - relu(x - b)``
        (one bound: ``a + relu(x - a)`` or ``b - relu(b - x)``); PRelu with one slope ``s`` for every entry is
        ``leaky_relu(s)``, with slopes that differ ``relu(x) - s * relu(-x)``."""
        lift, n = self.lift, e.n
        ones = np.ones(n)
        if op == "PRelu":
            if len(node.input) < 2 or not node.input[1]:
                raise UnsupportedLayerError(f"{where} has no slope input")
            k = real_array(self.consts.get(node.input[1], label), f"{where} slope")
            slope = np.ascontiguousarray(np.broadcast_to(k, np.broadcast_shapes(k.shape, shape))).reshape(-1)
            if slope.size != n:
                raise ValueError(f"slope of shape {k.shape} broadcasts the data tensor {shape} to more entries")
            if np.all(slope == slope[0]):
                return lift.activate(e, LeakyReLU(float(slope[0])))
            r = lift.activate(lift.concat([e, lift.scale_shift(e, -ones, np.zeros(n))]), ReLU())
            return lift.add(lift.select(r, np.arange(n)), lift.scale_shift(lift.select(r, np.arange(n, 2 * n)), slope,
                                                                         np.zeros(n)), -1.0)
        bounds = []
        for j, attr in ((1, "min"), (2, "max")):
            if len(node.input) > j and node.input[j]:
                v = real_array(self.consts.get(node.input[j], label), f"{where} {attr}").reshape(-1)
                if v.size != 1:
                    raise UnsupportedLayerError(f"{where}: the {attr} bound must be one number, got {v.size}")
                bounds.append(float(v[0]))
            elif attr in fmt._attrs(node):  # opset < 11
                bounds.append(fmt._num(node, attr, 0.0))
            else:
                bounds.append(None)
        lo, hi = bounds
        if any(b is not None and not math.isfinite(b) for b in bounds):
            raise UnsupportedLayerError(f"{where}: a bound of Clip is not finite ({lo}, {hi})")
        if lo is not None and hi is not None and not lo < hi:
            raise UnsupportedLayerError(f"{where}: Clip with min {lo} >= max {hi} is constant (not supported)")
        if lo is None and hi is None:
            return e
        if hi is None:
            return lift.scale_shift(lift.activate(lift.scale_shift(e, ones, -lo * ones), ReLU()), ones, lo * ones)
        if lo is None:
            return lift.scale_shift(lift.activate(lift.scale_shift(e, -ones, hi * ones), ReLU()), -ones, hi * ones)
        r = lift.activate(lift.concat([lift.scale_shift(e, ones, -lo * ones), lift.scale_shift(e, ones, -hi * ones)]),
                          ReLU())
        diff = lift.add(lift.select(r, np.arange(n)), lift.select(r, np.arange(n, 2 * n)), -1.0)
        return lift.scale_shift(diff, ones, lo * ones)

    def _pad(self, node, shape: tuple, label: str, where: str) -> tuple[np.ndarray, float]:
        """The input index of every output entry of a Pad (``-1``: the constant) and the constant."""
        mode = fmt._attrs(node).get("mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else str(mode)
        rank = len(shape)
        if len(node.input) > 1 and node.input[1]:
            pads = fmt._int_list(self.consts.get(node.input[1], label), f"{where} pads")
        else:
            pads = fmt._ints(node, "pads") or []
        axes = list(range(rank))
        if len(node.input) > 3 and node.input[3]:
            axes = [a % rank for a in fmt._int_list(self.consts.get(node.input[3], label), f"{where} axes")]
        if len(pads) != 2 * len(axes):
            raise ValueError(f"pads {pads} do not match {len(axes)} axes")
        fill = 0.0
        if len(node.input) > 2 and node.input[2]:
            value = real_array(self.consts.get(node.input[2], label), f"{where} constant_value").reshape(-1)
            fill = float(value[0]) if value.size else 0.0
        elif "value" in fmt._attrs(node):
            fill = fmt._num(node, "value", 0.0)
        widths = [[0, 0] for _ in range(rank)]
        for j, a in enumerate(axes):
            widths[a] = [pads[j], pads[j + len(axes)]]
        pos = np.arange(math.prod(shape)).reshape(shape)
        crop = tuple(slice(max(0, -b), shape[i] - max(0, -e) if e < 0 else None) for i, (b, e) in enumerate(widths))
        pos = pos[crop]  # negative pads remove entries
        grow = [(max(0, b), max(0, e)) for b, e in widths]
        if mode == "constant":
            return np.pad(pos, grow, constant_values=-1), fill
        if mode not in ("reflect", "edge", "wrap"):
            raise UnsupportedLayerError(f"{where}: padding mode {mode!r} is not supported")
        if mode == "reflect" and any(g > n - 1 for (g0, g1), n in zip(grow, pos.shape) for g in (g0, g1) if g):
            raise ValueError("reflect padding wider than the tensor")
        return np.pad(pos, grow, mode=mode), fill

    def _index(self, op: str, node, shape: tuple, label: str) -> np.ndarray:
        """The flat input index of every output entry of a Slice / Gather / Transpose."""
        pos = np.arange(math.prod(shape)).reshape(shape)
        if op == "Transpose":
            perm = fmt._ints(node, "perm")
            return np.transpose(pos, perm)
        if op == "Gather":
            ind = np.asarray(self.consts.get(node.input[1], label))
            if ind.dtype.kind not in "iu":
                raise ValueError("Gather indices must be integers")
            return np.take(pos, ind, axis=fmt._int(node, "axis", 0))
        if len(node.input) < 3:
            raise ValueError("Slice needs starts and ends inputs")
        args = [fmt._int_list(self.consts.get(i, label), f"{label} input") if i else None for i in node.input[1:5]]
        starts, ends = args[0], args[1]
        if len(args) > 2 and any(not -len(shape) <= a < len(shape) for a in (args[2] or [])):
            raise ValueError(f"Slice axes {args[2]} out of range for a tensor of rank {len(shape)}")
        axes = args[2] if len(args) > 2 and args[2] is not None else list(range(len(starts)))
        steps = args[3] if len(args) > 3 and args[3] is not None else [1] * len(starts)
        index = [slice(None)] * len(shape)
        for a, st, en, sp in zip(axes, starts, ends, steps):
            if sp == 0:
                raise ValueError("Slice step 0")
            index[a % len(shape)] = slice(st, en, sp)
        return pos[tuple(index)]

    def _with_constant(self, op: str, node, name: str, e: Expr, shape: tuple, label: str, where: str):
        i_var = list(node.input).index(name)
        k = real_array(self.consts.get(node.input[1 - i_var], label), f"{where} constant")
        out_shape = np.broadcast_shapes(k.shape, shape)
        if math.prod(out_shape) != e.n:
            raise ValueError(f"constant of shape {k.shape} broadcasts the data tensor {shape} to {out_shape}")
        kf = np.ascontiguousarray(np.broadcast_to(k, out_shape)).reshape(-1)
        ones, zeros = np.ones(e.n), np.zeros(e.n)
        if op == "Add":
            return self.lift.scale_shift(e, ones, kf), out_shape
        if op == "Sub":
            return (self.lift.scale_shift(e, ones, -kf) if i_var == 0 else self.lift.scale_shift(e, -ones, kf)), out_shape
        if op == "Mul":
            return self.lift.scale_shift(e, kf, zeros), out_shape
        if i_var != 0:
            raise UnsupportedLayerError(f"{where} divides a constant by the data tensor (not affine)")
        with np.errstate(all="ignore"):  # fl(1 / k): |1/k - fl(1/k)| <= gamma_1 |fl(1/k)| unless k = 2^j
            return self.lift.scale_shift(e, 1.0 / kf, zeros, 0.0 if pow2(kf) else gamma(1)), out_shape

    def _matmul(self, op: str, node, name: str, e: Expr, shape: tuple, label: str, where: str):
        if list(node.input).index(name) != 0:
            raise UnsupportedLayerError(f"{where}: only the data tensor times a constant weight is supported")
        w = real_array(self.consts.get(node.input[1], label), f"{where} weight")
        bias, rel = None, 0.0
        if op == "Gemm":
            if fmt._int(node, "transA", 0):
                raise UnsupportedLayerError(f"{where} with transA=1 is not supported")
            if len(shape) != 2:
                raise ValueError(f"Gemm needs a 2-D data tensor, got shape {shape}")
            alpha, beta = fmt._num(node, "alpha", 1.0), fmt._num(node, "beta", 1.0)
            w = (w.T if fmt._int(node, "transB", 0) else w) * alpha
            rel += 0.0 if pow2(alpha) else gamma(1)  # fl(alpha W), relative to the float product
            if len(node.input) > 2 and node.input[2]:
                bias = real_array(self.consts.get(node.input[2], label), f"{where} bias") * beta
                rel += 0.0 if pow2(beta) else gamma(1)
        if w.ndim != 2:
            raise UnsupportedLayerError(f"{where} with a {w.ndim}-D weight is not supported")
        if math.prod(shape[:-1]) != 1 or shape[-1] != w.shape[0]:
            raise ValueError(f"data tensor of shape {shape} cannot be multiplied by a weight of shape {w.shape}")
        b = np.zeros(w.shape[1]) if bias is None else np.broadcast_to(bias, (1, w.shape[1])).reshape(-1)
        return self.lift.affine(e, Dense(w.T, b), rel), tuple(shape[:-1]) + (w.shape[1],)

    def _batchnorm(self, node, e: Expr, shape: tuple, label: str, where: str) -> Expr:
        if fmt._int(node, "training_mode", 0) or len(node.output) > 1 and any(node.output[1:]):
            raise UnsupportedLayerError(f"{where} runs in training mode (batch statistics)")
        if len(node.input) != 5:
            raise UnsupportedLayerError(f"{where} needs 5 inputs (X, scale, B, mean, var), got {len(node.input)}")
        g, beta, mean, variance = (real_array(self.consts.get(i, label), f"{where} {n}").reshape(-1)
                                   for i, n in zip(node.input[1:], ("scale", "B", "mean", "var")))
        if len(shape) < 2 or not all(a.shape == (shape[1],) for a in (g, beta, mean, variance)):
            raise ShapeMismatchError(f"{where}: parameters do not match the channels of the data tensor {shape}")
        s, t, t_mag = fmt.bn_scale_shift(g, beta, mean, variance, fmt._num(node, "epsilon", fmt._EPS_DEFAULT))
        per = (1, shape[1]) + (1,) * (len(shape) - 2)
        kf, tf, tm = (np.ascontiguousarray(np.broadcast_to(v.reshape(per), shape)).reshape(-1) for v in (s, t, t_mag))
        return self.lift.scale_shift(e, kf, tf, gamma(7), tm)  # bn_scale_shift: gamma_4 |s|, gamma_7 t_mag

    def _max_pool(self, op: str, node, e: Expr, shape: tuple, where: str):
        if len(shape) != 4 or shape[0] != 1:
            raise ShapeMismatchError(f"{where} needs a (1, C, H, W) data tensor, got shape {shape}")
        if len(node.output) > 1 and any(node.output[1:]):
            raise UnsupportedLayerError(f"{where}: the Indices output of MaxPool is not supported")
        c, h, w = shape[1:]
        if op == "GlobalMaxPool":
            kernel, strides, dil, pads, ceil = (h, w), (1, 1), (1, 1), (0, 0, 0, 0), 0
        else:
            kernel = fmt._ints(node, "kernel_shape")
            if kernel is None or len(kernel) != 2 or min(kernel) < 1:
                raise UnsupportedLayerError(f"{where}: kernel_shape must be two positive integers, got {kernel}")
            strides = fmt._pair_attr(node, "strides", where)
            dil = fmt._pair_attr(node, "dilations", where)
            pads = fmt._spatial_pads(node, (h, w), tuple(kernel), strides, dil, where)
            ceil = fmt._int(node, "ceil_mode", 0)
        if kernel[0] * kernel[1] > _MAX_WINDOW:
            raise UnsupportedLayerError(f"{where}: a {kernel[0]}x{kernel[1]} window is above the supported "
                                        f"{_MAX_WINDOW} entries")
        rows = _pool_axis(h, kernel[0], strides[0], dil[0], pads[:2], ceil, where)
        cols = _pool_axis(w, kernel[1], strides[1], dil[1], pads[2:], ceil, where)
        ho, wo = len(rows), len(cols)
        win = []
        for ch in range(c):
            for ry in rows:
                for cx in cols:
                    idx = [ch * h * w + y * w + x for y in ry for x in cx]
                    win.append(idx + [idx[0]] * (kernel[0] * kernel[1] - len(idx)))
        self.n_pool += 1
        out = self.lift.max_pool(e, np.asarray(win, dtype=np.int64), ReLU())
        return out, (1, c, ho, wo)


def _pool_axis(n: int, k: int, s: int, d: int, pad: tuple, ceil: int, where: str) -> list[list[int]]:
    """The valid input coordinates of each window along one axis (ONNX/torch rules, ``ceil_mode`` included:
    a window that starts in the right padding is dropped)."""
    span = n + pad[0] + pad[1] - d * (k - 1) - 1
    if span < 0:
        raise ShapeMismatchError(f"{where}: the window does not fit the input")
    n_out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (n_out - 1) * s >= n + pad[0]:
        n_out -= 1
    out = []
    for i in range(n_out):
        coords = [i * s + t * d - pad[0] for t in range(k)]
        valid = [c for c in coords if 0 <= c < n]
        if not valid:
            raise UnsupportedLayerError(f"{where}: a pooling window lies entirely in the padding")
        out.append(valid)
    return out
