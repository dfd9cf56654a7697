"""Infinitely deep NTK classifiers (Radhakrishnan, Belkin & Uhler, arXiv:2204.14126; PNAS 2023).

Inputs lie on the unit sphere and the activation is normalised so that its dual ν̌ satisfies
ν̌(1) = 1 (Hermite expansion with unit total weight).  For depth L (L hidden layers, no bias):

    NNGP  ρ_0 = x·z,  ρ_{ℓ+1} = ν̌(ρ_ℓ);
    NTK   K_0 = ρ_0,  K_{ℓ+1} = ν̌(ρ_ℓ) + K_ℓ·ν̌'(ρ_ℓ)            (so K_L(x, x) = L + 1).

This is the NTK recursion of :mod:`theorytools.ntk` with W_std² = 1/E[σ(u)²] (ReLU: √2), no bias,
L + 1 Dense layers and inputs rescaled by √(d/W_std²) (to undo the W_std²·x·x'/d of the first layer).  The predictor is
kernel interpolation (ridge-less): ŷ(x) = K(x, X)·K(X, X)⁻¹·Y with one-hot Y, class = argmax.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy.special import gammaln

from theorytools._threads import numba_threads
from theorytools.errors import TheoryError
from theorytools.ntk import _kernels
from theorytools.ntk._predict import kernel_solve

__all__ = [
    "DualActivation",
    "dual_activation",
    "deep_ntk",
    "kernel_interpolation_classify",
    "deep_ntk_classify",
    "majority_vote_classify",
    "nearest_neighbor_classify",
    "singular_kernel_classify",
    "dirichlet_sample",
    "dirichlet_bayes_classify",
]


@dataclass(frozen=True)
class DualActivation:
    """Normalised dual activation ν̌ on [−1, 1] and its derivative ν̌'.

    Attributes:
        name: identifier.
        value: ν̌(ρ) (vectorised), with ν̌(1) = 1.
        deriv: ν̌'(ρ).
    """

    name: str
    value: Callable[[np.ndarray], np.ndarray]
    deriv: Callable[[np.ndarray], np.ndarray]


def _poly(name: str, coeffs: dict[int, float]) -> DualActivation:
    def value(r):
        return sum(c * r**k for k, c in coeffs.items())

    def deriv(r):
        return sum(c * k * r ** (k - 1) for k, c in coeffs.items())

    return DualActivation(name, value, deriv)


def dual_activation(name: str, *, a: float = 1.0, k: int = 1) -> DualActivation:
    """Normalised duals used by Radhakrishnan et al.

    Args:
        name: ``"relu"`` ν̌ = (ρ(π − arccos ρ) + √(1 − ρ²))/π (Cho & Saul arc-cosine, normalised);
            ``"erf"`` ν̌ = arcsin(2ρ/3)/arcsin(2/3) (σ ∝ erf(x));
            ``"sine"`` ν̌ = sinh(aρ)/sinh(a) (σ ∝ sin(√a·x));
            ``"hermite"`` ν̌ = ρ^k (σ = normalised Hermite polynomial h_k);
            ``"optimal_2d"``, ``"optimal_3d"``, ``"optimal_5d"``, ``"optimal_9d"``: the constructed duals
            ρ⁷/2 + ρ/2, ρ³/2 + ρ/2, ρ³/4 + ρ²/2 + ρ/4, ρ³/16 + 7ρ²/8 + ρ/16.
        a: parameter of ``"sine"`` (> 0).
        k: degree of ``"hermite"`` (int >= 1).
    """
    if name == "relu":
        # π − arccos ρ = atan2(√((1−ρ)(1+ρ)), −ρ): exact at both ends (0 at ρ = −1, π at ρ = 1, the IEEE
        # special values of atan2), where arccos and √(1 − ρ²) lose digits
        def value(r):
            r = np.clip(r, -1.0, 1.0)
            sn = np.sqrt((1.0 - r) * (1.0 + r))
            return (r * np.arctan2(sn, -r) + sn) / math.pi

        def deriv(r):
            r = np.clip(r, -1.0, 1.0)
            return np.arctan2(np.sqrt((1.0 - r) * (1.0 + r)), -r) / math.pi

        return DualActivation("relu", value, deriv)
    if name == "erf":
        c = math.asin(2.0 / 3.0)
        return DualActivation(
            "erf",
            lambda r: np.arcsin(2.0 * np.clip(r, -1.0, 1.0) / 3.0) / c,
            lambda r: (2.0 / 3.0) / np.sqrt(1.0 - (2.0 * np.clip(r, -1.0, 1.0) / 3.0) ** 2) / c,
        )
    if name == "sine":
        if not isinstance(a, (int, float, np.floating)) or not math.isfinite(a) or a <= 0:
            raise TheoryError(f"The 'a' parameter of dual_activation('sine') must be a float > 0. Got {a!r} instead.")
        sa = math.sinh(a)
        return DualActivation(f"sine_{a:g}", lambda r: np.sinh(a * r) / sa, lambda r: a * np.cosh(a * r) / sa)
    if name == "hermite":
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise TheoryError(f"The 'k' parameter of dual_activation('hermite') must be an int >= 1. Got {k!r} instead.")
        return _poly(f"hermite_{k}", {int(k): 1.0})
    optimal = {
        "optimal_2d": {7: 0.5, 1: 0.5},
        "optimal_3d": {3: 0.5, 1: 0.5},
        "optimal_5d": {3: 0.25, 2: 0.5, 1: 0.25},
        "optimal_9d": {3: 1 / 16, 2: 7 / 8, 1: 1 / 16},
    }
    if name in optimal:
        return _poly(name, optimal[name])
    raise TheoryError(
        "The 'name' parameter of dual_activation must be one of 'relu', 'erf', 'sine', 'hermite', "
        f"'optimal_2d', 'optimal_3d', 'optimal_5d', 'optimal_9d'. Got {name!r} instead."
    )


def _unit_rows(name: str, x, owner: str, normalize: bool) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or not np.all(np.isfinite(x)):
        raise TheoryError(f"The '{name}' parameter of {owner} must be a finite (n, d) array. Got shape {x.shape} instead.")
    norms = np.linalg.norm(x, axis=1)
    if normalize:
        if np.any(norms == 0):
            raise TheoryError(f"The '{name}' parameter of {owner} has a zero row, which cannot be put on the sphere.")
        x = x / norms[:, None]
        return x / np.linalg.norm(x, axis=1)[:, None]
    if not np.allclose(norms, 1.0, atol=1e-8):
        raise TheoryError(f"The rows of '{name}' in {owner} must have unit norm (or pass normalize=True).")
    return x


def _cosines(x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """ρ = x·z for unit vectors, with 1 − ρ = ||x − z||²/2 where ρ > 1/2 and 1 + ρ = ||x + z||²/2 where
    ρ < −1/2, so identical rows give ρ = 1 and opposite rows ρ = −1 exactly.

    Duals with ν̌'(1) > 1 amplify 1 − ρ by ν̌'(1) per layer (and 1 + ρ by ν̌'(−1)), so the rounding
    error of a dot product (~1e−16) would make even ρ(x, x) drift away from 1 within ~25 layers.  All
    entries come from one numba routine (not BLAS), so repeated rows give identical rows."""
    with numba_threads(x1.shape[0] * x2.shape[0] * max(1, x1.shape[1])):
        return _kernels.unit_cosines(np.ascontiguousarray(x1), np.ascontiguousarray(x2))


def deep_ntk(
    x1: np.ndarray,
    x2: np.ndarray | None,
    dual: DualActivation | str,
    depth: int | Sequence[int],
    *,
    normalize: bool = False,
    scale_diagonal: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """NTK K_L and NNGP ρ_L of the depth-L normalised network between rows of x1 and x2.

    Args:
        x1, x2: (n1, d), (n2, d) points on the unit sphere (``x2=None``: x1).
        dual: a :class:`DualActivation` or a name for :func:`dual_activation`.
        depth: L >= 0, or an increasing sequence of depths (then results are stacked on axis 0;
            the recursion is run once).
        normalize: project rows onto the sphere first.
        scale_diagonal: return K_L / K_L(x, x) (K_L(x, x) = κ_L with κ_0 = 1, κ_{ℓ+1} = 1 + ν̌'(1)·κ_ℓ,
            the same for every x on the sphere).  Computed without overflow, so depths of thousands
            are fine even when ν̌'(1) > 1 (κ_L ~ ν̌'(1)^L); predictions of kernel interpolation are
            unchanged by this scaling.

    Returns:
        (ntk, nngp): arrays (n1, n2), or (len(depth), n1, n2).
    """
    owner = "deep_ntk"
    if isinstance(dual, str):
        dual = dual_activation(dual)
    x1 = _unit_rows("x1", x1, owner, normalize)
    x2 = x1 if x2 is None else _unit_rows("x2", x2, owner, normalize)
    single = np.ndim(depth) == 0
    depths = np.atleast_1d(np.asarray(depth))
    if depths.dtype.kind not in "iu" or np.any(depths < 0) or np.any(np.diff(depths) <= 0):
        raise TheoryError(f"The 'depth' parameter of {owner} must be an int >= 0 or an increasing sequence of them. Got {depth!r} instead.")
    rho = _cosines(x1, x2)
    k = rho.copy()
    ks, rs = [], []
    level = 0
    a = float(dual.deriv(np.array(1.0)))
    inv = 1.0  # 1/κ_ℓ
    for target in depths:
        while level < target:
            one = rho == 1.0  # ν̌(1) = 1 and ν̌'(1) = a by definition: keep ρ(x, x) = 1, K(x, x) = κ_ℓ exact
            nu = np.asarray(dual.value(rho), dtype=np.float64)
            dnu = np.asarray(dual.deriv(rho), dtype=np.float64)
            if np.any(one):
                nu = np.where(one, 1.0, nu)
                dnu = np.where(one, a, dnu)
            if scale_diagonal:  # k̃_{ℓ+1} = (ν̌(ρ) + κ_ℓ k̃_ℓ ν̌'(ρ))/κ_{ℓ+1}
                k = (nu * inv + k * dnu) / (inv + a)
                inv = inv / (inv + a)
            else:
                k = nu + k * dnu
            rho = np.clip(nu, -1.0, 1.0)
            level += 1
        ks.append(k.copy())
        rs.append(rho.copy())
    if single:
        return ks[0], rs[0]
    return np.stack(ks), np.stack(rs)


def _encode(y) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y)
    if y.ndim != 1 or y.size == 0:
        raise TheoryError(f"The 'y_train' labels must be a non-empty 1-D array. Got shape {y.shape} instead.")
    classes, idx = np.unique(y, return_inverse=True)
    return classes, idx


def kernel_interpolation_classify(k_train: np.ndarray, y_train: np.ndarray, k_test_train: np.ndarray, reg: float = 0.0) -> np.ndarray:
    """Labels argmax_c [K(x, X)(K(X, X) + reg·I)⁻¹ Y_onehot]_c, solved by :func:`kernel_solve` (eigenvalues of
    K clipped at 0 and a round-off-level ridge n·eps·λ_max added, so a numerically singular K is solved stably).

    For two classes this is the sign of the interpolant of ±1 labels, as in Radhakrishnan et al."""
    classes, idx = _encode(y_train)
    n = idx.size
    k_train = np.asarray(k_train, dtype=np.float64)
    k_test_train = np.asarray(k_test_train, dtype=np.float64)
    if k_train.shape != (n, n) or k_test_train.ndim != 2 or k_test_train.shape[1] != n:
        raise TheoryError(f"kernel_interpolation_classify needs k_train ({n}, {n}) and k_test_train (m, {n}). Got {k_train.shape}, {k_test_train.shape}.")
    if len(classes) == 1:
        return np.full(k_test_train.shape[0], classes[0])
    targets = -np.ones((n, len(classes)))
    targets[np.arange(n), idx] = 1.0
    kr = k_train + reg * np.eye(n) if reg else k_train
    alpha = kernel_solve(kr, targets).weights  # stable: deep kernels are often singular in float64
    return classes[np.argmax(k_test_train @ alpha, axis=1)]


def deep_ntk_classify(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    dual: DualActivation | str,
    depth: int | Sequence[int],
    *,
    normalize: bool = False,
    reg: float = 0.0,
) -> np.ndarray:
    """Predicted labels of the depth-L NTK interpolating classifier (one row per depth for a sequence)."""
    if isinstance(dual, str):
        dual = dual_activation(dual)
    xs = np.concatenate([np.asarray(x_train, float), np.asarray(x_test, float)])
    n = np.asarray(x_train).shape[0]
    k, _ = deep_ntk(xs, xs[:n], dual, depth, normalize=normalize, scale_diagonal=True)
    if k.ndim == 2:
        return kernel_interpolation_classify(k[:n], y_train, k[n:], reg)
    return np.stack([kernel_interpolation_classify(kl[:n], y_train, kl[n:], reg) for kl in k])


def majority_vote_classify(y_train: np.ndarray, n_test: int) -> np.ndarray:
    """The most frequent training label for every test point (ties: smallest label)."""
    classes, idx = _encode(y_train)
    return np.full(int(n_test), classes[np.argmax(np.bincount(idx))])


def nearest_neighbor_classify(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """1-nearest-neighbour labels (Euclidean distance)."""
    xt = np.asarray(x_train, float)
    xs = np.asarray(x_test, float)
    d2 = np.sum(xs**2, 1)[:, None] - 2 * xs @ xt.T + np.sum(xt**2, 1)[None, :]
    return np.asarray(y_train)[np.argmin(d2, axis=1)]


def singular_kernel_classify(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, power: float | None = None) -> np.ndarray:
    """Singular-kernel ("Hilbert"/Devroye) vote with weights ||x − z||^{−power} = (2 − 2x·z)^{−power/2}
    on the unit sphere; ``power=None`` uses d − 1 (weights 1/(2 − 2x·z)^{(d−1)/2}), the choice of
    Radhakrishnan et al.  A test point equal to a training point takes that point's label."""
    classes, idx = _encode(y_train)
    xt = np.asarray(x_train, float)
    xs = np.asarray(x_test, float)
    p = xt.shape[1] - 1 if power is None else float(power)
    dist2 = np.maximum(2.0 - 2.0 * xs @ xt.T, 0.0)
    with np.errstate(divide="ignore"):
        logw = -0.5 * p * np.log(dist2)  # log weights, +inf at coincident points
    scores = np.full((xs.shape[0], len(classes)), -np.inf)
    for c in range(len(classes)):
        lw = logw[:, idx == c]
        if lw.shape[1]:
            m = np.max(lw, axis=1, keepdims=True)
            finite = np.isfinite(m[:, 0])
            s = np.full(xs.shape[0], np.inf)
            s[finite] = m[finite, 0] + np.log(np.sum(np.exp(lw[finite] - m[finite]), axis=1))
            scores[:, c] = s
    return classes[np.argmax(scores, axis=1)]


