"""Interval bound propagation (IBP) and the public bound-propagation entry points."""

from __future__ import annotations

import numpy as np

from verification.bounds.crown import check_supported, crown_layers
from verification.bounds.types import Bounds, LayerBounds
from verification.errors import InvalidParameterError
from verification.evaluate import enclose_trace
from verification.layers import AffineLayer
from verification.network import Network

__all__ = ["Bounds", "output_bounds", "layer_bounds", "check_box", "ibp_layers"]

METHODS = ("ibp", "crown", "alpha-crown")


def check_box(net: Network, lower, upper, who: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate an input box for ``net`` (finite, right length, lower <= upper)."""
    lo = np.asarray(lower, dtype=np.float64).reshape(-1)
    hi = np.asarray(upper, dtype=np.float64).reshape(-1)
    if lo.shape[0] != net.in_dim or hi.shape[0] != net.in_dim:
        raise InvalidParameterError(
            f"The input box of {who} must have {net.in_dim} entries per bound. Got {lo.shape[0]} and {hi.shape[0]}."
        )
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise InvalidParameterError(f"The input box of {who} must be finite.")
    if np.any(lo > hi):
        raise InvalidParameterError(f"The input box of {who} has lower > upper in some coordinate.")
    return lo, hi


def ibp_layers(net: Network, lo: np.ndarray, hi: np.ndarray) -> LayerBounds:
    """Interval bound propagation (float64, centre/radius form, no rounding allowance) through ``net`` on the
    boxes ``[lo, hi]`` (``(B, n0)``): the bounds of the input of every activation and of the output."""
    pre = []
    l, u = lo, hi
    for layer in net.layers:
        if isinstance(layer, AffineLayer):
            mid, rad = (u + l) / 2.0, (u - l) / 2.0
            c, r = layer(mid), layer.abs_linear(rad)
            l, u = c - r, c + r
        else:
            pre.append(Bounds(l, u))
            l, u = (np.asarray(v, dtype=np.float64) for v in layer.interval(l, u))
    return LayerBounds(tuple(pre), None, Bounds(l, u))


def layer_bounds(net: Network, lower, upper, method: str = "ibp") -> list[Bounds]:
    """Bounds on the input of every activation of ``net.canonical()`` for inputs in ``[lower, upper]``
    (``method``: ``"ibp"``, ``"crown"`` or ``"alpha-crown"``, as in :func:`output_bounds`)."""
    if method not in METHODS:
        raise InvalidParameterError(f"The 'method' parameter of layer_bounds must be one of {METHODS}. Got {method!r}.")
    cnet = net.canonical()
    lo, hi = check_box(cnet, lower, upper, "layer_bounds")
    if method == "ibp":
        lb = ibp_layers(cnet, lo[None, :], hi[None, :])
    else:
        check_supported(cnet)
        lb = crown_layers(cnet, lo[None, :], hi[None, :], alpha=method == "alpha-crown", final=False)
    return [Bounds(l[0].copy(), u[0].copy()) for l, u in lb.pre]


# relative allowance for the float64 rounding inside CROWN (bounds are sums of many rounded terms)
_CROWN_GUARD = 1e-10


def output_bounds(net: Network, lower, upper, method: str = "ibp") -> Bounds:
    """Sound bounds on ``net(x)`` for every ``x`` with ``lower <= x <= upper`` (the real-valued network of
    the float weights, i.e. including float64 rounding).

    ``method``: ``"ibp"`` (interval bound propagation), ``"crown"`` (backward linear relaxation, Zhang et
    al. 2018) or ``"alpha-crown"`` (CROWN with optimised lower slopes, Xu et al. 2021).  IBP is computed with
    proven rounding allowances (:func:`verification.evaluate.enclose_trace`); CROWN results are widened by
    ``1e-10`` of the magnitudes involved and intersected with the IBP bounds."""
    if method not in METHODS:
        raise InvalidParameterError(f"The 'method' parameter of output_bounds must be one of {METHODS}. Got {method!r}.")

    cnet = net.canonical()
    lo, hi = check_box(cnet, lower, upper, "output_bounds")
    il, iu = enclose_trace(cnet, lo[None, :], hi[None, :])[-1]
    ibp = Bounds(il[0], iu[0])
    if method == "ibp":
        return ibp
    check_supported(cnet)
    l, u = crown_layers(cnet, lo[None, :], hi[None, :], alpha=method == "alpha-crown").out
    mag = np.maximum(np.abs(ibp.lower), np.abs(ibp.upper))
    l = l[0] - _CROWN_GUARD * (1.0 + np.abs(l[0]) + mag)
    u = u[0] + _CROWN_GUARD * (1.0 + np.abs(u[0]) + mag)
    # never looser than IBP (CROWN usually is tighter, but not coordinate-wise in every case)
    return Bounds(np.maximum(l, ibp.lower), np.minimum(u, ibp.upper))
