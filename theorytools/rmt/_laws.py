"""Spiked random-matrix outlier laws and the learning-rate rules derived from them.

Model (Granziol, Zohren & Roberts, JMLR 23(173) 2022, "Learning rates as a function of batch
size"; arXiv:2006.09092).  The batch Hessian is the empirical (full-data) Hessian plus a random
fluctuation matrix::

    H_batch = H_emp + eps(w),      H_batch = (1/B) sum_{i in batch} d^2 l_i   (means, not sums)

where ``eps`` is modelled as a Wigner matrix whose off-diagonal entries have variance
``sigma**2 / B``; ``P`` is the number of parameters.  The semicircle of ``eps`` has radius
``2 sigma sqrt(P/B)`` and a spike ``lambda`` of ``H_emp`` produces an outlier by the
Baik--Ben Arous--Peche (BBP) law.  The paper's theorem constants are recalled, not read
(see docs/rmt.md); the BBP laws themselves are standard and are checked by Monte Carlo in the tests.
"""

from __future__ import annotations

import numpy as np

from theorytools.errors import TheoryError
from theorytools.rmt._validate import positive_float, positive_int



def _arr(value: object, name: str, func: str, *, positive: bool = True, finite: bool = True):
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TheoryError(
            f"The '{name}' parameter of {func} must be a real number or array. Got {value!r} "
            "instead.") from None
    if finite and not np.all(np.isfinite(a)):
        raise TheoryError(f"The '{name}' parameter of {func} must be finite. Got {value!r} instead.")
    if positive and not np.all(a > 0):
        raise TheoryError(
            f"The '{name}' parameter of {func} must be a float > 0 (elementwise). Got {value!r} "
            "instead.")
    return a


def _out(a: np.ndarray):
    return float(a) if a.ndim == 0 else a


# --------------------------------------------------------------------------- spiked Wigner


def wigner_bulk_edge(sigma, P, B):
    """Right edge ``2 sigma sqrt(P/B)`` of the semicircle of the batch fluctuation matrix.

    Assumptions: ``eps`` is a symmetric P x P matrix with independent centred off-diagonal entries of
    variance ``sigma**2/B`` (paper's Hessian noise model, sampling with replacement; a finite-population
    factor ``1/B - 1/N`` would replace ``1/B`` when sampling without replacement), P -> infinity with
    P/B fixed.  The left edge is the negative of this value.  Accepts arrays (broadcast).
    """
    f = "wigner_bulk_edge"
    s, p, b = (_arr(sigma, "sigma", f), _arr(P, "P", f), _arr(B, "B", f))
    return _out(2.0 * s * np.sqrt(p / b))


def wigner_threshold(sigma, P, B):
    """BBP phase-transition point ``sigma sqrt(P/B)``: a spike ``|lambda|`` above it separates.

    Same assumptions as :func:`wigner_bulk_edge` (rank-one, or finite-rank, spike of a deterministic
    matrix plus a Wigner matrix).
    """
    f = "wigner_threshold"
    s, p, b = (_arr(sigma, "sigma", f), _arr(P, "P", f), _arr(B, "B", f))
    return _out(s * np.sqrt(p / b))


def spiked_wigner_outlier(lam, sigma, P, B):
    """Extreme batch eigenvalue ``lambda'`` produced by a spike ``lambda`` of the full Hessian.

    Paper's Hessian theorem (BBP law for an additive spike; Granziol et al. 2022, Thm. on the batch
    Hessian -- number recalled, structure verified numerically)::

        lambda' = lambda + P sigma^2 / (B lambda)   if |lambda| > sigma sqrt(P/B)
        lambda' = sign(lambda) 2 sigma sqrt(P/B)    otherwise (the spike is swallowed by the bulk)

    A positive ``lam`` gives the largest batch eigenvalue, a negative one the smallest
    (``lam == 0`` is read as the right edge).  Outliers are pushed outward: ``|lambda'| >= |lambda|``.
    Both branches meet at the threshold (continuity) and ``lambda' -> lambda`` as ``B -> inf``.
    Assumptions: as in :func:`wigner_bulk_edge`; the spike is an eigenvalue of ``H_emp`` separated from
    the rest of its spectrum (rank small compared with P); asymptotic in P, finite-P corrections
    are O(P^{-1/2}) above and O(P^{-2/3}) at the edge.
    """
    f = "spiked_wigner_outlier"
    lam = _arr(lam, "lam", f, positive=False)
    s, p, b = (_arr(sigma, "sigma", f), _arr(P, "P", f), _arr(B, "B", f))
    thr = s * np.sqrt(p / b)
    sign = np.where(lam < 0, -1.0, 1.0)
    safe = np.where(np.abs(lam) > 0, lam, 1.0)
    outlier = lam + p * s**2 / (b * safe)
    res = np.where(np.abs(lam) > thr, outlier, sign * 2.0 * thr)
    return _out(res)


# --------------------------------------------------------------------------- spiked Wishart


