"""Exact Z3 encoding of the network IR (real arithmetic, piecewise-linear activations).

Weights, biases and box bounds are turned into Z3 rationals through :class:`fractions.Fraction`, i.e. the
*exact* binary value of each float64 (``z3.RealVal(0.1)`` would give 1/10, a different network).  Every
pre-activation gets a fresh real variable ``z_<layer>_<i>`` defined by an equality; activations contribute
their own terms through ``Activation.z3_terms`` (``If`` terms for ReLU / leaky ReLU / MaxMin, a single
linear piece when pre-activation bounds fix the neuron).  Sound pre-activation bounds are also asserted as
``l <= z <= u``, which prunes Z3's case splits.

Time: :func:`z3_decide` counts its budget from its call, so the encoding (seconds on nets with ~10⁵
weights) is inside it: the encoder checks the deadline after every row, and Z3's search runs in a worker
thread that the calling thread interrupts (``Solver.interrupt``) at the deadline or on Ctrl-C.  Z3's own
``timeout`` parameter is set as well but is not enough alone: it is not checked inside every
preprocessing step.
"""

from __future__ import annotations

import threading
import time
from fractions import Fraction

import numpy as np

from verification.errors import UnsupportedLayerError
from verification.layers.affine import AffineLayer
from verification.network import Network

__all__ = ["encode_network", "z3_decide"]

_CACHE: dict = {}
_POLL = 0.05  # seconds between the waiting thread's looks at the clock while Z3 runs
GRACE = 0.5  # seconds Z3 gets to stop after an interrupt; then its thread is left behind (some phases never
# look at the interrupt flag: 4.7 s on a 30-128x4 ReLU net)
_ABANDONED: list = []  # (thread, solver, terms) left running: kept alive so that no reference is dropped
# concurrently with the running search (Z3 contexts are not thread-safe)


def busy() -> bool:
    """Whether a Z3 search left behind after its deadline is still running (then exit with ``os._exit``:
    freeing Z3 objects at interpreter shutdown would race with it)."""
    return any(t.is_alive() for t, *_ in _ABANDONED)


class _Expired(Exception):
    """The deadline passed while the encoding was being built."""


