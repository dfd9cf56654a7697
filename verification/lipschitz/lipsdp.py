"""LipSDP (Fazlyab et al., NeurIPS 2019) with the quadratic constraints of Pauli et al. (ICLR 2024).

Methods registered here: ``lipsdp-neuron`` and ``lipsdp-layer`` (l2 and l-inf).  The QC of each activation
layer comes from :mod:`verification.lipschitz.quadratic_constraints`: slope-restricted layers get the LipSDP
multipliers, GroupSort/MaxMin/Householder layers Pauli's sum-preserving ones, chosen automatically.

**l2** (Fazlyab et al. eq. (10), block form).  Stack ``ξ = [Δx⁰; Δx¹; ...; Δxˡ]``; every activation layer ``k``
contributes ``[W_{k-1}Δx^{k-1}; Δx^k]ᵀ Q_k [..] >= 0``.  With ``K = -M``:

    K(ρ, y) = ρ·E_in − CᵀC − Σ_k [A_k; B_k]ᵀ Q_k(y) [A_k; B_k] ⪰ 0,    bound = sqrt(ρ*)

(``C = W_l`` or ``cᵀW_l`` for a scalar output).  When ``n_0 > rank(W_0)`` the input block is reduced exactly
to the row space of ``W_0`` (thin SVD; the rest of the input block is ``ρ I ⪰ 0``).

**l-inf, scalar output** ``cᵀf`` (Wang et al. 2022 / Pauli et al. 2024): extra ``τ ∈ R^{n_0}_{>=0}`` and a
border coordinate ``s``:

    [[diag(τ), 0, wᵀ-border], ..., [w, 2ρ − Στ]] − Σ_k QC_k ⪰ 0,   bound = ρ   (no square root)

with ``w = cᵀW_l`` on the last hidden block; then ``|cᵀ(f(x)-f(y))| <= ρ ||x-y||_∞``.  Without ``output`` the
l-inf -> l-inf bound is the maximum over the output rows (one SDP per row).

Solvers: ``solver="auto"`` (default) uses MOSEK if installed and licensed, else ``"cvxopt-lowrank"`` (CVXOPT's
primal-dual method with our rank-2 KKT solver, :func:`._ipm.cvxopt_lowrank_solve`, ~5x faster than plain
CVXOPT on 250-row LMIs), falling back to plain CVXOPT, then Clarabel (small LMIs) or SCS; ``"CVXOPT"``, ``"CLARABEL"``, ``"SCS"``, ``"MOSEK"`` force one (through cvxpy);
``"ipm"`` is our primal-dual interior-point method on the block-tridiagonal (chordal) structure of the l2 LMI
(:mod:`._chain_pd`, linear algebra in :mod:`._chain_ipm`; ``auto`` uses it for l2 LMIs of >= 200 rows or >= 4
activation layers and falls back to CVXOPT when it does not converge).  Every answer is certified in float64
(:mod:`.certify`); ``certified`` is False if that fails, whatever the solver said.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from verification.errors import InvalidParameterError, SolverError
from verification.lipschitz.certify import Certificate, certify_block_tridiagonal, certify_psd
from verification.lipschitz.quadratic_constraints import layer_qc
from verification.lipschitz.registry import register
from verification.lipschitz.result import LipschitzResult
from verification.network import Network

__all__ = ["ChainSDP", "build_chain_sdp", "solve_chain_sdp", "lipsdp_neuron", "lipsdp_layer", "SOLVERS"]

STRUCTURED_CERTIFY_MIN_N = 600  # above this, l2 chain LMIs are certified by block Cholesky (O(Σ s³))

SOLVERS = ("auto", "cvxopt-lowrank", "ipm", "CVXOPT", "CLARABEL", "SCS", "MOSEK")


@dataclass
class ChainSDP:
    """The LMI ``K(y) = K0 + Σ_a y_var(a) U_a C_a U_aᵀ ⪰ 0`` of a chain network; ``y[0] = ρ``.

    ``blocks``: start offsets of the stack blocks (input, hidden layers, [border]); ``qcs``: per activation
    layer QC; ``var_offsets``: first multiplier index of each layer; ``j_index``/``a``: ρ enters as
    ``a·ρ·E_J``; ``norm``: 2 or "inf"; ``weights``: the (input-reduced) weights used."""

    n: int
    blocks: list
    k0: np.ndarray
    u: sp.csc_matrix
    c_atoms: np.ndarray
    var: np.ndarray
    nonneg: np.ndarray
    j_index: np.ndarray
    a: float
    norm: int | str
    qcs: list
    var_offsets: list
    weights: list
    out: np.ndarray
    reduced_from: int

    def matrix(self, y: np.ndarray) -> np.ndarray:
        """Dense ``K(y)`` in float64."""
        y = np.asarray(y, dtype=np.float64)
        coef = self.c_atoms * y[self.var][:, None, None]
        a = coef.shape[0]
        rows = np.repeat(np.arange(2 * a).reshape(a, 2), 2, axis=1).ravel()
        cols = np.tile(np.arange(2 * a).reshape(a, 2), (1, 2)).ravel()
        d = sp.csr_matrix((coef.reshape(-1), (rows, cols)), shape=(2 * a, 2 * a))
        k = self.k0 + (self.u @ d @ self.u.T).toarray()
        return (k + k.T) / 2

    def certify(self, y: np.ndarray, repair: bool = True) -> Certificate:
        """Certified ``ρ`` for the multipliers ``y`` (``y[0]`` is only a hint).

        Solvers stop on the boundary of the cone, so the multiplier part of ``K`` can be slightly indefinite.
        With ``repair`` we then try the rescaled multipliers ``y_k (1+δ)^{e_k}`` (layer ``k`` of ``l``,
        ``e_k = 2(l-k)+1`` or ``l-k+1``, δ = 1e-9 ... 1e-3): for slope and sum-preserving QCs this equals a
        congruence of the original matrix plus ``δ``-multiples of the (PSD) multiplier blocks, i.e. it pushes the
        point into the interior at a relative cost of about ``(1+δ)^{2l}`` in ``ρ``.  Each candidate is an
        ordinary multiplier choice certified from scratch, so the repair cannot make an answer unsound."""
        y0 = np.array(y, dtype=np.float64)
        rho_hint = float(y0[0])
        y0[0] = 0.0
        # nonnegative multipliers slightly negative from a solver are clipped (sound: clipping gives a valid QC)
        y0[self.nonneg] = np.maximum(y0[self.nonneg], 0.0)
        cert = self._certify_once(y0, rho_hint)
        if cert.certified and cert.bumps and self.norm == 2 and self.qcs:
            # raising ρ only adds room in the input block; a point that is tight in a deep block (ECLipsE ends
            # tight in the last one) then needs large bumps.  Scaling every multiplier by c > 1 adds
            # (c - 1)·W_lᵀW_l to the last block at a relative cost c - 1: keep the best certified candidate.
            for delta in (1e-8, 1e-6):
                c2 = self._certify_once((1.0 + delta) * y0, rho_hint)
                if c2.certified and c2.rho < cert.rho:
                    cert = replace(c2, reason=f"multipliers scaled by 1+{delta:g} before certification")
                if not cert.bumps:
                    break
        if cert.certified or not repair or not self.qcs:
            return cert
        l = len(self.qcs)
        for delta in (1e-9, 1e-7, 1e-5, 1e-3):
            for expo in ("double", "single"):
                yr = y0.copy()
                for k, qc in enumerate(self.qcs):
                    e = 2 * (l - 1 - k) + 1 if expo == "double" else l - k
                    lo = self.var_offsets[k]
                    yr[lo : lo + qc.n_vars] *= (1.0 + delta) ** e
                if self.norm == "inf":
                    e = 2 * l + 1 if expo == "double" else l + 1
                    yr[1 : self.blocks[1] + 1] *= (1.0 + delta) ** e
                c2 = self._certify_once(yr, rho_hint)
                if c2.certified:
                    return replace(c2, reason=f"multipliers rescaled by (1+{delta:g})^e ({expo}) before certification")
        return cert

    def _certify_once(self, y: np.ndarray, rho_hint: float) -> Certificate:
        """Certify the multipliers ``y`` (``y[0]`` ignored): structured (block Cholesky) for large l2 chain LMIs,
        dense otherwise."""
        if self.norm == 2 and self.qcs and self.n > STRUCTURED_CERTIFY_MIN_N:
            from verification.lipschitz._chain_ipm import BlockTridiagonalLMI

            yy = np.array(y, dtype=np.float64)
            yy[0] = 0.0
            if getattr(self, "_lmi", None) is None:
                self._lmi = BlockTridiagonalLMI(self)
            dd, ee = self._lmi.blocks(yy)
            return certify_block_tridiagonal(dd, ee, self.a, rho_hint=rho_hint)
        return certify_psd(self.matrix(y), self.j_index, self.a, rho_hint=rho_hint)

    def bound(self, rho: float) -> float:
        return float(np.sqrt(max(rho, 0.0))) if self.norm == 2 else float(rho)


def _weights_of(net: Network) -> tuple[list[np.ndarray], list]:
    return [np.asarray(w, dtype=np.float64) for w in net.weights], list(net.activations)


def build_chain_sdp(net: Network, norm: int | str, c: np.ndarray | None, form: str) -> ChainSDP:
    """Build the LMI of ``net`` (canonical) for ``norm`` and scalar output ``c`` (required for l-inf)."""
    weights, acts = _weights_of(net)
    w_last = weights[-1] if c is None else c[None, :] @ weights[-1]
    n_in = weights[0].shape[1]
    reduced_from = n_in
    if norm == 2 and acts and weights[0].shape[0] < n_in:
        # exact input reduction to the row space of W_0
        _, s, vt = np.linalg.svd(weights[0], full_matrices=False)
        r = int(np.sum(s > s[0] * 1e-13)) if s.size and s[0] > 0 else 1
        weights[0] = weights[0] @ vt[:r].T
    if not acts:
        weights = [w_last]
    else:
        weights[-1] = w_last
    dims = [weights[0].shape[1]] + [w.shape[0] for w in weights[:-1]]
    starts = np.concatenate([[0], np.cumsum(dims)]).astype(int)
    n = int(starts[-1]) + (1 if norm == "inf" else 0)
    border = n - 1
    qcs = [layer_qc(act, dims[k + 1], form) for k, act in enumerate(acts)]
    # variables: rho, [tau], per-layer multipliers
    nonneg = [np.array([True])]
    offsets = []
    nvar = 1
    if norm == "inf":
        nonneg.append(np.ones(dims[0], dtype=bool))
        nvar += dims[0]
    for qc in qcs:
        offsets.append(nvar)
        nonneg.append(qc.nonneg)
        nvar += qc.n_vars
    nonneg = np.concatenate(nonneg)
    cols_r, cols_c, cols_v = [], [], []  # sparse columns of U as (row, col, value)
    c_list, var_list = [], []
    col = 0

    def add_atom(alpha_rows, alpha_vals, beta_rows, beta_vals, cmat, v):
        nonlocal col
        cols_r.extend([alpha_rows, beta_rows])
        cols_c.extend([np.full(len(alpha_rows), col), np.full(len(beta_rows), col + 1)])
        cols_v.extend([alpha_vals, beta_vals])
        c_list.append(cmat)
        var_list.append(v)
        col += 2

    empty_i, empty_f = np.zeros(0, dtype=int), np.zeros(0)
    if norm == 2:
        for j in range(dims[0]):
            add_atom(np.array([j]), np.array([1.0]), empty_i, empty_f, np.array([[1.0, 0.0], [0.0, 0.0]]), 0)
        j_index, a_coef = np.arange(dims[0]), 1.0
    else:
        add_atom(np.array([border]), np.array([1.0]), empty_i, empty_f, np.array([[2.0, 0.0], [0.0, 0.0]]), 0)
        for j in range(dims[0]):
            add_atom(np.array([j]), np.array([1.0]), np.array([border]), np.array([1.0]),
                     np.array([[1.0, 0.0], [0.0, -1.0]]), 1 + j)
        j_index, a_coef = np.array([border]), 2.0
    for k, qc in enumerate(qcs):
        w_prev = weights[k]
        s_prev, s_cur = starts[k], starts[k + 1]
        alpha = qc.vectors @ w_prev  # rows: (W_{k-1}ᵀ u)ᵀ
        for i in range(qc.vectors.shape[0]):
            u_i = qc.vectors[i]
            q11, q12, q22 = qc.coef[i]
            nz_a = np.flatnonzero(alpha[i])
            nz_b = np.flatnonzero(u_i)
            add_atom(s_prev + nz_a, alpha[i, nz_a], s_cur + nz_b, u_i[nz_b],
                     -np.array([[q11, q12], [q12, q22]]), offsets[k] + int(qc.var[i]))
    u = sp.csc_matrix(
        (np.concatenate(cols_v), (np.concatenate(cols_r), np.concatenate(cols_c))), shape=(n, col)
    )
    k0 = np.zeros((n, n))
    last = slice(starts[-2], starts[-1]) if acts else slice(0, dims[0])
    if norm == 2:
        k0[last, last] -= w_last.T @ w_last
    else:
        k0[last, border] = w_last[0]
        k0[border, last] = w_last[0]
    return ChainSDP(
        n, list(starts), k0, u, np.array(c_list), np.array(var_list, dtype=int), nonneg, j_index, a_coef,
        norm, qcs, offsets, weights, w_last, reduced_from,
    )


def _initial_point(sdp: ChainSDP) -> np.ndarray:
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
            wn = np.linalg.norm(sdp.weights[k + 1], 2) ** 2 if k + 1 < l else 1.0
            thetas[k] = kappa * theta_next * max(wn, 1e-12)
            theta_next = thetas[k]
        for k, qc in enumerate(sdp.qcs):
            lo = sdp.var_offsets[k]
            y[lo : lo + qc.n_vars] = np.where(qc.nonneg, thetas[k], 0.0)
        if sdp.norm == "inf":
            w0n = np.linalg.norm(sdp.weights[0], 2) ** 2 if l else 1.0
            y[1 : 1 + sdp.weights[0].shape[1]] = kappa * (thetas[0] if l else 1.0) * max(w0n, 1e-12)
        cert = sdp.certify(y)
        if np.isfinite(cert.rho_schur):
            y[0] = 1.5 * max(cert.rho, 0.0) + 1e-6 * max(abs(cert.rho), 1.0) + 1e-9
            try:
                np.linalg.cholesky(sdp.matrix(y))
                return y
            except np.linalg.LinAlgError:
                continue
    raise SolverError("could not find a strictly feasible starting point for the LipSDP interior-point method")


def _fast_start(sdp: ChainSDP) -> np.ndarray | None:
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
    from verification.lipschitz._chain_ipm import BlockTridiagonalLMI
    from verification.lipschitz.eclipse import chain_multipliers, eclipse_chain

    beta = float(slopes[0][1])  # q12 = (alpha + beta) = beta, q22 = -2  ->  m = beta / 2
    with np.errstate(all="ignore"):
        try:
            raw, ls, _ = eclipse_chain(sdp.weights, beta / 2, True)
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


def _layer_scaled_start(sdp: ChainSDP, y_fast: np.ndarray, max_iter: int = 25) -> np.ndarray | None:
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
    from scipy.optimize import minimize

    from verification.lipschitz._chain_ipm import BlockTridiagonalLMI

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


def _chain_start(sdp: ChainSDP) -> np.ndarray:
    """Strictly feasible start for the interior-point method: :func:`_fast_start` (close to the optimum,
    computed layer by layer so it does not overflow on deep nets), for deep nets improved by
    :func:`_layer_scaled_start`, else :func:`_initial_point`."""
    y = _fast_start(sdp)
    if y is not None:
        better = _layer_scaled_start(sdp, y) if len(sdp.qcs) >= LAYER_SCALE_MIN_LAYERS else None
        return y if better is None else better
    with np.errstate(all="ignore"):
        try:
            y = _initial_point(sdp)
            if np.all(np.isfinite(y)):
                return y
        except (SolverError, np.linalg.LinAlgError, ValueError, FloatingPointError):
            pass
    raise SolverError("no strictly feasible starting point found for the interior-point method")


def _cvxpy_solvers() -> list[str]:
    import cvxpy as cp

    return list(cp.installed_solvers())


def mosek_available() -> bool:
    """True if MOSEK is installed in cvxpy and a licence works."""
    if "MOSEK" not in _cvxpy_solvers():
        return False
    try:  # pragma: no cover - no licence here
        import cvxpy as cp

        x = cp.Variable()
        cp.Problem(cp.Minimize(x), [x >= 1]).solve(solver="MOSEK")
        return True
    except Exception:  # noqa: BLE001
        return False


def _solve_cvxpy_problem(prob, solver: str, **kwargs) -> str:
    """Solve a cvxpy problem; map every failure to a SolverError.  Returns the solver name."""
    import cvxpy as cp

    solver = solver.upper()
    if solver not in _cvxpy_solvers():
        raise InvalidParameterError(f"solver {solver} is not installed (installed: {', '.join(_cvxpy_solvers())})")
    opts = dict(kwargs)
    if solver == "SCS":
        opts.setdefault("eps", 1e-6)
        opts.setdefault("max_iters", 20000)
    try:
        prob.solve(solver=solver, **opts)
    except (cp.error.SolverError, ArithmeticError, ValueError, MemoryError) as exc:
        raise SolverError(f"{solver} failed on the LipSDP problem: {type(exc).__name__}: {exc}".strip()) from None
    if prob.status not in ("optimal", "optimal_inaccurate"):
        raise SolverError(f"{solver} returned status {prob.status!r}; no bound")
    return solver


def _solve_cvxpy(sdp: ChainSDP, solver: str, **kwargs) -> tuple[np.ndarray, str, str]:
    """Block-wise cvxpy model of ``sdp``; returns (multipliers y, solver, status)."""
    import cvxpy as cp

    nvar = sdp.nonneg.shape[0]
    y = cp.Variable(nvar)
    cons = [y[np.flatnonzero(sdp.nonneg)] >= 0]
    n, st = sdp.n, sdp.blocks
    nb = len(st) - 1
    blocks = [[None] * (nb + (1 if sdp.norm == "inf" else 0)) for _ in range(nb + (1 if sdp.norm == "inf" else 0))]
    sizes = [st[i + 1] - st[i] for i in range(nb)] + ([1] if sdp.norm == "inf" else [])

    def add(i, j, expr):
        blocks[i][j] = expr if blocks[i][j] is None else blocks[i][j] + expr

    k0 = sdp.k0
    for i in range(len(sizes)):
        for j in range(len(sizes)):
            oi = st[i] if i < nb else n - 1
            oj = st[j] if j < nb else n - 1
            sub = k0[oi : oi + sizes[i], oj : oj + sizes[j]]
            if np.any(sub):
                add(i, j, sub)
    if sdp.norm == 2:
        add(0, 0, y[0] * np.eye(sizes[0]))
    else:
        tau = y[1 : 1 + sizes[0]]
        add(0, 0, cp.diag(tau))
        add(nb, nb, cp.reshape(2 * y[0] - cp.sum(tau), (1, 1), order="C"))
    for k, qc in enumerate(sdp.qcs):
        w = sdp.weights[k]
        ya = y[sdp.var_offsets[k] + qc.var]
        q = [cp.multiply(qc.coef[:, c], ya) for c in range(3)]
        if qc.unit:  # diagonal multipliers: W^T diag(q) written as a broadcast product
            d22 = cp.diag(q[2])
            wt = w.T
            if np.any(qc.coef[:, 0]):
                add(k, k, -(wt @ cp.diag(q[0]) @ w))
            off = -cp.multiply(wt, cp.reshape(q[1], (1, w.shape[0]), order="C")) if np.any(qc.coef[:, 1]) else None
        else:
            uu = qc.vectors
            mats = [uu.T @ cp.diag(v) @ uu for v in q]
            if np.any(qc.coef[:, 0]):
                add(k, k, -(w.T @ mats[0] @ w))
            off = -(w.T @ mats[1]) if np.any(qc.coef[:, 1]) else None
            d22 = mats[2]
        if off is not None:
            add(k, k + 1, off)
            add(k + 1, k, off.T)
        add(k + 1, k + 1, -d22)
    rows = []
    for i in range(len(sizes)):
        row = []
        for j in range(len(sizes)):
            row.append(blocks[i][j] if blocks[i][j] is not None else np.zeros((sizes[i], sizes[j])))
        rows.append(row)
    kmat = cp.bmat(rows)
    cons.append((kmat + kmat.T) / 2 >> 0)
    prob = cp.Problem(cp.Minimize(y[0]), cons)
    used = _solve_cvxpy_problem(prob, solver, **kwargs)
    if y.value is None:
        raise SolverError(f"{used} returned no multipliers (status {prob.status!r})")
    return np.asarray(y.value, dtype=np.float64), used, prob.status


def _solve_chain_ipm(sdp: ChainSDP, info: dict, progress: bool, label: str, **options) -> tuple[np.ndarray, str]:
    """The structured primal-dual interior-point method (:mod:`verification.lipschitz._chain_pd`) from the scaled
    ECLipsE-Fast point (or :func:`_initial_point`).  Options: ``rel_gap``, ``max_iter``, ``time_limit``."""
    from verification.lipschitz._chain_pd import chain_pd_solve

    unknown = set(options) - {"rel_gap", "max_iter", "time_limit"}
    if unknown:
        raise InvalidParameterError(f"unknown option(s) for solver 'ipm': {sorted(unknown)}")
    if progress:
        print(f"[{label}] block-tridiagonal primal-dual method, LMI {sdp.n}, {sdp.nonneg.shape[0]} multipliers",
              file=sys.stderr, flush=True)
    y, ipm_info = chain_pd_solve(sdp, _chain_start(sdp), progress=progress, label=label, **options)
    info.update({f"ipm_{k}": v for k, v in ipm_info.items()})
    return y, "optimal" if ipm_info["status"] == "converged" else ipm_info["status"]


def solve_chain_sdp(
    sdp: ChainSDP, solver: str = "auto", progress: bool = False, label: str = "lipsdp", **solver_options
) -> tuple[float, Certificate, dict]:
    """Solve and certify; returns ``(certificate, solver used, info)``."""
    if solver not in SOLVERS and solver.upper() not in SOLVERS:
        raise InvalidParameterError(f"The 'solver' parameter must be one of {list(SOLVERS)}. Got {solver!r} instead.")
    info: dict = {"lmi_size": sdp.n, "n_multipliers": int(sdp.nonneg.shape[0]), "input_dim": sdp.reduced_from}
    chosen = solver
    if solver == "auto":
        # one big LMI: a Schur-complement interior-point solver (MOSEK if licensed, else CVXOPT); Clarabel
        # (dense KKT block per cone) only for small LMIs; SCS never by default.
        # the rank-2 KKT solver pays off with many multipliers (neuron form); few multipliers: plain CVXOPT
        many = sdp.nonneg.shape[0] >= 40
        if mosek_available():
            chosen = "MOSEK"
        elif sdp.norm == 2 and sdp.qcs and (sdp.n >= 200 or len(sdp.qcs) >= 4):
            chosen = "ipm"  # block-tridiagonal interior-point methods: cost linear in depth per iteration
        else:
            chosen = "cvxopt-lowrank" if many else "CVXOPT"
    t0 = time.perf_counter()
    if chosen == "ipm":
        try:
            if sdp.norm != 2 or not sdp.qcs:
                raise SolverError("the block-tridiagonal interior-point method handles l2 LMIs with hidden layers")
            y, status = _solve_chain_ipm(sdp, info, progress, label, **solver_options)
            if status != "optimal" and solver == "auto" and sdp.n <= 600:
                # not converged: its iterate is feasible (it would certify a looser bound); use CVXOPT instead
                raise SolverError(f"the interior-point method stopped: {status}")
        except SolverError as exc:
            if solver != "auto":
                raise
            info["ipm_error"] = str(exc)
            chosen = "cvxopt-lowrank" if sdp.nonneg.shape[0] >= 40 else "CVXOPT"
    if chosen == "cvxopt-lowrank":
        from verification.lipschitz._ipm import cvxopt_lowrank_solve

        if progress:
            print(f"[{label}] CVXOPT with the low-rank KKT solver, LMI {sdp.n}, {sdp.nonneg.shape[0]} multipliers",
                  file=sys.stderr, flush=True)
        try:
            y, lr_info = cvxopt_lowrank_solve(sdp.k0, sdp.u, sdp.c_atoms, sdp.var, sdp.nonneg, progress=progress,
                                              **solver_options)
            info.update({f"cvxopt_{k}": v for k, v in lr_info.items()})
            status = lr_info["status"]
        except SolverError as exc:
            if solver != "auto":
                raise
            info["lowrank_error"] = str(exc)
            chosen = "CVXOPT"
    if chosen not in ("ipm", "cvxopt-lowrank"):
        if progress:
            print(f"[{label}] solving an LMI of size {sdp.n} with {sdp.nonneg.shape[0]} multipliers using {chosen} ...",
                  file=sys.stderr, flush=True)
        try:
            y, chosen, status = _solve_cvxpy(sdp, chosen, **solver_options)
        except SolverError as exc:
            if solver != "auto":
                raise
            info["first_solver_error"] = str(exc)
            fallback = "CLARABEL" if sdp.n <= 150 else "SCS"
            y, chosen, status = _solve_cvxpy(sdp, fallback, **solver_options)
    info["solver_seconds"] = time.perf_counter() - t0
    if progress:
        print(f"[{label}] {chosen} finished in {info['solver_seconds']:.1f} s; certifying in float64 ...",
              file=sys.stderr, flush=True)
    info["solver_status"] = status
    info["solver_rho"] = float(y[0])
    cert = sdp.certify(y)
    info["multipliers"] = y[1:]
    return cert, chosen, info


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
            details={**worst.details, "per_output": [r.value for r in results]},
        )
    sdp = build_chain_sdp(net, norm, c, form)
    cert, used, info = solve_chain_sdp(sdp, solver, progress=progress, label=method, **kw)
    return _result(sdp, cert, used, info, method)


def _sdp_size(net: Network) -> int:
    w = net.weights
    n0 = w[0].shape[1]
    if len(w) > 1:
        n0 = min(n0, w[0].shape[0])
    return n0 + sum(x.shape[0] for x in w[:-1])


def _sdp_applicable(max_n: int, max_n_inf: int | None = None):
    """``auto`` applicability: the LMI has at most ``max_n`` rows (``max_n_inf`` for l-inf, default ``max_n``)."""

    def ok(net: Network, norm, has_output: bool) -> bool:
        try:
            for k, act in enumerate(net.activations):
                layer_qc(act, net.weights[k].shape[0])
        except Exception:  # noqa: BLE001
            return False
        n = _sdp_size(net) + (net.weights[0].shape[1] if norm == "inf" else 0)
        reps = 1 if (norm == 2 or has_output) else net.out_dim  # l-inf without output: one SDP per row
        cap = max_n if norm == 2 or max_n_inf is None else max_n_inf
        return n <= cap and n * reps <= 4 * cap

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
