"""The alpha-CROWN optimiser: projected Adam ascent of a sound bound over relaxation slopes (Xu et al.,
ICLR 2021, Sec. 3.1).

Every slope in its admissible range gives a valid relaxation, so every iterate is a sound bound and callers
keep the best one per row; the optimiser only moves the slopes.  Used by the output and intermediate bounds
of :mod:`verification.bounds.crown` and by the specification rows of :mod:`verification.bounds.batched`.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

__all__ = ["ascend"]

BETA1, BETA2 = 0.9, 0.999
_TINY = 1e-12  # Adam's denominator guard


def ascend(
    alphas: list,
    ranges: Sequence,
    evaluate: Callable[[list], None],
    gradient: Callable[[], list],
    *,
    iters: int,
    lr: float,
    done: Callable[[], np.ndarray] | None = None,
    drop: Callable[[np.ndarray], None] | None = None,
) -> list:
    """Run ``iters`` iterations of projected Adam ascent on the slopes ``alphas``; returns the last slopes.

    ``alphas[j]``: array of slopes of layer ``j`` (batch axis first), or ``None`` for a layer kept fixed;
    ``ranges[j] = (lo, hi)``: its admissible interval (the projection clips to it).  Each iteration calls
    ``evaluate(alphas)`` (the caller bounds at these slopes and keeps the best value); every iteration but
    the last then steps along ``gradient()``, the gradient of the last evaluation (one array per layer,
    ``None`` for fixed layers), with the bias-corrected Adam step ``lr * m_hat / (sqrt(v_hat) + 1e-12)``.

    Early exit: ``done()`` (optional, called before each step) marks the batch entries that need no more
    steps; when it marks all the loop ends, otherwise after the step they are removed from the slopes and
    the Adam moments and ``drop(keep)`` tells the caller which entries remain (the next ``evaluate`` gets
    only those)."""
    alphas = list(alphas)
    mom = [None if a is None else np.zeros_like(a) for a in alphas]
    vel = [None if a is None else np.zeros_like(a) for a in alphas]
    for it in range(1, iters + 1):
        evaluate(alphas)
        if it == iters:
            break
        keep = None
        if done is not None:
            keep = ~np.asarray(done(), dtype=bool)
            if not keep.any():
                break
        grads = gradient()
        for j, a in enumerate(alphas):
            if a is None:
                continue
            g = grads[j]
            mom[j] = BETA1 * mom[j] + (1 - BETA1) * g
            vel[j] = BETA2 * vel[j] + (1 - BETA2) * g * g
            step = lr * (mom[j] / (1 - BETA1**it)) / (np.sqrt(vel[j] / (1 - BETA2**it)) + _TINY)
            alphas[j] = np.clip(a + step, ranges[j][0], ranges[j][1])
        if keep is not None and not keep.all():
            alphas = [None if a is None else a[keep] for a in alphas]
            mom = [None if a is None else a[keep] for a in mom]
            vel = [None if a is None else a[keep] for a in vel]
            if drop is not None:
                drop(keep)
    return alphas
