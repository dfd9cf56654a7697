"""`verification batch` on ACAS Xu: wall time with 1 and 2 workers vs one `verification verify` process per
instance, and the per-instance overhead on trivial instances.

Usage:
    python benchmarks/batch.py [--cap S] [--trivial N] [--trivial-processes K] [--full] [--skip-processes]

* mixed set: the ACAS Xu instances of tests/data/acasxu (4 networks x properties 1-4), or with --full the
  186 of $ACASXU_DIR / /work/shared/benchmarks/acasxu (its CSV rewritten with onnx/ and vnnlib/ paths),
  each with timeout min(listed, cap);
* trivial set: N rows (default 400; 20 as processes) alternating 1_9/prop_4 and 2_3/prop_2 (both violated by the first samples, a few ms
  of verifier time each).  Overhead per instance: (T(N) - T(1)) / (N - 1) of the whole batch command with
  one worker, against the mean wall time of one `verification verify` process;
* every run is the CLI end to end (cluster start-up included); the load average is printed with each
  number (the machine may be shared).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "acasxu"
SHARED = Path(os.environ.get("ACASXU_DIR", "/work/shared/benchmarks/acasxu"))
ENV = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
CLI = [sys.executable, "-m", "verification"]


def _load() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


def _link_data(d: Path, src: Path) -> None:
    for sub in ("onnx", "vnnlib"):
        (d / sub).symlink_to(src / sub)


def mixed_rows(cap: float, full: bool) -> tuple[list[tuple[str, str, float]], Path]:
    shared_csv = SHARED / "acasxu_instances.csv"
    if full and shared_csv.is_file():
        rows = [(f"onnx/{r[0]}", f"vnnlib/{r[1]}", min(float(r[2]), cap))
                for r in csv.reader(shared_csv.read_text().splitlines()) if r]
        return rows, SHARED
    rows = [(f"onnx/ACASXU_run2a_{n}_batch_2000.onnx", f"vnnlib/prop_{p}.vnnlib", cap)
            for n in ("1_1", "1_9", "2_3", "5_3") for p in (1, 2, 3, 4)]
    return rows, DATA


def write_csv(path: Path, rows) -> Path:
    path.write_text("".join(f"{a},{b},{t}\n" for a, b, t in rows))
    return path


def batch(csv_path: Path, out: Path, workers: int) -> tuple[float, dict]:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.monotonic()
    r = subprocess.run(CLI + ["batch", str(csv_path), "--out", str(out), "--workers", str(workers), "--quiet",
                              "--json"], capture_output=True, text=True, env=ENV)
    wall = time.monotonic() - t0
    if r.returncode != 0:
        raise SystemExit(f"batch failed: {r.stderr.strip()}")
    return wall, json.loads(r.stdout)


def processes(csv_path: Path, rows) -> tuple[float, dict]:
    counts: dict[str, int] = {}
    base = csv_path.parent
    t0 = time.monotonic()
    for a, b, t in rows:
        r = subprocess.run(CLI + ["verify", str(base / a), str(base / b), "--timeout", str(t), "--json", "--quiet"],
                           capture_output=True, text=True, env=ENV)
        v = json.loads(r.stdout)["vnncomp"] if r.stdout.strip() else "error"
        counts[v] = counts.get(v, 0) + 1
    return time.monotonic() - t0, counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cap", type=float, default=10.0, help="timeout cap per instance (s)")
    ap.add_argument("--trivial", type=int, default=400, help="rows of the trivial set (batch)")
    ap.add_argument("--trivial-processes", type=int, default=20, help="rows of the trivial set run as processes")
    ap.add_argument("--full", action="store_true", help="the 186 instances of $ACASXU_DIR (or "
                    "/work/shared/benchmarks/acasxu) instead of the 16 bundled ones")
    ap.add_argument("--skip-processes", action="store_true", help="do not run one process per instance")
    args = ap.parse_args()
    print(f"cores {os.cpu_count()}, load {_load()} (1/5/15 min) at start")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        rows, src = mixed_rows(args.cap, args.full)
        _link_data(d, src)
        mixed = write_csv(d / "mixed.csv", rows)
        triv_rows = [("onnx/ACASXU_run2a_1_9_batch_2000.onnx", "vnnlib/prop_4.vnnlib", 10.0) if i % 2 == 0 else
                     ("onnx/ACASXU_run2a_2_3_batch_2000.onnx", "vnnlib/prop_2.vnnlib", 10.0)
                     for i in range(args.trivial)]
        if src != DATA:  # the trivial set always comes from the bundled files
            tdir = d / "trivial"
            tdir.mkdir()
            _link_data(tdir, DATA)
        else:
            tdir = d
        trivial = write_csv(tdir / "trivial.csv", triv_rows)
        one = write_csv(tdir / "one.csv", triv_rows[:1])

        print(f"\nmixed set: {len(rows)} ACAS Xu instances from {src}, timeout cap {args.cap:g} s")
        res = {}
        for w in (1, 2):
            wall, summ = batch(mixed, d / f"out{w}", w)
            t = summ["totals"]
            res[w] = wall
            print(f"  batch --workers {w}: {wall:7.2f} s wall  (unsat {t['unsat']}, sat {t['sat']}, timeout "
                  f"{t['timeout']}, unknown {t['unknown']}, error {t['error']}; verifier time {t['seconds']:.1f} s)"
                  f"  load {_load()}")
        if not args.skip_processes:
            wall, counts = processes(mixed, rows)
            res["proc"] = wall
            print(f"  one process per instance: {wall:7.2f} s wall  {counts}  load {_load()}")
            print(f"  ratios: processes / batch-1 = {res['proc'] / res[1]:.2f}, processes / batch-2 = "
                  f"{res['proc'] / res[2]:.2f}, batch-1 / batch-2 = {res[1] / res[2]:.2f}")
        else:
            print(f"  batch-1 / batch-2 = {res[1] / res[2]:.2f}")

        print(f"\ntrivial set: {args.trivial} instances (1_9/prop_4, 2_3/prop_2 alternating)")
        t1, _ = batch(one, d / "o1", 1)
        tn, summ = batch(trivial, d / "on", 1)
        per = (tn - t1) / (args.trivial - 1)
        print(f"  batch --workers 1: 1 instance {t1:.2f} s, {args.trivial} instances {tn:.2f} s -> "
              f"{1000 * per:.1f} ms per additional instance (verifier time {1000 * summ['totals']['seconds'] / args.trivial:.1f} ms "
              f"each)  load {_load()}")
        if not args.skip_processes:
            k = min(args.trivial_processes, len(triv_rows))
            wall, _ = processes(trivial, triv_rows[:k])
            print(f"  one process per instance ({k} instances): {wall / k * 1000:.0f} ms per instance  load {_load()}")
            if per > 0:
                print(f"  per-instance ratio: {wall / k / per:.0f}x")


if __name__ == "__main__":
    main()
