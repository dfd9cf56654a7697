"""The one name table of the activations.

Each row names an activation in every format the toolkit reads: the ``"type"`` of a
:meth:`~verification.activations.base.Activation.to_spec` dictionary, the short form of
:func:`parse_activation` (``--arch``, ``.mat`` files), the ONNX operator and the ``torch.nn`` module.
``from_spec``, ``parse_activation``, the ONNX and PyTorch loaders and the messages that list supported
activations all read this table: adding an activation is a new class and a new row here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from verification.activations.base import Activation
from verification.activations.elementwise import Identity, LeakyReLU, ReLU, Sigmoid, Tanh
from verification.activations.grouped import GroupSort, Householder
from verification.activations.silu import SiLU
from verification.errors import UnsupportedLayerError

__all__ = ["ActivationName", "NAMES", "ONNX_OPS", "TORCH_MODULES", "from_spec", "parse_activation", "short_forms"]

_REQUIRED = object()


@dataclass(frozen=True)
class ActivationName:
    """One name of an activation.

    ``build`` makes it from its one parameter ``param`` (the key in spec dictionaries and the ``torch.nn``
    attribute), ``default`` when the parameter is absent (:data:`_REQUIRED`: it must be given);
    ``short`` is its form for :func:`parse_activation` (``"leaky_relu(a)"`` takes the parameter in
    parentheses, ``None``: not parseable), ``aliases`` other accepted short names; ``onnx_op`` /
    ``onnx_attr`` the ONNX operator (standard domain) and the attribute holding the parameter;
    ``torch_module`` the ``torch.nn`` class name and ``torch_probe`` the parameter recovered from the
    module's values on scalars (traced modules keep no attributes)."""

    name: str
    build: Callable[..., Activation]
    param: str | None = None
    default: Any = None
    convert: Callable[[str], Any] = float
    short: str | None = None
    aliases: tuple[str, ...] = ()
    onnx_op: str | None = None
    onnx_attr: str | None = None
    torch_module: str | None = None
    torch_probe: Callable[[Callable[[float], float]], Any] | None = None

    def make(self, value: Any = None) -> Activation:
        """The activation with parameter ``value`` (``None``: the default)."""
        if self.param is None:
            return self.build()
        if value is None:
            if self.default is _REQUIRED:
                raise UnsupportedLayerError(f"activation {self.name!r} needs its parameter {self.param!r}")
            value = self.default
        return self.build(value)


# Order: the order of the short forms in messages.
NAMES: tuple[ActivationName, ...] = (
    ActivationName("relu", ReLU, short="relu", onnx_op="Relu", torch_module="ReLU"),
    ActivationName("tanh", Tanh, short="tanh", onnx_op="Tanh", torch_module="Tanh"),
    ActivationName("sigmoid", Sigmoid, short="sigmoid", onnx_op="Sigmoid", torch_module="Sigmoid"),
    ActivationName("silu", SiLU, short="silu", torch_module="SiLU"),
    ActivationName("identity", Identity, short="identity", aliases=("linear",)),
    ActivationName(
        "leaky_relu", LeakyReLU, param="negative_slope", default=0.01, short="leaky_relu(a)", aliases=("leakyrelu",),
        onnx_op="LeakyRelu", onnx_attr="alpha", torch_module="LeakyReLU", torch_probe=lambda f: -f(-1.0),
    ),
    ActivationName("maxmin", GroupSort, param="group_size", default=2, short="maxmin"),
    ActivationName("groupsort", GroupSort, param="group_size", default=2, convert=int, short="groupsort(g)"),
    ActivationName("householder", Householder, param="v", default=_REQUIRED),
)

_BY_NAME = {row.name: row for row in NAMES}
_BY_SHORT = {n: row for row in NAMES if row.short for n in (row.name, *row.aliases)}
ONNX_OPS: dict[str, ActivationName] = {row.onnx_op: row for row in NAMES if row.onnx_op}
TORCH_MODULES: dict[str, ActivationName] = {row.torch_module: row for row in NAMES if row.torch_module}


def short_forms(rows=NAMES, last: str = "or") -> str:
    """``"relu, tanh, ... or groupsort(g)"``: the short forms of ``rows`` for messages."""
    forms = [row.short for row in rows if row.short]
    return forms[0] if len(forms) == 1 else f"{', '.join(forms[:-1])} {last} {forms[-1]}"


def from_spec(spec: dict) -> Activation:
    """Build an activation from its :meth:`Activation.to_spec` dictionary."""
    row = _BY_NAME.get(spec.get("type"))
    if row is None:
        raise UnsupportedLayerError(f"unknown activation type {spec.get('type')!r}")
    if row.param is None:
        return row.build()
    return row.build(spec[row.param] if row.default is _REQUIRED else spec.get(row.param, row.default))


def parse_activation(text: str) -> Activation:
    """Parse a short activation name (see :data:`NAMES`): ``relu``, ``tanh``, ``sigmoid``, ``silu``,
    ``identity``, ``leaky_relu(0.1)``, ``maxmin``, ``groupsort(4)``; case and spaces are ignored."""
    t = text.strip().lower().replace(" ", "")
    arg = None
    if t.endswith(")") and "(" in t:
        t, arg = t[:-1].split("(", 1)
    row = _BY_SHORT.get(t)
    try:
        if row is not None and (arg is None or "(" in row.short):
            return row.make(row.convert(arg) if arg else None)
    except ValueError:  # includes InvalidParameterError
        pass
    raise UnsupportedLayerError(f"unknown activation {text!r}; expected {short_forms()}")
