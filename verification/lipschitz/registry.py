"""Registry mapping Lipschitz method names to implementations, and the public ``lipschitz`` function."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from verification._blas import scipy_blas_single_thread
from verification.errors import InvalidParameterError
from verification.lipschitz.result import LipschitzResult
from verification.network import Network, output_vector

__all__ = ["register", "lipschitz", "available_methods", "MethodSpec", "normalize_norm"]


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


def available_methods() -> dict[str, MethodSpec]:
    _load_builtin_methods()
    return dict(_REGISTRY)


def _load_builtin_methods() -> None:
    # Importing the modules registers their methods.
    from verification.lipschitz import baseline  # noqa: F401
    import importlib

    for mod in ("lipsdp", "eclipse", "quadratic_constraints"):
        try:
            importlib.import_module(f"verification.lipschitz.{mod}")
        except ModuleNotFoundError as exc:  # module not written yet
            if exc.name != f"verification.lipschitz.{mod}":
                raise


def normalize_norm(norm: int | float | str) -> int | str:
    """Accept ``2``, ``"2"``, ``"l2"``, ``"inf"``, ``np.inf``, ``"linf"``; return ``2`` or ``"inf"``."""
    if isinstance(norm, str):
        key = norm.strip().lower().lstrip("l")
        if key == "2":
            return 2
        if key in ("inf", "infinity", "∞"):
            return "inf"
    elif norm == 2:
        return 2
    elif norm == np.inf:
        return "inf"
    raise InvalidParameterError(f"The 'norm' parameter of lipschitz must be 2 or 'inf'. Got {norm!r} instead.")


def lipschitz(
    net: Network,
    method: str = "auto",
    norm: int | str = 2,
    output: int | np.ndarray | None = None,
    **options,
) -> LipschitzResult:
    """Lipschitz bound of ``net`` from input norm ``norm`` to output norm ``norm``.

    Conventions: ``norm=2`` bounds ``||f(x)-f(y)||_2 / ||x-y||_2``; ``norm="inf"`` bounds
    ``||f(x)-f(y)||_inf / ||x-y||_inf``.  With ``output`` (an output index or a vector ``c``) the bound is for
    the scalar ``|cᵀ(f(x)-f(y))|``; e.g. ``c = e_i - e_j`` bounds a logit difference.  ``method="auto"``
    picks the tightest registered certified method expected to finish quickly for this network.
    Biases never matter.  See ``available_methods()`` for the method names.
    """
    if not isinstance(net, Network):
        raise InvalidParameterError(f"lipschitz expects a verification.Network. Got {type(net).__name__}.")
    norm = normalize_norm(norm)
    methods = available_methods()
    cnet = net.canonical()
    if method == "auto":
        method = _auto_method(cnet, norm, output is not None, methods)
    if method not in methods:
        raise InvalidParameterError(
            f"The 'method' parameter of lipschitz must be one of {['auto', *sorted(methods)]}. Got {method!r} instead."
        )
    spec = methods[method]
    if norm not in spec.norms:
        raise InvalidParameterError(f"method {method!r} supports norm {spec.norms}, not {norm!r}")
    c = None if output is None else output_vector(output, cnet.out_dim)
    t0 = time.perf_counter()
    with scipy_blas_single_thread():  # numpy's and scipy's BLAS pools would oversubscribe the cores
        res = spec.func(cnet, norm=norm, c=c, **options)
    seconds = time.perf_counter() - t0
    out_repr = None if output is None else (int(output) if isinstance(output, (int, np.integer)) else c.tolist())
    return replace(res, seconds=seconds, output=out_repr)


def _auto_method(net: Network, norm, has_output: bool, methods: dict[str, MethodSpec]) -> str:
    """Highest-priority registered method applicable to this network and norm."""
    candidates = [
        m
        for m in methods.values()
        if m.auto_priority is not None
        and norm in m.norms
        and (m.auto_applicable is None or m.auto_applicable(net, norm, has_output))
    ]
    return max(candidates, key=lambda m: m.auto_priority).name
