"""Benchmark: full-matrix gradient descent of deep linear nets, theorytools vs anchors.

Anchors (the ways people usually run these simulations): a plain NumPy loop over the batch rule
(eq 1 / eq 13 of Saxe et al.) and PyTorch autograd with torch.optim.SGD on (1/2) sum ||y - yhat||^2
(float64, CPU). All three start from the same weights; the script prints wall-clock times, the
ratios anchor / theorytools and the max abs difference of the final end-to-end maps.

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/deep_linear.py   (a few minutes on 2 cores)
Each timing is the best of two runs; theorytools records mode strengths only at the start and the
end (record_every = n_steps), so all three do the same work.
"""

from __future__ import annotations

import os
import time

import numpy as np

import theorytools.deep_linear as dl


def numpy_gd(weights, sigma31, lr, n_steps):
    ws = [w.copy() for w in weights]
    for _ in range(n_steps):
        prefix = [ws[0]]
        for w in ws[1:]:
            prefix.append(w @ prefix[-1])
        g = sigma31 - prefix[-1]
        grads = [None] * len(ws)
        for k in range(len(ws) - 1, -1, -1):
            grads[k] = g if k == 0 else g @ prefix[k - 1].T
            if k > 0:
                g = ws[k].T @ g
        for w, d in zip(ws, grads):
            w += lr * d
    return ws


def torch_gd(weights, sigma31, lr, n_steps):
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    ws = [torch.tensor(w, dtype=torch.float64, requires_grad=True) for w in weights]
    target = torch.tensor(sigma31, dtype=torch.float64)
    opt = torch.optim.SGD(ws, lr=lr)
    for _ in range(n_steps):
        opt.zero_grad()
        tot = ws[0]
        for w in ws[1:]:
            tot = w @ tot
        # whitened inputs: (1/2) sum_mu ||y - W x||^2 = (1/2) ||Sigma31 - W||_F^2 + const
        loss = 0.5 * ((target - tot) ** 2).sum()
        loss.backward()
        opt.step()
    return [w.detach().numpy() for w in ws]


def total(ws):
    t = ws[0]
    for w in ws[1:]:
        t = w @ t
    return t


def case(name, sigma31, hidden, lr, n_steps, scale):
    rng = np.random.default_rng(0)
    dims = [sigma31.shape[1], *hidden, sigma31.shape[0]]
    init = dl.random_init(dims, "gaussian", scale, rng)
    dl.simulate_linear(sigma31, hidden, lr=lr, n_steps=1, init=init)  # compile / load cache

    def best_of_two(fn):
        times, out = [], None
        for _ in range(2):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
        return min(times), out

    t_ours, ours = best_of_two(lambda: dl.simulate_linear(
        sigma31, hidden, lr=lr, n_steps=n_steps, init=init, record_every=n_steps))
    t_np, ref_np = best_of_two(lambda: numpy_gd(init, sigma31, lr, n_steps))
    t_t, ref_t = best_of_two(lambda: torch_gd(init, sigma31, lr, n_steps))
    w = total(ours.weights)
    print(f"\n{name}: widths {dims}, {n_steps} iterations, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print(f"  theorytools {t_ours:7.2f} s (of which training loop + 2 records "
          f"{ours.seconds:.2f} s; the rest is the SVD of Sigma31 and setup)")
    print(f"  theorytools {t_ours:7.2f} s | numpy loop {t_np:7.2f} s (ratio {t_np / t_ours:5.2f}) "
          f"| torch SGD {t_t:7.2f} s (ratio {t_t / t_ours:5.2f})")
    print(f"  max |W_ours - W_numpy| = {np.abs(w - total(ref_np)).max():.1e}, "
          f"max |W_ours - W_torch| = {np.abs(w - total(ref_t)).max():.1e}, "
          f"max |W| = {np.abs(w).max():.2f}")


def main():
    data = dl.hierarchical_dataset(n_levels=5, n_features=1000, flip_prob=0.1, rng=0)
    case("Fig 3 setting (32 items -> 32 hidden -> 1000 features)", data.sigma31, [32],
         lr=0.5e-3, n_steps=1500, scale=np.sqrt(2e-6))
    rng = np.random.default_rng(1)
    sig = rng.standard_normal((10, 784)) * 3.0
    case("Fig 4-like deep net (784 -> 1000 -> 1000 -> 10)", sig, [1000, 1000], lr=1e-3,
         n_steps=20, scale=1.0)
    sig = rng.standard_normal((1000, 1000)) / np.sqrt(1000) * 3.0
    case("square 1000-wide three-layer net (1000 -> 1000 -> 1000)", sig, [1000], lr=1e-2,
         n_steps=10, scale=1.0)


if __name__ == "__main__":
    main()
