"""``verification lipschitz MODEL``: a global Lipschitz bound."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from verification.cli.common import EXIT_INTERRUPTED, command_start, ignore_further_interrupts, add_model_arguments, check_seconds, emit, load_model, remaining
from verification.cli.progress import Progress, add_progress_arguments, enabled
from verification.errors import InvalidParameterError

HELP = "global Lipschitz bound of a saved network (certified unless --method sampled)"

AUTO_TIME_LIMIT = 60.0  # seconds: the default budget of --method auto


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.add_argument("--method", default="auto", help="auto (default), naive, exact, sampled, lipsdp-neuron, ...")
    p.add_argument("--norm", default="2", choices=["2", "inf"], help="input and output norm (default 2)")
    p.add_argument(
        "--output", default=None,
        help="bound one scalar output: an index K, or I-J for the logit difference f_I - f_J",
    )
    p.add_argument(
        "--solver", default="auto",
        help="SDP solver of the lipsdp methods: auto (MOSEK if licensed; else ipm, our block-tridiagonal "
        "interior-point method, for large or deep l2 LMIs; else CVXOPT), ipm, cvxopt-lowrank, CVXOPT, "
        "CLARABEL, SCS, MOSEK; every answer is certified in float64 afterwards",
    )
    p.add_argument(
        "--time-limit", type=float, default=None, metavar="SECONDS",
        help=f"wall-clock budget from the command's start (default {AUTO_TIME_LIMIT:g} s for --method auto, none "
        "for a named method). auto runs only the methods that fit and falls back to eclipse-fast, then naive; "
        "an SDP solve stopped by the limit still certifies its last iterate. The method used is printed",
    )
    p.add_argument("--proof", default=None, metavar="PATH",
                   help="write a proof of the certified bound to PATH ('verification check-proof MODEL PATH' checks "
                   "it; docs/proofs.md)")
    add_progress_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")


def parse_output(text: str | None, out_dim: int):
    """``K`` -> index; ``I-J`` -> vector e_I - e_J."""
    if text is None:
        return None
    try:
        if "-" in text.strip("-"):
            i, j = (int(t) for t in text.split("-"))
            if not (0 <= i < out_dim and 0 <= j < out_dim) or i == j:
                raise ValueError
            c = np.zeros(out_dim)
            c[i], c[j] = 1.0, -1.0
            return c
        k = int(text)
    except ValueError:
        raise InvalidParameterError(
            f"--output must be an index in [0, {out_dim - 1}] or I-J with distinct indices; got {text!r}"
        ) from None
    return k


def _sdp_events(bar: Progress):
    """The library's events, shortened for the bar (iteration and gap of the solver; its ρ is not certified)."""

    def sink(event: dict) -> None:
        if event.get("event") == "certified":
            bar(event)
        elif "iteration" in event:
            bar({"stage": event.get("stage", ""), "iter": event["iteration"], "gap": event.get("rel_gap", float("nan"))})
        elif event.get("stage"):
            bar({"stage": event["stage"]})

    return sink


def run(args: argparse.Namespace) -> int:
    from verification.lipschitz import lipschitz
    from verification.lipschitz.registry import LipschitzInterrupted

    started = command_start()
    check_seconds(args.time_limit, "--time-limit")
    net = load_model(args)
    output = parse_output(args.output, net.out_dim)
    norm = 2 if args.norm == "2" else "inf"
    method = args.method
    options: dict = {}
    if args.solver != "auto":
        if method not in ("auto", "eclipse") and not method.startswith("lipsdp"):
            raise InvalidParameterError(f"--solver applies to the SDP methods, not to --method {method}")
        options["solver"] = args.solver
    limit = args.time_limit if args.time_limit is not None else (AUTO_TIME_LIMIT if method == "auto" else None)
    if limit is not None:
        options["time_limit"] = max(remaining(limit, started), 1e-3)
    with Progress("lipschitz", enabled(args)) as bar:
        if method == "auto" or method.startswith("lipsdp"):
            options["progress"] = _sdp_events(bar)
        try:
            if args.proof is not None:
                options["proof"] = args.proof
            res = lipschitz(net, method=method, norm=norm, output=output, **options)
        except LipschitzInterrupted as exc:
            ignore_further_interrupts()
            bar.close()
            return _interrupted(args, exc.partial)
    text = str(res)
    pr = res.details.get("proof")
    if pr is not None:
        text += f"\nproof: {pr['path']} ({pr['bytes']} bytes; {pr['message']})"
    emit(dict(res.to_dict(), model=args.model), args.json, text)
    # exit 1 when an upper-bound method could not certify its answer
    return 0 if res.certified or res.details.get("kind") == "lower_bound" else 1


def _interrupted(args: argparse.Namespace, partial) -> int:
    """Ctrl-C: print the best certified bound found so far (labelled), exit 130."""
    if partial is None:
        if args.json:
            emit({"interrupted": True, "certified": False, "value": None, "model": args.model}, True, "")
        print("verification lipschitz: interrupted before any certified bound", file=sys.stderr)
    else:
        emit(dict(partial.to_dict(), interrupted=True, model=args.model), args.json,
             f"{partial}  (interrupted: best certified bound so far)")
        print("verification lipschitz: interrupted", file=sys.stderr)
    return EXIT_INTERRUPTED
