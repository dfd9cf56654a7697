"""Fork server: runs the ``verification`` CLI (or one campaign API probe) in forked children.

Started by :mod:`runner` as ``python forkserver.py``.  It imports the toolkit's modules once (no
computation, so no thread pools exist at fork time) and then, for every JSON request read from its stdin,
forks a child that

* starts a new session (so a hang can be killed with its whole process group),
* caps its address space with ``RLIMIT_AS``,
* redirects stdin from /dev/null and stdout/stderr to files,
* runs ``verification.cli.main(argv)`` exactly as the console script does (``sys.exit(main())``), or a
  function of :mod:`api_probe`, and reports an uncaught exception as the interpreter would (traceback on
  stderr, exit code 1).

The parent waits with a wall-clock limit, kills the process group on timeout, and answers one JSON line
``{"rc", "seconds", "timed_out", "maxrss_kb"}``.  This is the CLI in a separate process, minus ~1-3 s of
interpreter start-up and imports per case; :mod:`runner` re-runs a sample of cases through the real
``verification`` executable to make sure both paths agree.
"""

from __future__ import annotations

import io
import json
import os
import resource
import signal
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))


def _preimport() -> None:
    import numpy  # noqa: F401
    import scipy.io  # noqa: F401
    import scipy.optimize  # noqa: F401

    import verification  # noqa: F401
    import verification.cli  # noqa: F401
    from verification.cli import build_parser

    build_parser()  # imports every command module
    for mod in ("verification.io", "verification.io.onnx_format", "verification.io.torch_format",
                "verification.io.nnet", "verification.io.mat", "verification.io.npz", "verification.vnnlib",
                "verification.smt", "verification.bounds", "onnx", "onnx.numpy_helper", "z3", "torch",
                "cvxpy", "verification.lipschitz.baseline", "verification.lipschitz._kernels",
                "verification.bounds._kernels"):
        try:
            __import__(mod)
        except Exception:  # a module being rewritten right now must not stop the campaign
            pass
    try:
        verification.available_methods()
    except Exception:
        pass
    sys.path.insert(0, HERE)
    try:
        import api_probe  # noqa: F401
    except Exception:
        pass


def _child(req: dict, proto_fds: tuple[int, ...]) -> None:
    rc = 1
    try:
        for fd in proto_fds:
            os.close(fd)
        os.setsid()
        mem = int(req.get("mem_bytes") or 0)
        if mem:
            resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        out = os.open(req["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        err = os.open(req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, 1)
        os.dup2(err, 2)
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8")
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8",
                                      errors="backslashreplace", line_buffering=True)
        if req.get("cwd"):
            os.chdir(req["cwd"])
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if req["kind"] == "cli":
            from verification.cli import main

            sys.argv = ["verification", *req["argv"]]
            try:
                rc = main(req["argv"])
                rc = 0 if rc is None else rc
            except SystemExit as exc:
                code = exc.code
                if code is None:
                    rc = 0
                elif isinstance(code, int):
                    rc = code
                else:
                    print(code, file=sys.stderr)
                    rc = 1
        else:
            import api_probe

            rc = int(getattr(api_probe, req["func"])(**req["args"]) or 0)
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # as the interpreter does for an uncaught exception
        try:
            traceback.print_exc()
        except BaseException:
            pass
        rc = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            pass
        os._exit(rc if isinstance(rc, int) and 0 <= rc < 256 else 1)


def main() -> None:
    proto_in = os.fdopen(os.dup(0), "r")
    proto_out = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    _preimport()
    proto_out.write(json.dumps({"ready": True}) + "\n")
    proto_out.flush()
    for line in proto_in:
        if not line.strip():
            continue
        req = json.loads(line)
        if req.get("kind") == "quit":
            break
        sys.stdout.flush()
        sys.stderr.flush()
        t0 = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _child(req, (proto_in.fileno(), proto_out.fileno()))
        timeout = float(req.get("timeout", 30))
        timed_out = False
        status, rusage = 0, None
        while True:
            wpid, status, rusage = os.wait4(pid, os.WNOHANG)
            if wpid == pid:
                break
            if time.monotonic() - t0 > timeout:
                timed_out = True
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                _, status, rusage = os.wait4(pid, 0)
                break
            time.sleep(0.005)
        seconds = time.monotonic() - t0
        if os.WIFEXITED(status):
            rc = os.WEXITSTATUS(status)
        else:
            rc = -os.WTERMSIG(status)
        proto_out.write(json.dumps({"rc": rc, "seconds": seconds, "timed_out": timed_out,
                                    "maxrss_kb": getattr(rusage, "ru_maxrss", 0)}) + "\n")
        proto_out.flush()


if __name__ == "__main__":
    main()