def wishart_bulk_edges(sigma2, P, B):
    """Marchenko--Pastur edges ``sigma2 (1 -+ sqrt(gamma))**2`` with ``gamma = P/B``.

    For the batch Gauss--Newton / covariance model ``H_B = X^T X / B`` with the B rows of X i.i.d.
    N(0, Sigma), Sigma = sigma2 * I apart from finitely many spikes.  When gamma > 1 the matrix also
    has P - B zero eigenvalues, which are not part of the returned interval.
    Returns ``(lower, upper)`` (floats or broadcast arrays).
    """
    f = "wishart_bulk_edges"
    s2, p, b = (_arr(sigma2, "sigma2", f), _arr(P, "P", f), _arr(B, "B", f))
    g = np.sqrt(p / b)
    return _out(s2 * (1.0 - g) ** 2), _out(s2 * (1.0 + g) ** 2)


def wishart_threshold(sigma2, P, B):
    """BBP threshold ``sigma2 (1 + sqrt(P/B))`` for a population spike of a sample covariance."""
    f = "wishart_threshold"
    s2, p, b = (_arr(sigma2, "sigma2", f), _arr(P, "P", f), _arr(B, "B", f))
    return _out(s2 * (1.0 + np.sqrt(p / b)))


def spiked_wishart_outlier(ell, sigma2, P, B):
    """Top eigenvalue of ``X^T X / B`` for a population spike ``ell`` (Baik--Silverstein / BBP 2005)::

        lambda' = ell (1 + gamma sigma2 / (ell - sigma2))   if ell > sigma2 (1 + sqrt(gamma))
        lambda' = sigma2 (1 + sqrt(gamma))**2                otherwise,     gamma = P / B.

    This is the paper's GGN analogue (batch Gauss--Newton as a spiked Wishart; the structure is
    recalled, the law is the standard spiked-covariance result).  Assumptions: rows of X i.i.d.
    Gaussian (or with finite fourth moments) with covariance ``diag(ell, sigma2, ..., sigma2)``,
    P, B -> infinity with gamma fixed.  Both branches meet at the threshold; ``B -> inf`` gives ell.
    """
    f = "spiked_wishart_outlier"
    ell = _arr(ell, "ell", f)
    s2, p, b = (_arr(sigma2, "sigma2", f), _arr(P, "P", f), _arr(B, "B", f))
    gamma = p / b
    thr = s2 * (1.0 + np.sqrt(gamma))
    denom = np.where(ell > s2, ell - s2, 1.0)
    res = np.where(ell > thr, ell * (1.0 + gamma * s2 / denom), s2 * (1.0 + np.sqrt(gamma)) ** 2)
    return _out(res)


# --------------------------------------------------------------------------- learning-rate rules


def critical_batch_size(lam1, sigma, P):
    """Critical batch size ``B* = P sigma^2 / lambda1^2`` (Granziol et al. 2022, noise/curvature balance).

    ``B*`` is where the noise term ``P sigma^2 / (B lambda1)`` equals ``lambda1``; it coincides with the
    BBP threshold ``lambda1 = sigma sqrt(P/B)``.  For ``B > B*`` the top batch eigenvalue is an outlier
    and ``alpha_max`` saturates towards ``2/lambda1``; for ``B < B*`` it sits at the bulk edge.
    """
    f = "critical_batch_size"
    l1, s, p = _arr(lam1, "lam1", f), _arr(sigma, "sigma", f), _arr(P, "P", f)
    return _out(p * s**2 / l1**2)


def sgd_max_lr(lam1, sigma, P, B):
    """Largest stable SGD step ``alpha_max(B) = 2 / lambda'_1(B)`` on the local quadratic model.

    Assumptions: the loss is locally quadratic with batch Hessian ``H_batch``; plain SGD without
    momentum (``w <- w - alpha g``) is stable iff ``alpha < 2 / lambda_max(H_batch)``; the top batch
    eigenvalue follows :func:`spiked_wigner_outlier` with spike ``lam1 > 0``.  Hence::

        B >= B*:  alpha_max = 2 / (lambda1 + P sigma^2 / (B lambda1))  in (1/lambda1, 2/lambda1]
        B <  B*:  alpha_max = 1 / (sigma sqrt(P/B))                     (edge regime, grows like sqrt(B))

    The paper's linear rule is the small-noise expansion :func:`sgd_max_lr_linear`.
    """
    f = "sgd_max_lr"
    l1 = _arr(lam1, "lam1", f)
    return _out(2.0 / np.asarray(spiked_wigner_outlier(l1, sigma, P, B)))


