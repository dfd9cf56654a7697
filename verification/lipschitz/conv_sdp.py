"""``lipsdp-conv``: LipSDP-Neuron for convolutional networks with one multiplier per channel, per frequency.

The network is split after the activation of its last leading convolution (asked through the layer protocol,
:attr:`~verification.layers.affine.AffineLayer.conv_spec`): ``L <= L_conv(x -> h) * L_head(h -> y)``.  The
convolution chain is bounded by the frequency-domain LMI of
:mod:`verification.lipschitz.sdp.conv_frequency` (zero padding through masked neurons on larger circular
grids, strides through polyphase channels), certified in float64; a network of convolutions only keeps its last
convolution inside the LMI (``C = B_out``).  The head is bounded by LipSDP-Neuron on its dense matrices
(:mod:`verification.lipschitz.sdp.chain`) when that LMI has at most :data:`HEAD_SDP_MAX_N` rows, else by the
product of its certified layer norms; ``details["head"]`` says which.  Only l2.
"""

from __future__ import annotations

import math
import time

import numpy as np

from verification.errors import PreconditionError, SolverError, UnsupportedLayerError
from verification.lipschitz.registration import register
from verification.lipschitz.result import LipschitzResult
from verification.lipschitz.sdp.chain import build_chain_sdp
from verification.lipschitz.sdp.conv_frequency import (axis_plans, build_frequency_lmi, certify_frequency_lmi,
                                                       solve_barrier, solve_cvxpy)
from verification.lipschitz.sdp.quadratic_constraints import layer_qc
from verification.lipschitz.sdp.solve import solve_chain_sdp
from verification.network import Network

__all__ = ["lipsdp_conv", "conv_chain", "HEAD_SDP_MAX_N", "MAX_FREQUENCY_WORK"]

HEAD_SDP_MAX_N = 2100  # the head's dense LipSDP-Neuron up to this many LMI rows (as lipsdp-neuron's auto cap)
#: ``auto`` runs lipsdp-conv when (kept frequencies) x (LMI rows per frequency)^3 is at most this
MAX_FREQUENCY_WORK = 2e10
_EPS = float(np.finfo(np.float64).eps)


def _slopes(act) -> tuple[float, float] | None:
    if not act.elementwise:
        return None
    b = act.slope_bounds()
    if b is None:
        return None
    return min(float(b[0]), 0.0), max(float(b[1]), 0.0)


def conv_chain(net: Network, c: np.ndarray | None = None):
    """``(specs, slopes, out_spec, m, reasons)``: the leading convolutions followed by slope-restricted
    activations (``m`` of them), the last convolution kept inside the LMI (a network of convolutions only,
    full output) or ``None``, and why the chain stops where it does."""
    layers, acts = net.affine_layers, net.activations
    specs, slopes, reasons = [], [], []
    for k, act in enumerate(acts):
        spec = layers[k].conv_spec
        if spec is None:
            reasons.append(f"layer {k} ({layers[k].describe()}) is not a convolution")
            break
        sl = _slopes(act)
        if sl is None:
            reasons.append(f"activation {k} ({act.describe()}) is not slope-restricted elementwise")
            break
        try:
            axis_plans(specs + [spec])
        except UnsupportedLayerError as exc:
            reasons.append(f"layer {k}: {exc}")
            break
        specs.append(spec)
        slopes.append(sl)
    m = len(specs)
    out = None
    if m == len(acts) and c is None and m:
        spec = layers[m].conv_spec
        if spec is not None:
            try:
                axis_plans(specs + [spec])
                out = spec
            except UnsupportedLayerError as exc:
                reasons.append(f"last layer: {exc}")
    return specs, slopes, out, m, reasons


def _sdp_rows(net: Network) -> int:
    layers = net.affine_layers
    n0 = min(layers[0].in_features, layers[0].out_features) if len(layers) > 1 else layers[0].in_features
    return n0 + sum(layer.out_features for layer in layers[:-1])


def _naive(net: Network, c: np.ndarray | None) -> float:
    layers = list(net.affine_layers)
    if c is not None:
        layers[-1] = layers[-1].select(c[None, :])
    factors = [layer.norm_bound(2) for layer in layers] + [a.lipschitz(2) for a in net.activations]
    return float(np.prod(factors)) * (1.0 + 4 * (len(factors) + 1) * _EPS)


def _head_bound(head: Network, c: np.ndarray | None, solver: str, deadline: float | None) -> tuple[float, dict]:
    """Certified l2 Lipschitz bound of the head and how it was found."""
    naive = _naive(head, c)
    if not head.activations:
        return naive, {"by": "layer norm", "value": naive}
    try:
        for act, layer in zip(head.activations, head.affine_layers):
            layer_qc(act, layer.out_features)
        fits = _sdp_rows(head) <= HEAD_SDP_MAX_N
    except Exception:  # noqa: BLE001 - no quadratic constraint known: the product of norms
        fits = False
    if not fits:
        return naive, {"by": "product of layer norms (the head's dense LMI does not fit)", "value": naive}
    sdp = build_chain_sdp(head, 2, c, "neuron")
    try:
        cert, used, info = solve_chain_sdp(sdp, "auto", deadline=deadline)
    except SolverError as exc:
        return naive, {"by": f"product of layer norms (head SDP failed: {' '.join(str(exc).split())[:200]})",
                       "value": naive}
    if not cert.certified:
        return naive, {"by": "product of layer norms (head SDP not certified)", "value": naive}
    val = sdp.bound(cert.rho)
    if val > naive:
        return naive, {"by": "product of layer norms (tighter than the head SDP)", "value": naive, "sdp": val}
    return val, {"by": f"lipsdp-neuron on the dense head ({used})", "value": val, "lmi_size": sdp.n}


