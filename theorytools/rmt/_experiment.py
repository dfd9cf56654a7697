"""Experiment helpers: batch-Hessian extremes over batch sizes, stable learning rates by bisection on
divergence, and fits of the theory curves (Granziol, Zohren & Roberts, JMLR 2022)."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from scipy.optimize import least_squares

from theorytools.errors import TheoryError
from theorytools.rmt._laws import spiked_wigner_outlier
from theorytools.rmt._spectral import lanczos
from theorytools.rmt._validate import positive_float, positive_int


def _batch_sizes(batch_sizes, n_samples: int | None, func: str) -> np.ndarray:
    b = np.asarray(batch_sizes)
    if b.ndim != 1 or b.size == 0 or not np.issubdtype(b.dtype, np.integer) or np.any(b <= 0):
        raise TheoryError(
            f"The 'batch_sizes' parameter of {func} must be a non-empty 1-D sequence of ints > 0. "
            f"Got {batch_sizes!r} instead.")
    if n_samples is not None and np.any(b > n_samples):
        raise TheoryError(
            f"The 'batch_sizes' parameter of {func} must not exceed the number of samples "
            f"({n_samples}). Got {batch_sizes!r} instead.")
    return b.astype(np.int64)


# --------------------------------------------------------------------------- lambda'_max(B)


@dataclass(frozen=True)
class BatchSpectrum:
    """Extreme eigenvalues of batch curvature matrices, per batch size (output of
    :func:`batch_extreme_eigenvalues`)."""

    batch_sizes: np.ndarray
    top: np.ndarray
    """Top eigenvalue per (batch size, batch), shape (len(batch_sizes), n_batches)."""
    bottom: np.ndarray
    """Smallest eigenvalue per (batch size, batch), same shape."""
    full_top: float | None
    """Top eigenvalue of the full-data operator (if ``full_indices`` was given), else None."""

    @property
    def top_mean(self) -> np.ndarray:
        return self.top.mean(axis=1)

    @property
    def top_std(self) -> np.ndarray:
        return self.top.std(axis=1, ddof=1) if self.top.shape[1] > 1 else np.zeros(len(self.top))


def batch_extreme_eigenvalues(operator_factory: Callable[[np.ndarray], object], n_samples: int,
                              batch_sizes: Sequence[int], *, n_batches: int = 5, steps: int = 40,
                              full: bool = True, seed=None) -> BatchSpectrum:
    """Measure ``lambda'_max(B)`` and ``lambda'_min(B)`` over random batches of each size.

    ``operator_factory(indices)`` returns the batch operator (array, LinearOperator, or
    :class:`TorchCurvatureOperator`) for the samples ``indices``; batches are drawn without replacement.
    Extremes are the outer Ritz values of ``steps`` Lanczos steps (lower/upper bounds that converge
    quickly for separated outliers; exact when ``steps >= P``).  With ``full=True`` the operator on all
    samples is also evaluated (``full_top``).
    """
    func = "batch_extreme_eigenvalues"
    n_samples = positive_int(n_samples, "n_samples", func)
    bs = _batch_sizes(batch_sizes, n_samples, func)
    n_batches = positive_int(n_batches, "n_batches", func)
    steps = positive_int(steps, "steps", func)
    rng = np.random.default_rng(seed)
    top = np.empty((bs.size, n_batches))
    bot = np.empty((bs.size, n_batches))
    for i, b in enumerate(bs):
        for k in range(n_batches):
            idx = np.sort(rng.choice(n_samples, size=int(b), replace=False))
            res = lanczos(operator_factory(idx), steps, seed=rng)
            top[i, k] = res.ritz_values[-1]
            bot[i, k] = res.ritz_values[0]
    full_top = None
    if full:
        full_top = float(lanczos(operator_factory(np.arange(n_samples)), steps,
                                 seed=rng).ritz_values[-1])
    return BatchSpectrum(bs, top, bot, full_top)


@dataclass(frozen=True)
class NoiseScale:
    """Estimate of the per-sample Hessian noise ``sigma^2`` (output of :func:`estimate_noise_scale`)."""

    sigma2: float
    """Mean entry variance of a single-sample curvature matrix about the full-data one."""
    stderr: float
    """Standard error over the (batch, probe) samples."""
    samples: np.ndarray = field(repr=False)


def estimate_noise_scale(operator_factory: Callable[[np.ndarray], object], n_samples: int,
                         batch_size: int, *, n_batches: int = 8, n_probes: int = 2,
                         probes: np.ndarray | None = None, seed=None) -> NoiseScale:
    """Estimate ``sigma^2`` of the noise model ``Var(eps_ij) = sigma^2 / B`` directly from batches.

    For a Wigner-type ``eps = H_B - H`` with entry variance ``s^2`` and a unit probe ``z``,
    ``E ||eps z||^2 = P s^2``; hence ``sigma^2 = B ||(H_B - H) z||^2 / P``, divided by the
    finite-population factor ``(N - B)/(N - 1)`` since batches are drawn without replacement from the
    ``N = n_samples`` points.  ``H`` is the operator on all samples.  With ``lambda1`` of ``H`` this gives
    the parameter-free prediction ``lambda' = lambda1 + P sigma^2 / (B lambda1)`` (no curve fitting).

    ``probes`` (rows, normalised here) replaces the random unit probes.  Passing the top eigenvector
    ``v1`` of ``H`` measures the noise where it matters for the outlier: second-order perturbation gives
    ``lambda' - lambda1 ~ ||eps v1||^2 / lambda1``, so ``P sigma^2_eff = B E||eps v1||^2`` is the effective
    noise of the outlier law even when the fluctuation is not isotropic.
    """
    from theorytools.rmt._spectral import as_matvec

    func = "estimate_noise_scale"
    n_samples = positive_int(n_samples, "n_samples", func)
    batch_size = positive_int(batch_size, "batch_size", func)
    if batch_size >= n_samples:
        raise TheoryError(
            f"The 'batch_size' parameter of {func} must be < n_samples = {n_samples}. Got "
            f"{batch_size} instead.")
    n_batches = positive_int(n_batches, "n_batches", func)
    n_probes = positive_int(n_probes, "n_probes", func)
    rng = np.random.default_rng(seed)
    full, P = as_matvec(operator_factory(np.arange(n_samples)), None, func)
    if probes is None:
        probes = rng.standard_normal((n_probes, P))
    else:
        probes = np.atleast_2d(np.asarray(probes, dtype=np.float64))
        if probes.shape[1] != P or not np.all(np.isfinite(probes)) or \
                np.any(np.linalg.norm(probes, axis=1) == 0):
            raise TheoryError(
                f"The 'probes' parameter of {func} must hold nonzero finite rows of length {P}. Got "
                f"shape {probes.shape} instead.")
    probes = probes / np.linalg.norm(probes, axis=1, keepdims=True)
    full_z = [full(z) for z in probes]
    fpc = (n_samples - batch_size) / (n_samples - 1)
    out = []
    for _ in range(n_batches):
        idx = np.sort(rng.choice(n_samples, size=batch_size, replace=False))
        mv, _ = as_matvec(operator_factory(idx), P, func)
        for z, hz in zip(probes, full_z):
            d = mv(z) - hz
            out.append(batch_size * float(d @ d) / P / fpc)
    arr = np.asarray(out)
    se = float(arr.std(ddof=1) / np.sqrt(arr.size)) if arr.size > 1 else float("nan")
    return NoiseScale(float(arr.mean()), se, arr)


@dataclass(frozen=True)
class BatchCurveFit:
    """Fit of ``lambda'_max(B)`` to the spiked-Wigner law (output of :func:`fit_batch_curve`)."""

    lambda1: float
    """Fitted full-Hessian top eigenvalue."""
    noise: float
    """Fitted ``P sigma^2`` (so that the outlier branch reads ``lambda1 + noise / (B lambda1)``)."""
    critical_batch_size: float
    """``noise / lambda1^2`` = P sigma^2 / lambda1^2."""
    method: str
    residual_rms: float

    def predict(self, B) -> np.ndarray:
        """``lambda'_max(B)`` of the fitted law (both BBP branches for method 'bbp')."""
        B = np.asarray(B, dtype=np.float64)
        if self.method == "outlier":
            return self.lambda1 + self.noise / (B * self.lambda1)
        return np.asarray(spiked_wigner_outlier(self.lambda1, math.sqrt(self.noise), 1.0, B))


