"""Lipschitz jobs over many models: ``verification batch --lipschitz MODELS.csv`` (docs/batch.md).

Each line of the CSV is ``model[,method[,norm[,time_limit]]]``: a model file (any format the loaders read; path
relative to the CSV), a Lipschitz method (default ``auto``), a norm (``2`` or ``inf``, default ``2``) and a
wall-clock budget in seconds (default 600), passed to :func:`verification.lipschitz` as ``time_limit``.  A
first line whose first cell is ``model`` is a header.  Errors name the file and line in one line.

For job ``ID`` the output directory holds ``ID.txt`` (one line: the certified bound, or ``error``) and
``ID.json`` (the record); ``summary.csv`` / ``summary.json`` list every finished job.  The run is resumable,
like the verification batch: a rerun skips the jobs whose record exists.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from verification._json import jsonable
from verification.batch.instances import InstanceFileError, file_stem
from verification.batch.results import write_summary_files
from verification.batch.worker import cached_network
from verification.errors import VerificationError
from verification.lipschitz.registry import available_methods, lipschitz, normalize_norm

__all__ = ["LipschitzJob", "read_jobs", "lipschitz_job", "load_job_record", "write_job_summary", "job_error_record"]

DEFAULT_TIME_LIMIT = 600.0
MAX_JOBS = 100_000
SUMMARY_COLUMNS = ("id", "model", "method", "norm", "timeout", "result", "value", "certified", "method_used",
                   "seconds", "wall", "load_seconds", "cached", "error", "worker")


@dataclass(frozen=True)
class LipschitzJob:
    """One row; ``timeout`` is its time limit in seconds (the runner scales it with ``--timeout-scale``)."""

    id: str
    model: str  # absolute path
    method: str
    norm: int | str
    timeout: float
    row: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def read_jobs(path: str | Path) -> list[LipschitzJob]:
    """The jobs of a ``model[,method[,norm[,time_limit]]]`` CSV (one-line :class:`InstanceFileError` on bad rows)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InstanceFileError(f"{str(path)!r}: cannot read the jobs file: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InstanceFileError(f"{p.name}: not a UTF-8 text file") from None
    methods = set(available_methods()) | {"auto"}
    jobs, seen = [], set()
    for line_no, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if line_no == 1 and cells[0].lower() in ("model", "network", "onnx", "net"):
            continue
        where = f"{p.name}, line {line_no}"
        if len(cells) > 4:
            raise InstanceFileError(f"{where}: expected model[,method[,norm[,time_limit]]], got {len(cells)} cells")
        cells += [""] * (4 - len(cells))
        model = (p.parent / cells[0]).resolve()
        if not model.is_file():
            raise InstanceFileError(f"{where}: model file {cells[0]!r} not found (paths are relative to the CSV)")
        method = cells[1] or "auto"
        if method not in methods:
            raise InstanceFileError(f"{where}: unknown Lipschitz method {method!r} (one of {', '.join(sorted(methods))})")
        try:
            norm = normalize_norm(cells[2] or 2)
        except VerificationError:
            raise InstanceFileError(f"{where}: norm must be 2 or inf, got {cells[2]!r}") from None
        try:
            limit = float(cells[3]) if cells[3] else DEFAULT_TIME_LIMIT
        except ValueError:
            limit = math.nan
        if not (math.isfinite(limit) and limit > 0):
            raise InstanceFileError(f"{where}: time limit must be a finite number of seconds > 0, got {cells[3]!r}")
        digest = hashlib.sha256(f"{model}|{method}|{norm}".encode()).hexdigest()[:8]
        job_id = f"{file_stem(str(model))}_{method}_l{norm}_{digest}"
        if job_id in seen:
            continue  # the same model, method and norm twice: one job
        seen.add(job_id)
        jobs.append(LipschitzJob(job_id, str(model), method, norm, limit, line_no))
        if len(jobs) > MAX_JOBS:
            raise InstanceFileError(f"{p.name}: more than {MAX_JOBS} jobs")
    if not jobs:
        raise InstanceFileError(f"{p.name}: no jobs (lines model[,method[,norm[,time_limit]]])")
    return jobs


def _record(job: dict, **fields) -> dict:
    rec = {"id": job["id"], "model": job["model"], "method": job["method"], "norm": job["norm"],
           "timeout": job["timeout"], "budget": job.get("budget", job["timeout"]), "result": "error",
           "value": None, "lower": None, "certified": False, "method_used": "", "seconds": 0.0, "wall": 0.0,
           "load_seconds": 0.0, "cached": False, "error": "", "details": None,
           "worker": f"{socket.gethostname()}:{os.getpid()}"}
    rec.update(fields)
    return rec


def job_error_record(job, timeout_scale: float, message: str) -> dict:
    """The record of a job whose task failed outside the method (a worker that died repeatedly, ...)."""
    return _record(dict(job.to_dict(), budget=job.timeout * timeout_scale), error=message, worker="")


def _text(rec: dict) -> str:
    if rec["result"] == "error":
        return f"error: {rec['error']}\n"
    kind = "certified upper bound" if rec["certified"] else "not certified"
    return f"{rec['value']!r} {kind} (method {rec['method_used']}, l{rec['norm']})\n"


def lipschitz_job(job: dict, options: dict | None = None) -> dict:
    """The task a worker runs for one job (a dict from :meth:`LipschitzJob.to_dict` plus ``budget``): load the
    model (cached per worker process), :func:`verification.lipschitz` with ``time_limit=budget``; never raises
    for a bad model or option (``result="error"`` with one line)."""
    options = dict(options or {})
    started = time.monotonic()
    budget = float(job.get("budget", job["timeout"]))
    loader = {k: options.pop(k) for k in ("arch", "trust", "drop_softmax") if k in options}
    try:
        net, hit = cached_network(job["model"], loader)
        load_seconds = time.monotonic() - started
        left = max(1e-3, budget - load_seconds)
        res = lipschitz(net, job["method"], job["norm"], time_limit=left, **options)
        details = {k: v for k, v in res.details.items() if k in ("auto_tried", "time_limit", "assumed", "dropped")}
        rec = _record(job, result="certified" if res.certified else "not_certified", value=float(res.value),
                      certified=bool(res.certified), method_used=res.method, seconds=float(res.seconds),
                      wall=time.monotonic() - started, load_seconds=load_seconds, cached=hit,
                      details=jsonable(details))
    except VerificationError as exc:
        rec = _record(job, error=" ".join(str(exc).split()) or type(exc).__name__, wall=time.monotonic() - started)
    except MemoryError:
        rec = _record(job, error="out of memory", wall=time.monotonic() - started)
    except Exception as exc:  # a bug of ours: recorded, the batch goes on
        rec = _record(job, error=f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())}",
                      wall=time.monotonic() - started)
    rec["text"] = _text(rec)
    return rec