def frequency_work(net: Network) -> float:
    """(kept frequencies) x (rows per frequency)^3 of the chain's LMI; ``inf`` if there is no chain."""
    specs, _, out, m, _ = conv_chain(net)
    if not m:
        return math.inf
    chain = specs + ([out] if out is not None else [])
    ph, pw = axis_plans(chain)
    n = chain[0].input_shape[0] * ph.p[0] * pw.p[0] + sum(s.output_shape[0] * ph.p[k + 1] * pw.p[k + 1]
                                                         for k, s in enumerate(specs))
    return ph.m * (pw.m // 2 + 1) * float(n) ** 3


def _applicable(net: Network, norm, has_output: bool) -> bool:
    if norm != 2:
        return False
    try:
        return frequency_work(net) <= MAX_FREQUENCY_WORK
    except Exception:  # noqa: BLE001
        return False


@register(
    "lipsdp-conv",
    norms=(2,),
    summary="LipSDP-Neuron on convolutions with channel-wise multipliers, per frequency (zero/circular padding), "
            "times a bound of the dense head; certified",
    auto_priority=45,  # after ECLipsE-Fast, which is tighter where the dense lowering fits (benchmarks)
    auto_applicable=_applicable,
)
def lipsdp_conv(net: Network, norm, c=None, solver: str = "auto", progress=False, deadline: float | None = None,
                tol: float = 1e-7, max_newton: int = 400) -> LipschitzResult:
    """LipSDP-Neuron with channel-wise multipliers on the leading convolutions (frequency domain), times the
    head's bound.  ``solver``: ``"auto"`` (our barrier method) or a cvxpy solver (``"CLARABEL"``, ``"SCS"``,
    ``"CVXOPT"``; small chains); ``tol`` (relative barrier gap) and ``max_newton`` stop the barrier method, whose
    last iterate is certified whatever the stop (``details["solver_status"]``)."""
    if norm != 2:
        raise PreconditionError("lipsdp-conv bounds the l2 Lipschitz constant only")
    t0 = time.perf_counter()
    specs, slopes, out, m, reasons = conv_chain(net, c)
    if not m:
        raise UnsupportedLayerError("lipsdp-conv needs leading convolutions followed by slope-restricted "
                                    f"activations: {'; '.join(reasons) or 'none found'}")
    lmi = build_frequency_lmi(specs, slopes, out)
    if solver == "auto":
        # under a deadline, keep a share of the time for the certificate and the head
        conv_deadline = None if deadline is None else deadline - max(2.0, 0.15 * (deadline - time.monotonic()))
        y, status, info = solve_barrier(lmi, tol=tol, deadline=conv_deadline, progress=progress,
                                        max_newton=max_newton)
        used = "barrier"
    else:
        y, status, info = solve_cvxpy(lmi, solver)
        used = solver.upper()
    t_cert = time.perf_counter()
    cert = certify_frequency_lmi(lmi, y)
    cert_s = time.perf_counter() - t_cert
    widened = [i for i, (act, sl) in enumerate(zip(net.activations, slopes)) if tuple(act.slope_bounds()) != sl]
    details = {
        "conv_layers": m, "grid": lmi.grid, "frequencies": lmi.n_freq, "lmi_size": lmi.n,
        "n_multipliers": lmi.n_vars, "solver_status": status, **info, "solver_rho": float(y[0]),
        "certificate": {"rho": cert.rho, "certified": cert.certified, "max_shift": cert.max_shift,
                        "worst_frequency": cert.worst_frequency, "repair_delta": cert.repair_delta,
                        "reason": cert.reason, "seconds": cert_s},
        "chain_stops": reasons, "last_conv_in_lmi": out is not None,
    }
    if widened:
        details["widened_slopes"] = {i: slopes[i] for i in widened}
    if not cert.certified:
        return LipschitzResult(float(math.sqrt(max(y[0], 0.0))), "lipsdp-conv", 2, False, solver=used,
                               details=details)
    l_conv = float(np.nextafter(math.sqrt(cert.rho), math.inf))
    details["conv_bound"] = l_conv
    n_aff = len(net.affine_layers)
    if out is not None:
        value, details["head"] = l_conv, {"by": "none (the last convolution is in the LMI)"}
    else:
        head = Network(tuple(net.layers[2 * m:]))
        l_head, details["head"] = _head_bound(head, c, "auto", deadline)
        value = float(np.nextafter(l_conv * l_head * (1 + 2 * _EPS), math.inf))
    details["seconds_total"] = time.perf_counter() - t0
    details["affine_layers"] = n_aff
    return LipschitzResult(value, "lipsdp-conv", 2, True, solver=used, details=details)
