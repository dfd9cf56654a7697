"""The per-user cache of cross-checked networks (verification/io/cache.py): a hit is the same function as a
fresh load, any change of file, options or code misses, unsafe or corrupt entries are ignored."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest

from verification.io import cache, load_network
from verification.network import Network

from .onnx_builders import mlp_onnx


@pytest.fixture
def cache_on(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("VERIFICATION_CACHE_DIR", str(d))
    return d


def _mlp(path, seed=0):
    r = np.random.default_rng(seed)
    return mlp_onnx(path, r.normal(size=(6, 4)), r.normal(size=6), r.normal(size=(3, 6)), act="Tanh")


def _same_function(a: Network, b: Network) -> None:
    x = np.random.default_rng(1).uniform(-3, 3, size=(50, a.in_dim))
    np.testing.assert_array_equal(a(x), b(x))
    assert [l.describe() for l in a.layers] == [l.describe() for l in b.layers]


def test_hit_is_the_loaded_network(tmp_path, cache_on):
    f = _mlp(tmp_path / "m.onnx")
    first = load_network(f)
    assert "cache" not in first.metadata and "crosscheck" in first.metadata
    assert len(list(cache_on.glob("*.pkl"))) == 1
    second = load_network(f)
    assert "cross-checked" in second.metadata["cache"]
    assert second.metadata["crosscheck"] == first.metadata["crosscheck"]
    assert second.metadata["source"] == str(f)
    _same_function(first, second)


def test_changed_file_or_options_miss(tmp_path, cache_on):
    f = _mlp(tmp_path / "m.onnx", seed=0)
    load_network(f)
    _mlp(f, seed=1)  # same path, new weights
    fresh = load_network(f)
    assert "cache" not in fresh.metadata
    _same_function(fresh, load_network(f, check=True))
    g = tmp_path / "copy.onnx"
    shutil.copy(f, g)  # same bytes, other path: a hit
    assert "cache" in load_network(g).metadata
    assert len(list(cache_on.glob("*.pkl"))) == 2


def test_unchecked_loads_are_not_cached(tmp_path, cache_on):
    f = _mlp(tmp_path / "m.onnx")
    load_network(f, check=False)
    assert not cache_on.exists() or not list(cache_on.glob("*.pkl"))


def test_code_change_misses(tmp_path, cache_on, monkeypatch):
    f = _mlp(tmp_path / "m.onnx")
    load_network(f)
    monkeypatch.setattr(cache, "_code_digest", "another version of the loader")
    assert "cache" not in load_network(f).metadata


def test_unsafe_and_corrupt_entries_are_ignored(tmp_path, cache_on):
    f = _mlp(tmp_path / "m.onnx")
    ref = load_network(f)
    (entry,) = cache_on.glob("*.pkl")
    os.chmod(entry, 0o666)  # writable by others: never read
    assert "cache" not in load_network(f).metadata
    os.chmod(entry, 0o600)
    entry.write_bytes(b"not a pickle")
    net = load_network(f)
    assert "cache" not in net.metadata
    _same_function(ref, net)
    entry.write_bytes(pickle.dumps({"not": "a network"}))
    assert "cache" not in load_network(f).metadata


def test_off_and_pruning(tmp_path, cache_on, monkeypatch):
    f = _mlp(tmp_path / "m.onnx")
    monkeypatch.setenv("VERIFICATION_CACHE_DIR", "off")
    load_network(f)
    assert not cache_on.exists()
    monkeypatch.setenv("VERIFICATION_CACHE_DIR", str(cache_on))
    size = None
    for seed in range(4):
        load_network(_mlp(tmp_path / f"m{seed}.onnx", seed=seed))
        size = size or next(cache_on.glob("*.pkl")).stat().st_size
    assert len(list(cache_on.glob("*.pkl"))) == 4
    monkeypatch.setattr(cache, "MAX_TOTAL_BYTES", 2 * size)
    load_network(_mlp(tmp_path / "m9.onnx", seed=9))
    assert len(list(cache_on.glob("*.pkl"))) == 2
    monkeypatch.setattr(cache, "MAX_ENTRY_BYTES", 10)
    load_network(_mlp(tmp_path / "m10.onnx", seed=10))
    assert len(list(cache_on.glob("*.pkl"))) == 2


def test_hit_imports_neither_onnx_nor_onnxruntime(tmp_path, cache_on):
    f = _mlp(tmp_path / "m.onnx")
    load_network(f)
    code = ("import sys; from verification.io import load_network; net = load_network(sys.argv[1]); "
            "print('cache' in net.metadata, 'onnx' in sys.modules, 'onnxruntime' in sys.modules)")
    env = dict(os.environ, VERIFICATION_CACHE_DIR=str(cache_on))
    out = subprocess.run([sys.executable, "-c", code, str(f)], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False", "False"]


def test_trusted_module_pickles_are_never_cached_torchscript_is(tmp_path, cache_on):
    """A whole pickled nn.Module runs the user's current class code (its function is not fixed by the file's
    bytes): loaded and cross-checked every time.  A TorchScript file carries its code: cached."""
    torch = pytest.importorskip("torch")
    from .onnx_builders import torch_mlp

    model = torch_mlp()
    torch.save(model, tmp_path / "whole.pt")
    load_network(tmp_path / "whole.pt", trust=True)
    assert "cache" not in load_network(tmp_path / "whole.pt", trust=True).metadata
    assert not cache_on.exists() or not list(cache_on.glob("*.pkl"))
    torch.jit.script(model).save(str(tmp_path / "scripted.pt"))
    first = load_network(tmp_path / "scripted.pt")
    second = load_network(tmp_path / "scripted.pt")
    assert "cache" in second.metadata
    _same_function(first, second)
