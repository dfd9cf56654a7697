"""Certified spectral norms of 2-D convolutions, without the dense matrix.

**Circular convolutions.**  A stride-1 circular convolution on an ``N_h x N_w`` grid is block-circulant; its
singular values are those of the ``C_out x C_in`` matrices
``K(w) = sum_taps weight[:, :, t, u] exp(-2 pi i (w_h t d_h / N_h + w_w u d_w / N_w))`` over the grid's
frequencies (Sedghi, Gupta & Long, *The singular values of convolutional layers*, ICLR 2019).  With stride
``s`` dividing ``N`` the same holds on the coarse ``N/s`` grid after splitting the input into its ``s_h s_w``
polyphase components (input channel ``(c, a_h, a_w)`` holds ``x[s q + a]``): ``K(w)`` is then
``C_out x (C_in s_h s_w)``.  Groups make the matrix block diagonal: the maximum over groups.

**Any padding** is reduced to that case.  Along each axis the layer reads the padded positions
``p = i s + t d``; it equals ``Sel o Circ_N o P`` where ``P`` maps the input to the read positions (zero
padding: an isometric embedding; reflect / replicate / circular: a copy with multiplicity, ``||P||_2 =
sqrt(max number of read positions that copy one input entry)``, computed exactly), ``Circ_N`` is the strided
circular convolution on a grid of ``N >= (last read + 1)`` positions (``s | N``; no read wraps around) and
``Sel`` picks distinct output rows (norm 1).  A circular layer is also written directly on its own grid
(exact when the outputs are one per coarse position); we take the smaller bound.

**Certification (float64, rounding accounted for).**  For each frequency the real ``2m x 2n`` embedding
``B = [[Re K, -Im K], [Im K, Re K]]`` (same singular values as ``K``) is formed by real dot products with
twiddles ``cos, sin`` of ``2 pi k / M`` (``k`` reduced exactly in integers).  Then

* ``|B_float - B| <= (gamma_T (1 + tau) + tau) S`` entrywise (``T`` taps, ``S`` the sums of ``|weight|``) with
  ``tau = 64 eps`` the allowed error of each twiddle: the argument ``2 pi k / M`` carries at most 3 roundings
  (``< 10 u`` absolute, and ``cos``/``sin`` are 1-Lipschitz) and libm / numpy's SIMD ``cos``/``sin`` are
  within 4 ulp (``<= 8 u`` for values in ``[-1, 1]``): ``<= 18 u = 9 eps``, a 7x margin;
* ``||B_float||_2`` is bounded a posteriori from any computed SVD ``U diag(s) V^T`` without trusting it:
  ``||B|| <= s_max ||U|| ||V|| + ||B - U diag(s) V^T||_F`` with ``||U||^2 <= 1 + ||U^T U - I||_F``, every
  product enclosed with the standard bound ``|fl(A B) - A B| <= gamma_k |A| |B|`` (any summation order);
* an absolute ``2^-900`` covers underflow; the result is rounded up.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["circular_norm_bound", "conv_norm_bound", "power_norm_lower", "TWIDDLE_ERROR"]

_EPS = float(np.finfo(np.float64).eps)
_U = _EPS / 2
#: Allowed absolute error of each computed twiddle factor ``cos(2 pi k / M)``, ``sin(2 pi k / M)``.
TWIDDLE_ERROR = 256 * _EPS
_TINY = 2.0 ** -900
#: Largest number of float64 entries of one frequency chunk of the embedded matrices.
_CHUNK_ENTRIES = 4_000_000


def _gamma(n: int) -> float:
    """Upper bound of ``gamma_n = n u / (1 - n u)``."""
    return n * _U / (1 - n * _U) * (1 + 4 * _EPS)


def _fro_up(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Upper bound of the Frobenius norm over ``axes`` (sum of squares and sqrt rounded up)."""
    n = math.prod(x.shape[a] for a in axes)
    return np.sqrt(np.sum(x * x, axis=axes)) * (1 + (n + 4) * _EPS)


def _spectral_up(b: np.ndarray) -> np.ndarray:
    """Certified upper bounds of ``||b[f]||_2`` for a stack of real matrices ``b`` of shape ``(F, m, n)``."""
    u, s, vt = np.linalg.svd(b, full_matrices=False)
    k = s.shape[1]
    s_max = s.max(axis=1)

    def orth_excess(q: np.ndarray, rows: int) -> np.ndarray:  # >= ||Q^T Q - I||_2 for q (F, rows, k)
        g = np.swapaxes(q, 1, 2) @ q
        g[:, np.arange(k), np.arange(k)] -= 1.0
        aq = np.abs(q)
        gq = _fro_up(np.swapaxes(aq, 1, 2) @ aq, (1, 2)) * (1 + 2 * _gamma(rows))
        return _fro_up(g, (1, 2)) * (1 + 2 * _U) + _gamma(rows + 1) * gq

    eu = orth_excess(u, b.shape[1])
    ev = orth_excess(np.swapaxes(vt, 1, 2), b.shape[2])
    p = (u * s[:, None, :]) @ vt
    r = _fro_up(b - p, (1, 2)) * (1 + 2 * _U)
    q = (np.abs(u) * s[:, None, :]) @ np.abs(vt)
    r = r + _gamma(k + 2) * _fro_up(q, (1, 2)) * (1 + 2 * _gamma(k + 2))
    head = s_max * np.sqrt((1 + eu) * (1 + ev)) * (1 + 8 * _EPS)
    return (head + r) * (1 + 4 * _EPS)


