"""ACAS Xu (VNN-COMP, 186 instances): our complete verifier vs the ground truth, plus a plain-Z3 baseline.

Usage:
    python benchmarks/acasxu.py [--cap S] [--every K] [--start I] [--plain N] [--plain-timeout S] [--out F]

* runs instance i for i = start, start+K, ... of acasxu_instances.csv with timeout min(listed, cap);
* every ``violated`` counterexample is re-checked: inside the box, and the unsafe constraint met (within
  the VNN-COMP tolerance 1e-4) by the ONNX file under onnxruntime (float32) AND by the .nnet network in
  float64 (when the folder has an nnet/ directory; the public VNN-COMP folder has none);
* data: $ACASXU_DIR, else /work/shared/benchmarks/acasxu, else benchmarks/data/acasxu as written by
  ``benchmarks/fetch_vnncomp2021.sh acasxu`` (not committed);
* compares each verdict with the ground truth (47 sat / 139 unsat; per-instance answers agreed by the sound
  tools in VNN-COMP 2021-2023, e.g. ChristopherBrix/vnncomp2022_results alpha_beta_crown/acasxu/results.csv
  and the 2023 scoring); any disagreement is printed as a SOUNDNESS BUG;
* ``--plain N``: also hands the first N selected instances to Z3 without bounds (method "z3-plain").

Writes a CSV (instance, status, expected, seconds, check) and prints a summary.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small GEMMs; threads only contend on 2 shared cores

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

import numpy as np

# the VNN-COMP ACAS Xu folder: $ACASXU_DIR, else this machine's shared copy, else what
# `benchmarks/fetch_vnncomp2021.sh acasxu` writes (benchmarks/data/acasxu)
_FETCHED = Path(__file__).resolve().parent / "data" / "acasxu"
ROOT = Path(os.environ.get("ACASXU_DIR") or next(
    (d for d in (Path("/work/shared/benchmarks/acasxu"), _FETCHED) if (d / "acasxu_instances.csv").is_file()), _FETCHED))

# ground truth: prop_1 all unsat; prop_2 sat except these nets; props 3/4 sat on 1_7, 1_8, 1_9;
# prop_7 (1_9) and prop_8 (2_9) sat; props 5, 6, 9, 10 unsat.  47 sat / 139 unsat in total.
_P2_UNSAT = {"1_1", "1_7", "1_8", "1_9", "3_3", "4_2"}


def expected(net_id: str, prop: int) -> str:
    if prop == 2:
        return "unsat" if net_id in _P2_UNSAT else "sat"
    if prop in (3, 4):
        return "sat" if net_id in {"1_7", "1_8", "1_9"} else "unsat"
    if prop in (7, 8):
        return "sat"
    return "unsat"


def instances():
    rows = []
    with open(ROOT / "acasxu_instances.csv") as fh:
        for onnx, vnn, tmo in csv.reader(fh):
            net_id = onnx.split("_run2a_")[1].split("_batch")[0]
            prop = int(vnn.split("prop_")[1].split(".")[0])
            rows.append((net_id, prop, float(tmo)))
    return rows


def check_counterexample(net_id: str, prop_obj, x: np.ndarray) -> str:
    """'ok' if x is a counterexample for both the ONNX (onnxruntime, float32) and the .nnet network."""
    import onnxruntime as ort

    import verification as v

    onnx_path = ROOT / "onnx" / f"ACASXU_run2a_{net_id}_batch_2000.onnx"
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    y_ort = sess.run(None, {inp.name: x.astype(np.float32).reshape(inp.shape)})[0].reshape(-1).astype(np.float64)
    ok_ort = prop_obj.is_violated_by(x, y_ort, atol=1e-4)
    nnet_path = ROOT / "nnet" / f"ACASXU_experimental_v2a_{net_id}.nnet"
    if not nnet_path.is_file():  # the VNN-COMP folder has no .nnet files: onnxruntime's check only
        return "ok(onnx)" if ok_ort else f"FAILED(ort={ok_ort})"
    ok_nnet = prop_obj.is_violated_by(x, v.load_network(nnet_path)(x), atol=1e-4)
    return "ok" if (ok_ort and ok_nnet) else f"FAILED(ort={ok_ort},nnet={ok_nnet})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cap", type=float, default=116.0, help="cap on the per-instance timeout (s)")
    ap.add_argument("--every", type=int, default=1, help="run every K-th instance")
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--plain", type=int, default=0, help="also run plain Z3 on the first N selected instances")
    ap.add_argument("--plain-timeout", type=float, default=30.0)
    ap.add_argument("--out", default="acasxu_results.csv")
    ap.add_argument("--leaf-unstable", type=int, default=0,
                    help="verify(leaf_unstable=...): MILP leaves for boxes with at most this many unstable ReLUs")
    ap.add_argument("--alpha-unstable", type=int, default=16,
                    help="verify(alpha_unstable=...): alpha-CROWN row bounds on open boxes with at most this many "
                         "unstable ReLUs (0 = off)")
    args = ap.parse_args(argv)

    import verification as v
    from verification.vnnlib import read_vnnlib

    sel = instances()[args.start :: args.every]
    out_rows = []
    wrong = 0
    t_all = time.monotonic()
    for net_id, prop, tmo in sel:
        net = v.load_network(ROOT / "onnx" / f"ACASXU_run2a_{net_id}_batch_2000.onnx")
        p = read_vnnlib(ROOT / "vnnlib" / f"prop_{prop}.vnnlib")
        res = v.verify(net, p, timeout=min(tmo, args.cap), leaf_unstable=args.leaf_unstable,
                       alpha_unstable=args.alpha_unstable)
        ans = {"holds": "unsat", "violated": "sat"}.get(res.status, "unknown")
        exp = expected(net_id, prop)
        chk = check_counterexample(net_id, p, res.counterexample) if ans == "sat" else ""
        bad = (ans != "unknown" and ans != exp) or chk.startswith("FAILED")
        wrong += bad
        out_rows.append((f"{net_id}/prop_{prop}", ans, exp, f"{res.seconds:.3f}", chk, res.reason))
        print(f"{net_id}/prop_{prop}: {ans:7s} expected {exp:5s} {res.seconds:7.2f} s {chk}"
              + ("   <-- SOUNDNESS BUG" if bad else ""), flush=True)
    with open(args.out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["instance", "result", "expected", "seconds", "counterexample_check", "reason"])
        w.writerows(out_rows)
    solved = [r for r in out_rows if r[1] != "unknown"]
    times = [float(r[3]) for r in solved]
    n_sat = sum(r[1] == "sat" for r in solved)
    n_unsat = sum(r[1] == "unsat" for r in solved)
    exp_sat = sum(r[2] == "sat" for r in out_rows)
    print(f"\n== ours: {len(sel)} instances (cap {args.cap:g} s), wall {time.monotonic() - t_all:.1f} s")
    print(f"solved {len(solved)}/{len(sel)}: sat {n_sat}/{exp_sat}, unsat {n_unsat}/{len(sel) - exp_sat}, "
          f"unknown {len(sel) - len(solved)}, WRONG {wrong}")
    if times:
        print(f"solved-instance time: median {statistics.median(times):.2f} s, total {sum(times):.1f} s, max {max(times):.1f} s")
    if args.plain:
        print(f"\n== plain Z3 (no bounds, no falsification), {args.plain_timeout:g} s each")
        n_ok = 0
        for net_id, prop, _ in sel[: args.plain]:
            net = v.load_network(ROOT / "onnx" / f"ACASXU_run2a_{net_id}_batch_2000.onnx")
            p = read_vnnlib(ROOT / "vnnlib" / f"prop_{prop}.vnnlib")
            res = v.verify(net, p, timeout=args.plain_timeout, method="z3-plain")
            n_ok += res.status != "unknown"
            print(f"{net_id}/prop_{prop}: plain-z3 {res.status} {res.seconds:.1f} s ({res.reason})", flush=True)
        print(f"plain Z3 solved {n_ok}/{args.plain}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
