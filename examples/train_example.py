"""Train the bundled example classifier deterministically and save it as ONNX and as a state_dict.

    python examples/train_example.py          # writes examples/classifier.onnx and examples/classifier.pt

A 2-16-16-3 ReLU MLP on a synthetic three-arm spiral (600 points, fixed seeds, full-batch Adam,
single thread), so re-running gives the same weights.  Load it with
``verification.load_network("examples/classifier.onnx")`` or, for the state_dict,
``load_network("examples/classifier.pt", arch="relu")``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent


def spiral(n_per_class: int = 200, n_classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for k in range(n_classes):
        r = np.linspace(0.05, 1.0, n_per_class)
        t = np.linspace(k * 2 * np.pi / n_classes, k * 2 * np.pi / n_classes + 2.5, n_per_class)
        t = t + 0.15 * rng.standard_normal(n_per_class)
        xs.append(np.stack([r * np.cos(t), r * np.sin(t)], axis=1))
        ys.append(np.full(n_per_class, k))
    return np.concatenate(xs), np.concatenate(ys)


def make_model() -> torch.nn.Sequential:
    return torch.nn.Sequential(
        torch.nn.Linear(2, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)
    )


def train(epochs: int = 1500) -> tuple[torch.nn.Sequential, float]:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    x_np, y_np = spiral()
    x = torch.tensor(x_np, dtype=torch.float32)
    y = torch.tensor(y_np, dtype=torch.long)
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(epochs):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    acc = float((model(x).argmax(1) == y).float().mean())
    return model, acc


def main() -> None:
    model, acc = train()
    model.eval()
    torch.save(model.state_dict(), HERE / "classifier.pt")
    warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
    torch.onnx.export(
        model, torch.zeros(1, 2), str(HERE / "classifier.onnx"), input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False,
    )
    x_np, y_np = spiral()
    np.savez(HERE / "classifier_data.npz", x=x_np, y=y_np)
    print(f"training accuracy {acc:.3f}; wrote classifier.onnx, classifier.pt, classifier_data.npz")


if __name__ == "__main__":
    main()
