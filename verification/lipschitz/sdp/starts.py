"""Strictly feasible starting points for the interior-point method on the l2 chain LMI.

:func:`chain_start` tries, in order: the ECLipsE-Fast point scaled by 2 (:func:`fast_start`), for deep nets
improved by one scale per layer (:func:`layer_scaled_start`), else a generic backwards choice of the
multipliers (:func:`initial_point`).  Every start is checked to be strictly feasible (block Cholesky).
"""

from __future__ import annotations

import numpy as np

from verification.errors import SolverError
from verification.lipschitz.sdp.block_tridiagonal import BlockTridiagonalLMI
from verification.lipschitz.sdp.chain import ChainSDP
from verification.lipschitz.sdp.eclipse_recursion import chain_multipliers, eclipse_chain

__all__ = ["chain_start", "fast_start", "layer_scaled_start", "initial_point", "LAYER_SCALE_MIN_LAYERS"]


def initial_point(sdp: ChainSDP) -> np.ndarray:
    """Strictly feasible start: per-layer multipliers θ_k·1 chosen backwards (θ_k ~ θ_{k+1}·||W_k||²), then ρ
    from the exact Schur complement plus a margin; grows the factor until K is positive definite."""
    nvar = sdp.nonneg.shape[0]
    l = len(sdp.qcs)
    for kappa in (4.0, 16.0, 256.0, 1e4, 1e6):
        y = np.zeros(nvar)
        theta_next = float(np.linalg.norm(sdp.out, 2) ** 2) if sdp.norm == 2 else float(np.abs(sdp.out).sum())
        theta_next = max(theta_next, 1e-12)
        thetas = [0.0] * l
        for k in range(l - 1, -1, -1):
            wn = np.linalg.norm(sdp.matrices[k + 1], 2) ** 2 if k + 1 < l else 1.0
            thetas[k] = kappa * theta_next * max(wn, 1e-12)
            theta_next = thetas[k]
        for k, qc in enumerate(sdp.qcs):
            lo = sdp.var_offsets[k]
            y[lo : lo + qc.n_vars] = np.where(qc.nonneg, thetas[k], 0.0)
        if sdp.norm == "inf":
            w0n = np.linalg.norm(sdp.matrices[0], 2) ** 2 if l else 1.0
            y[1 : 1 + sdp.matrices[0].shape[1]] = kappa * (thetas[0] if l else 1.0) * max(w0n, 1e-12)
        cert = sdp.certify(y)
        if np.isfinite(cert.rho_schur):
            y[0] = 1.5 * max(cert.rho, 0.0) + 1e-6 * max(abs(cert.rho), 1.0) + 1e-9
            try:
                np.linalg.cholesky(sdp.matrix(y))
                return y
            except np.linalg.LinAlgError:
                continue
    raise SolverError("could not find a strictly feasible starting point for the LipSDP interior-point method")


def fast_start(sdp: ChainSDP) -> np.ndarray | None:
    """The ECLipsE-Fast multipliers scaled by 2 (ρ and every multiplier), or ``None`` if ECLipsE does not apply.

    ECLipsE-Fast keeps every intermediate Schur complement inside the cone by construction and is tight only in
    the last block; scaling all variables by ``c > 1`` gives ``c K(y) + (c-1) W_lᵀW_l``, strictly feasible with
    room in every block (scaling ρ alone leaves the last block nearly singular)."""
    kinds = {qc.kind for qc in sdp.qcs}
    slopes = [q.coef[0] for q in sdp.qcs]
    # ECLipsE needs slope-restricted [0, beta] layers with one common beta (q11 = 0)
    if not (sdp.qcs and all(k.startswith("slope") for k in kinds) and all(abs(c[0]) == 0.0 for c in slopes)
            and len({round(float(c[1]), 12) for c in slopes}) == 1):
        return None
    beta = float(slopes[0][1])  # q12 = (alpha + beta) = beta, q22 = -2  ->  m = beta / 2
    with np.errstate(all="ignore"):
        try:
            raw, ls, _ = eclipse_chain(sdp.matrices, beta / 2, True)
        except (np.linalg.LinAlgError, ValueError, FloatingPointError):
            return None
        if not (np.isfinite(raw) and raw > 0):
            return None
        lmi = BlockTridiagonalLMI(sdp)
        for factor in (2.0, 10.0, 1e3):
            y = factor * chain_multipliers(sdp, raw, ls)
            y[1:] = np.where(sdp.nonneg[1:], np.maximum(y[1:], 1e-300), y[1:])  # strictly inside y >= 0
            if np.all(np.isfinite(y)) and lmi.factor(y) is not None:
                return y
    return None


LAYER_SCALE_FAST_SHARE = 0.15  # share of the start's ρ that comes from the ECLipsE-Fast point in the mix
LAYER_SCALE_MAX_FAST_WEIGHT = 1e-3  # and at most this weight on it
LAYER_SCALE_MIN_LAYERS = 24  # below this the search costs about what it saves (depth 16: 22 -> 18 iterations)


