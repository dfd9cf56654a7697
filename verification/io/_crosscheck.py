"""Executable-source guard: compare a loaded :class:`Network` with the model file run by its own runtime.

A loader that reads an executable format (ONNX through onnxruntime, TorchScript / ``nn.Module`` through
torch) calls :func:`crosscheck` after building the network.  Both are evaluated on a few hundred test
points and the load is refused if, at some point ``x``,

    ``max_j |src_j(x) - net_j(x)|  >  tol(x) = 64 k (e(x) + rho_g |net(x)| + ebar_g) + 16 u S_g``

where ``|.|`` is the max over outputs, ``u`` the unit round-off of the source's precision (2^-24 for
float32, 2^-53 for float64, 2^-11 for float16), ``k = u / 2^-24``, ``e(x) = |net32(x) - net(x)|`` the
measured float32 round-off of our own network at ``x``, and over the group ``g`` of test points drawn like
``x`` (same distribution): ``rho_g`` the median of ``e / |net|``, ``ebar_g`` the median of ``e`` and ``S_g``
the largest ``|net|``.  A float32 source is fed the float32 roundings of the points and compared with the
network on those same rounded points.  Points: x = 0, 7 points N(0, 10^-6), half the rest uniform in the
stored input domain (if any), the others N(0, s^2) for s = 0.1, 1, 10; 256 in all (fewer, at least 16,
for networks above 4e6 weights), drawn with a fixed seed and evaluated in chunks of at most 2^22 values.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from verification.errors import UnsupportedLayerError
from verification.io.common import check_widths
from verification.network import AffineLayer, Dense, Network

__all__ = ["crosscheck", "draw_points", "SAFETY", "N_POINTS"]

N_POINTS = 256
SAFETY = 64.0
_MIN_POINTS = 16
_COST_BUDGET = 1e9  # weight entries x points
_CHUNK_ENTRIES = 1 << 22  # points x widest layer per evaluation chunk
_SCALES = (0.1, 1.0, 10.0)
_U32 = 2.0**-24

Run = Callable[[np.ndarray], np.ndarray]


def _n_points(net: Network) -> int:
    entries = sum(d.cost for d in net.affine_layers)
    return int(min(N_POINTS, max(_MIN_POINTS, _COST_BUDGET // max(entries, 1))))


def _point_plan(net: Network, n: int) -> list[tuple[str, float]]:
    """``(kind, scale)`` per test point: the stored domain (if any), N(0, s^2) for s in 0.1, 1, 10, near 0."""
    plan: list[tuple[str, float]] = [("zero", 0.0)] + [("normal", 1e-3)] * 7
    if net.input_lower is not None and net.input_upper is not None:
        plan += [("domain", 1.0)] * ((n - len(plan)) // 2)
    rest = n - len(plan)
    for i, s in enumerate(_SCALES):
        plan += [("normal", s)] * (rest // len(_SCALES) + (1 if i < rest % len(_SCALES) else 0))
    return plan


def draw_points(net: Network, plan: list[tuple[str, float]], rng: np.random.Generator) -> np.ndarray:
    """The points of ``plan`` (rows), drawn with ``rng``."""
    x = np.empty((len(plan), net.in_dim))
    for i, (kind, s) in enumerate(plan):
        if kind == "zero":
            x[i] = 0.0
        elif kind == "domain":
            x[i] = rng.uniform(net.input_lower, net.input_upper)
        else:
            x[i] = rng.normal(scale=s, size=net.in_dim)
    return x


def _evaluate(net: Network, rounded: list, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``net(x)`` in float64, the same in float32, and the largest |value| along the way (per point)."""
    h64, h32 = x, x.astype(np.float32)
    hmax = np.abs(x).max(axis=1)
    for layer, r in zip(net.layers, rounded):
        if isinstance(layer, Dense):
            h64 = h64 @ layer.weight.T + layer.bias
            h32 = h32 @ r[0].T + r[1]
        elif isinstance(layer, AffineLayer):  # e.g. a convolution: its own float32 product
            h64 = layer(h64)
            h32 = np.asarray(r(h32), dtype=np.float32)
        else:
            h64 = layer(h64)
            h32 = np.asarray(layer(h32), dtype=np.float32)
        hmax = np.maximum(hmax, np.abs(h64).max(axis=1, initial=0.0))
    return h64, h32.astype(np.float64), hmax


def _rounded_layers(net: Network) -> list:
    out = []
    for layer in net.layers:
        if isinstance(layer, Dense):
            out.append((layer.weight.astype(np.float32), layer.bias.astype(np.float32)))
        elif isinstance(layer, AffineLayer):
            out.append(layer.rounded(np.float32))
        else:
            out.append(None)
    return out


