"""Benchmark instances: the VNN-COMP ``instances.csv`` layout, read with line-numbered one-line errors.

Each line is ``onnx,vnnlib,timeout`` with paths relative to the CSV file; an optional fourth column holds
the expected answer (``sat``, ``unsat``, or empty / ``unknown`` when it is not known) and is used only for
scoring.  A first line ``onnx,vnnlib,timeout[,expected]`` (first cell ``onnx``, ``network``, ``model`` or ``net``) is a
header.

The network column may also be a list of ``(declared name, path)`` pairs (VNN-COMP 2026, for VNN-LIB 2.0
queries over several networks, e.g. ``"[('f', 'a.onnx'), ('g', 'b.onnx')]"``): one pair is read as its path,
several give the instance's ``networks``.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from verification.errors import InvalidParameterError, VerificationError
from verification.vnnlib2 import read_query

__all__ = ["Instance", "read_instances", "EXPECTED"]

#: accepted spellings of the expected-answer column -> the VNN-COMP answer ("" = not known)
EXPECTED = {"sat": "sat", "violated": "sat", "unsat": "unsat", "holds": "unsat", "": "", "unknown": "",
            "?": ""}
MAX_INSTANCES = 1_000_000
HEADER = {"onnx", "network", "model", "net"}  # first cell of an optional header line


@dataclass(frozen=True)
class Instance:
    """One row: ``id`` names its result files (stable across reruns of the same CSV)."""

    id: str
    onnx: str  # absolute path
    vnnlib: str  # absolute path
    timeout: float  # seconds, as written in the CSV
    expected: str = ""  # "sat", "unsat" or "" (not known)
    row: int = 0  # line number in the CSV
    networks: tuple = ()  # several networks: ((declared name, absolute path), ...); onnx is the first path

    def to_dict(self) -> dict:
        return asdict(self)


class InstanceFileError(InvalidParameterError):
    """A malformed instances CSV (one line naming the file and line)."""


def file_stem(path: str) -> str:
    name = Path(path).name
    for suffix in (".gz", ".onnx", ".vnnlib", ".nnet", ".npz", ".pt", ".pth", ".mat"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60] or "x"


def _instance_id(onnx_rel: str, vnnlib_rel: str, seen: dict[str, int], stem: str | None = None) -> str:
    """``<net stem>__<property stem>__<8 hex digits of both paths>``; a repeated row gets ``-2``, ``-3``...
    (several networks: ``onnx_rel`` is ``name=path;...`` and ``stem`` their stems joined by ``+``)."""
    digest = hashlib.sha1(f"{onnx_rel}\0{vnnlib_rel}".encode()).hexdigest()[:8]
    base = f"{(stem or file_stem(onnx_rel))[:80]}__{file_stem(vnnlib_rel)}__{digest}"
    seen[base] = seen.get(base, 0) + 1
    return base if seen[base] == 1 else f"{base}-{seen[base]}"


def read_instances(path: str | Path) -> list[Instance]:
    """Read an instances CSV; paths are resolved relative to the CSV's directory and must exist."""
    csv_path = Path(path)
    name = str(path)
    if not csv_path.is_file():
        raise InstanceFileError(f"instances file {name!r} does not exist")
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InstanceFileError(f"cannot read instances file {name!r}: {type(exc).__name__}") from None
    base = csv_path.resolve().parent
    out: list[Instance] = []
    seen: dict[str, int] = {}
    try:
        rows = list(csv.reader(text.splitlines()))
    except csv.Error as exc:
        raise InstanceFileError(f"{name}: not a CSV file: {exc}") from None
    for lineno, row in enumerate(rows, 1):
        cells = [c.strip() for c in row]
        if not cells or all(not c for c in cells) or cells[0].startswith("#"):
            continue
        if len(cells) < 3 or len(cells) > 4:
            raise InstanceFileError(f"{name}:{lineno}: expected onnx,vnnlib,timeout[,expected]; got {len(cells)} "
                                    "fields")
        if not out and lineno == _first_row(rows) and not _is_number(cells[2]) and cells[0].lower() in HEADER:
            continue  # header
        try:
            timeout = float(cells[2])
        except ValueError:
            raise InstanceFileError(f"{name}:{lineno}: timeout {cells[2][:40]!r} is not a number") from None
        if not (math.isfinite(timeout) and timeout > 0):
            raise InstanceFileError(f"{name}:{lineno}: timeout must be a finite number of seconds > 0; "
                                    f"got {cells[2][:40]!r}")
        expected = cells[3].lower() if len(cells) == 4 else ""
        if expected not in EXPECTED:
            raise InstanceFileError(f"{name}:{lineno}: expected answer {cells[3][:40]!r} is not sat, unsat or "
                                    "empty")
        pairs = _network_cell(cells[0], name, lineno)
        files = [("onnx" if len(pairs) == 1 else f"network {n[:40]}", rel) for n, rel in pairs] + [("vnnlib", cells[1])]
        paths = []
        for what, rel in files:
            if not rel:
                raise InstanceFileError(f"{name}:{lineno}: empty {what} path")
            p = (base / rel).resolve()
            if not p.is_file():
                raise InstanceFileError(f"{name}:{lineno}: {what} file {rel[:120]!r} does not exist (paths are "
                                        "relative to the CSV file)")
            paths.append(str(p))
        networks = tuple((n, p) for (n, _), p in zip(pairs, paths)) if len(pairs) > 1 else ()
        if networks:
            _check_names(networks, paths[-1], cells[1], name, lineno)
        if len(pairs) > 1:
            key = ";".join(f"{n}={rel}" for n, rel in pairs)
            stem = "+".join(file_stem(rel) for _, rel in pairs)
        else:
            key, stem = pairs[0][1], None
        out.append(Instance(_instance_id(key, cells[1], seen, stem), paths[0], paths[-1], timeout,
                            EXPECTED[expected], lineno, networks))
        if len(out) > MAX_INSTANCES:
            raise InstanceFileError(f"{name}: more than {MAX_INSTANCES} instances")
    if not out:
        raise InstanceFileError(f"{name}: no instances (expected lines onnx,vnnlib,timeout)")
    return out


