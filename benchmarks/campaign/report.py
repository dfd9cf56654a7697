"""Counting cases and failures, and writing self-contained reproducers."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import time
from collections import Counter, defaultdict

from runner import REPO, Run

# most severe first
CATEGORIES = [
    ("wrong_answer", "wrong answers (wrong holds / violated on a property that holds)"),
    ("unsound_bound", "unsound bounds (certified bound below a true value; lower bound above it)"),
    ("wrong_cex", "wrong counterexamples (outside the box / not violating as written)"),
    ("silent_model", "silent different model (loaded function differs, no refusal, no note)"),
    ("traceback", "tracebacks"),
    ("hang", "hangs / too slow"),
    ("wrong_exit", "wrong exit codes (incl. refusal of a valid input, crash)"),
    ("multiline_stderr", "multi-line / empty / usage-block stderr on an error"),
    ("stderr_noise", "warnings or other non-note stderr lines on success"),
]
CAT_NAMES = [c for c, _ in CATEGORIES]
MAX_REPRO_PER_CLASS = 5
WORK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "work")


def slug(text: str, n: int = 60) -> str:
    return re.sub(r"[^A-Za-z0-9_.+=-]+", "_", text)[:n].strip("_")


class Campaign:
    def __init__(self, failures_dir: str, seed: int, size: str):
        self.failures_dir = failures_dir
        self.seed, self.size = seed, size
        self.cases: Counter = Counter()  # part -> checks
        self.counts: dict = defaultdict(Counter)  # part -> category -> failures
        self.classes: dict = {}  # (part, category, cls) -> {"count", "repros", "example"}
        self.info: dict = defaultdict(Counter)  # free-form tallies (refusals, unknowns, ...)
        self.notes: list[str] = []
        self.t0 = time.time()
        self.skipped: Counter = Counter()
        if os.path.isdir(failures_dir):
            shutil.rmtree(failures_dir)
        os.makedirs(failures_dir, exist_ok=True)

    def case(self, part: str, n: int = 1) -> None:
        self.cases[part] += n

    def tally(self, table: str, key: str, n: int = 1) -> None:
        self.info[table][key] += n

    def fail(self, part: str, category: str, cls: str, detail: str, run: Run | None = None,
             files: list | None = None, extra: dict | None = None, command: str | None = None) -> None:
        """One failure of ``category`` (see :data:`CATEGORIES`); ``cls`` names the failure class (one
        reproducer directory per class, up to ``MAX_REPRO_PER_CLASS``)."""
        assert category in CAT_NAMES, category
        self.counts[part][category] += 1
        key = (part, category, cls)
        ent = self.classes.setdefault(key, {"count": 0, "repros": [], "example": detail, "command": None})
        ent["count"] += 1
        if len(ent["repros"]) < MAX_REPRO_PER_CLASS:
            d = os.path.join(self.failures_dir, f"{part}__{category}__{slug(cls)}__{len(ent['repros'])}")
            cmd = self._write_repro(d, detail, run, files or [], extra or {}, command)
            ent["repros"].append(d)
            if ent["command"] is None:
                ent["command"] = cmd

    def _write_repro(self, d: str, detail: str, run: Run | None, files: list, extra: dict,
                     command: str | None) -> str:
        os.makedirs(d, exist_ok=True)
        mapping = {}
        for f in files:
            if f and os.path.exists(f) and os.path.isfile(f):
                base = os.path.basename(f)
                shutil.copy(f, os.path.join(d, base))
                mapping[os.path.abspath(f)] = base
                mapping[f] = base
        if run is not None:
            def remap(a):
                if not isinstance(a, str):
                    return a
                if a.startswith("--") and "=" in a:
                    k, v = a.split("=", 1)
                    return f"{k}={mapping.get(v, v)}"
                return mapping.get(a, mapping.get(os.path.abspath(a), a))

            argv = [remap(a) for a in run.argv]
            # output paths inside the campaign's work directory (result files) become local names
            argv = [os.path.basename(a) if isinstance(a, str) and a.startswith(WORK + os.sep) and
                    not os.path.isdir(a) else a for a in argv]
            env = " ".join(f"{k}={shlex.quote(v)}" for k, v in run.env.items())
            if run.mode == "api":
                func, args = run.argv
                for k, v in mapping.items():
                    args = args.replace(json.dumps(k)[1:-1], v)
                cmd = (f'"$REPO/.venv/bin/python" "$REPO/benchmarks/campaign/api_probe.py" {func} '
                       f"{shlex.quote(args)}")
            else:
                cmd = (env + " " if env else "") + '"$REPO/.venv/bin/verification" ' + " ".join(
                    shlex.quote(a) for a in argv)
            with open(os.path.join(d, "stdout.txt"), "w") as fh:
                fh.write(run.stdout)
            with open(os.path.join(d, "stderr.txt"), "w") as fh:
                fh.write(run.stderr)
            got = f"exit {run.rc}, {run.seconds:.2f} s{' (timed out)' if run.timed_out else ''}"
        else:
            cmd = command or "(see README.txt)"
            for k, v in mapping.items():
                cmd = cmd.replace(k, v)
            got = ""
        with open(os.path.join(d, "cmd.sh"), "w") as fh:
            fh.write("#!/bin/sh\n# reproducer written by benchmarks/campaign/trust.py\n"
                     f'REPO="${{REPO:-{REPO}}}"\ncd "$(dirname "$0")"\n{cmd}\necho "exit code: $?"\n')
        os.chmod(os.path.join(d, "cmd.sh"), 0o755)
        with open(os.path.join(d, "README.txt"), "w") as fh:
            fh.write(f"{detail}\n\ncommand: {cmd}\nobserved: {got}\n")
            for k, v in extra.items():
                fh.write(f"{k}: {v}\n")
        return f"cd {d} && sh cmd.sh"

    # ------------------------------------------------------------------ summary
    def n_failures(self) -> int:
        return sum(sum(c.values()) for c in self.counts.values())

    def table(self) -> str:
        parts = sorted(set(self.cases) | set(self.counts))
        head = ["part", "cases"] + CAT_NAMES
        rows = [head]
        for p in parts:
            rows.append([p, str(self.cases[p])] + [str(self.counts[p][c]) for c in CAT_NAMES])
        rows.append(["TOTAL", str(sum(self.cases.values()))] +
                    [str(sum(self.counts[p][c] for p in parts)) for c in CAT_NAMES])
        w = [max(len(r[i]) for r in rows) for i in range(len(head))]
        return "\n".join("  ".join(c.rjust(w[i]) for i, c in enumerate(r)) for r in rows)

    def class_lines(self) -> list[str]:
        order = {c: i for i, c in enumerate(CAT_NAMES)}
        keys = sorted(self.classes, key=lambda k: (order[k[1]], -self.classes[k]["count"], k))
        out = []
        for k in keys:
            e = self.classes[k]
            out.append(f"[{k[1]}] {k[0]} {k[2]} x{e['count']}: {e['example'][:200]}\n"
                       f"    reproducer: {e['repros'][0] if e['repros'] else '-'}\n    command: {e['command']}")
        return out

    def to_json(self) -> dict:
        return {
            "seed": self.seed, "size": self.size, "seconds": time.time() - self.t0,
            "cases": dict(self.cases), "counts": {p: dict(c) for p, c in self.counts.items()},
            "classes": [{"part": k[0], "category": k[1], "class": k[2], **v} for k, v in self.classes.items()],
            "info": {t: dict(c) for t, c in self.info.items()}, "skipped": dict(self.skipped), "notes": self.notes,
        }
