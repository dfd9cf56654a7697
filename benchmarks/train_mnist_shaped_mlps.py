"""Train the deep MNIST-shaped MLPs used by ``benchmarks/lipschitz_sdp.py`` (deterministic, CPU, ~1 min).

MNIST itself cannot be downloaded on the build machines, so the data set is *synthetic with the MNIST shape*:
10 classes, 784 = 28x28 inputs in [0, 1]; each class is a fixed random smooth 28x28 template (sum of 6 Gaussian
blobs, seed 0) and a sample is its template, randomly shifted by up to 2 pixels, plus N(0, 0.1²) noise, clipped.
The nets are 784 -> 64 -> ... -> 64 -> 10 ReLU MLPs with ``depth`` weight matrices (depth 8/16/32/64, width 64,
as in Pauli et al.'s GLipSDP scalability study), He-initialised (zero biases) and trained with Adam (lr 3e-4,
600 steps, batch 128, ``torch.manual_seed(depth)``); train accuracy 1.000 / 1.000 / 1.000 / 0.998 at depth
8 / 16 / 32 / 64 with default threads (1.000 at depth 64 with one thread) (with torch's default init, depths 32 and 64 stayed at chance).  Weights are saved as ``mlp_depth{d}.npz`` (``W0, W1, ...`` as (out, in) and
``b0, ...``) in the output directory (default /tmp/lipsdp_mnist_mlps).

Reproducibility: one torch thread and deterministic kernels make a retrain bit-identical on the same
machine (checked: two retrains of depth 64 gave identical .npz files); across CPUs with different BLAS kernels
it may differ in the last bits, which a 64-layer net amplifies.

Usage: ``.venv/bin/python benchmarks/train_mnist_shaped_mlps.py [--out DIR] [--depths 8 16 32 64]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def make_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:28, 0:28]
    templates = np.zeros((10, 28, 28))
    for c in range(10):
        for _ in range(6):
            cy, cx = rng.uniform(6, 22, size=2)
            s = rng.uniform(1.5, 4.0)
            templates[c] += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
        templates[c] /= templates[c].max()
    rs = np.random.default_rng(seed)
    labels = rs.integers(0, 10, size=n)
    x = np.empty((n, 28, 28))
    for i, c in enumerate(labels):
        dy, dx = rs.integers(-2, 3, size=2)
        x[i] = np.roll(np.roll(templates[c], dy, axis=0), dx, axis=1)
    x = np.clip(x + 0.1 * rs.standard_normal(x.shape), 0.0, 1.0)
    return x.reshape(n, 784), labels


def train(depth: int, x: np.ndarray, y: np.ndarray, width: int = 64, steps: int = 600, lr: float = 3e-4) -> list:
    import torch

    # Bit-reproducible on one machine: one intra-op thread (a multi-threaded reduction may split sums
    # differently from run to run, and a 64-layer net amplifies the last bit: two default-thread retrains gave
    # Lipschitz bounds 3.466e17 and 3.682e17), deterministic kernels, fixed seeds.  Across CPUs whose BLAS
    # kernels differ (e.g. AVX2 vs AVX-512) the float64 sums may still round differently.
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(depth)
    dims = [784] + [width] * (depth - 1) + [10]
    layers = []
    for i in range(depth):
        layers.append(torch.nn.Linear(dims[i], dims[i + 1]))
        if i < depth - 1:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).double()
    # He (Kaiming-normal, fan_in) initialisation with zero biases: with torch's default init (variance
    # 1/(3 fan_in)) the signal of a 32- or 64-layer ReLU MLP vanishes and the nets stay at chance.
    for m in model:
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            torch.nn.init.zeros_(m.bias)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    xt, yt = torch.tensor(x), torch.tensor(y)
    g = torch.Generator().manual_seed(depth)
    for step in range(steps):
        idx = torch.randint(0, len(xt), (128,), generator=g)
        loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        acc = (model(xt).argmax(1) == yt).double().mean().item()
    lin = [m for m in model if isinstance(m, torch.nn.Linear)]
    return [(m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy()) for m in lin], acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/tmp/lipsdp_mnist_mlps")
    ap.add_argument("--depths", type=int, nargs="+", default=[8, 16, 32, 64])
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    x, y = make_data(4000, seed=1)
    for d in args.depths:
        params, acc = train(d, x, y)
        arrays = {f"W{i}": w for i, (w, _) in enumerate(params)}
        arrays.update({f"b{i}": b for i, (_, b) in enumerate(params)})
        np.savez(out / f"mlp_depth{d}.npz", **arrays)
        print(f"depth {d}: train accuracy {acc:.3f} -> {out / f'mlp_depth{d}.npz'}", flush=True)


if __name__ == "__main__":
    main()
