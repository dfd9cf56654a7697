"""ECLipsE and ECLipsE-Fast (Xu & Sivaranjani, NeurIPS 2024, arXiv 2404.04375): sequential LipSDP.

For activations slope-restricted on ``[0, β]`` (ReLU, tanh, sigmoid) ECLipsE fixes the LipSDP-Neuron multipliers
greedily, layer by layer; the recursion and its formulas are in :mod:`verification.lipschitz.sdp.eclipse_recursion`.
Every ECLipsE point is a feasible point of LipSDP-Neuron, so LipSDP-Neuron ≤ ECLipsE.  We certify the answer
exactly like the other SDP methods: the multipliers are put into the LipSDP-Neuron matrix, ``ρ`` is recomputed by
the exact Schur complement and checked in float64.
"""

from __future__ import annotations

import numpy as np

from verification.errors import PreconditionError
from verification.lipschitz.proof import sdp_part
from verification.lipschitz.registration import register
from verification.lipschitz.result import LipschitzResult
from verification.lipschitz.sdp.chain import build_chain_sdp
from verification.lipschitz.sdp.cvxpy_problem import installed_solvers
from verification.lipschitz.sdp.eclipse_recursion import chain_multipliers, eclipse_chain
from verification.network import Network

__all__ = ["eclipse", "eclipse_fast"]


def _check(net: Network) -> float:
    betas = []
    for act in net.activations:
        sb = act.slope_bounds() if act.elementwise else None
        if sb is None or sb[0] != 0.0:
            raise PreconditionError(
                f"ECLipsE needs activations slope-restricted on [0, beta] (ReLU, tanh, sigmoid); got {act.describe()}"
            )
        betas.append(sb[1])
    if len(set(betas)) > 1:
        raise PreconditionError("ECLipsE needs the same slope bound for every activation layer")
    return betas[0] / 2 if betas else 0.5


def _run(net: Network, norm, c, fast: bool, solver: str | None = None) -> LipschitzResult:
    name = "eclipse-fast" if fast else "eclipse"
    if solver is None and not fast:  # CVXOPT (the optional [gpl] extra) if installed, else Clarabel
        solver = "CVXOPT" if "CVXOPT" in installed_solvers() else "CLARABEL"
    if norm != 2:
        raise PreconditionError(f"{name} bounds the l2 constant only")
    m = _check(net)
    sdp = build_chain_sdp(net, 2, c, "neuron")  # input-reduced weights, output row c applied
    raw, ls, fallbacks = eclipse_chain(sdp.matrices, m, fast, solver)
    cert = sdp.certify(chain_multipliers(sdp, raw, ls))
    value = float(np.sqrt(cert.rho)) if cert.certified else raw
    return LipschitzResult(
        value, name, 2, cert.certified, solver=None if fast else solver,
        details={"recursion_bound": raw, "layers_using_fast_fallback": fallbacks,
                 "certificate": {"rho": cert.rho, "min_eig": cert.min_eig, "bumps": cert.bumps, "reason": cert.reason},
                 "_proof": {"parts": [sdp_part(sdp, cert)]}},
    )


def _fast_ok(net: Network, norm, has_output: bool) -> bool:
    try:
        _check(net)
    except PreconditionError:
        return False
    return norm == 2


@register("eclipse-fast", norms=(2,), summary="ECLipsE-Fast: closed-form sequential LipSDP (certified)",
          auto_priority=50, auto_applicable=_fast_ok)
def eclipse_fast(net: Network, norm, c=None) -> LipschitzResult:
    return _run(net, norm, c, True)


@register("eclipse", norms=(2,), summary="ECLipsE: sequential LipSDP with one small SDP per layer (certified)",
          auto_priority=60, auto_applicable=lambda net, norm, h: _fast_ok(net, norm, h) and max(net.hidden_widths or [0]) <= 128)
def eclipse(net: Network, norm, c=None, solver: str | None = None) -> LipschitzResult:
    return _run(net, norm, c, False, solver)
