"""Small builders shared by verification tests (ONNX graphs written with onnx.helper)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_onnx(path: Path, nodes, initializers: dict[str, np.ndarray], n_in: int, out_name: str) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n_in])],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in initializers.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
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
