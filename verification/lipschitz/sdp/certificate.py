"""Float64 certification of SDP answers: the single trust base of every SDP Lipschitz method.

It imports nothing but numpy and scipy (its block-tridiagonal linear algebra, :func:`block_cholesky` and
:func:`backward_elimination`, is its own; the solvers reuse it, never the other way round), so no solver can
change what is certified.

Every SDP here has the form ``K(ρ, y) = K0(y) + a·ρ·E_J ⪰ 0`` where ``y`` are the QC multipliers, ``E_J`` is the
coordinate projector on the index set ``J`` (the input block for l2, the scalar border entry for l-inf) and
``a > 0``.  A solver returns ``(ρ, y)``; we never trust its ``ρ``.  Instead we rebuild ``K0(y)`` in float64
from the returned multipliers and compute the smallest admissible ``ρ`` for those multipliers exactly by a
Schur complement (``K_RR ≻ 0`` and ``a ρ I ⪰ K_JR K_RR⁻¹ K_RJ - K0_JJ``), then raise it by a small safety
amount until the float64 eigenvalue check passes:

    λ_min(K(ρ_c)) >= tol,   tol = 8·N·eps·||K||_F

(the computed eigenvalues of a symmetric matrix are exact for a perturbation of norm ~ N·eps·||K||, so the
true ``λ_min`` is then ``>= 0``).  All of this runs on ``D K D`` with ``D`` a diagonal of powers of two that makes
the diagonal of order one (an exact congruence in floating point, so ``D K D ⪰ 0`` iff ``K ⪰ 0``); without it the
tolerance of a deep net's LMI, whose entries span dozens of orders of magnitude, is set by its largest block and
the check fails.  ``min_eig`` and ``tol`` refer to ``D K D``.  For ``N > 2500`` the check is a Cholesky factorisation of ``K(ρ_c) - tol·I``
instead of a full eigendecomposition (same guarantee, much cheaper).  ``certified`` is True only if the check
passed; if ``K_RR`` itself is not positive definite at the returned multipliers no ``ρ`` can repair it and the
answer is reported as not certified.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla

__all__ = [
    "Certificate", "certify_psd", "certify_block_tridiagonal", "block_cholesky", "backward_elimination",
    "EIGVALSH_MAX_N",
]

EIGVALSH_MAX_N = 2500


@dataclass(frozen=True)
class Certificate:
    """Outcome of :func:`certify_psd`.

    ``rho``: certified value of ``ρ`` (or the solver hint if not certified); ``certified``; ``min_eig``: the
    computed smallest eigenvalue of ``K(rho)`` (``nan`` when the Cholesky check was used); ``tol``: the margin
    required; ``rho_schur``: the exact minimal ``ρ`` for the multipliers before the safety bump; ``bumps``:
    number of safety increases; ``check``: "eigvalsh" or "cholesky"; ``reason``: why not certified;
    ``multipliers``: the multipliers of the certified matrix (for proofs), when known."""

    rho: float
    certified: bool
    min_eig: float
    tol: float
    rho_schur: float
    bumps: int
    check: str
    reason: str = ""
    multipliers: np.ndarray | None = None  # set by ChainSDP.certify: the multipliers certified (y[0] unused)


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


def _pow2_balance(diag: np.ndarray, jj: np.ndarray, a: float, rho_hint: float) -> np.ndarray:
    """Powers of two ``d_i ≈ 1/sqrt(K_ii)`` (one common value on ``J``, where ``ρ`` enters), so that ``D K D`` has
    a diagonal of order one; ``D K(ρ) D = D K0 D + (a d_J²) ρ E_J``."""
    if len(jj) and np.isfinite(rho_hint) and rho_hint > 0:
        diag[jj] = diag[jj] + a * rho_hint
    with np.errstate(divide="ignore", invalid="ignore"):
        e = np.where(diag > 0, -np.round(np.log2(np.where(diag > 0, diag, 1.0)) / 2), 0.0)
    e = np.clip(e, -400, 400)
    if len(jj):
        e[jj] = np.round(np.mean(e[jj]))
    return np.ldexp(1.0, e.astype(int))


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
    # congruence by powers of two (exact in floating point): balance the diagonal so that the tolerance, which
    # scales with ||K||, is not set by the largest block alone (deep nets: entries spanning 1e±40)
    d = _pow2_balance(np.diag(k0).copy(), jj, a, hint)
    k0 = d[:, None] * k0 * d[None, :]
    if len(jj):
        a = a * float(d[jj[0]]) ** 2
    scale = float(np.linalg.norm(k0, "fro"))
    eps = np.finfo(float).eps

    def check(rho):
        k = k0.copy()
        k[jj, jj] += a * rho
        tol = 8 * n * eps * max(float(np.linalg.norm(k, "fro")), 1e-300)
        ok, lam, how = _psd_check(k, tol)
        return ok, lam, tol, how

    hint_or_none = None if rho_hint is None else float(rho_hint)
    fast = _shifted_start(k0, rr, jj, a, n, scale, check, hint)
    if fast is not None:
        return fast
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
    rho_schur = _dense_schur_rho(k0, rr, jj, a)
    return _raise_rho(check, rho_schur, a, hint_or_none, max_bumps)


def _dense_schur_rho(k0: np.ndarray, rr: np.ndarray, jj: np.ndarray, a: float, shift: float = 0.0) -> float | None:
    """``λ_max(K_JR (K_RR - t I)⁻¹ K_RJ - K_JJ + t I) / a`` with ``t = shift``: the exact minimal ``ρ`` with
    ``K(ρ) - t I ⪰ 0``; ``None`` if the Cholesky factorisation of ``K_RR - t I`` fails."""
    if len(rr):
        k_rr = k0[np.ix_(rr, rr)]
        if shift:
            k_rr = k_rr - shift * np.eye(len(rr))
        try:
            cf = sla.cho_factor(k_rr, lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            return None
        k_rj = k0[np.ix_(rr, jj)]
        schur = k_rj.T @ sla.cho_solve(cf, k_rj, check_finite=False) - k0[np.ix_(jj, jj)]
    else:
        schur = -k0[np.ix_(jj, jj)]
    schur = (schur + schur.T) / 2
    if shift:
        schur = schur + shift * np.eye(len(jj))
    with np.errstate(over="ignore", invalid="ignore"):
        rho = float(np.linalg.eigvalsh(schur)[-1]) / a if np.all(np.isfinite(schur)) else float("nan")
    return rho if np.isfinite(rho) else None


# the shifted Schur start aims at λ_min(K(ρ)) = SHIFT_MARGIN · tol: the float64 check then passes at once (its
# rounding is about tol / 8), and the overshoot over the exact minimal ρ is a few tol / (a ||v_J||²)
SHIFT_MARGIN = 1.25


def _shifted_start(k0, rr, jj, a, n, scale, check, hint) -> Certificate | None:
    """The certificate in one check: ``ρ_t`` = exact minimal ``ρ`` of ``K(ρ) - t I ⪰ 0`` with ``t`` =
    ``SHIFT_MARGIN`` times the tolerance at ``ρ_schur``, then ``check(ρ_t)``.  ``None`` (run the bump loop) if
    ``K_RR`` is not factorable, ``ρ_schur < 0`` or the check fails; only a ``ρ`` that passed ``check`` is returned."""
    rho_schur = _dense_schur_rho(k0, rr, jj, a)
    if rho_schur is None or not rho_schur >= 0:
        return None
    diag_j = np.diag(k0)[jj]
    fro2 = scale * scale + float(np.sum(2 * a * rho_schur * diag_j + (a * rho_schur) ** 2))
    return _checked_shift(check, rho_schur, fro2, n, lambda t: _dense_schur_rho(k0, rr, jj, a, t), hint)


def _checked_shift(check, rho_schur: float, fro2: float, n: int, shifted_rho, hint: float) -> Certificate | None:
    """``check`` at ``shifted_rho(t)``, ``t = SHIFT_MARGIN · 8 n eps ||K(ρ_schur)||_F`` (``fro2`` its square): a
    certified :class:`Certificate` (one bump) if it passes; a not certified one if even ``K_RR - tol I`` does not
    factor; else ``None`` (the caller runs the bump loop)."""
    tol0 = 8 * n * np.finfo(float).eps * max(float(np.sqrt(max(fro2, 0.0))), 1e-300)
    rho_t = shifted_rho(SHIFT_MARGIN * tol0)
    if rho_t is None:
        if shifted_rho(tol0) is None:
            # K_RR - tol I is not positive definite: as λ_min(K(ρ)) <= λ_min(K_RR) and the tolerance grows
            # with ρ, no ρ can pass the check (the bump loop would only raise ρ until it overflows)
            return Certificate(hint, False, float("nan"), tol0, rho_schur, 0, "",
                               "the multiplier part of the LMI is not positive definite with the margin of the "
                               "float64 check; raising rho cannot repair it")
        return None
    if not rho_t >= rho_schur:
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        ok, lam, tol, how = check(rho_t)
    return Certificate(rho_t, True, lam, tol, rho_schur, 1, how) if ok else None


def _raise_rho(check, rho_schur: float, a: float, hint: float | None, max_bumps: int) -> Certificate:
    """Smallest ``ρ >= rho_schur`` found for which ``check(ρ) -> (ok, λ_min or nan, tol, how)`` passes.

    ``ρ`` is raised by the missing margin plus a relative step that grows tenfold each time (1e-12, 1e-11, ...);
    after a pass that needed raising, four bisection steps towards the last failing ``ρ`` take back most of the
    overshoot of the tenfold steps.  Every ``ρ`` returned as certified has itself passed ``check``."""
    rho = max(rho_schur, 0.0)
    bump = 0
    failed = None
    while True:
        with np.errstate(over="ignore", invalid="ignore"):  # a hopeless candidate may overflow: it then fails
            ok, lam, tol, how = check(rho)
        if ok:
            break
        if bump >= max_bumps or not np.isfinite(rho):
            return Certificate(
                hint if hint is not None else rho, False, lam, tol, rho_schur, bump, how,
                f"the float64 {'eigenvalue' if how == 'eigvalsh' else 'Cholesky'} check still failed after "
                f"{bump} increases of rho",
            )
        failed = rho
        missing = (tol - lam) if np.isfinite(lam) else tol
        rho = rho + max(missing, 0.0) / a + (abs(rho) + 1e-300) * 1e-12 * 10.0**bump + tol / a
        bump += 1
    if failed is not None:
        for _ in range(4):
            mid = (failed + rho) / 2
            ok2, lam2, tol2, how2 = check(mid)
            if ok2:
                rho, lam, tol, how = mid, lam2, tol2, how2
            else:
                failed = mid
    return Certificate(rho, True, lam, tol, rho_schur, bump, how)


def certify_block_tridiagonal(
    dd: list[np.ndarray],
    ee: list[np.ndarray],
    a: float,
    rho_hint: float | None = None,
    max_bumps: int = 60,
) -> Certificate:
    """:func:`certify_psd` for a block-tridiagonal ``K0`` (diagonal blocks ``dd``, super-diagonal ``ee``) with
    ``J`` = block 0, in ``O(Σ s_k³)`` instead of ``O(n³)``.

    Same steps, structured: power-of-two balancing; the exact minimal ``ρ`` from the Schur complement of
    blocks ``1..`` (eliminated from the last block backwards); then the check "block Cholesky of
    ``D K(ρ) D - tol·I`` succeeds", ``tol = 8·n·eps·||D K D||_F``.  A block Cholesky of a block-tridiagonal
    matrix performs the operations of the dense Cholesky on its band, so this is the same guarantee as the
    Cholesky check of :func:`certify_psd`."""
    hint = float("nan") if rho_hint is None else float(rho_hint)
    nb = len(dd)
    sizes = [b.shape[0] for b in dd]
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    diag = np.concatenate([np.diag(b) for b in dd])
    d = _pow2_balance(diag.copy(), np.arange(sizes[0]), a, hint)
    ds = [d[starts[k] : starts[k + 1]] for k in range(nb)]
    dd = [ds[k][:, None] * dd[k] * ds[k][None, :] for k in range(nb)]
    ee = [ds[k][:, None] * ee[k] * ds[k + 1][None, :] for k in range(nb - 1)]
    a = a * float(ds[0][0]) ** 2
    n = int(starts[-1])
    eps = np.finfo(float).eps
    fro2_rest = float(sum(np.sum(b * b) for b in dd[1:]) + 2.0 * sum(np.sum(b * b) for b in ee))
    # minimal rho: K_RR ≻ 0 and a ρ I ⪰ E_0 (K_RR⁻¹)_{11} E_0ᵀ - D_0, with (K_RR⁻¹)_{11} = T_1⁻¹ from the
    # backward Schur complements T_k = D_k - E_k T_{k+1}⁻¹ E_kᵀ
    elim = backward_elimination(dd, ee)
    if elim is None:
        reason_rr = ("the multiplier part of the LMI is not positive definite at the returned multipliers "
                     "(the solver answer is infeasible); raising rho cannot repair it")
        return Certificate(hint, False, float("nan"), float("nan"), float("nan"), 0, "block cholesky", reason_rr)
    schur = elim[1] - dd[0]
    schur = (schur + schur.T) / 2
    rho_schur = float(np.linalg.eigvalsh(schur)[-1]) / a
    def check(rho):
        d0 = dd[0] + a * rho * np.eye(sizes[0])
        tol = 8 * n * eps * max(float(np.sqrt(fro2_rest + np.sum(d0 * d0))), 1e-300)  # ||D K(ρ) D||_F
        shifted = [d0 - tol * np.eye(sizes[0])] + [b - tol * np.eye(b.shape[0]) for b in dd[1:]]
        return block_cholesky(shifted, ee) is not None, float("nan"), tol, "block cholesky"

    def shifted_rho(t):
        el = backward_elimination([b - t * np.eye(b.shape[0]) for b in dd], ee)
        if el is None:
            return None
        s = el[1] - dd[0]
        s = (s + s.T) / 2 + t * np.eye(sizes[0])
        with np.errstate(over="ignore", invalid="ignore"):
            r = float(np.linalg.eigvalsh(s)[-1]) / a if np.all(np.isfinite(s)) else float("nan")
        return r if np.isfinite(r) else None

    if rho_schur >= 0:
        d0 = dd[0] + a * rho_schur * np.eye(sizes[0])
        fast = _checked_shift(check, rho_schur, fro2_rest + float(np.sum(d0 * d0)), n, shifted_rho, hint)
        if fast is not None:
            return fast
    return _raise_rho(check, rho_schur, a, None if rho_hint is None else float(rho_hint), max_bumps)


# ----------------------------------------------------------------------------------------------------
# block-tridiagonal linear algebra of the certificate (the solvers reuse it; it depends on nothing of theirs)


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
