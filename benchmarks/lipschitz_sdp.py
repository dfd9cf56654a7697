"""Benchmark: our certified SDP Lipschitz bounds vs the ``eclipse-nn`` package, side by side in one run.

Run with the project venv:

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/lipschitz_sdp.py [--anchor-python /tmp/eclipse-venv/bin/python]
        [--mlp-dir /tmp/lipsdp_mnist_mlps] [--widths 20 50 80 120] [--skip-plain-cvxopt]
        [--sections published random deep] [--depths 8 16 32 64] [--max-lipsdp-n 5000]

The anchor runs in its own venv (``python3 -m venv /tmp/eclipse-venv && /tmp/eclipse-venv/bin/pip install -c
constraints.txt torch==2.13.0 eclipse-nn cvxpy clarabel``) as a subprocess of this script: the weights are
written to a temporary .npz and ``<anchor-python> benchmarks/lipschitz_sdp.py --anchor FILE`` prints JSON.
eclipse-nn 0.1.7 hard-codes SCS in its per-layer SDPs and silently falls back to ECLipsE-Fast when they fail its
own check, so the anchor reports three numbers: ECLipsE-Fast, ECLipsE as shipped (default SCS; ``fallback``
flags the silent fallback) and ECLipsE with its per-layer SDPs routed to Clarabel (the real ECLipsE).

Sections: (1) the LipSDP repo weights (published values), (2) random 10-w-w-w-5 ReLU nets (LipSDP-Neuron with
our block-tridiagonal primal-dual method ``ipm``, our low-rank CVXOPT KKT solver, and plain CVXOPT through
cvxpy), (3) deep MNIST-shaped MLPs of width 64 trained by ``benchmarks/train_mnist_shaped_mlps.py``
(LipSDP-Neuron for LMIs up to ``--max-lipsdp-n`` rows; the published MOSEK times are in the docs).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------ anchor side
def _anchor(path: str) -> None:
    """Runs inside the eclipse-nn venv: print {"fast": .., "default": .., "clarabel": .., seconds ...}."""
    import contextlib
    import io

    import cvxpy as cp
    import torch
    from eclipse_nn.LipConstEstimator import LipConstEstimator

    data = np.load(path)
    weights = [torch.tensor(data[f"W{i}"], dtype=torch.float64) for i in range(int(data["n"]))]
    out: dict = {}
    est = LipConstEstimator(weights=weights)
    t = time.perf_counter()
    out["fast"] = float(est.estimate("ECLipsE_Fast"))
    out["fast_s"] = time.perf_counter() - t

    def full_eclipse(key):  # eclipse-nn's "ECLipsE": value, seconds, whether it silently fell back to Fast
        buf = io.StringIO()
        t = time.perf_counter()
        with contextlib.redirect_stdout(buf):
            out[key] = float(LipConstEstimator(weights=weights).estimate("ECLipsE"))
        out[f"{key}_s"] = time.perf_counter() - t
        out[f"{key}_fallback"] = "Falling back" in buf.getvalue()

    if int(data["run_default"]):  # ECLipsE as shipped (per-layer SDPs with SCS)
        full_eclipse("default")
    orig = cp.Problem.solve

    def solve(self, *a, solver=None, **kw):  # route eclipse-nn's hard-coded SCS to Clarabel
        if solver == cp.SCS:
            kw.pop("max_iters", None)
            kw.pop("eps", None)
            solver = cp.CLARABEL
        return orig(self, *a, solver=solver, **kw)

    if not int(data["run_clarabel"]):
        print(json.dumps(out))
        return
    cp.Problem.solve = solve
    full_eclipse("clarabel")
    print(json.dumps(out))


def run_anchor(python: str | None, weights: list[np.ndarray], run_default: bool = True,
               run_clarabel: bool = True) -> dict | None:
    if not python or not Path(python).exists():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "w.npz"
        np.savez(f, n=len(weights), run_default=int(run_default), run_clarabel=int(run_clarabel), **{f"W{i}": w for i, w in enumerate(weights)})
        env = dict(os.environ, PYTHONPATH="")
        proc = subprocess.run([python, str(Path(__file__).resolve()), "--anchor", str(f)], capture_output=True,
                              text=True, timeout=3600, env=env)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------ our side
def _net(weights):
    from verification.activations import ReLU
    from verification.io.common import chain_from_weights

    return chain_from_weights(weights, [None] * len(weights), [ReLU() for _ in weights[:-1]], "benchmark net")


def _ours(net, method, **kw):
    from verification.lipschitz import lipschitz

    t = time.perf_counter()
    r = lipschitz(net, method=method, **kw)
    return r, time.perf_counter() - t


def _fmt(v):
    return "   -    " if v is None else f"{v:9.4f}"


def section_published(anchor: str | None) -> None:
    import scipy.io

    print("\n== LipSDP repo weights (arobey1/LipSDP; published: random Layer 39.839 / Neuron 36.482) ==")
    for name in ("random", "mnist"):
        p = ROOT.parent / "shared" / "benchmarks" / "lipsdp" / f"{name}_weights.mat"
        if not p.exists():
            print(f"{p} missing, skipped")
            continue
        ws = [np.asarray(w, dtype=np.float64) for w in scipy.io.loadmat(str(p))["weights"].ravel()]
        net = _net(ws)
        rows = []
        for m in ("naive", "lipsdp-layer", "lipsdp-neuron", "eclipse-fast", "eclipse"):
            r, s = _ours(net, m)
            rows.append((m, r.value, s, r.certified, r.solver))
        a = run_anchor(anchor, ws)
        for m, v, s, c, solver in rows:
            print(f"{name:7s} ours {m:14s} {v:10.4f}  {s:7.2f} s  certified={c} solver={solver}")
        if a and "error" not in a:
            ours = dict((m, (v, s)) for m, v, s, _, _ in rows)
            print(f"{name:7s} eclipse-nn ECLipsE-Fast   {a['fast']:10.4f}  {a['fast_s']:7.2f} s   ratio ours/anchor "
                  f"{ours['eclipse-fast'][0] / a['fast']:.6f}, time ratio {ours['eclipse-fast'][1] / max(a['fast_s'], 1e-9):.2f}")
            print(f"{name:7s} eclipse-nn ECLipsE(SCS)   {a['default']:10.4f}  {a['default_s']:7.2f} s   "
                  f"silent fallback to Fast: {a['default_fallback']}")
            print(f"{name:7s} eclipse-nn ECLipsE(Clar.) {a['clarabel']:10.4f}  {a['clarabel_s']:7.2f} s   ratio ours/anchor "
                  f"{ours['eclipse'][0] / a['clarabel']:.6f}, time ratio {ours['eclipse'][1] / max(a['clarabel_s'], 1e-9):.2f}")
        elif a:
            print(f"anchor failed: {a['error']}")


def section_random(anchor: str | None, widths: list[int], plain: bool) -> None:
    print("\n== random 10-w-w-w-5 ReLU nets, weights N(0, 1/fan_in), seed 0: LipSDP-Neuron ==")
    print("   w   LMI | Neuron ipm (block-tridiag primal-dual)  s | lowrank-CVXOPT   s | plain CVXOPT bound    s | "
          "max |diff| | ours ECLipsE (s) | eclipse-nn")
    for w in widths:
        rng = np.random.default_rng(0)
        dims = [10, w, w, w, 5]
        ws = [rng.standard_normal((dims[i + 1], dims[i])) / np.sqrt(dims[i]) for i in range(4)]
        net = _net(ws)
        r0, s0 = _ours(net, "lipsdp-neuron", solver="ipm")
        r1, s1 = _ours(net, "lipsdp-neuron", solver="cvxopt-lowrank")
        rf, sf = _ours(net, "eclipse-fast")
        if plain:
            r2, s2 = _ours(net, "lipsdp-neuron", solver="CVXOPT")
            v2, diff = r2.value, max(abs(r2.value - r1.value), abs(r2.value - r0.value))
        else:
            v2, s2, diff = None, float("nan"), abs(r0.value - r1.value)
        re, se = _ours(net, "eclipse")
        # eclipse-nn's ECLipsE with Clarabel took 438 s at w = 50 here: only at w = 20
        a = run_anchor(anchor, ws, run_default=True, run_clarabel=w <= 20)
        anc = "-"
        if a and "error" not in a:
            anc = (f"Fast ours {rf.value:.4f} ({sf:.2f} s) anchor {a['fast']:.4f} ({a['fast_s']:.2f} s) ratio "
                   f"{rf.value / a['fast']:.6f} | anchor ECLipsE(SCS) {a['default']:.4f} ({a['default_s']:.1f} s"
                   f"{', fell back to Fast' if a['default_fallback'] else ''})")
            if "clarabel" in a:
                anc += f" | anchor ECLipsE(Clarabel) {a['clarabel']:.4f} ({a['clarabel_s']:.1f} s) ratio {re.value / a['clarabel']:.6f}"
        print(f"{w:4d} {r1.details['lmi_size']:5d} | {r0.value:10.6f} {s0:7.2f} ({r0.details.get('ipm_iterations')} it.) | "
              f"{r1.value:10.6f} {s1:7.2f} | {_fmt(v2)} {s2:7.2f} | "
              f"{'-' if diff is None else f'{diff:.1e}'} | {re.value:.4f} ({se:.1f} s) | {anc}", flush=True)


def section_deep(anchor: str | None, mlp_dir: Path, max_lipsdp_n: int, depths: list[int] | None = None) -> None:
    print(f"\n== deep MNIST-shaped MLPs (width 64, synthetic data; {mlp_dir}) ==")
    files = sorted(mlp_dir.glob("mlp_depth*.npz"), key=lambda p: int(p.stem[9:])) if mlp_dir.exists() else []
    if not files:
        print("no trained nets found: run benchmarks/train_mnist_shaped_mlps.py first")
        return
    print("depth | naive | ECLipsE-Fast ours (s) eclipse-nn (s) ratio | ECLipsE | LipSDP-Neuron")
    for f in files:
        d = np.load(f)
        depth = int(f.stem[9:])
        if depths and depth not in depths:
            continue
        ws = [d[f"W{i}"] for i in range(depth)]
        net = _net(ws)
        naive, _ = _ours(net, "naive")
        rf, sf = _ours(net, "eclipse-fast")
        re, se = _ours(net, "eclipse")
        a = run_anchor(anchor, ws, run_default=depth <= 8, run_clarabel=False)
        n_lmi = 64 + 64 * (depth - 1)
        if n_lmi <= max_lipsdp_n:
            rn, sn = _ours(net, "lipsdp-neuron", progress=True)
            neu = f"{rn.value:.4f} ({sn:.1f} s, {rn.solver}, cert={rn.certified}"
            if "ipm_status" in rn.details or "ipm_error" in rn.details:
                neu += f", ipm: {rn.details.get('ipm_status', rn.details.get('ipm_error'))}"
                neu += f", {rn.details.get('ipm_iterations')} iterations in {rn.details.get('ipm_seconds', float('nan')):.1f} s"
            neu += ")"
        else:
            neu = f"skipped (LMI {n_lmi} > {max_lipsdp_n})"
        if a and "error" not in a:
            dflt = (f" | anchor ECLipsE(SCS) {a['default']:.4f} ({a['default_s']:.1f} s"
                    f"{', fell back to Fast' if a['default_fallback'] else ''})") if "default" in a else ""
            print(f"{depth:5d} | {naive.value:.4g} | {rf.value:.4f} ({sf:.2f}) {a['fast']:.4f} ({a['fast_s']:.2f}) "
                  f"{rf.value / a['fast']:.6f} | ours ECLipsE {re.value:.4f} ({se:.1f} s){dflt} | {neu}", flush=True)
        else:
            print(f"{depth:5d} | {naive.value:.4g} | {rf.value:.4f} ({sf:.2f}) | {re.value:.4f} ({se:.1f}) | {neu}  (anchor: {a})", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--anchor", help=argparse.SUPPRESS)
    ap.add_argument("--anchor-python", default="/tmp/eclipse-venv/bin/python")
    ap.add_argument("--widths", type=int, nargs="+", default=[20, 50, 80, 120])
    ap.add_argument("--skip-plain-cvxopt", action="store_true")
    ap.add_argument("--mlp-dir", default="/tmp/lipsdp_mnist_mlps")
    ap.add_argument("--max-lipsdp-n", type=int, default=5000, help="largest LMI for LipSDP-Neuron in the deep section")
    ap.add_argument("--depths", type=int, nargs="+", help="deep section: only these depths")
    ap.add_argument("--sections", nargs="+", default=["published", "random", "deep"])
    args = ap.parse_args()
    if args.anchor:
        _anchor(args.anchor)
        return
    import warnings

    warnings.simplefilter("ignore")
    sys.path.insert(0, str(ROOT))
    anchor = args.anchor_python if Path(args.anchor_python).exists() else None
    if anchor is None:
        print(f"eclipse-nn anchor venv not found at {args.anchor_python}: anchor columns are empty")
    if "published" in args.sections:
        section_published(anchor)
    if "random" in args.sections:
        section_random(anchor, args.widths, not args.skip_plain_cvxopt)
    if "deep" in args.sections:
        section_deep(anchor, Path(args.mlp_dir), args.max_lipsdp_n, args.depths)


if __name__ == "__main__":
    main()