def load_job_record(out_dir: Path, job: LipschitzJob) -> dict | None:
    """The finished record of ``job`` in ``out_dir``, or ``None`` (missing, partial, or for another job)."""
    try:
        rec = json.loads((out_dir / f"{job.id}.json").read_text(encoding="utf-8"))
        (out_dir / f"{job.id}.txt").read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or rec.get("model") != job.model or rec.get("method") != job.method or \
            rec.get("norm") != job.norm or rec.get("result") not in ("certified", "not_certified", "error"):
        return None
    return rec


def write_job_summary(out_dir: Path, jobs: list, records: dict[str, dict], *, wall: float, interrupted: bool,
                      workers: int | None, scheduler: str | None) -> dict:
    """``summary.csv`` (one row per finished job, CSV order) and ``summary.json``; returns the JSON."""
    done = [records[j.id] for j in jobs if j.id in records]
    totals = {"jobs": len(jobs), "finished": len(done), "not_finished": len(jobs) - len(done),
              "certified": sum(r["result"] == "certified" for r in done),
              "not_certified": sum(r["result"] == "not_certified" for r in done),
              "error": sum(r["result"] == "error" for r in done),
              "seconds": sum(float(r.get("seconds") or 0.0) for r in done),
              "wall": sum(float(r.get("wall") or 0.0) for r in done)}
    return write_summary_files(out_dir, SUMMARY_COLUMNS, done, "jobs", totals=totals, batch_wall=wall,
                               interrupted=interrupted, workers=workers, scheduler=scheduler,
                               pending=[j.id for j in jobs if j.id not in records])
