"""``verification check-proof MODEL [PROPERTY] PROOF``: check a proof written by ``verify --proof`` (with the
property) or by ``lipschitz --proof`` (without one: the proof's ``kind`` is ``"lipschitz"``), or re-check the
counterexample of a ``violated`` answer (a VNN-COMP ``sat`` result file or the JSON of ``verify --json``) in
exact arithmetic.  The property may be VNN-LIB 1.0 or 2.0 (read as ``verify`` reads it); the result file of a
2.0 query is in the 2.0 assignment format.

Exit codes: 0 = accepted (every certificate checked), 1 = rejected or not fully checked (one line naming the
failing step, or how many certificates are only trusted), 2 = bad input (model, property or a network the
checker does not handle).
"""

from __future__ import annotations

import argparse
import json
import re

from verification.cli.common import add_model_arguments, emit, load_model
from verification.errors import InvalidParameterError, UnsupportedLayerError

HELP = "check a proof of a holds answer with the independent checker (exit 0 accepted, 1 rejected)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    _files_and_options(p)
    # PROPERTY is optional before the required PROOF, and options may come between them: argparse (3.11) cannot
    # split such positionals around an option, so the rest is taken as it comes and parsed again in run()
    p.add_argument("files", nargs=argparse.REMAINDER, metavar="[PROPERTY] PROOF",
                   help="the VNN-LIB file of a verify proof (omitted for a Lipschitz proof), then the proof file "
                   "written by 'verification verify --proof' or 'verification lipschitz --proof'")


def _files_and_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _split_files(args: argparse.Namespace) -> tuple[str | None, str]:
    """``(property or None, proof)`` from the positional rest; options found there are set on ``args``."""
    q = argparse.ArgumentParser(prog="verification check-proof", add_help=False)
    add_model_arguments(q)
    _files_and_options(q)
    q.add_argument("paths", nargs="*")
    ns = q.parse_intermixed_args([args.model, *args.files])
    for key, val in vars(ns).items():
        if key not in ("model", "paths") and val != q.get_default(key):
            setattr(args, key, val)
    if not 1 <= len(ns.paths) <= 2:
        raise InvalidParameterError(f"check-proof takes MODEL [PROPERTY] PROOF; got {len(ns.paths)} file(s) after MODEL")
    return (None, ns.paths[0]) if len(ns.paths) == 1 else (ns.paths[0], ns.paths[1])


def _counterexample(text: str, proof, path: str, query) -> list[float] | None:
    """The input of a counterexample file (``sat`` then ``((X_0 v) ...)``, or for a VNN-LIB 2.0 ``query`` the
    2.0 assignment format, or a JSON object with a ``counterexample`` list), else ``None``."""
    if isinstance(proof, dict) and "format" not in proof and "counterexample" in proof:
        x = proof["counterexample"]
    elif proof is None and text.split()[:1] in (["sat"], ["violated"]):
        if query is not None and query.is_v2 and not re.search(r"\(\s*X_\d+\s", text):
            try:
                x = query.parse_assignment(text)[0] or None
            except ValueError as exc:
                raise InvalidParameterError(f"cannot read the counterexample in {path!r}: {exc}") from None
        else:
            found = {int(i): v for i, v in re.findall(r"\(\s*X_(\d+)\s+([^\s()]+)\s*\)", text)}
            x = [found.get(i) for i in range(len(found))]
    else:
        return None
    try:
        if not (isinstance(x, list) and x and all(v is not None for v in x)):
            raise ValueError("no input values")
        return [float(v) for v in x]
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"cannot read the counterexample in {path!r}: {exc}") from None


def run(args: argparse.Namespace) -> int:
    from verification.proofcheck import ChainError, check_proof
    from verification.proofcheck.counterexample import check_counterexample
    from verification.proofcheck.lipschitz import KIND, check_lipschitz_proof
    from verification.vnnlib2 import read_query

    args.property, args.proof = _split_files(args)
    try:
        with open(args.proof, "rb") as fh:
            text = fh.read().decode("utf-8", errors="replace")
        proof = json.loads(text) if text.lstrip().startswith(("{", "[")) else None
    except (OSError, ValueError, RecursionError) as exc:
        raise InvalidParameterError(f"cannot read the proof {args.proof!r}: {' '.join(str(exc).split())}") from None
    query = None if args.property is None else read_query(args.property)  # VNN-LIB 1.0 or 2.0
    x = _counterexample(text, proof, args.proof, query)
    if x is not None:  # a VNN-COMP 'sat' result file or the JSON of 'verify --json': re-check the counterexample
        if query is None:
            raise InvalidParameterError(f"{args.proof!r} holds a counterexample: give MODEL PROPERTY FILE")
        prop, net = query.property, load_model(args)
        try:
            rep = check_counterexample(net, prop, x)
        except ChainError as exc:
            raise UnsupportedLayerError(f"the counterexample checker: {exc}") from None
        emit({"accepted": rep.accepted, "message": rep.message, "seconds": rep.seconds, "model": args.model,
              "property": args.property, "counterexample": args.proof}, args.json, f"{rep.message} ({rep.seconds:.3f} s)")
        return 0 if rep.accepted else 1
    if proof is None:
        raise InvalidParameterError(f"cannot read the proof {args.proof!r}: neither JSON nor a 'sat' result file")
    lip = isinstance(proof, dict) and proof.get("kind") == KIND
    if lip and args.property is not None:
        raise InvalidParameterError(f"{args.proof!r} is a Lipschitz proof: give MODEL PROOF, without a property")
    if not lip and args.property is None:
        raise InvalidParameterError(f"{args.proof!r} is not a Lipschitz proof: give MODEL PROPERTY PROOF")
    prop = None if lip else query.property
    net = load_model(args)
    try:
        rep = check_lipschitz_proof(net, proof) if lip else check_proof(net, prop, proof)
    except ChainError as exc:
        raise UnsupportedLayerError(f"the proof checker: {exc}") from None
    obj = {"accepted": rep.accepted, "message": rep.message, "regions": rep.regions, "boxes": rep.nodes,
           "leaves": rep.leaves, "checked": rep.checked, "trusted": rep.trusted, "seconds": rep.seconds,
           "model": args.model, "property": args.property, "proof": args.proof}
    if lip:
        obj["bound"] = rep.bound
    emit(obj, args.json, f"{rep.message} ({rep.seconds:.3f} s)")
    return 0 if rep.accepted else 1
