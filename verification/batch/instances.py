"""Benchmark instances: the VNN-COMP ``instances.csv`` layout, read with line-numbered one-line errors.

Each line is ``onnx,vnnlib,timeout`` with paths relative to the CSV file; an optional fourth column holds
the expected answer (``sat``, ``unsat``, or empty / ``unknown`` when it is not known) and is used only for
scoring.  A first line ``onnx,vnnlib,timeout[,expected]`` (first cell ``onnx``, ``network``, ``model`` or ``net``) is a
header.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from verification.errors import InvalidParameterError

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

    def to_dict(self) -> dict:
        return asdict(self)


class InstanceFileError(InvalidParameterError):
    """A malformed instances CSV (one line naming the file and line)."""


def _stem(path: str) -> str:
    name = Path(path).name
    for suffix in (".gz", ".onnx", ".vnnlib", ".nnet", ".npz", ".pt", ".pth", ".mat"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60] or "x"


def _instance_id(onnx_rel: str, vnnlib_rel: str, seen: dict[str, int]) -> str:
    """``<net stem>__<property stem>__<8 hex digits of both paths>``; a repeated row gets ``-2``, ``-3``..."""
    digest = hashlib.sha1(f"{onnx_rel}\0{vnnlib_rel}".encode()).hexdigest()[:8]
    base = f"{_stem(onnx_rel)}__{_stem(vnnlib_rel)}__{digest}"
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
        paths = []
        cells[0] = _network_cell(cells[0], name, lineno)
        for what, rel in (("onnx", cells[0]), ("vnnlib", cells[1])):
            if not rel:
                raise InstanceFileError(f"{name}:{lineno}: empty {what} path")
            p = (base / rel).resolve()
            if not p.is_file():
                raise InstanceFileError(f"{name}:{lineno}: {what} file {rel[:120]!r} does not exist (paths are "
                                        "relative to the CSV file)")
            paths.append(str(p))
        out.append(Instance(_instance_id(cells[0], cells[1], seen), paths[0], paths[1], timeout,
                            EXPECTED[expected], lineno))
        if len(out) > MAX_INSTANCES:
            raise InstanceFileError(f"{name}: more than {MAX_INSTANCES} instances")
    if not out:
        raise InstanceFileError(f"{name}: no instances (expected lines onnx,vnnlib,timeout)")
    return out


def _network_cell(cell: str, name: str, lineno: int) -> str:
    """The network path of a row.  VNN-COMP 2026 writes the networks of a VNN-LIB 2.0 query as a list of
    ``(declared name, path)`` pairs: one pair gives its path; several are refused (one network per query)."""
    if not cell.startswith("["):
        return cell
    try:
        pairs = ast.literal_eval(cell)
        ok = isinstance(pairs, (list, tuple)) and all(
            isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(v, str) for v in p) for p in pairs)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        ok = False
    if not ok or not pairs:
        raise InstanceFileError(f"{name}:{lineno}: network column {cell[:60]!r} is neither a path nor a list of "
                                "(name, path) pairs")
    if len(pairs) > 1:
        raise InstanceFileError(f"{name}:{lineno}: {len(pairs)} networks ({', '.join(p[0] for p in pairs[:4])}) for "
                                "one query: queries over several networks are not supported")
    return pairs[0][1]


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
