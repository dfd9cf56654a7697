"""Exact gradient-flow solution of three-layer linear nets from lambda-balanced initialisations.

Extension beyond Saxe et al.: the matrix Riccati solution discussed by Dominé et al. ("From lazy to
rich", arXiv:2409.14623, 2024), derived here from eq 2 with whitened inputs.

Derivation (our notation). Let Q = [W21^T; W32] ((N1+N3) x N2) and suppose the init is
balance-balanced, W32^T W32 - W21 W21^T = beta I (this matrix is conserved by eq 2). Then eq 2 reads
tau dQ/dt = F Q - (1/2) Q Q^T Q with the symmetric F = [[-beta/2 I, Sigma31^T], [Sigma31, beta/2 I]],
so P = Q Q^T obeys the Riccati equation tau dP/dt = F P + P F - P^2, solved by
P(t) = e^{FT} Q0 [I + Q0^T (int_0^T e^{2Fs} ds) Q0]^{-1} Q0^T e^{FT}, T = t/tau.
The network map W32 W21 is the lower-left (N3 x N1) block of P.
"""

from __future__ import annotations

import numpy as np

from theorytools.errors import TheoryError
from theorytools.deep_linear import _validation as val

__all__ = ["balanced_flow_solution"]


def balanced_flow_solution(t: np.ndarray | float, sigma31: np.ndarray, w21: np.ndarray,
                           w32: np.ndarray, tau: float = 1.0, atol: float = 1e-8) -> np.ndarray:
    """W32(t) W21(t) under the gradient flow eq 2 (whitened inputs) from a lambda-balanced init.

    t: times in iterations (t/tau is the flow time); returns shape (len(t), N3, N1) (or (N3, N1)
    for scalar t). Raises TheoryError if W32^T W32 - W21 W21^T is not a multiple of I within atol
    (relative to its norm). Cost: one (N1+N3)-sized eigendecomposition, then O(max|eig F| t/tau)
    small sub-steps (each exact) that keep the computation well conditioned for any t.
    """
    f = "balanced_flow_solution"
    sigma31 = val.matrix(sigma31, "sigma31", f)
    w21 = val.matrix(w21, "w21", f)
    w32 = val.matrix(w32, "w32", f)
    tau = val.positive_float(tau, "tau", f)
    tt = val.positive_array(t, "t", f, allow_zero=True)
    n3, n1 = sigma31.shape
    if w21.shape[1] != n1 or w32.shape[0] != n3 or w32.shape[1] != w21.shape[0]:
        raise TheoryError(f"The shapes of w21 {w21.shape} and w32 {w32.shape} passed to {f} do "
                          f"not match sigma31 {sigma31.shape}.")
    c = w32.T @ w32 - w21 @ w21.T
    beta = float(np.trace(c)) / c.shape[0]
    scale = max(1.0, float(np.linalg.norm(c)))
    if np.linalg.norm(c - beta * np.eye(c.shape[0])) > atol * scale:
        raise TheoryError(f"The initial weights passed to {f} are not lambda-balanced: "
                          "W32^T W32 - W21 W21^T is not a multiple of the identity.")
    fmat = np.block([[-0.5 * beta * np.eye(n1), sigma31.T], [sigma31, 0.5 * beta * np.eye(n3)]])
    ev, ov = np.linalg.eigh(fmat)
    q = np.vstack([w21.T, w32])
    # Propagate the factor Q (P = Q Q^T) in sub-steps with max|f| dT <= 2, which keeps B well
    # conditioned: Q(T + dT) = e^{F dT} Q(T) L^{-T}, B = L L^T (B is SPD since expm1(x)/x > 0).
    max_dt = 2.0 / max(float(np.max(np.abs(ev))), 1e-12)
    times = np.atleast_1d(tt).ravel() / tau
    order = np.argsort(times)
    out = np.empty((times.size, n3, n1))
    now = 0.0
    for idx in order:
        while now < times[idx]:
            dtt = min(max_dt, times[idx] - now)
            oq = ov.T @ q
            integ = np.where(ev != 0, np.expm1(2 * ev * dtt) / np.where(ev != 0, 2 * ev, 1.0), dtt)
            b = np.eye(q.shape[1]) + oq.T @ (integ[:, None] * oq)
            z = ov @ (np.exp(ev * dtt)[:, None] * oq)
            chol = np.linalg.cholesky(b)
            q = np.linalg.solve(chol, z.T).T
            now += dtt
        out[idx] = q[n1:] @ q[:n1].T
    res = out
    return res[0] if np.ndim(t) == 0 else res
