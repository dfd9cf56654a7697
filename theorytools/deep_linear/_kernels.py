"""Numba kernels: full-matrix gradient descent / gradient flow of deep (linear or tanh) nets.

Weights W_1 .. W_K (W_k of shape (n[k+1], n[k])) live in one flat float64 buffer; W_k starts at
offsets[k-1]. All arrays are float64 and C-contiguous. The update is eq 1/eq 13 of Saxe et al.:
W_k += lr * (prod_{i>k} W_i)^T (Sigma31 - W_tot Sigma11) (prod_{i<k} W_i)^T, i.e. gradient descent
with learning rate lr on (1/2) sum_mu ||y - yhat||^2.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _view(buf, offsets, dims, k):
    r = dims[k + 1]
    c = dims[k]
    return buf[offsets[k]:offsets[k] + r * c].reshape(r, c)


@njit(cache=True)
def _copy2d(src, dst):
    # explicit loop: a 2-D slice assignment costs seconds of compile time
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            dst[i, j] = src[i, j]


@njit(cache=True)
def _axpy(y, a, x):
    for i in range(y.size):
        y[i] += a * x[i]


@njit(cache=True)
def _shifted(buf, a, x):
    out = buf.copy()
    if a != 0.0:
        _axpy(out, a, x)
    return out


@njit(cache=True)
def _total(buf, offsets, dims):
    """W_tot = W_K ... W_1."""
    nk = dims.size - 1
    p = _view(buf, offsets, dims, 0).copy()
    for k in range(1, nk):
        p = np.dot(_view(buf, offsets, dims, k), p)
    return p


@njit(cache=True)
def _grad_sigma(buf, offsets, dims, sigma31, sigma11, whitened):
    """Descent direction (eq 13) for every layer, packed like buf."""
    nk = dims.size - 1
    n1 = dims[0]
    total = 0
    for k in range(nk):
        total += dims[k + 1] * n1
    prefix = np.empty(total)  # P_k = W_k ... W_1, k = 1..K, each (n[k+1], n1)
    poff = np.empty(nk, dtype=np.int64)
    pos = 0
    for k in range(nk):
        poff[k] = pos
        w = _view(buf, offsets, dims, k)
        dst = prefix[pos:pos + dims[k + 1] * n1].reshape(dims[k + 1], n1)
        if k == 0:
            _copy2d(w, dst)
        else:
            prev = prefix[poff[k - 1]:poff[k - 1] + dims[k] * n1].reshape(dims[k], n1)
            np.dot(w, prev, dst)
        pos += dims[k + 1] * n1
    wtot = prefix[poff[nk - 1]:poff[nk - 1] + dims[nk] * n1].reshape(dims[nk], n1)
    if whitened:
        g = sigma31 - wtot
    else:
        g = sigma31 - np.dot(wtot, sigma11)
    out = np.empty_like(buf)
    for k in range(nk - 1, -1, -1):
        dst = out[offsets[k]:offsets[k] + dims[k + 1] * dims[k]].reshape(dims[k + 1], dims[k])
        if k == 0:
            _copy2d(g, dst)
        else:
            prev = prefix[poff[k - 1]:poff[k - 1] + dims[k] * n1].reshape(dims[k], n1)
            np.dot(g, prev.T, dst)
            g = np.dot(_view(buf, offsets, dims, k).T, g)
    return out


@njit(cache=True)
def _act(h, code):
    if code == 1:
        return np.tanh(h)
    return h.copy()


@njit(cache=True)
def _grad_data(buf, offsets, dims, x, y, act_code):
    """Descent direction of (1/2) sum_mu ||y - f(x)||^2 for f = W_K phi(... phi(W_1 x))."""
    nk = dims.size - 1
    acts = []  # acts[k] = input of layer k (k = 0..K-1)
    acts.append(x)
    a = x
    for k in range(nk - 1):
        a = _act(np.dot(_view(buf, offsets, dims, k), a), act_code)
        acts.append(a)
    yhat = np.dot(_view(buf, offsets, dims, nk - 1), a)
    delta = y - yhat
    out = np.empty_like(buf)
    for k in range(nk - 1, -1, -1):
        dst = out[offsets[k]:offsets[k] + dims[k + 1] * dims[k]].reshape(dims[k + 1], dims[k])
        np.dot(delta, acts[k].T, dst)
        if k > 0:
            back = np.dot(_view(buf, offsets, dims, k).T, delta)
            if act_code == 1:
                ak = acts[k]
                back = back * (1.0 - ak * ak)
            delta = back
    return out


@njit(cache=True)
def _output(buf, offsets, dims, x, act_code):
    nk = dims.size - 1
    a = x
    for k in range(nk - 1):
        a = _act(np.dot(_view(buf, offsets, dims, k), a), act_code)
    return np.dot(_view(buf, offsets, dims, nk - 1), a)


@njit(cache=True)
def _record(m, diag_out, i):
    off = 0.0
    r = diag_out.shape[1]
    for p in range(m.shape[0]):
        for q in range(m.shape[1]):
            if p == q and p < r:
                diag_out[i, p] = m[p, q]
            else:
                off += m[p, q] * m[p, q]
    return np.sqrt(off)


@njit(cache=True)
def _step(buf, h, rk4, offsets, dims, use_data, sigma31, sigma11, whitened, x, y, act_code):
    """One Euler (rk4=False) or RK4 step of size h of dW/dt = descent(W), in place; the descent direction is
    that of the correlations (sigma31, sigma11) or, with use_data, of the examples (x, y)."""
    n_stages = 4 if rk4 else 1
    acc = np.zeros_like(buf)
    k = np.zeros_like(buf)
    for stage in range(n_stages):  # one call site keeps the compiled code small
        shift = 0.0 if stage == 0 else (h if stage == 3 else 0.5 * h)
        w = _shifted(buf, shift, k)
        if use_data:
            k = _grad_data(w, offsets, dims, x, y, act_code)
        else:
            k = _grad_sigma(w, offsets, dims, sigma31, sigma11, whitened)
        _axpy(acc, 1.0 if stage == 0 or stage == 3 else 2.0, k)
    _axpy(buf, h / 6.0 if rk4 else h, acc)


@njit(cache=True)
def run_sigma(buf, offsets, dims, sigma31, sigma11, whitened, lr, n_steps, rk4, dt,
              record_every, ut, v, c33, diag_out, off_out, loss_out):
    """Integrate n_steps Euler (rk4=False: plain GD, dt = 1 is eq 1/13) or RK4 steps of
    dW/dt = lr * descent(W) on correlations, t in iterations; every record_every steps record
    M = U^T W_tot Sigma11 V (diagonal and off-diagonal norm) and the loss
    c33 - 2 tr(W_tot Sigma31^T) + tr(W_tot Sigma11 W_tot^T)."""
    i_rec = 0
    h = lr * dt
    for step in range(n_steps + 1):
        if step % record_every == 0:
            wt = _total(buf, offsets, dims)
            s31 = wt if whitened else np.dot(wt, sigma11)
            loss_out[i_rec] = c33 - 2.0 * np.sum(wt * sigma31) + np.sum(s31 * wt)
            off_out[i_rec] = _record(np.dot(ut, np.dot(s31, v)), diag_out, i_rec)
            i_rec += 1
        if step == n_steps:
            break
        _step(buf, h, rk4, offsets, dims, False, sigma31, sigma11, whitened, sigma31, sigma31, 0)
    return buf


@njit(cache=True)
def run_data(buf, offsets, dims, x, xt, y, act_code, lr, n_steps, rk4, dt, record_every, ut, v,
             diag_out, off_out, loss_out):
    """As run_sigma for a net trained on examples (x, y); records M = U^T (yhat x^T) V and
    sum_mu ||y - yhat||^2."""
    i_rec = 0
    h = lr * dt
    for step in range(n_steps + 1):
        if step % record_every == 0:
            yhat = _output(buf, offsets, dims, x, act_code)
            r = y - yhat
            loss_out[i_rec] = np.sum(r * r)
            off_out[i_rec] = _record(np.dot(ut, np.dot(np.dot(yhat, xt), v)), diag_out, i_rec)
            i_rec += 1
        if step == n_steps:
            break
        _step(buf, h, rk4, offsets, dims, True, x, x, False, x, y, act_code)
    return buf


@njit(cache=True)
def mode_gd(a0, b0, s, lr, n_steps):
    """Discrete gradient descent on E(a, b) = (s - ab)^2 / 2 (eq 9 with tau = 1/lr)."""
    a_out = np.empty(n_steps + 1)
    b_out = np.empty(n_steps + 1)
    a = a0
    b = b0
    a_out[0] = a
    b_out[0] = b
    for i in range(n_steps):
        e = s - a * b
        a, b = a + lr * b * e, b + lr * a * e
        a_out[i + 1] = a
        b_out[i + 1] = b
    return a_out, b_out