def dirichlet_sample(
    n: int, alpha1: Sequence[float], alpha2: Sequence[float], prior1: float = 0.5, seed: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two-class data: label 1 with probability ``prior1`` (else 0), p ~ Dirichlet(α_label), x = p/||p||.

    Returns:
        (x, y, p): points on the sphere (n, d), labels in {0, 1}, simplex points (n, d).
    """
    a1 = np.asarray(alpha1, float)
    a2 = np.asarray(alpha2, float)
    if a1.shape != a2.shape or a1.ndim != 1 or np.any(a1 <= 0) or np.any(a2 <= 0):
        raise TheoryError("The 'alpha1' and 'alpha2' parameters of dirichlet_sample must be positive vectors of equal length.")
    if not 0 < prior1 < 1:
        raise TheoryError(f"The 'prior1' parameter of dirichlet_sample must be in (0, 1). Got {prior1!r} instead.")
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prior1).astype(int)
    p = np.where(y[:, None] == 1, rng.dirichlet(a1, n), rng.dirichlet(a2, n))
    return p / np.linalg.norm(p, axis=1, keepdims=True), y, p


def _log_dirichlet(p: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return gammaln(alpha.sum()) - gammaln(alpha).sum() + np.log(np.maximum(p, 1e-300)) @ (alpha - 1.0)


def dirichlet_bayes_classify(x: np.ndarray, alpha1: Sequence[float], alpha2: Sequence[float], prior1: float = 0.5) -> np.ndarray:
    """Bayes-optimal labels for :func:`dirichlet_sample` data: 1 iff π₁·Dir(p; α₁) > (1 − π₁)·Dir(p; α₂)
    with p = x/Σx (the sphere↔simplex map has the same Jacobian for both classes)."""
    x = np.asarray(x, float)
    p = x / np.sum(x, axis=1, keepdims=True)
    a1 = np.asarray(alpha1, float)
    a2 = np.asarray(alpha2, float)
    s1 = math.log(prior1) + _log_dirichlet(p, a1)
    s2 = math.log(1.0 - prior1) + _log_dirichlet(p, a2)
    return (s1 > s2).astype(int)
