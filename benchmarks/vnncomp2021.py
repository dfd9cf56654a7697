"""VNN-COMP 2021 image benchmarks: ``mnistfc`` (90 instances: 784-input ReLU nets 256x2 / 256x4 / 256x6, l-inf
eps 0.03 / 0.05), ``verivital`` (60 instances: two MNIST CNNs, average / max pooling) and ``cifar10_resnet``
(72 instances: two CIFAR-10 ResNets with 2 / 4 residual blocks, l-inf eps 2/255 and 1/255, 300 s each).

Usage:
    benchmarks/fetch_vnncomp2021.sh mnistfc            # once: fetches the public files (not committed)
    python benchmarks/vnncomp2021.py mnistfc [--dir D] [--cap S] [--nets mnist-net_256x2.onnx,...] [--out F]
        [--lp-refine auto|on|off] [--lp-neurons N] [--lp-depth D] [--lp-time FRACTION]   # root LP refinement

* runs every instance of ``NAME_instances.csv`` with ``verify`` (method ``auto``, which is ReLU-splitting
  branch and bound for these nets) and timeout ``min(listed, cap)``, in one process (the networks are loaded
  once; the load time is not counted, as in VNN-COMP's ``prepare_instance``);
* every ``violated`` answer is re-checked here as well: the counterexample is inside the box and the ONNX
  file under onnxruntime puts it in the unsafe set (within the VNN-COMP tolerance 1e-4);
* compares each verdict with the consensus of the sound tools of VNN-COMP 2021
  (``benchmarks/data/NAME_2021_expected.csv``); a contradiction is printed as a SOUNDNESS BUG;
* prints solved counts per network and in total, median / total time, the machine load, and the
  published counts of the VNN-COMP 2021 tools on the same files (their hardware, their timeouts).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import csv
import statistics
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# VNN-COMP 2021 (Bak et al., 2021; stanleybak/vnncomp2021_results, results_csv): instances each tool decided
# (holds + violated) with the listed timeouts on the competition's AWS hardware; tools that contradict the
# consensus on a benchmark are left out there (verivital: Marabou 26 and nnv 7 contradicting answers).
PUBLISHED = {
    "mnistfc": {"a-b-CROWN": 70, "VeriNet": 61, "Debona": 60, "oval": 58, "ERAN": 57, "Marabou": 55,
                "venus2": 48, "nnenum": 47, "nnv": 28},
    "verivital": {"a-b-CROWN": 60, "VeriNet": 59, "ERAN": 59, "oval": 58},
    "cifar10_resnet": {"a-b-CROWN": 58, "VeriNet": 49, "ERAN": 44, "Marabou": 40, "Debona": 1, "NV.jl": 1},
}
# bab counters printed per instance (when present)
DETAILS = ("root_lower", "unstable_before_lp", "unstable_after_bounds", "lp_bounds", "lp_seconds")


def _key(vnnlib: str) -> str:
    """A property's name as in the expected-answer files: its path without ``./`` and ``specs/``."""
    v = vnnlib.strip()
    for prefix in ("./", "specs/"):
        v = v[len(prefix):] if v.startswith(prefix) else v
    return v


def _expected(name: str) -> dict:
    rows = (line for line in open(HERE / "data" / f"{name}_2021_expected.csv") if not line.startswith("#"))
    return {(r["onnx"], _key(r["vnnlib"])): r["expected"] for r in csv.DictReader(rows)}