def fit_batch_curve(batch_sizes, lam_max, *, method: str = "bbp") -> BatchCurveFit:
    """Fit measured ``lambda'_max(B)`` to the theory curve.

    ``method='outlier'``: linear least squares of ``lambda' = a + c / B`` (outlier branch), giving
    ``lambda1 = a`` and ``P sigma^2 = a c``.  ``method='bbp'``: nonlinear least squares of the full
    law (outlier above ``B* = P sigma^2/lambda1^2``, bulk edge ``2 sigma sqrt(P/B)`` below), initialised
    from the outlier fit.  Only the combination ``P sigma^2`` is identifiable from ``lambda'(B)``.
    """
    func = "fit_batch_curve"
    B = np.asarray(batch_sizes, dtype=np.float64).reshape(-1)
    y = np.asarray(lam_max, dtype=np.float64).reshape(-1)
    if B.size != y.size or B.size < 2 or np.any(B <= 0) or not np.all(np.isfinite(y)):
        raise TheoryError(
            f"{func} needs >= 2 positive batch sizes and as many finite eigenvalues; got "
            f"{B.size} batch sizes and {y.size} values.")
    if method not in ("outlier", "bbp"):
        raise TheoryError(
            f"The 'method' parameter of {func} must be 'outlier' or 'bbp'. Got {method!r} instead.")
    A = np.stack([np.ones_like(B), 1.0 / B], axis=1)
    (a, c), *_ = np.linalg.lstsq(A, y, rcond=None)
    a = max(float(a), 1e-12 * max(abs(y).max(), 1.0))
    noise = max(float(c) * a, 1e-300)
    fit = BatchCurveFit(a, noise, noise / a**2, "outlier", 0.0)
    if method == "bbp":
        def resid(p):
            l1, ln = math.exp(p[0]), math.exp(p[1])
            return np.asarray(spiked_wigner_outlier(l1, math.sqrt(ln), 1.0, B)) - y
        sol = least_squares(resid, [math.log(a), math.log(noise)], method="lm")
        l1, nz = math.exp(sol.x[0]), math.exp(sol.x[1])
        fit = BatchCurveFit(l1, nz, nz / l1**2, "bbp", 0.0)
    r = fit.predict(B) - y
    return BatchCurveFit(fit.lambda1, fit.noise, fit.critical_batch_size, fit.method,
                         float(np.sqrt(np.mean(r**2))))


