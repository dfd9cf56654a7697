"""Best conditional comp-sum risk C*_tau(p) (shared by _risk, _regret and _tight)."""

from __future__ import annotations

import numpy as np

from ._validate import exprel, log1prel


def _cstar(p: np.ndarray, tau: float, w: np.ndarray | None = None) -> np.ndarray:
    """C*_tau(p); with w, p lists distinct levels and w their multiplicities (entries with w = 0 ignored)."""
    if w is not None:
        p = np.where(w > 0, p, 0.0)
    wp = p if w is None else w * p
    if tau == 2.0:
        return 1.0 - np.max(p, axis=-1)
    kappa = 1.0 / (2.0 - tau)
    with np.errstate(all="ignore"):
        logp = np.log(np.where(p > 0, p, 1.0))
        if kappa <= 1.5:
            q = np.sum(np.where(p > 0, wp * logp * exprel((kappa - 1.0) * logp), 0.0), axis=-1)
            d = (kappa - 1.0) * q
            L = np.log1p(d) / kappa
            return -exprel(L) * q * log1prel(d)
        if w is not None:
            logp = logp + np.log(np.where(p > 0, w, 1.0)) / kappa
        z = np.where(p > 0, kappa * logp, -np.inf)
        m = np.max(z, axis=-1, keepdims=True)
        L = (m[..., 0] + np.log(np.sum(np.exp(z - m), axis=-1))) / kappa
        return -np.expm1(L) / (tau - 1.0)
