"""Quadratic constraints (QCs) for activation layers, used by every SDP Lipschitz method.

A QC for an activation layer ``w = phi(v)`` (width ``n``) is a family of symmetric matrices

    Q(y) = [[Q11, Q12], [Q12ᵀ, Q22]]  with  [Δv; Δw]ᵀ Q(y) [Δv; Δw] >= 0  for all increments,

linear in multipliers ``y`` (some constrained ``>= 0``, some free).  We store every family as a list of
*atoms*: an atom is a vector ``u ∈ R^n``, a coefficient triple ``(q11, q12, q22)`` and the index of the
multiplier it belongs to; the layer's QC is ``Σ_atoms y_var(a) · [[q11 uuᵀ, q12 uuᵀ], [q12 uuᵀ, q22 uuᵀ]]``.

Families (``form="neuron"`` one multiplier per neuron / group, ``form="layer"`` one per layer):

* slope-restricted elementwise on ``[alpha, beta]`` (Fazlyab et al. 2019, eq. (8)):
  ``Q = [[-2αβ T, (α+β) T], [(α+β) T, -2 T]]``, ``T = diag(t) ⪰ 0``.
* GroupSort(g) / MaxMin (Pauli et al., ICLR 2024, "sum preservation"): per group ``j``,
  ``T_j = λ_j I_g + γ_j 11ᵀ`` with ``λ_j >= 0`` and ``γ_j`` free, ``Q = [[T, 0], [0, -T]]``.  Valid because
  sorting is 1-Lipschitz (``||Δσ_j|| <= ||Δv_j||``) and preserves the group sum.
* Householder(v): as GroupSort with ``11ᵀ`` replaced by ``u uᵀ`` for an orthonormal basis ``u`` of ``v^⊥``
  (the reflection leaves ``v^⊥`` unchanged), one free ``γ`` per basis vector.

The pairwise ("LipSDP-Network") couplings are deliberately absent: they are not valid for ReLU.

This module also holds the residual forms of Pauli et al. (residual MaxMin nets and the residual-ReLU
rewrite of MaxMin) as small stand-alone SDPs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verification.activations import Activation, GroupSort, Householder
from verification.errors import InvalidParameterError, UnsupportedLayerError

__all__ = [
    "LayerQC",
    "layer_qc",
    "residual_maxmin_lipschitz",
    "maxmin_residual_relu_lipschitz",
]


@dataclass(frozen=True)
class LayerQC:
    """QC family of one activation layer as atoms.

    ``vectors``: (A, n) atom vectors ``u``; ``coef``: (A, 3) ``(q11, q12, q22)``; ``var``: (A,) multiplier
    index of each atom (0..n_vars-1); ``nonneg``: (n_vars,) bool, True if the multiplier must be ``>= 0``;
    ``unit``: True if atom ``i`` is exactly ``e_i`` (lets builders use diagonal formulas); ``kind``: label.
    """

    vectors: np.ndarray
    coef: np.ndarray
    var: np.ndarray
    nonneg: np.ndarray
    unit: bool
    kind: str

    @property
    def n_vars(self) -> int:
        return int(self.nonneg.shape[0])

    @property
    def width(self) -> int:
        return int(self.vectors.shape[1])

    def matrices(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(Q11, Q12, Q22)`` at multipliers ``y`` (length ``n_vars``), as dense ``n x n`` arrays."""
        ya = np.asarray(y, dtype=np.float64)[self.var]
        u = self.vectors
        out = []
        for col in range(3):
            out.append((u.T * (ya * self.coef[:, col])) @ u)
        return out[0], out[1], out[2]

    def is_valid(self, y: np.ndarray, tol: float = 0.0) -> bool:
        """True if the nonnegative multipliers are ``>= -tol``."""
        y = np.asarray(y)
        return bool(np.all(y[self.nonneg] >= -tol))


def _orth_complement(v: np.ndarray) -> np.ndarray:
    """Orthonormal basis (columns) of the complement of the unit vector ``v``."""
    d = v.size
    q, _ = np.linalg.qr(np.column_stack([v, np.eye(d)]))
    return q[:, 1:d]


def layer_qc(act: Activation, width: int, form: str = "neuron") -> LayerQC:
    """The QC family of activation ``act`` on a layer of ``width`` neurons (``form`` "neuron" or "layer")."""
    if form not in ("neuron", "layer"):
        raise InvalidParameterError(f"The 'form' parameter must be 'neuron' or 'layer'. Got {form!r} instead.")
    eye = np.eye(width)
    bounds = act.slope_bounds() if act.elementwise else None
    if bounds is not None:
        a, b = float(bounds[0]), float(bounds[1])
        coef = np.tile([-2.0 * a * b, a + b, -2.0], (width, 1))
        var = np.arange(width) if form == "neuron" else np.zeros(width, dtype=int)
        nvar = width if form == "neuron" else 1
        return LayerQC(eye, coef, var, np.ones(nvar, dtype=bool), True, f"slope[{a:g},{b:g}]")
    if isinstance(act, (GroupSort, Householder)):
        g = act.group_size
        n_groups = width // g
        if isinstance(act, GroupSort):
            basis = np.ones((g, 1)) / np.sqrt(g)
        else:
            basis = _orth_complement(act.v)
        coef_norm = [1.0, 0.0, -1.0]
        vecs, coefs, var = [eye], [np.tile(coef_norm, (width, 1))], []
        if form == "layer":
            var.append(np.zeros(width, dtype=int))
            nonneg = [True]
            return LayerQC(eye, coefs[0], var[0], np.array(nonneg), True, f"{act.describe()}-layer")
        # neuron form: lambda_j per group (atoms e_i, i in group j), gamma_{j,t} per basis vector (free)
        var.append(np.repeat(np.arange(n_groups), g))
        nonneg = [np.ones(n_groups, dtype=bool)]
        nb = basis.shape[1]
        gam = np.zeros((n_groups * nb, width))
        for j in range(n_groups):
            gam[j * nb : (j + 1) * nb, j * g : (j + 1) * g] = basis.T
        vecs.append(gam)
        coefs.append(np.tile(coef_norm, (n_groups * nb, 1)))
        var.append(n_groups + np.arange(n_groups * nb))
        nonneg.append(np.zeros(n_groups * nb, dtype=bool))
        return LayerQC(
            np.vstack(vecs), np.vstack(coefs), np.concatenate(var), np.concatenate(nonneg), False,
            f"{act.describe()}-sum-preserving",
        )
    raise UnsupportedLayerError(
        f"no quadratic constraint is known for the activation {act.describe()}; SDP methods support "
        "slope-restricted elementwise activations, GroupSort/MaxMin and Householder"
    )


# ---------------------------------------------------------------------------------------------------
# Residual forms (Pauli et al. 2024): small stand-alone SDPs solved with cvxpy.


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

    from verification.lipschitz.certify import certify_psd
    from verification.lipschitz.lipsdp import _solve_cvxpy_problem

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
    solver_used = _solve_cvxpy_problem(prob, solver or "CLARABEL")

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

    from verification.lipschitz.certify import certify_psd
    from verification.lipschitz.lipsdp import _solve_cvxpy_problem

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
    solver_used = _solve_cvxpy_problem(prob, solver or "CLARABEL")
    tv = np.diag(t.value)
    k0 = -c_mat.T @ c_mat - (a.T @ tv @ b + b.T @ tv @ a - 2 * b.T @ tv @ b)
    cert = certify_psd(k0, np.arange(n0), 1.0, rho_hint=float(rho.value))
    return {"value": float(np.sqrt(cert.rho)), "certified": cert.certified, "solver": solver_used}
