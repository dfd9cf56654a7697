"""The chain LMI as a cvxpy problem (block-wise model), for the cvxpy solvers CVXOPT, CLARABEL, SCS and MOSEK.

:func:`solver` returns the backend of one cvxpy solver, with the signature of the backend table
(:mod:`verification.lipschitz.sdp.solve`).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from verification.errors import SolverError
from verification.lipschitz.sdp.backends import report
from verification.lipschitz.sdp.chain import ChainSDP
from verification.lipschitz.sdp.cvxpy_problem import solve_cvxpy_problem

__all__ = ["solver"]


def _solve_lmi(sdp: ChainSDP, solver_name: str, **kwargs) -> tuple[np.ndarray, str, str]:
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
        w = sdp.matrices[k]
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
    used = solve_cvxpy_problem(prob, solver_name, **kwargs)
    if y.value is None:
        raise SolverError(f"{used} returned no multipliers (status {prob.status!r})")
    return np.asarray(y.value, dtype=np.float64), used, prob.status


def solver(name: str) -> Callable:
    """The backend ``solve(sdp, *, progress, label, **options) -> (y, status, info)`` of the cvxpy solver ``name``
    (``options`` go to cvxpy's ``solve``)."""

    def solve(sdp: ChainSDP, *, progress: bool = False, label: str = "lipsdp", **options):
        report(progress, label, f"solving an LMI of size {sdp.n} with {sdp.nonneg.shape[0]} multipliers using {name} ...")
        y, _, status = _solve_lmi(sdp, name, **options)
        return y, status, {}

    return solve
