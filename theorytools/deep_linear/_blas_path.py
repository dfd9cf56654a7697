"""NumPy (BLAS-bound) twin of ``_kernels.run_sigma`` for large nets.

When one iteration costs tens of millions of multiply-adds the Python overhead per iteration is
negligible and calling NumPy's BLAS directly is faster than the compiled loop (measured ~2x for
1000-wide layers on this machine, see docs/benchmarks_deep_linear.md). Same update, same records.
"""

from __future__ import annotations

import numpy as np


def _views(buf, offsets, dims):
    return [buf[o:o + dims[k + 1] * dims[k]].reshape(dims[k + 1], dims[k])
            for k, o in enumerate(offsets)]


def _grad(buf, offsets, dims, sigma31, sigma11, whitened):
    ws = _views(buf, offsets, dims)
    prefix = [ws[0]]
    for w in ws[1:]:
        prefix.append(w @ prefix[-1])
    g = sigma31 - (prefix[-1] if whitened else prefix[-1] @ sigma11)
    out = np.empty_like(buf)
    grads = _views(out, offsets, dims)
    for k in range(len(ws) - 1, -1, -1):
        if k == 0:
            grads[0][...] = g
        else:
            np.matmul(g, prefix[k - 1].T, out=grads[k])
            g = ws[k].T @ g
    return out


def run_sigma(buf, offsets, dims, sigma31, sigma11, whitened, lr, n_steps, rk4, dt,
              record_every, ut, v, c33, diag_out, off_out, loss_out):
    """Same contract as :func:`theorytools.deep_linear._kernels.run_sigma`."""
    h = lr * dt
    r = diag_out.shape[1]
    i_rec = 0
    for step in range(n_steps + 1):
        if step % record_every == 0:
            ws = _views(buf, offsets, dims)
            wt = ws[0]
            for w in ws[1:]:
                wt = w @ wt
            s31 = wt if whitened else wt @ sigma11
            loss_out[i_rec] = c33 - 2.0 * np.sum(wt * sigma31) + np.sum(s31 * wt)
            m = ut @ (s31 @ v)
            d = np.diagonal(m)[:r].copy()
            diag_out[i_rec, : d.size] = d
            off_out[i_rec] = np.sqrt(max(np.sum(m * m) - np.sum(d * d), 0.0))
            i_rec += 1
        if step == n_steps:
            break
        if not rk4:
            buf += h * _grad(buf, offsets, dims, sigma31, sigma11, whitened)
            continue
        k1 = _grad(buf, offsets, dims, sigma31, sigma11, whitened)
        k2 = _grad(buf + 0.5 * h * k1, offsets, dims, sigma31, sigma11, whitened)
        k3 = _grad(buf + 0.5 * h * k2, offsets, dims, sigma31, sigma11, whitened)
        k4 = _grad(buf + h * k3, offsets, dims, sigma31, sigma11, whitened)
        buf += (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    return buf
