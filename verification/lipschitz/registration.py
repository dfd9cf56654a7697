"""The table of Lipschitz methods: :class:`MethodSpec` and the :func:`register` decorator each method module uses.

The method modules import this module; :mod:`verification.lipschitz.registry` (the public ``lipschitz``
function) imports the method modules, so the table is full once the registry is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from verification.lipschitz.result import LipschitzResult
from verification.network import Network

__all__ = ["MethodSpec", "register", "registered_methods"]


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: ``func(net, norm, c) -> LipschitzResult`` where ``net`` is canonical and
    ``c`` is ``None`` (full output) or an output vector (scalar output ``cᵀ f``)."""

    name: str
    func: Callable[..., LipschitzResult]
    norms: tuple
    summary: str
    auto_priority: int | None = None
    auto_applicable: Callable[[Network, int | str, bool], bool] | None = None


_REGISTRY: dict[str, MethodSpec] = {}


def register(
    name: str,
    norms: tuple = (2, "inf"),
    summary: str = "",
    auto_priority: int | None = None,
    auto_applicable: Callable[[Network, int | str, bool], bool] | None = None,
) -> Callable:
    """Decorator registering a Lipschitz method under ``name``.

    ``method="auto"`` considers methods with an ``auto_priority`` (higher = tighter) whose
    ``auto_applicable(canonical_net, norm, has_output)`` returns True (expected to succeed quickly), and
    picks the highest priority.  Only certified methods should set a priority."""

    def deco(func: Callable) -> Callable:
        _REGISTRY[name] = MethodSpec(name, func, norms, summary, auto_priority, auto_applicable)
        return func

    return deco


def registered_methods() -> dict[str, MethodSpec]:
    """A copy of the table: name -> :class:`MethodSpec`."""
    return dict(_REGISTRY)
