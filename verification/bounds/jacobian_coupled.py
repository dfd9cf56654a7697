"""Jacobian-row l1 bounds that keep the derivatives tied to the input (the linear relaxation of the whole
gradient graph, as auto_LiRPA's ``JacobianOP`` bounds it; Shi et al., NeurIPS 2022).

:mod:`verification.bounds.jacobian` treats every derivative ``d_j = phi'(z_j)`` as an independent number in
``[dl, du]``.  That loses the correlation between neurons: on the tanh benchmark net at eps 0.1 some choice
of independent derivatives already gives ``||J||_1 = 1.0636`` (measured), above the whole-graph bound
1.0142.  Here ``d_j`` is instead bounded by lines in its pre-activation, ``ls z_j + lb <= d_j <= us z_j + ub``
(``derivative_relaxation`` of the activation; constant lines ``dl, du`` for activations without one, e.g.
ReLU), the products ``y_j = d_j g_j`` by McCormick planes (a convex combination of the two planes of each
side, weight ``mix``) blended with the independent-range lines (weight ``theta``), and every ``z_j`` is
back-substituted through the CROWN relaxation of the forward network to the input box.  One backward pass
thus gives a linear lower bound of a row ``lam · y_j`` in ``x``, minimised over the box in closed form.
Every ``(mix, theta)`` in ``[0, 1]^2`` gives a sound bound; they are chosen per row by a small grid search
and then per neuron by projected Adam ascent with the exact gradient (as alpha-CROWN's slopes).

Intermediate bounds of ``g_j`` and of ``J`` come from the same pass (intersected with those of
:func:`~verification.bounds.jacobian.jacobian_l1_upper` when given), ``|J_k|`` is replaced by its chord.
Float64 throughout without directed rounding, like the rest of the package; the rounding of ``phi'`` is
covered by the slack of ``derivative_bounds`` / ``derivative_relaxation``.  Elementwise activations only
(MaxMin layers: ``None``).
"""

from __future__ import annotations

import numpy as np

from verification.bounds.alpha import ascend
from verification.bounds.crown import _apply_choice, _step, box_lower, make_relaxations
from verification.bounds.jacobian import _abs_chord
from verification.bounds.types import LayerBounds
from verification.network import Network

__all__ = ["coupled_jacobian_l1_upper", "GRID"]

