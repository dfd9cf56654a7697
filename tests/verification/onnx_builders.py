"""Small builders shared by verification tests (ONNX graphs written with onnx.helper, torch exports)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_onnx(
    path: Path,
    nodes,
    initializers: dict[str, np.ndarray],
    n_in: int,
    out_name: str,
    in_shape: list | None = None,
    opset: int = 13,
    raw_initializers: list | None = None,
) -> Path:
    """A graph with input ``x`` of shape ``in_shape`` (default ``[1, n_in]``; strings are symbolic dims),
    float32 ``initializers`` plus any prebuilt TensorProtos in ``raw_initializers``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape if in_shape is not None else [1, n_in])],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in initializers.items()]
        + list(raw_initializers or []),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.save(model, str(path))
    return path


def mlp_onnx(path: Path, w0: np.ndarray, b0: np.ndarray, w1: np.ndarray, act: str = "Relu", extra=None) -> Path:
    """``x -> Gemm(w0) -> act -> MatMul(w1ᵀ) (+ optional extra node)``."""
    from onnx import helper

    nodes = [
        helper.make_node("Gemm", ["x", "W0", "B0"], ["h"], transB=1),
        helper.make_node(act, ["h"], ["a"]),
        helper.make_node("MatMul", ["a", "W1T"], ["y"]),
    ]
    out = "y"
    if extra is not None:
        nodes.append(helper.make_node(extra, ["y"], ["z"]))
        out = "z"
    return write_onnx(path, nodes, {"W0": w0, "B0": b0, "W1T": w1.T}, w0.shape[1], out)


def export_onnx(model, path: Path, example) -> Path:
    """``torch.onnx.export`` (TorchScript-based exporter) with a dynamic batch axis."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, example, str(path), dynamo=False, input_names=["input"], output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        )
    return path


def torch_mlp(widths=(3, 8, 6, 2), act=None, seed: int = 0):
    """A float32 ``nn.Sequential`` MLP (ReLU between layers by default)."""
    import torch

    torch.manual_seed(seed)
    layers = []
    for i in range(len(widths) - 1):
        layers.append(torch.nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append((act or torch.nn.ReLU)())
    return torch.nn.Sequential(*layers).eval()
