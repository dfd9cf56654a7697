"""Structured linear algebra for the l2 LipSDP LMI, whose sparsity is chordal (block tridiagonal).

For a chain network every atom of the l2 LMI (:class:`verification.lipschitz.lipsdp.ChainSDP`) touches two
consecutive blocks of the stack ``ξ = [Δx⁰; Δx¹; ...]``, so ``K(y) = K0 + Σ_a y_var(a) U_a C_a U_aᵀ`` is block
tridiagonal: its sparsity graph is chordal with cliques "two consecutive layers" (the structure Chordal-LipSDP
and the layerwise GLipSDP of Pauli et al. decompose explicitly).  :class:`BlockTridiagonalLMI` keeps ``K`` as its
blocks and provides what the interior-point method of :mod:`verification.lipschitz._chain_pd` needs:

* ``log det K`` and strict feasibility by a block Cholesky factorisation (``O(Σ s_k³)``, no fill-in);
* dense ``K⁻¹`` from the block-tridiagonal inversion recursion ``Z_kk = G_k + F_k Z_{k+1,k+1} F_kᵀ``,
  ``Z_{k,j} = -F_k Z_{k+1,j}`` (``G_k`` = inverse of the k-th forward Schur complement, ``F_k = G_k E_k``),
  ``O(n² s)`` flops instead of ``O(n³)``;
* the projections of a dense matrix on the atoms (per-layer products: ``αᵀM`` and ``αᵀMα`` when every second
  atom vector is a scaled unit vector, as for slope QCs, else all four ``uᵀMv``), the adjoint map
  ``A(M) = (tr C_a M)_a`` and the Schur complement ``H_ab = tr(C_a X C_b Z)`` (numba kernels)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from verification.errors import SolverError
from verification.lipschitz._kernels import lmi_newton_matrix, schur_selected

__all__ = ["BlockTridiagonalLMI", "backward_elimination", "block_cholesky"]


@dataclass
class _Group:
    """Atoms acting on blocks ``k`` (vectors ``alpha``) and ``k+1`` (vectors ``beta``, or none)."""

    k: int
    alpha: np.ndarray  # (a, s_k)
    beta: np.ndarray | None  # (a, s_{k+1})
    c: np.ndarray  # (a, 2, 2) coefficient per unit of its multiplier (already variable-scaled)
    var: np.ndarray  # (a,)
    offset: int  # first atom index of the group in the global atom order


class BlockTridiagonalLMI:
    """``K(y)`` of an l2 :class:`ChainSDP` held as diagonal blocks ``D_k`` and super-diagonal blocks ``E_k``.

    ``dscale`` (per row of K) is a congruence scaling ``K -> diag(d) K diag(d)`` applied to every atom and to
    ``K0``; ``vscale`` rescales the variables ``y = vscale * z``.  Neither changes Newton iterates in exact
    arithmetic; both keep the blocks of deep nets (multipliers growing geometrically with depth) in range."""

    def __init__(self, sdp, dscale: np.ndarray | None = None, vscale: np.ndarray | None = None):
        st = [int(s) for s in sdp.blocks]
        if sdp.norm != 2:
            raise SolverError("the block-tridiagonal interior-point method handles the l2 LMI only")
        self.starts = st
        self.nb = len(st) - 1
        self.sizes = [st[i + 1] - st[i] for i in range(self.nb)]
        self.n = st[-1]
        if self.nb < 2:
            raise SolverError("the block-tridiagonal interior-point method needs at least one hidden layer")
        m = sdp.nonneg.shape[0]
        d = np.ones(self.n) if dscale is None else np.asarray(dscale, dtype=np.float64)
        vs = np.ones(m) if vscale is None else np.asarray(vscale, dtype=np.float64)
        self.dscale, self.vscale, self.m = d, vs, m
        self.nonneg = np.asarray(sdp.nonneg, dtype=bool)
        k0 = sdp.k0
        self.d0 = []
        self.e0 = []
        covered = np.zeros_like(k0, dtype=bool)
        for b in range(self.nb):
            sl = slice(st[b], st[b + 1])
            self.d0.append(d[sl, None] * k0[sl, sl] * d[None, sl])
            covered[sl, sl] = True
            if b + 1 < self.nb:
                sl2 = slice(st[b + 1], st[b + 2])
                self.e0.append(d[sl, None] * k0[sl, sl2] * d[None, sl2])
                covered[sl, sl2] = covered[sl2, sl] = True
        if np.any(k0[~covered] != 0.0):
            raise SolverError("the constant part of the LMI is not block tridiagonal")
        self.groups: list[_Group] = []
        self._split_atoms(sdp, d, vs)
        self.n_atoms = sum(g.var.size for g in self.groups)
        var_all = np.concatenate([g.var for g in self.groups])
        self._one_to_one = None
        self._few_shared = None
        self._selected = None
        self._rho_diag = None
        self.membership = sp.csr_matrix(
            (np.ones(var_all.size), (np.arange(var_all.size), var_all)), shape=(var_all.size, m)
        )

    def _split_atoms(self, sdp, d, vs) -> None:
        """Group the atoms of ``sdp`` by the pair of blocks they touch (one group for ρ, one per QC layer)."""
        u = sp.csc_matrix(sdp.u)
        st = np.asarray(self.starts)
        a_tot = sdp.var.size
        ca = np.asarray(sdp.c_atoms, dtype=np.float64) * vs[sdp.var][:, None, None]
        block_of = np.searchsorted(st, np.arange(self.n), side="right") - 1
        # block of each atom = block of its alpha column (first column); beta column must be in the next block
        atom_block = np.full(a_tot, -1)
        for a in range(a_tot):
            ra = u.indices[u.indptr[2 * a] : u.indptr[2 * a + 1]]
            rb = u.indices[u.indptr[2 * a + 1] : u.indptr[2 * a + 2]]
            if ra.size:
                ba = np.unique(block_of[ra])
                if ba.size != 1:
                    raise SolverError("an LMI atom spans several blocks; not a chain LMI")
                atom_block[a] = ba[0]
                if rb.size and not np.all(block_of[rb] == ba[0] + 1):
                    raise SolverError("an LMI atom couples non-adjacent blocks; not a chain LMI")
            elif rb.size:
                raise SolverError("an LMI atom without its first vector; not a chain LMI")
        offset = 0
        for k in np.unique(atom_block[atom_block >= 0]):
            idx = np.flatnonzero(atom_block == k)
            sk = slice(st[k], st[k + 1])
            alpha = (u[:, 2 * idx].toarray()[sk].T) * d[sk][None, :]
            beta = None
            if k + 1 < self.nb:
                sk1 = slice(st[k + 1], st[k + 2])
                bet = u[:, 2 * idx + 1].toarray()[sk1].T * d[sk1][None, :]
                beta = bet if np.any(bet) else None
            c = ca[idx].copy()
            if beta is None:
                c[:, 0, 1] = c[:, 1, 0] = c[:, 1, 1] = 0.0
            self.groups.append(_Group(int(k), np.ascontiguousarray(alpha), beta, c, sdp.var[idx].astype(int), offset))
            offset += idx.size

    def _aggregate(self, h_atoms: np.ndarray) -> np.ndarray:
        """Sum the atom Hessian over the atoms of each variable (``Mᵀ H M``)."""
        var_all = np.concatenate([g.var for g in self.groups])
        if self._one_to_one is None:
            counts = np.bincount(var_all, minlength=self.m)
            self._one_to_one = bool(np.all(counts == 1))
            shared = np.flatnonzero(counts > 1)
            self._few_shared = shared if shared.size <= 4 else None
        if self._one_to_one:
            out = np.empty((self.m, self.m))
            out[np.ix_(var_all, var_all)] = h_atoms
            return out
        if self._few_shared is not None:
            # neuron form: every QC multiplier has one atom, only a few variables (rho) have many
            single = np.flatnonzero(~np.isin(var_all, self._few_shared))
            out = np.zeros((self.m, self.m))
            out[np.ix_(var_all[single], var_all[single])] = h_atoms[np.ix_(single, single)]
            agg = np.zeros((len(self._few_shared), self.m))
            for r, v in enumerate(self._few_shared):
                col = h_atoms[var_all == v].sum(axis=0)  # (A,)
                np.add.at(agg[r], var_all, col)
            for r, v in enumerate(self._few_shared):
                out[v] = agg[r]
                out[:, v] = agg[r]
            return out
        mm = self.membership.toarray()
        return mm.T @ h_atoms @ mm

    def rescale(self, dnew: np.ndarray, vnew: np.ndarray) -> None:
        """Switch to new scalings (row scaling ``dnew`` of K, variable scaling ``vnew``) in place."""
        dr = dnew / self.dscale
        vr = vnew / self.vscale
        st = self.starts
        for b in range(self.nb):
            sl = slice(st[b], st[b + 1])
            self.d0[b] = dr[sl, None] * self.d0[b] * dr[None, sl]
            if b + 1 < self.nb:
                sl2 = slice(st[b + 1], st[b + 2])
                self.e0[b] = dr[sl, None] * self.e0[b] * dr[None, sl2]
        for g in self.groups:
            g.alpha = g.alpha * dr[st[g.k] : st[g.k + 1]][None, :]
            if g.beta is not None:
                g.beta = g.beta * dr[st[g.k + 1] : st[g.k + 2]][None, :]
            g.c = g.c * vr[g.var][:, None, None]
        self._selected = None
        self._rho_diag = None
        self.dscale, self.vscale = np.asarray(dnew, dtype=np.float64), np.asarray(vnew, dtype=np.float64)

    # ---------------------------------------------------------------------------------------- assembly
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

    def min_rho(self, z: np.ndarray) -> tuple[float, np.ndarray | None]:
        """Smallest ``ρ`` (variable 0) with ``K ⪰ 0`` at the other variables of ``z``, and its gradient in them.

        Blocks ``1..`` are eliminated from the last one backwards (``T_k = D_k - E_k T_{k+1}⁻¹ E_kᵀ``, all must be
        positive definite, else ``(inf, None)``); then ``ρ_min = λ_max(-R^{-1/2} T_0 R^{-1/2})`` with ``R`` the
        (diagonal) coefficient of ``ρ`` in block 0.  The gradient is the envelope formula
        ``∂ρ_min/∂z_v = -wᵀ C_v w / wᵀ R w`` with ``w`` the null vector of ``K`` at ``ρ_min`` (back substitution)."""
        zz = np.array(z, dtype=np.float64)
        zz[0] = 0.0
        dd, ee = self.blocks(zz)
        if self._rho_diag is None:  # ρ's coefficient in block 0 (changes only with the scaling)
            e0 = np.zeros(self.m)
            e0[0] = 1.0
            self._rho_diag = np.diag(self.blocks(e0, constant=False)[0][0]).copy()
        r0 = self._rho_diag
        elim = backward_elimination(dd, ee)
        if elim is None or np.any(r0 <= 0):
            return float("inf"), None
        chol, s0 = elim
        ri = 1.0 / np.sqrt(r0)
        m = -(ri[:, None] * (dd[0] - s0) * ri[None, :])
        lam, vec = np.linalg.eigh((m + m.T) / 2)
        w = [ri * vec[:, -1]]
        for k in range(1, self.nb):  # w_k = -T_k⁻¹ E_{k-1}ᵀ w_{k-1}
            w.append(-sla.cho_solve((chol[k], True), ee[k - 1].T @ w[-1], check_finite=False))
        parts = []
        for g in self.groups:
            pa = g.alpha @ w[g.k]
            q = g.c[:, 0, 0] * pa * pa
            if g.beta is not None:
                pb = g.beta @ w[g.k + 1]
                q = q + (g.c[:, 0, 1] + g.c[:, 1, 0]) * pa * pb + g.c[:, 1, 1] * pb * pb
            parts.append(q)
        grad = -(self.membership.T @ np.concatenate(parts)) / float(w[0] @ (r0 * w[0]))
        return float(lam[-1]), grad

    def factor(self, z: np.ndarray):
        """Block Cholesky of ``K(z)``: returns ``(logdet, chol factors L_k, E blocks)`` or ``None`` if ``K(z)``
        is not positive definite."""
        dd, ee = self.blocks(z)
        fac = block_cholesky(dd, ee)
        return None if fac is None else (fac[0], fac[1], ee)

    def inverse(self, chols, ee, out: np.ndarray | None = None) -> np.ndarray:
        """Dense ``Z = K⁻¹`` from the block Cholesky factors (block-tridiagonal inversion recursion); ``out``: an
        ``n x n`` C-ordered array to fill (reused work arrays avoid the page faults of a fresh one)."""
        st, n, nb = self.starts, self.n, self.nb
        z = np.empty((n, n)) if out is None else out
        g = []
        for lk in chols:
            li = sla.solve_triangular(lk, np.eye(lk.shape[0]), lower=True, check_finite=False)
            g.append(li.T @ li)
        sl = [slice(st[k], st[k + 1]) for k in range(nb)]
        z[sl[-1], sl[-1]] = g[-1]
        for k in range(nb - 2, -1, -1):
            f = g[k] @ ee[k]  # F_k = G_k E_k
            rest = slice(st[k + 1], n)
            z[sl[k], rest] = -f @ z[sl[k + 1], rest]  # Z_{k, k+1:} = -F_k Z_{k+1, k+1:}
            z[rest, sl[k]] = z[sl[k], rest].T
            z[sl[k], sl[k]] = g[k] - z[sl[k], sl[k + 1]] @ f.T  # G_k + F_k Z_{k+1,k+1} F_kᵀ
        return z

    # ------------------------------------------------------------------------------- derivatives
    def _atom_selection(self):
        """``(bidx, bval)`` with ``β_a = bval[a]·e_{bidx[a]}`` (``-1``: no β) for every atom, or ``None`` if some β
        is not a scaled unit vector (then the general projections are used)."""
        if self._selected is None:
            st = self.starts
            bidx = np.full(self.n_atoms, -1, dtype=np.int64)
            bval = np.zeros(self.n_atoms)
            for g in self.groups:
                if g.beta is None:
                    continue
                nz = g.beta != 0.0
                cnt = nz.sum(axis=1)
                if np.any(cnt > 1):
                    self._selected = False
                    return None
                rows = np.flatnonzero(cnt == 1)
                col = np.argmax(nz[rows], axis=1)
                bidx[g.offset + rows] = st[g.k + 1] + col
                bval[g.offset + rows] = g.beta[rows, col]
            self._selected = (bidx, bval)
        return self._selected or None

    def projections(self, mat: np.ndarray, out: tuple[np.ndarray, np.ndarray] | None = None):
        """What :meth:`trace_products` and :meth:`schur` need of the dense symmetric ``mat``: ``T = αᵀ mat`` and
        ``αᵀ mat α`` (per-layer products) when every β is a scaled unit vector (slope QCs), else the four
        ``P_uv[a, b] = u_aᵀ mat v_b`` (u, v ∈ {α, β}).  ``out``: work arrays for ``T`` (atoms x n) and
        ``αᵀ mat α`` (atoms x atoms), used in the first case."""
        st = self.starts
        if self._atom_selection() is None:
            return self._projections_general(mat)
        n_a = self.n_atoms
        t, p = (np.empty((n_a, self.n)), np.empty((n_a, n_a))) if out is None else out
        for g in self.groups:
            np.matmul(g.alpha, mat[st[g.k] : st[g.k + 1]], out=t[g.offset : g.offset + g.var.size])
        for g in self.groups:  # αᵀ mat α is symmetric: row bands (contiguous writes)
            np.matmul(g.alpha, t[:, st[g.k] : st[g.k + 1]].T, out=p[g.offset : g.offset + g.var.size])
        return ("selected", t, p, mat)

    def _projections_general(self, mat: np.ndarray):
        st = self.starts
        n_a = self.n_atoms
        mua = np.empty((self.n, n_a))
        mub = np.zeros((self.n, n_a))
        for g in self.groups:
            cols = slice(g.offset, g.offset + g.var.size)
            mua[:, cols] = mat[:, st[g.k] : st[g.k + 1]] @ g.alpha.T
            if g.beta is not None:
                mub[:, cols] = mat[:, st[g.k + 1] : st[g.k + 2]] @ g.beta.T
        p_aa = np.empty((n_a, n_a))
        p_ab = np.zeros((n_a, n_a))
        p_bb = np.zeros((n_a, n_a))
        for g in self.groups:
            rows = slice(g.offset, g.offset + g.var.size)
            blk0 = slice(st[g.k], st[g.k + 1])
            p_aa[rows] = g.alpha @ mua[blk0]
            p_ab[rows] = g.alpha @ mub[blk0]
            if g.beta is not None:
                p_bb[rows] = g.beta @ mub[st[g.k + 1] : st[g.k + 2]]
        del mua, mub
        p_ba = np.ascontiguousarray(p_ab.T)  # mat is symmetric
        return ("general", p_aa, p_ab, p_ba, p_bb)

    def atom_coefficients(self) -> np.ndarray:
        return np.ascontiguousarray(np.concatenate([g.c for g in self.groups]))  # (A, 2, 2)

    def trace_products(self, proj) -> np.ndarray:
        """``tr(C_a M)`` summed per variable, from the projections of ``M`` (``A(M)``, the adjoint map)."""
        c = self.atom_coefficients()
        if proj[0] == "selected":
            _, t, p, mat = proj
            bidx, bval = self._atom_selection()
            has = bidx >= 0
            j = np.where(has, bidx, 0)
            d_ab = np.where(has, t[np.arange(self.n_atoms), j] * bval, 0.0)
            d_bb = np.where(has, mat[j, j] * bval * bval, 0.0)
            g_atoms = c[:, 0, 0] * np.diagonal(p) + (c[:, 0, 1] + c[:, 1, 0]) * d_ab + c[:, 1, 1] * d_bb
        else:
            _, p_aa, p_ab, p_ba, p_bb = proj
            g_atoms = (c[:, 0, 0] * np.diagonal(p_aa) + c[:, 0, 1] * np.diagonal(p_ba)
                       + c[:, 1, 0] * np.diagonal(p_ab) + c[:, 1, 1] * np.diagonal(p_bb))
        return self.membership.T @ g_atoms

    def trace_pattern(self, xd: list[np.ndarray], xe: list[np.ndarray]) -> np.ndarray:
        """``A(X) = (Σ_{a of v} tr(C_a X))_v`` for ``X`` given only on the block-tridiagonal pattern."""
        out = []
        for g in self.groups:  # row-wise quadratic forms uᵀ M v with one product each (einsum without BLAS was slow)
            t = g.c[:, 0, 0] * ((g.alpha @ xd[g.k]) * g.alpha).sum(axis=1)
            if g.beta is not None:
                cross = ((g.alpha @ xe[g.k]) * g.beta).sum(axis=1)
                t = t + (g.c[:, 0, 1] + g.c[:, 1, 0]) * cross
                t = t + g.c[:, 1, 1] * ((g.beta @ xd[g.k + 1]) * g.beta).sum(axis=1)
            out.append(t)
        return self.membership.T @ np.concatenate(out)

    def schur(self, proj_x, proj_z, lower: bool = False, out: np.ndarray | None = None) -> np.ndarray:
        """``H_vw = Σ tr(C_a X C_b Z)`` over the atoms of variables ``v, w`` (symmetric for symmetric X, Z).

        With ``lower`` only the lower triangle is guaranteed (what a Cholesky factorisation reads); ``out``: an
        ``m x m`` work array for that case."""
        c = self.atom_coefficients()
        if proj_x[0] == "selected" and proj_z[0] == "selected":
            bidx, bval = self._atom_selection()
            var_all = np.concatenate([g.var for g in self.groups])
            h = schur_selected(c, var_all, bidx, bval, self.m, proj_x[1], proj_x[2], proj_x[3],
                               proj_z[1], proj_z[2], proj_z[3], np.empty((self.m, self.m)) if out is None else out)
            if lower:
                return h
            return h + np.tril(h, -1).T
        px = proj_x[1:] if proj_x[0] == "general" else self._projections_general(proj_x[3])[1:]
        pz = proj_z[1:] if proj_z[0] == "general" else self._projections_general(proj_z[3])[1:]
        h = self._aggregate(lmi_newton_matrix(c, *px, *pz))
        return (h + h.T) / 2


def backward_elimination(dd: list[np.ndarray], ee: list[np.ndarray]):
    """Eliminate blocks ``1..`` of a symmetric block-tridiagonal matrix from the last one backwards:
    ``T_k = D_k - E_k T_{k+1}⁻¹ E_kᵀ``.  Returns ``(chols, s0)`` with ``chols[k]`` the Cholesky factor of ``T_k``
    (``chols[0] = None``) and ``s0 = E_0 T_1⁻¹ E_0ᵀ`` (block 0 is PSD-completed iff ``D_0 - s0 ⪰ 0``), or ``None`` if
    some ``T_k`` is not positive definite (the trailing part of the matrix is not)."""
    nb = len(dd)
    chols: list = [None] * nb
    t = dd[-1]
    for k in range(nb - 1, 0, -1):
        if k < nb - 1:
            v = sla.solve_triangular(chols[k + 1], ee[k].T, lower=True, check_finite=False)
            t = dd[k] - v.T @ v
        try:
            chols[k] = np.linalg.cholesky((t + t.T) / 2)
        except np.linalg.LinAlgError:
            return None
    if nb == 1:
        return chols, np.zeros_like(dd[0])
    v = sla.solve_triangular(chols[1], ee[0].T, lower=True, check_finite=False)
    return chols, v.T @ v


def block_cholesky(dd: list[np.ndarray], ee: list[np.ndarray]):
    """Block Cholesky of the symmetric block-tridiagonal matrix with diagonal blocks ``dd`` and super-diagonal
    blocks ``ee``: ``(logdet, [L_k])`` (diagonal blocks of the factor), or ``None`` if it is not positive
    definite."""
    chols = []
    logdet = 0.0
    for k in range(len(dd)):
        s = dd[k]
        if k > 0:
            v = sla.solve_triangular(chols[-1], ee[k - 1], lower=True, check_finite=False)
            s = s - v.T @ v
        try:
            lk = np.linalg.cholesky((s + s.T) / 2)
        except np.linalg.LinAlgError:
            return None
        dg = np.diag(lk)
        if not np.all(np.isfinite(dg)) or np.any(dg <= 0):
            return None
        logdet += 2.0 * float(np.log(dg).sum())
        chols.append(lk)
    return logdet, chols
