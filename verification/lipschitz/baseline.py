"""Baseline Lipschitz methods every other method is compared with: ``naive``, ``sampled``, ``exact``.

* ``naive``: product of layer operator norms times activation Lipschitz constants (certified).
* ``sampled``: a proven *lower* bound: difference quotients attained by the network (random pairs and short
  steps along the steepest direction at the points of largest Jacobian norm), evaluated with rigorous
  output enclosures (never an upper bound).
* ``exact``: the true constant for nets with at most one hidden nonlinear layer whose activation patterns
  are all realisable (ReLU / leaky ReLU with a full-row-rank first weight; MaxMin with linearly independent
  pair differences), by enumerating the ``2^h`` patterns.  Certified (it is the constant itself).
"""

from __future__ import annotations

import numpy as np

from verification.errors import PreconditionError, UnsupportedLayerError
from verification.lipschitz._exact_kernel import max_pattern_norm
from verification.lipschitz.quotients import rigorous_gradient_norms, rigorous_quotients, sampler, steepest_pairs
from verification.lipschitz.registration import register
from verification.lipschitz.result import LipschitzResult
from verification.layers import AffineLayer
from verification.network import Network

__all__ = ["naive", "sampled", "exact", "MAX_EXACT_PATTERNS_LOG2"]

MAX_EXACT_PATTERNS_LOG2 = 22


def _last_layer(net: Network, c: np.ndarray | None) -> AffineLayer:
    """The last affine layer, or ``cᵀ`` times it for a scalar output."""
    last = net.affine_layers[-1]
    return last if c is None else last.select(c[None, :])


@register("naive", summary="product of layer norms (certified, loose)", auto_priority=0)
def naive(net: Network, norm: int | str, c: np.ndarray | None = None) -> LipschitzResult:
    """Product of the layers' certified operator norms (:meth:`AffineLayer.norm_bound`) and the activations'
    Lipschitz constants, rounded up."""
    factors = [layer.norm_bound(norm) for layer in net.affine_layers[:-1]]
    factors.append(_last_layer(net, c).norm_bound(norm))
    act = [a.lipschitz(norm) for a in net.activations]
    value = float(np.prod(factors) * np.prod(act)) if act else float(np.prod(factors))
    value *= 1.0 + 4 * (len(factors) + len(act)) * np.finfo(np.float64).eps  # the products round too
    return LipschitzResult(value, "naive", norm, True, details={"layer_norms": factors, "activation_constants": act})


def _jac_norms(jac: np.ndarray, norm: int | str) -> np.ndarray:
    if norm == 2:
        return np.linalg.norm(jac, ord=2, axis=(1, 2))
    return np.abs(jac).sum(axis=2).max(axis=1)


