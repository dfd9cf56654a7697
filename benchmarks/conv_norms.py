"""Certified spectral norms of convolutions: the frequency-domain bound against the Schur bound it replaces,
power-iteration lower bounds and (small cases) the dense matrix's norm; then the naive Lipschitz bound of a
small MNIST-shaped CNN before and after.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/conv_norms.py [--seed 0]

Random He-scaled kernels (N(0, 2 / (C_in k^2))).  "before" is ``Conv2d.schur_norm_bound`` (the bound
``norm_bound(2)`` returned until now), "bound" is ``norm_bound(2)`` (the smaller of the two), "lower" the
proven power-iteration lower bound (100 iterations), "dense" ``np.linalg.norm(as_matrix(), 2)`` when the
matrix has at most 4e6 entries.  Times are wall seconds of one call on a fresh layer (cached afterwards).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from verification.activations import ReLU
from verification.layers import Conv2d, Dense
from verification.lipschitz import lipschitz
from verification.network import Network


def _layer(rng, c_in, c_out, shape, k=3, stride=1, mode="zeros", dil=1) -> Conv2d:
    w = rng.normal(size=(c_out, c_in, k, k)) * np.sqrt(2.0 / (c_in * k * k))
    p = dil * (k - 1) // 2
    return Conv2d(w, rng.normal(size=c_out) * 0.1, shape, stride, dil, 1, (p, p, p, p), mode)


def _timed(f):
    t = time.perf_counter()
    v = f()
    return v, time.perf_counter() - t


def layer_table(seed: int) -> None:
    rng = np.random.default_rng(seed)
    cases = [
        ("small 3x8x8 -> 8 k3", dict(c_in=3, c_out=8, shape=(3, 8, 8))),
        ("small 3x8x8 -> 8 k3 circular", dict(c_in=3, c_out=8, shape=(3, 8, 8), mode="circular")),
        ("small 3x8x8 -> 8 k3 reflect", dict(c_in=3, c_out=8, shape=(3, 8, 8), mode="reflect")),
        ("small 8x8x8 -> 16 k3 s2", dict(c_in=8, c_out=16, shape=(8, 8, 8), stride=2)),
        ("small 4x12x12 -> 4 k3 d2", dict(c_in=4, c_out=4, shape=(4, 12, 12), dil=2)),
        ("MNIST 1x28x28 -> 16 k3", dict(c_in=1, c_out=16, shape=(1, 28, 28))),
        ("MNIST 16x28x28 -> 32 k3 s2", dict(c_in=16, c_out=32, shape=(16, 28, 28), stride=2)),
        ("CIFAR 3x32x32 -> 32 k3", dict(c_in=3, c_out=32, shape=(3, 32, 32))),
        ("CIFAR 32x32x32 -> 64 k3 s2", dict(c_in=32, c_out=64, shape=(32, 32, 32), stride=2)),
        ("CIFAR 32x32x32 -> 64 k3 s2 circular", dict(c_in=32, c_out=64, shape=(32, 32, 32), stride=2,
                                                      mode="circular")),
    ]
    head = f"{'layer':38s} {'bound':>9s} {'lower':>9s} {'dense':>9s} {'before':>9s} {'before/bound':>12s} " \
           f"{'bound/lower':>11s} {'t_bound':>8s} {'t_lower':>8s} {'t_before':>8s}"
    print(head)
    for name, kw in cases:
        layer = _layer(rng, **kw)
        before, t_before = _timed(lambda: layer.schur_norm_bound)
        bound, t_bound = _timed(lambda: layer.norm_bound(2))
        lower, t_lower = _timed(lambda: layer.norm_lower(100))
        dense = np.linalg.norm(layer.as_matrix(), 2) if layer.in_features * layer.out_features <= 4e6 else np.nan
        assert lower <= bound and (np.isnan(dense) or dense <= bound)
        print(f"{name:38s} {bound:9.5f} {lower:9.5f} {dense:9.5f} {before:9.5f} {before / bound:12.3f} "
              f"{bound / lower:11.6f} {t_bound:8.3f} {t_lower:8.3f} {t_before:8.3f}")


def cnn_table(seed: int) -> None:
    rng = np.random.default_rng(seed)
    l1 = _layer(rng, 1, 16, (1, 28, 28))
    l2 = _layer(rng, 16, 32, l1.output_shape, stride=2)
    l3 = Dense(rng.normal(size=(10, l2.out_features)) * np.sqrt(1.0 / l2.out_features), np.zeros(10))
    net = Network((l1, ReLU(), l2, ReLU(), l3))
    before = l1.schur_norm_bound * l2.schur_norm_bound * l3.norm_bound(2)
    naive, t_naive = _timed(lambda: lipschitz(net, "naive", 2))
    auto, t_auto = _timed(lambda: lipschitz(net, "auto", 2))
    low, t_low = _timed(lambda: lipschitz(net, "sampled", 2, n_points=500, n_refine=10))
    print(f"\nCNN 1x28x28 conv16 k3 relu conv32 k3 s2 relu dense10 ({net.in_dim} inputs)")
    print(f"  naive before (Schur conv norms): {before:.4f}")
    print(f"  naive now:  {naive.value:.4f}  ({before / naive.value:.2f}x tighter, {t_naive:.2f} s, layer norms "
          f"{[round(float(v), 4) for v in naive.details['layer_norms']]})")
    print(f"  auto:       {auto.value:.4f}  method {auto.method} ({t_auto:.2f} s; tried "
          f"{[t['method'] for t in auto.details.get('auto_tried', [])]})")
    print(f"  sampled lower bound: {low.value:.4f} ({t_low:.2f} s); naive / sampled = {naive.value / low.value:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    layer_table(args.seed)
    cnn_table(args.seed)


if __name__ == "__main__":
    main()