# --------------------------------------------------------------------------- stable learning rate


@dataclass(frozen=True)
class StableLR:
    """Output of :func:`max_stable_lr`: ``diverges(stable) is False``, ``diverges(unstable) is True``."""

    alpha: float
    """Geometric midpoint of the final bracket."""
    stable: float
    unstable: float
    evaluations: int


def max_stable_lr(diverges: Callable[[float], bool], *, lo: float = 1e-4, hi: float = 1.0,
                  rel_tol: float = 1e-3, max_evals: int = 80) -> StableLR:
    """Largest learning rate for which ``diverges(alpha)`` is False, by bisection on divergence.

    The bracket ``[lo, hi]`` is first widened geometrically (x0.5 / x2) until ``lo`` is stable and
    ``hi`` diverges, then bisected in log space until ``unstable/stable - 1 <= rel_tol``.  Assumes
    divergence is monotone in alpha (true for GD on a quadratic: diverges iff alpha > 2/lambda_max;
    approximately true for SGD/Adam with fixed batches and seed).
    """
    func = "max_stable_lr"
    lo = positive_float(lo, "lo", func)
    hi = positive_float(hi, "hi", func)
    rel_tol = positive_float(rel_tol, "rel_tol", func)
    max_evals = positive_int(max_evals, "max_evals", func)
    if hi <= lo:
        raise TheoryError(f"max_stable_lr needs lo < hi. Got lo={lo}, hi={hi}.")
    n = 0
    while diverges(lo):
        n += 1
        hi, lo = lo, lo * 0.5
        if n >= max_evals or lo < 1e-300:
            raise TheoryError("max_stable_lr: found no stable learning rate (every tried value diverged).")
    n += 1
    while not diverges(hi):
        n += 1
        lo, hi = hi, hi * 2.0
        if n >= max_evals or hi > 1e300:
            raise TheoryError("max_stable_lr: found no divergent learning rate below the search limit.")
    n += 1
    while hi / lo - 1.0 > rel_tol and n < max_evals:
        mid = math.sqrt(lo * hi)
        n += 1
        if diverges(mid):
            hi = mid
        else:
            lo = mid
    return StableLR(math.sqrt(lo * hi), lo, hi, n)


