"""Linear relaxations and derivative ranges of activations on a pre-activation box ``[l, u]``.

The activation classes (:mod:`verification.activations`) expose these as methods
(``linear_relaxation``, ``derivative_bounds``); the math lives here so that the activation modules
stay small: two-piece maps (ReLU, leaky ReLU), S-shaped maps (tanh, sigmoid), GroupSort, and smooth maps
whose inflection points are known (SiLU).  Every function broadcasts over leading batch dimensions.

A linear relaxation is a 4-tuple ``(ls, lb, us, ub)`` with ``ls*z + lb <= phi(z) <= us*z + ub`` for
every ``z`` in ``[l, u]`` (CROWN, Zhang et al. NeurIPS 2018, Sec. 3.2 and Table 1).
"""

from __future__ import annotations

import numpy as np

__all__ = ["two_piece_relaxation", "two_piece_derivative_bounds", "s_shaped_relaxation", "s_shaped_derivative_bounds",
           "groupsort_relaxation", "inflection_relaxation"]

# slack added to the intercepts of relaxations of smooth activations (rounding of tanh/exp)
_SLACK = 1e-12


def two_piece_relaxation(lower, upper, neg_slope: float, lower_slope=None):
    """Relaxation of ``phi(z) = z (z > 0), neg_slope*z (z <= 0)``.

    Unstable neurons (``l < 0 < u``): the chord through ``(l, phi(l))`` and ``(u, phi(u))`` bounds the
    convex side; the other side is a line through the origin with slope ``lower_slope`` in
    ``[min(a, 1), max(a, 1)]`` (the alpha of alpha-CROWN; default: the adaptive choice 1 if ``u > -l``
    else ``a``).  For ``a <= 1`` the map is convex (chord above); for ``a > 1`` it is concave (chord below).
    """
    l = np.asarray(lower, dtype=np.float64)
    u = np.asarray(upper, dtype=np.float64)
    a = float(neg_slope)
    pos = l >= 0
    neg = u <= 0
    unstable = ~(pos | neg)
    width = np.where(unstable, u - l, 1.0)
    chord = np.where(unstable, (u - a * l) / width, 1.0)
    chord_b = np.where(unstable, u - chord * u, 0.0)
    lo_s, hi_s = min(a, 1.0), max(a, 1.0)
    if lower_slope is None:
        alpha = np.where(u > -l, 1.0, a)
    else:
        alpha = np.clip(np.asarray(lower_slope, dtype=np.float64), lo_s, hi_s)
    stable_s = np.where(pos, 1.0, a)
    if a <= 1.0:  # convex: chord is the upper bound, alpha-line the lower one
        ls = np.where(unstable, alpha, stable_s)
        lb = np.zeros_like(ls)
        us = np.where(unstable, chord, stable_s)
        ub = np.where(unstable, chord_b, 0.0)
    else:  # concave: chord below, alpha-line above
        us = np.where(unstable, alpha, stable_s)
        ub = np.zeros_like(us)
        ls = np.where(unstable, chord, stable_s)
        lb = np.where(unstable, chord_b, 0.0)
    return ls, lb, us, ub


def two_piece_derivative_bounds(lower, upper, neg_slope: float):
    """Range ``[dl, du]`` of the Clarke derivative of the two-piece map on ``[l, u]``.

    The slope 1 is possible if ``u >= 0``, the slope ``a`` if ``l <= 0`` (both at a kink ``z = 0``)."""
    l = np.asarray(lower, dtype=np.float64)
    u = np.asarray(upper, dtype=np.float64)
    a = float(neg_slope)
    can_pos = u >= 0
    can_neg = l <= 0
    big, small = max(a, 1.0), min(a, 1.0)
    s_big = 1.0 if big == 1.0 else a
    # which slopes are reachable
    has_big = np.where(s_big == 1.0, can_pos, can_neg) if a != 1.0 else np.ones_like(l, dtype=bool)
    has_small = np.where(s_big == 1.0, can_neg, can_pos) if a != 1.0 else np.ones_like(l, dtype=bool)
    du = np.where(has_big, big, small)
    dl = np.where(has_small, small, big)
    return dl, du


def _s_upper(f, df, l, u):
    """Upper line of an S-shaped map (convex on z <= 0, concave on z >= 0) on ``[l, u]``."""
    same = u - l <= 1e-12
    fl, fu = f(l), f(u)
    width = np.where(same, 1.0, u - l)
    k_chord = np.where(same, df(l), (fu - fl) / width)
    b_chord = fl - k_chord * l
    # concave case: tangent at the midpoint
    m = (l + u) / 2
    k_tan, b_tan = df(m), f(m) - df(m) * m
    # mixed case: tangent at d in [0, u] through (l, f(l)) if the chord is not above f
    h_u = fu + df(u) * (l - u) - fl
    need_tangent = (l < 0) & (u > 0) & (h_u > 0) & ~same
    lo = np.zeros_like(l)
    hi = np.where(need_tangent, u, 0.0)
    for _ in range(60):
        mid = (lo + hi) / 2
        h = f(mid) + df(mid) * (l - mid) - fl
        pos = h > 0
        hi = np.where(pos, mid, hi)
        lo = np.where(pos, lo, mid)
    # the tangent at hi passes above (l, f(l)), so it bounds f on [l, u]
    k_mix, b_mix = df(hi), f(hi) - df(hi) * hi
    k = np.where(l >= 0, k_tan, np.where(need_tangent, k_mix, k_chord))
    b = np.where(l >= 0, b_tan, np.where(need_tangent, b_mix, b_chord))
    k = np.where(same, df(l), k)
    b = np.where(same, fl - df(l) * l, b)
    return k, b + _SLACK * (1.0 + np.abs(b))


