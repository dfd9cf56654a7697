"""Numba cores of the convolutional NNGP/NTK recursions (float64, C-contiguous).

Arrays hold one kernel block per *pair* of images, flattened over space: ``(N, P, P)`` in full mode
(entry [n, p, p'] = Σ(x_a, x_b) between position p of image a and position p' of image b) or
``(N, P)`` in diagonal mode (same-position terms only).  Pair n joins image ``ia[n]`` of the first
batch with image ``ib[n]`` of the second; per-image self-covariances are blocks with ia = ib.

Round-off consistency, as in :mod:`theorytools.ntk._kernels`: every entry is a fixed-order sum of its
own inputs (no BLAS), and the activations call the same scalar functions (``_abrelu_pair``,
``_erf_pair``, ``_gelu_pair``) as the dense kernels, so a pair of identical images gives cross terms equal to the
self terms bit for bit, and the θ = 0 / θ = π ends of the arc-cosine kernel stay exact.

Spatial maps use index tables ``idx[o, t]``: the flat input position read by output position o at
filter (or window) tap t, or −1 for a zero-padded tap.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from theorytools.ntk._kernels import _abrelu_pair, _erf_pair, _gelu_pair

_INV_2PI = 1.0 / (2.0 * math.pi)


# ----------------------------------------------------------------------------- input covariances


@njit(cache=True, parallel=True)
def gram_full(xa: np.ndarray, xb: np.ndarray, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """out[n, p, q] = Σ_c xa[ia[n], c, p]·xb[ib[n], c, q] / C (sequential sum over channels)."""
    n_pairs = ia.shape[0]
    c_dim, p_dim = xa.shape[1], xa.shape[2]
    out = np.empty((n_pairs, p_dim, p_dim))
    inv_c = 1.0 / c_dim
    for n in prange(n_pairs):
        a = ia[n]
        b = ib[n]
        for p in range(p_dim):
            for q in range(p_dim):
                s = 0.0
                for c in range(c_dim):
                    s += xa[a, c, p] * xb[b, c, q]
                out[n, p, q] = s * inv_c
    return out


@njit(cache=True, parallel=True)
def gram_diag(xa: np.ndarray, xb: np.ndarray, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """out[n, p] = Σ_c xa[ia[n], c, p]·xb[ib[n], c, p] / C (the p = q terms of :func:`gram_full`)."""
    n_pairs = ia.shape[0]
    c_dim, p_dim = xa.shape[1], xa.shape[2]
    out = np.empty((n_pairs, p_dim))
    inv_c = 1.0 / c_dim
    for n in prange(n_pairs):
        a = ia[n]
        b = ib[n]
        for p in range(p_dim):
            s = 0.0
            for c in range(c_dim):
                s += xa[a, c, p] * xb[b, c, p]
            out[n, p] = s * inv_c
    return out


# ----------------------------------------------------------------------------- convolution


@njit(cache=True, parallel=True)
def conv_full(e, th, idx, w2k, b2, ce, c0, ntk_param, do_ntk):
    """Convolution on full blocks.  With accE = Σ_t E[idx[o,t], idx[o',t]] (taps outside the
    image skipped) and accT the same sum of Θ:  Σ_out = w2k·accE + b2;  Θ_out = w2k·accT + Σ_out
    (NTK parameterisation) or w2k·accT + ce·accE + c0 (standard)."""
    n_pairs = e.shape[0]
    po, k = idx.shape
    sig = np.empty((n_pairs, po, po))
    tho = np.empty((n_pairs, po, po)) if do_ntk else np.empty((1, 1, 1))
    for n in prange(n_pairs):
        for o in range(po):
            for o2 in range(po):
                acc_e = 0.0
                acc_t = 0.0
                for t in range(k):
                    a = idx[o, t]
                    b = idx[o2, t]
                    if a >= 0 and b >= 0:
                        acc_e += e[n, a, b]
                        if do_ntk:
                            acc_t += th[n, a, b]
                s = w2k * acc_e + b2
                sig[n, o, o2] = s
                if do_ntk:
                    tho[n, o, o2] = w2k * acc_t + (s if ntk_param else ce * acc_e + c0)
    return sig, tho


@njit(cache=True, parallel=True)
def conv_diag(e, th, idx, w2k, b2, ce, c0, ntk_param, do_ntk):
    """:func:`conv_full` restricted to same-position terms (which depend on same-position terms only)."""
    n_pairs = e.shape[0]
    po, k = idx.shape
    sig = np.empty((n_pairs, po))
    tho = np.empty((n_pairs, po)) if do_ntk else np.empty((1, 1))
    for n in prange(n_pairs):
        for o in range(po):
            acc_e = 0.0
            acc_t = 0.0
            for t in range(k):
                a = idx[o, t]
                if a >= 0:
                    acc_e += e[n, a]
                    if do_ntk:
                        acc_t += th[n, a]
            s = w2k * acc_e + b2
            sig[n, o] = s
            if do_ntk:
                tho[n, o] = w2k * acc_t + (s if ntk_param else ce * acc_e + c0)
    return sig, tho


# ----------------------------------------------------------------------------- pooling and readouts


@njit(cache=True, parallel=True)
def pool_full(e, idx, scale):
    """Average pooling on full blocks: out[n, o, o'] = scale[o]·scale[o']·Σ_t Σ_t' E[idx[o,t], idx[o',t']]."""
    n_pairs = e.shape[0]
    po, k = idx.shape
    out = np.empty((n_pairs, po, po))
    for n in prange(n_pairs):
        for o in range(po):
            for o2 in range(po):
                acc = 0.0
                for t in range(k):
                    a = idx[o, t]
                    if a < 0:
                        continue
                    for t2 in range(k):
                        b = idx[o2, t2]
                        if b >= 0:
                            acc += e[n, a, b]
                out[n, o, o2] = (scale[o] * scale[o2]) * acc
    return out


@njit(cache=True, parallel=True)
def mean_all(e):
    """Global average pooling on full blocks: the mean of all P² entries of each pair."""
    n_pairs, p_dim, _ = e.shape
    out = np.empty(n_pairs)
    inv = 1.0 / (p_dim * p_dim)
    for n in prange(n_pairs):
        acc = 0.0
        for p in range(p_dim):
            for q in range(p_dim):
                acc += e[n, p, q]
        out[n] = acc * inv
    return out


@njit(cache=True, parallel=True)
def mean_diagonal(e):
    """Flatten readout on full blocks: the mean of the same-position entries E[p, p]."""
    n_pairs, p_dim, _ = e.shape
    out = np.empty(n_pairs)
    inv = 1.0 / p_dim
    for n in prange(n_pairs):
        acc = 0.0
        for p in range(p_dim):
            acc += e[n, p, p]
        out[n] = acc * inv
    return out


@njit(cache=True, parallel=True)
def mean_positions(e):
    """Flatten readout on diagonal blocks: the mean over positions (same order as :func:`mean_diagonal`)."""
    n_pairs, p_dim = e.shape
    out = np.empty(n_pairs)
    inv = 1.0 / p_dim
    for n in prange(n_pairs):
        acc = 0.0
        for p in range(p_dim):
            acc += e[n, p]
        out[n] = acc * inv
    return out


# ----------------------------------------------------------------------------- activations

RELU_KIND = 0
ERF_KIND = 1
GELU_KIND = 2


@njit(cache=True)
def _pair(kind, q1, q2, s, half, ab, d2):
    if kind == 0:
        return _abrelu_pair(q1, q2, s, half, ab, d2)
    if kind == 1:
        return _erf_pair(q1, q2, s)
    return _gelu_pair(q1, q2, s)


@njit(cache=True, parallel=True)
def act_full(e, th, qa, qb, ia, ib, kind, a, b, do_ntk):
    """In place: E[n, p, q] ← E[σ(u)σ(v)], Θ[n, p, q] ← Θ·E[σ'(u)σ'(v)] with
    (u, v) ~ N(0, [[qa[ia[n], p], E], [E, qb[ib[n], q]]]).  kind 0: σ = a·min(x, 0) + b·max(x, 0)
    (arc-cosine closed form); kind 1: σ = erf; kind 2: σ(x) = x·Φ(x) (GELU) (a, b unused)."""
    half = 0.5 * (a * a + b * b)
    ab = a * b
    d2 = (a - b) * (a - b) * _INV_2PI
    n_pairs, p1, p2 = e.shape
    for n in prange(n_pairs):
        i = ia[n]
        j = ib[n]
        for p in range(p1):
            q1 = qa[i, p]
            for q in range(p2):
                v, lin = _pair(kind, q1, qb[j, q], e[n, p, q], half, ab, d2)
                e[n, p, q] = v
                if do_ntk:
                    th[n, p, q] *= lin


@njit(cache=True, parallel=True)
def act_diag(e, th, qa, qb, ia, ib, kind, a, b, do_ntk):
    """:func:`act_full` on same-position blocks (variances qa[ia[n], p] and qb[ib[n], p])."""
    half = 0.5 * (a * a + b * b)
    ab = a * b
    d2 = (a - b) * (a - b) * _INV_2PI
    n_pairs, p1 = e.shape
    for n in prange(n_pairs):
        i = ia[n]
        j = ib[n]
        for p in range(p1):
            v, lin = _pair(kind, qa[i, p], qb[j, p], e[n, p], half, ab, d2)
            e[n, p] = v
            if do_ntk:
                th[n, p] *= lin
