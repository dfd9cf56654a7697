"""Bounds on the l1 norm of a Jacobian row over an input box, by bound propagation through the
backward (gradient) graph (Shi, Wang, Zhang, Kolter, Hsieh, NeurIPS 2022).

For a scalar output ``c·f`` of the canonical net the Jacobian row is

    J = c^T W_L D_{L-1} W_{L-1} ... D_0 W_0,      D_j = diag(phi_j'(z_j)),

computed backwards: ``g_{L-1} = W_L^T c`` (a constant), ``y_j = D_j g_j``, ``g_{j-1} = W_j^T y_j``,
``J = W_0^T y_0``.  On a box the derivatives ``d = phi'(z)`` range over ``[dl, du]`` (from pre-activation
bounds; the Clarke derivative at kinks).  The only non-linear operations are the products ``d * g`` and
the final ``sum |J_k|`` (the dual norm of l-inf), so CROWN on this chain needs their linear relaxations:

* ``d*g`` (Shi et al.'s relaxation, tight): ``min(dl g, du g) = du g - (du-dl) relu(g)`` below and
  ``max(dl g, du g) = dl g + (du-dl) relu(g)`` above, ``relu(g)`` replaced by its chord on ``[lg, ug]``;
* RecurJac-style (Zhang et al. AAAI 2019, weaker): where both ``d`` and the sign of ``g`` are uncertain,
  ``d*g`` is replaced by its interval;
* ``|J|``: the chord on ``[lJ, uJ]``.

Intermediate bounds ``[lg, ug]`` of every ``g_j`` (and of ``J``) come from the same backward CROWN pass.
``"ibp"`` is plain interval arithmetic on the chain.  MaxMin layers: ``y_p = g_min + delta*w``,
``y_q = g_max - delta*w`` with ``w = g_max - g_min`` and ``delta = relu'(p - q)``.

The result bounds ``max_{x in box} ||c^T J(x)||_1`` over the Clarke Jacobian, i.e. the local l-inf
Lipschitz constant of ``c·f`` on the box.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verification.activations import two_piece_derivative_bounds
from verification.bounds._kernels import product_step
from verification.bounds.crown import _pair_rows
from verification.bounds.types import LayerBounds
from verification.errors import UnsupportedLayerError
from verification.network import Network

__all__ = ["JacobianBound", "derivative_ranges", "jacobian_l1_upper", "RELAXATIONS"]

RELAXATIONS = ("crown", "recurjac", "ibp")


@dataclass
class JacobianBound:
    """``value`` (B,): upper bounds of ``||c^T J||_1``; ``exact`` (B,): every derivative fixed (the value is
    then the norm of one linear piece); ``coef[j]`` (B, n_j): |coefficient| of ``y_j`` times the width of
    the relaxed product in the final pass (a branching score); ``g_bounds[j]`` ``(lg, ug)`` (B, n_j) of the
    backward quantities ``g_j`` and ``j_bounds`` ``(lJ, uJ)`` (B, n0) of the Jacobian row (``crown`` and
    ``recurjac`` relaxations only, else ``None``)."""

    value: np.ndarray
    exact: np.ndarray
    coef: list
    g_bounds: list | None = None
    j_bounds: tuple | None = None


def derivative_ranges(net: Network, lb: LayerBounds, splits=None) -> list:
    """Per activation layer ``(kind, dl, du)``: ``kind`` ``"elem"`` (ranges of ``phi'(z)``, (B, n)) or
    ``"pair"`` (ranges of ``relu'(p - q)`` of a MaxMin layer, (B, n/2)).

    ``splits`` (branch-and-bound sign constraints, +1/-1/0 per neuron) fix the derivative of a split
    ReLU / leaky-ReLU neuron to the slope of its side: the kink ``z = 0`` has measure zero in the domain,
    and the Lipschitz constant on a box only depends on derivatives almost everywhere."""
    out = []
    for j, act in enumerate(net.activations):
        if act.pair_form:
            pl, pu = lb.pair[j]
            dl, du = two_piece_derivative_bounds(pl, pu, 0.0)
            out.append(("pair", np.ascontiguousarray(dl), np.ascontiguousarray(du)))
            continue
        l, u = lb.pre[j]
        try:
            dl, du = act.derivative_bounds(l, u)
        except NotImplementedError:
            raise UnsupportedLayerError(
                f"local Lipschitz bounds do not support the activation {act.describe()}"
            ) from None
        a = act.two_piece_slope
        if splits is not None and splits[j] is not None and a is not None:
            s = splits[j]
            dl = np.where(s > 0, 1.0, np.where(s < 0, a, dl))
            du = np.where(s > 0, 1.0, np.where(s < 0, a, du))
        out.append(("elem", np.ascontiguousarray(dl, dtype=np.float64), np.ascontiguousarray(du, dtype=np.float64)))
    return out


def _abs_chord(l, u):
    xl, xu = np.minimum(l, 0.0), np.maximum(u, 0.0)
    w = xu - xl
    slope = np.where(w > 0, (np.abs(xu) - np.abs(xl)) / np.where(w > 0, w, 1.0), 0.0)
    return slope, np.abs(xl) - slope * xl


def _ibp(net: Network, ranges, c):
    layers = net.affine_layers
    L = len(ranges)
    g = layers[L].transpose(c)
    lg, ug = g, g
    for i in range(L - 1, -1, -1):
        kind, dl, du = ranges[i]
        if kind == "elem":
            p = np.stack([dl * lg, dl * ug, du * lg, du * ug])
            ly, uy = p.min(0), p.max(0)
        else:
            gmax_l, gmax_u, gmin_l, gmin_u = lg[:, 0::2], ug[:, 0::2], lg[:, 1::2], ug[:, 1::2]
            wl, wu = gmax_l - gmin_u, gmax_u - gmin_l
            p = np.stack([dl * wl, dl * wu, du * wl, du * wu])
            tl, tu = p.min(0), p.max(0)
            ly, uy = np.empty_like(lg), np.empty_like(ug)
            ly[:, 0::2], uy[:, 0::2] = gmin_l + tl, gmin_u + tu
            ly[:, 1::2], uy[:, 1::2] = gmax_l - tu, gmax_u - tl
        mid, rad = (uy + ly) / 2, (uy - ly) / 2
        c_, r_ = layers[i].transpose(mid), layers[i].abs_transpose(rad)
        lg, ug = c_ - r_, c_ + r_
    return np.maximum(np.abs(lg), np.abs(ug)).sum(-1)


def jacobian_l1_upper(net: Network, ranges: list, c: np.ndarray, relaxation: str = "crown") -> JacobianBound:
    """Upper bounds of ``max ||c_b^T J||_1`` for each batch entry ``b`` (``c``: (B, out_dim)).

    ``ranges`` from :func:`derivative_ranges` (batch B, or 1 to share one domain between outputs)."""
    layers = net.affine_layers
    L = len(ranges)
    c = np.ascontiguousarray(c, dtype=np.float64)
    B = c.shape[0]
    ranges = [(k, np.ascontiguousarray(np.broadcast_to(dl, (B,) + dl.shape[1:])),
               np.ascontiguousarray(np.broadcast_to(du, (B,) + du.shape[1:]))) for k, dl, du in ranges]
    exact = np.ones(B, dtype=bool)
    for _, dl, du in ranges:
        exact &= np.all(dl == du, axis=1)
    if L == 0:
        return JacobianBound(np.abs(layers[0].transpose(c)).sum(-1), exact, [])
    if relaxation == "ibp":
        return JacobianBound(_ibp(net, ranges, c), exact, [None] * L)
    mode = 0 if relaxation == "crown" else 1
    g_last = layers[L].transpose(c)  # g_{L-1}
    gb = [None] * L
    wb = [None] * L
    gb[L - 1] = (g_last, g_last)
    if ranges[L - 1][0] == "pair":
        w = g_last[:, 0::2] - g_last[:, 1::2]
        wb[L - 1] = (np.ascontiguousarray(w), np.ascontiguousarray(w))

    def step(i, lam):
        kind, dl, du = ranges[i]
        lg, ug = gb[i]
        if kind == "elem":
            return product_step(np.ascontiguousarray(lam), dl, du, lg, ug, mode)
        lam_p, lam_q = lam[..., 0::2], lam[..., 1::2]
        gam = np.ascontiguousarray(lam_p - lam_q)
        sl, bias = product_step(gam, dl, du, wb[i][0], wb[i][1], mode)
        out = np.empty_like(lam)
        out[..., 0::2] = lam_q + sl
        out[..., 1::2] = lam_p - sl
        return out, bias

    def from_y(j, lam, record=None):
        bias = np.zeros(lam.shape[:2])
        for i in range(j, L):
            if record is not None:
                record[i] = lam
            lam, add = step(i, lam)
            bias = bias + add
            if i == L - 1:
                return np.einsum("bmi,bi->bm", lam, g_last) + bias
            lam = layers[i + 1].linear(lam)

    for j in range(L - 2, -1, -1):
        n = layers[j].out_features
        rows = [np.eye(n), -np.eye(n)]
        pair = ranges[j][0] == "pair"
        if pair:
            d = _pair_rows(n)
            rows += [d, -d]
        spec = np.concatenate(rows)
        lam = np.broadcast_to(layers[j + 1].linear(spec), (B,) + (spec.shape[0], layers[j + 1].out_features))
        vals = from_y(j + 1, lam)
        lg, ug = vals[:, :n], -vals[:, n:2 * n]
        gb[j] = (np.ascontiguousarray(lg), np.ascontiguousarray(np.maximum(ug, lg)))
        if pair:
            h = n // 2
            wl, wu = vals[:, 2 * n:2 * n + h], -vals[:, 2 * n + h:]
            wb[j] = (np.ascontiguousarray(wl), np.ascontiguousarray(np.maximum(wu, wl)))
    n0 = layers[0].in_features
    spec = np.concatenate([np.eye(n0), -np.eye(n0)])
    lam = np.broadcast_to(layers[0].linear(spec), (B, 2 * n0, layers[0].out_features))
    vals = from_y(0, lam)
    lJ, uJ = vals[:, :n0], -vals[:, n0:]
    slope, icpt = _abs_chord(lJ, np.maximum(uJ, lJ))
    record = [None] * L
    low = from_y(0, layers[0].linear((-slope)[:, None, :]), record)[:, 0]
    value = icpt.sum(-1) - low
    # never worse than interval arithmetic on the same ranges
    value = np.minimum(value, _ibp(net, ranges, c))
    scores = []
    for i in range(L):
        kind, dl, du = ranges[i]
        lam = np.abs(record[i][:, 0, :])
        if kind == "pair":
            lam = np.abs(record[i][:, 0, 0::2] - record[i][:, 0, 1::2])
            lo, hi = wb[i]
        else:
            lo, hi = gb[i]
        scores.append(lam * (du - dl) * (np.maximum(hi, 0) - np.minimum(lo, 0)))
    return JacobianBound(value, exact, scores, gb, (lJ, np.maximum(uJ, lJ)))