def s_shaped_relaxation(f, df, center: float, lower, upper):
    """Relaxation of an S-shaped map with inflection at 0 and ``f(-z) = 2*center - f(z)`` (tanh: 0, sigmoid: 1/2).

    Upper line: chord if ``u <= 0`` (convex part), tangent at the midpoint if ``l >= 0`` (concave part),
    otherwise the chord or the tangent through ``(l, f(l))`` (CROWN, Zhang et al. 2018, Sec. 3.2).
    The lower line follows by the point symmetry.  Intercepts carry a 1e-12 relative slack for rounding."""
    l = np.asarray(lower, dtype=np.float64)
    u = np.asarray(upper, dtype=np.float64)
    us, ub = _s_upper(f, df, l, u)
    k, b = _s_upper(f, df, -u, -l)
    ls, lb = k, 2.0 * center - b
    return ls, lb, us, ub


def s_shaped_derivative_bounds(df, lower, upper):
    """Range of ``f'`` on ``[l, u]`` for ``f'`` unimodal with its maximum at 0 (tanh, sigmoid)."""
    l = np.asarray(lower, dtype=np.float64)
    u = np.asarray(upper, dtype=np.float64)
    du = df(np.clip(0.0, l, u))
    dl = np.minimum(df(l), df(u))
    return dl * (1 - 1e-12), du * (1 + 1e-12) + 1e-300  # a few ulps of df, and its underflow to 0


def groupsort_relaxation(group_size: int, lower, upper):
    """Matrix relaxation ``Ml z + bl <= sort(z) <= Mu z + bu`` of GroupSort (descending) on ``[l, u]``.

    Returns ``(Ml, bl, Mu, bu)`` with matrices of shape ``(..., n, n)`` (block diagonal).  For MaxMin
    (``group_size == 2``): ``max(p, q) = q + relu(p - q)`` and ``min(p, q) = p - relu(p - q)`` with the
    ReLU relaxation of the difference on ``[l_p - u_q, u_p - l_q]``.  For larger groups: the maximum is
    bounded below by the entry with the largest lower bound and the minimum above by the entry with the
    smallest upper bound; the remaining sides are the interval bounds (sound but loose)."""
    l = np.asarray(lower, dtype=np.float64)
    u = np.asarray(upper, dtype=np.float64)
    n = l.shape[-1]
    g = group_size
    batch = l.shape[:-1]
    ml = np.zeros(batch + (n, n))
    mu = np.zeros(batch + (n, n))
    bl = np.zeros(batch + (n,))
    bu = np.zeros(batch + (n,))
    for s in range(0, n, g):
        if g == 2:
            p, q = s, s + 1
            ls, lb, us, ub = two_piece_relaxation(l[..., p] - u[..., q], u[..., p] - l[..., q], 0.0)
            # max = q + r : lower q + ls (p - q) + lb, upper q + us (p - q) + ub
            ml[..., p, p], ml[..., p, q], bl[..., p] = ls, 1 - ls, lb
            mu[..., p, p], mu[..., p, q], bu[..., p] = us, 1 - us, ub
            # min = p - r : lower p - (us (p - q) + ub), upper p - (ls (p - q) + lb)
            ml[..., q, p], ml[..., q, q], bl[..., q] = 1 - us, us, -ub
            mu[..., q, p], mu[..., q, q], bu[..., q] = 1 - ls, ls, -lb
        else:
            lg, ug = l[..., s:s + g], u[..., s:s + g]
            srt_l = -np.sort(-lg, axis=-1)
            srt_u = -np.sort(-ug, axis=-1)
            bl[..., s:s + g] = srt_l
            bu[..., s:s + g] = srt_u
            jmax = np.argmax(lg, axis=-1)
            jmin = np.argmin(ug, axis=-1)
            idx = np.indices(batch)
            ml[(*idx, np.full(batch, s), s + jmax)] = 1.0
            bl[..., s] = 0.0
            mu[(*idx, np.full(batch, s + g - 1), s + jmin)] = 1.0
            bu[..., s + g - 1] = 0.0
    return ml, bl, mu, bu


# --- smooth maps with known inflection points (SiLU) ----------------------------------------------------
_EPS = np.finfo(np.float64).eps
_INT_MIN = np.int64(-(2**63))


def _to_key(x: np.ndarray) -> np.ndarray:
    """Order-preserving map of finite float64 values to int64 (``-0.0`` and ``0.0`` both map to 0)."""
    i = np.ascontiguousarray(x, dtype=np.float64).view(np.int64)
    return np.where(i >= 0, i, _INT_MIN - i)


