"""lipsdp-conv (LipSDP-Neuron with channel-wise multipliers, per frequency) on MNIST- and CIFAR-shaped CNNs,
against the naive product, ECLipsE-Fast and LipSDP-Neuron on the dense lowering (where they run), and the sampled
lower bound.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/lipsdp_conv.py [--seed 0] [--only mnist]

Random weights N(0, 1 / fan_in), zero padding 1, 3x3 kernels, stride 2:
MNIST-shaped 1x28x28 -> conv 16 -> relu -> conv 32 -> relu -> dense 100 -> relu -> dense 10;
CIFAR-shaped 3x32x32 -> conv 32 -> relu -> conv 64 -> relu -> dense 100 -> relu -> dense 10.
Every value is a certified upper bound except ``sampled`` (a proven lower bound).  Wall seconds on a shared
machine; ``uptime`` is printed first.
"""

from __future__ import annotations

import argparse
import subprocess
import time

import numpy as np

from verification.activations import ReLU
from verification.errors import UnsupportedLayerError
from verification.layers import Conv2d, Dense
from verification.lipschitz import lipschitz
from verification.lipschitz.registry import _lmi_rows
from verification.network import Network


def cnn(rng, shape, c1, c2, hidden=100, out=10) -> Network:
    a = Conv2d(rng.normal(size=(c1, shape[0], 3, 3)) / np.sqrt(9 * shape[0]), None, shape, stride=2, pads=(1, 1, 1, 1))
    b = Conv2d(rng.normal(size=(c2, c1, 3, 3)) / np.sqrt(9 * c1), None, a.output_shape, stride=2, pads=(1, 1, 1, 1))
    d1 = Dense(rng.normal(size=(hidden, b.out_features)) / np.sqrt(b.out_features))
    d2 = Dense(rng.normal(size=(out, hidden)) / np.sqrt(hidden))
    return Network((a, ReLU(), b, ReLU(), d1, ReLU(), d2))


def run(name: str, net: Network, limit: float) -> None:
    print(f"\n== {name}: {net.describe()}")
    rows = []
    for method, opts in [("naive", {}), ("lipsdp-conv", {"time_limit": limit}), ("eclipse-fast", {}), ("sampled", {})]:
        t = time.perf_counter()
        try:
            res = lipschitz(net, method, **opts)
        except (UnsupportedLayerError, MemoryError) as exc:
            rows.append((method, None, time.perf_counter() - t, " ".join(str(exc).split())[:120]))
            continue
        extra = ""
        if method == "lipsdp-conv":
            d = res.details
            extra = (f"conv part {d['conv_bound']:.5g} (grid {d['grid']}, {d['frequencies']} frequencies x "
                     f"{d['lmi_size']} rows, {d['newton_steps']} Newton steps, {d['solver_status']}, "
                     f"certificate {d['certificate']['seconds']:.2f} s); head {d['head']['value']:.5g} by "
                     f"{d['head']['by']}")
        rows.append((method, res.value, time.perf_counter() - t, extra))
    rows.append(("lipsdp-neuron (dense)", None, 0.0,
                 f"not run: the dense LMI has {_lmi_rows(net.canonical())} rows (auto cap 2100)"))
    naive = rows[0][1]
    for method, value, sec, extra in rows:
        v = "-" if value is None else f"{value:.6g}"
        ratio = "" if value is None else f"{value / naive:.3f}"
        print(f"{method:24s} {v:>10s}  {ratio:>6s}  {sec:8.1f} s  {extra}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=["mnist", "cifar"])
    ap.add_argument("--time-limit", type=float, default=900.0, help="lipsdp-conv time limit (s)")
    args = ap.parse_args()
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    rng = np.random.default_rng(args.seed)
    nets = {"mnist": cnn(rng, (1, 28, 28), 16, 32), "cifar": cnn(rng, (3, 32, 32), 32, 64)}
    for name, net in nets.items():
        if args.only in (None, name):
            run(name, net, args.time_limit)


if __name__ == "__main__":
    main()
