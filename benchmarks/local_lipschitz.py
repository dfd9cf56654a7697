"""Local l-inf Lipschitz bounds: us (verification.local_lipschitz) vs auto_LiRPA HEAD, side by side.

Model: Shi et al.'s ``simple_mlp_3layer`` (16-16-16-10 ReLU) with PyTorch default initialisation after
``torch.manual_seed(0)``; box centre 0.5·1, eps 0.1 / 0.5 / 2.0, max over the 10 classes.  auto_LiRPA runs in
its own venv (default ``/tmp/lirpa-venv``, see docs/benchmarks_local_lipschitz.md) as a subprocess, float32,
``compute_jacobian_bounds`` on a ``JacobianOP`` + ``GradNorm(1)`` graph (its documented local-Lipschitz
example).  The subprocess also writes the weights it used, which we load, so both sides see the same numbers.
Then: our branch-and-bound at a 10 s budget, and the same weights with tanh activations, again against
auto_LiRPA (its ``BoundTanhGrad`` node relaxes tanh' linearly in the pre-activation) and the sampled lower
bound.

Usage: python benchmarks/local_lipschitz.py [--lirpa-python /tmp/lirpa-venv/bin/python] [--bab-timeout 10]
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

ANCHOR = r'''
import json, sys, time
import numpy as np
import torch
import torch.nn as nn
from auto_LiRPA import BoundedModule, BoundedTensor
from auto_LiRPA.perturbations import PerturbationLpNorm
from auto_LiRPA.jacobian import JacobianOP, GradNorm

out_path, weights_path = sys.argv[1], sys.argv[2]
eps_list = [float(e) for e in sys.argv[3].split(",")]
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 10))
lin = [m for m in model if isinstance(m, nn.Linear)]
np.savez(weights_path, **{f"W{i}": m.weight.detach().numpy() for i, m in enumerate(lin)},
         **{f"b{i}": m.bias.detach().numpy() for i, m in enumerate(lin)})

class Wrapper(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model
        self.grad_norm = GradNorm(norm=1)
    def forward(self, x, mask):
        y = self.model(x).matmul(mask)
        return self.grad_norm(JacobianOP.apply(y, x))

# the same weights with tanh activations
tanh_model = nn.Sequential(nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 10))
tanh_model.load_state_dict(model.state_dict())
x0 = torch.full((1, 16), 0.5)
mask = torch.zeros(10, 1)
mask[0, 0] = 1
res = {"version": __import__("auto_LiRPA").__version__, "torch": torch.__version__}
for key, net in (("runs", model), ("tanh_runs", tanh_model)):
    t = time.perf_counter()
    bm = BoundedModule(Wrapper(net), (BoundedTensor(x0), mask), device="cpu")
    res["build_seconds" if key == "runs" else "tanh_build_seconds"] = time.perf_counter() - t
    res[key] = []
    for eps in eps_list:
        x = BoundedTensor(x0, PerturbationLpNorm(norm=np.inf, eps=eps))
        per = []
        t = time.perf_counter()
        for i in range(10):
            mask.zero_()
            mask[i, 0] = 1
            ub = bm.compute_jacobian_bounds((x, mask), bound_lower=False)[1]
            per.append(float(ub.item()))
        res[key].append({"eps": eps, "per_class": per, "value": max(per), "seconds": time.perf_counter() - t})
with open(out_path, "w") as fh:
    json.dump(res, fh)
'''


def load_npz_net(path):
    from verification.activations import ReLU
    from verification.network import Dense, Network

    data = np.load(path)
    layers = []
    for i in range(3):
        layers.append(Dense(data[f"W{i}"], data[f"b{i}"]))
        if i < 2:
            layers.append(ReLU())
    return Network(layers)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lirpa-python", default="/tmp/lirpa-venv/bin/python")
    ap.add_argument("--bab-timeout", type=float, default=10.0)
    ap.add_argument("--eps", default="0.1,0.5,2.0")
    args = ap.parse_args()
    from verification.bounds import local_lipschitz

    eps_list = [float(e) for e in args.eps.split(",")]
    tmp = tempfile.mkdtemp(prefix="bench_loclip_")
    out_json, weights = os.path.join(tmp, "lirpa.json"), os.path.join(tmp, "weights.npz")
    anchor = None
    if os.path.exists(args.lirpa_python):
        script = os.path.join(tmp, "anchor.py")
        with open(script, "w") as fh:
            fh.write(ANCHOR)
        t = time.perf_counter()
        proc = subprocess.run([args.lirpa_python, script, out_json, weights, args.eps], capture_output=True, text=True)
        wall = time.perf_counter() - t
        if proc.returncode == 0:
            anchor = json.load(open(out_json))
            anchor["wall_seconds"] = wall
        else:
            print("auto_LiRPA run failed:\n" + proc.stderr[-2000:], file=sys.stderr)
    else:
        print(f"auto_LiRPA venv not found at {args.lirpa_python}: anchor column skipped", file=sys.stderr)
    if anchor is None:  # same weights without the anchor (torch from our own venv)
        import torch

        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16),
                                    torch.nn.ReLU(), torch.nn.Linear(16, 10))
        lin = [m for m in model if isinstance(m, torch.nn.Linear)]
        np.savez(weights, **{f"W{i}": m.weight.detach().numpy() for i, m in enumerate(lin)},
                 **{f"b{i}": m.bias.detach().numpy() for i, m in enumerate(lin)})
    net = load_npz_net(weights)
    x0 = np.full(16, 0.5)
    local_lipschitz(net, x0, 0.1, n_samples=10)  # warm-up: numba kernels load from cache / compile
    print("simple_mlp_3layer 16-16-16-10 ReLU, torch.manual_seed(0), centre 0.5*1, max over 10 classes")
    if anchor:
        print(f"auto_LiRPA {anchor['version']} (torch {anchor['torch']}), BoundedModule build {anchor['build_seconds']:.2f} s")
    print(f"{'eps':>5} | {'ours':>8} {'t_ours':>8} | {'auto_LiRPA':>10} {'t_lirpa':>8} | {'|diff|':>8} {'speedup':>8} |"
          f" {'recurjac':>8} {'ibp':>8} {'sampled':>8}")
    rows = []
    for k, eps in enumerate(eps_list):
        t = time.perf_counter()
        ours = local_lipschitz(net, x0, eps, n_samples=0)
        t_ours = time.perf_counter() - t
        rj = local_lipschitz(net, x0, eps, relaxation="recurjac", n_samples=0).value
        ib = local_lipschitz(net, x0, eps, relaxation="ibp", n_samples=0).value
        low = local_lipschitz(net, x0, eps, n_samples=2000).lower
        if anchor:
            a = anchor["runs"][k]
            diff = abs(ours.value - a["value"])
            maxdiff = float(np.max(np.abs(np.array(ours.per_output) - np.array(a["per_class"]))))
            print(f"{eps:5.2f} | {ours.value:8.4f} {t_ours:8.3f} | {a['value']:10.4f} {a['seconds']:8.3f} | "
                  f"{diff:8.1e} {a['seconds'] / t_ours:7.1f}x | {rj:8.4f} {ib:8.4f} {low:8.4f}   (max per-class |diff| {maxdiff:.1e})")
        else:
            print(f"{eps:5.2f} | {ours.value:8.4f} {t_ours:8.3f} | {'n/a':>10} {'n/a':>8} | {'':8} {'':8} | {rj:8.4f} {ib:8.4f} {low:8.4f}")
        rows.append((eps, ours.value))
    print(f"\nbranch-and-bound, {args.bab_timeout:g} s budget (split over the 10 classes):")
    for eps, base in rows:
        t = time.perf_counter()
        res = local_lipschitz(net, x0, eps, bab=True, timeout=args.bab_timeout, n_samples=2000)
        dt = time.perf_counter() - t
        doms = sum(v["domains"] for v in res.details["bab"].values())
        print(f"  eps {eps:4.2f}: {base:.4f} -> {res.value:.4f} ({100 * (1 - res.value / base):.1f}% tighter), "
              f"lower {res.lower:.4f}, converged {res.converged}, {doms} domains, {dt:.1f} s")
    # tanh MLP, same weights: ours (independent derivative ranges / tied to the input / reported minimum)
    # against auto_LiRPA's linear relaxation of the tanh gradient graph
    from verification.activations import Tanh
    from verification.network import Dense, Network

    data = np.load(weights)
    tnet = Network([Dense(data["W0"], data["b0"]), Tanh(), Dense(data["W1"], data["b1"]), Tanh(),
                    Dense(data["W2"], data["b2"])])
    local_lipschitz(tnet, x0, 0.1, n_samples=10)  # warm-up
    print("\ntanh MLP (same weights, tanh activations), max over 10 classes")
    if anchor and "tanh_runs" in anchor:
        print(f"auto_LiRPA BoundedModule build {anchor['tanh_build_seconds']:.2f} s")
    print(f"{'eps':>5} | {'ours':>8} {'t_ours':>7} | {'auto_LiRPA':>10} {'t_lirpa':>8} | {'ours/lirpa':>10} | "
          f"{'independ.':>9} {'coupled':>8} | {'recurjac':>8} {'ibp':>8} {'sampled':>8} {'ours/low':>8}")
    for k, eps in enumerate(eps_list):
        t = time.perf_counter()
        r = local_lipschitz(tnet, x0, eps, n_samples=0)
        dt = time.perf_counter() - t
        ind = float(np.max(r.details["independent_upper"]))
        cpl = float(np.max(r.details["coupled_upper"]))
        rj = local_lipschitz(tnet, x0, eps, relaxation="recurjac", n_samples=0).value
        ib = local_lipschitz(tnet, x0, eps, relaxation="ibp", n_samples=0).value
        low = local_lipschitz(tnet, x0, eps, n_samples=2000).lower
        if anchor and "tanh_runs" in anchor:
            a = anchor["tanh_runs"][k]
            worse = int(np.sum(np.array(r.per_output) > np.array(a["per_class"])))
            lirpa = f"{a['value']:10.4f} {a['seconds']:8.3f} | {r.value / a['value']:10.4f}"
            note = f"   (classes where ours > auto_LiRPA: {worse}/10)"
        else:
            lirpa, note = f"{'n/a':>10} {'n/a':>8} | {'n/a':>10}", ""
        print(f"{eps:5.2f} | {r.value:8.4f} {dt:7.3f} | {lirpa} | {ind:9.4f} {cpl:8.4f} | {rj:8.4f} {ib:8.4f} "
              f"{low:8.4f} {r.value / low:8.3f}{note}")
    from verification.lipschitz import lipschitz

    print(f"\nglobal naive l-inf bound (ReLU net): {lipschitz(net, method='naive', norm='inf').value:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
