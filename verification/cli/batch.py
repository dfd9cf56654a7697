"""``verification batch INSTANCES.csv``: verify many instances on a Dask cluster (docs/batch.md).

Results go to ``--out`` (default ``batch_results`` next to nothing: the current directory): one VNN-COMP
result file per instance, ``summary.csv`` and ``summary.json``.  A rerun skips finished instances.  Exit
codes: 0 the batch ran (whatever the verdicts), 2 bad input (one line), 130 interrupted (the partial summary
is written first).
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from verification.cli.common import EXIT_INTERRUPTED, emit
from verification.errors import InvalidParameterError

HELP = ("verify many VNN-COMP instances (onnx,vnnlib,timeout CSV), or bound the Lipschitz constants of many models "
        "(--lipschitz), on a local or remote Dask cluster; resumable")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("instances", metavar="INSTANCES.csv",
                   help="lines onnx,vnnlib,timeout[,expected] with paths relative to the CSV file; the onnx cell may "
                   "list (name, path) pairs for a VNN-LIB 2.0 query over several networks")
    p.add_argument("--lipschitz", action="store_true",
                   help="the CSV lists Lipschitz jobs model[,method[,norm[,time_limit]]] (defaults auto, 2, 600 s): "
                   "one certified bound per row")
    p.add_argument("--out", default="batch_results", metavar="DIR",
                   help="output directory: ID.txt (VNN-COMP result), ID.json, summary.csv, summary.json "
                   "(default ./batch_results)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes of the local cluster (default: one per core)")
    p.add_argument("--scheduler", default=None, metavar="ADDR",
                   help="use a running Dask scheduler, e.g. tcp://10.0.0.1:8786, instead of a local cluster")
    p.add_argument("--timeout-scale", type=float, default=1.0, metavar="X",
                   help="multiply every instance's timeout by X (default 1)")
    p.add_argument("--method", default="auto", choices=["auto", "input-split", "bab", "relu-split", "z3-plain"],
                   help="search strategy of verify (default auto)")
    p.add_argument("--seed", type=int, default=0, help="seed of the falsification sampler")
    p.add_argument("--progress", action="store_true", help="progress bar even when stderr is not a terminal")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")


def check_options(args: argparse.Namespace) -> None:
    if args.workers is not None and args.workers < 1:
        raise InvalidParameterError(f"--workers must be an integer >= 1; got {args.workers}")
    if args.workers is not None and args.scheduler:
        raise InvalidParameterError("--workers and --scheduler exclude each other (a remote cluster has its "
                                    "own workers)")
    if not (math.isfinite(args.timeout_scale) and args.timeout_scale > 0):
        raise InvalidParameterError(f"--timeout-scale must be a finite number > 0; got {args.timeout_scale!r}")
    if args.seed < 0:
        raise InvalidParameterError(f"--seed must be an integer >= 0; got {args.seed}")
    if args.scheduler and not args.scheduler.strip():
        raise InvalidParameterError("--scheduler is empty")
    if args.lipschitz and args.method != "auto":
        raise InvalidParameterError("--method chooses the verification search; with --lipschitz the method of each "
                                    "job is the CSV's second column")


def _dask_available() -> None:
    import importlib.util

    if importlib.util.find_spec("distributed") is None:
        raise InvalidParameterError("verification batch needs dask.distributed: pip install "
                                    "'theorytools-verification[batch]'")


class _Bar:
    """tqdm bar over the instances to run (stderr), with the verdict counts as postfix."""

    def __init__(self, show: bool, unit: str = "instance(s)"):
        self.show, self.bar, self.counts, self.unit = show, None, {}, unit

    def start(self, skipped: int, todo: int) -> None:
        if skipped:
            print(f"verification batch: {skipped} {self.unit} already finished, {todo} to run", file=sys.stderr)
        if self.show and todo:
            from tqdm import tqdm

            self.bar = tqdm(total=todo, desc="batch", unit="inst", file=sys.stderr, dynamic_ncols=True,
                            bar_format="{desc}: {n_fmt}/{total_fmt} |{bar:20}| {elapsed}<{remaining}{postfix}")

    def result(self, rec: dict) -> None:
        self.counts[rec["result"]] = self.counts.get(rec["result"], 0) + 1
        if self.bar is not None:
            self.bar.set_postfix_str(" ".join(f"{k} {v}" for k, v in sorted(self.counts.items())), refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _text(summary: dict, out: str) -> str:
    t = summary["totals"]
    line = (f"{t['finished']}/{t['instances']} finished: {t['unsat']} unsat, {t['sat']} sat "
            f"({t['confirmed_sat']} confirmed), {t['timeout']} timeout, {t['unknown']} unknown, {t['error']} error; "
            f"this run {summary['batch_wall']:.3g} s wall")
    if t["score"] is not None:
        line += f"\nscore {t['score']} on {t['scored']} instances with an expected answer " \
                f"({t['correct']} correct, {t['wrong']} wrong)"
    return line + f"\nresults in {out}/ (summary.csv, summary.json)"


def _lipschitz_text(summary: dict, out: str) -> str:
    t = summary["totals"]
    return (f"{t['finished']}/{t['jobs']} finished: {t['certified']} certified, {t['not_certified']} not certified, "
            f"{t['error']} error; this run {summary['batch_wall']:.3g} s wall\nresults in {out}/ (summary.csv, "
            "summary.json)")


def run(args: argparse.Namespace) -> int:
    from verification.batch import read_instances, run_batch
    from verification.cli.progress import enabled

    check_options(args)
    kind: dict = {}
    text = _text
    if args.lipschitz:
        from verification.batch import lipschitz_jobs as lj

        instances = lj.read_jobs(args.instances)
        kind = {"task": lj.lipschitz_job, "load": lj.load_job_record, "summarize": lj.write_job_summary,
                "error_record": lj.job_error_record}
        options: dict = {}
        text = _lipschitz_text
    else:
        instances = read_instances(args.instances)
        options = {"method": args.method, "seed": args.seed}
    _dask_available()
    bar = _Bar(enabled(args), "job(s)" if args.lipschitz else "instance(s)")
    try:
        res = run_batch(instances, args.out, workers=args.workers, scheduler=args.scheduler,
                        timeout_scale=args.timeout_scale, options=options, on_start=bar.start, on_result=bar.result,
                        **kind)
    except OSError as exc:  # scheduler unreachable, ...
        raise InvalidParameterError(f"cannot reach the cluster: {exc}") from None
    finally:
        bar.close()
    summary = dict(res.summary)
    summary.pop("instances", None) if not args.json else None
    summary.pop("jobs", None) if not args.json else None
    emit(res.summary if args.json else summary, args.json, text(res.summary, args.out))
    if res.interrupted:
        print("verification batch: interrupted (finished results and the partial summary are written; rerun to "
              "resume)", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0
