"""ECLipsE and ECLipsE-Fast (Xu & Sivaranjani, NeurIPS 2024, arXiv 2404.04375): sequential LipSDP.

For activations slope-restricted on ``[0, β]`` (ReLU, tanh, sigmoid; ``m = β/2``) the block-tridiagonal LipSDP
matrix is positive semidefinite iff its Schur complements are.  ECLipsE fixes the multipliers greedily, layer
by layer (paper, Thm. 1 / Prop. 1):

    X_0 = I,   X_k = L_k − m² L_k W_{k-1} X_{k-1}⁻¹ W_{k-1}ᵀ L_k   (k = 1..l, hidden layers),
    bound = sqrt(λ_max(W_lᵀ W_l X_l⁻¹)),

with ``L_k = 2 T_k / ρ``.  ECLipsE-Fast takes ``L_k = l_k I``, ``l_k = 1 / (2 m² λ_max(W_{k-1} X_{k-1}⁻¹ W_{k-1}ᵀ))``
(which maximises ``λ_min(X_k)``); ECLipsE takes a diagonal ``L_k`` from a small SDP per layer that looks one
layer ahead: maximise ``c`` s.t. ``[[X_{k-1}, m W_{k-1}ᵀ L], [m L W_{k-1}, L − c W_kᵀ W_k]] ⪰ 0``.

Every ECLipsE point is a feasible point of LipSDP-Neuron (``T_k = ρ L_k / 2``), so LipSDP-Neuron ≤ ECLipsE.
We certify the answer exactly like the other SDP methods: the multipliers are put into the LipSDP-Neuron
matrix, ``ρ`` is recomputed by the exact Schur complement and checked in float64.
"""

from __future__ import annotations

import numpy as np

from verification.errors import PreconditionError, SolverError
from verification.lipschitz.lipsdp import build_chain_sdp
from verification.lipschitz.registry import register
from verification.lipschitz.result import LipschitzResult
from verification.network import Network

__all__ = ["eclipse", "eclipse_fast", "eclipse_chain", "chain_multipliers"]


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


def _layer_sdp(x_prev: np.ndarray, w: np.ndarray, w_next: np.ndarray, m: float, solver: str) -> np.ndarray:
    import cvxpy as cp

    from verification.lipschitz.lipsdp import _solve_cvxpy_problem

    n = w.shape[0]
    lam = cp.Variable(n, nonneg=True)
    c = cp.Variable()
    lmat = cp.diag(lam)
    gram = w_next.T @ w_next
    gram = gram / max(np.linalg.norm(gram, 2), 1e-300)  # scale only changes c
    top = cp.hstack([x_prev, m * cp.multiply(w.T, cp.reshape(lam, (1, n), order="C"))])
    bot = cp.hstack([m * cp.multiply(cp.reshape(lam, (n, 1), order="C"), w), lmat - c * gram])
    big = cp.vstack([top, bot])
    prob = cp.Problem(cp.Maximize(c), [(big + big.T) / 2 >> 0])
    _solve_cvxpy_problem(prob, solver)
    if lam.value is None:
        raise SolverError("ECLipsE per-layer SDP returned no multipliers")
    return np.maximum(np.asarray(lam.value, dtype=np.float64), 0.0)


def eclipse_chain(weights: list[np.ndarray], m: float, fast: bool, solver: str = "CVXOPT") -> tuple[float, list]:
    """Run the recursion on ``weights`` (W_0..W_l); returns (bound, [diag L_k], layers where the per-layer SDP
    failed and the Fast choice was used)."""
    x = np.eye(weights[0].shape[1])
    ls = []
    fallbacks: list[int] = []
    for k in range(len(weights) - 1):
        w = weights[k]
        a = w @ np.linalg.solve(x, w.T)
        a = (a + a.T) / 2
        if fast:
            lvec = np.full(w.shape[0], 1.0 / (2 * m * m * max(np.linalg.eigvalsh(a)[-1], 1e-300)))
        else:
            # the SDP is homogeneous in (X, L) up to the scale of c: solve with X normalised, rescale L
            sx = max(float(np.linalg.norm(x, 2)), 1e-300)
            try:
                lvec = sx * _layer_sdp(x / sx, w, weights[k + 1], m, solver)
            except SolverError:  # per-layer SDP failed: use the Fast choice for this layer (recorded)
                fallbacks.append(k)
                lvec = np.full(w.shape[0], 1.0 / (2 * m * m * max(np.linalg.eigvalsh(a)[-1], 1e-300)))
        x_new = np.diag(lvec) - m * m * (lvec[:, None] * a * lvec[None, :])
        x_new = (x_new + x_new.T) / 2
        if not fast and np.linalg.eigvalsh(x_new)[0] <= 1e-12 * max(lvec.max(), 1e-300):
            lf = 1.0 / (2 * m * m * max(np.linalg.eigvalsh(a)[-1], 1e-300))
            for mix in (0.5, 0.9, 0.99, 1.0):
                lv = (1 - mix) * lvec + mix * lf
                xn = np.diag(lv) - m * m * (lv[:, None] * a * lv[None, :])
                if np.linalg.eigvalsh((xn + xn.T) / 2)[0] > 0:
                    lvec, x_new = lv, (xn + xn.T) / 2
                    break
        ls.append(lvec)
        x = x_new
    wl = weights[-1]
    val = np.linalg.eigvals(np.linalg.solve(x, wl.T @ wl)).real.max()
    return float(np.sqrt(max(val, 0.0))), ls, fallbacks


def chain_multipliers(sdp, raw: float, ls: list, rho: float | None = None) -> np.ndarray:
    """LipSDP variables ``y`` (``y[0] = ρ``) of the ECLipsE point ``(raw, [diag L_k])``: ``T_k = raw²·L_k/2``
    (paper's ``L_k = 2 T_k / ρ``); ``ρ = raw²`` unless given.  In the layer form (one multiplier per layer)
    ``L_k`` must be a multiple of the identity (ECLipsE-Fast) and its value is used."""
    y = np.zeros(sdp.nonneg.shape[0])
    y[0] = raw**2 if rho is None else rho
    for k, lvec in enumerate(ls):
        lo, nv = sdp.var_offsets[k], sdp.qcs[k].n_vars
        vals = lvec if nv == lvec.size else np.full(nv, lvec.max())
        y[lo : lo + nv] = raw**2 * vals / 2
    return y


def _run(net: Network, norm, c, fast: bool, solver: str = "CVXOPT") -> LipschitzResult:
    name = "eclipse-fast" if fast else "eclipse"
    if norm != 2:
        raise PreconditionError(f"{name} bounds the l2 constant only")
    m = _check(net)
    sdp = build_chain_sdp(net, 2, c, "neuron")  # input-reduced weights, output row c applied
    raw, ls, fallbacks = eclipse_chain(sdp.weights, m, fast, solver)
    cert = sdp.certify(chain_multipliers(sdp, raw, ls))
    value = float(np.sqrt(cert.rho)) if cert.certified else raw
    return LipschitzResult(
        value, name, 2, cert.certified, solver=None if fast else solver,
        details={"recursion_bound": raw, "layers_using_fast_fallback": fallbacks, "certificate": {"rho": cert.rho, "min_eig": cert.min_eig,
                                                          "bumps": cert.bumps, "reason": cert.reason}},
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
def eclipse(net: Network, norm, c=None, solver: str = "CVXOPT") -> LipschitzResult:
    return _run(net, norm, c, False, solver)
