"""Argument helpers shared by CLI commands."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

from verification.errors import InvalidParameterError

__all__ = ["add_model_arguments", "load_model", "model_notes", "parse_input_shape", "emit", "check_seconds",
           "remaining", "command_start", "EXIT_INTERRUPTED", "ignore_further_interrupts"]

EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), after printing the best certified answer found, if any


def ignore_further_interrupts() -> None:
    """After the first Ctrl-C has been caught: ignore the next ones, so that a user pressing Ctrl-C again
    while the best answer so far is being printed does not lose it."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def check_seconds(value: float | None, option: str, allow_zero: bool = False) -> None:
    """A time budget must be a finite number of seconds (> 0, or >= 0 with ``allow_zero``)."""
    if value is None:
        return
    if not (math.isfinite(value) and (value >= 0 if allow_zero else value > 0)):
        raise InvalidParameterError(
            f"{option} must be a finite number of seconds {'>= 0' if allow_zero else '> 0'}; got {value!r}")


def command_start() -> float:
    """``time.monotonic()`` when the CLI package was imported (the start of the command, near enough)."""
    return sys.modules["verification.cli"].STARTED


def remaining(limit: float, started: float) -> float:
    """Seconds left of ``limit`` counted from ``started`` (``time.monotonic()`` at the command's start: the
    budget covers loading the model too)."""
    return max(0.0, limit - (time.monotonic() - started))


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """MODEL positional plus the loader options (``--trust``, ``--arch``, ``--input-shape``, ``--drop-softmax``)."""
    p.add_argument("model", metavar="MODEL", help="network file: .onnx, .nnet, .pt/.pth, .mat or .npz")
    p.add_argument(
        "--trust", action="store_true",
        help="allow unpickling arbitrary Python objects from a PyTorch file (runs code from the file)",
    )
    p.add_argument(
        "--arch", default=None,
        help="activations of a file that does not store them (PyTorch state_dict, .mat, .npz without "
        "'activations'): one name for every hidden layer (relu, tanh, sigmoid, leaky_relu(0.1), maxmin, "
        "groupsort(4)) or a comma-separated list; without it ReLU is assumed and a note printed",
    )
    p.add_argument("--input-shape", default=None, help="C,H,W input shape (needed to lower Conv2d layers)")
    p.add_argument(
        "--drop-softmax", action="store_true",
        help="analyse the logits of a model that ends with a Softmax/LogSoftmax (otherwise refused)",
    )


def parse_input_shape(text: str | None) -> tuple[int, int, int] | None:
    """``"C,H,W"`` -> ``(C, H, W)``; one-line error naming ``--input-shape`` otherwise."""
    from verification.io.common import MAX_INPUT_SIZE

    if text is None:
        return None
    parts = text.split(",")
    try:
        dims = tuple(int(p.strip()) for p in parts)
    except ValueError:
        dims = ()
    if len(dims) != 3 or any(d <= 0 for d in dims):
        raise InvalidParameterError(f"--input-shape must be C,H,W: three positive integers; got {text[:60]!r}")
    if dims[0] * dims[1] * dims[2] > MAX_INPUT_SIZE:
        raise InvalidParameterError(
            f"--input-shape {text[:60]} has {dims[0] * dims[1] * dims[2]} entries; at most {MAX_INPUT_SIZE} are supported"
        )
    return dims  # type: ignore[return-value]


def model_notes(net) -> list[str]:
    """The stderr notes for what the loader assumed or dropped (``metadata["assumed"]`` / ``["dropped"]``)."""
    notes = []
    if net.metadata.get("assumed"):
        notes.append(f"{net.metadata['assumed']} (pass --arch to change)")
    if net.metadata.get("dropped"):
        notes.append(f"dropped the {net.metadata['dropped']} (--drop-softmax): the logits are analysed")
    return notes


def load_model(args: argparse.Namespace):
    """Load ``args.model`` with the loader options; print one note line per assumption on stderr."""
    from verification.io import load_network

    net = load_network(
        args.model,
        trust=args.trust,
        arch=args.arch,
        input_shape=parse_input_shape(args.input_shape),
        drop_softmax=getattr(args, "drop_softmax", False),
    )
    for note in model_notes(net):
        print(f"verification: note: {note}", file=sys.stderr)
    sys.stderr.flush()
    return net


def emit(obj: Any, as_json: bool, text: str) -> None:
    """Print ``obj`` as one JSON object (``--json``) or ``text``."""
    if as_json:
        print(json.dumps(obj))
    else:
        print(text)
    sys.stdout.flush()
