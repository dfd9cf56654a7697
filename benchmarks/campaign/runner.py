"""Running the CLI from the outside: a fork server (fast) and the real executable (exact)."""

from __future__ import annotations

import json
import os
import resource
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
VENV = os.path.join(REPO, ".venv", "bin")
PYTHON = os.path.join(VENV, "python") if os.path.exists(os.path.join(VENV, "python")) else sys.executable
VERIFICATION = os.path.join(VENV, "verification")
MEM_BYTES = 4 * 1024**3

# one thread per numerical library: the machine is shared (2 cores)
BASE_ENV = dict(os.environ)
for _k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    BASE_ENV[_k] = "1"
BASE_ENV.setdefault("PYTHONHASHSEED", "0")


@dataclass
class Run:
    argv: list
    rc: int
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool
    mode: str  # "fork" | "exec" | "api"
    env: dict = field(default_factory=dict)
    maxrss_kb: int = 0

    @property
    def stderr_lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines()]

    def json(self):
        """The single JSON object on stdout, or None."""
        text = self.stdout.strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            # maybe one JSON line among notes
            for ln in text.splitlines()[::-1]:
                ln = ln.strip()
                if ln.startswith("{"):
                    try:
                        return json.loads(ln)
                    except ValueError:
                        pass
            return None

    def command(self) -> str:
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        exe = "verification" if self.mode != "api" else "python api_probe.py"
        return (env + " " if env else "") + exe + " " + " ".join(shlex.quote(str(a)) for a in self.argv)


def _limit_memory(mem: int):
    def fn():
        os.setsid()
        if mem:
            resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    return fn


