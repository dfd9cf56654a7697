"""Rigorous CROWN bounds of a ReLU / leaky-ReLU network on batches of boxes (float64, every rounding bounded).
The network is an alternating chain ``z_0 = W_0 x + b_0``, ``a_j = phi_j(z_j)``, ``z_{j+1} = W_{j+1} a_j + b_{j+1}``,
output ``y = z_L``; ``phi_j(z) = z (z > 0), s_j z (z <= 0)`` with ``s_j <= 1`` (ReLU: ``s_j = 0``), a convex map.
Bounds (Zhang et al., NeurIPS 2018, "CROWN"): pre-activation bounds layer by layer (interval arithmetic, intersected
with the parent box's bounds, then back-substitution of the neurons still unstable), and linear lower bounds of rows
``Lam . y + c`` back-substituted to the input and minimised over the box.  An unstable neuron (``l < 0 < u``) is
relaxed by ``alpha z`` below (``alpha = 1`` if ``u > -l``, else ``s``; any ``alpha`` in ``[s, 1]`` is valid) and a
chord ``k z + t`` above, ``t = max(phi(l) - k l, phi(u) - k u)`` rounded up (for a convex ``phi`` the largest gap on
``[l, u]`` is at an end point), so the rounded ``k`` needs no care.  Each product adds its error bound
(:mod:`verification.proofcheck._float`) times a bound on the magnitude of the variable it multiplies to a slack
subtracted at the end."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from verification.network import Network
from verification.proofcheck._float import ETA, U, add_up, applied, applied_error, dn, mm, up

__all__ = ["Chain", "ChainError", "float_weights", "layer_bounds", "rows_lower"]


class ChainError(ValueError):
    """The network is outside what the checker handles."""


def float_weights(net: Network) -> tuple[tuple, tuple]:
    """Float64 weights and biases of an IR network that is an alternating chain (no layers merged: merging rounds)."""
    if not net.is_canonical:
        raise ChainError("the checker needs an alternating chain of affine layers and activations")
    W = tuple(np.ascontiguousarray(layer.as_matrix(), dtype=np.float64) for layer in net.affine_layers)
    b = tuple(np.ascontiguousarray(layer.bias, dtype=np.float64) for layer in net.affine_layers)
    if not all(np.isfinite(w).all() for w in W + b):
        raise ChainError("the network has a NaN or infinite weight")
    return W, b


@dataclass(frozen=True)
class Chain:
    """The network's float64 weights ``W[j]`` ``(n_j, n_{j-1})``, biases ``b[j]`` and negative slopes ``s[j]``."""

    W: tuple
    b: tuple
    s: tuple

    @classmethod
    def of(cls, net: Network) -> "Chain":
        """From an IR network that is already an alternating chain of ReLU / leaky-ReLU layers."""
        (W, b), slopes = float_weights(net), [act.two_piece_slope for act in net.activations]
        for act, s in zip(net.activations, slopes):
            if s is None or not s <= 1.0:
                raise ChainError(f"the checker handles ReLU / leaky-ReLU (slope <= 1) only, not {act.describe()}")
        return cls(W, b, tuple(float(s) for s in slopes))

    @property
    def depth(self) -> int:
        """Number of activation layers ``L``."""
        return len(self.s)

    def fingerprint(self) -> str:
        """SHA-256 of the shapes, weights, biases and slopes (float64 bytes)."""
        h = hashlib.sha256()
        for W, b in zip(self.W, self.b):
            h.update(np.asarray(W.shape, dtype=np.int64).tobytes() + W.tobytes() + b.tobytes())
        h.update(np.asarray(self.s, dtype=np.float64).tobytes())
        return h.hexdigest()


