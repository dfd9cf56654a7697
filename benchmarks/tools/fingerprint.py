"""Fingerprint of the toolkit's answers, to show that a restructuring changed no result.

Runs every Lipschitz method (both norms), IBP/CROWN/alpha-CROWN output bounds, local Lipschitz (with and
without branch and bound) and verify (input and ReLU splitting) on 72 generated nets (6 activations incl.
leaky slopes < 0, 6 seeds), plus 14 ACAS Xu instances from tests/data, and stores the rounded values.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 PYTHONPATH=<tree> python benchmarks/tools/fingerprint.py out.json
    python benchmarks/tools/fingerprint.py --diff before.json after.json

Run it from the root of the tree being fingerprinted.  Values equal to 2e-5 relative count as equal
(solver round-off); errors are recorded by class name and must match too.
"""
import json, sys, traceback
import numpy as np

def run(out):
    from verification.network import Network, Dense
    from verification import activations as A
    from verification import lipschitz, available_methods
    from verification.bounds import output_bounds, local_lipschitz
    from verification.smt import verify
    from verification.vnnlib import read_vnnlib
    acts = {"relu": lambda: A.ReLU(), "leaky": lambda: A.LeakyReLU(0.1), "leakyneg": lambda: A.LeakyReLU(-0.5),
            "tanh": lambda: A.Tanh(), "sigmoid": lambda: A.Sigmoid(), "abs": lambda: A.Abs() if hasattr(A, "Abs") else A.LeakyReLU(-1.0)}
    res = {}
    def rec(key, fn):
        try:
            v = fn()
        except Exception as e:
            v = "ERR " + type(e).__name__
        res[key] = v
    for seed in range(6):
        for an, af in acts.items():
            rng = np.random.default_rng(seed)
            dims = [3, 6, 5, 2] if seed % 2 else [4, 8, 3]
            layers = []
            for i in range(len(dims) - 1):
                layers.append(Dense(rng.standard_normal((dims[i+1], dims[i])), rng.standard_normal(dims[i+1]) * 0.3))
                if i < len(dims) - 2:
                    layers.append(af())
            net = Network(layers)
            k = f"{an}/{seed}"
            for m in ["naive", "eclipse-fast", "eclipse", "lipsdp-layer", "lipsdp-neuron", "exact", "auto"]:
                for norm in (2, "inf"):
                    rec(f"{k}/lip/{m}/{norm}", lambda: round(float(lipschitz(net, norm=norm, method=m).value), 5))
            lo = -np.ones(dims[0]) * 0.5; hi = np.ones(dims[0]) * 0.5
            for m in ["ibp", "crown", "alpha-crown"]:
                def ob():
                    b = output_bounds(net, lo, hi, method=m)
                    return [round(float(x), 6) for x in np.concatenate([b.lower, b.upper])]
                rec(f"{k}/ob/{m}", ob)
            rec(f"{k}/local", lambda: round(float(local_lipschitz(net, np.zeros(dims[0]), 0.3).value), 6))
            if an in ("relu", "leaky", "leakyneg", "abs", "tanh"):
                from verification.vnnlib import box_property
                for thr in (-1.0, 0.0, 1.0, 3.0):
                    for meth in ("input-split", "relu-split"):
                        def vf():
                            r = verify(net, box_property(lo, hi, np.eye(dims[-1])[:1], np.array([thr])), timeout=30, method=meth)
                            return r.status
                        rec(f"{k}/verify/{thr}/{meth}", vf)
                rec(f"{k}/local/bab", lambda: round(float(local_lipschitz(net, np.zeros(dims[0]), 0.3, bab=True, timeout=5).value), 6))
    import glob, os
    d = "tests/data/acasxu"
    from verification.io import load_network
    for net_f, props in [("1_1", [1, 2, 3, 4]), ("1_9", [1, 3, 4, 7]), ("2_3", [2, 3, 4]), ("5_3", [1, 3, 4])]:
        f = glob.glob(f"{d}/onnx/*{net_f}*")[0]
        net = load_network(f)
        for p in props:
            pf = glob.glob(f"{d}/vnnlib/prop_{p}.vnnlib")
            if not pf: continue
            def vv():
                r = verify(net, pf[0], timeout=60)
                return r.status
            rec(f"acas/{net_f}/{p}", vv)
    json.dump(res, open(out, "w"), indent=0, sort_keys=True)
    print(len(res), "entries;", sum(str(v).startswith("ERR") for v in res.values()), "errors")

def diff(a, b):
    A_, B_ = json.load(open(a)), json.load(open(b))
    n = 0
    for k in sorted(set(A_) | set(B_)):
        va, vb = A_.get(k), B_.get(k)
        if va != vb:
            if isinstance(va, float) and isinstance(vb, float) and abs(va - vb) <= 2e-5 * max(1, abs(va)):
                continue
            if isinstance(va, list) and isinstance(vb, list) and len(va) == len(vb) and np.allclose(va, vb, rtol=2e-5, atol=2e-6):
                continue
            n += 1; print(k, va, "->", vb)
    print(n, "differences of", len(A_))

if __name__ == "__main__":
    if sys.argv[1] == "--diff": diff(sys.argv[2], sys.argv[3])
    else: run(sys.argv[1])