def _network_cell(cell: str, name: str, lineno: int) -> list[tuple[str, str]]:
    """The networks of a row as ``[(what, path)]``: a plain path is ``[("onnx", path)]``; VNN-COMP 2026 writes
    the networks of a VNN-LIB 2.0 query as a list of ``(declared name, path)`` pairs."""
    if not cell.startswith("["):
        return [("onnx", cell)]
    try:
        pairs = ast.literal_eval(cell)
        ok = isinstance(pairs, (list, tuple)) and all(
            isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(v, str) for v in p) for p in pairs)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        ok = False
    if not ok or not pairs:
        raise InstanceFileError(f"{name}:{lineno}: network column {cell[:60]!r} is neither a path nor a list of "
                                "(name, path) pairs")
    names = [p[0] for p in pairs]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise InstanceFileError(f"{name}:{lineno}: network {dup[:40]!r} is listed twice in the network column")
    if len(pairs) == 1:
        return [("onnx", pairs[0][1])]
    return [(n, p) for n, p in pairs]


def _check_names(networks: tuple, query_path: str, rel: str, name: str, lineno: int) -> None:
    """The listed names are the query's networks that need a model (all but the equal-to ones).  A query that
    does not parse is left to its instance (recorded as an error, as for one network)."""
    try:
        query = read_query(query_path)
    except VerificationError:
        return
    if not query.networks:
        raise InstanceFileError(f"{name}:{lineno}: {len(networks)} networks listed, but {rel[:80]} is a VNN-LIB 1.0 "
                                "property (about one network)")
    needed = query.models_needed()
    listed = [n for n, _ in networks]
    unknown = [n for n in listed if n not in needed]
    if unknown:
        why = ("is equal-to another network and takes no model" if unknown[0] in [n.name for n in query.networks]
               else "is not declared by the query")
        raise InstanceFileError(f"{name}:{lineno}: network {unknown[0][:40]!r} {why} ({rel[:80]} declares "
                                f"{', '.join(n.name for n in query.networks) or 'one network'})")
    missing = [n for n in needed if n not in listed]
    if missing:
        raise InstanceFileError(f"{name}:{lineno}: no path for network {missing[0]!r} of {rel[:80]} (the network column "
                                f"needs {', '.join(needed)})")


def _first_row(rows: list[list[str]]) -> int:
    for lineno, row in enumerate(rows, 1):
        if row and any(c.strip() for c in row) and not row[0].strip().startswith("#"):
            return lineno
    return 0


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
