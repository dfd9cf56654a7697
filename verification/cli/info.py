"""``verification info MODEL``: load a model and print its architecture."""

from __future__ import annotations

import argparse

from verification.cli.common import add_model_arguments, emit, load_model

HELP = "load a model and print its architecture in the network IR"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    net = load_model(args)
    obj = {
        "model": args.model,
        "source": net.metadata.get("source"),
        "format": net.metadata.get("format"),
        "in_dim": net.in_dim,
        "out_dim": net.out_dim,
        "layers": [l.describe() for l in net.layers],
        "has_input_domain": net.input_lower is not None,
    }
    for key in ("assumed", "dropped"):
        if net.metadata.get(key):
            obj[key] = net.metadata[key]
    emit(obj, args.json, f"{net.metadata.get('format', '?')} model: {net.describe()}")
    return 0
