"""The residual SDPs of Pauli et al. (ICLR 2024) for MaxMin networks, as small stand-alone cvxpy problems.

* :func:`residual_maxmin_lipschitz`: residual MaxMin nets ``x_k = x_{k-1} + MaxMin(V_k x_{k-1})`` with the
  sum-preserving multipliers and the cross terms of the residual form;
* :func:`maxmin_residual_relu_lipschitz`: LipSDP-Neuron on the residual-ReLU rewrite of a MaxMin layer (the
  comparison of the paper: ``sqrt 2`` where the sum-preserving QC gives 1).

Both rebuild their matrix in float64 from the solver's multipliers and certify it with
:func:`verification.lipschitz.sdp.certificate.certify_psd`.  Not registered as methods (they take weights of a
special form, not a :class:`~verification.network.Network`).
"""

from __future__ import annotations

import numpy as np

from verification.errors import InvalidParameterError
from verification.lipschitz.sdp.certificate import certify_psd
from verification.lipschitz.sdp.cvxpy_problem import solve_cvxpy_problem

__all__ = ["residual_maxmin_lipschitz", "maxmin_residual_relu_lipschitz"]


def residual_maxmin_lipschitz(
    w_in: np.ndarray,
    inner: list[np.ndarray],
    w_out: np.ndarray,
    cross_terms: bool = True,
    solver: str | None = None,
) -> dict:
    """l2 bound for ``f(x) = W_out x_m``, ``x_k = x_{k-1} + MaxMin(V_k x_{k-1})``, ``x_0 = W_in x``.

    Pauli et al. (2024), residual form: one LMI over ``ξ = [Δx_0; Δσ_1; ...; Δσ_m]`` with per-layer multipliers
    ``[[T - 2S, P + S], [P + S, -T - 2P]]`` (``T = blkdiag(λ_j I + γ_j 11ᵀ)``, ``P, S = blkdiag(p_j 11ᵀ),
    blkdiag(s_j 11ᵀ)`` free; ``cross_terms=False`` sets ``P = S = 0``).  The inner bound ``sqrt(ρ)`` is
    certified by a float64 eigenvalue check and multiplied by ``||W_in||·||W_out||``.
    Returns ``{"value", "inner", "naive", "certified", "min_eig"}``; naive is
    ``||W_in|| Π(1 + ||V_k||) ||W_out||``."""
    import cvxpy as cp

    inner = [np.asarray(v, dtype=np.float64) for v in inner]
    d = inner[0].shape[1] if inner else np.asarray(w_in).shape[0]
    for v in inner:
        if v.shape != (d, d) or d % 2:
            raise InvalidParameterError(f"inner residual weights must be square {d}x{d} with even d; got {v.shape}")
    m = len(inner)
    n = d * (m + 1)
    e_blocks = []
    for k in range(m + 1):  # E_k: Δx_k = Δx_0 + Σ_{j<=k} Δσ_j  (as a d x n selector)
        e = np.zeros((d, n))
        for j in range(k + 1):
            e[:, j * d : (j + 1) * d] = np.eye(d)
        e_blocks.append(e)
    ones_blk = np.kron(np.eye(d // 2), np.ones((2, 2)))
    rho = cp.Variable(nonneg=True)
    lam = [cp.Variable(d // 2, nonneg=True) for _ in range(m)]
    gam = [cp.Variable(d // 2) for _ in range(m)]
    p = [cp.Variable(d // 2) for _ in range(m)]
    s = [cp.Variable(d // 2) for _ in range(m)]
    rep = np.kron(np.eye(d // 2), np.ones((1, 2)))  # (d/2 -> d) repetition, as rows
    expand = rep.T

    def blk11(vec):
        return cp.multiply(ones_blk, expand @ cp.diag(vec) @ rep)

    terms = []
    mats = []
    for k in range(m):
        t_mat = cp.diag(expand @ lam[k]) + blk11(gam[k])
        p_mat = blk11(p[k]) if cross_terms else np.zeros((d, d))
        s_mat = blk11(s[k]) if cross_terms else np.zeros((d, d))
        a = inner[k] @ e_blocks[k]  # Δv_k = V_k Δx_{k-1} = V_k E_{k-1} ξ (e_blocks index shift: E_{k})
        b = np.zeros((d, n))
        b[:, (k + 1) * d : (k + 2) * d] = np.eye(d)
        q11, q12, q22 = t_mat - 2 * s_mat, p_mat + s_mat, -t_mat - 2 * p_mat
        terms.append(a.T @ q11 @ a + a.T @ q12 @ b + b.T @ q12 @ a + b.T @ q22 @ b)
        mats.append((a, b))
    e_m = e_blocks[m]
    sel0 = np.zeros((n, n))
    sel0[:d, :d] = np.eye(d)
    k_mat = rho * sel0 - e_m.T @ e_m - sum(terms) if terms else rho * sel0 - e_m.T @ e_m
    k_sym = (k_mat + k_mat.T) / 2
    prob = cp.Problem(cp.Minimize(rho), [k_sym >> 0])
    solver_used = solve_cvxpy_problem(prob, solver or "CLARABEL")

    def numeric(k):
        # rebuild K in float64 from the returned multipliers
        lamv, gamv = lam[k].value, gam[k].value
        t_m = np.diag(expand @ lamv) + ones_blk * (expand @ np.diag(gamv) @ rep)
        if cross_terms:
            p_m = ones_blk * (expand @ np.diag(p[k].value) @ rep)
            s_m = ones_blk * (expand @ np.diag(s[k].value) @ rep)
        else:
            p_m = s_m = np.zeros((d, d))
        a, b = mats[k]
        q11, q12, q22 = t_m - 2 * s_m, p_m + s_m, -t_m - 2 * p_m
        return a.T @ q11 @ a + a.T @ q12 @ b + b.T @ q12 @ a + b.T @ q22 @ b

    k0 = -e_m.T @ e_m - sum(numeric(k) for k in range(m))
    cert = certify_psd(k0, np.arange(d), 1.0, rho_hint=float(rho.value))
    scale = np.linalg.norm(w_in, 2) * np.linalg.norm(w_out, 2)
    naive = scale * float(np.prod([1.0 + np.linalg.norm(v, 2) for v in inner]))
    inner_bound = float(np.sqrt(cert.rho)) if cert.certified else float(np.sqrt(max(rho.value, 0.0)))
    return {
        "value": scale * inner_bound,
        "inner": inner_bound,
        "naive": naive,
        "certified": cert.certified,
        "min_eig": cert.min_eig,
        "solver": solver_used,
    }


def maxmin_residual_relu_lipschitz(weight: np.ndarray, w_out: np.ndarray, solver: str | None = None) -> dict:
    """LipSDP-Neuron bound of the one-hidden-layer MaxMin net ``x -> W_out MaxMin(W x)`` after the residual
    ReLU rewrite Pauli et al. (2024) compare with: per pair ``(z1, z2)``,
    ``max = z2 + relu(z1 - z2)``, ``min = z2 - relu(z2 - z1)`` (two ReLUs per pair, ``H = [[0, 1], [0, 1]]``,
    ``G = diag(1, -1)``, ``W' = [[1, -1], [-1, 1]]``), with the skip path ``H`` kept exact in the output block.

    LipSDP cannot see that the two ReLUs of a pair are never active together, so one unit with ``W = I`` gives
    ``sqrt 2`` instead of the true 1 (the sum-preserving QC of :func:`layer_qc` gives 1).
    Returns ``{"value", "certified", "solver"}``."""
    import cvxpy as cp

    w = np.asarray(weight, dtype=np.float64)
    w_out = np.asarray(w_out, dtype=np.float64)
    h, n0 = w.shape
    if h % 2:
        raise InvalidParameterError("MaxMin layer width must be even")
    g_pairs = h
    hmat = np.zeros((h, h))
    gmat = np.zeros((h, h))
    dmat = np.zeros((h, h))
    for j in range(h // 2):
        a, b = 2 * j, 2 * j + 1
        hmat[a, b] = hmat[b, b] = 1.0
        gmat[a, a], gmat[b, b] = 1.0, -1.0
        dmat[a, a], dmat[a, b] = 1.0, -1.0
        dmat[b, a], dmat[b, b] = -1.0, 1.0
    out_x = w_out @ hmat @ w  # output = out_x Δx + out_r Δr
    out_r = w_out @ gmat
    pre = dmat @ w  # pre-activations of the ReLUs
    n = n0 + g_pairs
    c_mat = np.hstack([out_x, out_r])
    a = np.hstack([pre, np.zeros((g_pairs, g_pairs))])
    b = np.hstack([np.zeros((g_pairs, n0)), np.eye(g_pairs)])
    rho = cp.Variable(nonneg=True)
    t = cp.Variable(g_pairs, nonneg=True)
    tm = cp.diag(t)
    qc = a.T @ tm @ b + b.T @ tm @ a - 2 * (b.T @ tm @ b)  # alpha=0, beta=1
    sel0 = np.zeros((n, n))
    sel0[:n0, :n0] = np.eye(n0)
    k_expr = rho * sel0 - c_mat.T @ c_mat - qc
    prob = cp.Problem(cp.Minimize(rho), [(k_expr + k_expr.T) / 2 >> 0])
    solver_used = solve_cvxpy_problem(prob, solver or "CLARABEL")
    tv = np.diag(t.value)
    k0 = -c_mat.T @ c_mat - (a.T @ tv @ b + b.T @ tv @ a - 2 * b.T @ tv @ b)
    cert = certify_psd(k0, np.arange(n0), 1.0, rho_hint=float(rho.value))
    return {"value": float(np.sqrt(cert.rho)), "certified": cert.certified, "solver": solver_used}
