"""A PyTorch file on an install without torch: one line naming the [torch] extra, not a ModuleNotFoundError."""

from __future__ import annotations

import sys

import pytest

from verification.errors import UnsupportedLayerError
from verification.io import load_network

torch = pytest.importorskip("torch")


def test_pt_without_torch_names_the_extra(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1)), path)
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    with pytest.raises(UnsupportedLayerError, match=r"torch is not installed.*\[torch\]") as err:
        load_network(path, trust=True)
    assert "\n" not in str(err.value)
