"""Command-line interface: ``verification <command> ...``.

Each command is a module in this package defining ``HELP``, ``add_arguments(parser)`` and ``run(args)``
(returning an exit code).  Errors derived from :class:`VerificationError` and bad command-line options
become a one-line message on stderr and exit code 2; a solver that ran on valid input but produced no
certified answer (:class:`SolverError`) gives one line and exit code 1 (not certified); a failed internal consistency check or an unexpected
exception (a bug of ours) becomes one line and exit code 4.  Warnings are not printed: stderr carries the
error line and the loader's ``note:`` lines only.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import warnings

STARTED = time.monotonic()  # the command's budgets (--time-limit) count from here: the process's import of the
# CLI for ``verification ...`` / ``python -m verification``, the call of :func:`main` when it gets ``argv``

from verification.errors import InternalCheckError, SolverError, VerificationError

__all__ = ["main", "COMMANDS"]

# command name -> module in verification.cli
COMMANDS = {
    "lipschitz": "lipschitz",
    "info": "info",
    "verify": "verify",
    "local-lipschitz": "local_lipschitz",
    "batch": "batch",
    "check-proof": "check_proof",
}


EXIT_NOT_CERTIFIED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 4
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {' '.join(message.split())} (see --help)", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def package_version() -> str:
    """The installed distribution's version (``importlib.metadata``), else ``verification.__version__``."""
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover
        PackageNotFoundError, version = Exception, None
    try:
        if version is not None:
            return version(DISTRIBUTION)
    except PackageNotFoundError:
        pass
    return sys.modules["verification"].__version__  # the parent package is loaded with this one


DISTRIBUTION = "theorytools-verification"


class _Version(argparse.Action):
    """``--version``: looked up only when asked (importlib.metadata costs a few milliseconds)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog} {package_version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="verification",
        description="Certified Lipschitz bounds and verification of neural networks.",
    )
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, mod_name in COMMANDS.items():
        mod = importlib.import_module(f"verification.cli.{mod_name}")
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    global STARTED
    if argv is not None:  # called in-process (tests, scripts): the command starts now
        STARTED = time.monotonic()
    code = _main(argv)
    z3_encode = sys.modules.get("verification.smt.encode")
    busy = z3_encode is not None and z3_encode.busy()
    if argv is None and (busy or code == EXIT_INTERRUPTED):
        # a Z3 search outlived its deadline (it ignores interrupts in some phases): exit now rather than wait
        # for it or free its objects under it at shutdown.  After Ctrl-C, exit now too: CPython remembers a
        # KeyboardInterrupt raised inside a C extension's PyRun_String call even when our code caught it, and
        # would then end the process with SIGINT (status -2) instead of the documented 130
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy / torch / scipy warnings would break the one-line contract
        try:
            return int(args._run(args) or 0)
        except InternalCheckError as exc:
            print(f"verification {args.command}: internal error: {_one_line(exc)}", file=sys.stderr)
            return EXIT_INTERNAL
        except SolverError as exc:  # valid input, but the method produced no certified answer
            msg = _one_line(exc)
            if getattr(args, "json", False):
                print(json.dumps({"certified": False, "value": None, "reason": msg}))
            print(f"verification {args.command}: not certified: {msg}", file=sys.stderr)
            return EXIT_NOT_CERTIFIED
        except VerificationError as exc:
            print(f"verification {args.command}: error: {_one_line(exc)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except KeyboardInterrupt:
            print(f"verification {args.command}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except MemoryError:
            print(f"verification {args.command}: error: out of memory (the model or property is too large)",
                  file=sys.stderr)
            return EXIT_BAD_INPUT
        except Exception as exc:  # a bug of ours: one line, the traceback only on request
            if isinstance(exc, SystemError) and isinstance(exc.__cause__, KeyboardInterrupt):  # Ctrl-C in numba
                print(f"verification {args.command}: interrupted", file=sys.stderr)
                return EXIT_INTERRUPTED
            if os.environ.get("VERIFICATION_DEBUG"):
                raise
            print(f"verification {args.command}: internal error: {type(exc).__name__}: {_one_line(exc)} "
                  "(please report; VERIFICATION_DEBUG=1 shows the traceback)", file=sys.stderr)
            return EXIT_INTERNAL
