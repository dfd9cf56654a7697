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

from verification.activations import GroupSort, LeakyReLU, ReLU
from verification.errors import PreconditionError
from verification.lipschitz._kernels import max_pattern_norm
from verification.lipschitz.registry import register
from verification.lipschitz.result import LipschitzResult
from verification.network import Dense, Network

__all__ = ["operator_norm", "naive", "sampled", "exact", "rigorous_quotients", "attained_quotients", "MAX_EXACT_PATTERNS_LOG2"]

MAX_EXACT_PATTERNS_LOG2 = 22


def operator_norm(m: np.ndarray, norm: int | str) -> float:
    """Operator norm of ``m`` for l2 (spectral) or l-inf (max row l1 norm), rounded up: the float64 value
    times ``1 + 8 (n + 2) eps`` covers the rounding of the sums (l-inf) and of a backward-stable SVD (l2)."""
    m = np.atleast_2d(m)
    up = 1.0 + 8 * (max(m.shape) + 2) * np.finfo(np.float64).eps
    if norm == 2:
        return float(np.linalg.norm(m, 2)) * up
    return float(np.abs(m).sum(axis=1).max()) * up


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
    value *= 1.0 + 4 * (len(factors) + len(act)) * np.finfo(np.float64).eps  # the products round too
    return LipschitzResult(value, "naive", norm, True, details={"layer_norms": factors, "activation_constants": act})


def _jac_norms(jac: np.ndarray, norm: int | str) -> np.ndarray:
    if norm == 2:
        return np.linalg.norm(jac, ord=2, axis=(1, 2))
    return np.abs(jac).sum(axis=2).max(axis=1)


_U = np.finfo(np.float64).eps / 2


def _enclose_outputs(net: Network, c: np.ndarray | None, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rigorous bounds on ``f(x)`` (or on ``cᵀ f(x)``, shape ``(N, 1)``) at the float points ``x``."""
    from verification.evaluate import enclose

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
    from verification.evaluate import enclose_trace

    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    out = np.zeros(x.shape[0])
    if any(a.two_piece_slope is None for a in net.activations):
        return out
    trace = enclose_trace(net, x)
    ok = np.ones(x.shape[0], dtype=bool)
    slopes = []
    for k, layer in enumerate(net.layers):
        if not isinstance(layer, Dense):
            lo, hi = trace[k]
            ok &= np.all((lo > 0) | (hi < 0), axis=1)
            slopes.append(np.where(lo > 0, 1.0, layer.two_piece_slope))
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return out
    dense = net.dense_layers
    last = dense[-1].weight if c is None else c[None, :] @ dense[-1].weight
    last_abs = np.abs(dense[-1].weight) if c is None else np.abs(c)[None, :] @ np.abs(dense[-1].weight)
    inner = sum(d.in_features for d in dense) + (c.size if c is not None else 0) + 2 * len(dense)
    gam = inner * _U / (1 - inner * _U)
    for i in idx:
        if len(dense) == 1:
            J, A = last, last_abs
        else:
            J, A = dense[0].weight, np.abs(dense[0].weight)
            for d, s in zip(dense[1:-1], slopes[:-1]):
                J, A = d.weight @ (s[i][:, None] * J), np.abs(d.weight) @ (np.abs(s[i])[:, None] * A)
            s = slopes[-1][i]
            J, A = last @ (s[:, None] * J), last_abs @ (np.abs(s)[:, None] * A)
        A = A * (1 + 2 * gam)
        if norm == 2:
            v = np.linalg.svd(J)[2][0]
        else:
            row = np.abs(J).sum(axis=1).argmax()
            v = np.where(J[row] >= 0, 1.0, -1.0)
        m = J.shape[1] + 2
        gm = m * _U / (1 - m * _U)
        w = J @ v
        err = (gam * (A @ np.abs(v)) + gm * (np.abs(J) @ np.abs(v)) * (1 + 2 * gam)) * (1 + 4 * _U)
        if norm == 2:
            num = max(0.0, np.sqrt((np.maximum(np.abs(w) - err, 0.0) ** 2).sum()) * (1 - 2 * (w.size + 4) * _U))
            den = np.sqrt((v * v).sum()) * (1 + 2 * (v.size + 4) * _U)
        else:
            num, den = float(np.maximum(np.abs(w) - err, 0.0).max()), 1.0
        out[i] = num / den * (1 - 4 * _U)
    return out


def _steepest_pairs(fnet: Network, x: np.ndarray, norm, scale: np.ndarray, clip=None):
    """Pairs ``x ± t v`` along each point's steepest direction ``v`` (top right singular vector of the
    Jacobian for l2, sign vector of its largest row for l-inf), for several step sizes ``t``."""
    jac = fnet.jacobian(x)
    if norm == 2:
        v = np.linalg.svd(jac)[2][:, 0, :]
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


def _sampling(net: Network, rng):
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
    draw, scale, clip = _sampling(net, rng)
    fnet = net if c is None else net.with_output(c)
    x1, x2 = draw(n_pairs), draw(n_pairs)
    pts = draw(max(1, n_pairs // 8))
    pa, pb = _steepest_pairs(fnet, pts, norm, scale, clip)
    q = rigorous_quotients(net, norm, c, np.concatenate([x1, pa]), np.concatenate([x2, pb]))
    return float(max(q.max(), rigorous_gradient_norms(net, norm, c, pts).max()))


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
    draw, scale, clip = _sampling(net, rng)
    fnet = net if c is None else net.with_output(c)
    x = draw(n_points)
    vals = _jac_norms(fnet.jacobian(x), norm)
    # hill climb from the best points: random perturbations accepted when the Jacobian norm grows
    top = x[np.argsort(vals)[-8:]]
    top_vals = np.sort(vals)[-8:]
    step = 0.1 * scale
    for _ in range(n_refine):
        cand = top + step * rng.standard_normal(top.shape)
        if clip is not None:
            cand = np.clip(cand, *clip)
        cv = _jac_norms(fnet.jacobian(cand), norm)
        better = cv > top_vals
        top[better], top_vals[better] = cand[better], cv[better]
        step *= 0.8
    gradient_max = float(max(vals.max(), top_vals.max()))
    best_pts = np.concatenate([top, x[np.argsort(vals)[-32:]]])
    pa, pb = _steepest_pairs(fnet, best_pts, norm, scale, clip)
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
    except PreconditionError:
        return False
    return options.shape[0] <= 16
