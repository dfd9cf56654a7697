"""ONNX files as torch writes them by default: the default (dynamo) exporter keeps the weights in an external
``MODEL.onnx.data`` file, and padding modes other than zeros come out as ``Pad`` nodes (default exporter) or as
constant subgraphs (``ConstantOfShape``, ``Slice`` with negative steps, ``Transpose``) and spatial ``Concat``
(legacy exporter).  Every one loads, equals torch, and the external data is checked like the model file."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxscript")

from verification.errors import ModelFormatError  # noqa: E402
from verification.io import load_network  # noqa: E402


def _model(mode: str):
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(2, 3, 3, padding=1, padding_mode=mode), torch.nn.ReLU(),
        torch.nn.Conv2d(3, 2, 3, stride=2, padding=1, padding_mode=mode), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(2 * 3 * 3, 4)).eval().double()


def _export(model, path, dynamo: bool) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.float(), (torch.zeros(1, 2, 6, 6),), str(path), dynamo=dynamo)  # torch's defaults
    model.double()


def _loads_as_torch(model, path):
    """The loaded network equals the (float64) torch model on random 2 x 6 x 6 inputs, to float32 rounding."""
    net = load_network(path)
    x = np.random.default_rng(1).normal(size=(20, 72))
    with torch.no_grad():
        ref = model(torch.tensor(x).reshape(20, 2, 6, 6)).numpy()
    np.testing.assert_allclose(net(x), ref, rtol=1e-5, atol=1e-5)  # float32 weights in the file
    return net


@pytest.mark.parametrize("mode, dynamo", [("zeros", True), ("reflect", True), ("circular", True), ("zeros", False),
                                          ("reflect", False), ("replicate", False), ("circular", False)])
def test_default_exports_load_and_equal_torch(tmp_path, mode, dynamo):
    model = _model(mode)
    path = tmp_path / "m.onnx"
    _export(model, path, dynamo)
    net = _loads_as_torch(model, path)
    assert net.metadata["crosscheck"]["max_ratio"] <= 1.0
    if dynamo:
        assert net.metadata["external_data"] == ["m.onnx.data"]


def test_external_data_is_checked_and_not_cached(tmp_path, monkeypatch):
    model = _model("zeros")
    path = tmp_path / "m.onnx"
    _export(model, path, True)
    data = tmp_path / "m.onnx.data"
    monkeypatch.setenv("VERIFICATION_CACHE_DIR", str(tmp_path / "cache"))
    load_network(path)
    assert not list((tmp_path / "cache").glob("*.pkl"))  # the key would cover m.onnx only
    size = data.stat().st_size
    data.write_bytes(data.read_bytes()[: size // 2])  # truncated: bytes outside the file
    with pytest.raises(ModelFormatError, match="outside the file"):
        load_network(path)
    data.unlink()
    with pytest.raises(ModelFormatError, match="missing"):
        load_network(path)
    (tmp_path / "sub").mkdir()
    shutil.copy(path, tmp_path / "sub" / "m.onnx")  # its data file is not next to it
    with pytest.raises(ModelFormatError, match="external data"):
        load_network(tmp_path / "sub" / "m.onnx")


class _SpatialCat(torch.nn.Module):
    """Data tensors concatenated along the height and the width axes (not a channel concat)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(2)
        self.conv = torch.nn.Conv2d(2, 2, 3, padding=1)
        self.head = torch.nn.Linear(2 * 12 * 9, 3)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        y = torch.cat([h, 0.5 * x], dim=2)  # 2 x 12 x 6
        y = torch.cat([y, y[:, :, :, :3]], dim=3)  # 2 x 12 x 9
        return self.head(torch.relu(y).flatten(1))


@pytest.mark.parametrize("dynamo", [True, False])
def test_spatial_concat_loads_and_equals_torch(tmp_path, dynamo):
    model = _SpatialCat().eval().double()
    path = tmp_path / "cat.onnx"
    _export(model, path, dynamo)
    _loads_as_torch(model, path)