def gd_diverges(loss: Callable[[np.ndarray], float], grad: Callable[[np.ndarray], np.ndarray],
                w0: np.ndarray, alpha: float, steps: int = 2000, *, blowup: float = 1.0) -> bool:
    """Run ``steps`` steps of full-batch GD ``w <- w - alpha grad(w)``; diverged if the loss becomes
    non-finite or the final loss exceeds ``blowup * loss(w0)``.

    On a convex quadratic GD decreases the loss monotonically for ``alpha < 2/lambda_max`` and the
    component along the top eigenvector grows like ``|1 - alpha lambda_max|^t`` above it, so with
    ``blowup=1`` the detected threshold is ``2/lambda_max`` up to a relative error of order
    ``log(loss0 / top-component loss) / (4 steps)``.
    """
    w = np.array(w0, dtype=np.float64)
    l0 = float(loss(w))
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(int(steps)):
            w = w - alpha * grad(w)
            if not np.all(np.isfinite(w)):
                return True
        lt = float(loss(w))
    return (not math.isfinite(lt)) or lt > blowup * l0


def torch_training_diverges(model, loss_fn: Callable, inputs, targets, *, lr: float, batch_size: int,
                            optimizer: str = "sgd", steps: int = 200, seed: int = 0,
                            blowup: float = 2.0, momentum: float = 0.0,
                            criterion: str = "final") -> bool:
    """Train a *copy* of ``model`` for ``steps`` minibatch steps and report divergence.

    Batches of ``batch_size`` are drawn without replacement from a generator seeded with ``seed``, so
    every learning rate sees the same batches (common random numbers keep bisection consistent).
    ``optimizer``: 'sgd' (``torch.optim.SGD``, optional ``momentum``) or 'adam' (``torch.optim.Adam``,
    default betas, eps=1e-8).  Diverged: a non-finite loss, or (``criterion='final'``) the full-data
    loss at the end larger than ``blowup`` times the initial full-data loss, or (``criterion='peak'``)
    the full-data loss, checked every 10 steps and at the end, ever larger than ``blowup`` times its
    initial value (catches transient loss spikes of adaptive methods that later recover).
    """
    import torch

    func = "torch_training_diverges"
    lr = positive_float(lr, "lr", func)
    batch_size = positive_int(batch_size, "batch_size", func)
    n = int(inputs.shape[0])
    if batch_size > n:
        raise TheoryError(f"The 'batch_size' parameter of {func} must be <= {n}. Got {batch_size}.")
    net = copy.deepcopy(model)
    params = [p for p in net.parameters() if p.requires_grad]
    if optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum)
    elif optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr)
    else:
        raise TheoryError(
            f"The 'optimizer' parameter of {func} must be 'sgd' or 'adam'. Got {optimizer!r} instead.")
    if criterion not in ("final", "peak"):
        raise TheoryError(
            f"The 'criterion' parameter of {func} must be 'final' or 'peak'. Got {criterion!r} instead.")
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        l0 = float(loss_fn(net(inputs), targets))
    for step in range(int(steps)):
        idx = torch.randperm(n, generator=gen)[:batch_size]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(inputs[idx]), targets[idx])
        if not torch.isfinite(loss):
            return True
        loss.backward()
        opt.step()
        if criterion == "peak" and (step + 1) % 10 == 0:
            with torch.no_grad():
                lk = float(loss_fn(net(inputs), targets))
            if not lk <= blowup * l0:
                return True
    with torch.no_grad():
        lt = float(loss_fn(net(inputs), targets))
    return (not math.isfinite(lt)) or lt > blowup * l0


