"""The progress bar of a command (on stderr, with tqdm) and the record of its best certified answer.

The library never draws anything: its functions take an optional ``progress`` callable and call it with one
``dict`` per event.  :class:`Progress` is that callable for the CLI.  It always records what Ctrl-C needs
(the last certified result) and draws a bar only when :func:`enabled`: ``--progress`` forces it, ``--quiet``
and ``--json`` turn it off, and otherwise it is shown when stderr is a terminal.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any

__all__ = ["add_progress_arguments", "enabled", "Progress"]

REFRESH = 0.5  # seconds between redraws (the elapsed time moves while a solver is silent)


def add_progress_arguments(p: argparse.ArgumentParser) -> None:
    """``--progress`` / ``--quiet``."""
    p.add_argument("--progress", action="store_true",
                   help="progress bar on stderr (elapsed time, best certified value / boxes left, ETA) even when "
                   "stderr is not a terminal; by default it is shown on a terminal only, never with --json")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def enabled(args: argparse.Namespace) -> bool:
    """Whether to draw the bar: never with ``--quiet`` or ``--json``; with ``--progress``; else on a terminal."""
    if getattr(args, "quiet", False) or getattr(args, "json", False):
        return False
    return bool(getattr(args, "progress", False)) or sys.stderr.isatty()


class Progress:
    """Callable progress sink: ``progress(event)``.  ``best`` holds the last certified result reported
    (``{"event": "certified", "result": ...}``).  Use as a context manager (closes the bar)."""

    def __init__(self, label: str, show: bool, total: float | None = None, unit: str = "s"):
        self.label, self.show = label, show
        self.best: Any = None
        self.fields: dict = {}
        self._bar = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        if show:
            from tqdm import tqdm  # only when a bar is drawn

            self._bar = tqdm(total=total, desc=label, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True,
                             bar_format="{desc}: {elapsed}{postfix}" if total is None else
                             "{desc}: {percentage:3.0f}%|{bar:20}| {elapsed}<{remaining}{postfix}")
            threading.Thread(target=self._tick, name="progress", daemon=True).start()

    def _tick(self) -> None:
        while not self._stop.wait(REFRESH):
            with self._lock:
                if self._bar is not None:
                    self._bar.refresh()

    def __call__(self, event: dict) -> None:
        if event.get("event") == "certified":
            self.best = event["result"]
            value = getattr(self.best, "value", None)
            if value is not None:
                self.fields["certified"] = f"{value:.6g} ({getattr(self.best, 'method', '')})"
        else:
            for key, val in event.items():
                if key in ("event", "message", "result", "done"):
                    continue
                self.fields[key] = f"{val:.4g}" if isinstance(val, float) else str(val)
        if self._bar is None:
            return
        with self._lock:
            if "done" in event and self._bar.total is not None:
                self._bar.n = min(float(event["done"]), self._bar.total)
            self._bar.set_postfix_str(", ".join(f"{k} {v}" for k, v in self.fields.items()), refresh=False)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
