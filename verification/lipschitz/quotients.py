"""Proven lower bounds of the Lipschitz constant: difference quotients (and, for two-piece nets, Jacobian norms)
attained by the network, evaluated with rigorous output enclosures (:mod:`verification.evaluate`).

Used by the ``sampled`` method (:mod:`verification.lipschitz.baseline`) and by the self-check of every
certified value (:mod:`verification.lipschitz.registry`).
"""

from __future__ import annotations

import numpy as np

from verification.activations import Activation
from verification.evaluate import enclose, enclose_trace
from verification.network import Network

__all__ = ["rigorous_quotients", "rigorous_gradient_norms", "attained_quotients", "sampler", "steepest_pairs"]

_U = np.finfo(np.float64).eps / 2


def _enclose_outputs(net: Network, c: np.ndarray | None, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rigorous bounds on ``f(x)`` (or on ``cᵀ f(x)``, shape ``(N, 1)``) at the float points ``x``."""
    lo, hi = enclose(net, x)
    if c is None:
        return lo, hi
    mid, rad = (lo + hi) / 2, (hi - lo) / 2
    rad = np.maximum(hi - mid, mid - lo) * (1 + 4 * _U)
    m = c.size + 2
    g = m * _U / (1 - m * _U)
    s = mid @ c
    r = (rad @ np.abs(c)) * (1 + 2 * g) + g * (np.abs(mid) @ np.abs(c)) * (1 + 2 * g) + 2.0 ** -1000
    return np.nextafter(s - r, -np.inf)[:, None], np.nextafter(s + r, np.inf)[:, None]


def rigorous_quotients(net: Network, norm: int | str, c: np.ndarray | None, x1: np.ndarray,
                       x2: np.ndarray) -> np.ndarray:
    """Proven lower bounds of ``||f(x1) - f(x2)|| / ||x1 - x2||`` for each pair of float points (rows).

    The outputs are enclosed rigorously (:func:`verification.evaluate.enclose`), so rounding and
    cancellation can only lower the value, never raise it above the true quotient (0 where unsure)."""
    lo1, hi1 = _enclose_outputs(net, c, x1)
    lo2, hi2 = _enclose_outputs(net, c, x2)
    d = np.maximum(0.0, np.maximum(lo1 - hi2, lo2 - hi1))
    d = np.where(np.isfinite(d), d, 0.0)
    dx = np.abs(x1 - x2) * (1 + 2 * _U)  # >= |x1 - x2| exactly
    if norm == 2:
        m, n = d.shape[1] + 4, dx.shape[1] + 4
        num = np.sqrt((d * d).sum(axis=1)) * (1 - 2 * m * _U)
        den = np.sqrt((dx * dx).sum(axis=1)) * (1 + 2 * n * _U)
    else:
        num, den = d.max(axis=1), dx.max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(den > 0, num / den * (1 - 4 * _U), 0.0)
    return np.where(np.isfinite(q), np.maximum(q, 0.0), 0.0)


def rigorous_gradient_norms(net: Network, norm: int | str, c: np.ndarray | None, x: np.ndarray) -> np.ndarray:
    """Proven lower bounds of the Lipschitz constant from Jacobians at the float points ``x`` (rows); 0 where
    not applicable.

    Only for networks whose activations are two-piece maps (ReLU, leaky ReLU): at a point where no
    pre-activation can be 0 (checked on rigorous enclosures) the network is linear on a neighbourhood, its
    Jacobian ``J = W_L D ... D W_0`` has exact diagonal slopes, and ``||J|| >= ||J v|| / ||v||``; the float
    product carries the bound ``gamma_k |W_L| D ... D |W_0| |v|`` (``k`` the summed inner dimensions).  Unlike
    difference quotients this does not lose the variation of a network whose outputs are dominated by biases."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    out = np.zeros(x.shape[0])
    if any(a.two_piece_slope is None for a in net.activations):
        return out
    trace = enclose_trace(net, x)
    ok = np.ones(x.shape[0], dtype=bool)
    slopes = []
    for k, layer in enumerate(net.layers):
        if isinstance(layer, Activation):
            lo, hi = trace[k]
            ok &= np.all((lo > 0) | (hi < 0), axis=1)
            slopes.append(np.where(lo > 0, 1.0, layer.two_piece_slope))
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return out
    affine = net.affine_layers
    seeds = np.eye(net.out_dim) if c is None else np.asarray(c, dtype=np.float64)[None, :]
    # the rows of J = W_L D ... D W_0 and of |W_L| |D| ... |W_0| by transposed products from the output
    # (the protocol only: no dense weights, so convolutions stay sparse)
    J = np.broadcast_to(seeds, (idx.size,) + seeds.shape).copy()
    A = np.abs(J)
    n_act = len(slopes)
    for layer in reversed(net.layers):
        if isinstance(layer, Activation):
            n_act -= 1
            s = slopes[n_act][idx][:, None, :]
            J, A = J * s, A * np.abs(s)
        else:
            J, A = layer.transpose(J), layer.abs_transpose(A)
    inner = sum(layer.in_features for layer in affine) + (c.size if c is not None else 0) + 2 * len(affine)
    gam = inner * _U / (1 - inner * _U)
    for j, i in enumerate(idx):
        Ji, Ai = J[j], A[j] * (1 + 2 * gam)
        if norm == 2:
            v = np.linalg.svd(Ji, full_matrices=False)[2][0]
        else:
            row = np.abs(Ji).sum(axis=1).argmax()
            v = np.where(Ji[row] >= 0, 1.0, -1.0)
        m = Ji.shape[1] + 2
        gm = m * _U / (1 - m * _U)
        w = Ji @ v
        err = (gam * (Ai @ np.abs(v)) + gm * (np.abs(Ji) @ np.abs(v)) * (1 + 2 * gam)) * (1 + 4 * _U)
        if norm == 2:
            num = max(0.0, np.sqrt((np.maximum(np.abs(w) - err, 0.0) ** 2).sum()) * (1 - 2 * (w.size + 4) * _U))
            den = np.sqrt((v * v).sum()) * (1 + 2 * (v.size + 4) * _U)
        else:
            num, den = float(np.maximum(np.abs(w) - err, 0.0).max()), 1.0
        out[i] = num / den * (1 - 4 * _U)
    return out


def steepest_pairs(fnet: Network, x: np.ndarray, norm, scale: np.ndarray, clip=None):
    """Pairs ``x ± t v`` along each point's steepest direction ``v`` (top right singular vector of the
    Jacobian for l2, sign vector of its largest row for l-inf), for several step sizes ``t``."""
    jac = fnet.jacobian(x)
    if norm == 2:
        v = np.linalg.svd(jac, full_matrices=False)[2][:, 0, :]
    else:
        rows = np.abs(jac).sum(axis=2).argmax(axis=1)
        v = np.sign(jac[np.arange(x.shape[0]), rows])
        v = np.where(v == 0, 1.0, v)
    a, b = [], []
    for t in (1e-1, 1e-3, 1e-5, 1e-7):
        step = t * scale * v
        p, q = x - step, x + step
        if clip is not None:
            p, q = np.clip(p, *clip), np.clip(q, *clip)
        a.append(p)
        b.append(q)
    return np.concatenate(a), np.concatenate(b)


def sampler(net: Network, rng):
    n0 = net.in_dim
    if net.input_lower is not None and net.input_upper is not None:
        lo, hi = net.input_lower, net.input_upper

        def draw(k: int) -> np.ndarray:
            return lo + (hi - lo) * rng.random((k, n0))

        return draw, np.maximum(hi - lo, 1e-12), (lo, hi)

    def draw_normal(k: int) -> np.ndarray:
        s = rng.choice([0.1, 1.0, 10.0], size=(k, 1))
        return s * rng.standard_normal((k, n0))

    return draw_normal, np.ones(n0), None


def attained_quotients(net: Network, norm: int | str, c: np.ndarray | None, n_pairs: int = 64,
                       seed: int = 0) -> float:
    """A quick proven lower bound of the Lipschitz constant (random and steepest-direction pairs)."""
    rng = np.random.default_rng(seed)
    draw, scale, clip = sampler(net, rng)
    fnet = net if c is None else net.with_output(c)
    x1, x2 = draw(n_pairs), draw(n_pairs)
    pts = draw(max(1, n_pairs // 8))
    pa, pb = steepest_pairs(fnet, pts, norm, scale, clip)
    q = rigorous_quotients(net, norm, c, np.concatenate([x1, pa]), np.concatenate([x2, pb]))
    return float(max(q.max(), rigorous_gradient_norms(net, norm, c, pts).max()))
