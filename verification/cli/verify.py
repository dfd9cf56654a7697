"""``verification verify MODEL PROPERTY.vnnlib``: complete verification of a VNN-LIB property.

A VNN-LIB 2.0 query over several networks takes its models the standard's way (VNN-LIB 2.0, "The verify
command"): ``verification verify --network f=a.onnx --network g=b.onnx QUERY.vnnlib``, one ``--network`` per
declared network that is not ``equal-to`` another; the networks are verified as one product network
(:mod:`verification.compose`).

Exit codes: 0 = property holds (``unsat``), 1 = violated (``sat``, counterexample printed / written),
3 = unknown or timeout, 2 = error (bad model / property / parameters; one-line message on stderr).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

from verification.cli.common import EXIT_INTERRUPTED, command_start, ignore_further_interrupts, add_model_arguments, emit, load_model, remaining
from verification.cli.progress import Progress, add_progress_arguments, enabled
from verification.errors import InvalidParameterError

HELP = "decide a VNN-LIB property (holds / violated with counterexample / unknown); VNN-COMP result file"

EXIT = {"holds": 0, "violated": 1, "unknown": 3}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.add_argument("property", metavar="PROPERTY", nargs="?", default=None,
                   help="VNN-LIB 1.0 or 2.0 file (.vnnlib); with --network the only positional argument")
    p.add_argument("--network", action="append", default=None, metavar="NAME=PATH",
                   help="model of the network NAME declared in a VNN-LIB 2.0 query (repeat once per declared network "
                   "that is not equal-to another); replaces MODEL")
    p.add_argument("--timeout", "--time-limit", dest="timeout", type=float, default=60.0, metavar="SECONDS",
                   help="wall-clock budget in seconds from the command's start, model loading included (default 60; "
                   "0 = unknown at once); --time-limit is the same option")
    p.add_argument("--result-file", default=None, help="write the VNN-COMP result (unsat / sat + assignment / timeout)")
    p.add_argument("--method", default="auto", choices=["auto", "input-split", "bab", "relu-split", "z3-plain"],
                   help="search strategy (default auto: input splitting for <= 12 inputs, else ReLU-splitting branch "
                        "and bound, bab)")
    p.add_argument("--seed", type=int, default=0, help="seed of the falsification sampler")
    p.add_argument("--proof", default=None, metavar="PATH",
                   help="when the answer is holds, write a proof there for 'verification check-proof' "
                   "(ReLU / leaky-ReLU nets; see docs/proofs.md)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="distributed branch and bound: input-split sub-boxes as tasks on a local Dask cluster of "
                   "N worker processes (docs/batch.md)")
    p.add_argument("--scheduler", default=None, metavar="ADDR",
                   help="distributed branch and bound on a running Dask cluster, e.g. tcp://10.0.0.1:8786")
    add_progress_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")


def network_options(args: argparse.Namespace) -> dict[str, str] | None:
    """``--network NAME=PATH`` options as ``{name: path}`` (``None`` without them); with them the one positional
    argument is the query.  One-line errors for a malformed or repeated name and a missing query."""
    if not getattr(args, "network", None):
        if args.property is None:
            raise InvalidParameterError("missing PROPERTY: verification verify MODEL PROPERTY (or --network NAME=PATH "
                                        "... PROPERTY)")
        return None
    if args.property is not None:
        raise InvalidParameterError(f"--network gives the models: pass the query alone, not MODEL {args.model!r} too")
    args.property, args.model = args.model, None
    models: dict[str, str] = {}
    for item in args.network:
        name, sep, path = item.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise InvalidParameterError(f"--network {item[:80]!r}: expected NAME=PATH")
        if name in models:
            raise InvalidParameterError(f"--network {name} is given twice")
        models[name] = path
    return models


def check_options(args: argparse.Namespace) -> None:
    """Options are checked before any work: a bad option never costs a solve."""
    if not (math.isfinite(args.timeout) and args.timeout >= 0):
        raise InvalidParameterError(f"--timeout must be a finite number of seconds >= 0; got {args.timeout!r}")
    if args.seed < 0:
        raise InvalidParameterError(f"--seed must be an integer >= 0; got {args.seed}")
    workers, scheduler = getattr(args, "workers", None), getattr(args, "scheduler", None)
    if workers is not None and workers < 1:
        raise InvalidParameterError(f"--workers must be an integer >= 1; got {workers}")
    if workers is not None and scheduler:
        raise InvalidParameterError("--workers and --scheduler exclude each other (a remote cluster has its own workers)")
    if scheduler is not None and not scheduler.strip():
        raise InvalidParameterError("--scheduler is empty")
    if (workers is not None or scheduler) and args.method not in ("auto", "input-split"):
        raise InvalidParameterError(f"--workers/--scheduler distribute input splitting; --method {args.method} "
                                    "cannot be distributed")
    if (workers is not None or scheduler) and getattr(args, "proof", None):
        raise InvalidParameterError("--proof is not available with --workers/--scheduler (proofs are written by "
                                    "the sequential search)")
    for option, value in (("--result-file", args.result_file), ("--proof", getattr(args, "proof", None))):
        if value:
            _check_writable(option, value)


def _check_writable(option: str, value: str) -> None:
    p = Path(value)
    if p.is_dir():
        raise InvalidParameterError(f"{option} {value!r} is a directory, not a file")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise InvalidParameterError(f"{option} {value!r}: directory {str(parent)!r} does not exist")
    if p.exists() and not os.access(p, os.W_OK) or not os.access(parent, os.W_OK):
        raise InvalidParameterError(f"{option} {value!r} is not writable")


def write_result_file(path: str, text: str) -> None:
    try:
        Path(path).write_text(text)
    except OSError as exc:
        raise InvalidParameterError(f"--result-file {path!r} could not be written: {exc.strerror or exc}") from None


def json_object(res, args: argparse.Namespace, query=None) -> dict:
    """The JSON of a result: ``counterexample_output`` is ``f(counterexample)`` (``output`` names the output
    selector in the other commands)."""
    obj = res.to_dict()
    obj["counterexample_output"] = obj.pop("output")
    version = query.version if query is not None else "1.0"
    out = dict(obj, model=args.model, property=args.property, vnnlib_version=version)
    if getattr(args, "models", None):
        out["networks"] = dict(args.models)
    return out


def _stats_events(bar: Progress):
    """Verifier counters -> bar: ``volume_done`` (fraction of the input volume decided) as the percentage."""

    def sink(stats: dict) -> None:
        event = {"boxes": int(stats.get("boxes", 0))}
        if "volume_done" in stats:
            event["done"] = 100.0 * float(stats["volume_done"])
        if stats.get("z3_leaves"):
            event["z3"] = int(stats["z3_leaves"])
        bar(event)

    return sink


def _verify_distributed(net, prop, timeout: float, args: argparse.Namespace):
    """Branch and bound with input-split sub-boxes as Dask tasks (verification.batch.distributed)."""
    import importlib.util

    if importlib.util.find_spec("distributed") is None:
        raise InvalidParameterError("--workers/--scheduler need dask.distributed: pip install "
                                    "'theorytools-verification[batch]'")
    from verification.batch.distributed import verify_distributed
    from verification.batch.runner import _client, _close

    started = time.monotonic()
    try:
        client, cluster = _client(args.workers, args.scheduler)
    except OSError as exc:
        raise InvalidParameterError(f"cannot reach the cluster: {exc}") from None
    try:
        left = max(0.0, timeout - (time.monotonic() - started)) if timeout else 0.0
        return verify_distributed(net, prop, left, client=client, seed=args.seed)
    finally:
        _close(client, cluster)


def _load_networks(args: argparse.Namespace, query):
    """The network of the query: MODEL, or the ``--network`` models (each file loaded once) combined into
    the product network over which a query on several networks is stated."""
    from verification.compose import query_network

    if args.models is None:
        if query.is_multi:
            names = ", ".join(n.name for n in query.networks)
            raise InvalidParameterError(f"the query declares {len(query.networks)} networks ({names}): give their "
                                        "models with --network NAME=PATH instead of MODEL")
        return load_model(args)
    if args.proof and query.is_multi:
        raise InvalidParameterError("--proof is not available for queries over several networks (check-proof takes "
                                    "one model)")
    if query.networks:
        declared = {n.name for n in query.networks}
        unknown = [name for name in args.models if name not in declared]
        if unknown:  # before loading anything
            raise InvalidParameterError(f"--network {unknown[0]}: the query declares no network {unknown[0]} (it "
                                        f"declares {', '.join(n.name for n in query.networks)})")
    loaded: dict[str, object] = {}
    models = {}
    for name, path in args.models.items():
        if path not in loaded:
            loaded[path] = load_model(argparse.Namespace(**{**vars(args), "model": path}))
        models[name] = loaded[path]
    return query_network(query, models)


def run(args: argparse.Namespace) -> int:
    from verification.smt import verify
    from verification.smt.options import reporting
    from verification.vnnlib2 import read_query

    started = command_start()
    args.models = network_options(args)
    check_options(args)
    query = read_query(args.property)  # property errors before the (slower) model load (VNN-LIB 1.0 or 2.0)
    prop = query.property
    net = _load_networks(args, query)
    if query.type_note():
        print(f"verification: note: {query.type_note()}", file=sys.stderr)
    timeout = 0.0 if args.timeout == 0 else remaining(args.timeout, started)
    distributed = args.workers is not None or bool(args.scheduler)
    if distributed and args.method == "auto" and net.in_dim > 12:
        raise InvalidParameterError(f"--workers/--scheduler distribute input splitting, which suits <= 12 inputs; "
                                    f"this network has {net.in_dim} (pass --method input-split to force it)")
    with Progress("verify", enabled(args) and not distributed, total=100.0, unit="%") as bar:
        try:
            if distributed:
                res = _verify_distributed(net, prop, timeout, args)
            else:
                with reporting(_stats_events(bar)):
                    res = verify(net, prop, timeout=timeout, method=args.method, seed=args.seed, proof=args.proof)
        except KeyboardInterrupt:
            ignore_further_interrupts()
            bar.close()
            if args.result_file:
                write_result_file(args.result_file, "unknown\n")
            obj = {"status": "unknown", "vnncomp": "unknown", "counterexample": None, "counterexample_output": None,
                   "seconds": time.monotonic() - started, "method": args.method, "reason": "interrupted",
                   "details": {}, "model": args.model, "property": args.property, "interrupted": True}
            if args.models:
                obj["networks"] = dict(args.models)
            emit(obj, args.json, "unknown (interrupted)")
            print("verification verify: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
    if args.result_file:
        write_result_file(args.result_file, query.result_text(res))
    text = str(res)
    if args.proof and res.status == "holds":
        d = res.details
        text += (f"\nproof: {args.proof} ({d.get('proof_nodes')} boxes, {d.get('proof_bytes')} bytes, "
                 f"{d.get('proof_trusted')} trusted certificates)")
    emit(json_object(res, args, query), args.json, text)
    return EXIT[res.status]
