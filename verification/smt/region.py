"""Region checks in the style of Huang, Kwiatkowska, Wang & Wu, "Safety Verification of Deep Neural
Networks" (CAV 2017, the DLV tool): is the predicted class constant on a region around an input?

``method="complete"`` (default): the l-inf ball is turned into a robustness property (unsafe iff some
other class scores ``>=`` the label) and decided by :func:`verification.smt.verify` - a proof or a real
counterexample.

``method="dlv"``: the paper's layer-by-layer search with **discretised manipulations** (re-implemented from
the algorithm description, not from DLV's code):

1. at layer ``k`` (0 = input), pick ``n_features`` coordinates whose value at ``x0`` deviates most from the
   layer's mean activation (DLV's feature choice);
2. the region ``eta_k`` is the interval image of the input ball at that layer (for ``k = 0`` the ball
   itself); each chosen coordinate gets ``2 * num_span + 1`` equally spaced values across its range
   (the "line" enumeration), the other coordinates stay at their values for ``x0``;
3. input-layer grid points are classified directly; for a hidden layer, every grid point (a target
   activation on the chosen neurons) is **back-solved with Z3** to an input in the ball that produces it
   exactly (real arithmetic, QF_LRA after fixing stable neurons) and that input is classified.

A class change is a real counterexample (re-evaluated in float64), reported as ``violated``.  Finding none
only means the *grid* is safe - a discretised guarantee under DLV's minimality assumptions, which are not
checked - so that outcome is reported as ``unknown`` with ``details["grid_safe"] = True``, never as
``holds``.  Z3 timeouts on a grid point are counted in ``details["unresolved_points"]`` (DLV itself treats
them as unsatisfiable; we do not).
"""

from __future__ import annotations

import itertools
import time

import numpy as np

from verification.bounds.batched import batched_layer_bounds
from verification.errors import InvalidParameterError, ShapeMismatchError
from verification.network import Dense, Network
from verification.smt.confirm import confirm_property
from verification.smt.encode import _q, encode_network
from verification.smt.result import VerifyResult
from verification.smt.verifier import verify
from verification.spec import robustness_property

__all__ = ["verify_region"]


def verify_region(
    net: Network,
    x0,
    eps: float,
    norm: str | float = "inf",
    label: int | None = None,
    *,
    timeout: float = 60.0,
    method: str = "complete",
    domain: tuple | None = None,
    layers: tuple[int, ...] = (0, 1),
    n_features: int = 3,
    num_span: int = 2,
    max_points: int = 2000,
    seed: int = 0,
    **options,
) -> VerifyResult:
    """Check that ``argmax net(x)`` equals ``label`` for every ``x`` with ``||x - x0||_inf <= eps``.

    Parameters
    ----------
    label: class to keep (default: the prediction at ``x0``).  Ties count as violations.
    domain: optional ``(lower, upper)`` input domain to intersect the ball with (e.g. pixel range).
    method: ``"complete"`` (proof or counterexample, :func:`verify`) or ``"dlv"`` (discretised
        layer-by-layer search; see the module docstring - never returns ``holds``).
    layers, n_features, num_span, max_points: DLV options (layers searched, with 0 = input; features per
        layer; grid steps per side; cap on grid points per layer).
    options: passed to :func:`verify` for ``method="complete"`` (e.g. ``n_samples``, ``pgd_steps``, ``batch``).
    """
    t0 = time.monotonic()
    if not isinstance(net, Network):
        raise InvalidParameterError(f"The 'net' parameter of verify_region must be a Network. Got {type(net).__name__}.")
    cnet = net.canonical()
    x0 = np.asarray(x0, dtype=np.float64).reshape(-1)
    if x0.size != cnet.in_dim:
        raise ShapeMismatchError(f"x0 has {x0.size} entries, the network has {cnet.in_dim} inputs")
    if not np.all(np.isfinite(x0)):
        raise InvalidParameterError("The 'x0' parameter of verify_region must be finite.")
    try:
        eps = float(eps)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"The 'eps' parameter of verify_region must be a float >= 0. Got {eps!r} instead.") from None
    if not (eps >= 0 and np.isfinite(eps)):
        raise InvalidParameterError(f"The 'eps' parameter of verify_region must be a float >= 0. Got {eps} instead.")
    if norm not in ("inf", np.inf, float("inf")):
        raise InvalidParameterError(f"The 'norm' parameter of verify_region must be 'inf' (l-inf balls). Got {norm!r} instead.")
    y0 = cnet(x0)
    if label is None:
        label = int(np.argmax(y0))
    if not (isinstance(label, (int, np.integer)) and 0 <= int(label) < cnet.out_dim):
        raise InvalidParameterError(f"The 'label' parameter of verify_region must be a class index in [0, {cnet.out_dim - 1}]. Got {label!r} instead.")
    label = int(label)
    lo, hi = x0 - eps, x0 + eps
    if domain is not None:
        lo = np.maximum(lo, np.asarray(domain[0], dtype=np.float64).reshape(-1))
        hi = np.minimum(hi, np.asarray(domain[1], dtype=np.float64).reshape(-1))
        if np.any(lo > hi):
            raise InvalidParameterError("The ball around x0 does not meet the given domain.")
    if method == "complete":
        prop = robustness_property(lo, hi, label, cnet.out_dim)
        res = verify(cnet, prop, timeout=timeout, seed=seed, **options)
        return VerifyResult(res.status, res.counterexample, res.output, time.monotonic() - t0, "complete/" + res.method,
                            res.reason, dict(res.details, label=label))
    if method == "dlv":
        return _dlv(cnet, x0, lo, hi, label, timeout, layers, n_features, num_span, max_points, t0)
    raise InvalidParameterError(f"The 'method' parameter of verify_region must be 'complete' or 'dlv'. Got {method!r} instead.")


