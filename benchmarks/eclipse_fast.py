"""Benchmark: our certified ECLipsE-Fast against eclipse-nn's ECLipsE-Fast (uncertified), warm and first call.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/eclipse_fast.py [--rounds 5]
        [--anchor-python /tmp/eclipse-venv/bin/python] [--spin K] [--fresh 3] [--json out.json]

Nets: random ReLU nets with weights N(0, 1/fan_in), seed 0 (small: 2-10-10-2, 5-50-50-50-5; deep: 10-20x30-2,
10-64x64-10) and the LipSDP example weights in ``tests/data/lipsdp``.  Each round times every net once on our side
(``lipschitz(net, method="eclipse-fast")`` end to end, then the stages separately: recursion, LMI build,
certificate, self-check) and then runs the anchor once in its own venv as a subprocess that times its own calls
in-process after a warm-up call (so the rounds interleave the two); the medians over the rounds are printed.  The
anchor's value must equal our recursion value (before certification) to 1e-6 relative.  ``--fresh N``: N fresh
processes per side time the import and the first call.  ``--spin K`` runs K busy processes during the
measurement (a loaded machine); the load average (``os.getloadavg``) is printed before and after every round.

eclipse-nn certifies nothing; ours proves the value it prints in float64 (the certificate), so part of the
difference is the price of the proof (the ``cert`` column).  Anchor venv: see ``benchmarks/lipschitz_sdp.py``.
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
ANCHOR_NOTE = "eclipse-nn ECLipsE_Fast (torch, float64)"


# ------------------------------------------------------------------------------------------ anchor side
def _anchor_main(path: str) -> None:
    """Runs in the eclipse-nn venv: time one warm call per net, print JSON ``{name: [value, seconds]}``."""
    import torch
    from eclipse_nn.LipConstEstimator import LipConstEstimator

    data = np.load(path)
    names = [str(x) for x in data["names"]]
    nets = {nm: [torch.tensor(data[f"{nm}/W{i}"], dtype=torch.float64) for i in range(int(data[f"{nm}/n"]))]
            for nm in names}
    LipConstEstimator(weights=nets[names[0]]).estimate("ECLipsE_Fast")  # warm-up (first call, lazy loads)
    out = {}
    for nm in names:
        t = time.perf_counter()
        v = float(LipConstEstimator(weights=nets[nm]).estimate("ECLipsE_Fast"))
        out[nm] = [v, time.perf_counter() - t]
    print(json.dumps(out))


_ANCHOR_FIRST = """
import time; t0 = time.perf_counter()
import numpy as np, torch
from eclipse_nn.LipConstEstimator import LipConstEstimator
t1 = time.perf_counter()
d = np.load({path!r}); w = [torch.tensor(d["W%d" % i], dtype=torch.float64) for i in range(int(d["n"]))]
t2 = time.perf_counter(); v = float(LipConstEstimator(weights=w).estimate("ECLipsE_Fast")); t3 = time.perf_counter()
print(t1 - t0, t3 - t2, v)
"""

_OURS_FIRST = """
import time; t0 = time.perf_counter()
import numpy as np
from verification import lipschitz
from verification.activations import ReLU
from verification.io.common import chain_from_weights
t1 = time.perf_counter()
d = np.load({path!r}); w = [d["W%d" % i] for i in range(int(d["n"]))]
net = chain_from_weights(w, [None] * len(w), [ReLU() for _ in w[:-1]], "net")
t2 = time.perf_counter(); v = lipschitz(net, method="eclipse-fast").value; t3 = time.perf_counter()
print(t1 - t0, t3 - t2, v)
"""


def run_anchor(python: str, nets: dict[str, list[np.ndarray]]) -> dict | None:
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "w.npz"
        arrays = {"names": np.array(list(nets))}
        for nm, ws in nets.items():
            arrays[f"{nm}/n"] = np.array(len(ws))
            arrays.update({f"{nm}/W{i}": w for i, w in enumerate(ws)})
        np.savez(f, **arrays)
        proc = subprocess.run([python, str(Path(__file__).resolve()), "--anchor", str(f)], capture_output=True,
                              text=True, timeout=3600, env=dict(os.environ, PYTHONPATH=""))
    if proc.returncode != 0:
        print("anchor failed:", proc.stderr.strip().splitlines()[-1:] or "?")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def first_calls(python: str, code: str, ws: list[np.ndarray], env_extra: dict, n: int) -> list[tuple]:
    """``n`` fresh processes: (import seconds, first call seconds, value) each."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "w.npz"
        np.savez(f, n=len(ws), **{f"W{i}": w for i, w in enumerate(ws)})
        for _ in range(n):
            proc = subprocess.run([python, "-c", code.format(path=str(f))], capture_output=True, text=True,
                                  timeout=600, cwd=str(ROOT), env=dict(os.environ, **env_extra))
            if proc.returncode != 0:
                print("fresh run failed:", proc.stderr.strip().splitlines()[-1:])
                return out
            a, b, v = proc.stdout.split()
            out.append((float(a), float(b), float(v)))
    return out


# ------------------------------------------------------------------------------------------ our side
def nets_to_run() -> dict[str, list[np.ndarray]]:
    import scipy.io

    nets = {}
    for label, dims in (("2-10-10-2", [2, 10, 10, 2]), ("5-50x3-5", [5, 50, 50, 50, 5]),
                        ("10-20x30-2", [10] + [20] * 30 + [2]), ("10-64x64-10", [10] + [64] * 64 + [10])):
        rng = np.random.default_rng(0)
        nets[label] = [rng.standard_normal((dims[i + 1], dims[i])) / np.sqrt(dims[i]) for i in range(len(dims) - 1)]
    for name in ("random", "mnist"):
        p = ROOT / "tests" / "data" / "lipsdp" / f"{name}_weights.mat"
        if p.exists():
            nets[f"lipsdp-{name}"] = [np.asarray(w, dtype=np.float64) for w in scipy.io.loadmat(str(p))["weights"].ravel()]
    return nets


