"""Jacobian-row l1 bounds that keep the derivatives tied to the input (the linear relaxation of the whole
gradient graph, as auto_LiRPA's ``JacobianOP`` bounds it; Shi et al., NeurIPS 2022).

:mod:`verification.bounds.jacobian` treats every derivative ``d_j = phi'(z_j)`` as an independent number in
``[dl, du]``.  That loses the correlation between neurons: on the tanh benchmark net at eps 0.1 some choice
of independent derivatives already gives ``||J||_1 = 1.0636`` (measured), above the whole-graph bound
1.0142.  Here ``d_j`` is instead bounded by lines in its pre-activation, ``ls z_j + lb <= d_j <= us z_j + ub``
(``derivative_relaxation`` of the activation; constant lines ``dl, du`` for activations without one, e.g.
ReLU), the products ``y_j = d_j g_j`` by McCormick planes (a convex combination of the two planes of each
side, weight ``mix``), and every ``z_j`` is back-substituted through the CROWN relaxation of the forward
network to the input box.  One backward pass thus gives a linear lower bound of a row ``lam · y_j`` in
``x``, minimised over the box in closed form.

Intermediate bounds of ``g_j`` and of ``J`` come from the same pass (intersected with those of
:func:`~verification.bounds.jacobian.jacobian_l1_upper` when given), ``|J_k|`` is replaced by its chord.
Float64 throughout without directed rounding, like the rest of the package; the rounding of ``phi'`` is
covered by the slack of ``derivative_bounds`` / ``derivative_relaxation``.  Elementwise activations only
(MaxMin layers: ``None``).
"""

from __future__ import annotations

import numpy as np

from verification.bounds.crown import _step, box_lower, make_relaxations
from verification.bounds.jacobian import _abs_chord
from verification.bounds.types import LayerBounds
from verification.network import Network

__all__ = ["coupled_jacobian_l1_upper", "MIXES"]

# McCormick plane weights tried by default (the bound is the minimum over them; each one is sound)
MIXES = (0.0, 0.5, 1.0)


def _derivative_lines(net: Network, lb: LayerBounds, ranges: list) -> list:
    """Per activation layer ``(sl, tl, su, tu)`` with ``sl z + tl <= phi'(z) <= su z + tu`` on the
    pre-activation bounds (``(1, n)`` or ``(B, n)``)."""
    out = []
    for act, (l, u), (_, dl, du) in zip(net.activations, lb.pre, ranges):
        rel = getattr(act, "derivative_relaxation", None)
        if rel is None:
            zero = np.zeros_like(dl)
            out.append((zero, dl, zero, du))
        else:
            out.append(tuple(np.asarray(a, dtype=np.float64) for a in rel(l, u)))
    return out


