"""Structured linear algebra for the l2 LipSDP LMI, whose sparsity is chordal (block tridiagonal).

For a chain network every atom of the l2 LMI (:class:`verification.lipschitz.sdp.chain.ChainSDP`) touches two
consecutive blocks of the stack ``ξ = [Δx⁰; Δx¹; ...]``, so ``K(y) = K0 + Σ_a y_var(a) U_a C_a U_aᵀ`` is block
tridiagonal: its sparsity graph is chordal with cliques "two consecutive layers" (the structure Chordal-LipSDP
and the layerwise GLipSDP of Pauli et al. decompose explicitly).  :class:`BlockTridiagonalLMI` keeps ``K`` as its
blocks (:class:`~verification.lipschitz.sdp.chain.ChainBlocks`) and provides what the interior-point method of
:mod:`verification.lipschitz.sdp.backends.chain_pd` and its starting points need:

* ``log det K`` and strict feasibility by a block Cholesky factorisation (``O(Σ s_k³)``, no fill-in; the
  certificate's :func:`~verification.lipschitz.sdp.certificate.block_cholesky`);
* the minimal ``ρ`` at given multipliers and its gradient (starting points);
* dense ``K⁻¹`` from the block-tridiagonal inversion recursion ``Z_kk = G_k + F_k Z_{k+1,k+1} F_kᵀ``,
  ``Z_{k,j} = -F_k Z_{k+1,j}`` (``G_k`` = inverse of the k-th forward Schur complement, ``F_k = G_k E_k``),
  ``O(n² s)`` flops instead of ``O(n³)``;
* the projections of a dense matrix on the atoms (per-layer products: ``αᵀM`` and ``αᵀMα`` when every second
  atom vector is a scaled unit vector, as for slope QCs, else all four ``uᵀMv``), the adjoint map
  ``A(M) = (tr C_a M)_a`` and the Schur complement ``H_ab = tr(C_a X C_b Z)`` (numba kernels)."""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from verification.lipschitz.sdp._newton_kernels import lmi_newton_matrix, schur_selected
from verification.lipschitz.sdp.certificate import backward_elimination, block_cholesky
from verification.lipschitz.sdp.chain import ChainBlocks

__all__ = ["BlockTridiagonalLMI"]


class BlockTridiagonalLMI(ChainBlocks):
    """:class:`~verification.lipschitz.sdp.chain.ChainBlocks` with what the interior-point method needs: rescaling,
    block Cholesky, ``K⁻¹``, the minimal ``ρ`` with its gradient, atom projections and the Schur complement."""

    def __init__(self, sdp, dscale: np.ndarray | None = None, vscale: np.ndarray | None = None):
        super().__init__(sdp, dscale, vscale)
        var_all = np.concatenate([g.var for g in self.groups])
        self._one_to_one = None
        self._few_shared = None
        self._selected = None
        self._rho_diag = None
        self.membership = sp.csr_matrix(
            (np.ones(var_all.size), (np.arange(var_all.size), var_all)), shape=(var_all.size, self.m)
        )

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