def ours_once(ws: list[np.ndarray]) -> dict:
    """One end-to-end call and the stages timed separately (same calls as ``eclipse.py`` and the registry)."""
    from verification.activations import ReLU
    from verification.io.common import chain_from_weights
    from verification.lipschitz import lipschitz
    from verification.lipschitz.registry import _self_check
    from verification.lipschitz.sdp.chain import build_chain_sdp
    from verification.lipschitz.sdp.eclipse_recursion import chain_multipliers, eclipse_chain

    net = chain_from_weights(ws, [None] * len(ws), [ReLU() for _ in ws[:-1]], "net")
    t = time.perf_counter()
    res = lipschitz(net, method="eclipse-fast")
    total = time.perf_counter() - t
    cnet = net.canonical()
    t0 = time.perf_counter()
    sdp = build_chain_sdp(cnet, 2, None, "neuron")
    t1 = time.perf_counter()
    raw, ls, _ = eclipse_chain(sdp.matrices, 0.5, True)
    t2 = time.perf_counter()
    cert = sdp.certify(chain_multipliers(sdp, raw, ls))
    t3 = time.perf_counter()
    _self_check(cnet, 2, None, res)
    t4 = time.perf_counter()
    assert cert.certified and res.certified
    return {"value": res.value, "raw": raw, "total": total, "build": t1 - t0, "recursion": t2 - t1,
            "cert": t3 - t2, "selfcheck": t4 - t3}


def spin(k: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(k)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--anchor", help=argparse.SUPPRESS)
    ap.add_argument("--anchor-python", default="/tmp/eclipse-venv/bin/python")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--fresh", type=int, default=3, help="fresh processes per side for the first-call timing")
    ap.add_argument("--spin", type=int, default=0, help="busy processes to run during the measurement")
    ap.add_argument("--json", help="write the medians here")
    args = ap.parse_args()
    if args.anchor:
        _anchor_main(args.anchor)
        return
    sys.path.insert(0, str(ROOT))
    anchor = args.anchor_python if Path(args.anchor_python).exists() else None
    if anchor is None:
        print(f"eclipse-nn venv not found at {args.anchor_python}: no anchor columns")
    nets = nets_to_run()
    spinners = spin(args.spin)
    try:
        ours: dict[str, list] = {nm: [] for nm in nets}
        theirs: dict[str, list] = {nm: [] for nm in nets}
        loads = []
        for nm, ws in nets.items():  # warm-up: imports, first-call costs
            ours_once(ws)
        for r in range(args.rounds):
            la = os.getloadavg()[0]
            for nm, ws in nets.items():
                ours[nm].append(ours_once(ws))
            a = run_anchor(anchor, nets) if anchor else None
            for nm in nets:
                if a:
                    theirs[nm].append(a[nm])
            loads.append((la, os.getloadavg()[0]))
            print(f"round {r + 1}/{args.rounds}: load {la:.2f} -> {loads[-1][1]:.2f}", flush=True)
        fresh = {}
        if args.fresh:
            ws = nets["5-50x3-5"]
            env = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
            fresh["ours"] = first_calls(sys.executable, _OURS_FIRST, ws, env, args.fresh)
            if anchor:
                fresh["anchor"] = first_calls(anchor, _ANCHOR_FIRST, ws, {"PYTHONPATH": ""}, args.fresh)
        load_end = os.getloadavg()
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    med = lambda xs: float(np.median(xs)) if xs else float("nan")  # noqa: E731
    print(f"\nECLipsE-Fast, median of {args.rounds} interleaved rounds; {args.spin} busy processes; load (1 min) "
          f"{min(x[0] for x in loads):.2f}-{max(x[1] for x in loads):.2f}, at the end {load_end[0]:.2f} on "
          f"{os.cpu_count()} cores")
    print(f"{'net':14s} {'ours (certified)':>17s} {'recursion':>17s} {'anchor':>17s} {'rel diff':>9s} | "
          f"{'ours ms':>8s} {'rec':>6s} {'build':>6s} {'cert':>6s} {'check':>6s} | {'anchor ms':>9s} {'ratio':>6s}")
    summary = {"rounds": args.rounds, "spin": args.spin, "load": loads, "nets": {}, "fresh": fresh}
    for nm in nets:
        o = ours[nm]
        row = {k: med([x[k] for x in o]) for k in ("total", "recursion", "build", "cert", "selfcheck")}
        val, raw = o[-1]["value"], o[-1]["raw"]
        av = theirs[nm][-1][0] if theirs[nm] else float("nan")
        at = med([x[1] for x in theirs[nm]])
        rel = abs(raw - av) / abs(av) if theirs[nm] else float("nan")
        print(f"{nm:14s} {val:17.10g} {raw:17.10g} {av:17.10g} {rel:9.1e} | {1e3 * row['total']:8.2f} "
              f"{1e3 * row['recursion']:6.2f} {1e3 * row['build']:6.2f} {1e3 * row['cert']:6.2f} "
              f"{1e3 * row['selfcheck']:6.2f} | {1e3 * at:9.2f} {row['total'] / at:6.1f}")
        summary["nets"][nm] = dict(row, value=val, recursion_value=raw, anchor_value=av, anchor_s=at)
    for side, rows in fresh.items():
        if rows:
            print(f"fresh process, 5-50x3-5, {side:6s}: import {med([r[0] for r in rows]):.2f} s, first call "
                  f"{med([r[1] for r in rows]):.3f} s (median of {len(rows)}), value {rows[-1][2]:.10g}")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
