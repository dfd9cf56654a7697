"""The task a batch worker runs: load (cached per process), verify one instance, return a plain dict.

Workers are long-lived processes.  Each keeps the networks and properties it has loaded, keyed by the
resolved path, the file's modification time and size and the loader options, so a network shared by many
instances is loaded (and cross-checked against onnxruntime) once per worker.  The numba kernels the
verifier compiles stay warm for the life of the process.
"""

from __future__ import annotations

import os
import socket
import time
from collections import OrderedDict
from typing import Any

import numpy as np

from verification.compose import query_network
from verification.errors import VerificationError
from verification.io import load_network
from verification.smt import verify
from verification.smt.confirm import confirm_property
from verification.vnnlib2 import Query, read_query

__all__ = ["verify_instance", "warm_up", "parse_assignment", "cache_info"]

CACHE_SIZE = 16  # networks (and, separately, properties) kept per worker
_NETS: OrderedDict = OrderedDict()
_PROPS: OrderedDict = OrderedDict()
_HITS = {"net": 0, "prop": 0}


def _key(path: str, options: tuple) -> tuple:
    st = os.stat(path)
    return (os.path.realpath(path), st.st_mtime_ns, st.st_size, options)


def _cached(cache: OrderedDict, key: tuple, make, kind: str):
    if key in cache:
        cache.move_to_end(key)
        _HITS[kind] += 1
        return cache[key], True
    value = make()
    cache[key] = value
    while len(cache) > CACHE_SIZE:
        cache.popitem(last=False)
    return value, False


def cached_network(path: str, loader: dict) -> tuple:
    """The network of ``path`` loaded with ``loader`` options, kept in this worker's cache (keyed by the file's
    path, mtime and size); returns ``(net, hit)``."""
    return _cached(_NETS, _key(path, tuple(sorted(loader.items()))), lambda: load_network(path, **loader), "net")


def cache_info() -> dict:
    """Entries and hits of this process's caches (for tests and the benchmark)."""
    return {"nets": len(_NETS), "props": len(_PROPS), "net_hits": _HITS["net"], "prop_hits": _HITS["prop"],
            "pid": os.getpid()}


def warm_up() -> int:
    """Run once per worker before the first task: the imports above are done; returns the pid."""
    return os.getpid()


def parse_assignment(text: str, query: Query | None = None) -> tuple[list[float], list[float]]:
    """Input and output values of a VNN-COMP ``sat`` result text, in index order (VNN-LIB 1.0 format, or the
    2.0 assignment format when ``query`` is a 2.0 query)."""
    return (query or Query(None)).parse_assignment(text)


def _record(instance: dict, **fields: Any) -> dict:
    rec = {"id": instance["id"], "onnx": instance["onnx"], "vnnlib": instance["vnnlib"],
           "timeout": instance["timeout"], "budget": instance.get("budget", instance["timeout"]),
           "expected": instance.get("expected", ""), "result": "error", "status": "error", "seconds": 0.0,
           "wall": 0.0, "load_seconds": 0.0, "cached": False, "method": "", "reason": "", "error": "",
           "counterexample": None, "output": None, "confirmed": None, "text": "error\n",
           "worker": f"{socket.gethostname()}:{os.getpid()}"}
    if instance.get("networks"):
        rec["networks"] = [list(pair) for pair in instance["networks"]]
    rec.update(fields)
    return rec


def _network(instance: dict, query: Query, loader: dict) -> tuple:
    """The instance's network (cached per file) and whether the cache had it; several ``networks`` are
    combined into the product network of the query (:func:`verification.compose.query_network`)."""
    pairs = instance.get("networks") or ()
    if not pairs:
        return cached_network(instance["onnx"], loader)
    models, hits = {}, []
    for name, path in pairs:
        models[name], hit = cached_network(path, loader)
        hits.append(hit)
    return query_network(query, models), all(hits)


def verify_instance(instance: dict, options: dict | None = None) -> dict:
    """Verify one instance (a dict from :meth:`Instance.to_dict` plus ``budget``, the scaled timeout).

    Returns ``result`` (the VNN-COMP answer: ``sat``/``unsat``/``timeout``/``unknown``/``error``), ``text``
    (the result file's contents), ``seconds`` (the verifier's time), ``wall`` (load + verify), the
    counterexample and its output as lists, ``confirmed`` (the counterexample as written in ``text``,
    re-read and re-checked against the property as written) and ``error`` (one line).  Never raises for a
    bad model or property: those become ``result="error"``.
    """
    options = dict(options or {})
    started = time.monotonic()
    budget = float(instance.get("budget", instance["timeout"]))
    loader = {k: options.pop(k) for k in ("arch", "trust", "drop_softmax") if k in options}
    try:
        t0 = time.monotonic()
        query, _ = _cached(_PROPS, _key(instance["vnnlib"], ()), lambda: read_query(instance["vnnlib"]), "prop")
        prop = query.property
        net, hit = _network(instance, query, loader)
        load_seconds = time.monotonic() - t0
        left = max(0.0, budget - (time.monotonic() - started))
        res = verify(net, prop, timeout=left, **options)
        text = query.result_text(res)
        confirmed = None
        cex = out = None
        if res.status == "violated":
            xs, _ = parse_assignment(text, query)
            confirmed = bool(confirm_property(net, prop, np.asarray(xs, dtype=np.float64)))
            cex = [float(v) for v in res.counterexample]
            out = [float(v) for v in res.output]
        return _record(instance, result=text.split("\n", 1)[0], status=res.status, seconds=float(res.seconds),
                       wall=time.monotonic() - started, load_seconds=load_seconds, cached=hit, method=res.method,
                       reason=res.reason, counterexample=cex, output=out, confirmed=confirmed, text=text,
                       vnnlib_version=query.version)
    except VerificationError as exc:
        return _record(instance, error=" ".join(str(exc).split()) or type(exc).__name__,
                       wall=time.monotonic() - started)
    except MemoryError:
        return _record(instance, error="out of memory", wall=time.monotonic() - started)
    except Exception as exc:  # a bug of ours: recorded, the batch goes on
        return _record(instance, error=f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())}",
                       wall=time.monotonic() - started)
