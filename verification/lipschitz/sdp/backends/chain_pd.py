"""A primal-dual interior-point method for the l2 LipSDP LMI that works on its chordal (block-tridiagonal) pattern.

The pair solved (scaled variables ``y``, ``K(y) = K0 + A*(y)`` block tridiagonal, see
:mod:`verification.lipschitz.sdp.block_tridiagonal`):

    (D)  minimise ρ = y₀   s.t.  S = K(y) ⪰ 0,  y_v >= 0 (v nonnegative)
    (P)  maximise -<K0, X>  s.t.  A(X) + E x = e₀,  X PSD-completable,  x >= 0

Only the entries of ``X`` on the block-tridiagonal pattern matter, because every ``C_a`` and ``K0`` live there.
``X`` is kept as its diagonal and super-diagonal blocks; a partial matrix with this (chordal, cliques = two
consecutive blocks) pattern is PSD-completable iff every clique block is PSD, and its maximum-determinant
completion ``X̂`` has a block-tridiagonal inverse ``W = Σ_cliques [X_C]⁻¹ - Σ_separators [X_sep]⁻¹`` (Dempster;
Andersen, Dahl & Vandenberghe 2013, "Logarithmic barriers for sparse matrix cones").  Dense ``X̂ = W⁻¹`` and
``Z = S⁻¹`` both come from the block-tridiagonal inversion recursion (``O(n² s)``).

Search direction: HKM (Helmberg-Kojima-Monteiro) on the completed ``X̂``,
``ΔX = P(σμ Z - X̂ - sym(X̂ ΔS Z))``, ``ΔS = A*(Δy)``; eliminating ``ΔX`` and ``Δx`` gives the Schur system

    (H + diag(x/y)) Δy = σμ (A(Z) + E/y) - e₀,     H_vw = Σ tr(C_a X̂ C_b Z),

which differs from the pure dual barrier Newton system only in ``X̂`` replacing ``μ Z``: when ``S`` is nearly
singular in a direction the primal iterate is not, ``H`` is not swamped by that direction (the failure mode
of the dual barrier method on deep trained nets).  Mehrotra predictor-corrector: σ from the affine predictor,
and the second-order term ``sym(ΔX̂ₐ ΔSₐ Z)`` with the *unprojected* affine ``ΔX̂ₐ = -X̂ - sym(X̂ ΔSₐ Z)`` (on the
central path this is the derivative of the max-determinant completion), computed on the pattern in
``O(n² s)`` by block-tridiagonal solves.  It cut the iterations on the trained width-64 MLPs of depth
8 / 16 / 32 / 64 from 36 / 39 / 47 / 72 to 16 / 22 / 31 / 52 (a pattern-only proxy of ``ΔX̂ₐ`` had made the
steps shorter, and dropping either half of the term costs 5-20 iterations).  The dual iterate stays exactly
feasible (``S = K(y)`` is recomputed), the primal one becomes feasible after a full step.  Every ``y`` is
strictly feasible; the caller certifies it.  :func:`solve` (backend ``ipm``) starts it from
:func:`verification.lipschitz.sdp.starts.chain_start`."""

from __future__ import annotations

import sys
import time

import numpy as np
import scipy.linalg as sla

from verification._blas import cholesky_inplace
from verification.errors import InvalidParameterError, SolverError
from verification.lipschitz.sdp.backends import report
from verification.lipschitz.sdp.block_tridiagonal import BlockTridiagonalLMI
from verification.lipschitz.sdp.certificate import block_cholesky
from verification.lipschitz.sdp.chain import ChainSDP
from verification.lipschitz.sdp.starts import chain_start

__all__ = ["solve", "chain_pd_solve", "clique_cholesky", "completion_inverse"]

STEP_FRACTION = 0.9  # of the largest feasible step
STEP_FRACTION_FAST = 0.98  # when the centring parameter σ is below FAST_SIGMA
FAST_SIGMA = 0.05


def clique_cholesky(xd: list[np.ndarray], xe: list[np.ndarray]) -> list[np.ndarray] | None:
    """Cholesky factors of the clique blocks ``[[X_k, X_{k,k+1}], [·, X_{k+1}]]`` of the block-tridiagonal partial
    matrix ``(xd, xe)``, or ``None`` if one is not positive definite (then ``X`` is not PD-completable)."""
    out = []
    for k in range(len(xd) - 1):
        c = np.block([[xd[k], xe[k]], [xe[k].T, xd[k + 1]]])
        try:
            out.append(np.linalg.cholesky((c + c.T) / 2))
        except np.linalg.LinAlgError:
            return None
    return out


