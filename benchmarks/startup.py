"""Start-up cost of the ``verification`` command, end to end (interleaved repeats, load recorded).

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/startup.py [--repeats 7]

Times, as subprocesses: ``verification --version``; ``verification info`` on an ``.nnet`` and an ``.onnx``;
``verification verify`` on two easy ACAS Xu instances (net 2_3, property 4: ``holds`` in ~0.1 s of work),
from the ``.nnet`` and the ``.onnx`` file; and ``python -c "import ..."`` of the modules a ``verify`` run
loaded before the lazy imports (the pre-change import cost, for the ratio).  The commands are run in
rotation so that a change of machine load hits all of them alike; the 1-minute load average is printed
before and after.  Reports the median and minimum wall time of each.

ONNX commands run twice: with the per-user cache of cross-checked networks off (every run imports onnx and
onnxruntime and cross-checks), and with it on (a fresh temporary cache directory, filled by the warm-up
round: what a second run on the same file, or ``run_instance.sh`` after ``prepare_instance.sh``, costs).
``PYTHONDONTWRITEBYTECODE`` is removed from the environment, so modules load from their compiled ``.pyc``
as in an installed wheel.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ACAS = ROOT / "tests" / "data" / "acasxu"
NNET = str(ACAS / "nnet" / "ACASXU_experimental_v2a_2_3.nnet")
ONNX = str(ACAS / "onnx" / "ACASXU_run2a_2_3_batch_2000.onnx")
PROP = str(ACAS / "vnnlib" / "prop_4.vnnlib")
PY = sys.executable
CLI = [PY, "-m", "verification"]

CASES = {
    "verification --version": [*CLI, "--version"],
    "verification info (.nnet)": [*CLI, "info", NNET],
    "verification info (.onnx), cache off": ["env", "VERIFICATION_CACHE_DIR=off", *CLI, "info", ONNX],
    "verification info (.onnx), cache on": [*CLI, "info", ONNX],
    "verification verify (.nnet, 2_3 prop 4)": [*CLI, "verify", NNET, PROP],
    "verification verify (.onnx, 2_3 prop 4), cache off": ["env", "VERIFICATION_CACHE_DIR=off", *CLI, "verify", ONNX, PROP],
    "verification verify (.onnx, 2_3 prop 4), cache on": [*CLI, "verify", ONNX, PROP],
    # what `verify` imported before the method modules were loaded lazily (lipschitz: numba, scipy.linalg, SDP)
    "import as before (verification.lipschitz methods + smt + io)":
        [PY, "-c", "import verification.smt, verification.io, verification.vnnlib; "
         "from verification.lipschitz import baseline, lipsdp, eclipse"],
    "import verification.smt, io, vnnlib (now)": [PY, "-c", "import verification.smt, verification.io, verification.vnnlib"],
    "python -c pass": [PY, "-c", "pass"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--before", default=None, metavar="DIR",
                    help="also time the CLI commands with DIR first on PYTHONPATH, e.g. an older tree unpacked by "
                    "`git archive <commit> verification | tar -x -C DIR`")
    args = ap.parse_args()
    cache = tempfile.mkdtemp(prefix="startup-cache-")
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", VERIFICATION_CACHE_DIR=cache)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    cases = dict(CASES)
    if args.before:
        for name, cmd in CASES.items():
            if name.startswith("verification ") and "--version" not in cmd and "cache on" not in name:
                cases[f"{name} [before]"] = ["env", f"PYTHONPATH={args.before}", *cmd]
    times: dict[str, list[float]] = {k: [] for k in cases}
    # the working directory comes first on sys.path for `python -m`: run the older tree from its own directory
    cwd = {k: (args.before if k.endswith("[before]") else ROOT) for k in cases}
    load0 = os.getloadavg()[0]
    for _ in range(args.repeats + 1):  # the first round warms the page cache and numba's cache
        for name, cmd in cases.items():
            t = time.perf_counter()
            r = subprocess.run(cmd, cwd=cwd[name], env=env, capture_output=True, text=True)
            dt = time.perf_counter() - t
            if r.returncode not in (0, 1, 3):
                raise SystemExit(f"{name}: exit {r.returncode}: {r.stderr.strip()[-300:]}")
            times[name].append(dt)
    load1 = os.getloadavg()[0]
    print(f"load average (1 min): {load0:.2f} before, {load1:.2f} after; {args.repeats} repeats (+1 warm-up)")
    print(f"{'command':<62} {'median s':>9} {'min s':>7}")
    for name, ts in times.items():
        ts = ts[1:]
        print(f"{name:<62} {statistics.median(ts):9.3f} {min(ts):7.3f}")
    before = statistics.median(times["import as before (verification.lipschitz methods + smt + io)"][1:])
    now = statistics.median(times["import verification.smt, io, vnnlib (now)"][1:])
    print(f"import cost of a verify run, before / now: {before:.3f} / {now:.3f} s (ratio {before / now:.2f})")


if __name__ == "__main__":
    main()
