"""Predictions of infinitely wide networks trained by gradient flow on the MSE, and NNGP inference.

Time and loss conventions (identical to neural-tangents ``predict``):

* loss L(f) = ||f(X) − Y||² / (2·m) with m = ``y_train.size`` (number of scalar targets),
* gradient flow on L with learning rate η; ``t`` is the number of steps, so the absolute time is η·t.
  The linearised train outputs then obey (Jacot et al. 2018 §5; Lee et al. 2019 eq. (9))
      f_t(X) = Y + exp(−η·t·Θ/m)·(f_0(X) − Y),
      f_t(x) = f_0(x) + Θ(x, X)·Θ⁻¹·(I − exp(−η·t·Θ/m))·(Y − f_0(X)),
  where Θ acts on the sample axis (one kernel per output unit).  ``t = None`` or ``inf`` gives t → ∞.
* Jacot's own normalisation (cost ½||f − f*||²_{p_in} with p_in the empirical measure on N points,
  lr 1) is the special case m = N for a scalar output.

Ill-conditioned kernels (deep ReLU/Erf nets) should be regularised with ``diag_reg``: ``diag_reg·mean(diag Θ)``
is added to the diagonal (``diag_reg_absolute_scale=True``: ``diag_reg`` itself).  Negative eigenvalues
(round-off) are clipped to 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla

from theorytools.errors import TheoryError

__all__ = [
    "MSEPrediction",
    "GaussianPrediction",
    "gradient_descent_mse",
    "gradient_descent_mse_ensemble",
    "nngp_posterior",
    "max_learning_rate",
    "KernelSolve",
    "kernel_solve",
]


@dataclass(frozen=True)
class MSEPrediction:
    """Outputs of the linearised network at time ``t``.

    Attributes:
        t: the time(s) (number of steps of size ``learning_rate``; ``inf`` for t → ∞).
        train: f_t(X_train), shape of ``y_train``, with a leading time axis for several times
            (at t = ∞ this is ``y_train``: Θ is assumed non-singular).
        test: f_t(x_test), same layout, or ``None`` without test data.
    """

    t: float | np.ndarray
    train: np.ndarray | None
    test: np.ndarray | None


@dataclass(frozen=True)
class GaussianPrediction:
    """Mean and covariance of a Gaussian distribution of test outputs (per output unit).

    Attributes:
        mean: (n_test, k) predictive mean.
        covariance: (n_test, n_test) covariance (shared by the k output units), or ``None``.
    """

    mean: np.ndarray
    covariance: np.ndarray | None


def _sym(name: str, owner: str, k) -> np.ndarray:
    k = np.asarray(k, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] == 0 or not np.all(np.isfinite(k)):
        raise TheoryError(f"The '{name}' parameter of {owner} must be a finite square matrix. Got shape {k.shape} instead.")
    return 0.5 * (k + k.T)


def _targets(y, n: int, owner: str) -> tuple[np.ndarray, bool]:
    y = np.asarray(y, dtype=np.float64)
    vec = y.ndim == 1
    if vec:
        y = y[:, None]
    if y.ndim != 2 or y.shape[0] != n or not np.all(np.isfinite(y)):
        raise TheoryError(f"The 'y_train' parameter of {owner} must be a finite array with {n} rows. Got shape {y.shape} instead.")
    return y, vec


def _regularise(k: np.ndarray, diag_reg: float, absolute: bool, owner: str) -> np.ndarray:
    if not isinstance(diag_reg, (int, float, np.floating)) or not math.isfinite(diag_reg) or diag_reg < 0:
        raise TheoryError(f"The 'diag_reg' parameter of {owner} must be a float >= 0. Got {diag_reg!r} instead.")
    if diag_reg == 0:
        return k
    scale = float(diag_reg) if absolute else float(diag_reg) * float(np.mean(np.diag(k)))
    return k + scale * np.eye(k.shape[0])


def _off(name: str, k, n_train: int, owner: str) -> np.ndarray:
    k = np.asarray(k, dtype=np.float64)
    if k.ndim != 2 or k.shape[1] != n_train or not np.all(np.isfinite(k)):
        raise TheoryError(
            f"The '{name}' parameter of {owner} must be a finite (n_test, {n_train}) matrix. Got shape {k.shape} instead."
        )
    return k


def _fx(name: str, f, shape: tuple[int, int], owner: str) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    try:
        return np.broadcast_to(f.reshape(f.shape + (1,) if f.ndim == 1 and shape[1] == 1 else f.shape), shape)
    except ValueError:
        raise TheoryError(f"The '{name}' parameter of {owner} must broadcast to shape {shape}. Got shape {f.shape} instead.") from None


def _times(t) -> tuple[np.ndarray, bool]:
    if t is None:
        return np.array([np.inf]), True
    arr = np.asarray(t, dtype=np.float64)
    if arr.ndim > 1 or np.any(np.isnan(arr)) or np.any(arr < 0):
        raise TheoryError(f"The 't' parameter must be None, a float >= 0 (inf allowed) or a 1-D array of those. Got {t!r} instead.")
    return np.atleast_1d(arr), arr.ndim == 0


def _check_lr(lr, owner: str) -> float:
    if not isinstance(lr, (int, float, np.floating)) or not math.isfinite(lr) or lr <= 0:
        raise TheoryError(f"The 'learning_rate' parameter of {owner} must be a float > 0. Got {lr!r} instead.")
    return float(lr)


def gradient_descent_mse(
    ntk_train_train: np.ndarray,
    y_train: np.ndarray,
    t: float | np.ndarray | None = None,
    *,
    ntk_test_train: np.ndarray | None = None,
    fx_train_0: np.ndarray | float = 0.0,
    fx_test_0: np.ndarray | float = 0.0,
    learning_rate: float = 1.0,
    diag_reg: float = 0.0,
    diag_reg_absolute_scale: bool = False,
) -> MSEPrediction:
    """Outputs of a network trained by gradient flow on the MSE in the linearised (NTK) regime.

    f_t(X) = Y + e^{−η·t·Θ/m}(f_0(X) − Y);  f_t(x) = f_0(x) + Θ(x,X)Θ⁻¹(I − e^{−η·t·Θ/m})(Y − f_0(X)),
    m = y_train.size (module docstring; Lee et al. 2019 eq. (9)–(10)).

    Args:
        ntk_train_train: (n, n) NTK Θ(X, X).
        y_train: (n,) or (n, k) targets Y.
        t: time in steps (absolute time η·t); scalar, 1-D array, or ``None``/``inf`` for t → ∞.
        ntk_test_train: (n_test, n) Θ(x, X) to predict test outputs.
        fx_train_0, fx_test_0: outputs at initialisation (default 0, e.g. the ensemble mean).
        learning_rate: η.
        diag_reg: ridge added to Θ (relative to mean(diag Θ) unless ``diag_reg_absolute_scale``).

    Returns:
        :class:`MSEPrediction` (arrays keep the shape of ``y_train``, with a leading time axis for array ``t``).
    """
    owner = "gradient_descent_mse"
    k = _regularise(_sym("ntk_train_train", owner, ntk_train_train), diag_reg, diag_reg_absolute_scale, owner)
    n = k.shape[0]
    y, vec = _targets(y_train, n, owner)
    lr = _check_lr(learning_rate, owner)
    ts, scalar_t = _times(t)
    f0 = _fx("fx_train_0", fx_train_0, y.shape, owner)
    r0 = f0 - y
    kt = None if ntk_test_train is None else _off("ntk_test_train", ntk_test_train, n, owner)
    ft0 = None if kt is None else _fx("fx_test_0", fx_test_0, (kt.shape[0], y.shape[1]), owner)
    lam, v = np.linalg.eigh(k)
    lam = np.maximum(lam, 0.0)
    vr = v.T @ r0  # residual in the eigenbasis
    ktv = None if kt is None else kt @ v
    m = y.size
    trains, tests = [], []
    for ti in ts:
        if np.isinf(ti):
            trains.append(y.copy())  # f_∞(X) = Y for non-singular Θ
            if kt is not None:
                tests.append(ft0 - kt @ _solve_psd(k, r0))
            continue
        rate = lr * ti / m
        decay = np.exp(-rate * lam)  # e^{−η t λ/m}
        trains.append(y + v @ (decay[:, None] * vr))
        if kt is not None:
            # (1 − e^{−η t λ/m})/λ, → η t/m as λ → 0
            with np.errstate(divide="ignore", invalid="ignore"):
                g = np.where(lam > 0, -np.expm1(-rate * lam) / np.where(lam > 0, lam, 1.0), rate)
            tests.append(ft0 - ktv @ (g[:, None] * vr))
    train = _pack(trains, vec, scalar_t)
    test = None if kt is None else _pack(tests, vec, scalar_t)
    return MSEPrediction(t=float(ts[0]) if scalar_t else ts, train=train, test=test)


def _pack(vals: list, vec: bool, scalar_t: bool):
    out = np.stack(vals)
    if vec:
        out = out[..., 0]
    return out[0] if scalar_t else out


def _solve_psd(k: np.ndarray, b: np.ndarray) -> np.ndarray:
    """K⁻¹b by Cholesky, falling back to a least-squares pseudo-inverse for singular K."""
    try:
        c = sla.cho_factor(k, lower=True, check_finite=False)
        return sla.cho_solve(c, b, check_finite=False)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(k, b, rcond=None)[0]


def gradient_descent_mse_ensemble(
    ntk_train_train: np.ndarray,
    ntk_test_train: np.ndarray,
    nngp_train_train: np.ndarray,
    nngp_test_train: np.ndarray,
    nngp_test_test: np.ndarray | None,
    y_train: np.ndarray,
    t: float | None = None,
    *,
    learning_rate: float = 1.0,
    diag_reg: float = 0.0,
    diag_reg_absolute_scale: bool = False,
) -> GaussianPrediction:
    """Mean and covariance over random initialisations of infinitely wide nets trained on the MSE.

    With A_t = I − e^{−η·t·Θ/m} (m = y_train.size; A_∞ = I) and M = Θ(x,X)Θ⁻¹A_t (Lee et al. 2019,
    eq. (15)–(16)):  μ(x) = M·Y,
    Σ(x,x') = K(x,x') + M·K(X,X)·Mᵀ − (M·K(X,x') + K(x,X)·Mᵀ),  K = NNGP.
    Passing the NNGP as the "NTK" too gives the readout-only-trained ensemble; at t = ∞ that is the
    NNGP posterior (:func:`nngp_posterior`).

    Args:
        ntk_train_train, ntk_test_train: Θ(X, X) (n, n) and Θ(x, X) (n_test, n).
        nngp_train_train, nngp_test_train: K(X, X) and K(x, X).
        nngp_test_test: K(x, x) (n_test, n_test), or ``None`` to skip the covariance.
        y_train: (n,) or (n, k) targets.
        t: time in steps of ``learning_rate`` (``None``/``inf`` for t → ∞).

    Returns:
        :class:`GaussianPrediction`; ``mean`` has the shape of ``y_train`` with n_test rows.
    """
    owner = "gradient_descent_mse_ensemble"
    th = _regularise(_sym("ntk_train_train", owner, ntk_train_train), diag_reg, diag_reg_absolute_scale, owner)
    n = th.shape[0]
    y, vec = _targets(y_train, n, owner)
    th_x = _off("ntk_test_train", ntk_test_train, n, owner)
    kk = _sym("nngp_train_train", owner, nngp_train_train)
    if kk.shape[0] != n:
        raise TheoryError(f"The 'nngp_train_train' parameter of {owner} must be ({n}, {n}). Got {kk.shape} instead.")
    k_x = _off("nngp_test_train", nngp_test_train, n, owner)
    lr = _check_lr(learning_rate, owner)
    ts, scalar_t = _times(t)
    if not scalar_t:
        raise TheoryError(f"The 't' parameter of {owner} must be a scalar or None. Got {t!r} instead.")
    ti = ts[0]
    if np.isinf(ti):
        mmat = _solve_psd(th, th_x.T).T  # Θ(x,X)Θ⁻¹
    else:
        lam, v = np.linalg.eigh(th)
        lam = np.maximum(lam, 0.0)
        rate = lr * ti / y.size
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.where(lam > 0, -np.expm1(-rate * lam) / np.where(lam > 0, lam, 1.0), rate)
        mmat = ((th_x @ v) * g[None, :]) @ v.T  # Θ(x,X)Θ⁻¹(I − e^{−ηtΘ/m})
    mean = mmat @ y
    cov = None
    if nngp_test_test is not None:
        kxx = _sym("nngp_test_test", owner, nngp_test_test)
        if kxx.shape[0] != th_x.shape[0]:
            raise TheoryError(f"The 'nngp_test_test' parameter of {owner} must be square of size {th_x.shape[0]}. Got {kxx.shape} instead.")
        cross = mmat @ k_x.T
        cov = kxx + mmat @ kk @ mmat.T - (cross + cross.T)
        cov = 0.5 * (cov + cov.T)
    return GaussianPrediction(mean=mean[:, 0] if vec else mean, covariance=cov)


def nngp_posterior(
    nngp_train_train: np.ndarray,
    nngp_test_train: np.ndarray,
    y_train: np.ndarray,
    nngp_test_test: np.ndarray | None = None,
    *,
    diag_reg: float = 0.0,
    diag_reg_absolute_scale: bool = False,
) -> GaussianPrediction:
    """Exact Bayesian (GP) posterior of the infinitely wide network with NNGP prior K, noise-free
    unless ``diag_reg`` (Lee et al. 2018 eq. (2)–(3)): μ = K(x,X)K⁻¹Y, Σ = K(x,x) − K(x,X)K⁻¹K(X,x)."""
    owner = "nngp_posterior"
    kk = _regularise(_sym("nngp_train_train", owner, nngp_train_train), diag_reg, diag_reg_absolute_scale, owner)
    n = kk.shape[0]
    y, vec = _targets(y_train, n, owner)
    k_x = _off("nngp_test_train", nngp_test_train, n, owner)
    sol = _solve_psd(kk, np.concatenate([y, k_x.T], axis=1))
    mean = k_x @ sol[:, : y.shape[1]]
    cov = None
    if nngp_test_test is not None:
        kxx = _sym("nngp_test_test", owner, nngp_test_test)
        cov = kxx - k_x @ sol[:, y.shape[1]:]
        cov = 0.5 * (cov + cov.T)
    return GaussianPrediction(mean=mean[:, 0] if vec else mean, covariance=cov)


def max_learning_rate(ntk_train_train: np.ndarray, y_train_size: int | None = None, momentum: float = 0.0) -> float:
    """Largest stable learning rate of (momentum) gradient descent on the linearised MSE problem:
    η_max = 2(1 + momentum)·m / λ_max(Θ), m = ``y_train_size`` (default n, i.e. a scalar output),
    consistent with the loss ||f − Y||²/(2m) of :func:`gradient_descent_mse`."""
    owner = "max_learning_rate"
    k = _sym("ntk_train_train", owner, ntk_train_train)
    m = k.shape[0] if y_train_size is None else y_train_size
    if not isinstance(m, (int, np.integer)) or isinstance(m, bool) or m < 1:
        raise TheoryError(f"The 'y_train_size' parameter of {owner} must be an int >= 1. Got {y_train_size!r} instead.")
    if not isinstance(momentum, (int, float, np.floating)) or not 0 <= momentum < 1:
        raise TheoryError(f"The 'momentum' parameter of {owner} must be a float in [0, 1). Got {momentum!r} instead.")
    lmax = float(sla.eigvalsh(k, subset_by_index=[k.shape[0] - 1, k.shape[0] - 1])[0])
    if lmax <= 0:
        raise TheoryError("max_learning_rate needs a kernel with a positive largest eigenvalue.")
    return 2.0 * (1.0 + float(momentum)) * m / lmax


@dataclass(frozen=True)
class KernelSolve:
    """Result of :func:`kernel_solve`: weights α = (K + r·I)⁻¹Y and the conditioning of the problem.

    Attributes:
        weights: α, shape of ``targets`` (predictions are K(x, X)·α).
        ridge: the absolute ridge r actually added to the eigenvalues.
        eigenvalues: eigenvalues of the symmetrised K, ascending, before clipping.
        condition: λ_max/λ_min of K (``inf`` when λ_min <= 0, i.e. singular in float64).
        condition_regularised: (λ_max + r)/(max(λ_min, 0) + r), the conditioning of the solved system.
        noise_floor: n·eps·λ_max, the size of the round-off in the computed eigenvalues.
        numerical_rank: number of eigenvalues above ``noise_floor``.
        fitted: K·α, the fitted training outputs (= Y only if K is numerically invertible and r ≪ λ_min).
        relative_residual: ‖K·α − Y‖_F / ‖Y‖_F.
    """

    weights: np.ndarray
    ridge: float
    eigenvalues: np.ndarray
    condition: float
    condition_regularised: float
    noise_floor: float
    numerical_rank: int
    fitted: np.ndarray
    relative_residual: float


def kernel_solve(k: np.ndarray, targets: np.ndarray, ridge: float | str = "auto", *,
                 relative: bool = True) -> KernelSolve:
    """Stable solve of the kernel system K·α = Y (kernel interpolation / ridge regression).

    Method: symmetric eigendecomposition K = V·Λ·Vᵀ (LAPACK ``syevd``); eigenvalues below 0, which
    are round-off for a PSD kernel, are clipped to 0; α = V·(Λ₊ + r)⁻¹·Vᵀ·Y.  This never fails and,
    unlike an SVD pseudo-inverse with cut-off ~eps, does not amplify the round-off of the near-zero
    eigenvalues into α.

    Args:
        k: (n, n) symmetric PSD kernel matrix.
        targets: (n,) or (n, c) right-hand side.
        ridge: ``"auto"`` (default): r = n·eps·λ_max, the round-off level of the computed eigenvalues
            (Weyl's bound for a backward-stable eigensolver), the smallest ridge that removes the
            noise; a float >= 0: r = ridge·mean(diag K) (``relative=True``) or r = ridge.  ``0`` gives the
            pseudo-inverse on the clipped spectrum (zero eigenvalues dropped), which for a numerically
            singular K amplifies round-off.
        relative: scale a float ``ridge`` by mean(diag K).

    Returns:
        :class:`KernelSolve` with the weights, the ridge used, condition numbers and the training fit.
    """
    owner = "kernel_solve"
    kk = _sym("k", owner, k)
    n = kk.shape[0]
    y = np.asarray(targets, dtype=np.float64)
    if y.shape[:1] != (n,) or y.ndim > 2 or not np.all(np.isfinite(y)):
        raise TheoryError(f"The 'targets' parameter of {owner} must be a finite array with {n} rows. Got shape {y.shape} instead.")
    lam, v = np.linalg.eigh(kk)
    lmax = float(lam[-1])
    if lmax <= 0:
        raise TheoryError(f"{owner} needs a kernel with a positive largest eigenvalue.")
    floor = n * np.finfo(np.float64).eps * lmax
    if isinstance(ridge, str):
        if ridge != "auto":
            raise TheoryError(f"The 'ridge' parameter of {owner} must be 'auto' or a float >= 0. Got {ridge!r} instead.")
        r = floor
    else:
        if not isinstance(ridge, (int, float, np.floating)) or isinstance(ridge, bool) or not math.isfinite(ridge) or ridge < 0:
            raise TheoryError(f"The 'ridge' parameter of {owner} must be 'auto' or a float >= 0. Got {ridge!r} instead.")
        r = float(ridge) * (float(np.mean(np.diag(kk))) if relative else 1.0)
    lc = np.maximum(lam, 0.0) + r
    inv = np.zeros_like(lc)
    np.divide(1.0, lc, out=inv, where=lc > 0)
    alpha = v @ (inv.reshape(-1, *([1] * (y.ndim - 1))) * (v.T @ y))
    fitted = kk @ alpha
    lmin = float(lam[0])
    cond = lmax / lmin if lmin > 0 else math.inf
    lo = max(lmin, 0.0) + r
    cond_r = (lmax + r) / lo if lo > 0 else math.inf
    ynorm = float(np.linalg.norm(y))
    res = float(np.linalg.norm(fitted - y)) / ynorm if ynorm > 0 else float(np.linalg.norm(fitted))
    return KernelSolve(alpha, r, lam, cond, cond_r, floor, int(np.sum(lam > floor)), fitted, res)

