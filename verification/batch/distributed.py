"""Branch and bound of one instance on a Dask cluster: input-split sub-boxes are tasks.

The driver runs the cheap stages of :func:`~verification.smt.verify` itself (falsification, a bound on each
whole box), then submits each region's box as a *piece*: a worker runs :func:`~verification.smt.input_split.input_split`
on the piece for at most ``slice_boxes`` bounded boxes (``first_slice`` for the root pieces, doubling with
each generation up to ``slice_boxes``, so that the work spreads early) and returns refuted, a counterexample, or the boxes it
did not decide, which the driver cuts into new pieces of at most ``piece_boxes`` boxes and submits.  Dask
hands pending pieces to whichever worker is idle: there is no static partition.

* **Same verdict for any number of workers.**  A piece's work depends only on the piece (its boxes and a
  seed derived from its id), never on which worker runs it or when; the tree of pieces is therefore the same
  for 1 or 100 workers, and so is the answer (``holds`` / ``unknown`` with the same unresolved leaves) unless
  the deadline cuts the search.  ``violated`` may be found at a different point first.
* **A counterexample anywhere stops the rest**: the driver cancels the pending pieces, re-checks the point
  against the whole property as written (:func:`~verification.smt.confirm.confirm_property`) and answers.
* **A worker that dies loses nothing**: Dask runs its pieces again on a live worker; the driver keys results
  by piece id and uses each once (a re-run piece returns the same result).
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from dataclasses import dataclass

import numpy as np

from verification.errors import InvalidParameterError, ShapeMismatchError
from verification.smt.attack import falsify
from verification.smt.confirm import confirm_property
from verification.smt.input_split import input_split, root_batch, root_refuted
from verification.smt.options import Budget, Stats, VerifyOptions
from verification.smt.result import VerifyResult
from verification.smt.task import NetFacts, Task
from verification.spec import VnnlibProperty

__all__ = ["verify_distributed", "solve_piece", "Piece"]

SLICE_BOXES = 2048  # boxes a piece may bound before it hands its undecided boxes back
FIRST_SLICE = 128  # the root pieces stop after this many boxes, their children after twice as many, ...
PIECE_BOXES = 64  # boxes per new piece cut from a returned stack (one bounding batch)


@dataclass(frozen=True)
class Piece:
    """Sub-boxes of region ``region`` to decide: ``lower``/``upper`` ``(n, d)``, ``alive`` ``(n, K)``."""

    id: str
    region: int
    lower: np.ndarray
    upper: np.ndarray
    alive: np.ndarray


def _seed(seed: int, piece_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{piece_id}".encode()).digest()[:8], "little")


def solve_piece(net, prop: VnnlibProperty, piece: Piece, options: VerifyOptions, deadline_wall: float,
                slice_boxes: int) -> dict:
    """Worker task: input splitting on ``piece`` for at most ``slice_boxes`` boxes or until ``deadline_wall``
    (``time.time()``).  Returns ``{"id", "kind", ...}`` with kind ``refuted`` / ``counterexample`` (``x``) /
    ``split`` (``left``: the undecided boxes as ``(lower, upper, alive)``) / ``timeout``, plus ``unresolved``
    leaves and the ``boxes`` bounded."""
    started = time.monotonic()
    budget = Budget(started + max(0.0, deadline_wall - time.time()), slice_boxes)
    stats = Stats()
    task = Task(net, prop.regions[piece.region], options, budget, stats,
                np.random.default_rng(_seed(options.seed, piece.id)), NetFacts.of(net), None)
    left: list = []
    out = input_split(task, root=root_batch(task, piece.lower, piece.upper, piece.alive), left=left)
    res = {"id": piece.id, "unresolved": int(out.unresolved), "boxes": int(stats.get("boxes", 0)),
           "seconds": time.monotonic() - started, "worker": f"{socket.gethostname()}:{os.getpid()}"}
    if out.found:
        return dict(res, kind="counterexample", x=np.asarray(out.x, dtype=np.float64))
    if out.reason == "box limit":
        return dict(res, kind="split", left=[(b.lower, b.upper, b.alive) for b in left if len(b)])
    if out.reason:
        return dict(res, kind="timeout")
    return dict(res, kind="refuted")


def _cut(parent: str, region: int, left: list, piece_boxes: int) -> list[Piece]:
    """The undecided boxes of a piece as new pieces of at most ``piece_boxes`` boxes, in stack order."""
    lo = np.vstack([b[0] for b in left])
    hi = np.vstack([b[1] for b in left])
    al = np.vstack([b[2] for b in left])
    return [Piece(f"{parent}.{k}", region, lo[i:i + piece_boxes], hi[i:i + piece_boxes], al[i:i + piece_boxes])
            for k, i in enumerate(range(0, lo.shape[0], piece_boxes))]


def verify_distributed(net, prop: VnnlibProperty, timeout: float = 60.0, *, client, seed: int = 0,
                       slice_boxes: int = SLICE_BOXES, piece_boxes: int = PIECE_BOXES, first_slice: int = FIRST_SLICE,
                       on_piece=None, **options) -> VerifyResult:
    """Decide ``prop`` on ``net`` by input splitting with the sub-boxes run as Dask tasks on ``client``
    (see the module docstring).  ``options`` are those of :func:`~verification.smt.verify` (``n_samples``,
    ``batch``, ``alpha_unstable``...).  ``details`` reports ``pieces``, ``boxes``, ``workers_used`` and
    ``duplicates`` (results of re-run pieces, ignored).  ``on_piece(result)`` is called per piece result."""
    from distributed import as_completed

    t0 = time.monotonic()
    if not callable(getattr(net, "canonical", None)):
        raise InvalidParameterError(f"verify_distributed needs a Network; got {type(net).__name__}")
    if not (isinstance(timeout, (int, float)) and timeout >= 0):
        raise InvalidParameterError(f"timeout must be a number of seconds >= 0; got {timeout!r}")
    if slice_boxes < 1 or piece_boxes < 1 or first_slice < 1:
        raise InvalidParameterError("slice_boxes, piece_boxes and first_slice must be >= 1")
    net = net.canonical()
    if prop.in_dim != net.in_dim or prop.out_dim != net.out_dim:
        raise ShapeMismatchError(f"the property has {prop.in_dim} inputs and {prop.out_dim} outputs, the network "
                                 f"has {net.in_dim} inputs and {net.out_dim} outputs")
    opts = VerifyOptions(method="input-split", seed=seed, **options)
    stats = Stats()
    deadline_wall = time.time() + timeout

    def done(status, x=None, reason=""):
        return VerifyResult(status, x, None if x is None else net(x), time.monotonic() - t0, "input-split-dask",
                            reason, stats.as_dict())

    if timeout == 0:
        return done("unknown", reason="timeout")
    if not prop.regions:
        return done("holds", reason="empty input set")
    # the stages of verify before branch and bound, on the driver (cheap; most instances end here)
    budget = Budget(t0 + timeout, None)
    rng = np.random.default_rng(seed)
    facts = NetFacts.of(net)
    tasks = [Task(net, region, opts, budget, stats, rng, facts, None) for region in prop.regions]
    for task in tasks:
        out = falsify(task, min(opts.n_samples, 256), 0, 0)
        if out.found:
            return _violated(net, prop, out.x, done)
    todo = [i for i, task in enumerate(tasks) if not root_refuted(task)]
    for i in todo:
        out = falsify(tasks[i], opts.n_samples, opts.pgd_steps, opts.pgd_starts)
        if out.found:
            return _violated(net, prop, out.x, done)
    if not todo:
        return done("holds", reason="proved")
    net_f = client.scatter(net, broadcast=True, hash=False)
    prop_f = client.scatter(prop, broadcast=True, hash=False)
    run_key = hashlib.sha1(f"{time.time()}:{id(net)}".encode()).hexdigest()[:10]

    def submit(piece: Piece):
        # small slices near the root spread the work early; deeper pieces run longer (less overhead)
        limit = min(slice_boxes, first_slice << min(piece.id.count("."), 30))
        return client.submit(solve_piece, net_f, prop_f, piece, opts, deadline_wall, limit, pure=False,
                             key=f"piece-{run_key}-{piece.id}", retries=1)

    pieces = {}
    futures = []
    for i in todo:
        r = prop.regions[i]
        piece = Piece(f"r{i}", i, r.lower[None, :].copy(), r.upper[None, :].copy(), np.ones((1, len(r.outputs)), bool))
        pieces[piece.id] = piece
        futures.append(submit(piece))
    seen: set[str] = set()
    workers: set[str] = set()
    unresolved, timed_out, n_boxes, duplicates = 0, False, 0, 0
    ac = as_completed(futures, with_results=False)
    try:
        for fut in ac:
            try:
                res = fut.result()
            except Exception as exc:  # KilledWorker after repeated worker deaths, a lost scheduler, ...
                stats.set("error", f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
                return done("unknown", reason=f"cluster error ({type(exc).__name__})")
            if res["id"] in seen:  # a re-run piece: its answer is already counted
                duplicates += 1
                continue
            seen.add(res["id"])
            workers.add(res["worker"])
            n_boxes += res["boxes"]
            unresolved += res["unresolved"]
            if on_piece is not None:
                on_piece(res)
            kind = res["kind"]
            if kind == "counterexample":
                _cancel(client, ac)
                stats.set("pieces", len(seen))
                stats.set("boxes", n_boxes)
                stats.set("duplicates", duplicates)
                stats.set("workers_used", len(workers))
                return _violated(net, prop, res["x"], done)
            if kind == "timeout":
                timed_out = True
            elif kind == "split":
                parent = pieces[res["id"]]
                for child in _cut(parent.id, parent.region, res["left"], piece_boxes):
                    pieces[child.id] = child
                    ac.add(submit(child))
    finally:
        _cancel(client, ac)
        client.cancel([net_f, prop_f])
    stats.set("pieces", len(seen))
    stats.set("boxes", n_boxes)
    stats.set("duplicates", duplicates)
    stats.set("workers_used", len(workers))
    if timed_out:
        return done("unknown", reason="timeout")
    if unresolved:
        return done("unknown", reason=f"{unresolved} leaf problem(s) unresolved")
    return done("holds", reason="proved")


def _violated(net, prop: VnnlibProperty, x, done) -> VerifyResult:
    if not confirm_property(net, prop, np.asarray(x, dtype=np.float64)):  # pragma: no cover - defensive
        return done("unknown", reason="counterexample failed re-evaluation")
    return done("violated", np.asarray(x, dtype=np.float64), "counterexample")


def _cancel(client, ac) -> None:
    pending = list(ac.futures) if hasattr(ac, "futures") else []
    if pending:
        try:
            client.cancel(pending, force=True)
        except Exception:  # the cluster is going away: nothing to save
            pass
    try:
        ac.clear()
    except Exception:
        pass
