"""Random-matrix tools for the initialisation section of Saxe et al. (eq 19-22, Figs 6 and 7)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from math import comb

import numpy as np

from theorytools.deep_linear import _validation as val
from theorytools.deep_linear._simulate import random_orthogonal

__all__ = [
    "product_matrices",
    "product_singular_values",
    "product_eigenvalues",
    "fuss_catalan",
    "JacobianSpectrum",
    "tanh_jacobian_spectrum",
    "tanh_variance_map",
]

_ENSEMBLES = ("gaussian", "orthogonal")


def _factor(n: int, ensemble: str, g: np.random.Generator) -> np.ndarray:
    if ensemble == "gaussian":
        return g.standard_normal((n, n)) / np.sqrt(n)
    return random_orthogonal(n, rng=g)


def product_matrices(n: int, n_matrices: int, ensemble: str = "gaussian",
                     rng: object = None) -> np.ndarray:
    """W_tot = W_L ... W_1 (eq 19) of L = n_matrices independent n x n matrices: iid N(0, 1/n)
    entries ('gaussian', the scaled init) or Haar orthogonal ('orthogonal')."""
    f = "product_matrices"
    n = val.positive_int(n, "n", f)
    n_matrices = val.positive_int(n_matrices, "n_matrices", f)
    ensemble = val.choice(ensemble, "ensemble", f, _ENSEMBLES)
    g = val.rng_of(rng)
    p = _factor(n, ensemble, g)
    for _ in range(n_matrices - 1):
        p = _factor(n, ensemble, g) @ p
    return p


def product_singular_values(n: int, n_matrices: int, n_samples: int = 1,
                            ensemble: str = "gaussian", rng: object = None) -> np.ndarray:
    """Singular values of n_samples independent products (eq 19), shape (n_samples, n).

    For the Gaussian ensemble the k-th moment of sigma^2 tends (n -> inf) to the Fuss-Catalan
    number FC_L(k) (see :func:`fuss_catalan`); for the orthogonal ensemble all sigma are 1.
    """
    n_samples = val.positive_int(n_samples, "n_samples", "product_singular_values")
    g = val.rng_of(rng)
    return np.stack([np.linalg.svd(product_matrices(n, n_matrices, ensemble, g), compute_uv=False)
                     for _ in range(n_samples)])


def product_eigenvalues(n: int, n_matrices: int, n_samples: int = 1,
                        ensemble: str = "gaussian", rng: object = None) -> np.ndarray:
    """Complex eigenvalues of n_samples independent products (eq 19), shape (n_samples, n)."""
    n_samples = val.positive_int(n_samples, "n_samples", "product_eigenvalues")
    g = val.rng_of(rng)
    return np.stack([np.linalg.eigvals(product_matrices(n, n_matrices, ensemble, g))
                     for _ in range(n_samples)])


def fuss_catalan(n_matrices: int, k: int) -> int:
    """Fuss-Catalan number FC_L(k) = C((L+1)k, k) / (Lk + 1): the n -> inf limit of
    mean(sigma^{2k}) for a product of L Gaussian matrices with N(0, 1/n) entries
    (L = 1: Catalan numbers, the Marchenko-Pastur moments). mean(sigma^2) = 1, mean(sigma^4) = L+1."""
    n_matrices = val.positive_int(n_matrices, "n_matrices", "fuss_catalan")
    k = val.positive_int(k, "k", "fuss_catalan", minimum=0)
    return comb((n_matrices + 1) * k, k) // (n_matrices * k + 1)


@dataclass(frozen=True)
class JacobianSpectrum:
    """End-to-end Jacobian of a deep tanh net x^{l+1} = g W^{(l+1,l)} tanh(x^l) (eq 20, 22)."""

    singular_values: np.ndarray
    """Singular values of J = dx^{N_l}/dx^1, shape (n_samples, n), descending per row."""
    q: np.ndarray
    """Population variances q^l = (1/N) sum_i (x_i^l)^2 (eq 21), shape (n_samples, N_l)."""
    gain: float
    """The gain g."""
    n_layers: int
    """N_l (the Jacobian is a product of N_l - 1 factors)."""


def tanh_jacobian_spectrum(n: int, n_layers: int, gain: float, q1: float = 1.0,
                           n_samples: int = 1, weights: str = "orthogonal",
                           rng: object = None) -> JacobianSpectrum:
    """Singular values of the input-output Jacobian of a random deep tanh net (Fig 7).

    x^1 ~ N(0, q1 I); x^{l+1} = g W_l tanh(x^l) for l = 1..N_l-1 with Haar orthogonal W_l
    ('orthogonal', the paper's choice) or iid N(0, 1/n) entries ('gaussian');
    J = prod_l g W_l diag(1 - tanh(x^l)^2) (eq 22). Cost (N_l - 1) n^3 flops per sample.
    """
    f = "tanh_jacobian_spectrum"
    n = val.positive_int(n, "n", f)
    n_layers = val.positive_int(n_layers, "n_layers", f, minimum=2)
    gain = val.positive_float(gain, "gain", f)
    q1 = val.positive_float(q1, "q1", f)
    n_samples = val.positive_int(n_samples, "n_samples", f)
    weights = val.choice(weights, "weights", f, _ENSEMBLES)
    g = val.rng_of(rng)
    svals = np.empty((n_samples, n))
    qs = np.empty((n_samples, n_layers))
    for i in range(n_samples):
        x = np.sqrt(q1) * g.standard_normal(n)
        qs[i, 0] = np.mean(x * x)
        jac = np.eye(n)
        for layer in range(1, n_layers):
            w = gain * _factor(n, weights, g)
            phi = np.tanh(x)
            jac = w @ ((1.0 - phi * phi)[:, None] * jac)
            x = w @ phi
            qs[i, layer] = np.mean(x * x)
        svals[i] = np.linalg.svd(jac, compute_uv=False)
    return JacobianSpectrum(svals, qs, gain, n_layers)


@lru_cache(maxsize=8)
def _gauss_hermite(n: int) -> tuple[np.ndarray, np.ndarray]:
    z, w = np.polynomial.hermite_e.hermegauss(n)
    return z, w / w.sum()


def tanh_variance_map(q: np.ndarray | float, gain: float, n_quad: int = 80) -> np.ndarray:
    """Large-N recursion of eq 21 for tanh: q^{l+1} = g^2 int Dz tanh(sqrt(q^l) z)^2 (Gauss-Hermite).

    For orthogonal W the identity q^{l+1} = g^2 (1/N) sum_i tanh(x_i^l)^2 is exact; the Gaussian
    integral replaces the empirical average by its N -> inf value. The map has the fixed point q=0
    for g <= 1 and a positive fixed point for g > 1 (g_c = 1)."""
    f = "tanh_variance_map"
    q = val.positive_array(q, "q", f, allow_zero=True)
    gain = val.positive_float(gain, "gain", f)
    z, w = _gauss_hermite(val.positive_int(n_quad, "n_quad", f))
    return gain**2 * np.sum(w * np.tanh(np.sqrt(q)[..., None] * z) ** 2, axis=-1)
