"""Float64 certification of SDP answers, shared by every SDP Lipschitz method.

Every SDP here has the form ``K(ρ, y) = K0(y) + a·ρ·E_J ⪰ 0`` where ``y`` are the QC multipliers, ``E_J`` is the
coordinate projector on the index set ``J`` (the input block for l2, the scalar border entry for l-inf) and
``a > 0``.  A solver returns ``(ρ, y)``; we never trust its ``ρ``.  Instead we rebuild ``K0(y)`` in float64
from the returned multipliers and compute the smallest admissible ``ρ`` for those multipliers exactly by a
Schur complement (``K_RR ≻ 0`` and ``a ρ I ⪰ K_JR K_RR⁻¹ K_RJ - K0_JJ``), then raise it by a small safety
amount until the float64 eigenvalue check passes:

    λ_min(K(ρ_c)) >= tol,   tol = 8·N·eps·||K||_F

(the computed eigenvalues of a symmetric matrix are exact for a perturbation of norm ~ N·eps·||K||, so the
true ``λ_min`` is then ``>= 0``).  For ``N > 2500`` the check is a Cholesky factorisation of ``K(ρ_c) - tol·I``
instead of a full eigendecomposition (same guarantee, much cheaper).  ``certified`` is True only if the check
passed; if ``K_RR`` itself is not positive definite at the returned multipliers no ``ρ`` can repair it and the
answer is reported as not certified.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla

__all__ = ["Certificate", "certify_psd", "EIGVALSH_MAX_N"]

EIGVALSH_MAX_N = 2500


@dataclass(frozen=True)
class Certificate:
    """Outcome of :func:`certify_psd`.

    ``rho``: certified value of ``ρ`` (or the solver hint if not certified); ``certified``; ``min_eig``: the
    computed smallest eigenvalue of ``K(rho)`` (``nan`` when the Cholesky check was used); ``tol``: the margin
    required; ``rho_schur``: the exact minimal ``ρ`` for the multipliers before the safety bump; ``bumps``:
    number of safety increases; ``check``: "eigvalsh" or "cholesky"; ``reason``: why not certified."""

    rho: float
    certified: bool
    min_eig: float
    tol: float
    rho_schur: float
    bumps: int
    check: str
    reason: str = ""


def _psd_check(k: np.ndarray, tol: float) -> tuple[bool, float, str]:
    n = k.shape[0]
    if n <= EIGVALSH_MAX_N:
        lam = float(np.linalg.eigvalsh(k)[0])
        return lam >= tol, lam, "eigvalsh"
    try:
        sla.cholesky(k - tol * np.eye(n), lower=True, check_finite=False)
        return True, float("nan"), "cholesky"
    except np.linalg.LinAlgError:
        return False, float("nan"), "cholesky"


def certify_psd(
    k0: np.ndarray,
    j_index: np.ndarray,
    a: float,
    rho_hint: float | None = None,
    max_bumps: int = 60,
) -> Certificate:
    """Smallest float64-certified ``ρ`` with ``k0 + a·ρ·E_J ⪰ 0`` (see module docstring)."""
    k0 = np.asarray(k0, dtype=np.float64)
    k0 = (k0 + k0.T) / 2
    n = k0.shape[0]
    j_index = np.asarray(j_index, dtype=int)
    hint = float("nan") if rho_hint is None else float(rho_hint)
    # rows/columns that are exactly zero (e.g. a neuron whose multiplier is exactly 0 and that feeds nothing)
    # do not affect semidefiniteness: drop them
    in_j = np.zeros(n, dtype=bool)
    in_j[j_index] = True
    nz = np.any(k0 != 0.0, axis=1) | in_j
    k0 = k0[np.ix_(nz, nz)]
    in_j = in_j[nz]
    n = k0.shape[0]
    jj, rr = np.flatnonzero(in_j), np.flatnonzero(~in_j)
    scale = float(np.linalg.norm(k0, "fro"))
    eps = np.finfo(float).eps
    tol_r = 8 * max(len(rr), 1) * eps * max(scale, 1.0)
    if len(rr):
        k_rr = k0[np.ix_(rr, rr)]
        if len(rr) <= EIGVALSH_MAX_N:
            lam_r = float(np.linalg.eigvalsh(k_rr)[0])
            ok_r = lam_r > tol_r
        else:
            try:
                sla.cholesky(k_rr - tol_r * np.eye(len(rr)), lower=True, check_finite=False)
                ok_r, lam_r = True, float("nan")
            except np.linalg.LinAlgError:
                ok_r, lam_r = False, float("nan")
        if not ok_r:
            return Certificate(
                hint, False, lam_r, tol_r, float("nan"), 0, "eigvalsh",
                "the multiplier part of the LMI is not positive definite at the returned multipliers "
                "(the solver answer is infeasible); raising rho cannot repair it",
            )
        cf = sla.cho_factor(k_rr, lower=True, check_finite=False)
        k_rj = k0[np.ix_(rr, jj)]
        schur = k_rj.T @ sla.cho_solve(cf, k_rj, check_finite=False) - k0[np.ix_(jj, jj)]
    else:
        schur = -k0[np.ix_(jj, jj)]
    schur = (schur + schur.T) / 2
    rho_schur = float(np.linalg.eigvalsh(schur)[-1]) / a
    rho = max(rho_schur, 0.0)
    bump = 0
    while True:
        k = k0.copy()
        k[jj, jj] += a * rho
        tol = 8 * n * eps * max(float(np.linalg.norm(k, "fro")), 1e-300)
        ok, lam, how = _psd_check(k, tol)
        if ok:
            return Certificate(rho, True, lam, tol, rho_schur, bump, how)
        if bump >= max_bumps:
            return Certificate(
                hint if rho_hint is not None else rho, False, lam, tol, rho_schur, bump, how,
                f"the float64 eigenvalue check still failed after {bump} increases of rho",
            )
        # raise rho: by the missing margin plus a relative step that doubles each time
        missing = (tol - lam) if np.isfinite(lam) else tol
        rho = rho + max(missing, 0.0) / a + (abs(rho) + 1e-300) * 1e-12 * 2.0**bump + tol / a
        bump += 1
