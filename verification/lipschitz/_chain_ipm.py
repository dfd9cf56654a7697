"""A barrier interior-point method that exploits the chordal (block-tridiagonal) sparsity of the l2 LipSDP LMI.

For a chain network every atom of the l2 LMI (:class:`verification.lipschitz.lipsdp.ChainSDP`) touches two
consecutive blocks of the stack ``ξ = [Δx⁰; Δx¹; ...]``, so ``K(y)`` is block tridiagonal: its sparsity graph is
chordal with cliques "two consecutive layers" (the structure Chordal-LipSDP and the layerwise GLipSDP of
Pauli et al. decompose explicitly).  We do not introduce decomposition variables; the solver works on the
original problem

    minimise  y₀ (= ρ)   s.t.  K(y) = K0 + Σ_a y_var(a) U_a C_a U_aᵀ ⪰ 0,   y_v >= 0 (nonnegative multipliers)

and uses the sparsity in the linear algebra, like dual-scaling SDP codes (DSDP, SMCP) do:

* ``log det K`` and strict feasibility come from a block Cholesky factorisation (``O(Σ s_k³)``, no fill-in);
* ``Z = K⁻¹`` (dense, but needed only through ``Uᵀ Z U``) comes from the block-tridiagonal inversion recursion
  ``Z_kk = G_k + F_k Z_{k+1,k+1} F_kᵀ``, ``Z_{k,j} = -F_k Z_{k+1,j}`` (``G_k`` = inverse of the k-th forward
  Schur complement, ``F_k = G_k E_k``), ``O(n² s)`` flops instead of ``O(n³)``;
* the Newton matrix ``H_ab = tr(C_a P_ab C_b P_ba)``, ``P = Uᵀ Z U``, is formed from per-layer products
  (``Z[:, block] @ αᵀ``), i.e. ``O(n · A · s)``, then factorised densely (``A³/3``).

Newton steps on ``t·y₀ - log det K(y) - Σ log y_v`` with a long-step, adaptive update of ``t`` (Boyd &
Vandenberghe §11.3); every iterate is strictly feasible, so the multipliers returned are usable at any time.
The answer is not trusted: :meth:`ChainSDP.certify` recomputes the certified ``ρ`` in float64.

l2 only (the l-inf LMI has a border row coupled to every block).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from verification.errors import SolverError
from verification.lipschitz._kernels import lmi_newton_matrix

__all__ = ["chain_barrier_solve", "BlockTridiagonalLMI"]

MU_MAX = 16.0
MAX_CENTERING_STEPS = 60


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
        self.dscale, self.vscale = np.asarray(dnew, dtype=np.float64), np.asarray(vnew, dtype=np.float64)

    # ---------------------------------------------------------------------------------------- assembly
    def blocks(self, z: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """``(D, E)`` of the scaled ``K`` at scaled variables ``z``."""
        dd = [b.copy() for b in self.d0]
        ee = [b.copy() for b in self.e0]
        for g in self.groups:
            w = g.c * z[g.var][:, None, None]
            dd[g.k] += (g.alpha.T * w[:, 0, 0]) @ g.alpha
            if g.beta is not None:
                ee[g.k] += (g.alpha.T * w[:, 0, 1]) @ g.beta
                dd[g.k + 1] += (g.beta.T * w[:, 1, 1]) @ g.beta
        return dd, ee

    def factor(self, z: np.ndarray):
        """Block Cholesky of ``K(z)``: returns ``(logdet, chol factors L_k, E blocks)`` or ``None`` if ``K(z)``
        is not positive definite."""
        dd, ee = self.blocks(z)
        chols = []
        logdet = 0.0
        for k in range(self.nb):
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
        return logdet, chols, ee

    def inverse(self, chols, ee) -> np.ndarray:
        """Dense ``Z = K⁻¹`` from the block Cholesky factors (block-tridiagonal inversion recursion)."""
        st, n, nb = self.starts, self.n, self.nb
        z = np.empty((n, n))
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
    def grad_hess(self, z_inv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gradient and Hessian of ``-log det K`` with respect to the scaled variables."""
        st = self.starts
        n_a = self.n_atoms
        zua = np.empty((self.n, n_a))
        zub = np.zeros((self.n, n_a))
        for g in self.groups:
            cols = slice(g.offset, g.offset + g.var.size)
            zua[:, cols] = z_inv[:, st[g.k] : st[g.k + 1]] @ g.alpha.T
            if g.beta is not None:
                zub[:, cols] = z_inv[:, st[g.k + 1] : st[g.k + 2]] @ g.beta.T
        p_aa = np.empty((n_a, n_a))
        p_ab = np.zeros((n_a, n_a))
        p_ba = np.zeros((n_a, n_a))
        p_bb = np.zeros((n_a, n_a))
        for g in self.groups:
            rows = slice(g.offset, g.offset + g.var.size)
            blk0 = slice(st[g.k], st[g.k + 1])
            p_aa[rows] = g.alpha @ zua[blk0]
            p_ab[rows] = g.alpha @ zub[blk0]
            if g.beta is not None:
                blk = slice(st[g.k + 1], st[g.k + 2])
                p_ba[rows] = g.beta @ zua[blk]
                p_bb[rows] = g.beta @ zub[blk]
        del zua, zub
        c = np.ascontiguousarray(np.concatenate([g.c for g in self.groups]))  # (A, 2, 2)
        # gradient of log det: tr(C_a P_aa) summed per variable
        g_atoms = (c[:, 0, 0] * np.diagonal(p_aa) + c[:, 0, 1] * np.diagonal(p_ba)
                   + c[:, 1, 0] * np.diagonal(p_ab) + c[:, 1, 1] * np.diagonal(p_bb))
        h_atoms = lmi_newton_matrix(c, p_aa, p_ab, p_ba, p_bb)
        del p_aa, p_ab, p_ba, p_bb
        grad = -(self.membership.T @ g_atoms)
        hess = self._aggregate(h_atoms)
        return grad, (hess + hess.T) / 2


