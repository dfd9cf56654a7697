"""The public ``lipschitz`` function: method choice (``auto`` with fallbacks), options, and the self-check.

It imports every method module (importing one registers its methods in
:mod:`verification.lipschitz.registration`) and checks each certified value against attained difference
quotients (:mod:`verification.lipschitz.quotients`).
"""

from __future__ import annotations

import inspect
import time
from dataclasses import replace

import numpy as np

from verification._blas import scipy_blas_single_thread
from verification.errors import InternalCheckError, InvalidParameterError, PreconditionError, SolverError
# importing a method module registers its methods (in this order: the order of available_methods())
from verification.lipschitz import baseline, lipsdp, eclipse  # noqa: F401
from verification.lipschitz.quotients import attained_quotients
from verification.lipschitz.registration import MethodSpec, registered_methods
from verification.lipschitz.result import LipschitzResult
from verification.network import Network, output_vector

__all__ = ["lipschitz", "available_methods", "auto_candidates", "normalize_norm"]


def available_methods() -> dict[str, MethodSpec]:
    """The registered methods: name -> :class:`MethodSpec`."""
    return registered_methods()


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
    picks the tightest registered certified method expected to finish quickly for this network; if it fails
    (solver failure, or an answer it cannot certify) the next one is tried, down to ``naive``, which always
    certifies; ``details["auto_tried"]`` lists the methods that failed and why.  With ``auto``, ``options``
    reach only the methods that accept them (e.g. ``solver`` the SDP methods).
    Biases never matter.  See ``available_methods()`` for the method names.

    Every certified value is checked against a few attained difference quotients before it is returned
    (:class:`~verification.errors.InternalCheckError` if one exceeds it: a bug of ours, never reported as
    a bound).  ``details["assumed"]`` and ``["dropped"]`` repeat what the loader assumed or dropped, if anything.
    """
    if not isinstance(net, Network):
        raise InvalidParameterError(f"lipschitz expects a verification.Network. Got {type(net).__name__}.")
    norm = normalize_norm(norm)
    methods = available_methods()
    cnet = net.canonical()
    if method != "auto" and method not in methods:
        raise InvalidParameterError(
            f"The 'method' parameter of lipschitz must be one of {['auto', *sorted(methods)]}. Got {method!r} instead."
        )
    if method != "auto" and norm not in methods[method].norms:
        raise InvalidParameterError(f"method {method!r} supports norm {methods[method].norms}, not {norm!r}")
    c = None if output is None else output_vector(output, cnet.out_dim)
    t0 = time.perf_counter()
    with scipy_blas_single_thread():  # numpy's and scipy's BLAS pools would oversubscribe the cores
        if method == "auto":
            res = _run_auto(cnet, norm, c, methods, options)
        else:
            res = _call(methods[method], cnet, norm, c, options, strict=True)
        if res.certified:
            _self_check(cnet, norm, c, res)
    seconds = time.perf_counter() - t0
    out_repr = None if output is None else (int(output) if isinstance(output, (int, np.integer)) else c.tolist())
    details = dict(res.details)
    for key in ("assumed", "dropped"):  # what the loader assumed about the file, carried into the result
        if net.metadata.get(key):
            details[key] = net.metadata[key]
    return replace(res, seconds=seconds, output=out_repr, details=details)


def _call(spec: MethodSpec, net: Network, norm, c, options: dict, strict: bool) -> LipschitzResult:
    """Run one method; ``strict``: unknown options are an error, else they are dropped for this method."""
    params = inspect.signature(spec.func).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [k for k in options if k not in params and not takes_any]
    if unknown and strict:
        raise InvalidParameterError(f"method {spec.name!r} has no option {unknown[0]!r}")
    opts = {k: v for k, v in options.items() if k not in unknown}
    return spec.func(net, norm=norm, c=c, **opts)


def auto_candidates(net: Network, norm, has_output: bool, methods: dict[str, MethodSpec]) -> list[str]:
    """Registered certified methods applicable to this network and norm, tightest (highest priority) first."""
    candidates = [
        m
        for m in methods.values()
        if m.auto_priority is not None
        and norm in m.norms
        and (m.auto_applicable is None or m.auto_applicable(net, norm, has_output))
    ]
    return [m.name for m in sorted(candidates, key=lambda m: -m.auto_priority)]


def _run_auto(net: Network, norm, c, methods: dict[str, MethodSpec], options: dict) -> LipschitzResult:
    tried = []
    names = auto_candidates(net, norm, c is not None, methods)
    if "naive" not in names:
        names.append("naive")
    for name in names:
        try:
            res = _call(methods[name], net, norm, c, options, strict=False)
        except (SolverError, PreconditionError, ArithmeticError, np.linalg.LinAlgError) as exc:
            tried.append({"method": name, "failure": " ".join(str(exc).split())[:300] or type(exc).__name__})
            continue
        if res.certified and np.isfinite(res.value):
            if name != "naive":  # the product of norms costs nothing; on badly scaled nets it can be tighter
                crude = _call(methods["naive"], net, norm, c, options, strict=False)
                if crude.value < res.value:
                    tried.append({"method": name, "failure": f"certified {res.value:.6g}, looser than naive"})
                    res = crude
            if tried:
                res = replace(res, details=dict(res.details, auto_tried=tried))
            return res
        tried.append({"method": name, "failure": f"not certified (value {res.value:.6g})"})
    raise SolverError(f"no method certified a bound: {tried}")  # pragma: no cover - naive always certifies


def _self_check(net: Network, norm, c, res: LipschitzResult, n_pairs: int = 64) -> None:
    """Raise :class:`InternalCheckError` if an attained difference quotient exceeds the certified value."""
    if not np.isfinite(res.value) or res.value < 0:
        raise InternalCheckError(f"method {res.method!r} returned the non-finite or negative bound {res.value!r}")
    low = attained_quotients(net, norm, c, n_pairs=n_pairs, seed=12345)
    if low > res.value:
        raise InternalCheckError(
            f"method {res.method!r} certified {res.value!r}, but the network attains a difference quotient of "
            f"{low!r}; the bound is withheld (please report this network)"
        )