def sgd_max_lr_linear(lam1, sigma, P, B):
    """Noise-dominated linear rule ``alpha_max ~ 2 B lambda1 / (P sigma^2)`` (Granziol et al. 2022).

    Obtained from the outlier branch ``2 / (lambda1 + P sigma^2/(B lambda1))`` when the noise term
    dominates.  Caveat (exact within the model): the outlier branch only holds for ``B > B*``, where the
    noise term is *smaller* than lambda1, so within the pure BBP model this expression is an
    extrapolation; it is the rule the paper states for SGD (``alpha proportional to B``) and what
    :func:`lr_ratio` with ``method='linear'`` uses.
    """
    f = "sgd_max_lr_linear"
    l1, s, p, b = (_arr(lam1, "lam1", f), _arr(sigma, "sigma", f), _arr(P, "P", f), _arr(B, "B", f))
    return _out(2.0 * b * l1 / (p * s**2))


def adaptive_max_lr(alpha_ref, B_ref, B):
    """Square-root rule for adaptive methods: ``alpha_max(B) = alpha_ref sqrt(B / B_ref)``.

    Argument (Granziol et al. 2022): Adam/RMSProp divide the step by ``sqrt(v) + delta`` where ``v``, the
    batch gradient second moment, scales like 1/B in the noise-dominated regime, while the batch
    curvature scales like 1/B there; the preconditioned curvature therefore scales like 1/sqrt(B) and
    the stable step like sqrt(B).  Assumes ``delta`` negligible against sqrt(v) and B well below the
    critical batch size.
    """
    f = "adaptive_max_lr"
    a, b0, b = _arr(alpha_ref, "alpha_ref", f), _arr(B_ref, "B_ref", f), _arr(B, "B", f)
    return _out(a * np.sqrt(b / b0))


def lr_ratio(B1, B2, *, lam1=None, sigma=None, P=None, method: str = "sgd"):
    """Ratio ``alpha(B2) / alpha(B1)`` of maximal stable learning rates.

    ``method``:

    * ``'sgd'`` -- ``lambda'_1(B1) / lambda'_1(B2)`` from :func:`spiked_wigner_outlier` (needs ``lam1``,
      ``sigma``, ``P``); when both batch sizes are above ``B*`` this is the paper's rule
      ``(lambda1 + P sigma^2/(B1 lambda1)) / (lambda1 + P sigma^2/(B2 lambda1))``.
    * ``'linear'`` -- ``B2 / B1`` (SGD, noise-dominated regime).
    * ``'sqrt'`` -- ``sqrt(B2 / B1)`` (adaptive methods).
    """
    f = "lr_ratio"
    b1, b2 = _arr(B1, "B1", f), _arr(B2, "B2", f)
    if method == "linear":
        return _out(b2 / b1)
    if method == "sqrt":
        return _out(np.sqrt(b2 / b1))
    if method != "sgd":
        raise TheoryError(
            f"The 'method' parameter of lr_ratio must be one of 'sgd', 'linear', 'sqrt'. Got "
            f"{method!r} instead.")
    if lam1 is None or sigma is None or P is None:
        raise TheoryError("lr_ratio with method='sgd' needs 'lam1', 'sigma' and 'P'.")
    l1 = _arr(lam1, "lam1", f)
    return _out(np.asarray(spiked_wigner_outlier(l1, sigma, P, b1))
                / np.asarray(spiked_wigner_outlier(l1, sigma, P, b2)))


# --------------------------------------------------------------------------- samplers


def sample_spiked_wigner(lam, sigma: float, P: int, B: float, *, seed=None) -> np.ndarray:
    """Sample ``H = diag(lam) (padded with zeros) + E`` with E symmetric, ``Var(E_ij) = sigma^2/B``.

    Off-diagonal entries N(0, sigma^2/B), diagonal N(0, 2 sigma^2/B) (GOE scaling).  ``lam`` is a
    scalar or a short sequence of spikes placed on the leading diagonal entries.
    """
    f = "sample_spiked_wigner"
    sigma = positive_float(sigma, "sigma", f)
    P = positive_int(P, "P", f)
    B = positive_float(B, "B", f)
    lam = np.atleast_1d(_arr(lam, "lam", f, positive=False))
    if lam.size > P:
        raise TheoryError(f"sample_spiked_wigner got {lam.size} spikes for P = {P}.")
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((P, P)) * (sigma / np.sqrt(B))
    H = (g + g.T) / np.sqrt(2.0)
    H[np.arange(lam.size), np.arange(lam.size)] += lam
    return H


def sample_spiked_wishart_data(ell, sigma2: float, P: int, B: int, *, seed=None) -> np.ndarray:
    """Sample a ``B x P`` data matrix with i.i.d. rows N(0, diag(ell, sigma2, ..., sigma2)).

    ``X.T @ X / B`` is then the spiked-Wishart batch matrix of :func:`spiked_wishart_outlier`.
    """
    f = "sample_spiked_wishart_data"
    sigma2 = positive_float(sigma2, "sigma2", f)
    P = positive_int(P, "P", f)
    B = positive_int(B, "B", f)
    ell = np.atleast_1d(_arr(ell, "ell", f))
    if ell.size > P:
        raise TheoryError(f"sample_spiked_wishart_data got {ell.size} spikes for P = {P}.")
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((B, P)) * np.sqrt(sigma2)
    X[:, : ell.size] *= np.sqrt(ell / sigma2)
    return X