def _jacobian_norms(net: Network, x: np.ndarray, norm: int | str) -> np.ndarray:
    """Float64 Jacobian norms at the rows of ``x``, in chunks so that the products of a wide (convolutional)
    network hold at most about 2^22 values at a time."""
    per_point = max(1, min(net.out_dim, net.in_dim)) * max(net.widths)
    chunk = max(1, (1 << 22) // per_point)
    return np.concatenate([_jac_norms(net.jacobian(x[i:i + chunk]), norm) for i in range(0, x.shape[0], chunk)]) \
        if x.shape[0] else np.zeros(0)


@register("sampled", summary="proven lower bound from attained difference quotients (not an upper bound)")
def sampled(
    net: Network,
    norm: int | str,
    c: np.ndarray | None = None,
    n_points: int = 2000,
    n_refine: int = 20,
    seed: int = 0,
) -> LipschitzResult:
    """Lower bound: the largest difference quotient ``||f(x)-f(y)|| / ||x-y||`` over random pairs and over
    short segments along the steepest direction at the points with the largest Jacobian norm (found at
    sampled points plus a short random hill climb).  Every quotient is evaluated with rigorous output
    enclosures, so the value is attained by the real network: a proven lower bound, whatever the rounding.
    Points are drawn in the stored input domain if the network has one, else from N(0, s²) for s in
    {0.1, 1, 10}.  For ReLU / leaky-ReLU nets the Jacobian norm at those points also counts, with a proven
    rounding bound (:func:`rigorous_gradient_norms`).  ``details["gradient_max"]`` is the largest float64
    Jacobian norm seen (an estimate, not part of the value)."""
    rng = np.random.default_rng(seed)
    n0 = net.in_dim
    draw, scale, clip = sampler(net, rng)
    fnet = net if c is None else net.with_output(c)
    x = draw(n_points)
    vals = _jacobian_norms(fnet, x, norm)
    # hill climb from the best points: random perturbations accepted when the Jacobian norm grows
    top = x[np.argsort(vals)[-8:]]
    top_vals = np.sort(vals)[-8:]
    step = 0.1 * scale
    for _ in range(n_refine):
        cand = top + step * rng.standard_normal(top.shape)
        if clip is not None:
            cand = np.clip(cand, *clip)
        cv = _jacobian_norms(fnet, cand, norm)
        better = cv > top_vals
        top[better], top_vals[better] = cand[better], cv[better]
        step *= 0.8
    gradient_max = float(max(vals.max(), top_vals.max()))
    best_pts = np.concatenate([top, x[np.argsort(vals)[-32:]]])
    pa, pb = steepest_pairs(fnet, best_pts, norm, scale, clip)
    grad_best = float(max(rigorous_quotients(net, norm, c, pa, pb).max(),
                          rigorous_gradient_norms(net, norm, c, best_pts).max()))
    # difference quotients of random pairs (near and far)
    x1 = draw(n_points)
    x2 = np.concatenate([x1[: n_points // 2] + 1e-3 * scale * rng.standard_normal((n_points // 2, n0)),
                         draw(n_points - n_points // 2)])
    if clip is not None:
        x2 = np.clip(x2, *clip)
    pair_best = float(rigorous_quotients(net, norm, c, x1, x2).max()) if n_points else 0.0
    value = max(grad_best, pair_best)
    return LipschitzResult(
        value, "sampled", norm, False,
        details={"kind": "lower_bound", "steepest_pairs_max": grad_best, "pair_max": pair_best,
                 "gradient_max": gradient_max, "n_points": n_points, "seed": seed},
    )


def _exact_options(net: Network) -> tuple[np.ndarray, str]:
    """Choice tensor for :func:`max_pattern_norm` and a description, or raise PreconditionError."""
    acts = net.activations
    if len(acts) != 1:
        raise PreconditionError(
            f"method 'exact' needs at most one hidden nonlinear layer; this network has {len(acts)} "
            "(use 'sampled' for a lower bound and an SDP method for an upper bound)"
        )
    act, w0 = acts[0], net.affine_layers[0].as_matrix()
    h, n0 = w0.shape
    tol = 1e-9 * max(1.0, np.abs(w0).max())
    if act.two_piece_slope is not None:  # the two slopes: a pattern picks one per neuron
        lo, hi = act.slope_bounds()
        if np.linalg.matrix_rank(w0, tol=tol) < h:
            raise PreconditionError(
                f"method 'exact' needs the first weight ({h}x{n0}) to have full row rank so that every "
                "activation pattern is realisable; it does not"
            )
        options = np.stack([lo * w0, hi * w0], axis=1)[:, :, None, :]
        return np.ascontiguousarray(options), f"{act.describe()} patterns"
    if act.pair_form:  # MaxMin: a pattern picks the order of each pair
        diff = w0[0::2] - w0[1::2]
        if np.linalg.matrix_rank(diff, tol=tol) < h // 2:
            raise PreconditionError(
                "method 'exact' on a MaxMin layer needs linearly independent pair differences of the first weight"
            )
        pairs = w0.reshape(h // 2, 2, n0)
        options = np.stack([pairs, pairs[:, ::-1, :]], axis=1)
        return np.ascontiguousarray(options), "maxmin swap patterns"
    raise PreconditionError(f"method 'exact' does not support the activation {act.describe()}")


@register(
    "exact",
    summary="exact constant for one hidden ReLU/leaky/MaxMin layer by pattern enumeration",
    auto_priority=100,
    auto_applicable=lambda net, norm, has_output: _exact_cheap(net),
)
def exact(net: Network, norm: int | str, c: np.ndarray | None = None) -> LipschitzResult:
    if not net.activations:  # affine network: the constant is the norm of the (merged) weight
        value = _last_layer(net, c).norm_bound(norm)
        return LipschitzResult(value, "exact", norm, True, details={"patterns": 1})
    options, what = _exact_options(net)
    n_groups = options.shape[0]
    if n_groups > MAX_EXACT_PATTERNS_LOG2:
        raise PreconditionError(
            f"method 'exact' would enumerate 2^{n_groups} {what}; the limit is 2^{MAX_EXACT_PATTERNS_LOG2}"
        )
    w_out = np.ascontiguousarray(_last_layer(net, c).as_matrix())
    value, code = max_pattern_norm(w_out, options, 0 if norm == 2 else 1)
    pattern = [(code >> j) & 1 for j in range(n_groups)]
    # the pattern matrices and their norms are float64: round the maximum up (relative, size-dependent)
    raw = float(value)
    value = raw * (1.0 + 8 * (sum(options.shape[1:]) + w_out.shape[0] + 4) * np.finfo(np.float64).eps)
    return LipschitzResult(value, "exact", norm, True,
                           details={"patterns": 2**n_groups, "argmax_pattern": pattern, "float64_value": raw})


def _exact_cheap(net: Network) -> bool:
    if not net.activations:
        return True
    try:
        options, _ = _exact_options(net)
    except (PreconditionError, UnsupportedLayerError):  # e.g. a convolution too large for a dense matrix
        return False
    return options.shape[0] <= 16
