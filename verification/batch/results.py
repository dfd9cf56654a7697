"""Per-instance result files, resumability, the summary and VNN-COMP scoring.

For instance ``ID`` the output directory holds ``ID.txt`` (the VNN-COMP result file: ``sat`` + assignment,
``unsat``, ``timeout``, ``unknown`` or ``error``) and ``ID.json`` (the full record).  Both are written to a
temporary file and renamed, ``.txt`` first, so a record whose ``.json`` exists is complete: a rerun skips it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

from verification._json import jsonable
from verification.batch.instances import Instance

__all__ = ["write_record", "load_record", "score", "write_summary", "SCORE_CORRECT", "SCORE_WRONG", "ANSWERS",
           "summary_totals", "SUMMARY_COLUMNS", "write_summary_files"]

ANSWERS = ("sat", "unsat", "timeout", "error", "unknown")
#: VNN-COMP scoring (rules 2022-2025): a correct sat (valid counterexample) or unsat scores 10, an
#: incorrect answer -150, anything else 0.  The per-benchmark time bonus of 2021 is not used.
SCORE_CORRECT = 10
SCORE_WRONG = -150
SUMMARY_COLUMNS = ("id", "onnx", "vnnlib", "timeout", "expected", "result", "confirmed", "score", "seconds",
                   "wall", "load_seconds", "cached", "method", "reason", "error", "worker")


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_record(out_dir: Path, record: dict) -> None:
    """``ID.txt`` then ``ID.json``, each atomically."""
    _atomic_write(out_dir / f"{record['id']}.txt", record.get("text") or f"{record['result']}\n")
    _atomic_write(out_dir / f"{record['id']}.json", json.dumps(jsonable(record), indent=1) + "\n")


def load_record(out_dir: Path, inst: Instance) -> dict | None:
    """The finished record of ``inst`` in ``out_dir``, or ``None`` (missing, partial, or for other files)."""
    jpath, tpath = out_dir / f"{inst.id}.json", out_dir / f"{inst.id}.txt"
    try:
        rec = json.loads(jpath.read_text(encoding="utf-8"))
        first = tpath.read_text(encoding="utf-8").split("\n", 1)[0].strip()
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or rec.get("onnx") != inst.onnx or rec.get("vnnlib") != inst.vnnlib:
        return None
    if first not in ANSWERS or rec.get("result") != first:
        return None
    rec["expected"] = inst.expected  # the CSV's column may have been filled in since
    return rec


def score(record: dict) -> int | None:
    """VNN-COMP points of one record against its ``expected`` answer (``None`` when none is given).

    ``sat`` counts as correct only with a confirmed counterexample; an unconfirmed ``sat`` is wrong."""
    expected, result = record.get("expected", ""), record.get("result")
    if not expected:
        return None
    if result not in ("sat", "unsat"):
        return 0
    if result == "sat" and record.get("confirmed") is not True:
        return SCORE_WRONG
    return SCORE_CORRECT if result == expected else SCORE_WRONG


def summary_totals(records: list[dict], n_instances: int) -> dict:
    counts = {a: 0 for a in ANSWERS}
    for r in records:
        counts[r["result"]] = counts.get(r["result"], 0) + 1
    scores = [s for s in (score(r) for r in records) if s is not None]
    return {"instances": n_instances, "finished": len(records), "not_finished": n_instances - len(records),
            **counts,
            "confirmed_sat": sum(1 for r in records if r["result"] == "sat" and r.get("confirmed") is True),
            "unconfirmed_sat": sum(1 for r in records if r["result"] == "sat" and r.get("confirmed") is not True),
            "scored": len(scores), "score": sum(scores) if scores else None,
            "correct": sum(1 for s in scores if s == SCORE_CORRECT),
            "wrong": sum(1 for s in scores if s == SCORE_WRONG),
            "seconds": sum(float(r.get("seconds") or 0.0) for r in records),
            "wall": sum(float(r.get("wall") or 0.0) for r in records)}


def write_summary(out_dir: Path, instances: list[Instance], records: dict[str, dict], *, wall: float,
                  interrupted: bool, workers: int | None, scheduler: str | None) -> dict:
    """``summary.csv`` (one row per finished instance, CSV order) and ``summary.json``; returns the JSON."""
    done = [dict(records[i.id], score=score(records[i.id])) for i in instances if i.id in records]
    totals = summary_totals(done, len(instances))
    return write_summary_files(out_dir, SUMMARY_COLUMNS, done, "instances", totals=totals, batch_wall=wall,
                               interrupted=interrupted, workers=workers, scheduler=scheduler,
                               pending=[i.id for i in instances if i.id not in records])


def write_summary_files(out_dir: Path, columns: tuple, done: list[dict], key: str, **fields) -> dict:
    """``summary.csv`` (``columns`` of each finished record) and ``summary.json`` (``fields`` plus the records
    without their result text under ``key``), each atomically; returns the JSON object."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in done:
        w.writerow(["" if r.get(c) is None else r.get(c) for c in columns])
    _atomic_write(out_dir / "summary.csv", buf.getvalue())
    obj = {**fields, key: [{k: v for k, v in r.items() if k != "text"} for r in done]}
    _atomic_write(out_dir / "summary.json", json.dumps(jsonable(obj), indent=1) + "\n")
    return obj
