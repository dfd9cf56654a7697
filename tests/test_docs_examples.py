"""Every worked example on the user pages runs as written from the repository root.

From each user page (README.md and docs/*.md except the benchmark, design and architecture pages) this
extracts, in order:

* fenced ``python`` blocks (a block written as a ``>>>`` session runs its ``>>>``/``...`` lines), run in one
  Python process per page, one namespace, so later blocks see earlier names;
* the command lines of fenced ``bash``/``sh``/``console`` blocks that start with ``verification``,
  ``theorytools`` or ``python`` (a ``$`` prompt is dropped), run with the venv's ``bin`` first on PATH.
  A command passes with exit code 0, or with the code named in a trailing comment ``# exit N``.

Commands run in a scratch directory that links every top-level entry of the repository, so relative
paths (``examples/...``, ``tests/data/...``) resolve as from the root and files an example writes do
not land in the checkout.  A block opts out only with ``<!-- no-run -->`` on the line before its fence
(``NO_RUN`` below lists the pages that may use it, and why).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOT_USER_PAGES = {"architecture.md", "benchmarks.md"}
BLOCK_TIMEOUT = 150  # seconds per block
#: the blocks that may not run, per page: the marker is refused anywhere else
NO_RUN: dict[str, str] = {}  # page -> reason; empty: every block runs
SHELL_LANGS = {"bash", "sh", "console", "shell"}
COMMANDS = ("verification ", "theorytools ", "python ", "python3 ")
FENCE = re.compile(r"^(\s*)```+\s*([A-Za-z0-9_+-]*)\s*$")
EXIT_NOTE = re.compile(r"#.*\bexit(?: code)? (\d+)\b")


@dataclass
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    no_run: bool


def user_pages() -> list[Path]:
    docs = sorted(p for p in (ROOT / "docs").glob("*.md") if p.name not in NOT_USER_PAGES and not p.name.startswith("benchmarks"))
    return [ROOT / "README.md", *docs]


def blocks(path: Path) -> list[Block]:
    out: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m.group(2).lower()
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith("```"):
            j += 1
        body = textwrap.dedent("\n".join(lines[i + 1 : j]))
        no_run = start > 0 and lines[start - 1].strip() == "<!-- no-run -->"
        out.append(Block(path.name, start + 1, lang, body, no_run))
        i = j + 1
    return out


def python_source(block: Block) -> str:
    """The code of a python block; a ``>>>`` session gives its input lines only."""
    lines = block.text.splitlines()
    if not any(line.startswith(">>>") for line in lines):
        return block.text
    code = [line[4:] for line in lines if line.startswith((">>> ", "... ")) or line in (">>>", "...")]
    return "\n".join(code)


def commands(block: Block) -> list[str]:
    """The commands of a shell block; where lines carry a ``$ `` prompt (console transcripts), only those lines
    (the others are the output shown)."""
    lines = [line.strip() for line in block.text.splitlines()]
    prompted = any(line.startswith("$ ") for line in lines)
    cmds = []
    for s in lines:
        if prompted:
            if not s.startswith("$ "):
                continue
            s = s[2:].strip()
        if s.startswith(COMMANDS):
            cmds.append(s)
    return cmds


def scratch_root(tmp_path: Path) -> Path:
    """A directory that looks like the repository root but keeps what examples write."""
    for entry in ROOT.iterdir():
        if entry.name not in {".git", ".venv"}:
            (tmp_path / entry.name).symlink_to(entry)
    return tmp_path


_DRIVER = r"""
import signal, sys, traceback
def _alarm(signum, frame):
    raise TimeoutError("block timed out")
signal.signal(signal.SIGALRM, _alarm)
_blocks = __BLOCKS__
_ns = {"__name__": "__main__"}
for _line, _code in _blocks:
    signal.alarm(__TIMEOUT__)
    try:
        exec(compile(_code, f"<{__PAGE__} block at line {_line}>", "exec"), _ns)
    except BaseException:
        signal.alarm(0)
        sys.stdout.flush()
        print(f"\n@@FAILED {__PAGE__} block at line {_line}", file=sys.stderr)
        traceback.print_exc()
        sys.exit(1)
    signal.alarm(0)
"""


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env["MPLBACKEND"] = "Agg"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


PAGES = user_pages()


def test_pages_found():
    names = {p.name for p in PAGES}
    assert {"README.md", "lipschitz.md", "verify.md", "ntk.md"} <= names
    assert sum(len(blocks(p)) for p in PAGES) > 20


def test_no_run_markers_are_the_listed_ones():
    for page in PAGES:
        skipped = [b for b in blocks(page) if b.no_run]
        assert not skipped or page.name in NO_RUN, f"{page.name}: <!-- no-run --> at lines {[b.line for b in skipped]} not listed"


def _runnable(page: Path) -> bool:
    todo = [b for b in blocks(page) if not b.no_run]
    return any(b.lang in ("python", "py", "pycon") or (b.lang in SHELL_LANGS and commands(b)) for b in todo)


RUNNABLE = [p for p in PAGES if _runnable(p)]


def test_every_user_page_has_a_runnable_example():
    """index.md is the table of contents; every other user page leads with a worked example."""
    assert {p.name for p in PAGES if p not in RUNNABLE} <= {"index.md"}


@pytest.mark.slow
@pytest.mark.parametrize("page", RUNNABLE, ids=[p.name for p in RUNNABLE])
def test_page_examples_run(page: Path, tmp_path: Path):
    todo = [b for b in blocks(page) if not b.no_run]
    py = [(b.line, python_source(b)) for b in todo if b.lang in ("python", "py", "pycon")]
    sh = [(b, c) for b in todo if b.lang in SHELL_LANGS for c in commands(b)]
    cwd = scratch_root(tmp_path)
    env = _env()
    if py:
        driver = (
            _DRIVER.replace("__BLOCKS__", repr(py)).replace("__TIMEOUT__", str(BLOCK_TIMEOUT)).replace("__PAGE__", repr(page.name))
        )
        res = subprocess.run(
            [sys.executable, "-c", driver], cwd=cwd, env=env, capture_output=True, text=True,
            timeout=BLOCK_TIMEOUT * len(py) + 60,
        )
        assert res.returncode == 0, f"{page.name}: python block failed\n{res.stderr[-3000:]}"
    for block, cmd in sh:
        m = EXIT_NOTE.search(cmd)
        expected = int(m.group(1)) if m else 0
        try:
            res = subprocess.run(cmd, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{page.name} block at line {block.line}: `{cmd}` timed out after {BLOCK_TIMEOUT} s")
        assert res.returncode == expected, (
            f"{page.name} block at line {block.line}: `{cmd}` exited {res.returncode} (expected {expected})\n"
            f"{res.stdout[-1500:]}\n{res.stderr[-1500:]}"
        )