def _from_key(k: np.ndarray) -> np.ndarray:
    return np.where(k >= 0, k, _INT_MIN - k).astype(np.int64).view(np.float64)


def _bisect(df, k, a, b, increasing: bool) -> np.ndarray:
    """A point of ``[a, b]`` close to where the monotone ``df`` crosses ``k`` (an end if it does not).

    Bisection on the ordered bit patterns of the floats: 64 steps reach adjacent floats on any range, however
    wide.  Only the tightness of the bounds below depends on the result, never their soundness."""
    lo, hi = _to_key(a), _to_key(b)
    for _ in range(64):
        mid = (lo >> 1) + (hi >> 1) + (lo & hi & 1)
        right = df(_from_key(mid)) < k
        if not increasing:
            right = ~right
        lo = np.where(right, mid, lo)
        hi = np.where(right, hi, mid)
    return _from_key(hi)


def _max_offset(f, df, k, l, u, pieces, dmax: float):
    """An upper bound of ``max f(z) - k z`` over ``[l, u]`` (before rounding slack).

    ``pieces``: ``(A, B, kind)`` covering the real line, ``kind`` ``"convex"`` or ``"concave"`` (``f`` is so
    on ``[A, B]``) or ``"sliver"`` (a tiny enclosure of an inflection point).  On a convex piece ``f - k z``
    is convex: its maximum is at an end.  On a concave piece ``f(z) <= f(p) + f'(p)(z - p)`` for every
    ``p`` of the piece (tangent above a concave function): the bound is that line's maximum over the piece,
    with ``p`` where ``f'`` crosses ``k`` (then it is the exact maximum up to rounding).  On a sliver
    ``|d/dz (f - k z)| <= dmax + |k|`` bounds the variation from its left end."""
    best = np.full(np.broadcast(l, u, k).shape, -np.inf)
    for A, B, kind in pieces:
        a, b = np.maximum(l, A), np.minimum(u, B)
        ok = a <= b
        if not np.any(ok):
            continue
        b = np.where(ok, b, a)
        ha, hb = f(a) - k * a, f(b) - k * b
        if kind == "convex":
            v = np.maximum(ha, hb)
        elif kind == "concave":
            p = _bisect(df, k, a, b, increasing=False)
            dp = df(p) - k
            v = f(p) - k * p + np.maximum(dp * (a - p), dp * (b - p))
        else:
            v = ha + (dmax + np.abs(k)) * (b - a)
        best = np.where(ok, np.maximum(best, v), best)
    return best


def inflection_relaxation(f, df, lower, upper, inflections, first_convex: bool, slopes: tuple[float, float]):
    """Sound relaxation ``k z + lb <= f(z) <= k z + ub`` on ``[l, u]`` of a smooth elementwise ``f`` whose
    curvature changes sign only at the points enclosed by ``inflections`` (sorted ``(lo, hi)`` float pairs).

    The slope ``k`` is the chord slope on ``[l, u]`` (``f'(l)`` on a point box), clipped to ``slopes`` =
    the global range of ``f'``; any slope would be sound.  The offsets are the maximum and minimum of
    ``f(z) - k z`` on the box, bounded piece by piece (see :func:`_max_offset`; the minimum is the maximum
    for ``-f``, whose curvature is the opposite), then moved outwards by ``128 eps (1 + |k|)(1 + max|z|)``,
    which exceeds the rounding of these few float operations when ``|f(z)| <= |z|``, ``|f'| <= 2`` and the
    library ``exp`` is accurate to a few ulps (SiLU: ``|f(z)| <= |z|``, ``|f'| < 1.1``)."""
    l = np.asarray(lower, dtype=np.float64)
    u = np.asarray(upper, dtype=np.float64)
    lo_s, hi_s = slopes
    width = u - l
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        chord = (f(u) - f(l)) / np.where(width > 0, width, 1.0)
    k = np.where(width > 0, chord, df(l))
    k = np.clip(np.nan_to_num(k, nan=(lo_s + hi_s) / 2), lo_s, hi_s)
    ends = [-np.inf] + [e for pair in inflections for e in pair] + [np.inf]
    pieces = []
    convex = first_convex
    for i in range(len(inflections) + 1):
        pieces.append((ends[2 * i], ends[2 * i + 1], "convex" if convex else "concave"))
        if i < len(inflections):
            pieces.append((ends[2 * i + 1], ends[2 * i + 2], "sliver"))
        convex = not convex
    flipped = [(A, B, {"convex": "concave", "concave": "convex"}.get(kind, kind)) for A, B, kind in pieces]
    dmax = max(abs(lo_s), abs(hi_s))
    ub = _max_offset(f, df, k, l, u, pieces, dmax)
    lb = -_max_offset(lambda z: -f(z), lambda z: -df(z), -k, l, u, flipped, dmax)
    slack = 128 * _EPS * (1.0 + np.abs(k)) * (1.0 + np.maximum(np.abs(l), np.abs(u)))
    return k, lb - slack, k.copy(), ub + slack
