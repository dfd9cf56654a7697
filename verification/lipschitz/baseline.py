"""Baseline Lipschitz methods every other method is compared with: ``naive``, ``sampled``, ``exact``.

* ``naive``: product of layer operator norms times activation Lipschitz constants (certified).
* ``sampled``: a *lower* bound from Jacobian norms at random points and difference quotients of random
  pairs (never certified as an upper bound).
* ``exact``: the true constant for nets with at most one hidden nonlinear layer whose activation patterns
  are all realisable (ReLU / leaky ReLU with a full-row-rank first weight; MaxMin with linearly independent
  pair differences), by enumerating the ``2^h`` patterns.  Certified (it is the constant itself).
"""

from __future__ import annotations

import numpy as np

from verification.activations import GroupSort, LeakyReLU, ReLU
from verification.errors import PreconditionError
from verification.lipschitz._kernels import max_pattern_norm
from verification.lipschitz.registry import register
from verification.lipschitz.result import LipschitzResult
from verification.network import Network

__all__ = ["operator_norm", "naive", "sampled", "exact", "MAX_EXACT_PATTERNS_LOG2"]

MAX_EXACT_PATTERNS_LOG2 = 22


def operator_norm(m: np.ndarray, norm: int | str) -> float:
    """Operator norm of ``m`` for l2 (spectral) or l-inf (max row l1 norm)."""
    m = np.atleast_2d(m)
    if norm == 2:
        return float(np.linalg.norm(m, 2))
    return float(np.abs(m).sum(axis=1).max())


def _last_weight(net: Network, c: np.ndarray | None) -> np.ndarray:
    w = net.dense_layers[-1].weight
    return w if c is None else c[None, :] @ w


@register("naive", summary="product of layer norms (certified, loose)", auto_priority=0)
def naive(net: Network, norm: int | str, c: np.ndarray | None = None) -> LipschitzResult:
    dense = net.dense_layers
    factors = [operator_norm(d.weight, norm) for d in dense[:-1]]
    factors.append(operator_norm(_last_weight(net, c), norm))
    act = [a.lipschitz(norm) for a in net.activations]
    value = float(np.prod(factors) * np.prod(act)) if act else float(np.prod(factors))
    return LipschitzResult(value, "naive", norm, True, details={"layer_norms": factors, "activation_constants": act})


def _jac_norms(jac: np.ndarray, norm: int | str) -> np.ndarray:
    if norm == 2:
        return np.linalg.norm(jac, ord=2, axis=(1, 2))
    return np.abs(jac).sum(axis=2).max(axis=1)


def _vec_norm(v: np.ndarray, norm: int | str) -> np.ndarray:
    return np.linalg.norm(v, axis=-1) if norm == 2 else np.abs(v).max(axis=-1)


@register("sampled", summary="lower bound from gradients at random points and random pairs (not certified)")
def sampled(
    net: Network,
    norm: int | str,
    c: np.ndarray | None = None,
    n_points: int = 2000,
    n_refine: int = 20,
    seed: int = 0,
) -> LipschitzResult:
    """Lower bound: max of ``||J(x)||`` over sampled points (plus a short random hill climb from the best
    points) and of ``||f(x)-f(y)|| / ||x-y||`` over random pairs.  Points are drawn in the stored input
    domain if the network has one, else from N(0, s²) for s in {0.1, 1, 10}."""
    rng = np.random.default_rng(seed)
    n0 = net.in_dim
    if net.input_lower is not None and net.input_upper is not None:
        lo, hi = net.input_lower, net.input_upper

        def draw(k: int) -> np.ndarray:
            return lo + (hi - lo) * rng.random((k, n0))

        scale = np.maximum(hi - lo, 1e-12)
    else:

        def draw(k: int) -> np.ndarray:
            s = rng.choice([0.1, 1.0, 10.0], size=(k, 1))
            return s * rng.standard_normal((k, n0))

        scale = np.ones(n0)
    fnet = net if c is None else net.with_output(c)
    x = draw(n_points)
    vals = _jac_norms(fnet.jacobian(x), norm)
    best = float(vals.max())
    # hill climb from the best points: random perturbations accepted when the Jacobian norm grows
    top = x[np.argsort(vals)[-8:]]
    top_vals = np.sort(vals)[-8:]
    step = 0.1 * scale
    for _ in range(n_refine):
        cand = top + step * rng.standard_normal(top.shape)
        if net.input_lower is not None and net.input_upper is not None:
            cand = np.clip(cand, net.input_lower, net.input_upper)
        cv = _jac_norms(fnet.jacobian(cand), norm)
        better = cv > top_vals
        top[better], top_vals[better] = cand[better], cv[better]
        step *= 0.8
    best = max(best, float(top_vals.max()))
    # difference quotients of random pairs (near and far)
    x1 = draw(n_points)
    x2 = np.concatenate([x1[: n_points // 2] + 1e-3 * scale * rng.standard_normal((n_points // 2, n0)), draw(n_points - n_points // 2)])
    dx = _vec_norm(x1 - x2, norm)
    ok = dx > 0
    dq = _vec_norm(fnet(x1) - fnet(x2), norm)[ok] / dx[ok]
    pair_best = float(dq.max()) if dq.size else 0.0
    value = max(best, pair_best)
    return LipschitzResult(
        value, "sampled", norm, False,
        details={"kind": "lower_bound", "gradient_max": best, "pair_max": pair_best, "n_points": n_points, "seed": seed},
    )


def _exact_options(net: Network) -> tuple[np.ndarray, str]:
    """Choice tensor for :func:`max_pattern_norm` and a description, or raise PreconditionError."""
    acts = net.activations
    if len(acts) != 1:
        raise PreconditionError(
            f"method 'exact' needs at most one hidden nonlinear layer; this network has {len(acts)} "
            "(use 'sampled' for a lower bound and an SDP method for an upper bound)"
        )
    act, w0 = acts[0], net.dense_layers[0].weight
    h, n0 = w0.shape
    tol = 1e-9 * max(1.0, np.abs(w0).max())
    if isinstance(act, (ReLU, LeakyReLU)):
        lo, hi = act.slope_bounds()
        if np.linalg.matrix_rank(w0, tol=tol) < h:
            raise PreconditionError(
                f"method 'exact' needs the first weight ({h}x{n0}) to have full row rank so that every "
                "activation pattern is realisable; it does not"
            )
        options = np.stack([lo * w0, hi * w0], axis=1)[:, :, None, :]
        return np.ascontiguousarray(options), f"{act.describe()} patterns"
    if isinstance(act, GroupSort) and act.group_size == 2:
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
        value = operator_norm(_last_weight(net, c), norm)
        return LipschitzResult(value, "exact", norm, True, details={"patterns": 1})
    options, what = _exact_options(net)
    n_groups = options.shape[0]
    if n_groups > MAX_EXACT_PATTERNS_LOG2:
        raise PreconditionError(
            f"method 'exact' would enumerate 2^{n_groups} {what}; the limit is 2^{MAX_EXACT_PATTERNS_LOG2}"
        )
    w_out = np.ascontiguousarray(_last_weight(net, c))
    value, code = max_pattern_norm(w_out, options, 0 if norm == 2 else 1)
    pattern = [(code >> j) & 1 for j in range(n_groups)]
    return LipschitzResult(float(value), "exact", norm, True, details={"patterns": 2**n_groups, "argmax_pattern": pattern})


def _exact_cheap(net: Network) -> bool:
    if not net.activations:
        return True
    try:
        options, _ = _exact_options(net)
    except PreconditionError:
        return False
    return options.shape[0] <= 16