@dataclass(frozen=True)
class LRScalingFit:
    """Power-law fit ``alpha_max = prefactor * B**exponent`` (output of :func:`fit_lr_scaling`)."""

    exponent: float
    prefactor: float
    exponent_stderr: float


def fit_lr_scaling(batch_sizes, alphas) -> LRScalingFit:
    """Least-squares fit of ``log alpha = log c + k log B``: k ~ 1 is the linear (SGD) rule, k ~ 1/2
    the square-root (adaptive) rule."""
    B = np.asarray(batch_sizes, dtype=np.float64).reshape(-1)
    a = np.asarray(alphas, dtype=np.float64).reshape(-1)
    if B.size != a.size or B.size < 2 or np.any(B <= 0) or np.any(a <= 0):
        raise TheoryError("fit_lr_scaling needs >= 2 positive batch sizes and as many positive rates.")
    X = np.stack([np.ones_like(B), np.log(B)], axis=1)
    coef, *_ = np.linalg.lstsq(X, np.log(a), rcond=None)
    se = float("nan")
    if B.size > 2:
        r = np.log(a) - X @ coef
        s2 = float(r @ r) / (B.size - 2)
        se = float(np.sqrt(s2 * np.linalg.inv(X.T @ X)[1, 1]))
    return LRScalingFit(float(coef[1]), float(np.exp(coef[0])), se)


@dataclass(frozen=True)
class LRSweep:
    """Measured maximal stable learning rates per batch size (output of :func:`stable_lr_sweep`)."""

    batch_sizes: np.ndarray
    alphas: np.ndarray
    optimizer: str
    fit: LRScalingFit | None
    """Power-law fit (None for a single batch size)."""
    details: tuple = field(default=(), repr=False)


def stable_lr_sweep(model, loss_fn: Callable, inputs, targets, batch_sizes: Sequence[int], *,
                    optimizer: str = "sgd", steps: int = 200, seed: int = 0, lo: float = 1e-3,
                    hi: float = 1.0, rel_tol: float = 0.02, blowup: float = 2.0,
                    criterion: str = "final") -> LRSweep:
    """For each batch size, bisect the largest learning rate at which training a copy of ``model`` with
    ``optimizer`` for ``steps`` steps does not diverge (:func:`torch_training_diverges`), then fit the
    power law ``alpha ~ B^k`` (:func:`fit_lr_scaling`)."""
    func = "stable_lr_sweep"
    bs = _batch_sizes(batch_sizes, int(inputs.shape[0]), func)
    res = []
    for b in bs:
        r = max_stable_lr(
            lambda a, b=int(b): torch_training_diverges(
                model, loss_fn, inputs, targets, lr=a, batch_size=b, optimizer=optimizer,
                steps=steps, seed=seed, blowup=blowup, criterion=criterion),
            lo=lo, hi=hi, rel_tol=rel_tol)
        res.append(r)
    alphas = np.array([r.alpha for r in res])
    fit = fit_lr_scaling(bs, alphas) if bs.size >= 2 else None
    return LRSweep(bs, alphas, optimizer, fit, tuple(res))
