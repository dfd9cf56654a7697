"""Part 4: consistency on ill-conditioned inputs.

* ``verify`` on huge boxes (±1e6) and huge weights (1e4): unknown is acceptable, wrong is not;
* ``lipschitz --method auto`` on ill-conditioned valid networks (a 2-3-1 tanh net with weights ~1e4, 1e-8
  weights, ...): must print a certified bound (>= our sampled lower bound) and exit 0, never exit 2;
* ``lipschitz --method sampled`` is a lower bound: never above our independent exact / upper value."""

from __future__ import annotations

import os

import numpy as np

import formats
import part_soundness as S
from nets import Net, random_net

PART = "p4-consistency"


def _write(ctx, net: Net, name: str, fmt: str = "npz", rng=None):
    d = os.path.join(ctx.work, "p4", name)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, f"net{S.EXT[fmt]}")
    rng = rng or np.random.default_rng(0)
    if fmt == "onnx":
        stored, extra = formats.write_onnx(net, path, rng, None, dtype=np.float64)
    else:
        stored, extra = formats.write(net, fmt, path, rng, None)
    return {"path": path, "fmt": fmt, "net": stored, "extra": extra, "domain": None}


def ill_conditioned(seed: int) -> list[tuple[str, Net]]:
    r = np.random.default_rng([seed, 4])
    out = []
    # the 2-3-1 tanh net with weights ~1e4
    out.append(("tanh 2-3-1 weights 1e4", Net([r.normal(size=(3, 2)) * 1e4, r.normal(size=(1, 3)) * 1e4],
                                             [r.normal(size=3) * 1e4, r.normal(size=1)], [("tanh",)])))
    out.append(("tanh 2-3-1 weights 1e-8", Net([r.normal(size=(3, 2)) * 1e-8, r.normal(size=(1, 3)) * 1e-8],
                                              [r.normal(size=3) * 1e-8, r.normal(size=1)], [("tanh",)])))
    out.append(("sigmoid 2-3-1 weights 1e4", Net([r.normal(size=(3, 2)) * 1e4, r.normal(size=(1, 3)) * 1e4],
                                                [np.zeros(3), np.zeros(1)], [("sigmoid",)])))
    out.append(("relu 2-3-3-1 mixed 1e4/1e-8", Net([r.normal(size=(3, 2)) * 1e4, r.normal(size=(3, 3)) * 1e-8,
                                                   r.normal(size=(1, 3)) * 1e4], [np.zeros(3)] * 2 + [np.zeros(1)],
                                                  [("relu",), ("relu",)])))
    out.append(("leaky(-2) 3-4-2 weights 1e4", Net([r.normal(size=(4, 3)) * 1e4, r.normal(size=(2, 4)) * 1e4],
                                                  [np.zeros(4), np.zeros(2)], [("leaky", -2.0)])))
    out.append(("maxmin 2-4-1 weights 1e-8", Net([r.normal(size=(4, 2)) * 1e-8, r.normal(size=(1, 4)) * 1e-8],
                                                [np.zeros(4), np.zeros(1)], [("groupsort", 2)])))
    w = r.normal(size=(3, 2))
    out.append(("tanh rank-1 first layer", Net([np.vstack([w[0], 2 * w[0], -w[0]]), r.normal(size=(1, 3))],
                                              [np.zeros(3), np.zeros(1)], [("tanh",)])))
    out.append(("relu nearly singular 1e-12 row", Net([np.array([[1.0, 1.0], [1.0, 1.0 + 1e-12], [1e-12, 0.0]]),
                                                      r.normal(size=(2, 3))], [np.zeros(3), np.zeros(2)], [("relu",)])))
    out.append(("identity 2-3-1 (affine)", Net([r.normal(size=(3, 2)), r.normal(size=(1, 3))],
                                              [np.zeros(3), np.zeros(1)], [("identity",)])))
    out.append(("tanh 1-2-1 weights 1e4", Net([r.normal(size=(2, 1)) * 1e4, r.normal(size=(1, 2)) * 1e4],
                                             [np.zeros(2), np.zeros(1)], [("tanh",)])))
    out.append(("zero weights", Net([np.zeros((3, 2)), np.zeros((1, 3))], [np.zeros(3), np.zeros(1)], [("relu",)])))
    out.append(("deep tanh 3 layers 1e2", Net([r.normal(size=(4, 2)) * 1e2, r.normal(size=(4, 4)) * 1e2,
                                              r.normal(size=(4, 4)) * 1e2, r.normal(size=(2, 4)) * 1e2],
                                             [np.zeros(4)] * 3 + [np.zeros(2)], [("tanh",)] * 3)))
    return out


