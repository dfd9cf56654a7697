"""Command-line interface: ``verification <command> ...``.

Each command is a module in this package defining ``HELP``, ``add_arguments(parser)`` and ``run(args)``
(returning an exit code).  Errors derived from :class:`VerificationError` become a one-line message on
stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from verification.errors import VerificationError

__all__ = ["main", "COMMANDS"]

# command name -> module in verification.cli
COMMANDS = {
    "lipschitz": "lipschitz",
    "info": "info",
    "verify": "verify",
    "local-lipschitz": "local_lipschitz",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="verification",
        description="Certified Lipschitz bounds and verification of neural networks.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, mod_name in COMMANDS.items():
        mod = importlib.import_module(f"verification.cli.{mod_name}")
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except VerificationError as exc:
        msg = " ".join(str(exc).split())  # one line
        print(f"verification {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"verification {args.command}: interrupted", file=sys.stderr)
        return 130