def clique_inverse_factors(chols: list[np.ndarray]) -> list[np.ndarray]:
    """``L⁻¹`` for every clique factor ``L`` of :func:`clique_cholesky` (shared by the completion and the step)."""
    return [sla.solve_triangular(lc, np.eye(lc.shape[0]), lower=True, check_finite=False) for lc in chols]


def completion_inverse(xd: list[np.ndarray], xe: list[np.ndarray], chols: list[np.ndarray] | None = None,
                       inverses: list[np.ndarray] | None = None):
    """Blocks ``(WD, WE)`` of ``W = X̂⁻¹`` for the max-determinant completion ``X̂`` of the block-tridiagonal
    partial matrix ``(xd, xe)``, or ``None`` if a clique block is not positive definite.  ``chols`` / ``inverses``:
    the clique factors from :func:`clique_cholesky` / their inverses if already computed (a separator's factor is
    the leading block of the next clique's)."""
    if inverses is None:
        chols = clique_cholesky(xd, xe) if chols is None else chols
        if chols is None:
            return None
        inverses = clique_inverse_factors(chols)
    wd = [np.zeros_like(b) for b in xd]
    we = [np.zeros_like(b) for b in xe]
    for k, li in enumerate(inverses):
        s0 = xd[k].shape[0]
        ci = li.T @ li
        wd[k] += ci[:s0, :s0]
        we[k] += ci[:s0, s0:]
        wd[k + 1] += ci[s0:, s0:]
        if 0 < k:  # separator X_k: its factor is the leading s0 x s0 block of this clique's
            lsi = li[:s0, :s0]
            wd[k] -= lsi.T @ lsi
    return wd, we