def coupled_jacobian_l1_upper(net: Network, lb: LayerBounds, ranges: list, c: np.ndarray, lo: np.ndarray,
                              hi: np.ndarray, mixes=MIXES, prior=None):
    """Upper bounds (B,) of ``max_{x in [lo, hi]} ||c_b^T J(x)||_1``, or ``None`` if a layer is not
    elementwise or no activation has a ``derivative_relaxation`` (then nothing ties the derivatives to the
    input and the independent-derivative relaxation of :mod:`verification.bounds.jacobian` is the tighter).

    ``lb``: pre-activation bounds on the box (batch 1); ``ranges``: :func:`derivative_ranges` on them;
    ``c``: (B, out_dim); ``lo, hi``: (n0,) box; ``mixes``: weights in [0, 1] of the first McCormick plane,
    each giving a sound bound: intermediate bounds take the best one per row, the result the smallest;
    ``prior``: optional ``(g_bounds, j_bounds)`` of :class:`~verification.bounds.jacobian.JacobianBound`
    (sound bounds on the same box) to intersect with."""
    acts = net.activations
    if any(not a.elementwise or a.pair_form for a in acts):
        return None
    if not any(hasattr(a, "derivative_relaxation") for a in acts):
        return None
    layers = net.affine_layers
    L = len(acts)
    c = np.ascontiguousarray(c, dtype=np.float64)
    B = c.shape[0]
    if L == 0:
        return np.abs(layers[0].transpose(c)).sum(-1)
    relax = make_relaxations(net, [(l, u) for l, u in lb.pre])
    lines = _derivative_lines(net, lb, ranges)
    g_last = layers[L].transpose(c)  # (B, n_{L-1})
    mid, rad = ((hi + lo) / 2)[None, :], ((hi - lo) / 2)[None, :]
    gb: list = [None] * L
    gb[L - 1] = (g_last, g_last)

    def from_y(j: int, lam: np.ndarray, mix: float) -> np.ndarray:
        """Lower bounds (B, m) of ``lam[b, r] · y_j`` over the box (``lam``: (B, m, n_j))."""
        bias = np.zeros(lam.shape[:2])
        cz: dict = {}
        for i in range(j, L):
            _, dl, du = ranges[i]
            lg, ug = gb[i]
            dl, du, lg, ug = dl[:, None, :], du[:, None, :], lg[:, None, :], ug[:, None, :]
            pos = lam >= 0
            # lower planes: y >= dl g + lg d - dl lg and y >= du g + ug d - du ug
            # upper planes: y <= du g + lg d - du lg and y <= dl g + ug d - dl ug
            cg = np.where(pos, mix * dl + (1 - mix) * du, mix * du + (1 - mix) * dl)
            cd = np.where(pos, mix * lg + (1 - mix) * ug, mix * lg + (1 - mix) * ug)
            k0 = np.where(pos, -(mix * dl * lg + (1 - mix) * du * ug), -(mix * du * lg + (1 - mix) * dl * ug))
            bias = bias + (lam * k0).sum(-1)
            coef_d = lam * cd
            coef_g = lam * cg
            sl, tl, su, tu = (a[:, None, :] for a in lines[i])
            posd = coef_d >= 0
            cz[i] = coef_d * np.where(posd, sl, su)
            bias = bias + (coef_d * np.where(posd, tl, tu)).sum(-1)
            if i == L - 1:
                bias = bias + np.einsum("bmi,bi->bm", coef_g, g_last)
                break
            lam = layers[i + 1].linear(coef_g)
        # sum_i cz[i] · z_i down to the input through the forward relaxations
        lamz = cz[L - 1]
        for i in range(L - 1, -1, -1):
            bias = bias + lamz @ layers[i].bias
            lama = layers[i].transpose(lamz)
            if i == 0:
                break
            lamz, add, _ = _step(relax[i - 1], lama)
            bias = bias + add
            if i - 1 in cz:
                lamz = lamz + cz[i - 1]
        return box_lower(lama, bias, np.broadcast_to(mid, (B, mid.shape[1])), np.broadcast_to(rad, (B, rad.shape[1])))

    def best(j: int, lam: np.ndarray) -> np.ndarray:
        lam = np.ascontiguousarray(lam)
        return np.max([from_y(j, lam, m) for m in mixes], axis=0)

    for j in range(L - 2, -1, -1):
        n = layers[j].out_features
        spec = np.concatenate([np.eye(n), -np.eye(n)])
        vals = best(j + 1, np.broadcast_to(layers[j + 1].linear(spec), (B, 2 * n, layers[j + 1].out_features)))
        lg, ug = vals[:, :n], -vals[:, n:]
        if prior is not None:
            lg, ug = np.maximum(lg, prior[0][j][0]), np.minimum(ug, prior[0][j][1])
        gb[j] = (lg, np.maximum(ug, lg))
    n0 = layers[0].in_features
    spec = np.concatenate([np.eye(n0), -np.eye(n0)])
    vals = best(0, np.broadcast_to(layers[0].linear(spec), (B, 2 * n0, layers[0].out_features)))
    lJ, uJ = vals[:, :n0], -vals[:, n0:]
    if prior is not None:
        lJ, uJ = np.maximum(lJ, prior[1][0]), np.minimum(uJ, prior[1][1])
    slope, icpt = _abs_chord(lJ, np.maximum(uJ, lJ))
    low = best(0, layers[0].linear((-slope)[:, None, :]))[:, 0]
    return icpt.sum(-1) - low
