"""Confirmation of counterexamples: the property as written, at the float input, in exact arithmetic.

A candidate ``x`` found by the attack, the splitting or Z3 is reported as a counterexample only if

* ``x`` lies in the region's box as written (exact rational bounds, strict bounds strictly), and
* the real network output ``f(x)`` (exact arithmetic on the float weights) satisfies one of the region's
  output constraints as written (exact rational coefficients, strict rows strictly), with a margin for the
  deviation of folded layers from the file (:mod:`verification.layers.deviation`): every output within that
  deviation must be unsafe.

The output is first enclosed rigorously in float64 (:func:`verification.evaluate.enclose`); each row
``A_r y - b_r`` gets a rigorous interval (rounding and the float rounding of the written constants
included).  When an interval straddles the threshold and the network is piecewise linear, ``f(x)`` is
computed exactly with Fractions and the row checked exactly.  A smooth network (tanh, sigmoid) whose
margin is inside the rounding error is not confirmed: the search goes on.
"""

from __future__ import annotations

import numpy as np

from verification.evaluate import enclose, exact_forward, has_exact_forward
from verification.layers.deviation import output_deviation
from verification.network import Network
from verification.proofcheck import ChainError, check_counterexample
from verification.spec import InputRegion, VnnlibProperty

__all__ = ["confirm", "confirm_property", "point_in_region"]

_U = np.finfo(np.float64).eps / 2


def point_in_region(region: InputRegion, x: np.ndarray) -> np.ndarray | None:
    """``x`` itself if it lies in the region's box as written, else its clip into the inward-rounded box if
    that lies in it, else ``None``."""
    if region.contains_input_exact(x):
        return x
    lo, hi = region.inner_bounds()
    if np.any(lo > hi):
        return None
    y = np.clip(x, lo, hi)
    return y if region.contains_input_exact(y) else None


def _row_intervals(A: np.ndarray, b: np.ndarray, ylo: np.ndarray, yhi: np.ndarray):
    """Rigorous ``[lo, hi]`` of ``A_exact y - b_exact`` for ``y`` in ``[ylo, yhi]``, where the exact constants
    round to the floats ``A``, ``b`` (relative error <= u)."""
    mid = (ylo + yhi) / 2
    rad = np.maximum(yhi - mid, mid - ylo) * (1 + 4 * _U)
    m = A.shape[1] + 2
    g = m * _U / (1 - m * _U)
    aa = np.abs(A)
    c = A @ mid - b
    mag = (aa @ (np.abs(mid) + rad) + np.abs(b)) * (1 + 2 * g)
    r = (aa @ rad) * (1 + 2 * g) + (g + 2 * _U) * mag + 2.0 ** -1000
    r = r * (1 + 4 * _U)
    return np.nextafter(c - r, -np.inf), np.nextafter(c + r, np.inf)


def _strict(oc) -> np.ndarray:
    s = getattr(oc, "strict", None)
    return np.zeros(oc.A.shape[0], dtype=bool) if s is None else np.asarray(s, dtype=bool)


def confirm(net: Network, region: InputRegion, x: np.ndarray, exact_cache: dict | None = None) -> bool:
    """True iff ``x`` (already in the region's exact box) is a counterexample of ``region`` as written."""
    ylo, yhi = enclose(net, x)  # includes the deviation of folded layers
    exact_y = dev = None
    for oc in region.outputs:
        if oc.A.shape[0] == 0:
            return True
        lo, hi = _row_intervals(oc.A, oc.b, ylo, yhi)
        strict = _strict(oc)
        sure_in = np.where(strict, hi < 0, hi <= 0)
        sure_out = np.where(strict, lo >= 0, lo > 0)
        if np.all(sure_in):
            return True
        if np.any(sure_out):
            continue
        if not has_exact_forward(net):
            continue  # inside the rounding error of a smooth network: not confirmed
        if exact_y is None:
            exact_y = exact_forward(net, x)
            dev = output_deviation(net, x)  # the file's function within dev of the float weights' (folds)
        if oc.contains_exact(exact_y, dev):
            return True
    return False


INDEPENDENT_MAX_ENTRIES = 1_000_000  # dense weight entries up to which the independent re-check runs (~1 s)


def confirm_property(net: Network, prop: VnnlibProperty, x: np.ndarray) -> bool:
    """True iff the float point ``x`` violates the property as written (some region, exactly).  On ReLU /
    leaky-ReLU networks of at most ``INDEPENDENT_MAX_ENTRIES`` weights the independent checker
    (:func:`verification.proofcheck.check_counterexample`, exact integer arithmetic) must agree as well."""
    if not any(region.contains_input_exact(x) and confirm(net, region, x) for region in prop.regions):
        return False
    if sum(layer.in_features * layer.out_features for layer in net.affine_layers) > INDEPENDENT_MAX_ENTRIES:
        return True
    try:
        return check_counterexample(net, prop, x).accepted
    except ChainError:  # a smooth activation: the exact confirmation above is the only one
        return True
