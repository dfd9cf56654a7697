"""The chain LMI of LipSDP: the SDP model every SDP Lipschitz method builds, solves and certifies.

:func:`build_chain_sdp` turns a canonical network (its affine layers through ``as_matrix()``, its activations
through their quadratic constraints, :mod:`verification.lipschitz.sdp.quadratic_constraints`) into a
:class:`ChainSDP`: ``K(y) = K0 + Σ_a y_var(a) U_a C_a U_aᵀ ⪰ 0`` with rank-2 atoms, ``y[0] = ρ``.

**l2** (Fazlyab et al. eq. (10), block form).  Stack ``ξ = [Δx⁰; Δx¹; ...; Δxˡ]``; every activation layer ``k``
contributes ``[W_{k-1}Δx^{k-1}; Δx^k]ᵀ Q_k [..] >= 0``.  With ``K = -M``:

    K(ρ, y) = ρ·E_in − CᵀC − Σ_k [A_k; B_k]ᵀ Q_k(y) [A_k; B_k] ⪰ 0,    bound = sqrt(ρ*)

(``C = W_l`` or ``cᵀW_l`` for a scalar output).  When ``n_0 > rank(W_0)`` the input block is reduced exactly
to the row space of ``W_0`` (thin SVD; the rest of the input block is ``ρ I ⪰ 0``).

**l-inf, scalar output** ``cᵀf`` (Wang et al. 2022 / Pauli et al. 2024): extra ``τ ∈ R^{n_0}_{>=0}`` and a
border coordinate ``s``:

    [[diag(τ), 0, wᵀ-border], ..., [w, 2ρ − Στ]] − Σ_k QC_k ⪰ 0,   bound = ρ   (no square root)

with ``w = cᵀW_l`` on the last hidden block; then ``|cᵀ(f(x)-f(y))| <= ρ ||x-y||_∞``.

:meth:`ChainSDP.certify` rebuilds ``K(y)`` in float64 from a solver's multipliers (dense, or as blocks by
:class:`ChainBlocks` for large l2 LMIs) and hands it to :mod:`verification.lipschitz.sdp.certificate`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from verification.errors import SolverError
from verification.lipschitz.sdp.certificate import Certificate, certify_block_tridiagonal, certify_psd
from verification.lipschitz.sdp.quadratic_constraints import layer_qc
from verification.network import Network

__all__ = ["ChainSDP", "ChainBlocks", "build_chain_sdp", "STRUCTURED_CERTIFY_MIN_N"]

STRUCTURED_CERTIFY_MIN_N = 600  # above this, l2 chain LMIs are certified by block Cholesky (O(Σ s³))
DENSE_ASSEMBLY_MAX_N = 256  # up to this, K(y) is assembled with dense products


@dataclass
class ChainSDP:
    """The LMI ``K(y) = K0 + Σ_a y_var(a) U_a C_a U_aᵀ ⪰ 0`` of a chain network; ``y[0] = ρ``.

    ``blocks``: start offsets of the stack blocks (input, hidden layers, [border]); ``qcs``: per activation
    layer QC; ``var_offsets``: first multiplier index of each layer; ``j_index``/``a``: ρ enters as
    ``a·ρ·E_J``; ``norm``: 2 or "inf"; ``matrices``: the (input-reduced) weight matrices used."""

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
    matrices: list
    out: np.ndarray
    reduced_from: int

    def matrix(self, y: np.ndarray) -> np.ndarray:
        """Dense ``K(y)`` in float64."""
        y = np.asarray(y, dtype=np.float64)
        coef = self.c_atoms * y[self.var][:, None, None]
        if self.n <= DENSE_ASSEMBLY_MAX_N:  # small LMIs: dense products beat the scipy.sparse overhead
            if getattr(self, "_u_dense", None) is None:
                ud = self.u.toarray()
                self._u_dense = (ud[:, 0::2], ud[:, 1::2])
            ua, ub = self._u_dense
            k = self.k0 + (ua * coef[:, 0, 0] + ub * coef[:, 1, 0]) @ ua.T + (ua * coef[:, 0, 1] + ub * coef[:, 1, 1]) @ ub.T
            return (k + k.T) / 2
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
            yy = np.array(y, dtype=np.float64)
            yy[0] = 0.0
            if getattr(self, "_lmi", None) is None:
                self._lmi = ChainBlocks(self)
            dd, ee = self._lmi.blocks(yy)
            return replace(certify_block_tridiagonal(dd, ee, self.a, rho_hint=rho_hint), multipliers=yy)
        return replace(certify_psd(self.matrix(y), self.j_index, self.a, rho_hint=rho_hint),
                       multipliers=np.array(y, dtype=np.float64))

    def bound(self, rho: float) -> float:
        return float(np.sqrt(max(rho, 0.0))) if self.norm == 2 else float(rho)


def _drop_constant_neurons(mats: list[np.ndarray], acts: list) -> list[np.ndarray]:
    """Remove the neurons of elementwise activation layers whose incoming row is zero (and the matching
    columns of the next matrix): their output is the constant ``phi(b)``, so the Lipschitz constant is
    unchanged, and the LMI has no atom without its pre-activation vector.  (Networks compiled from graphs
    have such rows, e.g. ``max(a, a)`` in a padded pooling window.)  A layer with no other neuron keeps one."""
    mats = list(mats)
    for k, act in enumerate(acts):
        if not act.elementwise:
            continue
        live = np.any(mats[k] != 0, axis=1)
        if live.all():
            continue
        if not live.any():
            live[0] = True
        mats[k], mats[k + 1] = mats[k][live], mats[k + 1][:, live]
    return mats


def build_chain_sdp(net: Network, norm: int | str, c: np.ndarray | None, form: str) -> ChainSDP:
    """Build the LMI of ``net`` (canonical) for ``norm`` and scalar output ``c`` (required for l-inf)."""
    layers, acts = net.affine_layers, list(net.activations)
    mats = [np.asarray(layer.as_matrix(), dtype=np.float64) for layer in layers]
    w_last = mats[-1] if c is None else np.asarray(layers[-1].select(c[None, :]).as_matrix(), dtype=np.float64)
    if acts:
        mats[-1] = w_last
        mats = _drop_constant_neurons(mats, acts)
        w_last = mats[-1]
    n_in = mats[0].shape[1]
    reduced_from = n_in
    if norm == 2 and acts and mats[0].shape[0] < n_in:
        # exact input reduction to the row space of W_0
        _, s, vt = np.linalg.svd(mats[0], full_matrices=False)
        r = int(np.sum(s > s[0] * 1e-13)) if s.size and s[0] > 0 else 1
        mats[0] = mats[0] @ vt[:r].T
    if not acts:
        mats = [w_last]
    else:
        mats[-1] = w_last
    dims = [mats[0].shape[1]] + [w.shape[0] for w in mats[:-1]]
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
    # sparse columns of U as (row, col, value) triples, one batch per group of atoms: atom ``i`` of a batch owns
    # columns 2i (its alpha vector) and 2i+1 (its beta vector)
    cols_r, cols_c, cols_v = [], [], []
    c_list, var_list = [], []
    col = 0

    def add_atoms(alpha_rows, alpha, beta_rows, beta, cmats, v):
        """Atoms ``i``: alpha vector ``alpha[i]`` on rows ``alpha_rows``, beta ``beta[i]`` on ``beta_rows`` (or
        none), coefficient ``cmats[i]`` (2x2), multiplier ``v[i]``."""
        nonlocal col
        for rows, vals, shift in ((alpha_rows, alpha, 0), (beta_rows, beta, 1)):
            if vals is None:
                continue
            i, j = np.nonzero(vals)
            cols_r.append(rows[j])
            cols_c.append(col + 2 * i + shift)
            cols_v.append(vals[i, j])
        c_list.append(cmats)
        var_list.append(np.asarray(v, dtype=int))
        col += 2 * len(v)

    if norm == 2:
        add_atoms(np.arange(dims[0]), np.eye(dims[0]), None, None,
                  np.tile([[1.0, 0.0], [0.0, 0.0]], (dims[0], 1, 1)), np.zeros(dims[0], dtype=int))
        j_index, a_coef = np.arange(dims[0]), 1.0
    else:
        add_atoms(np.array([border]), np.ones((1, 1)), None, None, np.array([[[2.0, 0.0], [0.0, 0.0]]]), [0])
        add_atoms(np.arange(dims[0]), np.eye(dims[0]), np.array([border]), np.ones((dims[0], 1)),
                  np.tile([[1.0, 0.0], [0.0, -1.0]], (dims[0], 1, 1)), 1 + np.arange(dims[0]))
        j_index, a_coef = np.array([border]), 2.0
    for k, qc in enumerate(qcs):
        s_prev, s_cur = starts[k], starts[k + 1]
        alpha = qc.vectors @ mats[k]  # rows: (W_{k-1}ᵀ u)ᵀ
        q11, q12, q22 = qc.coef[:, 0], qc.coef[:, 1], qc.coef[:, 2]
        cm = -np.stack([np.stack([q11, q12], axis=-1), np.stack([q12, q22], axis=-1)], axis=-2)
        add_atoms(s_prev + np.arange(alpha.shape[1]), alpha, s_cur + np.arange(qc.vectors.shape[1]), qc.vectors,
                  cm, offsets[k] + qc.var.astype(int))
    u = sp.csc_matrix(
        (np.concatenate(cols_v), (np.concatenate(cols_r), np.concatenate(cols_c))), shape=(n, col)
    )
    c_atoms, var_arr = np.concatenate(c_list), np.concatenate(var_list)
    k0 = np.zeros((n, n))
    last = slice(starts[-2], starts[-1]) if acts else slice(0, dims[0])
    if norm == 2:
        k0[last, last] -= w_last.T @ w_last
    else:
        k0[last, border] = w_last[0]
        k0[border, last] = w_last[0]
    sdp = ChainSDP(
        n, list(starts), k0, u, c_atoms, var_arr, nonneg, j_index, a_coef, norm, qcs, offsets, mats, w_last,
        reduced_from,
    )
    sdp._k0_rows = (last.start, last.stop) if norm == 2 else None  # K0 is zero outside this diagonal block
    return sdp


@dataclass
class _Group:
    """Atoms acting on blocks ``k`` (vectors ``alpha``) and ``k+1`` (vectors ``beta``, or none)."""

    k: int
    alpha: np.ndarray  # (a, s_k)
    beta: np.ndarray | None  # (a, s_{k+1})
    c: np.ndarray  # (a, 2, 2) coefficient per unit of its multiplier (already variable-scaled)
    var: np.ndarray  # (a,)
    offset: int  # first atom index of the group in the global atom order


class ChainBlocks:
    """``K(y)`` of an l2 :class:`ChainSDP` held as diagonal blocks ``D_k`` and super-diagonal blocks ``E_k``.

    ``dscale`` (per row of K) is a congruence scaling ``K -> diag(d) K diag(d)`` applied to every atom and to
    ``K0``; ``vscale`` rescales the variables ``y = vscale * z``.  Neither changes Newton iterates in exact
    arithmetic; both keep the blocks of deep nets (multipliers growing geometrically with depth) in range.
    The certificate of large l2 LMIs uses it unscaled; the solvers extend it
    (:class:`verification.lipschitz.sdp.block_tridiagonal.BlockTridiagonalLMI`)."""

    def __init__(self, sdp: ChainSDP, dscale: np.ndarray | None = None, vscale: np.ndarray | None = None):
        st = [int(s) for s in sdp.blocks]
        if sdp.norm != 2:
            raise SolverError("the block-tridiagonal form exists for the l2 LMI only")
        self.starts = st
        self.nb = len(st) - 1
        self.sizes = [st[i + 1] - st[i] for i in range(self.nb)]
        self.n = st[-1]
        if self.nb < 2:
            raise SolverError("the block-tridiagonal form needs at least one hidden layer")
        m = sdp.nonneg.shape[0]
        d = np.ones(self.n) if dscale is None else np.asarray(dscale, dtype=np.float64)
        vs = np.ones(m) if vscale is None else np.asarray(vscale, dtype=np.float64)
        self.dscale, self.vscale, self.m = d, vs, m
        self.nonneg = np.asarray(sdp.nonneg, dtype=bool)
        k0 = sdp.k0
        self.d0 = []
        self.e0 = []
        for b in range(self.nb):
            sl = slice(st[b], st[b + 1])
            self.d0.append(d[sl, None] * k0[sl, sl] * d[None, sl])
            if b + 1 < self.nb:
                sl2 = slice(st[b + 1], st[b + 2])
                self.e0.append(d[sl, None] * k0[sl, sl2] * d[None, sl2])
        rows = getattr(sdp, "_k0_rows", None)  # set by build_chain_sdp: K0 is zero outside one diagonal block
        inside = rows is not None and any(st[b] <= rows[0] and rows[1] <= st[b + 1] for b in range(self.nb))
        if not inside and any(np.any(k0[st[b] : st[b + 1], st[b + 2] :]) or np.any(k0[st[b + 2] :, st[b] : st[b + 1]])
                              for b in range(self.nb - 1)):
            raise SolverError("the constant part of the LMI is not block tridiagonal")
        self.groups: list[_Group] = []
        self._split_atoms(sdp, d, vs)
        self.n_atoms = sum(g.var.size for g in self.groups)

    def _split_atoms(self, sdp, d, vs) -> None:
        """Group the atoms of ``sdp`` by the pair of blocks they touch (one group for ρ, one per QC layer)."""
        u = sp.csc_matrix(sdp.u)
        st = np.asarray(self.starts)
        a_tot = sdp.var.size
        ca = np.asarray(sdp.c_atoms, dtype=np.float64) * vs[sdp.var][:, None, None]
        block_of = np.searchsorted(st, np.arange(self.n), side="right") - 1
        # block of each atom = block of its alpha column (first column); beta column must be in the next block
        nnz = np.diff(u.indptr)
        blk = block_of[u.indices]
        lo, hi = np.full(2 * a_tot, -1), np.full(2 * a_tot, -1)
        has = nnz > 0
        if blk.size:
            lo[has] = np.minimum.reduceat(blk, u.indptr[:-1][has])
            hi[has] = np.maximum.reduceat(blk, u.indptr[:-1][has])
        a_lo, a_hi, b_lo, b_hi = lo[0::2], hi[0::2], lo[1::2], hi[1::2]
        a_has, b_has = has[0::2], has[1::2]
        if np.any(a_has & (a_lo != a_hi)):
            raise SolverError("an LMI atom spans several blocks; not a chain LMI")
        if np.any(a_has & b_has & ((b_lo != a_lo + 1) | (b_hi != a_lo + 1))):
            raise SolverError("an LMI atom couples non-adjacent blocks; not a chain LMI")
        if np.any(~a_has & b_has):
            raise SolverError("an LMI atom without its first vector; not a chain LMI")
        atom_block = np.where(a_has, a_lo, -1)
        offset = 0
        for k in np.unique(atom_block[atom_block >= 0]):
            idx = np.flatnonzero(atom_block == k)
            sk = slice(st[k], st[k + 1])
            alpha = (u[:, 2 * idx][sk].toarray().T) * d[sk][None, :]
            beta = None
            if k + 1 < self.nb:
                sk1 = slice(st[k + 1], st[k + 2])
                bet = u[:, 2 * idx + 1][sk1].toarray().T * d[sk1][None, :]
                beta = bet if np.any(bet) else None
            c = ca[idx].copy()
            if beta is None:
                c[:, 0, 1] = c[:, 1, 0] = c[:, 1, 1] = 0.0
            self.groups.append(_Group(int(k), np.ascontiguousarray(alpha), beta, c, sdp.var[idx].astype(int), offset))
            offset += idx.size

    def blocks(self, z: np.ndarray, constant: bool = True) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """``(D, E)`` of the scaled ``K`` at scaled variables ``z`` (without ``K0`` if not ``constant``)."""
        dd = [b.copy() if constant else np.zeros_like(b) for b in self.d0]
        ee = [b.copy() if constant else np.zeros_like(b) for b in self.e0]
        for g in self.groups:
            w = g.c * z[g.var][:, None, None]
            dd[g.k] += (g.alpha.T * w[:, 0, 0]) @ g.alpha
            if g.beta is not None:
                ee[g.k] += (g.alpha.T * w[:, 0, 1]) @ g.beta
                dd[g.k + 1] += (g.beta.T * w[:, 1, 1]) @ g.beta
        return dd, ee
