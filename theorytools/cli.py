"""Command-line interface: ``theorytools <command> ...``.

Small calculators over the theory modules; every command accepts ``--json``.  Bad parameters
(:class:`TheoryError`) give a one-line message on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable

import numpy as np

from theorytools.errors import TheoryError

__all__ = ["main"]

def _floats(text: str) -> np.ndarray:
    return np.array([float(t) for t in text.split(",")])


def _emit(obj: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(obj))
        return
    for key, val in obj.items():
        print(f"{key}: {val}")


# ---------------------------------------------------------------- hconsistency
def _hc_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tau", type=float, required=True, help="comp-sum parameter tau in [0, 2]")
    p.add_argument("--n", type=int, default=2, help="number of classes (matters for tau > 1)")
    p.add_argument("--t", default=None, help="0-1 conditional regrets (comma-separated): prints T_tau(t)")
    p.add_argument("--s", default=None, help="surrogate regrets (comma-separated): prints Gamma_tau(s)")


def _hc_run(args: argparse.Namespace) -> dict:
    from theorytools.hconsistency import error_transform, gamma_transform

    if args.t is None and args.s is None:
        raise TheoryError("give --t (for T_tau) and/or --s (for Gamma_tau)")
    out: dict = {"tau": args.tau, "n": args.n}
    if args.t is not None:
        t = _floats(args.t)
        out["t"], out["T"] = t.tolist(), np.atleast_1d(error_transform(t, args.tau, args.n)).tolist()
    if args.s is not None:
        s = _floats(args.s)
        out["s"], out["Gamma"] = s.tolist(), np.atleast_1d(gamma_transform(s, args.tau, args.n)).tolist()
    return out


# ---------------------------------------------------------------- deep linear
def _dl_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--s", type=float, required=True, help="singular value of the input-output correlation (a sum)")
    p.add_argument("--u0", type=float, required=True, help="initial mode strength")
    p.add_argument("--uf", type=float, required=True, help="final mode strength (0 < u0 < uf < s)")
    p.add_argument("--tau", type=float, default=1.0, help="time constant 1/learning rate (default 1: t counts iterations)")
    p.add_argument("--layers", default="3", help="numbers of layers N_l, comma-separated (3 = one hidden layer)")


def _dl_run(args: argparse.Namespace) -> dict:
    from theorytools.deep_linear import deep_learning_time, infinite_depth_learning_time

    layers = [int(v) for v in args.layers.split(",")]
    return {
        "layers": layers,
        "learning_time": [deep_learning_time(args.s, args.u0, args.uf, n, args.tau) for n in layers],
        "large_depth_learning_time": [infinite_depth_learning_time(args.s, args.u0, args.uf, n, args.tau) for n in layers],
    }


# ---------------------------------------------------------------- rmt
def _lr_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lam1", type=float, required=True, help="top eigenvalue of the full-data Hessian")
    p.add_argument("--sigma", type=float, required=True, help="per-entry std of the batch-noise matrix (Wigner model)")
    p.add_argument("--P", type=int, required=True, help="number of parameters")
    p.add_argument("--B", required=True, help="batch sizes, comma-separated")


def _lr_run(args: argparse.Namespace) -> dict:
    from theorytools.rmt import critical_batch_size, sgd_max_lr, spiked_wigner_outlier

    b = _floats(args.B)
    return {
        "B": b.tolist(),
        "lambda_batch_max": np.atleast_1d(spiked_wigner_outlier(args.lam1, args.sigma, args.P, b)).tolist(),
        "sgd_max_lr": np.atleast_1d(sgd_max_lr(args.lam1, args.sigma, args.P, b)).tolist(),
        "critical_batch_size": float(critical_batch_size(args.lam1, args.sigma, args.P)),
    }


# name -> (help, add_arguments, run)
_COMMANDS: dict[str, tuple[str, Callable, Callable]] = {
    "hconsistency": ("H-consistency bound functions T_tau and Gamma_tau of comp-sum losses", _hc_args, _hc_run),
    "deep-linear": ("learning time of a balanced mode of a deep linear net (Saxe et al. eq 11/15/17)", _dl_args, _dl_run),
    "lr-batch": ("largest stable SGD learning rate vs batch size from the spiked Wigner (BBP) law", _lr_args, _lr_run),
}


def package_version() -> str:
    """The installed distribution's version (``importlib.metadata``), else ``theorytools.__version__``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("theorytools-verification")
    except PackageNotFoundError:
        from theorytools import __version__

        return __version__


class _Version(argparse.Action):
    """``--version``, looked up only when asked."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog} {package_version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="theorytools", description="Numerical deep-learning theory calculators.")
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (help_text, add_args, run) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_args(p)
        p.add_argument("--json", action="store_true", help="print one JSON object")
        p.set_defaults(_run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _emit(args._run(args), args.json)
    except (TheoryError, ValueError) as exc:
        print(f"theorytools {args.command}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
