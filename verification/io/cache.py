"""A per-user cache of networks loaded from executable formats (ONNX, PyTorch) and cross-checked.

Loading an ONNX file costs the ``onnx`` and ``onnxruntime`` imports and the cross-check (about 0.2 s for a
small net, seconds for torch).  A network that loaded *and passed its cross-check* is stored under a key
made of

* the SHA-256 of the file's bytes (a changed file never hits),
* the loader options (``drop_softmax``, ``trust``, ``arch``, ``input_shape``, ...),
* a fingerprint of this package's code (the path, size and mtime of every module), numpy's and
  Python's versions (a changed loader never reads an entry written by another one).

A hit returns the stored :class:`~verification.network.Network` (layers, input box and metadata, including
the cross-check record) without importing onnx, onnxruntime or torch.  The analysed function is the one that
passed the check against the file's own runtime; ``metadata["cache"]`` says that it came from the cache.

Location: ``$VERIFICATION_CACHE_DIR``, else ``$XDG_CACHE_HOME/theorytools-verification``, else
``~/.cache/theorytools-verification``.  ``VERIFICATION_CACHE_DIR=off`` disables it.  Entries are pickles in
a directory readable by the user only; an entry is read only if it is a regular file owned by the user and
not writable by others.  Entries above ``MAX_ENTRY_BYTES`` are not stored; the oldest entries are removed
once the directory holds more than ``MAX_TOTAL_BYTES``.  Any error reading or writing the cache is ignored
(the file is then loaded as usual).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import stat
import sys
import tempfile
from pathlib import Path

import numpy as np

from verification.network import Network

__all__ = ["cache_dir", "lookup", "store", "key", "MAX_ENTRY_BYTES", "MAX_TOTAL_BYTES"]

MAX_ENTRY_BYTES = 64 << 20
MAX_TOTAL_BYTES = 512 << 20
_FORMAT = 1  # bump when the stored layout changes
_PACKAGE = Path(__file__).resolve().parents[1]
_code_digest: str | None = None


def cache_dir() -> Path | None:
    """The cache directory, or ``None`` when caching is off."""
    env = os.environ.get("VERIFICATION_CACHE_DIR")
    if env is not None:
        return None if env.strip().lower() in ("", "off", "0", "none") else Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "theorytools-verification"


def _code_fingerprint() -> str:
    global _code_digest
    if _code_digest is None:
        h = hashlib.sha256(f"{_FORMAT}|{np.__version__}|{sys.version}".encode())
        for p in sorted(_PACKAGE.rglob("*.py")):
            st = p.stat()
            h.update(f"{p.relative_to(_PACKAGE)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        _code_digest = h.hexdigest()
    return _code_digest


def key(path: Path, fmt: str, opts: dict) -> str:
    """The cache key of loading ``path`` as ``fmt`` with loader options ``opts``."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    h.update(f"|{fmt}|{sorted((k, repr(v)) for k, v in opts.items())}|{_code_fingerprint()}".encode())
    return h.hexdigest()


def _safe_entry(p: Path) -> bool:
    try:
        st = p.lstat()
    except OSError:
        return False
    own = not hasattr(os, "getuid") or st.st_uid == os.getuid()
    return stat.S_ISREG(st.st_mode) and own and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def lookup(k: str) -> Network | None:
    """The network stored under ``k``, or ``None``."""
    d = cache_dir()
    if d is None:
        return None
    p = d / f"{k}.pkl"
    if not _safe_entry(p):
        return None
    try:
        with open(p, "rb") as fh:
            net = pickle.load(fh)
        os.utime(p)  # most recently used: pruned last
    except Exception:
        return None
    return net if isinstance(net, Network) else None


def store(k: str, net: Network) -> None:
    """Store ``net`` (a network that passed its cross-check) under ``k``; errors are ignored."""
    d = cache_dir()
    if d is None:
        return
    try:
        data = pickle.dumps(net, protocol=pickle.HIGHEST_PROTOCOL)
        if len(data) > MAX_ENTRY_BYTES:
            return
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, d / f"{k}.pkl")
        _prune(d)
    except Exception:
        return


def _prune(d: Path) -> None:
    entries = []
    for p in d.glob("*.pkl"):
        try:
            st = p.stat()
        except OSError:
            continue
        entries.append((st.st_mtime, st.st_size, p))
    total = sum(e[1] for e in entries)
    for _, size, p in sorted(entries, key=lambda e: e[0]):
        if total <= MAX_TOTAL_BYTES:
            break
        try:
            p.unlink()
            total -= size
        except OSError:
            pass