class Runner:
    """``run(argv)`` executes ``verification *argv``; ``mode='fork'`` (default) or ``'exec'``."""

    def __init__(self, workdir: str, exec_every: int = 0):
        self.workdir = workdir
        self.exec_every = exec_every  # additionally re-run every k-th fork case through the executable
        self._server = None
        self._ready = False
        self._count = 0
        self.fork_exec_disagreements: list[tuple] = []
        self.n_exec = 0
        self.n_fork = 0

    # ------------------------------------------------------------------ fork server
    def prestart(self) -> None:
        """Start the fork server now (its imports overlap with the campaign's own set-up)."""
        if self._server is None:
            env = dict(BASE_ENV)
            self._server = subprocess.Popen(
                [PYTHON, os.path.join(HERE, "forkserver.py")], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, text=True, env=env, cwd=self.workdir,
            )
            self._ready = False

    def _start(self) -> None:
        if self._server is not None and self._server.poll() is not None:
            self._server = None
        self.prestart()
        if self._ready:
            return
        line = self._server.stdout.readline()
        self._ready = True
        if not line or not json.loads(line).get("ready"):
            raise RuntimeError("fork server did not start")

    def close(self) -> None:
        if self._server is not None:
            try:
                self._server.stdin.write(json.dumps({"kind": "quit"}) + "\n")
                self._server.stdin.flush()
                self._server.wait(timeout=5)
            except Exception:
                self._server.kill()
            self._server = None

    def _fork(self, req: dict, timeout: float) -> dict:
        for attempt in range(2):
            if self._server is None or self._server.poll() is not None or not self._ready:
                self._start()
            try:
                self._server.stdin.write(json.dumps(req) + "\n")
                self._server.stdin.flush()
                line = self._server.stdout.readline()
                if line:
                    return json.loads(line)
            except (BrokenPipeError, OSError, ValueError):
                pass
            self._server = None
        raise RuntimeError("fork server failed twice")

    def _files(self):
        fd1, out = tempfile.mkstemp(prefix="out", dir=self.workdir)
        fd2, err = tempfile.mkstemp(prefix="err", dir=self.workdir)
        os.close(fd1)
        os.close(fd2)
        return out, err

    @staticmethod
    def _read(path: str) -> str:
        with open(path, "rb") as fh:
            data = fh.read(2_000_000)
        os.unlink(path)
        return data.decode("utf-8", errors="backslashreplace")

    def run(self, argv: list, timeout: float = 30.0, mode: str = "fork", env: dict | None = None,
            cwd: str | None = None) -> Run:
        argv = [str(a) for a in argv]
        if env:
            mode = "exec"  # environment variables (locale, ...) act at interpreter start-up
        if mode == "fork":
            self._count += 1
            self.n_fork += 1
            out, err = self._files()
            resp = self._fork({"kind": "cli", "argv": argv, "stdout": out, "stderr": err, "timeout": timeout,
                               "mem_bytes": MEM_BYTES, "cwd": cwd or self.workdir}, timeout)
            r = Run(argv, resp["rc"], self._read(out), self._read(err), resp["seconds"], resp["timed_out"],
                    "fork", maxrss_kb=resp.get("maxrss_kb", 0))
            if self.exec_every and self._count % self.exec_every == 0 and not r.timed_out:
                e = self.run(argv, timeout=timeout + 10, mode="exec", cwd=cwd)
                if (e.rc, _norm(e.stderr)) != (r.rc, _norm(r.stderr)) and not e.timed_out:
                    self.fork_exec_disagreements.append((argv, r.rc, e.rc, r.stderr[-300:], e.stderr[-300:]))
            return r
        self.n_exec += 1
        full_env = dict(BASE_ENV)
        full_env.update(env or {})
        t0 = time.monotonic()
        p = subprocess.Popen([VERIFICATION, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, env=full_env, cwd=cwd or self.workdir,
                             preexec_fn=_limit_memory(MEM_BYTES))
        timed_out = False
        try:
            so, se = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            so, se = p.communicate()
        return Run(argv, p.returncode, so.decode("utf-8", "backslashreplace"),
                   se.decode("utf-8", "backslashreplace"), time.monotonic() - t0, timed_out, "exec",
                   env=dict(env or {}))

    def api(self, func: str, args: dict, timeout: float = 60.0) -> Run:
        """Run ``api_probe.func(**args)`` in a forked child (the public Python API, isolated)."""
        out, err = self._files()
        resp = self._fork({"kind": "api", "func": func, "args": args, "stdout": out, "stderr": err,
                           "timeout": timeout, "mem_bytes": MEM_BYTES, "cwd": self.workdir}, timeout)
        return Run([func, json.dumps(args)], resp["rc"], self._read(out), self._read(err), resp["seconds"],
                   resp["timed_out"], "api")


def _norm(stderr: str) -> str:
    """stderr without timings (compared between fork and exec runs)."""
    import re

    return re.sub(r"[0-9.]+(e-?\d+)? ?s\b", "", stderr).strip()


# ---------------------------------------------------------------------- stderr / exit code classification
NOTE_PREFIX = "verification: note:"


def error_issues(r: Run, limit: float) -> list[tuple[str, str]]:
    """Issues of a run that must fail cleanly: exit 2, exactly one non-empty stderr line, no traceback, no
    usage block, no warning, within ``limit`` seconds.  Returns ``[(category, detail)]``."""
    issues = []
    if r.timed_out:
        return [("hang", f"no answer within {limit:g} s")]
    # ``verification: note:`` lines (what a loader assumed) are a separate promise: not counted here
    lines = [ln for ln in r.stderr.splitlines() if not ln.startswith(NOTE_PREFIX)]
    if "Traceback (most recent call last)" in r.stderr:
        last = [ln for ln in lines if ln.strip()][-1:] or [""]
        issues.append(("traceback", last[0][:160]))
    if r.rc < 0:
        issues.append(("wrong_exit", f"killed by signal {-r.rc} (memory cap or crash)"))
    elif r.rc != 2:
        issues.append(("wrong_exit", f"exit {r.rc}, expected 2"))
    nonempty = [ln for ln in lines if ln.strip()]
    if not any(c == "traceback" for c, _ in issues):
        if len(lines) != 1 or not lines[0].strip():
            if nonempty and nonempty[0].startswith("usage:"):
                issues.append(("multiline_stderr", f"usage block + {len(lines)} lines"))
            elif not nonempty:
                issues.append(("multiline_stderr", "empty stderr"))
            else:
                issues.append(("multiline_stderr", f"{len(lines)} stderr lines: {nonempty[0][:100]!r}"))
        elif "warning" in lines[0].lower() and "error" not in lines[0].lower():
            issues.append(("multiline_stderr", f"warning instead of error: {lines[0][:100]!r}"))
    return issues


def success_issues(r: Run, expected_rc: set, limit: float) -> list[tuple[str, str]]:
    """Issues of a run that must answer normally: exit code in ``expected_rc``, stderr only ``note:`` lines."""
    issues = []
    if r.timed_out:
        return [("hang", f"no answer within {limit:g} s")]
    if "Traceback (most recent call last)" in r.stderr:
        last = [ln for ln in r.stderr.splitlines() if ln.strip()][-1:] or [""]
        issues.append(("traceback", last[0][:160]))
    if r.rc not in expected_rc:
        first = (r.stderr.strip().splitlines() or [""])[0][:140]
        issues.append(("wrong_exit", f"exit {r.rc}, expected {sorted(expected_rc)}: {first!r}"))
    noise = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith(NOTE_PREFIX)
             and not (r.rc == 1 and ": not certified: " in ln)]  # exit 1's one-line reason is not noise
    if noise and not issues:
        issues.append(("stderr_noise", f"{len(noise)} non-note stderr lines: {noise[0][:120]!r}"))
    return issues


def notes(r: Run) -> list[str]:
    return [ln for ln in r.stderr.splitlines() if ln.startswith(NOTE_PREFIX)]
