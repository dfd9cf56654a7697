"""Public entry point for local Lipschitz constants: :func:`local_lipschitz`."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from verification.layers.deviation import lipschitz_allowance
from verification._json import jsonable
from verification.bounds.bab import BranchAndBound
from verification.bounds.crown import check_supported, crown_layers
from verification.bounds.interval import ibp_layers
from verification.bounds.jacobian import RELAXATIONS, derivative_ranges, jacobian_l1_upper
from verification.bounds.jacobian_coupled import coupled_jacobian_l1_upper
from verification.bounds.types import Bounds, LayerBounds
from verification.errors import InternalCheckError, InvalidParameterError, SolverError
from verification.evaluate import differentiable_at
from verification.activations import Activation
from verification.network import Network, output_vector

__all__ = ["LocalLipschitzResult", "local_lipschitz"]

INTERMEDIATE = ("ibp", "crown", "alpha-crown")


@dataclass(frozen=True)
class LocalLipschitzResult:
    """Local Lipschitz constant of a network on an l-inf box.

    Attributes
    ----------
    value:
        Certified upper bound of the l-inf -> l-inf local Lipschitz constant on the box, i.e. of
        ``max_x max_j ||J_j(x)||_1`` (max over the selected outputs ``j`` of the l1 norm of Jacobian rows,
        over the Clarke Jacobian on the box).
    lower:
        A lower bound: the largest ``||J_j(x)||_1`` found at sampled points of the box (and at points
        certified by branch-and-bound).  ``value - lower`` is the remaining gap.
    per_output, per_output_lower:
        The same two numbers per selected output (one entry when ``output`` is given).
    method:
        Jacobian relaxation (``crown``: Shi et al. 2022; ``recurjac``; ``ibp``), suffixed ``+bab``.  With
        ``crown`` on networks of tanh / sigmoid layers the value is the smaller of two sound bounds: the
        relaxation with independent derivative ranges (``details["independent_upper"]``) and the one that
        keeps every derivative tied to the input (``details["coupled_upper"]``, see
        :mod:`verification.bounds.jacobian_coupled`).
    norm, eps, center:
        The l-inf box ``[center - eps, center + eps]`` (clipped to ``details["domain"]`` if any).
    certified:
        Always True for ``value`` (sound bound propagation); ``lower`` is attained, never an upper bound.
    converged:
        True if ``value == lower`` for every output (relative 1e-9), i.e. the exact local constant was found.
    seconds:
        Wall-clock time, excluding model loading.
    details:
        Intermediate-bound method, BaB statistics per output, sample count.
    """

    value: float
    lower: float
    per_output: tuple
    per_output_lower: tuple
    method: str
    norm: str
    eps: float
    center: tuple
    certified: bool
    converged: bool
    seconds: float
    output: Any = None
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return jsonable(asdict(self))

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def __str__(self) -> str:
        gap = "exact" if self.converged else f"gap {self.value - self.lower:.3g}"
        return (
            f"local Lipschitz ({self.method}, l{self.norm}, eps {self.eps:g}): {self.value:.6g} "
            f"[certified upper bound; sampled lower bound {self.lower:.6g}, {gap}, {self.seconds:.3g} s]"
        )



def _row_gradients(net: Network, x: np.ndarray, cs: np.ndarray) -> np.ndarray:
    """Gradients of ``c_k · f`` at every point: (N, K, in_dim)."""
    return net.vector_jacobian(x, cs)


def _sampled_lower(net: Network, lo, hi, cs, n_samples: int, seed: int, extra=()) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pts = [((lo + hi) / 2)[None, :], lo + (hi - lo) * rng.random((n_samples, lo.size))]
    # box vertices favoured by each output's gradient sign at the centre
    jac0 = net.jacobian((lo + hi) / 2)
    pts.append(np.where(cs @ jac0 >= 0, hi, lo))
    pts += [np.asarray(e, dtype=np.float64)[None, :] for e in extra if e is not None]
    x = np.concatenate(pts)

    def norms(points):
        # only points where the network is provably differentiable: at a kink the float "Jacobian" is an
        # arbitrary choice that can exceed the local constant (e.g. relu(x) - relu(-x) - x at 0)
        ok = differentiable_at(net, points)
        return np.abs(_row_gradients(net, points, cs)).sum(-1) * ok[:, None]

    vals = norms(x)
    best = vals.max(0)
    # random hill climb from the (up to) 4 best points of every output (steps shrink geometrically)
    m = min(4, x.shape[0])
    top = np.argsort(-vals, axis=0, kind="stable")[:m]  # (m, K)
    k_idx = np.repeat(np.arange(cs.shape[0]), m)
    cur = x[top.T.reshape(-1)]  # (K*m, n)
    cur_v = vals[top.T.reshape(-1), k_idx]
    step = 0.25 * (hi - lo)
    for _ in range(30):
        cand = np.clip(cur + step * rng.standard_normal(cur.shape), lo, hi)
        cv = norms(cand)[np.arange(cand.shape[0]), k_idx]
        better = cv > cur_v
        cur[better], cur_v[better] = cand[better], cv[better]
        step = step * 0.85
    best = np.maximum(best, cur_v.reshape(cs.shape[0], m).max(1))
    return best


_EPS = float(np.finfo(np.float64).eps)


def rounding_allowance(net: Network, cs: np.ndarray) -> np.ndarray:
    """Per output row ``c`` of ``cs``: an allowance for the float64 rounding of a Jacobian bound of
    ``c·net``, ``16 (L + 2) (n + 2) eps · M`` with ``L`` the number of affine layers, ``n`` the widest sum and
    ``M = |c|ᵀ |W_L| a |W_{L-1}| ... a |W_0| 1`` the magnitude of the terms (``a`` = an activation's l-inf
    Lipschitz constant times its group size, a bound on the column sums of its Jacobian's entries), plus
    ``1e-300`` for underflow.  It is added to the bound of every output before it is reported."""
    v = np.abs(np.asarray(cs, dtype=np.float64))
    width, n_aff = 1, 0
    for layer in reversed(net.layers):
        if isinstance(layer, Activation):
            v = v * (float(layer.lipschitz("inf")) * int(layer.group_size))
        else:
            v = np.asarray(layer.abs_transpose(v), dtype=np.float64)
            width, n_aff = max(width, int(layer.in_features)), n_aff + 1
    mag = v.sum(axis=1)
    return 16.0 * (n_aff + 2) * (width + 2) * _EPS * mag * (1 + 1e-6) + 1e-300


def _consistent(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Attained values must not exceed certified bounds (equal up to rounding when a bound is exact); an
    excess is a soundness bug of ours, so no bound is reported."""
    if not np.all(np.isfinite(upper)) and not np.any(np.isnan(lower) & np.isfinite(upper)):
        raise SolverError("no certified bound: it exceeds the float64 range (weights too large)")
    if np.any(lower > upper * (1 + 1e-9) + 1e-300) or not np.all(np.isfinite(upper)):
        k = int(np.argmax(np.where(np.isfinite(upper), lower - upper, np.inf)))
        raise InternalCheckError(
            f"local Lipschitz self-check failed: the gradient norm {lower[k]!r} attained on the box exceeds the "
            f"bound {upper[k]!r} of output {k}; no bound is reported (please report this network)"
        )
    return np.minimum(lower, upper)


def local_lipschitz(
    net: Network,
    center,
    eps: float,
    norm: str = "inf",
    output=None,
    bab: bool = False,
    timeout: float | None = None,
    *,
    relaxation: str = "crown",
    intermediate: str = "alpha-crown",
    domain: tuple | None = None,
    n_samples: int = 1000,
    seed: int = 0,
    batch_size: int = 32,
    max_domains: int = 200_000,
    progress=None,
) -> LocalLipschitzResult:
    """Certified local l-inf Lipschitz constant of ``net`` on the box ``||x - center||_inf <= eps``.

    Bounds ``max_{x in box} ||J(x)||_{inf->inf} = max_x max_j ||J_j(x)||_1`` by linear bound propagation
    through the network's backward (gradient) graph (Shi et al., NeurIPS 2022), optionally tightened by
    branch-and-bound on unstable ReLU / leaky-ReLU neurons.

    Parameters
    ----------
    center, eps:
        Box centre (length ``in_dim``) and radius ``eps >= 0`` (in the network's input units).
    norm:
        Only ``"inf"`` (input l-inf, output l-inf; the dual l1 norm on Jacobian rows).
    output:
        ``None``: every output (the result is the max over outputs); an index or a vector ``c``: the
        scalar output ``c·f``.
    bab, timeout:
        Run branch-and-bound with a time budget of ``timeout`` seconds (``None``: 60 s), spent in slices on
        the output with the largest current upper bound until every output is solved.
    relaxation:
        ``"crown"`` (default, Shi et al.'s relaxations), ``"recurjac"`` (weaker), ``"ibp"`` (intervals).
    intermediate:
        Pre-activation bounds: ``"alpha-crown"`` (default, as Shi et al.), ``"crown"`` or ``"ibp"``.
    domain:
        ``(lower, upper)`` the box is clipped to; default ``net.input_lower/upper`` when stored.
    n_samples, seed:
        Random points of the box used for the lower bound (deterministic for a given seed).
    progress:
        Optional callable; during branch-and-bound it gets ``{"upper", "lower", "open", "domains", "done"}``
        after every batch (``upper``: the certified bound over all outputs so far; ``done``: seconds of the
        budget used).  Ctrl-C during branch-and-bound stops it: the result then holds the certified bound
        reached (``details["interrupted"] = True``); earlier, the ``KeyboardInterrupt`` propagates.
    """
    t0 = time.perf_counter()
    if not isinstance(net, Network):
        raise InvalidParameterError(f"The 'net' parameter of local_lipschitz must be a Network. Got {type(net).__name__}.")
    if norm not in ("inf", np.inf, float("inf")):
        raise InvalidParameterError(
            f"The 'norm' parameter of local_lipschitz must be 'inf' (only the l-inf local constant is supported). Got {norm!r} instead."
        )
    try:
        eps_f = float(eps)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"The 'eps' parameter of local_lipschitz must be a float >= 0. Got {eps!r} instead.") from None
    if not np.isfinite(eps_f) or eps_f < 0:
        raise InvalidParameterError(f"The 'eps' parameter of local_lipschitz must be a float >= 0. Got {eps!r} instead.")
    if relaxation not in RELAXATIONS:
        raise InvalidParameterError(
            f"The 'relaxation' parameter of local_lipschitz must be one of {RELAXATIONS}. Got {relaxation!r} instead."
        )
    if intermediate not in INTERMEDIATE:
        raise InvalidParameterError(
            f"The 'intermediate' parameter of local_lipschitz must be one of {INTERMEDIATE}. Got {intermediate!r} instead."
        )
    if timeout is not None and (not isinstance(timeout, (int, float)) or not timeout > 0):
        raise InvalidParameterError(f"The 'timeout' parameter of local_lipschitz must be a float > 0 or None. Got {timeout!r} instead.")
    cnet = net.canonical()
    x0 = np.asarray(center, dtype=np.float64).reshape(-1)
    if x0.size != cnet.in_dim or not np.all(np.isfinite(x0)):
        raise InvalidParameterError(
            f"The 'center' parameter of local_lipschitz must be a finite vector of length {cnet.in_dim}. Got shape {x0.shape}."
        )
    lo, hi = x0 - eps_f, x0 + eps_f
    if domain is None and cnet.input_lower is not None and cnet.input_upper is not None:
        domain = (cnet.input_lower, cnet.input_upper)
    if domain is not None:
        dlo = np.asarray(domain[0], dtype=np.float64).reshape(-1)
        dhi = np.asarray(domain[1], dtype=np.float64).reshape(-1)
        lo, hi = np.maximum(lo, dlo), np.minimum(hi, dhi)
        if np.any(lo > hi):
            raise InvalidParameterError("The box around 'center' does not meet the input domain of local_lipschitz.")
    check_supported(cnet)
    if output is None:
        cs = np.eye(cnet.out_dim)
    else:
        cs = output_vector(output, cnet.out_dim)[None, :]
    allow = rounding_allowance(cnet, cs) + lipschitz_allowance(cnet, "inf", cs)  # float64; folded layers
    # forward bounds (one domain), Jacobian bounds for every selected output at once
    if intermediate == "ibp":
        pre = ibp_layers(cnet, lo[None, :], hi[None, :]).pre
        pairs = []
        for act, (l, u) in zip(cnet.activations, pre):
            # pair differences p - q of a MaxMin layer, from the box of (p, q)
            pairs.append(Bounds(l[:, 0::2] - u[:, 1::2], u[:, 0::2] - l[:, 1::2]) if act.pair_form else None)
        lb = LayerBounds(pre, tuple(pairs))
    else:
        lb = crown_layers(cnet, lo[None, :], hi[None, :], alpha=intermediate == "alpha-crown", final=False)
    ranges = derivative_ranges(cnet, lb)
    jb = jacobian_l1_upper(cnet, ranges, cs, relaxation)
    upper = jb.value.copy()  # float64 computations; ``allow`` is added to every reported value
    coupled = None
    if relaxation == "crown":  # derivatives tied to the input (smooth activations); each bound is sound
        coupled = coupled_jacobian_l1_upper(cnet, lb, ranges, cs, lo, hi, prior=(jb.g_bounds, jb.j_bounds))
        if coupled is not None:
            upper = np.minimum(upper, coupled)
    lower = _sampled_lower(cnet, lo, hi, cs, n_samples, seed)
    lower = _consistent(lower, upper + allow)
    details: dict = {"intermediate": intermediate, "n_samples": n_samples, "box_lower": lo, "box_upper": hi,
                     "unstable": [int(((l < 0) & (u > 0)).sum()) for l, u in lb.pre],
                     "independent_upper": jb.value, "coupled_upper": coupled}
    for key in ("assumed", "dropped"):  # what the loader assumed about the file, carried into the result
        if net.metadata.get(key):
            details[key] = net.metadata[key]
    method = relaxation
    if bab:
        method += "+bab"
        budget = 60.0 if timeout is None else float(timeout)
        end = time.perf_counter() + budget
        runs: dict = {}

        def _merge(k: int) -> None:
            upper[k] = min(upper[k], runs[k].upper)
            if runs[k].witness is not None:  # re-evaluate the gradient at BaB's interior witness point
                w = np.asarray(runs[k].witness)
                lower[k] = max(lower[k], float(np.abs(cs[k] @ cnet.jacobian(w)).sum()))

        # work on the output with the largest current upper bound, in slices, until the budget is used or
        # every output is solved (the reported value is the max over outputs)
        start = time.perf_counter()

        def report(k: int, ev: dict) -> None:
            cur = upper.copy()
            cur[k] = min(cur[k], ev["upper"])
            cur = cur + allow
            progress({"upper": float(cur.max()), "lower": float(max(lower)), "open": ev["open"],
                      "domains": ev["domains"], "done": time.perf_counter() - start})

        k = None
        try:
            while time.perf_counter() < end:
                k = None
                todo = [k for k in range(len(upper)) if upper[k] > lower[k] * (1 + 1e-12)
                        and not (k in runs and runs[k].done)]
                if not todo:
                    break
                k = max(todo, key=lambda i: upper[i])
                if k not in runs:
                    runs[k] = BranchAndBound(cnet, lo, hi, cs[k], lower=float(lower[k]),
                                             relaxation="crown" if relaxation == "ibp" else relaxation,
                                             alpha=intermediate == "alpha-crown", batch_size=batch_size,
                                             max_domains=max_domains)
                slice_end = min(end, time.perf_counter() + max(0.2, (end - time.perf_counter()) / (2 * len(todo))))
                runs[k].run(slice_end, None if progress is None else (lambda ev, k=k: report(k, ev)))
                _merge(k)
        except KeyboardInterrupt:  # the heap of the interrupted run was restored: its upper bound holds
            if k is not None and k in runs:
                _merge(k)
            details["interrupted"] = True
        lower = _consistent(lower, upper + allow)
        details["bab"] = {int(k): r.stats() for k, r in runs.items()}
        details["timeout"] = budget
    details["rounding_allowance"] = allow
    per_up = tuple(float(v) for v in np.nextafter(upper + allow, np.inf))
    per_lo = tuple(float(v) for v in lower)
    value, low = max(per_up), max(per_lo)
    converged = all(u - l <= 1e-9 * max(1.0, abs(u)) for u, l in zip(per_up, per_lo))
    out_repr = None if output is None else (int(output) if isinstance(output, (int, np.integer)) else cs[0].tolist())
    return LocalLipschitzResult(
        value=value, lower=low, per_output=per_up, per_output_lower=per_lo, method=method, norm="inf",
        eps=eps_f, center=tuple(float(v) for v in x0), certified=True, converged=converged,
        seconds=time.perf_counter() - t0, output=out_repr, details=details,
    )