def circular_norm_bound(weight: np.ndarray, groups: int, grid: tuple[int, int], stride: tuple[int, int],
                        dilation: tuple[int, int]) -> float:
    """Certified upper bound (exact up to ~1e-13 relative) of the spectral norm of the circular convolution
    with ``weight`` ``(C_out, C_in/groups, kh, kw)`` on an ``N_h x N_w`` grid with the given stride (which must
    divide the grid) and dilation: output ``(o, i, j)`` reads ``x[c, (i s_h + t d_h) mod N_h, (j s_w + u d_w)
    mod N_w]``.  See the module docstring for the proof of each step."""
    w = np.asarray(weight, dtype=np.float64)
    c_out, c_in_g, kh, kw = w.shape
    (nh, nw), (sh, sw), (dh, dw) = grid, stride, dilation
    if nh % sh or nw % sw:
        raise ValueError(f"stride {stride} must divide the grid {grid}")
    if not np.all(np.isfinite(w)):
        return math.inf
    mh, mw = nh // sh, nw // sw
    # polyphase: tap t sits at coarse offset q_t in channel class a_t (t d = s q_t + a_t, taken mod N)
    off_h, off_w = (np.arange(kh) * dh) % nh, (np.arange(kw) * dw) % nw
    qh, ah = off_h // sh, off_h % sh
    qw, aw = off_w // sw, off_w % sw
    fh, fw = np.arange(mh), np.arange(mw // 2 + 1)  # conjugate frequencies have the same singular values
    ang_h = 2 * np.pi * ((fh[None, :] * qh[:, None]) % mh) / mh  # (kh, Fh)
    ang_w = 2 * np.pi * ((fw[None, :] * qw[:, None]) % mw) / mw  # (kw, Fw)
    ang = ang_h[:, None, :, None] + ang_w[None, :, None, :]  # (kh, kw, Fh, Fw): one more rounding
    n_freq = mh * fw.size
    cos, sin = np.cos(ang).reshape(kh * kw, n_freq), np.sin(ang).reshape(kh * kw, n_freq)
    per_group = c_out // groups
    wg = w.reshape(groups, per_group, c_in_g, kh * kw)
    cls = (ah[:, None] * sw + aw[None, :]).reshape(-1)  # polyphase class of each tap
    n_cls = sh * sw
    best = 0.0
    for g in range(groups):
        re = np.zeros((n_freq, per_group, c_in_g, n_cls))
        im = np.zeros_like(re)
        s_abs = np.zeros((per_group, c_in_g, n_cls))
        n_taps = 1
        for a in range(n_cls):
            taps = np.flatnonzero(cls == a)
            if taps.size == 0:
                continue
            n_taps = max(n_taps, taps.size)
            wa = wg[g][:, :, taps].reshape(-1, taps.size)
            re[:, :, :, a] = (wa @ cos[taps]).T.reshape(n_freq, per_group, c_in_g)
            im[:, :, :, a] = (wa @ sin[taps]).T.reshape(n_freq, per_group, c_in_g)
            s_abs[:, :, a] = np.abs(wg[g][:, :, taps]).sum(axis=2)
        m, n = per_group, c_in_g * n_cls
        re, im = re.reshape(n_freq, m, n), im.reshape(n_freq, m, n)
        # entry error of Re and Im; the embedding holds each twice: ||error of B||_F <= 2 ||delta||_F
        delta = (_gamma(n_taps + 1) * (1 + TWIDDLE_ERROR) + TWIDDLE_ERROR) * (1 + 4 * _EPS)
        s_sum = s_abs * (1 + _gamma(n_taps + 1))
        err_b = 2 * delta * float(_fro_up(s_sum, (0, 1, 2)))
        chunk = max(1, _CHUNK_ENTRIES // (4 * m * n))
        for lo in range(0, n_freq, chunk):
            r, i = re[lo:lo + chunk], im[lo:lo + chunk]
            b = np.concatenate([np.concatenate([r, -i], axis=2), np.concatenate([i, r], axis=2)], axis=1)
            best = max(best, float(_spectral_up(b).max()) + err_b)
    out = (best + _TINY) * (1 + 8 * _EPS)
    return float(np.nextafter(out, np.inf)) if math.isfinite(out) else math.inf


def _read_positions(n_in: int, k: int, stride: int, dil: int, pad: tuple[int, int], mode: str):
    """Along one axis: the padded positions read (``i s + t d``), the input entry each copies (-1 for a zero),
    and the output length."""
    n_out = (n_in + pad[0] + pad[1] - dil * (k - 1) - 1) // stride + 1
    pos = (np.arange(n_out)[:, None] * stride + np.arange(k)[None, :] * dil).reshape(-1)
    coord = pos - pad[0]
    if mode == "zeros":
        coord = np.where((coord >= 0) & (coord < n_in), coord, -1)
    elif mode == "circular":
        coord = np.mod(coord, n_in)
    elif mode == "replicate":
        coord = np.clip(coord, 0, n_in - 1)
    elif n_in == 1:
        coord = np.zeros_like(coord)
    else:
        period = 2 * (n_in - 1)
        c = np.mod(coord, period)
        coord = np.where(c >= n_in, period - c, c)
    return pos, coord, n_out


def _axis_plans(n_in: int, k: int, stride: int, dil: int, pad: tuple[int, int], mode: str):
    """Ways to write one axis as ``Sel o Circ_N o P``: ``(N, stride on the grid, ||P||^2 ||Sel||^2)``; only the
    exact one when a circular layer has one output per coarse position."""
    pos, coord, n_out = _read_positions(n_in, k, stride, dil, pad, mode)
    pairs = np.unique(np.stack([pos, coord]), axis=1)
    pairs = pairs[:, pairs[1] >= 0]
    mult = int(np.bincount(pairs[1]).max()) if pairs.size else 1
    n_grid = -(-(int(pos.max()) + 1) // stride) * stride
    plans = [(n_grid, stride, mult)]
    if mode == "circular":  # the layer's own grid: x shifted by pad[0] (a permutation), rows i s mod n_in
        if n_in % stride == 0:
            if n_out == n_in // stride:  # one output per coarse position: Sel is a permutation, the plan is exact
                return [(n_in, stride, 1)]
            plans.append((n_in, stride, -(-n_out // (n_in // stride))))
        rows = (np.arange(n_out) * stride) % n_in
        plans.append((n_in, 1, int(np.bincount(rows).max())))
    return plans


def conv_norm_bound(weight: np.ndarray, input_shape: tuple[int, int, int], stride: tuple[int, int],
                    dilation: tuple[int, int], groups: int, pads: tuple[int, int, int, int],
                    padding_mode: str) -> tuple[float, dict]:
    """Certified upper bound of the spectral norm of a :class:`~verification.layers.conv.Conv2d` layer and
    the plan that attained it: the smallest ``sqrt(mult_h mult_w) * circular_norm_bound(...)`` over the plans
    of both axes (see the module docstring)."""
    _, h, w = input_shape
    kh, kw = np.shape(weight)[2:]
    plans_h = _axis_plans(h, kh, stride[0], dilation[0], pads[:2], padding_mode)
    plans_w = _axis_plans(w, kw, stride[1], dilation[1], pads[2:], padding_mode)
    best, info = math.inf, {}
    cache: dict = {}
    for nh, sh, mh in plans_h:
        for nw, sw, mw in plans_w:
            key = (nh, sh, nw, sw)
            if key not in cache:
                cache[key] = circular_norm_bound(weight, groups, (nh, nw), (sh, sw), dilation)
            val = float(np.nextafter(math.sqrt(mh * mw) * (1 + 2 * _EPS) * cache[key], np.inf))
            if val < best:
                best, info = val, {"grid": (nh, nw), "grid_stride": (sh, sw), "multiplicity": (mh, mw)}
    return best, info


def power_norm_lower(layer, n_iter: int = 50, seed: int = 0) -> float:
    """A proven *lower* bound (never an upper bound) of ``||W||_2`` for any affine layer, from ``n_iter``
    steps of power iteration on ``W^T W`` through ``linear`` / ``transpose``: ``||W v|| / ||v||`` for the final
    ``v``, with the rounding of ``W v`` (at most ``gamma_n |W| |v|``, ``n`` = inputs, with room for the
    rounding of taps summed into one entry of ``W``) subtracted."""
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(layer.in_features)
    for _ in range(max(0, n_iter)):
        y = layer.transpose(layer.linear(v))
        nrm = float(np.linalg.norm(y))
        if not np.isfinite(nrm) or nrm == 0.0:
            break
        v = y / nrm
    wv = layer.linear(v)
    err = _gamma(layer.in_features + 4) * layer.abs_linear(np.abs(v)) * (1 + 4 * _EPS)
    num = float(np.sqrt(np.sum(np.maximum(np.abs(wv) - err, 0.0) ** 2))) * (1 - (wv.size + 4) * _EPS)
    den = float(np.sqrt(np.sum(v * v))) * (1 + (v.size + 4) * _EPS)
    if not (den > 0 and np.isfinite(num)):
        return 0.0
    return max(0.0, float(np.nextafter(num / den * (1 - 4 * _EPS), 0.0)))
