"""Independent re-check of a counterexample (docs/proofs.md): the float input ``x`` lies in some region's box as
written and the network's output at ``x``, exactly (dyadic rationals), meets one of its unsafe constraints as written
with the margin of the deviation of computed weights.  Affine layers and two-piece activations (ReLU, leaky ReLU)."""

from __future__ import annotations

import time
from fractions import Fraction

import numpy as np

from verification.network import Network
from verification.proofcheck.bounds import ChainError
from verification.proofcheck.checker import CheckReport
from verification.spec import VnnlibProperty

__all__ = ["exact_outputs", "check_counterexample"]
MAX_WEIGHTS = 20_000_000


def _ints(a) -> tuple[np.ndarray, int]:
    """``(m, e)`` with ``a = m / 2^e`` exactly (``m`` Python integers)."""
    ratios = [float(v).as_integer_ratio() for v in np.asarray(a, dtype=np.float64).reshape(-1)]
    e = max((d.bit_length() - 1 for _, d in ratios), default=0)
    m = np.array([n << (e - d.bit_length() + 1) for n, d in ratios] + [0], dtype=object)[:-1]
    return m.reshape(np.shape(a)), e


def exact_outputs(net: Network, x) -> list[Fraction]:
    """``f(x)`` exactly, for the float64 weights of ``net`` and the float input ``x``."""
    if sum(layer.in_features * layer.out_features for layer in net.affine_layers) > MAX_WEIGHTS:
        raise ChainError(f"more than {MAX_WEIGHTS} weights: too large for the exact evaluation")
    v, e = _ints(x)
    for layer in net.layers:
        if hasattr(layer, "as_matrix"):
            (W, ew), (b, eb) = _ints(layer.as_matrix()), _ints(layer.bias)
            v, e = W.dot(v) * (1 << (max(ew + e, eb) - ew - e)) + b * (1 << (max(ew + e, eb) - eb)), max(ew + e, eb)
            continue
        s = layer.two_piece_slope if getattr(layer, "elementwise", False) else None
        if s is None:
            raise ChainError(f"exact evaluation handles ReLU / leaky-ReLU only, not {layer.describe()}")
        if s != 1.0:
            (si,), es = _ints([s])
            v, e = np.array([u << es if u > 0 else u * si for u in v] + [0], dtype=object)[:-1], e + es
    return [Fraction(int(u), 1 << e) for u in v]


def check_counterexample(net: Network, prop: VnnlibProperty, x) -> CheckReport:
    """Accepted iff ``x`` violates ``prop`` as written, checked in exact arithmetic (the message names the
    region and the unsafe constraint met, or why not)."""
    t0 = time.monotonic()
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if x.size != net.in_dim or not np.isfinite(x).all():
        return CheckReport(False, f"rejected: the counterexample needs {net.in_dim} finite inputs, has {x.size}")
    y, xq, inside = exact_outputs(net, x), [Fraction(float(v)) for v in x], []
    d = net.deviation(x)  # computed weights: every output within d of y must be unsafe
    d = np.zeros(len(y)) if d is None else d
    if not np.all(np.isfinite(d)):
        return CheckReport(False, "rejected: the rounding bound of the computed weights overflows float64")
    dq = [Fraction(float(v)) for v in d]
    for r, reg in enumerate(prop.regions):
        if not all((q > lo if ls else q >= lo) and (q < hi if hs else q <= hi) for q, lo, hi, ls, hs in
                   zip(xq, reg.lower_exact, reg.upper_exact, reg.lower_strict, reg.upper_strict)):
            continue
        inside.append(r)
        for k, oc in enumerate(reg.outputs):
            rows = (sum((a * yj + abs(a) * dj for a, yj, dj in zip(row, y, dq)), Fraction(0)) - bq
                    for row, bq in zip(oc.A_exact, oc.b_exact))
            if all(v < 0 if st else v <= 0 for v, st in zip(rows, oc.strict)):
                return CheckReport(True, f"accepted: the counterexample lies in region {r} and meets unsafe "
                                         f"constraint {k} exactly", seconds=time.monotonic() - t0)
    why = f"in region(s) {inside} the exact output meets no unsafe constraint" if inside else \
        "the input lies in no region's box as written"
    return CheckReport(False, f"rejected: {why}", seconds=time.monotonic() - t0)
