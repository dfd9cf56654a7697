"""``verification verify MODEL PROPERTY.vnnlib``: complete verification of a VNN-LIB property.

Exit codes: 0 = property holds (``unsat``), 1 = violated (``sat``, counterexample printed / written),
3 = unknown or timeout, 2 = error (bad model / property / parameters; one-line message on stderr).
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from verification.cli.common import add_model_arguments, emit, load_model
from verification.errors import InvalidParameterError

HELP = "decide a VNN-LIB property (holds / violated with counterexample / unknown); VNN-COMP result file"

EXIT = {"holds": 0, "violated": 1, "unknown": 3}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.add_argument("property", metavar="PROPERTY", help="VNN-LIB file (.vnnlib)")
    p.add_argument("--timeout", type=float, default=60.0, help="wall-clock budget in seconds (default 60; 0 = unknown at once)")
    p.add_argument("--result-file", default=None, help="write the VNN-COMP result (unsat / sat + assignment / timeout)")
    p.add_argument("--method", default="auto", choices=["auto", "input-split", "relu-split", "z3-plain"],
                   help="search strategy (default auto: input splitting for <= 12 inputs, else ReLU splitting)")
    p.add_argument("--seed", type=int, default=0, help="seed of the falsification sampler")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def check_options(args: argparse.Namespace) -> None:
    """Options are checked before any work: a bad option never costs a solve."""
    if not (math.isfinite(args.timeout) and args.timeout >= 0):
        raise InvalidParameterError(f"--timeout must be a finite number of seconds >= 0; got {args.timeout!r}")
    if args.seed < 0:
        raise InvalidParameterError(f"--seed must be an integer >= 0; got {args.seed}")
    if args.result_file:
        p = Path(args.result_file)
        if p.is_dir():
            raise InvalidParameterError(f"--result-file {args.result_file!r} is a directory, not a file")
        parent = p.parent if str(p.parent) else Path(".")
        if not parent.is_dir():
            raise InvalidParameterError(f"--result-file {args.result_file!r}: directory {str(parent)!r} does not exist")
        if p.exists() and not os.access(p, os.W_OK) or not os.access(parent, os.W_OK):
            raise InvalidParameterError(f"--result-file {args.result_file!r} is not writable")


def write_result_file(path: str, text: str) -> None:
    try:
        Path(path).write_text(text)
    except OSError as exc:
        raise InvalidParameterError(f"--result-file {path!r} could not be written: {exc.strerror or exc}") from None


def run(args: argparse.Namespace) -> int:
    from verification.smt import verify
    from verification.vnnlib import read_vnnlib

    check_options(args)
    prop = read_vnnlib(args.property)  # property errors before the (slower) model load
    net = load_model(args)
    res = verify(net, prop, timeout=args.timeout, method=args.method, seed=args.seed)
    if args.result_file:
        write_result_file(args.result_file, res.vnncomp_text())
    obj = dict(res.to_dict(), model=args.model, property=args.property)
    emit(obj, args.json, str(res))
    return EXIT[res.status]
