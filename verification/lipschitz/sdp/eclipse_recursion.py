"""The ECLipsE recursion (Xu & Sivaranjani, NeurIPS 2024, arXiv 2404.04375): sequential LipSDP multipliers.

For activations slope-restricted on ``[0, β]`` (ReLU, tanh, sigmoid; ``m = β/2``) the block-tridiagonal LipSDP
matrix is positive semidefinite iff its Schur complements are.  ECLipsE fixes the multipliers greedily, layer
by layer (paper, Thm. 1 / Prop. 1):

    X_0 = I,   X_k = L_k − m² L_k W_{k-1} X_{k-1}⁻¹ W_{k-1}ᵀ L_k   (k = 1..l, hidden layers),
    bound = sqrt(λ_max(W_lᵀ W_l X_l⁻¹)),

with ``L_k = 2 T_k / ρ``.  ECLipsE-Fast takes ``L_k = l_k I``, ``l_k = 1 / (2 m² λ_max(W_{k-1} X_{k-1}⁻¹ W_{k-1}ᵀ))``
(which maximises ``λ_min(X_k)``); ECLipsE takes a diagonal ``L_k`` from a small SDP per layer that looks one
layer ahead: maximise ``c`` s.t. ``[[X_{k-1}, m W_{k-1}ᵀ L], [m L W_{k-1}, L − c W_kᵀ W_k]] ⪰ 0``.

Every ECLipsE point is a feasible point of LipSDP-Neuron (``T_k = ρ L_k / 2``), so LipSDP-Neuron ≤ ECLipsE.
:func:`chain_multipliers` turns an ECLipsE point into the variables of a :class:`ChainSDP`; the methods
(:mod:`verification.lipschitz.eclipse`) certify it like every SDP answer, and the interior-point start
(:mod:`verification.lipschitz.sdp.starts`) scales it.
"""

from __future__ import annotations

import numpy as np

from verification.errors import SolverError
from verification.lipschitz.sdp.chain import ChainSDP
from verification.lipschitz.sdp.cvxpy_problem import solve_cvxpy_problem

__all__ = ["eclipse_chain", "chain_multipliers"]


def _layer_sdp(x_prev: np.ndarray, w: np.ndarray, w_next: np.ndarray, m: float, solver: str) -> np.ndarray:
    import cvxpy as cp

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
    solve_cvxpy_problem(prob, solver)
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


def chain_multipliers(sdp: ChainSDP, raw: float, ls: list, rho: float | None = None) -> np.ndarray:
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
