"""Run many instances on a Dask cluster: a local one (one single-threaded worker process per core) or an
existing scheduler.  The driver alone writes results, keyed by instance id, so each instance's result is
recorded exactly once even when a worker dies and Dask runs its task again elsewhere.

``dask.distributed`` is imported only when :func:`run_batch` starts a cluster.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from verification.batch.instances import Instance
from verification.batch.results import load_record, write_record, write_summary
from verification.batch.worker import verify_instance, warm_up
from verification.errors import InvalidParameterError

__all__ = ["run_batch", "BatchRun", "SINGLE_THREAD_ENV"]

#: set in every worker: one BLAS/OpenMP thread per worker process (the workers are the parallelism)
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                     "NUMBA_NUM_THREADS": "1"}
ALLOWED_FAILURES = 3  # a task whose worker died this many times is recorded as an error


@dataclass
class BatchRun:
    """What :func:`run_batch` did: ``records`` by instance id (finished ones), ``skipped`` (already in the
    output directory), ``computed`` (this run), ``interrupted`` and the summary JSON."""

    records: dict[str, dict] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    computed: list[str] = field(default_factory=list)
    interrupted: bool = False
    wall: float = 0.0
    summary: dict = field(default_factory=dict)


def _client(workers: int | None, scheduler: str | None):
    import dask
    from distributed import Client, LocalCluster

    dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
                     "distributed.worker.daemon": False})
    if scheduler:
        return Client(scheduler, timeout="30s"), None
    n = workers or os.cpu_count() or 1
    # ``env`` is applied inside each worker process before it imports anything of ours; the driver's own
    # environment is left alone (numba refuses a NUMBA_NUM_THREADS that changes after its threads started)
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, silence_logs=logging.ERROR, env=dict(SINGLE_THREAD_ENV))
    return Client(cluster), cluster


def run_batch(instances: list[Instance], out_dir: str | Path, *, workers: int | None = None,
              scheduler: str | None = None, timeout_scale: float = 1.0, options: dict | None = None,
              on_result: Callable[[dict], None] | None = None, on_start: Callable[[int, int], None] | None = None,
              task: Callable = verify_instance, load: Callable = load_record, summarize: Callable = write_summary,
              error_record: Callable | None = None) -> BatchRun:
    """Verify every instance not yet finished in ``out_dir``; write ``ID.txt``/``ID.json`` as results arrive
    and ``summary.csv``/``summary.json`` at the end, also after Ctrl-C (outstanding tasks are cancelled).

    ``workers``: size of the local cluster (default: one per core); ``scheduler``: ``tcp://HOST:PORT`` of
    a running cluster instead.  ``on_start(n_skipped, n_todo)`` and ``on_result(record)`` report progress.
    Other job kinds (:mod:`verification.batch.lipschitz_jobs`) pass their ``task``, ``load`` (finished record
    or ``None``), ``summarize`` and ``error_record``.
    """
    if workers is not None and workers < 1:
        raise InvalidParameterError(f"--workers must be >= 1; got {workers}")
    if not (timeout_scale > 0 and timeout_scale < float("inf")):
        raise InvalidParameterError(f"--timeout-scale must be a finite number > 0; got {timeout_scale!r}")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidParameterError(f"output directory {str(out_dir)!r}: {exc.strerror or exc}") from None
    started = time.monotonic()
    run = BatchRun()
    todo: list[Instance] = []
    for inst in instances:
        rec = load(out, inst)
        if rec is None:
            todo.append(inst)
        else:
            run.records[inst.id] = rec
            run.skipped.append(inst.id)
    if on_start is not None:
        on_start(len(run.skipped), len(todo))
    client = cluster = None
    n_workers = workers
    try:
        if todo:
            client, cluster = _client(workers, scheduler)
            n_workers = len(client.run(warm_up))  # imports done on every worker before the clock matters
            _run_tasks(client, todo, out, run, timeout_scale, options or {}, on_result, task,
                       error_record or _error_record)
    except KeyboardInterrupt:
        run.interrupted = True
    finally:
        run.wall = time.monotonic() - started
        run.summary = summarize(out, instances, run.records, wall=run.wall, interrupted=run.interrupted,
                                    workers=n_workers, scheduler=scheduler)
        _close(client, cluster)
    return run


def _run_tasks(client, todo: list, out: Path, run: BatchRun, timeout_scale: float, options: dict,
               on_result, task, error_record) -> None:
    from distributed import as_completed

    futures, by_key = [], {}
    for inst in todo:
        payload = dict(inst.to_dict(), budget=inst.timeout * timeout_scale)
        fut = client.submit(task, payload, options, pure=False, retries=2,
                            key=f"verify-{inst.id}-{os.urandom(4).hex()}")
        futures.append(fut)
        by_key[fut.key] = inst
    try:
        for fut in as_completed(futures):
            inst = by_key[fut.key]
            if inst.id in run.records:  # already recorded: never twice
                continue
            try:
                rec = fut.result()
            except Exception as exc:  # KilledWorker after repeated worker deaths, a lost scheduler, ...
                rec = error_record(inst, timeout_scale, f"{type(exc).__name__}: {' '.join(str(exc).split())}")
            write_record(out, rec)
            run.records[inst.id] = rec
            run.computed.append(inst.id)
            if on_result is not None:
                on_result(rec)
    except KeyboardInterrupt:
        client.cancel([f for f in futures if not f.done()], force=True)
        raise


def _error_record(inst: Instance, timeout_scale: float, message: str) -> dict:
    return {"id": inst.id, "onnx": inst.onnx, "vnnlib": inst.vnnlib, "timeout": inst.timeout,
            "budget": inst.timeout * timeout_scale, "expected": inst.expected, "result": "error",
            "status": "error", "seconds": 0.0, "wall": 0.0, "load_seconds": 0.0, "cached": False, "method": "",
            "reason": "", "error": message, "counterexample": None, "output": None, "confirmed": None,
            "text": "error\n", "worker": ""}


def _close(client, cluster) -> None:
    for obj in (client, cluster):
        if obj is not None:
            try:
                obj.close()
            except Exception:  # closing after Ctrl-C or a lost scheduler: nothing left to save
                pass
