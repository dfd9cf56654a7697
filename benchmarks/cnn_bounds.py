"""CNN / ResNet output bounds: us (verification.bounds.output_bounds) vs auto_LiRPA, side by side (issue 20).

Four models with PyTorch default initialisation (plus random BatchNorm statistics) after ``torch.manual_seed``:
(a) ``mnist_cnn`` conv-relu-conv-relu-linear on 1x28x28, (b) ``maxpool_cnn`` with two MaxPool2d,
(c) ``resnet`` (stem conv + MaxPool, one identity ReLU block, one block with a 1x1-conv+BN downsample shortcut),
(d) ``cnn_8x8`` on 1x8x8.  The models are built once here, exported with ``torch.onnx.export(..., dynamo=False)``
(our side loads the ONNX through ``verification.load_network``) and their ``state_dict`` saved (the anchor loads
it), so both sides use identical float32 weights.  Boxes: l-inf balls of radius ``--eps`` around seeded uniform
centres in [0, 1], no clipping.  auto_LiRPA runs in its own venv (default ``/tmp/lirpa-venv``, see
docs/benchmarks_local_lipschitz.md) as one subprocess per model, interleaved with our run of the same model,
one thread on both sides; ``os.getloadavg()`` is recorded before each.  Both sides' bounds are asserted to
contain the outputs of sampled inputs (box corners and uniform points) evaluated in float64 torch.

Usage: python benchmarks/cnn_bounds.py [--quick] [--lirpa-python /tmp/lirpa-venv/bin/python] [--eps 0.01]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

MODELS = r'''
import torch
import torch.nn as nn


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.b2 = nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.b2(self.c2(torch.relu(self.b1(self.c1(x)))))
        return torch.relu(y + (x if self.short is None else self.short(x)))


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, 2, 1), nn.ReLU(), nn.MaxPool2d(2))
        self.block1 = Block(8, 8, 1)
        self.block2 = Block(8, 16, 2)
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.block2(self.block1(self.stem(x))), 1))


def build(name):
    torch.manual_seed({"mnist_cnn": 0, "maxpool_cnn": 1, "resnet": 2, "cnn_8x8": 3}[name])
    if name == "mnist_cnn":
        m = nn.Sequential(nn.Conv2d(1, 8, 4, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 4, 2, 1), nn.ReLU(),
                          nn.Flatten(), nn.Linear(16 * 7 * 7, 10))
        shape = (1, 28, 28)
    elif name == "maxpool_cnn":
        m = nn.Sequential(nn.Conv2d(1, 8, 4, 2, 1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, 1, 1),
                          nn.ReLU(), nn.Flatten(), nn.Linear(16 * 7 * 7, 10))
        shape = (1, 28, 28)
    elif name == "resnet":
        m = ResNet()
        shape = (1, 28, 28)
    else:
        m = nn.Sequential(nn.Conv2d(1, 4, 3, 1, 1), nn.ReLU(), nn.Conv2d(4, 8, 3, 2, 1), nn.ReLU(),
                          nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
        shape = (1, 8, 8)
    for mod in m.modules():  # non-trivial evaluation-mode BatchNorm
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.2, 0.2)
    return m.eval(), shape
'''

ANCHOR = r'''
import json, sys, time, os
import numpy as np
import torch
torch.set_num_threads(1)
from auto_LiRPA import BoundedModule, BoundedTensor
from auto_LiRPA.perturbations import PerturbationLpNorm
exec(open(sys.argv[1]).read())
name, state, boxes, out = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
model, shape = build(name)
model.load_state_dict(torch.load(state))
model.eval()
data = np.load(boxes)
centres, eps = data["centres"].astype(np.float32), float(data["eps"])
x0 = torch.tensor(centres[:1])
t = time.perf_counter()
# auto_LiRPA's MaxPool backward bound needs the matrix convolution mode ("Please use --conv_mode matrix")
mode = "matrix" if any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules()) else "patches"
bm = BoundedModule(model, x0, device="cpu", bound_opts={"conv_mode": mode})
build_s = time.perf_counter() - t
import auto_LiRPA
res = {"version": auto_LiRPA.__version__, "torch": torch.__version__, "build_seconds": build_s, "conv_mode": mode,
       "runs": []}
for k in range(len(centres)):
    x = BoundedTensor(torch.tensor(centres[k:k + 1]), PerturbationLpNorm(norm=np.inf, eps=eps))
    if k == 0:
        bm.compute_bounds(x=(x,), method="IBP")  # warm-up (first-call overheads)
        bm.compute_bounds(x=(x,), method="CROWN")
    run = {}
    for meth in ("IBP", "CROWN", "CROWN-Optimized"):
        t = time.perf_counter()
        lb, ub = bm.compute_bounds(x=(x,), method=meth)
        run[meth] = {"lower": lb[0].tolist(), "upper": ub[0].tolist(), "seconds": time.perf_counter() - t}
    res["runs"].append(run)
json.dump(res, open(out, "w"))
'''

METHODS = [("ibp", "IBP"), ("crown", "CROWN"), ("alpha-crown", "CROWN-Optimized")]
NAMES = ["mnist_cnn", "maxpool_cnn", "resnet", "cnn_8x8"]


def sample_outputs(model, centre: np.ndarray, eps: float, n: int, rng) -> np.ndarray:
    """Outputs (float64 torch) at ``n`` box points: half random corners, half uniform."""
    import torch

    k = n // 2
    pts = np.concatenate([centre + eps * rng.choice([-1.0, 1.0], size=(k,) + centre.shape),
                          centre + eps * rng.uniform(-1, 1, size=(n - k,) + centre.shape)])
    m64 = model.double()
    with torch.no_grad():
        y = m64(torch.tensor(pts)).numpy()
    model.float()
    return y


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lirpa-python", default="/tmp/lirpa-venv/bin/python")
    ap.add_argument("--eps", type=float, default=0.01)
    ap.add_argument("--boxes", type=int, default=2, help="centres per model")
    ap.add_argument("--samples", type=int, default=3000)
    ap.add_argument("--quick", action="store_true", help="one box per model, 1000 samples")
    ap.add_argument("--models", default=",".join(NAMES))
    ap.add_argument("--json", default=None, help="write all numbers here")
    args = ap.parse_args()
    if args.quick:
        args.boxes, args.samples = 1, 1000
    import torch

    torch.set_num_threads(1)
    from verification import load_network
    from verification.bounds import output_bounds

    ns: dict = {}
    exec(MODELS, ns)
    tmp = tempfile.mkdtemp(prefix="bench_cnn_")
    models_py = os.path.join(tmp, "models.py")
    with open(models_py, "w") as fh:
        fh.write(MODELS)
    anchor_py = os.path.join(tmp, "anchor.py")
    with open(anchor_py, "w") as fh:
        fh.write(ANCHOR)
    have_anchor = os.path.exists(args.lirpa_python)
    if not have_anchor:
        print(f"auto_LiRPA venv not found at {args.lirpa_python}: anchor column skipped", file=sys.stderr)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    rng = np.random.default_rng(0)
    results = []
    version = None
    for name in args.models.split(","):
        model, shape = ns["build"](name)
        onnx_path, state_path = os.path.join(tmp, f"{name}.onnx"), os.path.join(tmp, f"{name}.pt")
        torch.save(model.state_dict(), state_path)
        torch.onnx.export(model, torch.zeros((1,) + shape), onnx_path, dynamo=False,
                          input_names=["x"], output_names=["y"])
        centres = rng.uniform(0, 1, size=(args.boxes,) + shape).astype(np.float32)
        boxes_path = os.path.join(tmp, f"{name}_boxes.npz")
        np.savez(boxes_path, centres=centres, eps=args.eps)
        anchor = None
        load_anchor = os.getloadavg()[0]
        if have_anchor:
            out = os.path.join(tmp, f"{name}_lirpa.json")
            proc = subprocess.run([args.lirpa_python, anchor_py, models_py, name, state_path, boxes_path, out],
                                  capture_output=True, text=True, env=env)
            if proc.returncode == 0:
                anchor = json.load(open(out))
                version = (anchor["version"], anchor["torch"])
            else:
                print(f"auto_LiRPA failed on {name}:\n" + proc.stderr[-3000:], file=sys.stderr)
        load_ours = os.getloadavg()[0]
        t = time.perf_counter()
        net = load_network(onnx_path)
        t_load = time.perf_counter() - t
        c0 = centres[0].astype(np.float64).ravel()
        output_bounds(net, c0 - args.eps, c0 + args.eps, method="crown")  # warm-up (numba cache)
        for k in range(args.boxes):
            centre = centres[k].astype(np.float64)
            lo, hi = (centre - args.eps).ravel(), (centre + args.eps).ravel()
            ys = sample_outputs(model, centre, args.eps, args.samples, rng)
            for ours_m, their_m in METHODS:
                t = time.perf_counter()
                b = output_bounds(net, lo, hi, method=ours_m)
                t_ours = time.perf_counter() - t
                assert np.all(ys >= b.lower - 1e-9) and np.all(ys <= b.upper + 1e-9), (name, k, ours_m, "ours unsound")
                row = {"model": name, "box": k, "method": ours_m, "ours_width": float(np.mean(b.upper - b.lower)),
                       "ours_s": t_ours, "load_ours": load_ours, "load_anchor": load_anchor, "onnx_load_s": t_load,
                       "sampled_width": float(np.mean(ys.max(0) - ys.min(0)))}
                if anchor is not None:
                    a = anchor["runs"][k][their_m]
                    al, au = np.array(a["lower"]), np.array(a["upper"])
                    tol = 1e-5 * (1 + np.abs(ys).max())  # float32 anchor
                    assert np.all(ys >= al - tol) and np.all(ys <= au + tol), (name, k, their_m, "anchor unsound")
                    row.update(their_width=float(np.mean(au - al)), d_lower=float(np.max(b.lower - al)),
                               d_upper=float(np.max(au - b.upper)),
                               d_lower_min=float(np.min(b.lower - al)), d_upper_min=float(np.min(au - b.upper)), their_s=a["seconds"],
                               lirpa_build_s=anchor["build_seconds"], conv_mode=anchor["conv_mode"])
                results.append(row)
    if version:
        print(f"auto_LiRPA {version[0]} (torch {version[1]}); eps {args.eps}, {args.samples} samples per box")
    print(f"{'model':<12} {'box':>3} {'method':<11} | {'w ours':>9} {'w lirpa':>9} {'w sampled':>9} | "
          f"{'ourL-thL max/min':>19} {'thU-ourU max/min':>19} | {'t ours':>8} {'t lirpa':>8} {'ratio':>7} | load")
    for r in results:
        if "their_width" in r:
            print(f"{r['model']:<12} {r['box']:>3} {r['method']:<11} | {r['ours_width']:9.4f} {r['their_width']:9.4f} "
                  f"{r['sampled_width']:9.4f} | {r['d_lower']:9.2e}/{r['d_lower_min']:9.2e} {r['d_upper']:9.2e}/{r['d_upper_min']:9.2e} | {r['ours_s']:8.3f} "
                  f"{r['their_s']:8.3f} {r['their_s'] / r['ours_s']:6.2f}x | {r['load_anchor']:.1f}/{r['load_ours']:.1f}")
        else:
            print(f"{r['model']:<12} {r['box']:>3} {r['method']:<11} | {r['ours_width']:9.4f} {'n/a':>9} "
                  f"{r['sampled_width']:9.4f} | {'':19} {'':19} | {r['ours_s']:8.3f} {'n/a':>8} {'':>7} | {r['load_ours']:.1f}")
    print("ourL-thL, thU-ourU: max/min over the outputs (positive = we are tighter); ratio = t_lirpa / t_ours (>1: we are faster); load = 1-min load average before anchor/ours; "
          "all sampled outputs inside both sides' bounds")
    if args.json:
        json.dump({"version": version, "eps": args.eps, "rows": results}, open(args.json, "w"), indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
