"""Spectral estimation for symmetric operators given only as matrix-vector products.

Lanczos with full reorthogonalisation, stochastic Lanczos quadrature (SLQ) densities, power
iteration for the top *algebraic* eigenvalue and Hutchinson's trace estimator.  An operator is a
symmetric ``(P, P)`` numpy array, anything with ``.shape`` and ``.matvec`` (scipy ``LinearOperator``,
:class:`~theorytools.rmt.TorchCurvatureOperator`), or a plain callable ``v -> A v`` together with ``dim``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.linalg import eigh_tridiagonal

from theorytools.errors import TheoryError
from theorytools.rmt._kernels import gaussian_mixture
from theorytools.rmt._validate import positive_float, positive_int

Matvec = Callable[[np.ndarray], np.ndarray]


def as_matvec(operator: object, dim: int | None, func: str) -> tuple[Matvec, int]:
    """Normalise an operator to ``(matvec, dim)``; validates the shape."""
    if isinstance(operator, np.ndarray):
        if operator.ndim != 2 or operator.shape[0] != operator.shape[1]:
            raise TheoryError(
                f"The 'operator' parameter of {func} must be a square matrix. Got shape "
                f"{operator.shape} instead.")
        A = np.ascontiguousarray(operator, dtype=np.float64)
        return (lambda v: A @ v), A.shape[0]
    if hasattr(operator, "matvec") and hasattr(operator, "shape"):
        n = int(operator.shape[0])
        mv = operator.matvec
        return (lambda v: np.asarray(mv(v), dtype=np.float64).reshape(-1)), n
    if callable(operator):
        if dim is None:
            raise TheoryError(f"{func} needs 'dim' when 'operator' is a plain callable.")
        n = positive_int(dim, "dim", func)
        return (lambda v: np.asarray(operator(v), dtype=np.float64).reshape(-1)), n
    raise TheoryError(
        f"The 'operator' parameter of {func} must be a square array, an object with .matvec and "
        f".shape, or a callable. Got {type(operator).__name__} instead.")


def _probe(rng: np.random.Generator, n: int, kind: str, func: str) -> np.ndarray:
    if kind == "rademacher":
        return rng.integers(0, 2, size=n).astype(np.float64) * 2.0 - 1.0
    if kind == "gaussian":
        return rng.standard_normal(n)
    raise TheoryError(
        f"The 'probe' parameter of {func} must be 'rademacher' or 'gaussian'. Got {kind!r} instead.")


# --------------------------------------------------------------------------- Lanczos


@dataclass(frozen=True)
class LanczosResult:
    """Output of :func:`lanczos` (m = number of completed steps, m <= requested steps)."""

    alpha: np.ndarray
    """Diagonal of the tridiagonal matrix T_m, shape (m,)."""
    beta: np.ndarray
    """Off-diagonal of T_m, shape (m-1,)."""
    ritz_values: np.ndarray
    """Eigenvalues theta_k of T_m, ascending, shape (m,)."""
    weights: np.ndarray
    """Gauss quadrature weights ``(first component of the k-th eigenvector of T_m)**2``; sum to 1."""
    start_norm: float
    """Norm of the starting vector (the quadrature is for the unit vector v0/||v0||)."""
    breakdown: bool
    """True when an invariant subspace was found before the requested number of steps."""
    ritz_vectors: np.ndarray | None = field(default=None, repr=False)
    """Ritz vectors as columns (P, m) if requested, else None."""

    @property
    def steps(self) -> int:
        return int(self.alpha.size)

    def quadrature(self, f: Callable[[np.ndarray], np.ndarray]) -> float:
        """Gauss-quadrature estimate ``sum_k w_k f(theta_k)`` of ``u^T f(A) u`` (u = unit start)."""
        return float(np.sum(self.weights * f(self.ritz_values)))


def lanczos(operator, steps: int, *, dim: int | None = None, v0: np.ndarray | None = None,
            seed=None, return_vectors: bool = False) -> LanczosResult:
    """Lanczos tridiagonalisation with full reorthogonalisation (two classical Gram--Schmidt passes).

    Builds an orthonormal Krylov basis ``V`` with ``V^T A V = T_m`` (Golub & Van Loan, Alg. 10.1.1 with
    complete reorthogonalisation).  Gauss quadrature with nodes ``theta_k`` and weights ``w_k`` is exact
    for polynomials of degree <= 2m - 1: ``sum_k w_k theta_k^j = u^T A^j u``.  With ``steps = P`` the Ritz
    values are the eigenvalues of A (for a start vector with components on all eigenvectors).
    ``v0`` defaults to a Rademacher vector drawn from ``seed``.  Cost: m matvecs + O(m^2 P).
    """
    func = "lanczos"
    mv, n = as_matvec(operator, dim, func)
    m = positive_int(steps, "steps", func)
    m = min(m, n)
    rng = np.random.default_rng(seed)
    if v0 is None:
        v = _probe(rng, n, "rademacher", func)
    else:
        v = np.asarray(v0, dtype=np.float64).reshape(-1)
        if v.size != n or not np.all(np.isfinite(v)):
            raise TheoryError(
                f"The 'v0' parameter of lanczos must be a finite vector of length {n}. Got shape "
                f"{np.shape(v0)} instead.")
    nrm = float(np.linalg.norm(v))
    if nrm == 0.0:
        raise TheoryError("The 'v0' parameter of lanczos must be nonzero.")
    V = np.zeros((m, n))
    V[0] = v / nrm
    alpha = np.zeros(m)
    beta = np.zeros(m)
    breakdown = False
    scale = 0.0
    k = m
    for j in range(m):
        w = mv(V[j])
        if w.shape != (n,):
            raise TheoryError(f"The operator returned shape {w.shape}; expected ({n},).")
        alpha[j] = V[j] @ w
        w = w - alpha[j] * V[j]
        if j > 0:
            w -= beta[j - 1] * V[j - 1]
        for _ in range(2):  # full reorthogonalisation
            w -= V[: j + 1].T @ (V[: j + 1] @ w)
        b = float(np.linalg.norm(w))
        scale = max(scale, abs(alpha[j]), b)
        if j == m - 1:
            beta[j] = b
            break
        if b <= 1e-12 * max(scale, 1e-300):
            breakdown = True
            k = j + 1
            break
        beta[j] = b
        V[j + 1] = w / b
    alpha, beta_off = alpha[:k].copy(), beta[: k - 1].copy()
    if k == 1:
        theta, S = alpha.copy(), np.ones((1, 1))
    else:
        theta, S = eigh_tridiagonal(alpha, beta_off)
    weights = S[0] ** 2
    vecs = (V[:k].T @ S) if return_vectors else None
    return LanczosResult(alpha, beta_off, theta, weights, nrm, breakdown, vecs)


# --------------------------------------------------------------------------- SLQ density


@dataclass(frozen=True)
class SpectralDensity:
    """Stochastic Lanczos quadrature estimate of the spectral density ``(1/P) sum_i delta(x - l_i)``."""

    grid: np.ndarray
    """Evaluation points."""
    density: np.ndarray
    """Smoothed density on ``grid`` (integrates to ~1 when the grid covers the spectrum)."""
    nodes: np.ndarray
    """All Ritz values of all probes, concatenated."""
    weights: np.ndarray
    """Matching quadrature weights divided by the number of probes (sum to 1)."""
    kernel_width: float
    """Standard deviation of the Gaussian smoothing kernel."""
    n_probes: int
    steps: int

    def moment(self, j: int) -> float:
        """Estimate of ``tr(A^j)/P`` (exact in expectation for j <= 2 steps - 1)."""
        return float(np.sum(self.weights * self.nodes**j))


def slq_density(operator, steps: int, *, dim: int | None = None, n_probes: int = 1,
                grid: np.ndarray | None = None, n_grid: int = 512,
                kernel_width: float | None = None, probe: str = "rademacher",
                seed=None) -> SpectralDensity:
    """Spectral density by stochastic Lanczos quadrature with Gaussian smoothing.

    ``phi(x) = (1/n_probes) sum_runs sum_k w_k g(x - theta_k)`` with ``g`` a Gaussian of standard
    deviation ``kernel_width`` (default 1% of the Ritz-value range) -- the estimator of Ubaru, Chen & Saad
    (2017) / Ghorbani et al. (2019) used by Granziol et al.  Probes are unit-normalised Rademacher or
    Gaussian vectors; ``E[u^T A^j u] = tr(A^j)/P`` so every moment of degree <= 2 steps - 1 is unbiased.
    """
    func = "slq_density"
    mv, n = as_matvec(operator, dim, func)
    m = positive_int(steps, "steps", func)
    n_probes = positive_int(n_probes, "n_probes", func)
    rng = np.random.default_rng(seed)
    nodes, weights = [], []
    for _ in range(n_probes):
        res = lanczos(mv, m, dim=n, v0=_probe(rng, n, probe, func))
        nodes.append(res.ritz_values)
        weights.append(res.weights / n_probes)
    nodes_a = np.ascontiguousarray(np.concatenate(nodes))
    weights_a = np.ascontiguousarray(np.concatenate(weights))
    lo, hi = float(nodes_a.min()), float(nodes_a.max())
    span = max(hi - lo, 1e-12 * max(abs(lo), abs(hi), 1.0))
    if kernel_width is None:
        width = 0.01 * span if hi > lo else max(1e-3 * max(abs(hi), 1.0), 1e-12)
    else:
        width = positive_float(kernel_width, "kernel_width", func)
    if grid is None:
        pad = 0.05 * span + 4.0 * width
        grid_a = np.linspace(lo - pad, hi + pad, positive_int(n_grid, "n_grid", func))
    else:
        grid_a = np.ascontiguousarray(np.asarray(grid, dtype=np.float64).reshape(-1))
    dens = gaussian_mixture(nodes_a, weights_a, grid_a, width)
    return SpectralDensity(grid_a, dens, nodes_a, weights_a, width, n_probes, m)


# --------------------------------------------------------------------------- power iteration


@dataclass(frozen=True)
class PowerIterationResult:
    """Output of :func:`top_eigenvalue`."""

    eigenvalue: float
    eigenvector: np.ndarray = field(repr=False)
    iterations: int
    """Total matvecs used (both phases for ``which='algebraic'``)."""
    converged: bool
    shift: float
    """Shift s used in the second phase (power iteration on A + s I); 0 if none was needed."""


def _power(mv: Matvec, n: int, shift: float, v: np.ndarray, max_iter: int, tol: float):
    v = v / np.linalg.norm(v)
    lam_old = np.inf
    lam = 0.0
    for it in range(1, max_iter + 1):
        w = mv(v) + shift * v
        lam = float(v @ w)
        nw = float(np.linalg.norm(w))
        if nw == 0.0:
            return 0.0 - shift, v, it, True
        v = w / nw
        if abs(lam - lam_old) <= tol * max(abs(lam), 1e-30):
            return lam - shift, v, it, True
        lam_old = lam
    return lam - shift, v, max_iter, False


def top_eigenvalue(operator, *, dim: int | None = None, which: str = "algebraic",
                   max_iter: int = 1000, tol: float = 1e-8, seed=None) -> PowerIterationResult:
    """Power iteration for the largest *algebraic* (default) or largest-magnitude eigenvalue.

    ``which='magnitude'`` is plain power iteration (what PyHessian's ``eigenvalues`` computes).
    ``which='algebraic'``: first find the dominant eigenvalue mu; if mu > 0 it is the top eigenvalue;
    otherwise iterate on ``A + |mu| I`` (spectrum shifted to ``[0, lambda_max + |mu|]``) and subtract the
    shift.  Convergence: relative change of the Rayleigh quotient below ``tol``; the rate is the gap ratio
    ``(lambda_2 + s)/(lambda_1 + s)``, slower than Lanczos -- use :func:`lanczos` for clustered tops.
    """
    func = "top_eigenvalue"
    mv, n = as_matvec(operator, dim, func)
    max_iter = positive_int(max_iter, "max_iter", func)
    tol = positive_float(tol, "tol", func)
    if which not in ("algebraic", "magnitude"):
        raise TheoryError(
            f"The 'which' parameter of top_eigenvalue must be 'algebraic' or 'magnitude'. Got "
            f"{which!r} instead.")
    rng = np.random.default_rng(seed)
    v0 = rng.standard_normal(n)
    mu, v, it, conv = _power(mv, n, 0.0, v0, max_iter, tol)
    if which == "magnitude" or mu >= 0.0:
        return PowerIterationResult(mu, v, it, conv, 0.0)
    s = abs(mu)
    lam, v2, it2, conv2 = _power(mv, n, s, rng.standard_normal(n), max_iter, tol)
    return PowerIterationResult(lam, v2, it + it2, conv2, s)


# --------------------------------------------------------------------------- Hutchinson


@dataclass(frozen=True)
class TraceEstimate:
    """Output of :func:`hutchinson_trace`."""

    trace: float
    """Mean of the probe samples ``z^T A z``."""
    stderr: float
    """Standard error of the mean (sample std / sqrt(n_probes)); nan for one probe."""
    samples: np.ndarray = field(repr=False)
    n_probes: int


def hutchinson_trace(operator, n_probes: int = 100, *, dim: int | None = None,
                     probe: str = "rademacher", seed=None) -> TraceEstimate:
    """Hutchinson's unbiased trace estimator ``tr(A) ~ mean_k z_k^T A z_k`` (Hutchinson 1990).

    Rademacher probes (unnormalised, E[z z^T] = I) give variance ``2 sum_{i != j} A_ij^2`` per probe;
    Gaussian probes give ``2 ||A||_F^2``.
    """
    func = "hutchinson_trace"
    mv, n = as_matvec(operator, dim, func)
    k = positive_int(n_probes, "n_probes", func)
    rng = np.random.default_rng(seed)
    samples = np.empty(k)
    for i in range(k):
        z = _probe(rng, n, probe, func)
        samples[i] = z @ mv(z)
    se = float(samples.std(ddof=1) / np.sqrt(k)) if k > 1 else float("nan")
    return TraceEstimate(float(samples.mean()), se, samples, k)