def crosscheck(
    net: Network,
    run: Run,
    dtype: type | np.dtype,
    where: str,
    what: str,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    precision: type | np.dtype | None = None,
    seed: int = 0,
) -> dict:
    """Refuse (``UnsupportedLayerError``) if ``run`` (the source, fed ``(N, in_dim)`` float64 arrays holding
    ``dtype`` values) and ``net`` differ beyond the tolerance of the module docstring.

    ``transform`` maps the network's outputs to the source's (e.g. a dropped final softmax); ``precision``
    is the float type the source computes in, if lower than its input's ``dtype``.  Returns a summary
    ``{"checked_with", "points", "max_diff", "max_ratio"}``."""
    check_widths(net, where)
    dtype = np.dtype(dtype)
    u = float(np.finfo(precision or dtype).eps) / 2
    plan = _point_plan(net, _n_points(net))
    rng = np.random.default_rng(seed)
    rounded = _rounded_layers(net)
    width = max(net.widths)
    chunk = max(1, _CHUNK_ENTRIES // width)
    rows = []
    with np.errstate(all="ignore"):
        for start in range(0, len(plan), chunk):
            part = plan[start : start + chunk]
            x = draw_points(net, part, rng).astype(dtype).astype(np.float64)
            rows.append(_compare_chunk(net, rounded, x, run, transform, where, what))
    y_abs, e_self, diff, hmax, src_bad = (np.concatenate(c) for c in zip(*rows))
    return _judge(plan, y_abs, e_self, diff, hmax, src_bad, u, np.dtype(precision or dtype), where, what)


def _compare_chunk(net, rounded, x, run, transform, where, what):
    y64, y32, hmax = _evaluate(net, rounded, x)
    if transform is not None:
        y64, y32 = transform(y64), transform(y32)
    try:
        src = np.asarray(run(x), dtype=np.float64)
    except Exception as exc:  # the source's own runtime refused to run it
        msg = " ".join(str(exc).split())[:200]
        raise UnsupportedLayerError(
            f"{where}: could not run the model with {what} to check the loaded network: {type(exc).__name__}: {msg}"
        ) from None
    if src.size != y64.size:
        raise UnsupportedLayerError(
            f"{where}: {what} gives {src.size / len(x):g} outputs per input, the loaded network {y64.shape[1]}; "
            "the file does not compute the chain that was read"
        )
    src = src.reshape(y64.shape)
    bad = ~np.all(np.isfinite(src), axis=1)
    diff = np.abs(src - y64).max(axis=1, initial=0.0)
    diff[bad] = np.inf
    return (
        np.abs(y64).max(axis=1, initial=0.0),
        np.abs(y32 - y64).max(axis=1, initial=0.0),
        diff,
        hmax,
        bad,
    )


def _tolerance(plan, y_abs: np.ndarray, e_self: np.ndarray, keep: np.ndarray, u: float) -> np.ndarray:
    """``SAFETY k (e(x) + rho_g |y(x)| + ebar_g) + 16 u S_g`` per point, ``g`` its group of the plan."""
    groups = np.array([f"{kind} {s}" for kind, s in plan])
    e = np.where(np.isfinite(e_self), e_self, np.inf)
    tol = np.empty(len(plan))
    for g in np.unique(groups):
        m = groups == g
        ok = m & keep & np.isfinite(e)
        rel = e[ok & (y_abs > 0)] / y_abs[ok & (y_abs > 0)]
        rho = float(np.median(rel)) if rel.size else 2.0**-10
        ebar = float(np.median(e[ok])) if ok.any() else 0.0
        scale = float(np.max(y_abs[m & keep], initial=0.0))
        e_m = np.where(np.isfinite(e[m]), e[m], rho * y_abs[m])
        tol[m] = SAFETY * (u / _U32) * (e_m + rho * y_abs[m] + ebar) + 16 * u * scale
    return tol + 1e-300


def _judge(plan, y_abs, e_self, diff, hmax, src_bad, u, dtype, where, what) -> dict:
    # source overflow is expected only where our own values approach the source precision's range
    skip = src_bad & (hmax > float(np.finfo(dtype).max) / 1e3)
    keep = ~skip
    if keep.sum() < len(plan) // 2:
        raise UnsupportedLayerError(
            f"{where}: {what} overflows on most test points; cannot check that the loaded network is the file's function"
        )
    tol = _tolerance(plan, y_abs, e_self, keep, u)
    ratio = np.where(keep, diff / tol, 0.0)
    i = int(np.argmax(ratio))
    if ratio[i] > 1.0:
        kind, s = plan[i]
        at = "x = 0" if kind == "zero" else ("a point of the stored input domain" if kind == "domain" else f"a N(0, {s:g}^2) point")
        d = "NaN/inf" if not np.isfinite(diff[i]) else f"{diff[i]:.3g}"
        raise UnsupportedLayerError(
            f"{where}: the loaded network is not the function in the file: at {at} it differs from {what} by {d} "
            f"(tolerance {tol[i]:.3g}, output scale {y_abs[i]:.3g}); the model has a layer, option or forward the "
            "loader did not capture"
        )
    return {
        "checked_with": what,
        "points": int(keep.sum()),
        "max_diff": float(np.max(np.where(keep, diff, 0.0))),
        "max_ratio": float(ratio[i]),
    }
