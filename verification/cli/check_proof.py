"""``verification check-proof MODEL PROPERTY PROOF``: check a proof written by ``verify --proof``.

Exit codes: 0 = accepted (every certificate checked), 1 = rejected or not fully checked (one line naming the
failing step, or how many certificates are only trusted), 2 = bad input (model, property or a network the
checker does not handle).
"""

from __future__ import annotations

import argparse
import json

from verification.cli.common import add_model_arguments, emit, load_model
from verification.errors import InvalidParameterError, UnsupportedLayerError

HELP = "check a proof of a holds answer with the independent checker (exit 0 accepted, 1 rejected)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.add_argument("property", metavar="PROPERTY", help="VNN-LIB file (.vnnlib)")
    p.add_argument("proof", metavar="PROOF", help="proof file written by 'verification verify --proof'")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from verification.proofcheck import ChainError, check_proof
    from verification.vnnlib import read_vnnlib

    prop = read_vnnlib(args.property)
    try:
        with open(args.proof, "rb") as fh:
            proof = json.load(fh)
    except (OSError, ValueError, RecursionError) as exc:
        raise InvalidParameterError(f"cannot read the proof {args.proof!r}: {' '.join(str(exc).split())}") from None
    net = load_model(args)
    try:
        rep = check_proof(net, prop, proof)
    except ChainError as exc:
        raise UnsupportedLayerError(f"the proof checker: {exc}") from None
    obj = {"accepted": rep.accepted, "message": rep.message, "regions": rep.regions, "boxes": rep.nodes,
           "leaves": rep.leaves, "checked": rep.checked, "trusted": rep.trusted, "seconds": rep.seconds,
           "model": args.model, "property": args.property, "proof": args.proof}
    emit(obj, args.json, f"{rep.message} ({rep.seconds:.3f} s)")
    return 0 if rep.accepted else 1
