"""Activations of the network IR (see :mod:`verification.activations.base` for the protocol)."""

from __future__ import annotations

from verification.activations.base import Activation
from verification.activations.elementwise import Identity, LeakyReLU, ReLU, Sigmoid, Tanh
from verification.activations.grouped import GroupSort, Householder, MaxMin
from verification.errors import UnsupportedLayerError

__all__ = [
    "Activation",
    "Identity",
    "ReLU",
    "LeakyReLU",
    "Tanh",
    "Sigmoid",
    "GroupSort",
    "MaxMin",
    "Householder",
    "from_spec",
    "parse_activation",
]


def from_spec(spec: dict) -> Activation:
    """Build an activation from its :meth:`Activation.to_spec` dictionary."""
    kind = spec.get("type")
    if kind == "identity":
        return Identity()
    if kind == "relu":
        return ReLU()
    if kind == "leaky_relu":
        return LeakyReLU(spec.get("negative_slope", 0.01))
    if kind == "tanh":
        return Tanh()
    if kind == "sigmoid":
        return Sigmoid()
    if kind in ("groupsort", "maxmin"):
        return GroupSort(spec.get("group_size", 2))
    if kind == "householder":
        return Householder(spec["v"])
    raise UnsupportedLayerError(f"unknown activation type {kind!r}")


def parse_activation(text: str) -> Activation:
    """Parse a short activation name: ``relu``, ``tanh``, ``sigmoid``, ``identity``, ``leaky_relu(0.1)``,
    ``maxmin``, ``groupsort(4)``."""
    t = text.strip().lower().replace(" ", "")
    arg = None
    if t.endswith(")") and "(" in t:
        t, arg = t[:-1].split("(", 1)
    try:
        if t in ("relu", "tanh", "sigmoid", "identity", "linear") and arg is None:
            return from_spec({"type": "identity" if t == "linear" else t})
        if t in ("leaky_relu", "leakyrelu"):
            return LeakyReLU(float(arg) if arg else 0.01)
        if t == "maxmin" and arg is None:
            return GroupSort(2)
        if t == "groupsort":
            return GroupSort(int(arg) if arg else 2)
    except ValueError:
        pass
    raise UnsupportedLayerError(
        f"unknown activation {text!r}; expected relu, tanh, sigmoid, identity, leaky_relu(a), maxmin or groupsort(g)"
    )
