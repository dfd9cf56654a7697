"""Benchmark: CNN-GP / CNTK kernels of theorytools.ntk, side by side with neural-tangents 0.6.5.

Architectures (NTK parameterisation, float64, ``kernel_fn(x, None, get=('nngp', 'ntk'))``):

* ``flatten``: [Conv(3×3, SAME, W_std √2) → Relu] × depth → Flatten → Dense (diagonal mode: P numbers per
  image pair; neural-tangents is given ``diagonal_spatial=True`` via its own choice for Flatten readouts);
* ``gap``:     [Conv(3×3, SAME, W_std √2) → Relu] × depth → GlobalAvgPool → Dense (full mode: P² per pair).

Sizes: 8×8 inputs (scikit-learn digits shape), 28×28 inputs (MNIST shape), 1 channel, and 32×32×3 inputs
(CIFAR shape), random N(0, 1) pixels.  Peak memory: ours, the peak resident set size during one extra
(untimed) kernel call minus the resident size before it, sampled from /proc/self/statm every 5 ms (numba's
arrays are not seen by tracemalloc); neural-tangents, the peak RSS of its subprocess (includes the jax
runtime and the inputs).
Both sides are warmed up (numba cache / jax jit on the same shapes) and timed over ``--repeats`` calls
(median).  Our side runs with one BLAS thread (numba uses the machine's cores, as jax does); the load
average of the machine is printed before and after each row.

neural-tangents runs in its own venv (default /tmp/nt-venv: neural-tangents 0.6.5, jax/jaxlib 0.4.30,
see tests/data/ntk/README.md), as a subprocess; inputs and kernels travel through .npy files, and the
maximum difference of the two NTKs between distinct images, relative to max |Θ|, is printed (on identical
images neural-tangents rounds the ReLU angle at correlation 1, ~1e-9; ours is exact there).  Without that venv only our times are printed.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/ntk_cnn.py [--repeats 3] [--quick | --cifar]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import numpy as np

ANCHOR = textwrap.dedent(
    """
    import json, resource, sys, time
    import numpy as onp
    import jax
    jax.config.update("jax_enable_x64", True)
    from neural_tangents import stax
    d, readout, depth, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    x = onp.transpose(onp.load(d + "/x.npy"), (0, 2, 3, 1))
    layers = []
    for _ in range(depth):
        layers += [stax.Conv(1, (3, 3), padding="SAME", W_std=2 ** 0.5, b_std=0.0), stax.Relu()]
    ro = stax.Flatten() if readout == "flatten" else stax.GlobalAvgPool()
    _, _, kernel_fn = stax.serial(*layers, ro, stax.Dense(1, W_std=1.0, b_std=0.0))
    kfn = jax.jit(kernel_fn, static_argnames=("get",))
    t0 = time.perf_counter()
    k = kfn(x, None, get=("nngp", "ntk")); k.ntk.block_until_ready()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        k = kfn(x, None, get=("nngp", "ntk")); k.ntk.block_until_ready()
        times.append(time.perf_counter() - t0)
    onp.save(d + "/ntk.npy", onp.asarray(k.ntk))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"first": first, "times": times, "peak": peak}))
    """
)


def ours(x: np.ndarray, readout: str, depth: int, repeats: int) -> tuple[float, float, np.ndarray, int]:
    from theorytools import ntk

    layers = []
    for _ in range(depth):
        layers += [ntk.Conv(filter_shape=(3, 3), padding="SAME", W_std=2**0.5, b_std=0.0), ntk.Relu()]
    ro = ntk.Flatten() if readout == "flatten" else ntk.GlobalAvgPool()
    net = ntk.serial(*layers, ro, ntk.Dense(W_std=1.0, b_std=0.0))
    t0 = time.perf_counter()
    k = net(x, get=("nngp", "ntk"))
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        k = net(x, get=("nngp", "ntk"))
        times.append(time.perf_counter() - t0)
    ntk_matrix = k.ntk
    del k
    peak = _rss_growth(lambda: net(x, get=("nngp", "ntk")))
    return first, statistics.median(times), ntk_matrix, peak


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _rss_growth(call) -> int:
    """Peak resident set size during call() minus the size before it (bytes), sampled every 5 ms."""
    base = _rss()
    peak = [base]
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.005)

    t = threading.Thread(target=poll, daemon=True)
    t.start()
    try:
        call()
    finally:
        done.set()
        t.join()
    return max(peak[0], _rss()) - base


def anchor(nt_python: str, x: np.ndarray, readout: str, depth: int, repeats: int, timeout: float):
    with tempfile.TemporaryDirectory() as d:
        np.save(os.path.join(d, "x.npy"), x)
        try:
            out = subprocess.run([nt_python, "-c", ANCHOR, d, readout, str(depth), str(repeats)], capture_output=True,
                                 text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, f"timed out after {timeout:.0f} s"
        if out.returncode != 0:
            errs = [ln for ln in out.stderr.splitlines() if "Error" in ln or "Killed" in ln]
            return None, (errs[-1] if errs else f"exit {out.returncode}").strip()
        res = json.loads(out.stdout.strip().splitlines()[-1])
        return (res["first"], statistics.median(res["times"]), np.load(os.path.join(d, "ntk.npy")), res["peak"]), ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--nt-python", default="/tmp/nt-venv/bin/python")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per neural-tangents row")
    ap.add_argument("--quick", action="store_true", help="only the 8x8 rows")
    ap.add_argument("--cifar", action="store_true", help="only the 32x32x3 rows")
    ap.add_argument("--only", type=int, default=None, help="run only row number ONLY (0-based, after filters)")
    args = ap.parse_args()
    have_nt = os.path.exists(args.nt_python)
    rng = np.random.default_rng(0)
    # (side, channels, n images, readout, depth)
    rows = [(8, 1, 500, "flatten", 5), (8, 1, 200, "gap", 3), (8, 1, 500, "gap", 3),
            (28, 1, 200, "flatten", 5), (28, 1, 20, "gap", 3),
            (32, 3, 200, "flatten", 5), (32, 3, 10, "gap", 3), (32, 3, 20, "gap", 3)]
    if args.quick:
        rows = [r for r in rows if r[0] == 8]
    if args.cifar:
        rows = [r for r in rows if r[0] == 32]
    if args.only is not None:
        rows = rows[args.only : args.only + 1]
    print(f"BLAS threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')} "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}; cores {os.cpu_count()}; "
          f"neural-tangents: {'yes (' + args.nt_python + ')' if have_nt else 'not found'}")
    print(f"{'input':>9} {'n':>4} {'readout':>7} {'depth':>5} | {'ours first':>10} {'ours med':>9} {'+rss GB':>7} | "
          f"{'nt first':>9} {'nt med':>8} {'peak GB':>7} | {'ratio':>6} {'off-diag rel':>12} | load before/after")
    for side, chans, n, readout, depth in rows:
        x = rng.standard_normal((n, chans, side, side))
        load0 = os.getloadavg()[0]
        f0, med, k, peak = ours(x, readout, depth, args.repeats)
        nt_txt, ratio, diff = "", "", ""
        if have_nt:
            res, err = anchor(args.nt_python, x, readout, depth, args.repeats, args.timeout)
            if res is None:
                nt_txt = f"{'failed':>9} {'':>8} {'':>7}"
                ratio = err[:90] + (" (SIGKILL: out of memory?)" if err == "exit -9" else "")
            else:
                nf, nmed, kn, npeak = res
                nt_txt = f"{nf:9.2f} {nmed:8.3f} {npeak / 1e9:7.2f}"
                ratio = f"{med / nmed:6.2f}"
                off = ~np.eye(n, dtype=bool)  # identical images: nt's θ = 0 rounding (~1e-9), ours exact
                diff = f"{np.abs(k - kn)[off].max() / np.abs(kn).max():12.1e}"
        load1 = os.getloadavg()[0]
        shape = f"{chans}x{side}x{side}"
        print(f"{shape:>9} {n:>4} {readout:>7} {depth:>5} | {f0:10.2f} {med:9.3f} {peak / 1e9:7.2f} | {nt_txt} | "
              f"{ratio:>6} {diff:>12} | {load0:.1f}/{load1:.1f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
