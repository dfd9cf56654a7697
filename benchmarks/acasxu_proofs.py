"""ACAS Xu ``holds`` instances with proofs: solve, write the proof, check it with the independent checker.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/acasxu_proofs.py [--only 3_3/prop_2,4_2/prop_2] [--cap S] [--dir D]
        [--out F]

Runs every ``holds`` instance of acasxu_instances.csv (the 139 unsat ones of benchmarks/acasxu.py's ground
truth; ``--only``: the listed ones) with ``verify(..., proof=...)`` at min(listed timeout, cap), then
``check_proof``.  Prints and writes per instance (CSV): solve seconds (without writing the proof), proof
writing seconds, check seconds, proof bytes, boxes, certificates per kind (crown / alpha / lp / trusted),
accepted, and the process CPU seconds of verify (search + writing) and of the check (the machine is shared:
wall times vary with its load); then the totals.  The networks and properties are read from the folder benchmarks/acasxu.py uses
($ACASXU_DIR, else what ``benchmarks/fetch_vnncomp2021.sh acasxu`` writes), outside the repository.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import csv
import json
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from acasxu import ROOT, expected, instances  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated instances, e.g. 3_3/prop_2,4_2/prop_2")
    ap.add_argument("--cap", type=float, default=116.0)
    ap.add_argument("--dir", default="acasxu_proofs", help="where the proof files go")
    ap.add_argument("--out", default="acasxu_proofs.csv")
    args = ap.parse_args(argv)

    import verification as v
    from verification.proofcheck import check_proof
    from verification.vnnlib import read_vnnlib

    only = {s for s in args.only.split(",") if s}
    sel = [(n, p, t) for n, p, t in instances() if expected(n, p) == "unsat"
           and (not only or f"{n}/prop_{p}" in only)]
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    rows = []
    head = ["instance", "status", "solve_s", "write_s", "check_s", "bytes", "boxes", "crown", "alpha", "lp",
            "trusted", "accepted", "message", "cpu_solve_and_write_s", "cpu_check_s"]
    for net_id, prop, tmo in sel:
        name = f"{net_id}/prop_{prop}"
        net = v.load_network(ROOT / "onnx" / f"ACASXU_run2a_{net_id}_batch_2000.onnx")
        p = read_vnnlib(ROOT / "vnnlib" / f"prop_{prop}.vnnlib")
        path = Path(args.dir) / f"{net_id}_prop_{prop}.json"
        c0 = time.process_time()
        res = v.verify(net, p, timeout=min(tmo, args.cap), proof=str(path))
        cpu_solve = time.process_time() - c0
        if res.status != "holds":
            rows.append([name, res.status, f"{res.seconds:.3f}", "", "", "", "", "", "", "", "", False, res.reason,
                         "", ""])
            print(*rows[-1], sep="\t", flush=True)
            continue
        write = float(res.details.get("proof_seconds", 0.0))
        c0 = time.process_time()
        rep = check_proof(net, p, str(path))
        cpu_check = time.process_time() - c0
        kinds = Counter(c["by"] for r in json.loads(path.read_text())["regions"] for nd in r["nodes"]
                        for c in nd.get("refute", []))
        rows.append([name, res.status, f"{res.seconds - write:.3f}", f"{write:.3f}", f"{rep.seconds:.3f}",
                     res.details.get("proof_bytes"), rep.nodes, kinds["crown"], kinds["alpha"], kinds["lp"],
                     kinds["trusted"], rep.accepted, rep.message, f"{cpu_solve:.3f}", f"{cpu_check:.3f}"])
        print(*rows[-1], sep="\t", flush=True)
    with open(args.out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(head)
        w.writerows(rows)
    done = [r for r in rows if r[1] == "holds"]
    tot = lambda i: sum(float(r[i]) for r in done)  # noqa: E731
    print(f"\n{sum(r[11] is True for r in rows)}/{len(sel)} accepted (fully checked); holds {len(done)}; "
          f"solve {tot(2):.1f} s, writing {tot(3):.1f} s, check {tot(4):.1f} s; "
          f"{sum(int(r[5]) for r in done)} bytes, {sum(int(r[6]) for r in done)} boxes; CPU: solve + writing "
          f"{tot(13):.1f} s, check {tot(14):.1f} s; checked longer than solved on "
          f"{sum(float(r[4]) > float(r[2]) for r in done)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