def layer_scaled_start(sdp: ChainSDP, y_fast: np.ndarray, max_iter: int = 25) -> np.ndarray | None:
    """The ECLipsE-Fast start with one scale per layer: minimise the exact minimal ρ over the log-scales of the
    layers' multipliers, double the result and mix it with the strictly feasible ``y_fast`` (weight chosen so
    that ``y_fast`` supplies :data:`LAYER_SCALE_FAST_SHARE` of the start's ρ, at most
    :data:`LAYER_SCALE_MAX_FAST_WEIGHT`); ``None`` if that fails or does not lower ρ.

    The optimal LipSDP-Neuron multipliers differ from ECLipsE-Fast's mostly by a smooth factor per layer (on the
    trained width-64 MLP of depth 16 the median ratio runs from 0.011 in layer 0 to 0.5 in layer 14); without
    it the interior-point method spends most of its iterations creeping towards it.  Two stages: a tilt
    ``exp(a + b·k/L)`` by Nelder-Mead, then L-BFGS on all per-layer log-scales with the envelope gradient of
    :meth:`BlockTridiagonalLMI.min_rho` (each evaluation O(depth·s³)).  The mix is a convex combination with a
    strictly feasible point, so the start is strictly feasible and keeps room in every block.  A fixed weight
    0.001 let ``y_fast`` dominate ρ at depth 64 (ρ_fast is 1e7 times the optimum there: the start was 3.5e4
    times the optimum, 40 iterations); a 15 % share takes 35 (depth 32: 22 either way; a 0.02 % share stalls)."""
    from scipy.optimize import minimize  # scipy.optimize is slow to import: only when used

    lmi = BlockTridiagonalLMI(sdp)
    dd, _ = lmi.blocks(y_fast)
    vscale = np.where(np.abs(y_fast) > 0, np.abs(y_fast), 1.0)
    lmi.rescale(1.0 / np.sqrt(np.maximum(np.concatenate([np.diag(b) for b in dd]), 1e-300)), vscale)
    n_layers = len(sdp.qcs)
    layer = np.full(lmi.m, -1)
    for k, qc in enumerate(sdp.qcs):
        layer[sdp.var_offsets[k] : sdp.var_offsets[k] + qc.n_vars] = k
    if np.any(layer[1:] < 0):
        return None
    depth = np.arange(n_layers) / max(n_layers - 1, 1)

    def scaled(p):
        z = y_fast / vscale
        z[1:] *= np.exp(p[layer[1:]])
        return z

    def objective(p):
        z = scaled(p)
        rho, grad = lmi.min_rho(z)
        if not (np.isfinite(rho) and rho > 0 and grad is not None):
            return 1e10, np.zeros_like(p)
        return float(np.log(rho)), np.bincount(layer[1:], weights=(grad * z)[1:], minlength=p.size) / rho

    with np.errstate(all="ignore"):
        try:
            # a wide first simplex: the optimal tilt is large (depth 64: a = -9.1, b = 8.5); from scipy's default
            # 0.00025 steps Nelder-Mead used its 300 evaluations to get there (3.3 s), now about 90 (0.9 s)
            tilt = minimize(lambda ab: objective(ab[0] + ab[1] * depth)[0], np.zeros(2), method="Nelder-Mead",
                            options={"xatol": 1e-2, "fatol": 1e-3, "maxfev": 300,
                                     "initial_simplex": np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])})
            res = minimize(objective, tilt.x[0] + tilt.x[1] * depth, jac=True, method="L-BFGS-B",
                           options={"maxiter": max_iter})
            best = res.x if res.fun <= tilt.fun else tilt.x[0] + tilt.x[1] * depth
            z = scaled(best)
            z[0], _ = lmi.min_rho(z)
        except (np.linalg.LinAlgError, ValueError, FloatingPointError):
            return None
        y2 = 2.0 * z * vscale
        share = LAYER_SCALE_FAST_SHARE
        w = min(LAYER_SCALE_MAX_FAST_WEIGHT, share / (1.0 - share) * y2[0] / y_fast[0])
        y = (1.0 - w) * y2 + w * y_fast
    if not (np.all(np.isfinite(y)) and y[0] < y_fast[0] and np.all(y[sdp.nonneg] > 0)):
        return None
    return y if lmi.factor(y / vscale) is not None else None  # scaled coordinates: same definiteness


def chain_start(sdp: ChainSDP) -> np.ndarray:
    """Strictly feasible start for the interior-point method: :func:`fast_start` (close to the optimum,
    computed layer by layer so it does not overflow on deep nets), for deep nets improved by
    :func:`layer_scaled_start`, else :func:`initial_point`."""
    y = fast_start(sdp)
    if y is not None:
        better = layer_scaled_start(sdp, y) if len(sdp.qcs) >= LAYER_SCALE_MIN_LAYERS else None
        return y if better is None else better
    with np.errstate(all="ignore"):
        try:
            y = initial_point(sdp)
            if np.all(np.isfinite(y)):
                return y
        except (SolverError, np.linalg.LinAlgError, ValueError, FloatingPointError):
            pass
    raise SolverError("no strictly feasible starting point found for the interior-point method")
