"""How far a layer's float64 weights may be from the function in the file.

A loader or :meth:`~verification.network.Network.canonical` sometimes computes a layer's weights instead of
copying them: two affine layers multiplied into one (``W2 W1``), a normalisation ``(x - m) / s`` folded into the
next weight, a batch-norm scale ``gamma / sqrt(var + eps)``.  The float64 result differs from the exact one by
rounding, about ``1e-16`` of the magnitude of the terms, and far more than that where terms cancel.  Exact
methods (counterexample confirmation, Z3, the proof checker) would otherwise analyse the folded function, not
the file's.

Such a layer carries a :class:`Deviation`: for every input with ``|x| <= m`` (entrywise),

    ``|exact(x) - layer(x)| <= radius(layer, m)``

where ``exact`` is the file's map and ``layer(x)`` the layer's float weights applied in exact arithmetic.  The
record is ``rel`` (a relative rounding bound) and ``chain``: the layers (innermost first) whose absolute
products bound the magnitude of the terms that were rounded.  A chain layer may carry its own deviation (a
fold of a fold); :func:`radius` propagates it.  Layers without a record are exact copies of the file.

Rounding bound of one fold: every entry of ``fl(W2 W1)`` and of ``fl(W2 b1 + b2)`` is a sum of at most
``k + 1`` products (``k = W2.in_features``), so its error is at most ``gamma_{k+2}`` times the sum of the
absolute terms, in any summation order, with or without FMA (IEEE-754 double, no underflow; a ``2^-1000``
floor per entry covers underflow).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Deviation", "deviation_of", "fold", "gamma", "has_deviation", "lipschitz_allowance", "mark_rounded", "output_deviation",
           "radius", "without_deviation"]

_U = float(np.finfo(np.float64).eps) / 2
_TINY = 2.0 ** -1000
_SAFE = 1.0 + 1e-6  # covers the float64 rounding of the radius computation itself (relative ~ n u)


def gamma(n: int) -> float:
    """``gamma_n = n u / (1 - n u)``: the relative error bound of an ``n``-term float64 sum of products."""
    return n * _U / (1.0 - n * _U)


@dataclass(frozen=True, eq=False)
class Deviation:
    """``|exact(x) - layer(x)| <= rel * M(m) + (deviations of the chain, propagated)`` for ``|x| <= m``, with
    ``M`` the magnitude map ``|W_k| (... (|W_1| m + |b_1|) ...) + |b_k|`` of ``chain`` (innermost first)."""

    rel: float
    chain: tuple


def deviation_of(layer: Any) -> Deviation | None:
    """The deviation record of an affine layer, or ``None`` for an exact copy of the file."""
    return getattr(layer, "_deviation", None)


def _attach(layer: Any, dev: Deviation | None) -> Any:
    object.__setattr__(layer, "_deviation", dev)
    return layer


def without_deviation(layer: Any) -> Any:
    """A shallow copy of ``layer`` without a deviation record (the same float weights)."""
    import copy

    twin = copy.copy(layer)
    if "_deviation" in getattr(twin, "__dict__", {}):
        object.__delattr__(twin, "_deviation")
    return twin


def mark_rounded(layer: Any, rel: float, magnitude: Any = None) -> Any:
    """Record that ``layer``'s float weights are the exact ones up to ``rel`` times the magnitude map of
    ``magnitude`` (an affine layer with non-negative products; default: ``layer``'s own weights, keeping a
    deviation the layer already carries).  Returns ``layer``."""
    if not rel > 0:
        return layer
    if magnitude is None:
        import copy

        magnitude = copy.copy(layer)  # keeps an earlier record: that deviation adds to this one
    elif deviation_of(layer) is not None:
        raise ValueError("mark_rounded: a layer with a deviation record needs its own weights as the magnitude")
    return _attach(layer, Deviation(float(rel), (magnitude,)))


def fold(outer: Any, inner: Any) -> Any:
    """``outer ∘ inner`` (:meth:`~verification.layers.AffineLayer.compose`) with its deviation recorded: the
    rounding of the product, plus whatever deviation ``outer`` and ``inner`` carried."""
    layer = outer.compose(inner)
    if layer is outer or layer is inner:
        layer = without_deviation(layer)
    if _is_identity(outer) and deviation_of(outer) is None:
        return _attach(layer, deviation_of(inner))
    if _is_identity(inner) and deviation_of(inner) is None:
        return _attach(layer, deviation_of(outer))
    return _attach(layer, Deviation(gamma(int(outer.in_features) + 2), (inner, outer)))


def _is_identity(layer: Any) -> bool:
    w = getattr(layer, "weight", None)
    if w is None or getattr(w, "ndim", 0) != 2 or w.shape[0] != w.shape[1] or np.any(layer.bias):
        return False
    return bool(np.array_equal(w, np.eye(w.shape[0])))


def radius(layer: Any, m: np.ndarray) -> np.ndarray:
    """A bound on ``|exact(x) - layer(x)|`` over inputs with ``|x| <= m`` (rows of ``m``: ``(..., in)`` ->
    ``(..., out)``); zeros for a layer without a deviation record."""
    m = np.asarray(m, dtype=np.float64)
    dev = deviation_of(layer)
    if dev is None:
        return np.zeros(m.shape[:-1] + (int(layer.out_features),))
    mag, d = m, np.zeros_like(m)
    for f in dev.chain:
        own = radius(f, mag + d)
        d = np.asarray(f.abs_linear(d), dtype=np.float64) + own
        mag = np.asarray(f.abs_linear(mag), dtype=np.float64) + np.abs(f.bias)
    return (d + dev.rel * mag) * _SAFE + _TINY


def has_deviation(net: Any) -> bool:
    """True if some affine layer of ``net`` carries a deviation record."""
    return any(deviation_of(layer) is not None for layer in net.layers)


def output_deviation(net: Any, lower: np.ndarray, upper: np.ndarray | None = None) -> np.ndarray | None:
    """A bound on ``|exact(x) - net(x)|`` per output, over the input box ``[lower, upper]`` (a point if
    ``upper`` is None), where ``net(x)`` is the float weights' function in exact arithmetic and ``exact`` the
    file's; ``None`` if no layer carries a deviation (the two functions are equal).

    Interval propagation of the magnitudes, the deviation added at each recorded layer and carried through
    later layers by ``|W|`` and through activations by their l-inf Lipschitz constant (grouped maps mix a
    group's entries: the largest deviation of the group)."""
    if not has_deviation(net):
        return None
    lo = np.atleast_2d(np.asarray(lower, dtype=np.float64))
    hi = lo if upper is None else np.atleast_2d(np.asarray(upper, dtype=np.float64))
    d = np.zeros_like(lo)
    for layer in net.layers:
        if hasattr(layer, "abs_linear"):
            mag = np.maximum(np.abs(lo), np.abs(hi)) * _SAFE
            if deviation_of(layer) is not None or np.any(d):
                d = np.asarray(layer.abs_linear(d), dtype=np.float64) * _SAFE + radius(layer, mag + d)
            else:
                d = np.zeros((d.shape[0], int(layer.out_features)))
            lo, hi = layer.interval(lo, hi)
        else:
            if np.any(d):
                lip = float(layer.lipschitz("inf"))
                g = int(layer.group_size)
                if g > 1:
                    n = d.shape[-1]
                    d = np.repeat(d.reshape(d.shape[0], n // g, g).max(axis=2), g, axis=1)
                d = d * lip * _SAFE
            lo, hi = layer.interval(lo, hi)
        pad = 1e-9 * np.maximum(np.abs(lo), np.abs(hi)) + _TINY  # magnitudes only: generous for rounding
        lo, hi = lo - pad, hi + pad
    return d.max(axis=0)


def _linear_part(layer: Any, norm: int | str) -> float:
    """A bound on ``||Delta||`` (l2 or l-inf operator norm) of the linear part of ``exact - layer``: from
    ``|Delta x + delta b| <= E |x| + e`` follows ``|Delta| <= E`` entrywise, and ``E 1 = radius(1) - radius(0)``."""
    n_in, n_out = int(layer.in_features), int(layer.out_features)
    rows = radius(layer, np.ones(n_in)) - radius(layer, np.zeros(n_in))
    inf = float(np.max(rows, initial=0.0)) * 1.01
    return inf if norm != 2 else inf * float(np.sqrt(n_out)) * 1.01  # ||A||_2 <= sqrt(rows) ||A||_inf


def _cheap_norm(layer: Any, norm: int | str) -> float:
    """An upper bound on ``||W||`` from two products with ``|W|`` (no SVD): the l-inf norm is the largest row
    sum, and ``||W||_2 <= sqrt(||W||_1 ||W||_inf)``; generous for the float rounding of the sums."""
    n_in, n_out = int(layer.in_features), int(layer.out_features)
    up = (1.0 + 4 * gamma(max(n_in, n_out) + 2)) * _SAFE
    row = float(np.max(layer.abs_linear(np.ones(n_in)), initial=0.0)) * up
    if norm != 2:
        return row
    col = float(np.max(layer.abs_transpose(np.ones(n_out)), initial=0.0)) * up
    return float(np.sqrt(row * col)) * up


def lipschitz_allowance(net: Any, norm: int | str, cs: np.ndarray | None = None) -> np.ndarray:
    """What to add to a Lipschitz bound of the float weights' network (norm 2 or ``"inf"``) so that it bounds
    the file's network: ``sum_k N_after(k) ||Delta_k|| N_before(k)`` over the layers with a deviation record,
    ``N`` the products of layer norm bounds (:func:`_cheap_norm`) and activation Lipschitz constants.  A bound over every slope
    pattern of the float weights then covers the perturbed weights, since ``J(W + Delta)`` differs from
    ``J(W)`` by at most that much for every choice of activation slopes.  Per row of ``cs`` (a scalar output
    ``c·f``: times ``||c||_2`` or ``||c||_1``), or one value (``cs`` None); zeros without records."""
    rows = 1 if cs is None else np.atleast_2d(cs).shape[0]
    if not has_deviation(net):
        return np.zeros(rows)
    factors, devs = [], []
    for layer in net.layers:
        if hasattr(layer, "abs_linear"):
            factors.append(_cheap_norm(layer, norm))
            devs.append(_linear_part(layer, norm) if deviation_of(layer) is not None else 0.0)
        else:
            factors.append(float(layer.lipschitz(norm)))
            devs.append(0.0)
    total = 0.0
    for k, dk in enumerate(devs):
        if dk:
            total += float(np.prod(factors[:k])) * dk * float(np.prod(factors[k + 1:]))
    scale = np.ones(rows) if cs is None else np.linalg.norm(np.atleast_2d(cs), 2 if norm == 2 else 1, axis=1)
    return total * scale * _SAFE
