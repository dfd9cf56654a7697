#!/usr/bin/env python
"""Adversarial trust campaign: checks the toolkit's promises from the outside.

    .venv/bin/python benchmarks/campaign/trust.py --quick          # <= 3 min on 2 cores
    .venv/bin/python benchmarks/campaign/trust.py                  # full size, <= 20 min
    .venv/bin/python benchmarks/campaign/trust.py --quick --parts 3 --seed 7

Parts (``--parts``, comma-separated):
  1  soundness   random nets x activations x formats x methods vs independent ground truth
  2  fidelity    the loaded function is the function in the file (or a refusal / a note)
  3  bad-input   >= 1000 bad inputs (full size): exit 2, one stderr line, fast, bounded memory
  4  consistency huge boxes / weights for verify, auto on ill-conditioned nets, sampled <= exact

Ground truth never calls verification.smt / .bounds / .lipschitz: our own Z3 encoding with exact
rationals, exact 1-D piecewise-linear analysis, torch-autograd sampling.  Every failure is saved as a
self-contained reproducer under benchmarks/campaign/failures/ (cmd.sh + model + property).  Exit code: 0 if
no failure, 1 otherwise.  See docs/benchmarks_campaign.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from report import CATEGORIES, Campaign  # noqa: E402
from runner import Runner  # noqa: E402

PROFILES = {
    "quick": {
        "p1_nets": 16, "props_per_net": 2, "sdp_every": 4, "api_every": 2, "z3_timeout": 3.0, "verify_timeout": 8,
        "budget": {"p1-soundness": 70, "p2-fidelity": 25, "p3-bad-input": 45, "p4-consistency": 25},
        "p3_flips": 14, "p3_truncs": 8, "p3_exec_every": 40, "p4_sampled": 4, "p4_verify": 2,
    },
    "full": {
        "p1_nets": 170, "props_per_net": 3, "sdp_every": 1, "api_every": 1, "z3_timeout": 15.0, "verify_timeout": 20,
        "budget": {"p1-soundness": 620, "p2-fidelity": 150, "p3-bad-input": 300, "p4-consistency": 110},
        "p3_flips": 120, "p3_truncs": 30, "p3_exec_every": 12, "p4_sampled": 16, "p4_verify": 8,
    },
}
PART_MODULES = {"1": "part_soundness", "2": "part_fidelity", "3": "part_badinput", "4": "part_consistency"}


class Ctx:
    def __init__(self, camp, runner, profile, work, seed):
        self.camp, self.runner, self.profile, self.work, self.seed = camp, runner, profile, work, seed
        self.models: list = []
        self.p3_table = defaultdict(Counter)
        self._start: dict = {}

    def begin(self, part: str) -> None:
        self._start[part] = time.time()

    def out_of_time(self, part: str) -> bool:
        return time.time() - self._start.get(part, time.time()) > self.profile["budget"][part]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small size (<= 3 minutes on 2 cores)")
    ap.add_argument("--parts", default="1,2,3,4", help="comma-separated parts to run (default 1,2,3,4)")
    ap.add_argument("--seed", type=int, default=20240601, help="campaign seed (default fixed: reproducible)")
    ap.add_argument("--exec-every", type=int, default=None,
                    help="also re-run every k-th forked CLI case through the real executable (0 = off)")
    ap.add_argument("--failures", default=os.path.join(HERE, "failures"), help="reproducer directory")
    ap.add_argument("--keep-work", action="store_true", help="keep benchmarks/campaign/work/ afterwards")
    ap.add_argument("--json", default=os.path.join(HERE, "last_run.json"), help="write the summary here")
    args = ap.parse_args(argv)
    size = "quick" if args.quick else "full"
    profile = PROFILES[size]
    work = os.path.join(HERE, "work")
    if os.path.isdir(work):
        shutil.rmtree(work)
    os.makedirs(work)
    exec_every = args.exec_every if args.exec_every is not None else (0 if args.quick else 25)
    camp = Campaign(args.failures, args.seed, size)
    runner = Runner(work, exec_every=exec_every)
    runner.prestart()
    ctx = Ctx(camp, runner, profile, work, args.seed)
    load = _uptime()
    print(f"trust campaign: size={size} seed={args.seed} parts={args.parts}  [{load}]", flush=True)
    wanted = [p.strip() for p in args.parts.split(",") if p.strip()]
    if "2" in wanted and "1" not in wanted:
        print("note: part 2 checks the model files written by part 1; running part 1's file generation only")
    try:
        for p in sorted(wanted):
            mod = __import__(PART_MODULES[p])
            t0 = time.time()
            ctx.begin(mod.PART)
            if p == "2" and "1" not in wanted:
                _models_only(ctx)
            mod.run(ctx)
            print(f"  part {p} ({mod.PART}): {camp.cases[mod.PART]} cases, "
                  f"{sum(camp.counts[mod.PART].values())} failures, {time.time() - t0:.0f} s", flush=True)
    finally:
        runner.close()
    dt = time.time() - camp.t0
    print()
    print(f"=== results ({size}, seed {args.seed}, {dt:.0f} s, {load}) ===")
    print(camp.table())
    print()
    print("categories: " + "; ".join(f"{c} = {d}" for c, d in CATEGORIES))
    if ctx.p3_table:
        print("\n--- part 3 by input class (cases / ok / failures by category) ---")
        for k in sorted(ctx.p3_table):
            c = ctx.p3_table[k]
            fails = ", ".join(f"{cat} {n}" for cat, n in c.items() if cat not in ("cases", "ok"))
            print(f"  {k:14s} {c['cases']:5d} cases  {c['ok']:5d} ok  {fails}")
    if camp.skipped:
        print("\nskipped (time budget): " + ", ".join(f"{k}: {v}" for k, v in camp.skipped.items()))
    if runner.fork_exec_disagreements:
        print(f"\nfork vs exec disagreements: {len(runner.fork_exec_disagreements)}")
        for a in runner.fork_exec_disagreements[:5]:
            print("   ", a)
    print(f"CLI runs: {runner.n_fork} forked, {runner.n_exec} through {os.path.relpath(runner_exe(), os.getcwd())}")
    for table, cnt in sorted(camp.info.items()):
        print(f"\n--- {table} ---")
        for k, v in cnt.most_common(60):
            print(f"  {v:7g}  {k}")
    if camp.notes:
        print("\n--- notes ---")
        for n in camp.notes[:40]:
            print("  " + n)
    print(f"\n=== {len(camp.classes)} distinct failure classes (most severe first) ===")
    for line in camp.class_lines():
        print(line)
    summary = camp.to_json()
    summary.update(uptime=load, p3_table={k: dict(v) for k, v in ctx.p3_table.items()},
                   fork_exec_disagreements=len(runner.fork_exec_disagreements))
    with open(args.json, "w") as fh:
        json.dump(summary, fh, indent=1, default=str)
    if not args.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    n = camp.n_failures()
    print(f"\n{n} failures; reproducers in {os.path.relpath(args.failures, os.getcwd())}/; summary in "
          f"{os.path.relpath(args.json, os.getcwd())}")
    return 1 if n else 0


def runner_exe() -> str:
    from runner import VERIFICATION

    return VERIFICATION


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except Exception:
        return "uptime unavailable"


def _models_only(ctx) -> None:
    """Write part 1's model files (no checks) so that part 2 can run alone."""
    import numpy as np

    import formats
    import part_soundness as S

    for i in range(ctx.profile["p1_nets"]):
        rng, net = S.make_net(ctx, i)
        fmt = S.choose_format(net, i, rng)
        d = os.path.join(ctx.work, f"p1_{i:04d}")
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, f"net_{fmt}{S.EXT[fmt]}")
        domain = (-np.full(net.in_dim, 50.0), np.full(net.in_dim, 50.0)) if fmt == "nnet" else None
        stored, extra = formats.write(net, fmt, path, rng, domain)
        ctx.models.append({"path": path, "fmt": fmt, "net": stored, "extra": extra, "domain": domain, "i": i})


if __name__ == "__main__":
    sys.exit(main())