def _check(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        raise _Expired


def _q(v: float):
    import z3

    return z3.RealVal(Fraction(float(v)))


def _rational_layers(net: Network, deadline: float | None = None):
    """Z3 rationals of every affine layer (cached per network object, once complete); raises
    :class:`_Expired` after ``deadline`` (``time.monotonic``)."""
    key = id(net)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is net:
        return hit[1]
    out = []
    for layer in net.layers:
        if isinstance(layer, AffineLayer):
            # the exact encoding needs every weight as a rational: the dense rows of the layer
            W = []
            for row in layer.as_matrix():
                W.append([_q(w) if w != 0.0 else None for w in row])
                _check(deadline)
            b = [_q(v) for v in layer.bias]
            out.append((W, b))
        else:
            out.append(None)
    if len(_CACHE) > 8:
        _CACHE.clear()
    _CACHE[key] = (net, out)
    return out


# Pre-activation bounds handed to Z3 are float64 computations (bound propagation without directed rounding):
# each is loosened by ``tol + SLACK * magnitude`` where the magnitude bounds the terms summed into that
# pre-activation (interval arithmetic on absolute values), before it fixes a ReLU phase or is asserted.
SLACK = 1e-9


def encode_network(net: Network, x: list, pre_bounds: list | None = None, tol: float = 1e-9,
                   deadline: float | None = None, in_mag=None):
    """Z3 terms of ``net(x)`` for Z3 real terms ``x``.

    ``pre_bounds``: optional list of ``(l, u)`` arrays, one per activation of ``net.canonical()``, sound
    bounds on its pre-activations up to float64 rounding.  Each is loosened by ``tol + SLACK * m`` before
    use, ``m`` the magnitude of the terms of that pre-activation: ``|W| m_in + |b|`` layer by layer from
    ``in_mag`` (bounds on ``|x|``; without it, the first layer's magnitude is taken from its bounds).
    Returns ``(outputs, constraints)``: output terms and the equalities/bounds to assert.  ``deadline``
    (``time.monotonic``; internal): the encoding stops with :class:`_Expired` once it has passed.
    """
    import z3

    net = net.canonical()
    for a in net.activations:
        if not a.is_piecewise_linear:
            raise UnsupportedLayerError(f"{a.describe()} is not piecewise linear: no exact Z3 encoding")
    rat = _rational_layers(net, deadline)
    cons = []
    h = list(x)
    act_i = 0
    mag = None if in_mag is None else np.abs(np.asarray(in_mag, dtype=np.float64)).reshape(-1)
    pre_mag = None
    for k, layer in enumerate(net.layers):
        if isinstance(layer, AffineLayer):
            pre_mag = None if mag is None else (np.asarray(layer.abs_linear(mag), dtype=np.float64).reshape(-1)
                                                + np.abs(np.asarray(layer.bias, dtype=np.float64)).reshape(-1))
            W, b = rat[k]
            z = []
            for i, row in enumerate(W):
                terms = [w * t for w, t in zip(row, h) if w is not None]
                z.append(z3.Sum(terms) + b[i] if terms else b[i])
                _check(deadline)
            if k == len(net.layers) - 1:
                return z, cons
            zv = [z3.Real(f"z_{k}_{i}") for i in range(len(z))]
            cons.extend(v == e for v, e in zip(zv, z))
            h = zv
        else:
            l = u = None
            if pre_bounds is not None:
                l = np.asarray(pre_bounds[act_i][0], dtype=np.float64).reshape(-1)
                u = np.asarray(pre_bounds[act_i][1], dtype=np.float64).reshape(-1)
                m = pre_mag if pre_mag is not None else np.maximum(np.abs(l), np.abs(u))
                slack = tol + SLACK * m
                l, u = l - slack, u + slack
                for v, lo, hi in zip(h, l, u):
                    cons.append(v >= _q(lo))
                    cons.append(v <= _q(hi))
                # magnitude of this activation's outputs, from the loosened bounds (or the terms')
                mag = float(layer.lipschitz("inf")) * np.maximum(np.maximum(np.abs(l), np.abs(u)), m)
                if layer.group_size > 1:
                    mag = np.repeat(mag.reshape(-1, layer.group_size).max(axis=1), layer.group_size)
            else:
                mag = None
            h = layer.z3_terms(h, l, u)
            act_i += 1
    raise AssertionError("canonical network must end with a dense layer")  # pragma: no cover


def _frac_or_float(exact, i, j=None, fallback=0.0):
    """Exact constant as written if the property kept it, else the float's exact value."""
    if exact is None:
        return Fraction(float(fallback))
    v = exact[i] if j is None else exact[i][j]
    return Fraction(v)


def z3_decide(net: Network, lower, upper, outputs, pre_bounds=None, timeout: float | None = None, region=None):
    """Decide exactly whether some ``x`` in ``[lower, upper]`` has ``A_k net(x) <= b_k`` for some k.

    ``outputs``: sequence of objects with ``A`` and ``b`` (unsafe polytopes, a disjunction); where they carry
    the constants as written (``A_exact``, ``b_exact``) and ``strict`` rows, those are encoded (``<`` for strict
    rows).  ``region``: optional :class:`~verification.spec.InputRegion` whose exact box (and strict bounds)
    is asserted as well.  Returns ``("sat", x)`` with ``x`` the model as float64, ``("unsat", None)`` or
    ``("unknown", reason)``.  ``timeout`` (seconds) counts from this call: the encoding and Z3's search
    both stop at it (reason ``"timeout"``).  A ``KeyboardInterrupt`` interrupts Z3 and is re-raised.
    """
    import z3

    if timeout is not None and timeout <= 0:
        return "unknown", "timeout"
    deadline = None if timeout is None else time.monotonic() + timeout
    lower = np.asarray(lower, dtype=np.float64).reshape(-1)
    upper = np.asarray(upper, dtype=np.float64).reshape(-1)
    x = [z3.Real(f"X_{i}") for i in range(lower.size)]
    try:
        y, cons = encode_network(net, x, pre_bounds, deadline=deadline,
                                 in_mag=np.maximum(np.abs(lower), np.abs(upper)))
    except _Expired:
        return "unknown", "timeout"
    s = z3.SolverFor("QF_LRA") if all(a.is_piecewise_linear for a in net.activations) else z3.Solver()
    for xi, lo, hi in zip(x, lower, upper):
        s.add(xi >= _q(lo), xi <= _q(hi))
    if region is not None and getattr(region, "lower_exact", None) is not None:
        ls = getattr(region, "lower_strict", None)
        us = getattr(region, "upper_strict", None)
        for i, xi in enumerate(x):
            lo_e, hi_e = z3.RealVal(Fraction(region.lower_exact[i])), z3.RealVal(Fraction(region.upper_exact[i]))
            s.add(xi > lo_e if ls is not None and ls[i] else xi >= lo_e)
            s.add(xi < hi_e if us is not None and us[i] else xi <= hi_e)
    s.add(*cons)
    disj = []
    for oc in outputs:
        rows = []
        a_ex, b_ex = getattr(oc, "A_exact", None), getattr(oc, "b_exact", None)
        strict = getattr(oc, "strict", None)
        for r, (arow, bv) in enumerate(zip(oc.A, oc.b)):
            terms = [z3.RealVal(_frac_or_float(a_ex, r, j, a)) * t for j, (a, t) in enumerate(zip(arow, y))
                     if (a != 0.0 if a_ex is None else a_ex[r][j] != 0)]
            lhs = z3.Sum(terms) if terms else z3.RealVal(0)
            rhs = z3.RealVal(_frac_or_float(b_ex, r, None, bv))
            rows.append(lhs < rhs if strict is not None and strict[r] else lhs <= rhs)
        disj.append(z3.And(rows) if rows else z3.BoolVal(True))
    s.add(z3.Or(disj) if disj else z3.BoolVal(False))
    res = _check_with_deadline(s, deadline, keep=(x, y, cons, disj))
    if res is None:
        return "unknown", "timeout"
    if res == z3.sat:
        m = s.model()
        vals = []
        for xi in x:
            v = m.eval(xi, model_completion=True)
            vals.append(float(Fraction(v.numerator_as_long(), v.denominator_as_long())) if z3.is_rational_value(v) else float(v.as_decimal(20).rstrip("?")))
        return "sat", np.array(vals)
    if res == z3.unsat:
        return "unsat", None
    return "unknown", s.reason_unknown()


def _check_with_deadline(s, deadline: float | None, keep=()):
    """``s.check()`` in a worker thread; this thread waits, and interrupts Z3 at ``deadline`` or on Ctrl-C
    (then re-raises the ``KeyboardInterrupt``).  ``None`` when the deadline stopped it.  A search that has not
    stopped :data:`GRACE` seconds after the interrupt is left running, with ``s`` and ``keep`` held."""
    import z3

    if deadline is not None:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        s.set("timeout", max(1, int(left * 1000)))  # Z3's own limit too (not honoured in every preprocessing step)
    box: dict = {}

    def work() -> None:
        try:
            box["res"] = s.check()
        except z3.Z3Exception as exc:  # pragma: no cover - Z3 reports failures as unknown
            box["err"] = exc

    worker = threading.Thread(target=work, name="z3-check", daemon=True)
    worker.start()
    stopped = None  # time of the interrupt
    try:
        while worker.is_alive():
            worker.join(_POLL)
            now = time.monotonic()
            if deadline is not None and stopped is None and now >= deadline:
                s.interrupt()
                stopped = now
            if stopped is not None and now - stopped > GRACE and worker.is_alive():
                _ABANDONED.append((worker, s, keep))
                return None
    except KeyboardInterrupt:
        s.interrupt()
        worker.join(GRACE)
        if worker.is_alive():
            _ABANDONED.append((worker, s, keep))
        raise
    if "err" in box:  # pragma: no cover
        raise box["err"]
    res = box["res"]
    if res == z3.unknown and (stopped is not None or (deadline is not None and time.monotonic() >= deadline)):
        return None
    return res
