"""ONNX loader: a single-input chain of affine and activation nodes.

Supported nodes: Gemm, MatMul, Add, Sub, Mul, Div (with constants), Relu, LeakyRelu, Tanh, Sigmoid,
Flatten, Reshape, Squeeze, Unsqueeze, Identity, Dropout, Constant.  Consecutive affine nodes are folded
into one dense layer; each activation closes a dense layer.  Anything else (Conv, residual branches, ...)
raises :class:`UnsupportedLayerError` naming the operator and the node.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from verification.activations import Activation, LeakyReLU, ReLU, Sigmoid, Tanh
from verification.errors import ModelFormatError, ShapeMismatchError, UnsupportedLayerError
from verification.network import Dense, Layer, Network

__all__ = ["load"]

_ACTIVATIONS = {"Relu": lambda n: ReLU(), "Tanh": lambda n: Tanh(), "Sigmoid": lambda n: Sigmoid()}
_RESHAPES = {"Flatten", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Dropout"}


class _Var:
    """The data-dependent tensor: ``value = (A @ h + c).reshape(shape)`` with ``h`` the last activation output."""

    def __init__(self, a: np.ndarray, c: np.ndarray, shape: tuple[int, ...]):
        self.a, self.c, self.shape = a, c, shape


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _node_label(node, idx: int) -> str:
    return f"node {idx} ({node.name!r})" if node.name else f"node {idx}"


def load(path: Path) -> Network:
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise ModelFormatError(f"could not parse ONNX file {path.name!r} (truncated or corrupt?): {type(exc).__name__}") from None
    graph = model.graph
    consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in consts]
    if len(inputs) != 1:
        raise UnsupportedLayerError(f"{path.name!r}: expected one graph input, found {len(inputs)}")
    dims = [d.dim_value if d.dim_value > 0 else 1 for d in inputs[0].type.tensor_type.shape.dim]
    if not dims:
        raise UnsupportedLayerError(f"{path.name!r}: the graph input has no static shape")
    shape = tuple(dims)
    n_in = int(np.prod(shape))
    var_name = inputs[0].name
    var = _Var(np.eye(n_in), np.zeros(n_in), shape)
    layers: list[Layer] = []

    def const_of(name: str, label: str) -> np.ndarray:
        if name not in consts:
            raise UnsupportedLayerError(f"{path.name!r}: {label} combines two data-dependent tensors (branches are not supported)")
        return consts[name]

    for idx, node in enumerate(graph.node):
        op, label = node.op_type, _node_label(node, idx)
        if op == "Constant":
            from onnx import helper

            consts[node.output[0]] = np.asarray(numpy_helper.to_array(helper.get_attribute_value(node.attribute[0])), dtype=np.float64)
            continue
        data_inputs = [i for i in node.input if i == var_name]
        if not data_inputs:
            if all(i in consts or i == "" for i in node.input) and op in ("Reshape", "Identity", "Cast"):
                consts[node.output[0]] = consts[node.input[0]]
                continue
            raise UnsupportedLayerError(f"{path.name!r}: {label} ({op}) does not read the network's data path")
        if len(data_inputs) > 1:
            raise UnsupportedLayerError(f"{path.name!r}: {label} ({op}) uses the data tensor twice (residual/branching graphs are not supported)")
        try:
            var = _apply(op, node, var, var_name, const_of, label, layers, path.name)
        except ValueError as exc:  # numpy broadcasting / shape errors
            raise ShapeMismatchError(f"{path.name!r}: {label} ({op}): {exc}") from None
        var_name = node.output[0]
    outputs = [o.name for o in graph.output]
    if outputs != [var_name]:
        raise UnsupportedLayerError(f"{path.name!r}: the graph output {outputs} is not the end of a single chain ({var_name!r})")
    layers.append(Dense(var.a, var.c))
    return Network(tuple(layers), metadata={"onnx_input": inputs[0].name, "onnx_input_shape": list(shape)})


def _apply(op, node, var: _Var, var_name: str, const_of, label: str, layers: list, fname: str) -> _Var:
    n = var.a.shape[0]
    if op in _ACTIVATIONS or op == "LeakyRelu":
        act: Activation = LeakyReLU(_attrs(node).get("alpha", 0.01)) if op == "LeakyRelu" else _ACTIVATIONS[op](node)
        layers.append(Dense(var.a, var.c))
        layers.append(act)
        return _Var(np.eye(n), np.zeros(n), var.shape)
    if op in _RESHAPES:
        if op == "Flatten":
            axis = _attrs(node).get("axis", 1)
            lead = int(np.prod(var.shape[:axis])) if axis else 1
            shape = (lead, n // lead)
        elif op == "Reshape":
            target = [int(s) for s in const_of(node.input[1], label)]
            target = [var.shape[i] if s == 0 else s for i, s in enumerate(target)]
            shape = tuple(np.empty(var.shape).reshape(target).shape)
        else:
            shape = (n,) if op in ("Squeeze", "Unsqueeze") else var.shape
        return _Var(var.a, var.c, shape)
    if op in ("Add", "Sub", "Mul", "Div"):
        i_var = list(node.input).index(var_name)
        k = const_of(node.input[1 - i_var], label)
        full = np.broadcast_to(k, np.broadcast_shapes(k.shape, var.shape))
        if full.shape != var.shape and int(np.prod(full.shape)) != n:
            raise ValueError(f"constant of shape {k.shape} broadcasts the data tensor {var.shape} to {full.shape}")
        kf = np.ascontiguousarray(full).reshape(-1)
        if op == "Add":
            return _Var(var.a, var.c + kf, var.shape)
        if op == "Sub":
            if i_var == 0:
                return _Var(var.a, var.c - kf, var.shape)
            return _Var(-var.a, kf - var.c, var.shape)
        if op == "Mul":
            return _Var(kf[:, None] * var.a, kf * var.c, var.shape)
        if i_var != 0:
            raise UnsupportedLayerError(f"{fname}: {label} (Div) divides a constant by the data tensor (not affine)")
        return _Var(var.a / kf[:, None], var.c / kf, var.shape)
    if op in ("MatMul", "Gemm"):
        if list(node.input).index(var_name) != 0:
            raise UnsupportedLayerError(f"{fname}: {label} ({op}) multiplies the data tensor from the right side only is supported")
        w = const_of(node.input[1], label)
        bias = None
        if op == "Gemm":
            at = _attrs(node)
            if at.get("transA", 0):
                raise UnsupportedLayerError(f"{fname}: {label} (Gemm) with transA=1 is not supported")
            w = (w.T if at.get("transB", 0) else w) * at.get("alpha", 1.0)
            if len(node.input) > 2 and node.input[2]:
                bias = const_of(node.input[2], label) * at.get("beta", 1.0)
        if w.ndim != 2:
            raise UnsupportedLayerError(f"{fname}: {label} ({op}) with a {w.ndim}-D weight is not supported")
        rows = int(np.prod(var.shape[:-1]))
        if rows != 1 or var.shape[-1] != w.shape[0]:
            raise ValueError(f"data tensor of shape {var.shape} cannot be multiplied by a weight of shape {w.shape}")
        a, c = w.T @ var.a, w.T @ var.c
        if bias is not None:
            c = c + np.broadcast_to(bias, (w.shape[1],))
        return _Var(a, c, var.shape[:-1] + (w.shape[1],))
    raise UnsupportedLayerError(f"{fname}: unsupported ONNX operator {op!r} at {label}")
