"""Benchmark: analytic NNGP + NTK of a deep ReLU net, theorytools.ntk vs neural-tangents.

Setup (issue 8; reference notes §E.3): x ~ N(0, 1) of shape 1000×100, 5 hidden Dense(512, W_std 1.5,
b_std 0.05) + Relu layers and a Dense(1) readout, NTK parameterisation, float64, kernel_fn(x, None)
with get=('nngp', 'ntk').  Both sides are warmed up (numba compile / jax jit) and then timed over
``--repeats`` calls; we report the median and the minimum.

The anchor runs in its own venv (default /tmp/nt-venv, pinned as in reference §E.2:
neural-tangents 0.6.5, jax/jaxlib 0.4.30, numpy<2, scipy<1.14, tf2jax<0.3.7, tensorflow-cpu<2.17),
as a subprocess of that venv's python; inputs and kernels travel through .npy files.

    .venv/bin/python benchmarks/ntk.py [--n 1000] [--repeats 7] [--nt-python /tmp/nt-venv/bin/python]
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
import time

import numpy as np

ANCHOR = textwrap.dedent(
    """
    import json, sys, time
    import numpy as onp
    import jax
    jax.config.update("jax_enable_x64", True)
    import neural_tangents as nt
    from neural_tangents import stax
    d, repeats = sys.argv[1], int(sys.argv[2])
    x = onp.load(d + "/x.npy")
    layers = []
    for _ in range(5):
        layers += [stax.Dense(512, W_std=1.5, b_std=0.05), stax.Relu()]
    _, _, kernel_fn = stax.serial(*layers, stax.Dense(1, W_std=1.5, b_std=0.05))
    kfn = jax.jit(kernel_fn, static_argnames=("get",))
    t0 = time.perf_counter()
    k = kfn(x, None, get=("nngp", "ntk"))
    k.ntk.block_until_ready()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        k = kfn(x, None, get=("nngp", "ntk"))
        k.ntk.block_until_ready()
        times.append(time.perf_counter() - t0)
    onp.save(d + "/nngp.npy", onp.asarray(k.nngp))
    onp.save(d + "/ntk.npy", onp.asarray(k.ntk))
    print(json.dumps({"first": first, "times": times, "version": nt.__version__, "jax": jax.__version__}))
    """
)


def run_ours(x: np.ndarray, repeats: int) -> tuple[dict, object]:
    from theorytools import ntk

    layers = []
    for _ in range(5):
        layers += [ntk.Dense(512, W_std=1.5, b_std=0.05), ntk.Relu()]
    net = ntk.serial(*layers, ntk.Dense(1, W_std=1.5, b_std=0.05))
    t0 = time.perf_counter()
    k = net.kernel_fn(x, None, get=("nngp", "ntk"))
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        k = net.kernel_fn(x, None, get=("nngp", "ntk"))
        times.append(time.perf_counter() - t0)
    return {"first": first, "times": times}, k


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--d", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--nt-python", default="/tmp/nt-venv/bin/python")
    args = ap.parse_args()
    x = np.random.default_rng(0).standard_normal((args.n, args.d))

    ours, k = run_ours(x, args.repeats)
    print(f"theorytools.ntk : first call {ours['first']:.3f} s (incl. numba cache load), "
          f"warm median {statistics.median(ours['times']):.3f} s, min {min(ours['times']):.3f} s")

    if not os.path.exists(args.nt_python):
        print(f"anchor          : NOT RUN — {args.nt_python} not found (create the venv of reference §E.2)")
        return
    with tempfile.TemporaryDirectory() as d:
        np.save(os.path.join(d, "x.npy"), x)
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
        res = subprocess.run([args.nt_python, "-c", ANCHOR, d, str(args.repeats)], capture_output=True, text=True, env=env)
        if res.returncode != 0:
            print("anchor          : FAILED\n" + res.stderr[-2000:])
            sys.exit(1)
        nt_res = json.loads(res.stdout.strip().splitlines()[-1])
        nt_nngp = np.load(os.path.join(d, "nngp.npy"))
        nt_ntk = np.load(os.path.join(d, "ntk.npy"))
    med_nt, med_us = statistics.median(nt_res["times"]), statistics.median(ours["times"])
    print(f"neural-tangents : {nt_res['version']} (jax {nt_res['jax']}), jit first call {nt_res['first']:.3f} s, "
          f"warm median {med_nt:.3f} s, min {min(nt_res['times']):.3f} s")
    err_nngp = np.max(np.abs(k.nngp - nt_nngp)) / np.max(np.abs(nt_nngp))
    err_ntk = np.max(np.abs(k.ntk - nt_ntk)) / np.max(np.abs(nt_ntk))
    print(f"agreement       : max |Δ|/max|K| NNGP {err_nngp:.2e}, NTK {err_ntk:.2e}")
    print(f"ratio           : ours/anchor warm median = {med_us / med_nt:.2f} (min/min = {min(ours['times']) / min(nt_res['times']):.2f})")
    print(f"load average    : {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
