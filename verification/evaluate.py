"""Rigorous evaluation of a network at given float inputs: enclosures and exact rational values.

The function a :class:`~verification.network.Network` denotes is the real-valued map defined by its float64
weights (exact arithmetic on those values); where a layer records a deviation from the file's exact weights
(:mod:`verification.layers.deviation`), :func:`enclose` contains the file's function as well.  ``net(x)`` in float64 approximates it; these two functions
bound the difference:

* :func:`enclose` — ``lo <= f(x) <= hi`` rigorously, in float64: every affine layer carries the standard
  bound ``|fl(sum) - sum| <= gamma_n sum |terms|`` (``gamma_n = n u / (1 - n u)``, any summation order, any
  BLAS kernel, with or without FMA), and every activation output is widened by a few ulps of its magnitude
  (libm's ``tanh`` / ``exp`` are trusted to 64 ulps).  IEEE-754 double arithmetic is assumed.
* :func:`exact_forward` — the exact value as :class:`fractions.Fraction` for piecewise-linear networks
  (slow, used only when an enclosure cannot decide a question).

Used to confirm counterexamples: a reported violation is checked on these values, never on a float64
evaluation alone.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Sequence

import numpy as np

from verification.activations import Activation
from verification.layers.deviation import deviation_of, radius
from verification.network import AffineLayer, Network

__all__ = ["enclose", "enclose_trace", "differentiable_at", "exact_forward", "has_exact_forward"]

_U = np.finfo(np.float64).eps / 2  # unit round-off
_TINY = 2.0 ** -1000  # absolute allowance for underflow (far above n * 2^-1074 for any realistic width)


def _gamma(n: int) -> float:
    return n * _U / (1.0 - n * _U)


def _affine(layer: AffineLayer, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rigorous enclosure of ``W h + b`` for ``h`` in ``[lo, hi]`` (batched rows); ``in_features`` bounds the
    number of terms of every row."""
    mid = (lo + hi) / 2.0
    # [lo, hi] within [mid - rad, mid + rad] exactly: the subtractions round by at most half an ulp
    rad = np.maximum(hi - mid, mid - lo) * (1.0 + 4 * _U) + _TINY
    n = layer.in_features + 2
    c = layer(mid)  # |error| <= gamma_n (|W||mid| + |b|)
    r = layer.abs_linear(rad) * (1.0 + 2 * _gamma(n))  # >= the exact |W| rad
    mag = (layer.abs_linear(np.abs(mid)) + np.abs(layer.bias)) * (1.0 + 2 * _gamma(n))
    r = (r + _gamma(n) * mag * (1.0 + 8 * _U) + _TINY) * (1.0 + 4 * _U)
    if deviation_of(layer) is not None:  # a folded layer: the file's map lies within radius of its weights'
        r = r + radius(layer, np.maximum(np.abs(lo), np.abs(hi))) * (1.0 + 4 * _U)
    return np.nextafter(c - r, -np.inf), np.nextafter(c + r, np.inf)


def _widen(act, l, u, lo, hi) -> tuple[np.ndarray, np.ndarray]:
    """Allow for rounding inside ``act.interval``: a few ulps of the magnitudes involved."""
    g = act.group_size
    k = (8.0 * (g + 2)) if act.is_piecewise_linear else 64.0 * (g + 2)
    mag = np.maximum.reduce([np.abs(l), np.abs(u), np.abs(lo), np.abs(hi)])
    if g > 1:  # grouped maps mix a group's entries
        n = mag.shape[-1]
        mag = np.repeat(mag.reshape(mag.shape[0], n // g, g).max(axis=2), g, axis=1)
    pad = k * _U * mag + _TINY
    return lo - pad, hi + pad


def enclose_trace(net: Network, x: np.ndarray, upper: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Rigorous bounds after every layer for a batch of points ``x`` (``(N, n)``), or of boxes
    ``[x, upper]``: ``len(net.layers) + 1`` pairs, the first being the input box.  On boxes this is interval
    bound propagation with proven rounding allowances."""
    h = np.atleast_2d(np.asarray(x, dtype=np.float64))
    lo, hi = h, (h if upper is None else np.atleast_2d(np.asarray(upper, dtype=np.float64)))
    trace = [(lo, hi)]
    for layer in net.layers:
        if isinstance(layer, AffineLayer):
            lo, hi = _affine(layer, lo, hi)
        else:
            al, au = layer.interval(lo, hi)
            lo, hi = _widen(layer, lo, hi, np.asarray(al, dtype=np.float64), np.asarray(au, dtype=np.float64))
        trace.append((lo, hi))
    return trace


def differentiable_at(net: Network, x: np.ndarray) -> np.ndarray:
    """Mask of the rows of ``x`` where ``net`` is provably differentiable (for piecewise-linear nets: linear on
    a neighbourhood), checked on rigorous enclosures of the pre-activations: no two-piece neuron can be at its
    kink, no two entries of a GroupSort group can tie, no Householder group can have ``v·z = 0``; smooth
    activations are differentiable everywhere.  There the float Jacobian is a Jacobian of the real network
    (up to rounding), not an arbitrary choice at a kink."""
    trace = enclose_trace(net, x)
    ok = np.ones(trace[0][0].shape[0], dtype=bool)
    for k, layer in enumerate(net.layers):
        if isinstance(layer, Activation):
            ok &= layer.kink_free(*trace[k])
    return ok


def enclose(net: Network, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rigorous bounds ``(lo, hi)`` on the exact outputs ``f(x)`` at float inputs ``x`` (``(N, n)`` or ``(n,)``).

    ``x`` is taken as exact (a float is a rational number); the result contains the real value of the network
    at ``x``, whatever BLAS kernel or summation order computes it."""
    h = np.asarray(x, dtype=np.float64)
    single = h.ndim == 1
    lo, hi = enclose_trace(net, h.reshape(1, -1) if single else h.reshape(h.shape[0], -1))[-1]
    return (lo[0], hi[0]) if single else (lo, hi)


def has_exact_forward(net: Network) -> bool:
    """True if :func:`exact_forward` can evaluate ``net`` (every activation piecewise linear)."""
    return all(a.is_piecewise_linear for a in net.activations)


def exact_forward(net: Network, x: Sequence[float]) -> list[Fraction]:
    """Exact outputs at one float input ``x`` as Fractions (piecewise-linear activations only)."""
    h = [Fraction(float(v)) for v in np.asarray(x, dtype=np.float64).reshape(-1)]
    for layer in net.layers:
        if isinstance(layer, AffineLayer):
            out = []
            for row, b in zip(layer.as_matrix(), layer.bias):
                acc = Fraction(float(b))
                for w, v in zip(row, h):
                    if w != 0.0 and v:
                        acc += Fraction(float(w)) * v
                out.append(acc)
            h = out
        else:
            h = layer.exact_call(h)
    return h
