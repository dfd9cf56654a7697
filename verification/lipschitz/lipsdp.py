"""LipSDP (Fazlyab et al., NeurIPS 2019) with the quadratic constraints of Pauli et al. (ICLR 2024).

Methods registered here: ``lipsdp-neuron`` and ``lipsdp-layer`` (l2 and l-inf).  The chain LMI is built by
:func:`verification.lipschitz.sdp.chain.build_chain_sdp` (its docstring gives the l2 and l-inf forms): each
activation layer gets its quadratic constraint from :mod:`verification.lipschitz.sdp.quadratic_constraints`
(slope-restricted layers the LipSDP multipliers, GroupSort/MaxMin/Householder layers Pauli's sum-preserving
ones).  Without ``output`` the l-inf -> l-inf bound is the maximum over the output rows (one SDP per row).

Solvers (:mod:`verification.lipschitz.sdp.solve`): ``solver="auto"`` (default) uses MOSEK if installed and
licensed; else ``"ipm"``, our primal-dual interior-point method on the block-tridiagonal (chordal) structure of
the l2 LMI, for l2 LMIs of >= 200 rows or >= 4 activation layers (falling back to CVXOPT when it does not
converge); else ``"cvxopt-lowrank"`` (CVXOPT's primal-dual method with a rank-2 KKT solver, ~5x faster than
plain CVXOPT on 250-row LMIs) or plain CVXOPT; then Clarabel (small LMIs) or SCS.  ``"CVXOPT"``,
``"CLARABEL"``, ``"SCS"``, ``"MOSEK"`` force one (through cvxpy), ``"ipm"`` and ``"cvxopt-lowrank"`` ours.
Every answer is certified in float64 (:mod:`verification.lipschitz.sdp.certificate`); ``certified`` is False if
that fails, whatever the solver said.
"""

from __future__ import annotations

import numpy as np

from verification.lipschitz.proof import sdp_part
from verification.lipschitz.registration import register
from verification.lipschitz.result import LipschitzResult
from verification.lipschitz.sdp.certificate import Certificate
from verification.lipschitz.sdp.chain import ChainSDP, build_chain_sdp
from verification.lipschitz.sdp.quadratic_constraints import layer_qc
from verification.lipschitz.sdp.solve import solve_chain_sdp
from verification.network import Network

__all__ = ["lipsdp_neuron", "lipsdp_layer"]


def _result(sdp: ChainSDP, cert: Certificate, solver: str, info: dict, method: str) -> LipschitzResult:
    value = sdp.bound(cert.rho)
    details = {
        "certificate": {
            "min_eig": cert.min_eig, "tol": cert.tol, "rho": cert.rho, "rho_schur": cert.rho_schur,
            "bumps": cert.bumps, "check": cert.check, "reason": cert.reason,
        },
        "solver_bound": sdp.bound(info["solver_rho"]),
        **{k: v for k, v in info.items() if k != "multipliers"},
        "qc": [qc.kind for qc in sdp.qcs],
        "_proof": {"parts": [sdp_part(sdp, cert)]},  # for lipschitz(..., proof=PATH); removed from the result
    }
    return LipschitzResult(value, method, sdp.norm, cert.certified, solver=solver, details=details)


def _run(net: Network, norm, c, form: str, method: str, solver: str = "auto", progress: bool = False, **kw):
    if norm == "inf" and c is None:
        # l-inf -> l-inf: max over the output rows (one scalar SDP each)
        results = []
        for i in range(net.out_dim):
            e = np.zeros(net.out_dim)
            e[i] = 1.0
            results.append(_run(net, norm, e, form, method, solver, progress, **kw))
        worst = max(results, key=lambda r: r.value)
        return LipschitzResult(
            worst.value, method, norm, all(r.certified for r in results), solver=worst.solver,
            details={**worst.details, "per_output": [r.value for r in results],
                     "_proof": {"parts": [r.details["_proof"]["parts"][0] for r in results]}},
        )
    sdp = build_chain_sdp(net, norm, c, form)
    cert, used, info = solve_chain_sdp(sdp, solver, progress=progress, label=method, **kw)
    return _result(sdp, cert, used, info, method)


def _sdp_size(net: Network) -> int:
    layers = net.affine_layers
    n0 = layers[0].in_features
    if len(layers) > 1:
        n0 = min(n0, layers[0].out_features)
    return n0 + sum(layer.out_features for layer in layers[:-1])


def _sdp_applicable(max_n: int, max_n_inf: int | None = None):
    """``auto`` applicability: the LMI has at most ``max_n`` rows (``max_n_inf`` for l-inf, default ``max_n``)."""

    def ok(net: Network, norm, has_output: bool) -> bool:
        n = _sdp_size(net) + (net.in_dim if norm == "inf" else 0)
        reps = 1 if (norm == 2 or has_output) else net.out_dim  # l-inf without output: one SDP per row
        cap = max_n if norm == 2 or max_n_inf is None else max_n_inf
        if not (n <= cap and n * reps <= 4 * cap):  # size first: the QCs of a wide (CNN) layer are width^2
            return False
        try:
            for act, layer in zip(net.activations, net.affine_layers):
                layer_qc(act, layer.out_features)
        except Exception:  # noqa: BLE001
            return False
        return True

    return ok


@register(
    "lipsdp-neuron",
    summary="LipSDP with one multiplier per neuron (Pauli QCs for MaxMin/GroupSort/Householder), certified",
    auto_priority=90,
    auto_applicable=_sdp_applicable(2100, 600),  # l2: block-tridiagonal ipm (2048 rows ~25 s); l-inf: CVXOPT
)
def lipsdp_neuron(net: Network, norm, c=None, solver: str = "auto", progress: bool = False, **kw) -> LipschitzResult:
    """LipSDP-Neuron; options ``solver`` (auto/ipm/CVXOPT/CLARABEL/SCS/MOSEK), ``progress``."""
    return _run(net, norm, c, "neuron", "lipsdp-neuron", solver, progress, **kw)


@register(
    "lipsdp-layer",
    summary="LipSDP with one multiplier per layer, certified",
    auto_priority=80,
    auto_applicable=_sdp_applicable(800),
)
def lipsdp_layer(net: Network, norm, c=None, solver: str = "auto", progress: bool = False, **kw) -> LipschitzResult:
    """LipSDP-Layer; options as :func:`lipsdp_neuron`."""
    return _run(net, norm, c, "layer", "lipsdp-layer", solver, progress, **kw)
