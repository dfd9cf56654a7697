"""BLAS threads of the Lipschitz solvers on a shared machine: VERIFICATION_BLAS_THREADS=1 (the default) vs 2.

    .venv/bin/python benchmarks/threads.py [--reps 2]

Runs LipSDP-Neuron (our interior-point method) on random ReLU MLPs, alternating the two settings (interleaved,
so both see the same load), and prints the wall time of each run, the certified value (must be equal) and the
1-minute load average before each run.  Run it once on an idle machine and once with other jobs on the cores.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from verification import lipschitz
from verification.activations import ReLU
from verification.network import Dense, Network


def mlp(dims: list[int], seed: int = 0) -> Network:
    rng = np.random.default_rng(seed)
    layers = []
    for i in range(len(dims) - 1):
        layers.append(Dense(rng.standard_normal((dims[i + 1], dims[i])) / np.sqrt(dims[i]), np.zeros(dims[i + 1])))
        if i < len(dims) - 2:
            layers.append(ReLU())
    return Network(layers)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args()
    cases = {"10-80-80-80-5": mlp([10, 80, 80, 80, 5]), "32-64x12-10": mlp([32] + [64] * 12 + [10])}
    lipschitz(cases["10-80-80-80-5"], method="lipsdp-neuron")  # compiled kernels, imports
    print(f"{'net':14s} {'threads':>7s} {'seconds':>8s} {'value':>12s} {'load':>5s}")
    ratios = {}
    for name, net in cases.items():
        times = {"1": [], "2": []}
        for _ in range(args.reps):
            for threads in ("2", "1"):
                os.environ["VERIFICATION_BLAS_THREADS"] = threads
                load = os.getloadavg()[0]
                t = time.perf_counter()
                res = lipschitz(net, method="lipsdp-neuron")
                dt = time.perf_counter() - t
                times[threads].append(dt)
                print(f"{name:14s} {threads:>7s} {dt:8.2f} {res.value:12.8g} {load:5.2f}", flush=True)
        ratios[name] = np.median(times["2"]) / np.median(times["1"])
    for name, r in ratios.items():
        print(f"{name}: median time with 2 threads / with 1 thread = {r:.2f}")


if __name__ == "__main__":
    main()