def chain_barrier_solve(
    sdp,
    y0: np.ndarray,
    rel_gap: float = 1e-8,
    max_newton: int = 400,
    progress: bool = False,
    label: str = "lipsdp",
    time_limit: float | None = None,
) -> tuple[np.ndarray, dict]:
    """Minimise ``ρ = y[0]`` over the l2 chain LMI ``sdp`` from the strictly feasible start ``y0``.

    Barrier path following: centre ``t·ρ + φ(y)`` (``φ = -log det K - Σ log y_v``, self-concordant with
    parameter ``ν = n + #nonneg``) by damped Newton steps, then ``t <- μ t``.  At a centred point the duality
    gap is at most ``ν/t``; we stop when ``ν/t <= rel_gap·ρ``.  ``μ`` adapts between 2 and 32 to the number of
    Newton steps the last centring took (large ``μ`` makes pure dual barrier methods crawl once the
    multipliers of inactive neurons go to zero).  After each centring, ``K`` and the variables are rescaled so
    that ``K`` and the dual estimate ``X = K⁻¹/t`` have balanced diagonals (Newton iterates are invariant
    under such scalings; float64 accuracy is not).

    Returns ``(y, info)``; ``y`` is the last strictly feasible iterate (certify it before use)."""
    t_start = time.perf_counter()
    y0 = np.asarray(y0, dtype=np.float64)
    nonneg = np.asarray(sdp.nonneg, dtype=bool)
    nn_idx = np.flatnonzero(nonneg)
    lmi = BlockTridiagonalLMI(sdp)
    dd, _ = lmi.blocks(y0)
    dscale = 1.0 / np.sqrt(np.maximum(np.concatenate([np.diag(b) for b in dd]), 1e-300))
    vscale = np.where(np.abs(y0) > 0, np.abs(y0), 1.0)
    lmi.rescale(dscale, vscale)
    z = y0 / vscale
    nu = float(lmi.n + nn_idx.size)
    cvec = np.zeros(lmi.m)
    cvec[0] = 1.0

    def barrier(zz):
        if np.any(zz[nonneg] <= 0):
            return None
        fac_ = lmi.factor(zz)
        if fac_ is None:
            return None
        return -fac_[0] - float(np.log(zz[nonneg]).sum()), fac_

    cur = barrier(z)
    if cur is None:
        raise SolverError(f"{label}: the starting point of the interior-point method is not strictly feasible")
    phi, fac = cur

    def newton_system(zz, fac_):
        zi = lmi.inverse(fac_[1], fac_[2])
        g, h = lmi.grad_hess(zi)
        zdiag = np.diag(zi).copy()
        del zi
        g = g.copy()
        g[nn_idx] -= 1.0 / zz[nn_idx]
        h[nn_idx, nn_idx] += 1.0 / zz[nn_idx] ** 2
        jd = 1.0 / np.sqrt(np.maximum(np.diag(h), 1e-300))
        hs = jd[:, None] * h
        hs *= jd[None, :]
        del h
        try:
            cf = sla.cho_factor(hs, lower=True, check_finite=False, overwrite_a=True)
        except np.linalg.LinAlgError:
            raise SolverError(f"{label}: the Newton matrix lost positive definiteness") from None
        return g, (lambda r: jd * sla.cho_solve(cf, jd * r, check_finite=False)), zdiag

    g, solve, zdiag = newton_system(z, fac)
    a, b = solve(cvec), solve(g)
    # t: at least nu/rho0 (gap estimate = rho0; the start is a good feasible point, e.g. from ECLipsE-Fast), or
    # the t that makes the start closest to central if that is larger
    t = float(-(cvec @ b) / (cvec @ a)) if cvec @ a > 0 else 0.0
    if not np.isfinite(t):
        t = 0.0
    t = max(t, nu / max(z[0], 1e-300))
    mu = 4.0
    newton = 0
    last_print = t_start
    status = "converged"
    while True:
        steps = 0
        while True:
            grad = t * cvec + g
            dz = -solve(grad)
            dec = float(-grad @ dz)  # squared Newton decrement
            if dec / 2 <= 0.05:
                break
            if newton >= max_newton:
                status = "iteration limit"
                break
            if steps >= MAX_CENTERING_STEPS:
                # the damped Newton phase crawls (seen on deep trained nets): give up, the caller falls back
                status = "stalled"
                break
            if time_limit is not None and time.perf_counter() - t_start > time_limit:
                status = "time limit"
                break
            step, f0, accepted = 1.0, t * z[0] + phi, None
            while step > 1e-12:
                trial = z + step * dz
                res = barrier(trial)
                if res is not None and t * trial[0] + res[0] <= f0 - 0.25 * step * dec:
                    accepted = (trial, res)
                    break
                step *= 0.5
            if step == 1.0:
                # full step accepted: extrapolate while the merit keeps decreasing (pure dual barrier methods
                # otherwise crawl with unit steps once inactive multipliers head to zero)
                best = t * accepted[0][0] + accepted[1][0]
                s2 = 2.0
                while s2 <= 64.0:
                    trial = z + s2 * dz
                    res = barrier(trial)
                    if res is None or t * trial[0] + res[0] >= best:
                        break
                    best, accepted = t * trial[0] + res[0], (trial, res)
                    s2 *= 2.0
            newton += 1
            steps += 1
            if accepted is None:
                status = "line search failed"
                break
            z, (phi, fac) = accepted
            g, solve, zdiag = newton_system(z, fac)
            if progress and time.perf_counter() - last_print > 2.0:
                last_print = time.perf_counter()
                print(f"[{label}] {last_print - t_start:7.1f} s  newton {newton}  rho~{z[0] * lmi.vscale[0]:.9g}  "
                      f"gap<={nu / t * lmi.vscale[0]:.2e}", file=sys.stderr, flush=True)
        if status != "converged" or nu / t <= rel_gap * abs(z[0]):
            break
        mu = min(2.0 * mu, MU_MAX) if steps <= 2 else (2.0 if steps >= 6 else mu)
        t *= mu
        # rebalance: K and X = K^-1/t get equal diagonals; variables scaled to O(1)
        dd, _ = lmi.blocks(z)
        kdiag = np.concatenate([np.diag(blk) for blk in dd])
        ratio = np.sqrt(np.sqrt(np.maximum(zdiag, 1e-300) / np.maximum(kdiag, 1e-300)))
        y = z * lmi.vscale
        vnew = np.where(np.abs(y) > 0, np.abs(y), 1.0)
        t_scale = vnew[0] / lmi.vscale[0]
        lmi.rescale(lmi.dscale * ratio, vnew)
        z = y / vnew
        t *= t_scale
        cur = barrier(z)
        if cur is None:  # cannot happen in exact arithmetic (a congruence); keep the unscaled iterate
            status = "rescaling lost feasibility"
            z = y / lmi.vscale
            break
        phi, fac = cur
        g, solve, zdiag = newton_system(z, fac)
    y = z * lmi.vscale
    return y, {
        "newton_steps": newton,
        "gap_bound": nu / t * lmi.vscale[0],
        "status": status,
        "seconds": time.perf_counter() - t_start,
    }
