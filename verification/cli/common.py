"""Argument helpers shared by CLI commands."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["add_model_arguments", "load_model", "emit"]


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """MODEL positional plus the loader options (``--trust``, ``--arch``, ``--input-shape``)."""
    p.add_argument("model", metavar="MODEL", help="network file: .onnx, .nnet, .pt/.pth, .mat or .npz")
    p.add_argument(
        "--trust", action="store_true",
        help="allow unpickling arbitrary Python objects from a PyTorch file (runs code from the file)",
    )
    p.add_argument(
        "--arch", default=None,
        help="architecture for a PyTorch state_dict or .mat weights: one activation name for every hidden "
        "layer (relu, tanh, sigmoid, leaky_relu(0.1), maxmin, groupsort(4)) or a comma-separated list",
    )
    p.add_argument("--input-shape", default=None, help="C,H,W input shape (needed to lower Conv2d layers)")


def load_model(args: argparse.Namespace):
    from verification.io import load_network

    shape = None
    if args.input_shape:
        shape = tuple(int(s) for s in args.input_shape.split(","))
    return load_network(args.model, trust=args.trust, arch=args.arch, input_shape=shape)


def emit(obj: Any, as_json: bool, text: str) -> None:
    """Print ``obj`` as one JSON object (``--json``) or ``text``."""
    if as_json:
        print(json.dumps(obj))
    else:
        print(text)
    sys.stdout.flush()
