"""``verification local-lipschitz MODEL --center FILE|values --eps E``: certified local l-inf Lipschitz bound."""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from verification.cli.common import EXIT_INTERRUPTED, command_start, ignore_further_interrupts, add_model_arguments, check_seconds, emit, load_model, remaining
from verification.cli.progress import Progress, add_progress_arguments, enabled
from verification.errors import InvalidParameterError

BAB_TIME_LIMIT = 60.0  # seconds: the default budget with --bab

HELP = "certified local l-inf Lipschitz bound on a box around a point (bound propagation, optional BaB)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.add_argument(
        "--center", required=True,
        help="box centre: a .npy/.txt/.csv file, or comma-separated values; a single value is repeated",
    )
    p.add_argument("--eps", required=True, type=float, help="l-inf radius of the box (input units)")
    p.add_argument("--output", default=None, type=int, help="bound one output index (default: max over outputs)")
    p.add_argument("--relaxation", default="crown", choices=["crown", "recurjac", "ibp"],
                   help="Jacobian relaxation (default crown = Shi et al. 2022)")
    p.add_argument("--bab", action="store_true", help="tighten with branch-and-bound on unstable ReLUs")
    p.add_argument("--time-limit", "--timeout", dest="time_limit", default=None, type=float, metavar="SECONDS",
                   help=f"wall-clock budget from the command's start (default {BAB_TIME_LIMIT:g}); branch-and-bound "
                   "gets what is left after loading the model (--timeout is the same option); the first bound "
                   "computation is not interruptible, and without --bab it is all there is")
    add_progress_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")


def parse_center(text: str, n: int) -> np.ndarray:
    """A file (.npy, or text with numbers separated by commas/whitespace) or comma-separated values."""
    try:
        if os.path.isfile(text):
            if os.path.getsize(text) > 64 * 2**20:
                raise ValueError("file larger than 64 MB")
            if text.endswith(".npy"):
                vals = np.load(text, allow_pickle=False)
                if vals.dtype.kind not in "biuf":
                    raise ValueError(f"array of dtype {vals.dtype}, expected real numbers")
            else:
                with open(text, encoding="utf-8", errors="strict") as fh:
                    vals = np.array([float(t) for t in fh.read().replace(",", " ").split()])
        else:
            vals = np.array([float(t) for t in text.split(",") if t.strip()])
        vals = np.asarray(vals, dtype=np.float64).reshape(-1)
    except (ValueError, TypeError, OSError, UnicodeDecodeError, EOFError) as exc:
        msg = " ".join(str(exc).split())[:200]
        raise InvalidParameterError(f"--center must be a file or comma-separated numbers; got {text[:100]!r} ({msg})") from None
    if vals.size == 0 or not np.all(np.isfinite(vals)):
        raise InvalidParameterError("--center must give finite numbers (no NaN or inf)")
    if vals.size == 1:
        vals = np.full(n, vals[0])
    if vals.size != n:
        raise InvalidParameterError(f"--center has {vals.size} values, the network has {n} inputs")
    return vals


def run(args: argparse.Namespace) -> int:
    from verification.bounds import local_lipschitz

    started = command_start()
    check_seconds(args.time_limit, "--time-limit")
    net = load_model(args)
    center = parse_center(args.center, net.in_dim)
    limit = BAB_TIME_LIMIT if args.time_limit is None else args.time_limit
    show = enabled(args) and args.bab
    with Progress("local-lipschitz BaB", show, total=limit, unit="s") as bar:
        # the budget left when BaB starts is what local_lipschitz gets (it starts BaB right after the bounds)
        res = local_lipschitz(net, center, args.eps, output=args.output, bab=args.bab,
                              timeout=max(remaining(limit, started), 1e-3), relaxation=args.relaxation,
                              progress=bar if args.bab else None)
    interrupted = bool(res.details.get("interrupted"))
    if interrupted:
        ignore_further_interrupts()
    d = res.to_dict()
    d["details"].pop("box_lower", None)
    d["details"].pop("box_upper", None)
    d["model"] = args.model
    if interrupted:
        d["interrupted"] = True
    emit(d, args.json, f"{res}  (interrupted: certified bound reached so far)" if interrupted else str(res))
    if interrupted:
        print("verification local-lipschitz: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0