def _pattern(mat: np.ndarray, starts: list[int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    nb = len(starts) - 1
    sl = [slice(starts[k], starts[k + 1]) for k in range(nb)]
    return [mat[sl[k], sl[k]].copy() for k in range(nb)], [mat[sl[k], sl[k + 1]].copy() for k in range(nb - 1)]


def _inner(ad, ae, bd, be) -> float:
    return float(sum(np.vdot(a, b) for a, b in zip(ad, bd)) + 2.0 * sum(np.vdot(a, b) for a, b in zip(ae, be)))


def _max_step(ok, hi: float = 1.0, iters: int = 30, rtol: float = 1e-3) -> float:
    """Largest ``α ∈ (0, hi]`` with ``ok(α)`` by bisection (``ok`` monotone: true on ``[0, α*)``) to the relative
    accuracy ``rtol`` (the result is always a point where ``ok`` holds)."""
    if ok(hi):
        return hi
    lo = 0.0
    for _ in range(iters):
        mid = (lo + hi) / 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
        if hi - lo <= rtol * hi:
            break
    return lo


def _clique_step(inverses, dd, de) -> float:
    """Largest ``α`` keeping every clique block of ``X + α ΔX`` positive definite (exact, per clique;
    ``inverses``: :func:`clique_inverse_factors` of ``X``): ``-1 / λ_min(L⁻¹ ΔX_C L⁻ᵀ)``, the eigenvalues of
    equal-sized cliques in one batched call."""
    ms = []
    for k, li in enumerate(inverses):
        dc = np.block([[dd[k], de[k]], [de[k].T, dd[k + 1]]])
        m = li @ dc @ li.T
        ms.append((m + m.T) / 2)
    if len({m.shape for m in ms}) == 1:
        lam = float(np.linalg.eigvalsh(np.stack(ms))[:, 0].min())
    else:
        lam = min(float(np.linalg.eigvalsh(m)[0]) for m in ms)
    return -1.0 / lam if lam < 0 else np.inf


def _bt_times(dd: list[np.ndarray], ee: list[np.ndarray], mat: np.ndarray, st: list[int],
              out: np.ndarray | None = None) -> np.ndarray:
    """(block-tridiagonal ``(dd, ee)``) @ dense ``mat``: one product per block row with ``[E_{k-1}ᵀ D_k E_k]``.
    ``out``: a C-ordered array of ``mat``'s shape to write into (a reused work array: no page faults)."""
    nb = len(dd)
    if out is None:
        out = np.empty(mat.shape, dtype=mat.dtype)
    for k in range(nb):
        parts = ([ee[k - 1].T] if k > 0 else []) + [dd[k]] + ([ee[k]] if k + 1 < nb else [])
        lo, hi = st[max(k - 1, 0)], st[min(k + 2, nb)]
        np.matmul(np.hstack(parts), mat[lo:hi], out=out[st[k] : st[k + 1]])
    return out


def _sym_pattern(a: np.ndarray, b: np.ndarray, st: list[int]):
    """Pattern blocks of ``sym(a @ b)``: one product per block row (its blocks k-1, k, k+1)."""
    nb = len(st) - 1
    rows = []
    for k in range(nb):
        lo, hi = st[max(k - 1, 0)], st[min(k + 2, nb)]
        rows.append((lo, a[st[k] : st[k + 1]] @ b[:, lo:hi]))

    def blk(i, j):
        lo, r = rows[i]
        return r[:, st[j] - lo : st[j + 1] - lo]

    dd, ee = [], []
    for k in range(nb):
        d = blk(k, k)
        dd.append((d + d.T) / 2)
        if k + 1 < nb:
            ee.append((blk(k, k + 1) + blk(k + 1, k).T) / 2)
    return dd, ee


def _sym_of(mat: np.ndarray, st: list[int]):
    """Pattern blocks of ``sym(mat)``."""
    nb = len(st) - 1
    sl = [slice(st[k], st[k + 1]) for k in range(nb)]
    dd = [(mat[sl[k], sl[k]] + mat[sl[k], sl[k]].T) / 2 for k in range(nb)]
    ee = [(mat[sl[k], sl[k + 1]] + mat[sl[k + 1], sl[k]].T) / 2 for k in range(nb - 1)]
    return dd, ee


def _gram_pattern(a: np.ndarray, b: np.ndarray, st: list[int]):
    """Pattern blocks of ``aᵀ b`` for a product known to be symmetric: per block column ``k`` one product of
    ``a``'s column band ``k`` with ``b``'s bands ``k, k+1``."""
    nb = len(st) - 1
    dd, ee = [], []
    for k in range(nb):
        r = a[:, st[k] : st[k + 1]].T @ b[:, st[k] : st[min(k + 2, nb)]]
        s0 = st[k + 1] - st[k]
        dd.append((r[:, :s0] + r[:, :s0].T) / 2)
        if k + 1 < nb:
            ee.append(r[:, s0:])
    return dd, ee


def _bt_factors(ee: list[np.ndarray], chols: list[np.ndarray]):
    """The fused step matrices :func:`_bt_solve` needs for ``S`` with super-diagonal blocks ``ee`` and block
    Cholesky diagonal factors ``chols`` (:func:`block_cholesky`): ``S = L Lᵀ`` with ``L`` block lower bidiagonal,
    diagonal ``L_k`` and sub-diagonal ``V_kᵀ``, ``V_k = L_{k-1}⁻¹ E_{k-1}``.  With ``G_k = L_k⁻¹`` the forward step
    is ``w_k = [-G_k V_kᵀ | G_k] [w_{k-1}; r_k]`` and the backward one ``x_k = [G_kᵀ | -G_kᵀ V_{k+1}] [w_k; x_{k+1}]``:
    one matrix product each (inverted once, s x s)."""
    g = [sla.solve_triangular(lk, np.eye(lk.shape[0]), lower=True, check_finite=False) for lk in chols]
    v = [None] + [g[k - 1] @ ee[k - 1] for k in range(1, len(chols))]
    fwd = [g[0]] + [np.hstack([-(g[k] @ v[k].T), g[k]]) for k in range(1, len(g))]
    bwd = [np.hstack([g[k].T, -(g[k].T @ v[k + 1])]) for k in range(len(g) - 1)] + [g[-1].T]
    return fwd, bwd


def _bt_solve(factors, rhs: np.ndarray, st: list[int], overwrite: bool = False) -> np.ndarray:
    """``S⁻¹ rhs`` by block forward and back substitution with :func:`_bt_factors`, in place in one array (block
    ``k-1`` already holds ``w_{k-1}`` when block ``k`` is computed, so each step reads one contiguous row band):
    ``O(n·s·cols)``.  ``overwrite`` lets it use ``rhs`` (C order) as the work array."""
    fwd, bwd = factors
    nb = len(fwd)
    w = rhs if overwrite and rhs.flags.c_contiguous else np.array(rhs, order="C")
    buf = np.empty((max(st[k + 1] - st[k] for k in range(nb)),) + w.shape[1:], dtype=w.dtype)
    for k in range(nb):
        out = buf[: st[k + 1] - st[k]]
        np.matmul(fwd[k], w[st[max(k - 1, 0)] : st[k + 1]], out=out)
        w[st[k] : st[k + 1]] = out
    for k in range(nb - 1, -1, -1):
        out = buf[: st[k + 1] - st[k]]
        np.matmul(bwd[k], w[st[k] : st[min(k + 2, nb)]], out=out)
        w[st[k] : st[k + 1]] = out
    return w


def _cholesky_lower(h: np.ndarray):
    """Cholesky factor of the symmetric matrix whose lower triangle ``h`` holds (C order), scaled to unit diagonal
    first; overwrites ``h``.  Returns ``(factor, scaling)`` or ``None`` if it is not positive definite."""
    jd = 1.0 / np.sqrt(np.maximum(np.diag(h).copy(), 1e-300))
    h *= jd[:, None]
    h *= jd[None, :]
    # the lower triangle of a C-ordered array is the upper triangle of its (Fortran-ordered) transpose: LAPACK
    # factorises it in place (n = 4033: 0.30 s with numpy's BLAS threads, 0.53 s with scipy's held to one;
    # numpy's cholesky copies first and took 0.46 s)
    fac = h.T
    if cholesky_inplace(fac, upper=True) != 0:
        return None
    return fac, jd


def _cholesky_solve(cf, rhs: np.ndarray) -> np.ndarray:
    fac, jd = cf
    sol, info = sla.lapack.dpotrs(fac, jd * rhs, lower=0)
    if info != 0:
        raise SolverError(f"triangular solve with the Schur complement failed (LAPACK info {info})")
    return jd * sol


def chain_pd_solve(
    sdp,
    y0: np.ndarray,
    rel_gap: float = 1e-7,
    max_iter: int = 200,
    progress: bool = False,
    label: str = "lipsdp",
    time_limit: float | None = None,
) -> tuple[np.ndarray, dict]:
    """Minimise ``ρ = y[0]`` over the l2 chain LMI ``sdp`` from the strictly feasible ``y0`` (primal-dual).

    Stops when the relative duality gap ``(<X,S> + xᵀy)/ρ <= rel_gap`` with the primal residual below
    ``rel_gap`` too.  Returns ``(y, info)``; ``y`` is the last strictly feasible dual iterate (certify it).
    ``time_limit`` (seconds from the call): no iteration is started that the previous one's duration says
    would end after it (status ``"time limit"``).  ``progress``: see :func:`~.backends.report`.  Ctrl-C
    stops the loop with status ``"interrupted"`` and the last strictly feasible iterate."""
    t_start = time.perf_counter()
    y0 = np.asarray(y0, dtype=np.float64)
    nonneg = np.asarray(sdp.nonneg, dtype=bool)
    nn = np.flatnonzero(nonneg)
    lmi = BlockTridiagonalLMI(sdp)
    dd, _ = lmi.blocks(y0)
    dscale = 1.0 / np.sqrt(np.maximum(np.concatenate([np.diag(b) for b in dd]), 1e-300))
    vscale = np.where(np.abs(y0) > 0, np.abs(y0), 1.0)
    lmi.rescale(dscale, vscale)
    st = lmi.starts
    y = y0 / vscale
    m = y.size
    cvec = np.zeros(m)
    cvec[0] = 1.0
    nu = float(lmi.n + nn.size)

    def dual_factor(yy):
        sd, se = lmi.blocks(yy)
        fac = block_cholesky(sd, se)
        return None if fac is None else (sd, se, fac[1])

    cur = dual_factor(y)
    if cur is None or np.any(y[nn] <= 0):
        raise SolverError(f"{label}: the starting point of the interior-point method is not strictly feasible")
    sd, se, schol = cur
    # work arrays reused by every iteration (at depth 64 each is 140 MB: freshly allocated ones cost page faults,
    # 30-70 % on the products that fill them)
    n_a = lmi.n_atoms
    work = {key: np.empty((lmi.n, lmi.n)) for key in ("z", "xhat", "y", "xy")}
    work.update({key: np.empty((n_a, lmi.n)) for key in ("tz", "tx")})
    work.update({key: np.empty((n_a, n_a)) for key in ("pz", "px")})
    work["h"] = np.empty((m, m))
    z = lmi.inverse(schol, se, out=work["z"])
    proj_z = lmi.projections(z, out=(work["tz"], work["pz"]))
    g = lmi.trace_products(proj_z)  # A(Z)
    # primal start on the central path's shape: X = μ Z (its completion is μZ itself), x = μ / y
    gl = g.copy()
    gl[nn] += 1.0 / y[nn]
    mu0 = max(float(cvec @ gl) / float(gl @ gl), 1e-12)
    xd, xe = _pattern(mu0 * z, st)
    xl = mu0 / y[nn]
    status = "iteration limit"
    it = 0
    last_print = t_start
    rel = res = float("nan")
    trace: list[tuple] = []  # per iteration: relative gap, primal residual, σ, primal step, dual step, seconds, ρ
    y_last = y0
    t_iter = time.perf_counter()
    last_dt = 0.0  # duration of the previous iteration: the forecast of the next one
    try:
        while it < max_iter:
            it += 1
            now = time.perf_counter()
            last_dt, t_iter = (now - t_iter if it > 1 else 0.0), now
            xchol = clique_cholesky(xd, xe)
            xinv = None if xchol is None else clique_inverse_factors(xchol)
            wd, we = (None, None) if xchol is None else completion_inverse(xd, xe, inverses=xinv)
            if wd is None:
                status = "primal iterate left the cone"
                break
            wfac = block_cholesky(wd, we)
            if wfac is None:
                status = "completion lost definiteness"
                break
            gap = _inner(xd, xe, sd, se) + float(xl @ y[nn])
            mu = gap / nu
            rp = cvec - lmi.trace_pattern(xd, xe)
            rp[nn] -= xl
            rel = gap / max(abs(y[0]), 1e-300)
            res = float(np.abs(rp).max())
            if callable(progress):
                report(progress, label, "", iteration=it, solver_rho=float(y[0] * lmi.vscale[0]), rel_gap=rel,
                       seconds=time.perf_counter() - t_start)
            elif progress and time.perf_counter() - last_print > 2.0:
                last_print = time.perf_counter()
                print(f"[{label}] {last_print - t_start:7.1f} s  iter {it}  rho~{y[0] * lmi.vscale[0]:.9g}  "
                      f"gap {rel:.1e}  primal residual {res:.1e}", file=sys.stderr, flush=True)
            if rel <= rel_gap and res <= rel_gap:
                status = "converged"
                break
            if time_limit is not None and time.perf_counter() - t_start + last_dt > time_limit:
                status = "time limit"
                break
            xhat = lmi.inverse(wfac[1], we, out=work["xhat"])  # (after the convergence test: not needed then)
            proj_x = lmi.projections(xhat, out=(work["tx"], work["px"]))
            wsol = _bt_factors(we, wfac[1])
            h = lmi.schur(proj_x, proj_z, lower=True, out=work["h"])
            h[nn, nn] += xl / y[nn]
            cf = _cholesky_lower(h)
            del h
            if cf is None:
                status = "Schur complement lost positive definiteness"
                break
            zd, ze = _pattern(z, st)
            zinv_y = np.zeros(m)
            zinv_y[nn] = 1.0 / y[nn]

            def direction(sigma, corr=None):
                rhs = sigma * mu * (g + zinv_y) - cvec
                if corr is not None:  # second-order term q: ΔX gets -P(q), so the Schur right-hand side gets -A(q)
                    aq = lmi.trace_pattern(corr[0], corr[1])
                    aq[nn] += corr[2]
                    rhs = rhs - aq
                dy = _cholesky_solve(cf, rhs)
                if not np.all(np.isfinite(dy)):
                    raise FloatingPointError("non-finite search direction")
                dsd, dse = lmi.blocks(dy, constant=False)
                ymat = _bt_times(dsd, dse, z, st, out=work["y"])  # Y = ΔS Z
                if corr is None:  # predictor: the corrector needs all of X̂ Y = W⁻¹ Y (solves with the completion's W)
                    xy = work["xy"]
                    np.copyto(xy, ymat)
                    _bt_solve(wsol, xy, st, overwrite=True)
                    pd_, pe_ = _sym_of(xy, st)  # P(sym(X̂ Y))
                else:  # only its pattern: one product per block row (cheaper than the solves)
                    xy = None
                    pd_, pe_ = _sym_pattern(xhat, ymat, st)
                dxd = [sigma * mu * a - b - c for a, b, c in zip(zd, xd, pd_)]
                dxe = [sigma * mu * a - b - c for a, b, c in zip(ze, xe, pe_)]
                dxl = sigma * mu / y[nn] - xl - xl * dy[nn] / y[nn]
                if corr is not None:
                    dxd = [a - b for a, b in zip(dxd, corr[0])]
                    dxe = [a - b for a, b in zip(dxe, corr[1])]
                    dxl = dxl - corr[2]
                return dy, (dsd, dse), dxd, dxe, dxl, (ymat, xy, pd_, pe_)

            def corrector(dy, dxl, pred):
                """Pattern of ``q = sym(ΔX̂ₐ ΔSₐ Z)`` for the affine direction, with the unprojected
                ``ΔX̂ₐ = -X̂ - sym(X̂ Yₐ)`` (``Yₐ = ΔSₐ Z``; on the central path it is the derivative of the
                max-determinant completion): ``q = -sym(X̂Y) - ½ sym(X̂ Y Y) - ½ Yᵀ X̂ Y``, all in ``O(n² s)`` from
                ``Y`` and ``X̂ Y = W⁻¹ Y`` (the direction's): ``P(X̂ Y Y)`` and ``P(Yᵀ (X̂ Y))`` are pattern products.
                (In float32 the iteration stalled on every trained net: Z's entries span too many orders.)"""
                ymat, xy, pd_, pe_ = pred
                t2d, t2e = _sym_pattern(xy, ymat, st)  # P(sym(X̂ Y Y))
                t3d, t3e = _gram_pattern(ymat, xy, st)  # P(Yᵀ X̂ Y)
                qd = [-a - 0.5 * (b + c) for a, b, c in zip(pd_, t2d, t3d)]
                qe = [-a - 0.5 * (b + c) for a, b, c in zip(pe_, t2e, t3e)]
                return qd, qe, dxl * dy[nn] / y[nn]

            def steps(dy, ds, dxd, dxe, dxl, rtol):
                neg = dxl < 0
                ap = min(1.0, _clique_step(xinv, dxd, dxe), float(np.min(-xl[neg] / dxl[neg])) if neg.any() else np.inf)
                negy = dy[nn] < 0
                hi = min(1.0, float(np.min(-y[nn][negy] / dy[nn][negy])) if negy.any() else np.inf)

                def dual_ok(a):
                    return block_cholesky([p + a * q for p, q in zip(sd, ds[0])],
                                          [p + a * q for p, q in zip(se, ds[1])]) is not None

                ad = _max_step(dual_ok, hi * (1 - 1e-12), rtol=rtol)
                return ap, ad

            dy, ds, dxd, dxe, dxl, pred = direction(0.0)
            ap, ad = steps(dy, ds, dxd, dxe, dxl, 5e-2)  # only for σ
            gap_aff = (_inner([p + ap * q for p, q in zip(xd, dxd)], [p + ap * q for p, q in zip(xe, dxe)],
                              [p + ad * q for p, q in zip(sd, ds[0])], [p + ad * q for p, q in zip(se, ds[1])])
                       + float((xl + ap * dxl) @ (y[nn] + ad * dy[nn])))
            sigma = float(np.clip((max(gap_aff, 0.0) / gap) ** 3, 1e-4, 1.0))
            corr = corrector(dy, dxl, pred)
            del pred
            dy, ds, dxd, dxe, dxl, _ = direction(sigma, corr)
            ap, ad = steps(dy, ds, dxd, dxe, dxl, 1e-2)
            # σ small: the affine predictor nearly reached the boundary, the iterate is well centred and the
            # second-order direction is accurate; go closer to the boundary (depth 64: 35 -> 33 iterations, the
            # tail gap falls 10-20x per step instead of 7x; SDPT3's 0.9 + 0.09·min(αp, αd) in every phase: 40)
            gam = STEP_FRACTION_FAST if sigma < FAST_SIGMA else STEP_FRACTION
            ap, ad = min(1.0, gam * ap), min(1.0, gam * ad)
            trace.append((rel, res, sigma, ap, ad, time.perf_counter() - t_start, y[0] * lmi.vscale[0]))
            xd = [p + ap * q for p, q in zip(xd, dxd)]
            xe = [p + ap * q for p, q in zip(xe, dxe)]
            xl = xl + ap * dxl
            ynew = y + ad * dy
            cur = dual_factor(ynew)
            if cur is None or np.any(ynew[nn] <= 0):
                status = "dual step lost feasibility"
                break
            y_last = ynew * lmi.vscale  # unscaled, in one assignment: what an interrupt returns
            # rebalance: S with unit diagonal and variables of order one (an exact change of coordinates; the
            # multipliers of deep nets move by many orders of magnitude during the solve)
            dr = 1.0 / np.sqrt(np.maximum(np.concatenate([np.diag(b) for b in cur[0]]), 1e-300))
            vr = np.where(np.abs(ynew) > 0, np.abs(ynew), 1.0)
            kappa = 1.0 / vr[0]  # the objective's scale changes with y₀'s: X and x follow
            lmi.rescale(lmi.dscale * dr, lmi.vscale * vr)
            y = ynew / vr
            drs = [dr[st[k] : st[k + 1]] for k in range(lmi.nb)]
            xd = [kappa * p / drs[k][:, None] / drs[k][None, :] for k, p in enumerate(xd)]
            xe = [kappa * p / drs[k][:, None] / drs[k + 1][None, :] for k, p in enumerate(xe)]
            xl = kappa * vr[nn] * xl
            cur = dual_factor(y)
            if cur is None:  # cannot happen in exact arithmetic; y is still the last iterate (certified by the caller)
                status = "rescaling lost feasibility"
                break
            sd, se, schol = cur
            z = lmi.inverse(schol, se, out=work["z"])
            proj_z = lmi.projections(z, out=(work["tz"], work["pz"]))
            g = lmi.trace_products(proj_z)
    except (np.linalg.LinAlgError, FloatingPointError, ValueError) as exc:
        # a non-finite direction (e.g. from an extremely ill-conditioned start): stop with the last strictly
        # feasible dual iterate, which the caller certifies like any other
        status = f"numerical failure ({exc})"
    except KeyboardInterrupt:  # the last checked strictly feasible iterate, unscaled (certified by the caller)
        status = "interrupted"
    return (y_last if status == "interrupted" else y * lmi.vscale), {
        "iterations": it,
        "status": status,
        "rel_gap": rel,
        "primal_residual": res,
        "seconds": time.perf_counter() - t_start,
        "trace": trace,
    }


def solve(sdp: ChainSDP, *, progress: bool = False, label: str = "lipsdp", **options) -> tuple[np.ndarray, str, dict]:
    """Backend ``ipm``: :func:`chain_pd_solve` from :func:`~verification.lipschitz.sdp.starts.chain_start` (the
    scaled ECLipsE-Fast point, or a generic one).  l2 LMIs with hidden layers only.  Options: ``rel_gap``,
    ``max_iter``, ``time_limit``; status ``"optimal"`` when converged; info keys ``ipm_*``."""
    if sdp.norm != 2 or not sdp.qcs:
        raise SolverError("the block-tridiagonal interior-point method handles l2 LMIs with hidden layers")
    unknown = set(options) - {"rel_gap", "max_iter", "time_limit"}
    if unknown:
        raise InvalidParameterError(f"unknown option(s) for solver 'ipm': {sorted(unknown)}")
    report(progress, label, f"block-tridiagonal primal-dual method, LMI {sdp.n}, {sdp.nonneg.shape[0]} multipliers")
    y, info = chain_pd_solve(sdp, chain_start(sdp), progress=progress, label=label, **options)
    status = "optimal" if info["status"] == "converged" else info["status"]
    return y, status, {f"ipm_{k}": v for k, v in info.items()}