def _violates(net: Network, x: np.ndarray, label: int) -> tuple[bool, np.ndarray]:
    """Float screening, then the exact confirmation every reported counterexample gets."""
    y = net(x)
    others = np.delete(y, label)
    if not others.max() >= y[label]:
        return False, y
    prop = robustness_property(x, x, label, net.out_dim)
    return confirm_property(net, prop, x), y


def _grid(values: list[np.ndarray], max_points: int):
    n = int(np.prod([len(v) for v in values]))
    if n <= max_points:
        yield from itertools.product(*values)
        return
    rng = np.random.default_rng(0)
    for _ in range(max_points):
        yield tuple(v[rng.integers(len(v))] for v in values)


def _dlv(net, x0, lo, hi, label, timeout, layers, n_features, num_span, max_points, t0):
    import z3

    deadline = t0 + timeout
    details = {"label": label, "grid_safe": False, "points": 0, "unresolved_points": 0, "layers": []}
    acts = net.activations
    n_act = len(acts)
    # interval image of the ball at each activation output (DLV's region eta_k) and x0's activations
    pre = batched_layer_bounds(net, lo[None, :], hi[None, :], "crown")[0]
    trace = net.forward_trace(x0)
    for k in layers:
        if time.monotonic() > deadline:
            return VerifyResult("unknown", None, None, time.monotonic() - t0, "dlv", "timeout", details)
        if k < 0 or k > n_act:
            raise InvalidParameterError(f"DLV layer {k} does not exist (0 = input, 1..{n_act} = activation outputs)")
        if k == 0:
            a0, rlo, rhi = x0, lo, hi
        else:
            a0 = trace[2 * k][0]  # output of activation k (canonical: D, A, D, A, ...)
            l, u = pre[k - 1]
            rlo, rhi = acts[k - 1].interval(l, u)
            rlo, rhi = rlo[0], rhi[0]
        dev = np.abs(a0 - a0.mean())
        dev = np.where(rhi - rlo > 0, dev, -np.inf)
        feats = [int(i) for i in np.argsort(-dev)[:n_features] if np.isfinite(dev[i])]
        details["layers"].append({"layer": k, "features": feats})
        values = [np.linspace(rlo[i], rhi[i], 2 * num_span + 1) for i in feats]
        if k == 0:
            grid = list(_grid(values, max_points))
            X = np.repeat(x0[None, :], len(grid), axis=0)
            if feats:
                X[:, feats] = np.array(grid)
            details["points"] += len(grid)
            Y = net(X)
            others = np.delete(Y, label, axis=1).max(axis=1)
            bad = np.flatnonzero(others >= Y[:, label])
            for i in bad[:8]:
                x = X[i]
                ok, y = _violates(net, x, label)
                if ok:
                    return VerifyResult("violated", x, y, time.monotonic() - t0, "dlv", "counterexample (input layer)", details)
            continue
        # hidden layer: back-solve each grid point with Z3 (exact), then classify the input found
        xs = [z3.Real(f"X_{i}") for i in range(net.in_dim)]
        base = z3.Solver()
        h, cons = _encode_prefix(net, xs, k, pre)
        for xi, a, b in zip(xs, lo, hi):
            base.add(xi >= _q(a), xi <= _q(b))
        base.add(*cons)
        for point in _grid(values, max_points):
            if time.monotonic() > deadline:
                return VerifyResult("unknown", None, None, time.monotonic() - t0, "dlv", "timeout", details)
            details["points"] += 1
            base.push()
            base.add(*[h[i] == _q(v) for i, v in zip(feats, point)])
            base.set("timeout", max(1, int(min(10.0, deadline - time.monotonic()) * 1000)))
            r = base.check()
            if r == z3.sat:
                m = base.model()
                x = np.array([_model_float(m.eval(xi, model_completion=True)) for xi in xs])
                x = np.clip(x, lo, hi)
                ok, y = _violates(net, x, label)
                if ok:
                    base.pop()
                    return VerifyResult("violated", x, y, time.monotonic() - t0, "dlv", f"counterexample (layer {k})", details)
            elif r == z3.unknown:
                details["unresolved_points"] += 1
            base.pop()
    details["grid_safe"] = details["unresolved_points"] == 0
    return VerifyResult("unknown", None, None, time.monotonic() - t0, "dlv",
                        "no counterexample on the discretised grid (DLV-style search; not a proof)", details)


def _encode_prefix(net: Network, xs, k: int, pre):
    """Z3 terms of the output of activation ``k`` (1-based) for inputs ``xs``."""
    prefix = Network(net.layers[: 2 * k] + (Dense.identity(net.layers[2 * k - 2].out_features),))
    out, cons = encode_network(prefix, xs, [(l[0], u[0]) for l, u in pre[:k]])
    return out, cons


def _model_float(v) -> float:
    import z3
    from fractions import Fraction

    if z3.is_rational_value(v):
        return float(Fraction(v.numerator_as_long(), v.denominator_as_long()))
    return float(v.as_decimal(20).rstrip("?"))
