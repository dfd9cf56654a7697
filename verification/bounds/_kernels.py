"""Numba kernels of the Jacobian bound propagation (float64, C-contiguous, batched over domains).

numba (about 0.3 s to import) is imported when a kernel first runs, not with the package: ``verify`` and
``output_bounds`` never need it."""

from __future__ import annotations

import numpy as np

__all__ = ["product_step"]

_COMPILED: dict = {}


def product_step(lam, dl, du, lg, ug, mode):
    """See :func:`_product_step` (compiled with ``numba.njit(cache=True)`` on first use)."""
    kernel = _COMPILED.get("product_step")
    if kernel is None:
        from numba import njit

        kernel = _COMPILED.setdefault("product_step", njit(cache=True)(_product_step))
    # layer products may return transposed views (verification/layers/sparse.py): one layout, one compilation
    return kernel(np.ascontiguousarray(lam), dl, du, lg, ug, mode)


def _product_step(lam, dl, du, lg, ug, mode):
    """Lower-bound backward step through ``y = d * g`` (elementwise) with ``d in [dl, du]``, ``g in [lg, ug]``.

    ``lam`` (B, m, n): coefficients on ``y``; ``dl, du, lg, ug`` (B, n).  Returns the coefficients on ``g``
    (B, m, n) and the constant term (B, m) of a linear lower bound of ``lam · y``.

    ``mode`` 0 (Shi et al. 2022): ``min(dl g, du g) = du g - (du - dl) relu(g)`` and
    ``max(dl g, du g) = dl g + (du - dl) relu(g)``, with ``relu(g)`` replaced by its chord on ``[lg, ug]``
    (the convex hull of ``{(g, d g)}``).  ``mode`` 1 (RecurJac-style): where both ``d`` and the sign of ``g``
    are uncertain, ``y`` is replaced by its interval bounds (a constant), elsewhere as mode 0."""
    B, m, n = lam.shape
    out = np.empty_like(lam)
    bias = np.zeros((B, m))
    for b in range(B):
        for i in range(n):
            a0 = dl[b, i]
            a1 = du[b, i]
            l = lg[b, i]
            u = ug[b, i]
            if l >= 0.0:
                s = 1.0
                t = 0.0
            elif u <= 0.0:
                s = 0.0
                t = 0.0
            else:
                s = u / (u - l)
                t = -s * l
            gap = a1 - a0
            # lower line of y (used when the coefficient is >= 0) and upper line (coefficient < 0)
            lo_s = a1 - gap * s
            lo_t = -gap * t
            hi_s = a0 + gap * s
            hi_t = gap * t
            if mode == 1 and gap > 0.0 and l < 0.0 and u > 0.0:
                p1 = a0 * l
                p2 = a1 * l
                p3 = a0 * u
                p4 = a1 * u
                lo_s = 0.0
                hi_s = 0.0
                lo_t = min(min(p1, p2), min(p3, p4))
                hi_t = max(max(p1, p2), max(p3, p4))
            for r in range(m):
                c = lam[b, r, i]
                if c >= 0.0:
                    out[b, r, i] = c * lo_s
                    bias[b, r] += c * lo_t
                else:
                    out[b, r, i] = c * hi_s
                    bias[b, r] += c * hi_t
    return out, bias