# (mix, theta) tried per row and layer: mix weights the two McCormick planes, theta blends in the
# independent-range relaxation; every choice in [0, 1]^2 gives a sound bound
GRID = tuple((m, t) for m in (0.0, 0.5, 1.0) for t in (0.0, 0.5, 1.0))


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
                              hi: np.ndarray, grid=GRID, iters: int = 20, lr: float = 0.1, prior=None):
    """Upper bounds (B,) of ``max_{x in [lo, hi]} ||c_b^T J(x)||_1``, or ``None`` if a layer is not
    elementwise or no activation has a ``derivative_relaxation`` (then nothing ties the derivatives to the
    input and the independent-derivative relaxation of :mod:`verification.bounds.jacobian` is the tighter).

    ``lb``: pre-activation bounds on the box (batch 1); ``ranges``: :func:`derivative_ranges` on them;
    ``c``: (B, out_dim); ``lo, hi``: (n0,) box; ``grid``: the ``(mix, theta)`` choices tried per row and
    layer (see ``from_y``; intermediate bounds and the result take the best one found per row);
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

    def from_y(j: int, lam: np.ndarray, params: list, want_grad: bool = False):
        """Lower bounds (B, m) of ``lam[b, r] · y_j`` over the box (``lam``: (B, m, n_j)); ``params[i]``
        ``(mix, theta)`` of layer ``i >= j`` (scalars or arrays broadcastable to (B, m, n_i)).  With
        ``want_grad`` also the gradient of the bound in every ``mix`` and ``theta`` (exact almost
        everywhere: the relaxation choices and the minimising vertex fixed, each product's relaxation is
        evaluated at the linearised ``g`` and ``d`` there, as in alpha-CROWN)."""
        bias = np.zeros(lam.shape[:2])
        cz: dict = {}
        rec: dict = {}
        for i in range(j, L):
            _, dl, du = ranges[i]
            lg, ug = gb[i]
            dl, du, lg, ug = dl[:, None, :], du[:, None, :], lg[:, None, :], ug[:, None, :]
            mix, th = params[i]
            pos = lam >= 0
            # McCormick, lower planes: y >= dl g + lg d - dl lg and y >= du g + ug d - du ug;
            # upper planes: y <= du g + lg d - du lg and y <= dl g + ug d - dl ug  (weights mix, 1 - mix)
            a1, a2 = np.where(pos, dl, du), np.where(pos, du, dl)
            k1, k2 = -a1 * lg, -a2 * ug
            mc = (mix * a1 + (1 - mix) * a2, mix * lg + (1 - mix) * ug, mix * k1 + (1 - mix) * k2)
            # independent-range lines (jacobian.py): y >= (du - gap s) g - gap t, y <= (dl + gap s) g + gap t
            # with s g + t the chord of relu(g) on [lg, ug]; blended with weight theta
            gap, w = du - dl, ug - lg
            unst = (lg < 0) & (ug > 0)
            sr = np.where(lg >= 0, 1.0, np.where(unst, ug / np.where(unst, w, 1.0), 0.0))
            tr = np.where(unst, -sr * lg, 0.0)
            ind = (np.where(pos, du - gap * sr, dl + gap * sr), np.where(pos, -gap * tr, gap * tr))
            cg = th * ind[0] + (1 - th) * mc[0]
            cd = (1 - th) * mc[1]
            k0 = th * ind[1] + (1 - th) * mc[2]
            bias = bias + (lam * k0).sum(-1)
            coef_d = lam * cd
            coef_g = lam * cg
            sl, tl, su, tu = (a[:, None, :] for a in lines[i])
            posd = coef_d >= 0
            cz[i] = coef_d * np.where(posd, sl, su)
            bias = bias + (coef_d * np.where(posd, tl, tu)).sum(-1)
            if want_grad:
                rec[i] = (lam, th, mc, ind, (a1 - a2, lg - ug, k1 - k2), cg, cd, k0,
                          np.where(posd, sl, su), np.where(posd, tl, tu))
            if i == L - 1:
                bias = bias + np.einsum("bmi,bi->bm", coef_g, g_last)
                break
            lam = layers[i + 1].linear(coef_g)
        # sum_i cz[i] · z_i down to the input through the forward relaxations
        lamz = cz[L - 1]
        choices: dict = {}
        for i in range(L - 1, -1, -1):
            bias = bias + lamz @ layers[i].bias
            lama = layers[i].transpose(lamz)
            if i == 0:
                break
            lamz, add, choices[i - 1] = _step(relax[i - 1], lama)
            bias = bias + add
            if i - 1 in cz:
                lamz = lamz + cz[i - 1]
        val = box_lower(lama, bias, np.broadcast_to(mid, (B, mid.shape[1])), np.broadcast_to(rad, (B, rad.shape[1])))
        if not want_grad:
            return val
        # linearised forward values at the minimising vertex, then the backward chain g -> y
        z = [layers[0](np.where(lama >= 0, lo, hi))]
        for i in range(L - 1):
            z.append(layers[i + 1](_apply_choice(relax[i], choices[i], z[i])))
        g = np.broadcast_to(g_last[:, None, :], lam.shape[:2] + g_last.shape[1:])
        grads = [None] * L
        for i in range(L - 1, j - 1, -1):
            lam_i, th, mc, ind, (da, dg_, dk), cg, cd, k0, s_d, t_d = rec[i]
            d = s_d * z[i] + t_d
            r_ind = ind[0] * g + ind[1]
            r_mc = mc[0] * g + mc[1] * d + mc[2]
            grads[i] = (lam_i * (1 - th) * (da * g + dg_ * d + dk), lam_i * (r_ind - r_mc))
            if i > j:
                g = layers[i].transpose(cg * g + cd * d + k0)
        return val, grads

    def best(j: int, lam: np.ndarray) -> np.ndarray:
        """Per row the best of several parameter choices (each bound is sound): every grid point for all
        layers alike, then one sweep changing one layer at a time, then ``iters`` projected Adam steps on
        per-neuron weights (:func:`verification.bounds.alpha.ascend`)."""
        lam = np.ascontiguousarray(lam)
        shape = lam.shape[:2] + (1,)
        val = np.full(lam.shape[:2], -np.inf)
        params = [(np.zeros(shape), np.zeros(shape)) for _ in range(L)]

        def trial(ps):
            nonlocal val
            v = from_y(j, lam, ps)
            better = (v > val)[..., None]
            for i in range(j, L):
                params[i] = (np.where(better, ps[i][0], params[i][0]), np.where(better, ps[i][1], params[i][1]))
            val = np.maximum(val, v)

        for opt in grid:
            trial([opt] * L)
        for i in range(j, L if L - j > 1 else j):
            for opt in grid:
                trial(params[:i] + [opt] + params[i + 1:])
        if iters <= 0:
            return val
        flat = []
        for i in range(j, L):
            n = layers[i].out_features
            flat += [np.broadcast_to(params[i][0], shape[:2] + (n,)).copy(),
                     np.broadcast_to(params[i][1], shape[:2] + (n,)).copy()]
        last: list = []

        def evaluate(ps):
            nonlocal val
            full = [None] * j + [(ps[2 * k], ps[2 * k + 1]) for k in range(L - j)]
            v, gr = from_y(j, lam, full, want_grad=True)
            val = np.maximum(val, v)
            last[:] = [a for i in range(j, L) for a in gr[i]]

        ascend(flat, [(0.0, 1.0)] * len(flat), evaluate, lambda: last, iters=iters, lr=lr)
        return val

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
