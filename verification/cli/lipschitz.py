"""``verification lipschitz MODEL``: a global Lipschitz bound."""

from __future__ import annotations

import argparse

import numpy as np

from verification.cli.common import add_model_arguments, emit, load_model
from verification.errors import InvalidParameterError

HELP = "global Lipschitz bound of a saved network (certified unless --method sampled)"


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
        help="SDP solver: auto (MOSEK if licensed, else CVXOPT), CVXOPT, CLARABEL, SCS (always certified "
        "afterwards), MOSEK, ipm (experimental structured interior point)",
    )
    p.add_argument("--progress", action="store_true", help="print solver progress to stderr (long solves)")
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


def run(args: argparse.Namespace) -> int:
    from verification.lipschitz import lipschitz

    net = load_model(args)
    output = parse_output(args.output, net.out_dim)
    norm = 2 if args.norm == "2" else "inf"
    method = args.method
    options = {}
    if args.solver != "auto":
        if method not in ("auto", "eclipse") and not method.startswith("lipsdp"):
            raise InvalidParameterError(f"--solver applies to the SDP methods, not to --method {method}")
        options["solver"] = args.solver
    if args.progress and (method == "auto" or method.startswith("lipsdp")):
        options["progress"] = True
    res = lipschitz(net, method=method, norm=norm, output=output, **options)
    emit(res.to_dict(), args.json, str(res))
    # exit 1 when an upper-bound method could not certify its answer
    return 0 if res.certified or res.details.get("kind") == "lower_bound" else 1
