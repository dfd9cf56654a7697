"""Thread counts of the hot paths outside the Lipschitz solvers: 1 thread vs 2, interleaved, load recorded.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/threads_hotpaths.py [--reps 5]
        [--spin K]

Hot paths and the pools they use:

* ``ntk-tiny``: analytic NNGP/NTK of a 3-layer ReLU net on 4 inputs (the docs example): numba ``parallel``
  kernels on tiny arrays (thread start-up and hand-over only);
* ``ntk-dense``: the same kind of net, 5 hidden layers, on 1000 x 100 inputs (``benchmarks/ntk.py``'s case):
  numba ``parallel`` kernels on 10^6 entries;
* ``cntk``: CNTK / CNN-GP of a 2-conv ReLU net with global average pooling on 8 MNIST-sized images (28 x 28,
  full covariance): numba ``parallel`` convolution kernels;
* ``crown``: ``output_bounds(..., "crown")`` of a 784-256x4-10 ReLU net on an eps = 0.03 box: numpy BLAS;
* ``alpha``: the same with ``"alpha-crown"``: numpy BLAS, many small products.

Each case runs with 1 thread, with 2 (``--threads``) and with the toolkit's default choice, in rotation so all
three see the same load.  A fixed count is set for numba (``THEORYTOOLS_NUM_THREADS``, which the NTK kernels
read per call) and for numpy's BLAS (``VERIFICATION_BLAS_THREADS``, which the bound entry points apply on
large nets, and threadpoolctl around the call); "default" unsets both (numba's kernels then choose per call
from the work and the load average; the bound entry points use one BLAS thread on large nets).  The results of
the settings must agree (max relative difference printed).  ``--spin K`` starts K busy processes for the run
(a loaded machine).  Start the script with ``OMP_NUM_THREADS`` unset, so that 2 threads are possible.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import time

import numpy as np


def _spin() -> None:  # pragma: no cover - a busy process
    while True:
        pass


def _cases():
    from theorytools import ntk
    from verification import Dense, Network
    from verification.activations import ReLU
    from verification.bounds import output_bounds

    rng = np.random.default_rng(0)
    x_tiny = np.array([[1, 0, 0], [0.6, 0.8, 0], [0, 1, 1], [-1, 0.5, 2]], float)
    tiny = ntk.serial(ntk.Dense(512, W_std=1.5, b_std=0.05), ntk.Relu(), ntk.Dense(512, W_std=1.5, b_std=0.05),
                      ntk.Relu(), ntk.Dense(1, W_std=1.5, b_std=0.05))
    x_dense = rng.standard_normal((1000, 100))
    dense = ntk.serial(*[m for _ in range(5) for m in (ntk.Dense(512, W_std=1.5, b_std=0.05), ntk.Relu())],
                       ntk.Dense(1, W_std=1.5, b_std=0.05))
    imgs = rng.standard_normal((8, 1, 28, 28))  # (n, C, H, W)
    conv = lambda: ntk.Conv(filter_shape=(3, 3), padding="SAME", W_std=2 ** 0.5, b_std=0.1)  # noqa: E731
    cnn = ntk.serial(conv(), ntk.Relu(), conv(), ntk.Relu(), ntk.GlobalAvgPool(), ntk.Dense(1))
    dims = [784, 256, 256, 256, 256, 10]
    layers = []
    for i in range(len(dims) - 1):
        layers.append(Dense(rng.standard_normal((dims[i + 1], dims[i])) / np.sqrt(dims[i]), np.zeros(dims[i + 1])))
        if i < len(dims) - 2:
            layers.append(ReLU())
    net = Network(tuple(layers))
    c = rng.uniform(0, 1, 784)
    lo, hi = np.clip(c - 0.03, 0, 1), np.clip(c + 0.03, 0, 1)
    return {
        "ntk-tiny": lambda: tiny(x_tiny).ntk,
        "ntk-dense": lambda: dense(x_dense).ntk,
        "cntk": lambda: cnn(imgs).ntk,
        "crown": lambda: output_bounds(net, lo, hi, "crown").lower,
        "alpha": lambda: output_bounds(net, lo, hi, "alpha-crown").lower,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--spin", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()
    import numba
    from threadpoolctl import threadpool_limits

    spinners = [mp.Process(target=_spin, daemon=True) for _ in range(args.spin)]
    for p in spinners:
        p.start()
    try:
        cases = _cases()
        if args.only:
            cases = {k: v for k, v in cases.items() if k in args.only}
        settings = (1, args.threads, "default")
        loads = [os.getloadavg()[0]]

        def run(fn, n):
            if n == "default":
                os.environ.pop("THEORYTOOLS_NUM_THREADS", None)
                os.environ.pop("VERIFICATION_BLAS_THREADS", None)
                numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
                with threadpool_limits(os.cpu_count(), user_api="blas"):
                    return fn()
            os.environ["THEORYTOOLS_NUM_THREADS"] = os.environ["VERIFICATION_BLAS_THREADS"] = str(n)
            numba.set_num_threads(n)
            with threadpool_limits(n, user_api="blas"):
                return fn()

        for name, fn in cases.items():
            for n in settings:  # warm-up: numba compile / cache load, BLAS pools
                run(fn, n)
            times = {n: [] for n in settings}
            ref = {}
            for _ in range(args.reps):
                for n in settings:
                    t = time.perf_counter()
                    out = np.asarray(run(fn, n), dtype=float)
                    times[n].append(time.perf_counter() - t)
                    ref.setdefault(n, out)
            scale = np.maximum(np.abs(ref[1]), 1e-300)
            agree = max(float(np.max(np.abs(ref[1] - ref[n]) / scale)) for n in settings)
            loads.append(os.getloadavg()[0])
            m = {n: statistics.median(times[n]) for n in settings}
            print(f"{name:10s} 1 thread {m[1] * 1e3:9.2f} ms   {args.threads} threads {m[args.threads] * 1e3:9.2f} ms"
                  f"   default {m['default'] * 1e3:9.2f} ms   {args.threads}/1 {m[args.threads] / m[1]:6.2f}   "
                  f"default/1 {m['default'] / m[1]:5.2f}   max rel diff {agree:.1e}   load {loads[-1]:.2f}", flush=True)
        print(f"load average (1 min) {min(loads):.2f}-{max(loads):.2f} with {args.spin} busy processes on "
              f"{os.cpu_count()} cores; median of {args.reps} interleaved runs")
    finally:
        for p in spinners:
            p.terminate()


if __name__ == "__main__":
    main()