def _recheck(onnx_path: Path, prop, x: np.ndarray) -> bool:
    """The counterexample is in a region's box and onnxruntime (float32) puts it in that region's unsafe set."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    y = sess.run(None, {inp.name: x.astype(np.float32).reshape(shape)})[0].reshape(-1).astype(np.float64)
    for region in prop.regions:
        if np.all(x >= region.lower - 1e-12) and np.all(x <= region.upper + 1e-12):
            for oc in region.outputs:
                if np.all(oc.A @ y - oc.b <= 1e-4):
                    return True
    return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", choices=sorted(PUBLISHED))
    ap.add_argument("--dir", default=None, help="the fetched folder (default benchmarks/data/NAME)")
    ap.add_argument("--cap", type=float, default=None, help="cap on the listed timeouts (s)")
    ap.add_argument("--nets", default=None, help="comma-separated ONNX names to run (default: all)")
    ap.add_argument("--out", default=None, help="CSV of per-instance results")
    ap.add_argument("--lp-refine", choices=["auto", "on", "off"], default=None,
                    help="root LP refinement of intermediate bounds in bab (default: the module's LP_REFINE)")
    ap.add_argument("--lp-neurons", type=int, default=None, help="LP-refined neurons per layer (LP_NEURONS)")
    ap.add_argument("--lp-depth", type=int, default=None, help="split neurons per LP bound (LP_DEPTH)")
    ap.add_argument("--lp-time", type=float, default=None, help="fraction of the time for LPs (LP_TIME_FRACTION)")
    args = ap.parse_args()
    from verification.smt import relu_bab as bab

    for opt, name in ((args.lp_refine, "LP_REFINE"), (args.lp_neurons, "LP_NEURONS"), (args.lp_depth, "LP_DEPTH"),
                      (args.lp_time, "LP_TIME_FRACTION")):
        if opt is not None:
            setattr(bab, name, opt)

    from verification import load_network
    from verification.smt import verify
    from verification.vnnlib import read_vnnlib

    root = Path(args.dir or HERE / "data" / args.name)
    listing = root / f"{args.name}_instances.csv"
    if not listing.exists():
        raise SystemExit(f"{listing} not found: run benchmarks/fetch_vnncomp2021.sh {args.name} first")
    expected = _expected(args.name)
    rows = [[c.strip() for c in r] for r in csv.reader(open(listing)) if r]
    nets = sorted({r[0] for r in rows}) if args.nets is None else args.nets.split(",")
    rows = [r for r in rows if r[0] in nets]
    print(f"load at start: {os.getloadavg()}")
    loaded = {}
    out = []
    for onnx, vnnlib, listed in rows:
        if onnx not in loaded:
            loaded[onnx] = load_network(root / onnx)
        timeout = float(listed) if args.cap is None else min(float(listed), args.cap)
        prop = read_vnnlib(root / vnnlib)
        t0 = time.monotonic()
        res = verify(loaded[onnx], prop, timeout=timeout)
        dt = time.monotonic() - t0
        check = ""
        if res.status == "violated":
            check = "ok" if _recheck(root / onnx, prop, res.counterexample) else "FAILED"
        exp = expected.get((onnx, _key(vnnlib)), "unknown")
        wrong = res.status in ("holds", "violated") and exp in ("holds", "violated") and res.status != exp
        out.append(dict(onnx=onnx, vnnlib=vnnlib, timeout=timeout, status=res.status, seconds=round(dt, 2),
                        expected=exp, check=check, reason=res.reason, domains=res.details.get("domains", 0),
                        **{k: res.details.get(k, "") for k in DETAILS}))
        flag = "  SOUNDNESS BUG" if wrong or check == "FAILED" else ""
        more = " ".join(f"{k}={res.details[k]}" for k in ("domains",) + DETAILS if k in res.details)
        print(f"{onnx:22s} {vnnlib:22s} {res.status:8s} {dt:7.2f}s expected {exp:8s} {check}{flag} {more}",
              flush=True)
    print(f"load at end: {os.getloadavg()}")
    if args.out:
        with open(args.out, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(out[0]))
            w.writeheader()
            w.writerows(out)
    solved = [r for r in out if r["status"] in ("holds", "violated")]
    wrong = [r for r in solved if r["expected"] in ("holds", "violated") and r["status"] != r["expected"]]
    for net in nets:
        sub = [r for r in out if r["onnx"] == net]
        s = [r for r in sub if r["status"] in ("holds", "violated")]
        h = sum(r["status"] == "holds" for r in s)
        print(f"{net}: {len(s)}/{len(sub)} solved ({h} holds, {len(s) - h} violated)")
    times = [r["seconds"] for r in solved]
    print(f"total: {len(solved)}/{len(out)} solved, {len(wrong)} wrong, "
          f"{sum(r['check'] == 'FAILED' for r in out)} counterexamples failing the onnxruntime re-check; "
          f"median time of solved {statistics.median(times) if times else float('nan'):.2f} s, "
          f"total wall {sum(r['seconds'] for r in out):.0f} s")
    print(f"published (VNN-COMP 2021, same files, decided of {len(rows)} listed): "
          + ", ".join(f"{k} {v}" for k, v in PUBLISHED[args.name].items()))


if __name__ == "__main__":
    main()
