"""`verification batch` on ACAS Xu: wall time with 1 and 2 workers vs one `verification verify` process per
instance, and the per-instance overhead on trivial instances.

Usage:
    python benchmarks/batch.py [--cap S] [--trivial N] [--trivial-processes K] [--full] [--skip-processes]
                               [--scaleout 4,8,16] [--bab NET:PROP ...] [--bab-only] [--json-out FILE]

* mixed set: the ACAS Xu instances of tests/data/acasxu (4 networks x properties 1-4), or with --full the
  186 of $ACASXU_DIR or benchmarks/data/acasxu from ``fetch_vnncomp2021.sh acasxu`` (its CSV rewritten with onnx/ and vnnlib/ paths),
  each with timeout min(listed, cap);
* trivial set: N rows (default 400; 20 as processes) alternating 1_9/prop_4 and 2_3/prop_2 (both violated by the first samples, a few ms
  of verifier time each).  Overhead per instance: (T(N) - T(1)) / (N - 1) of the whole batch command with
  one worker, against the mean wall time of one `verification verify` process;
* every run is the CLI end to end (cluster start-up included); the load average is printed with each
  number (the machine may be shared);
* parallel efficiency of the mixed set: T(1 worker) / (2 x T(2 workers));
* simulated scale-out (a MODEL, not a measurement): the per-instance wall times measured with one worker are
  list-scheduled in CSV order onto N workers (what Dask does with equal-priority tasks), plus the measured
  per-instance overhead; the makespan is reported for each N;
* --bab NET:PROP (e.g. 3_3:2): distributed branch and bound of one instance (verification.batch.distributed)
  on local clusters of 1 and 2 workers against sequential `verify`; the tree of pieces (each piece's
  measured seconds and its parent) is then list-scheduled onto N simulated workers (children become ready
  when their parent finishes; a MODEL, as above).
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
# the VNN-COMP ACAS Xu folder: $ACASXU_DIR, else this machine's shared copy, else what
# `benchmarks/fetch_vnncomp2021.sh acasxu` writes (benchmarks/data/acasxu)
_FETCHED = Path(__file__).resolve().parent / "data" / "acasxu"
SHARED = Path(os.environ.get("ACASXU_DIR") or next(
    (d for d in (Path("/work/shared/benchmarks/acasxu"), _FETCHED) if (d / "acasxu_instances.csv").is_file()), _FETCHED))
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


def list_schedule(durations: list[float], workers: int, overhead: float = 0.0) -> float:
    """Makespan of tasks taken in order by the first free of ``workers`` workers (a model)."""
    import heapq

    free = [0.0] * workers
    for d in durations:
        t = heapq.heappop(free)
        heapq.heappush(free, t + d + overhead)
    return max(free)


def tree_schedule(pieces: list[dict], workers: int) -> float:
    """Makespan of the piece tree on ``workers`` workers: a piece is ready when its parent has finished
    (ids ``r0.3.1``: parent ``r0.3``); ready pieces are taken in order of readiness (a model)."""
    import heapq

    children: dict[str, list[dict]] = {}
    for p in pieces:
        parent = p["id"].rsplit(".", 1)[0] if "." in p["id"] else ""
        children.setdefault(parent, []).append(p)
    ready = [(0.0, i, p) for i, p in enumerate(children.get("", []))]
    heapq.heapify(ready)
    free = [0.0] * workers
    end, k = 0.0, len(pieces)
    while ready:
        t_ready, _, p = heapq.heappop(ready)
        t_free = heapq.heappop(free)
        finish = max(t_ready, t_free) + p["seconds"]
        heapq.heappush(free, finish)
        end = max(end, finish)
        for c in children.get(p["id"], []):
            k += 1
            heapq.heappush(ready, (finish, k, c))
    return end


def bab(spec: str, src: Path, timeout: float) -> dict:
    """Distributed branch and bound of one instance: sequential, then 1 and 2 local workers."""
    from verification.batch.distributed import verify_distributed
    from verification.batch.runner import _client, _close
    from verification.io import load_network
    from verification.smt import verify
    from verification.vnnlib import read_vnnlib

    net_name, p = spec.split(":")
    net = load_network(src / "onnx" / f"ACASXU_run2a_{net_name}_batch_2000.onnx")
    prop = read_vnnlib(src / "vnnlib" / f"prop_{p}.vnnlib")
    out: dict = {"instance": f"{net_name}/prop_{p}", "load_start": _load()}
    t0 = time.monotonic()
    seq = verify(net, prop, timeout=timeout)
    out["sequential"] = {"status": seq.status, "wall": time.monotonic() - t0, "boxes": seq.details.get("boxes"),
                         "load": _load()}
    print(f"  {net_name}/prop_{p}: sequential verify {seq.status} {out['sequential']['wall']:.1f} s "
          f"({seq.details.get('boxes')} boxes)  load {_load()}", flush=True)
    for w in (1, 2):
        client, cluster = _client(w, None)
        try:
            client.run(lambda: None)
            pieces: list[dict] = []
            t0 = time.monotonic()
            res = verify_distributed(net, prop, timeout, client=client,
                                     on_piece=lambda r: pieces.append({k: r[k] for k in ("id", "seconds", "boxes", "kind", "worker")}))
            wall = time.monotonic() - t0
        finally:
            _close(client, cluster)
        out[f"workers{w}"] = {"status": res.status, "wall": wall, "pieces": len(pieces),
                              "boxes": res.details.get("boxes"), "workers_used": res.details.get("workers_used"),
                              "piece_seconds": sum(p["seconds"] for p in pieces), "load": _load()}
        print(f"  {net_name}/prop_{p}: distributed, {w} worker(s): {res.status} {wall:.1f} s wall, {len(pieces)} "
              f"pieces, {res.details.get('boxes')} boxes, sum of piece times {out[f'workers{w}']['piece_seconds']:.1f} s, "
              f"workers used {res.details.get('workers_used')}  load {_load()}", flush=True)
        if w == 1:
            out["tree"] = pieces
    if "workers1" in out and "workers2" in out:
        out["efficiency_2"] = out["workers1"]["wall"] / (2 * out["workers2"]["wall"])
        print(f"  parallel efficiency (T1 / 2 T2): {out['efficiency_2']:.2f}")
    tree = out.get("tree") or []
    if tree and out["workers1"]["status"] != "violated":  # a violated run stops early: its tree is partial
        total = sum(p["seconds"] for p in tree)
        sims = {n: tree_schedule(tree, n) for n in (1, 2, 4, 8, 16, 32)}
        out["simulated"] = sims
        print("  SIMULATED (model of the measured piece tree, not a measurement): " +
              ", ".join(f"{n} workers {t:.1f} s (speed-up {total / t:.1f})" for n, t in sims.items()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cap", type=float, default=10.0, help="timeout cap per instance (s)")
    ap.add_argument("--trivial", type=int, default=400, help="rows of the trivial set (batch)")
    ap.add_argument("--trivial-processes", type=int, default=20, help="rows of the trivial set run as processes")
    ap.add_argument("--full", action="store_true", help="the 186 instances of $ACASXU_DIR (or "
                    "benchmarks/data/acasxu from fetch_vnncomp2021.sh acasxu) instead of the 16 bundled ones")
    ap.add_argument("--skip-processes", action="store_true", help="do not run one process per instance")
    ap.add_argument("--scaleout", default="4,8,16,32", help="simulated worker counts (a model; see above)")
    ap.add_argument("--bab", nargs="*", default=[], metavar="NET:PROP",
                    help="distributed branch and bound of these ACAS Xu instances (e.g. 3_3:2 1_9:7)")
    ap.add_argument("--bab-timeout", type=float, default=300.0)
    ap.add_argument("--bab-only", action="store_true", help="only the --bab measurements")
    ap.add_argument("--json-out", default=None, metavar="FILE", help="write every number as JSON")
    args = ap.parse_args()
    record: dict = {"cores": os.cpu_count(), "load_start": _load()}
    if args.bab:
        src = SHARED if (SHARED / "onnx").is_dir() else DATA
        print(f"distributed branch and bound (networks from {src})")
        record["bab"] = [bab(spec, src, args.bab_timeout) for spec in args.bab]
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(record, indent=1))
    if args.bab_only:
        return
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
        summaries = {}
        for w in (1, 2):
            wall, summ = batch(mixed, d / f"out{w}", w)
            t = summ["totals"]
            res[w] = wall
            summaries[w] = summ
            record[f"mixed_workers{w}"] = {"wall": wall, "totals": t, "load": _load(),
                                           "per_instance": [{k: r.get(k) for k in ("id", "result", "wall", "seconds")}
                                                            for r in summ.get("instances", [])]}
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
        print(f"  parallel efficiency T1 / (2 T2) = {res[1] / (2 * res[2]):.2f}")
        walls = [float(r.get("wall") or 0.0) for r in summaries[1].get("instances", [])]
        record["mixed_task_seconds"] = sum(walls)

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
        record["trivial"] = {"n": args.trivial, "t1": t1, "tn": tn, "per_instance": per, "load": _load()}
        counts = [int(n) for n in args.scaleout.split(",") if n]
        sims = {n: list_schedule(walls, n, max(per, 0.0)) for n in [1, 2] + counts}
        record["simulated_scaleout"] = sims
        print(f"\nSIMULATED scale-out of the mixed set (a model: the 1-worker per-instance wall times, {sum(walls):.1f} s "
              f"in all, list-scheduled in CSV order + {1000 * max(per, 0):.0f} ms per instance; cluster start-up and "
              "the network loads of new workers are not modelled):")
        print("  " + ", ".join(f"{n} workers {t:.1f} s" for n, t in sims.items()) +
              f"   (measured: 1 worker {res[1]:.1f} s, 2 workers {res[2]:.1f} s, start-up included)")
        record["load_end"] = _load()
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