def run(ctx) -> None:
    import verification

    methods = sorted(verification.available_methods())
    prof = ctx.profile
    ill = ill_conditioned(ctx.seed)
    # interleave the three checks so that a time budget still covers each of them
    jobs = []
    for k in range(max(len(ill), prof["p4_sampled"], prof["p4_verify"])):
        if k < len(ill):
            jobs.append(("auto", k))
        if k < prof["p4_verify"]:
            jobs.append(("verify", k))
        if k < prof["p4_sampled"]:
            jobs.append(("sampled", k))
    jobs = [("targeted", 0), ("targeted", 1)] + jobs
    for n_done, (what, k) in enumerate(jobs):
        if ctx.out_of_time(PART):
            ctx.camp.skipped[PART] += len(jobs) - n_done
            break
        if what == "targeted" and k == 0:
            # every registered method on a benign affine net and on a V-shaped leaky net: a solver that
            # fails must not turn a valid network into "bad input" (exit 2)
            r = np.random.default_rng([ctx.seed, 44])
            for j, (name, net) in enumerate([
                ("affine 6-4-8-4 (identity activations)",
                 Net([r.normal(size=(4, 6)), r.normal(size=(8, 4)), r.normal(size=(4, 8))],
                     [np.zeros(4), np.zeros(8), np.zeros(4)], [("identity",), ("identity",)])),
                ("leaky(-2) 2-5-8-2 weights 1e2",
                 Net([r.normal(size=(5, 2)) * 100, r.normal(size=(8, 5)) * 100, r.normal(size=(2, 8)) * 100],
                     [np.zeros(5), np.zeros(8), np.zeros(2)], [("leaky", -2.0), ("leaky", -2.0)]))]):
                model = _write(ctx, net, f"targeted_sdp_{j}", "npz")
                ctx.camp.tally("p4 targeted", name)
                for norm in (2, "inf"):
                    for out in (None, "1"):
                        S.check_lipschitz(ctx, model, np.random.default_rng(j), methods, True, norms=[norm],
                                          outputs=out, part=PART, only=methods + ["auto"])
            continue
        if what == "targeted" and k == 1:
            # a constant written as the exact decimal expansion of a float64 (hundreds of digits) is valid
            import props as P

            net = Net([np.array([[0.75], [-1.25]]), np.array([[1.0, 0.5]])], [np.array([0.25, 0.5]), np.zeros(1)],
                      [("relu",)])
            model = _write(ctx, net, "targeted_long_decimal", "npz")
            t = 2.0 ** -40 / 3.0  # exact decimal expansion: ~ 90 significant digits
            texts = [format(__import__("decimal").Decimal(v), "f") for v in (t, 0.1 + 2 ** -1074 * 0, 1e-300)]
            props = []
            for txt in texts:
                props.append(P.Prop(1, 1, P.box_atoms(["-1.0"], ["1.0"]) + [P.cmp("<=", P.Y(0), P.N(txt))],
                                    kind="long-decimal"))
            ctx.camp.tally("p4 targeted", f"long decimal constants ({', '.join(str(len(x)) for x in texts)} chars)")
            S.check_verify(ctx, model, np.random.default_rng(0), 0, part=PART, method="auto", props=props)
            continue
        if what == "auto":
            # lipschitz --method auto on ill-conditioned valid networks: certified, exit 0
            name, net = ill[k]
            fmt = ["npz", "onnx", "statedict", "torchscript"][k % 4]
            if not formats.can_write(net, fmt):
                fmt = "npz"
            model = _write(ctx, net, f"auto_{k}", fmt)
            rng = np.random.default_rng([ctx.seed, 41, k])
            ctx.camp.tally("p4 ill-conditioned nets", name)
            for norm in (2, "inf"):
                S.check_lipschitz(ctx, model, rng, methods, False, norms=[norm], outputs=None, part=PART,
                                  only=["auto", "sampled"], require_cert=("auto",))
        elif what == "sampled":
            # sampled <= exact (1-D) / independent upper, on random nets
            rng = np.random.default_rng([ctx.seed, 42, k])
            net = random_net(rng, n_in=1 if k % 2 == 0 else int(rng.integers(2, 4)), n_hidden=1 + k % 2,
                             kinds=["relu", "leaky", "maxmin", "identity", "groupsort3"])
            model = _write(ctx, net, f"sampled_{k}")
            S.check_lipschitz(ctx, model, rng, methods, False, part=PART, only=["sampled", "exact"])
        else:
            # verify on huge boxes / huge weights: unknown is fine, wrong is not
            rng = np.random.default_rng([ctx.seed, 43, k])
            act = [("relu",), ("leaky", -0.5), ("groupsort", 2), ("relu",)][k % 4]
            net = random_net(rng, n_in=int(rng.integers(1, 4)), n_hidden=int(rng.integers(1, 3)), act=act,
                             mixed=False, scale=1e4)
            fmt = "onnx" if (k % 2 and act[0] != "groupsort") else "npz"
            model = _write(ctx, net, f"huge_{k}", fmt, rng)
            S.check_verify(ctx, model, rng, 2, part=PART, huge=True)
