"""CVXOPT's primal-dual cone solver with a KKT solver that exploits the rank-2 atoms of the Lipschitz LMIs.

Problem: minimise ``y_0`` subject to ``K(y) = K0 + Σ_a y_var(a) U_a C_a U_aᵀ ⪰ 0`` and ``y_v >= 0`` for the
nonnegative multipliers, where every *atom* ``a`` has a rank-2 factor ``U_a`` (N x 2, sparse) and a 2 x 2
coefficient ``C_a``.  The Newton (KKT) matrix is assembled with the low-rank trick
``H_ab = tr(C_a P_ab C_b P_ba)`` (as in DSDP / SDPT3) instead of CVXOPT's generic dense one.  (The primal-dual
method on the block-tridiagonal structure is in :mod:`.chain_pd`.)

The answer is *not* trusted: callers certify the returned multipliers
(:mod:`verification.lipschitz.sdp.certificate`).  :func:`solve` is the entry of the backend table.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from verification.errors import SolverError
from verification.lipschitz.sdp.backends import report
from verification.lipschitz.sdp.chain import ChainSDP

__all__ = ["solve", "cvxopt_lowrank_solve"]


def _assemble(k0, u, c_atoms, var, y):
    coef = c_atoms * y[var][:, None, None]
    if isinstance(u, np.ndarray):
        n, a2 = u.shape
        ud = np.einsum("nai,aij->naj", u.reshape(n, a2 // 2, 2), coef).reshape(n, a2)
        return k0 + ud @ u.T
    return k0 + (u @ _block_diag2(coef) @ u.T).toarray()


def _block_diag2(c):
    a = c.shape[0]
    rows = np.repeat(np.arange(2 * a).reshape(a, 2), 2, axis=1).ravel()
    cols = np.tile(np.arange(2 * a).reshape(a, 2), (1, 2)).ravel()
    return sp.csr_matrix((c.reshape(-1), (rows, cols)), shape=(2 * a, 2 * a))


def cvxopt_lowrank_solve(
    k0: np.ndarray,
    u: sp.spmatrix,
    c_atoms: np.ndarray,
    var: np.ndarray,
    nonneg: np.ndarray,
    progress: bool = False,
    reltol: float = 1e-6,
    abstol: float = 1e-7,
    feastol: float = 1e-6,
    max_iters: int = 40,
) -> tuple[np.ndarray, dict]:
    """Minimise ``y[0]`` s.t. ``K(y) ⪰ 0``, ``y_nonneg >= 0`` with CVXOPT's primal-dual ``conelp`` and a custom
    KKT solver that exploits the rank-2 atoms: with the Nesterov-Todd scaling ``rti`` of the PSD cone,
    ``H_uv = tr(rti K_u rtiᵀ rti K_v rtiᵀ) = Σ tr(C_a P_ab C_b P_ba)``, ``P = (rti U)ᵀ (rti U)``.  ``G`` is passed
    as a function, so the ``N² x m`` constraint matrix is never formed."""
    from cvxopt import matrix, misc, solvers

    t0 = time.perf_counter()
    n = k0.shape[0]
    m = nonneg.shape[0]
    idx_l = np.flatnonzero(nonneg)
    nl = idx_l.size
    ud = np.asarray(u.toarray() if sp.issparse(u) else u, dtype=np.float64)
    a_atoms = var.size
    memb = sp.csr_matrix((np.ones(a_atoms), (var, np.arange(a_atoms))), shape=(m, a_atoms))

    def kmat(x):
        coef = c_atoms * x[var][:, None, None]
        w = np.einsum("nai,aij->naj", ud.reshape(n, a_atoms, 2), coef).reshape(n, 2 * a_atoms)
        return w @ ud.T

    def gt_apply(zv):
        zl = zv[:nl]
        z = zv[nl:].reshape(n, n, order="F")
        z = np.tril(z) + np.tril(z, -1).T
        zu = z @ ud
        quad = np.einsum("nai,naj->aij", ud.reshape(n, a_atoms, 2), zu.reshape(n, a_atoms, 2))
        tr_atoms = np.einsum("aij,aji->a", c_atoms, quad)
        out = -(memb @ tr_atoms)
        out[idx_l] -= zl
        return out

    def g_apply(xv):
        out = np.empty(nl + n * n)
        out[:nl] = -xv[idx_l]
        out[nl:] = (-kmat(xv)).ravel(order="F")
        return out

    def gfun(x, y, alpha=1.0, beta=0.0, trans="N"):
        xv = np.array(x).ravel()
        yv = np.array(y).ravel()
        res = g_apply(xv) if trans == "N" else gt_apply(xv)
        y[:] = matrix(alpha * res + beta * yv)

    def afun(x, y, alpha=1.0, beta=0.0, trans="N"):
        if trans == "T":
            y[:] = matrix(beta * np.array(y).ravel())

    def kktsolver(w):
        rti = np.array(w["rti"][0])
        v = rti.T @ ud  # W^{-T}(K) = rtiᵀ K rti
        p = v.T @ v
        p4 = p.reshape(a_atoms, 2, a_atoms, 2)
        q = np.einsum("aij,ajbk->aibk", c_atoms, p4).reshape(2 * a_atoms, 2 * a_atoms)
        h_atoms = (q * q.T).reshape(a_atoms, 2, a_atoms, 2).sum(axis=(1, 3))
        h = memb @ (memb @ h_atoms.T).T if m != a_atoms else h_atoms
        h = np.asarray(h)
        if nl:
            d = np.array(w["d"]).ravel()
            h[idx_l, idx_l] += 1.0 / d**2
        jd = 1.0 / np.sqrt(np.maximum(np.diag(h), 1e-300))
        hs = jd[:, None] * h * jd[None, :]
        try:
            cf = sla.cho_factor(hs, lower=True, check_finite=False)
        except np.linalg.LinAlgError:  # near the optimum H can lose definiteness in floating point
            cf = sla.cho_factor(hs + 1e-12 * np.eye(m), lower=True, check_finite=False)

        def f(x, y, z):
            wz = matrix(z)
            misc.scale(wz, w, trans="T", inverse="I")
            misc.scale(wz, w, inverse="I")
            rhs = np.array(x).ravel() + gt_apply(np.array(wz).ravel())
            ux = jd * sla.cho_solve(cf, jd * rhs, check_finite=False)
            t = matrix(g_apply(ux) - np.array(z).ravel())
            misc.scale(t, w, trans="T", inverse="I")
            z[:] = t
            x[:] = matrix(ux)

        return f

    c = matrix(np.eye(m)[0])
    h = matrix(np.concatenate([np.zeros(nl), k0.ravel(order="F")]))
    dims = {"l": int(nl), "q": [], "s": [int(n)]}
    opts = {"show_progress": progress is True, "reltol": reltol, "abstol": abstol, "feastol": feastol,
            "maxiters": max_iters}
    import contextlib

    try:
        with contextlib.redirect_stdout(sys.stderr):  # CVXOPT prints its progress table on stdout
            sol = solvers.conelp(c, gfun, h, dims, afun, matrix(0.0, (0, 1)), kktsolver=kktsolver, options=opts)
    except (ArithmeticError, ValueError, ZeroDivisionError, np.linalg.LinAlgError) as exc:
        raise SolverError(f"CVXOPT (low-rank KKT) failed: {type(exc).__name__}: {exc}") from None
    if sol["x"] is None or sol["status"] not in ("optimal", "unknown"):
        raise SolverError(f"CVXOPT (low-rank KKT) returned status {sol['status']!r}; no bound")
    y = np.array(sol["x"]).ravel()
    return y, {"iterations": sol["iterations"], "status": sol["status"], "seconds": time.perf_counter() - t0}


def solve(sdp: ChainSDP, *, progress: bool = False, label: str = "lipsdp", **options) -> tuple[np.ndarray, str, dict]:
    """Backend ``cvxopt-lowrank``: :func:`cvxopt_lowrank_solve` on ``sdp``; options ``reltol``, ``abstol``,
    ``feastol``, ``max_iters``; info keys ``cvxopt_*``."""
    report(progress, label, f"CVXOPT with the low-rank KKT solver, LMI {sdp.n}, {sdp.nonneg.shape[0]} multipliers")
    y, info = cvxopt_lowrank_solve(sdp.k0, sdp.u, sdp.c_atoms, sdp.var, sdp.nonneg, progress=progress, **options)
    return y, info["status"], {f"cvxopt_{k}": v for k, v in info.items()}
