"""Settings of one verification run: the frozen options, the budget (deadline, box limit), the counters.

Progress: inside ``with reporting(callback):`` every :class:`Stats` created reports a copy of its counters
to ``callback`` (at most every :data:`REPORT_INTERVAL` seconds) whenever one changes; e.g. ``boxes`` and
``volume_done`` (the fraction of the input volume decided so far) during input splitting.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from verification.bounds.batched import INTERMEDIATE
from verification.errors import InvalidParameterError

__all__ = ["METHODS", "VerifyOptions", "Budget", "Stats", "reporting", "REPORT_INTERVAL"]

REPORT_INTERVAL = 0.2  # seconds
_OBSERVER: ContextVar[Callable[[dict], None] | None] = ContextVar("verification_smt_progress", default=None)


@contextmanager
def reporting(callback: Callable[[dict], None] | None) -> Iterator[None]:
    """Within the block, the counters of every verification run are reported to ``callback`` (a copy)."""
    token = _OBSERVER.set(callback)
    try:
        yield
    finally:
        _OBSERVER.reset(token)

METHODS = ("auto", "input-split", "bab", "relu-split", "z3-plain")


def _is_count(val) -> bool:
    return isinstance(val, (int, np.integer)) and not isinstance(val, bool) and val >= 0


@dataclass(frozen=True)
class VerifyOptions:
    """Options of :func:`verification.smt.verify` (see its docstring), validated on construction."""

    method: str = "auto"
    seed: int = 0
    n_samples: int = 5000
    pgd_steps: int = 40
    pgd_starts: int = 32
    batch: int = 64
    intermediate: str = "incremental"
    max_boxes: int | None = None
    leaf_unstable: int = 0
    pattern_unstable: int = 0
    alpha_unstable: int = 16
    alpha_iters: int = 10  # Adam steps of alpha-CROWN on the specification rows

    def __post_init__(self) -> None:
        if self.intermediate not in INTERMEDIATE:
            raise InvalidParameterError(
                f"The 'intermediate' parameter of verify must be one of {INTERMEDIATE}. Got {self.intermediate!r} instead.")
        if self.method not in METHODS:
            raise InvalidParameterError(
                f"The 'method' parameter of verify must be one of {METHODS}. Got {self.method!r} instead.")
        if self.max_boxes is not None:
            if not (isinstance(self.max_boxes, (int, np.integer)) and self.max_boxes >= 1):
                raise InvalidParameterError(
                    f"The 'max_boxes' parameter of verify must be an int >= 1 or None. Got {self.max_boxes!r} instead.")
            object.__setattr__(self, "max_boxes", int(self.max_boxes))
        for name in ("leaf_unstable", "pattern_unstable", "alpha_unstable"):
            val = getattr(self, name)
            if not _is_count(val):
                raise InvalidParameterError(f"The '{name}' parameter of verify must be an int >= 0. Got {val!r} instead.")
            object.__setattr__(self, name, int(val))


@dataclass(frozen=True)
class Budget:
    """Resource limits of a run: a wall-clock deadline (``time.monotonic``) and an optional cap on the
    number of boxes bounded."""

    deadline: float
    max_boxes: int | None = None

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def boxes_exceeded(self, boxes: int) -> bool:
        return self.max_boxes is not None and boxes > self.max_boxes


class Stats:
    """Counters of a run (boxes, leaves, evaluations, ...), reported as ``VerifyResult.details``."""

    def __init__(self, initial: dict | None = None):
        self._d: dict = dict(initial or {})
        self._observer = _OBSERVER.get()
        self._last = 0.0

    def add(self, key: str, n: float = 1) -> None:
        self._d[key] = self._d.get(key, 0) + n
        self._report()

    def set(self, key: str, value) -> None:
        self._d[key] = value
        self._report()

    def _report(self) -> None:
        if self._observer is not None:
            now = time.monotonic()
            if now - self._last >= REPORT_INTERVAL:
                self._last = now
                self._observer(dict(self._d))

    def __getitem__(self, key: str):
        return self._d[key]

    def get(self, key: str, default=None):
        return self._d.get(key, default)

    def as_dict(self) -> dict:
        """The counters (the live dict, not a copy)."""
        return self._d