def _act_interval(s: float, l: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rigorous ``[min, max]`` of ``phi`` on ``[l, u]`` (monotone if ``s >= 0``; for ``s < 0`` its minimum is at 0)."""
    if s == 0.0:
        return np.maximum(l, 0.0), np.maximum(u, 0.0)
    l_dn, l_up = np.where(l >= 0, l, dn(s * l)), np.where(l >= 0, l, up(s * l))
    u_dn, u_up = np.where(u >= 0, u, dn(s * u)), np.where(u >= 0, u, up(s * u))
    if s > 0:
        return l_dn, u_up
    return np.where(l >= 0, l, np.where(u <= 0, u_dn, 0.0)), np.maximum(l_up, u_up)


def _affine_interval(W: np.ndarray, b: np.ndarray, l: np.ndarray, u: np.ndarray):
    """Rigorous interval of ``W v + b`` for ``v`` in ``[l, u]`` (rows of ``l, u``)."""
    Wp, Wn = np.maximum(W, 0.0).T, np.minimum(W, 0.0).T
    (c1, e1), (c2, e2), (c3, e3), (c4, e4) = mm(l, Wp), mm(u, Wn), mm(u, Wp), mm(l, Wn)
    return dn(dn(dn(c1 + c2) - add_up(e1, e2)) + b), up(up(up(c3 + c4) + add_up(e3, e4)) + b)


def _mag(l: np.ndarray, u: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(l), np.abs(u))


def layer_bounds(ch: Chain, lo: np.ndarray, hi: np.ndarray, prior: list | None = None, full: bool | None = False,
                 signs: list | None = None, tight: list | None = None):
    """Pre-activation bounds ``[(l_j, u_j)]`` (each ``(B, n_j)``) of every activation on the boxes ``[lo, hi]``
    (``(B, n_0)``), then the output interval.  ``prior``: bounds known to hold on the boxes (the parent's),
    intersected.  ``full``: back-substitute every neuron, not only the unstable ones; ``None``: none.  ``signs``:
    per activation ``(B, n_j)`` in ``{-1, 0, 1}``, the ReLU split constraints ``s z >= 0`` (``l >= 0`` where ``s =
    1``, ``u <= 0`` where ``s = -1``); then ``(bounds, empty)`` is returned, ``empty``: the domains whose bounds
    cross.  ``tight``: per box ``[(k, i, side, slopes)]``: the lower (``side = 1``) or upper (``-1``) bound of neuron
    ``i`` of layer ``k`` with the lower slopes ``[(j, neuron, slope)]`` (alpha-CROWN; else CROWN's), intersected."""
    out: list = []
    empty = np.zeros(lo.shape[0], dtype=bool)
    for k in range(ch.depth + 1):
        l, u = _affine_interval(ch.W[k], ch.b[k], *((lo, hi) if k == 0 else _act_interval(ch.s[k - 1], *out[k - 1])))
        if prior is not None:
            l, u = np.maximum(l, prior[k][0]), np.minimum(u, prior[k][1])
        if 0 < k < ch.depth and full is not None:
            # each box's own unstable neurons (all with ``full``) first in its rows, padded with zero rows: a
            # box's bounds do not depend on the other boxes bounded with it
            own = np.ones(l.shape, bool) if full else (l < 0) & (u > 0)
            cnt = own.sum(axis=1)
            m = int(cnt.max())
            if m:
                B = lo.shape[0]
                nid = np.argsort(~own, axis=1, kind="stable")[:, :m]
                ok = np.arange(m)[None, :] < cnt[:, None]
                bid = np.broadcast_to(np.arange(B)[:, None], (B, m))
                lam = np.zeros((B, 2 * m, l.shape[1]))
                lam[bid, np.arange(m), nid], lam[bid, m + np.arange(m), nid] = ok, -ok.astype(float)
                val = _backward(ch, k, lam, np.zeros((B, 2 * m)), np.zeros((B, 2 * m)), out, lo, hi)
                b, i = bid[ok], nid[ok]  # l, u are fresh arrays of this layer
                l[b, i] = np.maximum(l[b, i], val[:, :m][ok])
                u[b, i] = np.minimum(u[b, i], -val[:, m:][ok])
        for b, rows in [(b, [r for r in rows if r[0] == k]) for b, rows in enumerate(tight or [])]:
            one, lam, z = [(x[b:b + 1], y[b:b + 1]) for x, y in out], np.zeros((1, len(rows), l.shape[1])), 0.0
            alpha = [np.repeat(np.where(y > -x, 1.0, s)[:, None, :], len(rows), 1) for (x, y), s in zip(one, ch.s)]
            for t, (_, i, side, sl) in enumerate(rows):
                lam[0, t, i] = side
                for j, n, v in sl:
                    alpha[j][0, t, n] = v
            val = _backward(ch, k, lam, z, z, one, lo[b:b + 1], hi[b:b + 1], alpha)[0] if rows else []
            for (_, i, side, _), v in zip(rows, val):
                l[b, i], u[b, i] = (max(l[b, i], v), u[b, i]) if side > 0 else (l[b, i], min(u[b, i], -v))
        if signs is not None:
            if k < ch.depth:
                l, u = np.where(signs[k] > 0, np.maximum(l, 0.0), l), np.where(signs[k] < 0, np.minimum(u, 0.0), u)
            empty |= np.any(l > u, axis=1)
            u = np.maximum(u, l)  # an empty domain's bounds are never used to refute anything but emptiness
        if not (np.isfinite(l).all() and np.isfinite(u).all()) or np.any(l > u):
            raise ArithmeticError(f"layer {k}: bounds are not finite or cross (overflow, or an empty box)")
        out.append((l, u))
    return out if signs is None else (out, empty)


def rows_lower(ch: Chain, lo: np.ndarray, hi: np.ndarray, pre: list, lam: np.ndarray, c: np.ndarray,
               alpha: list | None = None, lag: list | None = None) -> np.ndarray:
    """Rigorous lower bounds ``(B, R)`` of ``lam[b, r] . y + c[b, r]`` over each box (``lam``: ``(B, R, out)`` or
    ``(R, out)``).  ``alpha``: lower slopes ``(B, R, n_j)`` per activation (in ``[s_j, 1]``, else an error).  ``lag``:
    beta-CROWN terms ``beta s`` (``beta >= 0``, ``s`` the split sign; checked by the caller): the bound is then of
    ``lam . y + c - sum_j lag_j . z_j``, below ``lam . y + c`` if ``s z >= 0`` (Wang et al., NeurIPS 2021, Thm 3.1)."""
    B = lo.shape[0]
    lam = np.broadcast_to(lam, (B,) + lam.shape[-2:]).astype(np.float64)
    c = np.broadcast_to(np.asarray(c, dtype=np.float64), lam.shape[:2]).copy()
    return _backward(ch, ch.depth, lam, c, np.zeros(lam.shape[:2]), pre, lo, hi, alpha, lag)


def _backward(ch: Chain, k: int, lam, const, slack, pre, lo, hi, alpha=None, lag=None) -> np.ndarray:
    """Lower bound of ``lam . z_k + const - slack`` over the boxes, by back-substitution with the relaxations
    of the activations ``< k`` built from ``pre`` (and the terms ``-lag_j . z_j``)."""
    for j in range(k, -1, -1):
        M = lam @ ch.W[j]
        # magnitude of the affine layer's input, and the rounding error of M applied to it
        vmax = _mag(lo, hi) if j == 0 else _mag(*_act_interval(ch.s[j - 1], *pre[j - 1]))
        err = applied_error(lam, np.abs(ch.W[j]), vmax)
        cb, eb = mm(lam, ch.b[j])
        const = const + cb
        slack = add_up(slack, eb, err, up(2 * U * np.abs(const) + ETA))
        if j == 0:
            (t1, f1), (t2, f2) = mm(np.maximum(M, 0.0), lo[:, :, None]), mm(np.minimum(M, 0.0), hi[:, :, None])
            return dn(dn(dn(const + t1[..., 0]) + t2[..., 0]) - add_up(slack, f1[..., 0], f2[..., 0]))
        lam, const, slack = _through_activation(ch.s[j - 1], M, const, slack, *pre[j - 1],
                                                None if alpha is None else alpha[j - 1])
        if lag is not None:  # fl(lam - lag) is within u |result| of the exact difference, times |z| <= zmax
            lam = lam - lag[j - 1]
            slack = add_up(slack, applied(np.abs(lam), _mag(*pre[j - 1])))
    raise AssertionError("unreachable")  # pragma: no cover


def _through_activation(s: float, M, const, slack, l, u, alpha=None):
    """Coefficients ``M`` on ``a = phi(z)`` -> coefficients on ``z`` (lower bound), for ``z`` in ``[l, u]``."""
    L, Uu = l[:, None, :], u[:, None, :]
    unst = (L < 0) & (Uu > 0)
    a = np.where(Uu > -L, 1.0, s) if alpha is None else np.asarray(alpha, dtype=np.float64)
    if alpha is not None and not np.all((a >= s) & (a <= 1.0)):
        raise ValueError(f"a lower slope lies outside [{s}, 1]")
    k = np.where(unst, (Uu - s * L) / np.where(unst, Uu - L, 1.0), 1.0)
    # rigorous intercept of the chord: max over the end points of phi(e) - k e, rounded up (0 where stable)
    t = np.where(unst, np.maximum(up(up(s * L) - dn(k * L)), up(Uu - dn(k * Uu))), 0.0)
    stable = np.where(L >= 0, 1.0, s)  # slope of a stable neuron (either side)
    new = M * np.where(M >= 0, np.where(unst, a, stable), np.where(unst, k, stable))
    # negative coefficients of unstable neurons take the chord's intercept (t = 0 elsewhere)
    ct, et = mm(np.minimum(M, 0.0), np.swapaxes(t, 1, 2))
    const = const + ct[..., 0]
    # rounding of M * slope (at most u |new| / (1 - u) + eta / 2 each) times |z| <= zmax
    slack = add_up(slack, et[..., 0], applied(np.abs(new), _mag(l, u)), up(2 * U * np.abs(const) + ETA))
    return new, const, slack
