"""Generate the CNN-GP / CNTK fixtures of tests/theorytools/test_cntk.py with neural-tangents.

Run with the interpreter of a separate venv holding neural-tangents 0.6.5 (see README.md), from the
repository root:

    /tmp/nt-venv/bin/python tests/data/ntk/generate_cnn_fixtures.py

Writes tests/data/ntk/cnn_fixtures.npz: the inputs ``x`` (NCHW, float64) and, per architecture name,
``<name>_nngp`` and ``<name>_ntk`` of ``kernel_fn(x, None)`` (full spatial kernels transposed from
neural-tangents' (n1, n2, H, H, W, W) to (n1, n2, H, W, H, W)).  The architectures are written out
again, with theorytools layers, in the test file.
"""

import json
import pathlib

import jax
import numpy as onp

jax.config.update("jax_enable_x64", True)
import neural_tangents as nt  # noqa: E402
from neural_tangents import stax  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parent / "cnn_fixtures.npz"


def inputs() -> onp.ndarray:
    rng = onp.random.RandomState(2024)
    x = rng.randn(5, 2, 8, 8)
    x[3] = x[0]  # an identical pair (θ = 0 at every same position)
    x[4] = -x[1]  # an opposite pair (θ = π)
    return x


def archs() -> dict:
    w, b = 1.5, 0.1
    relu_flatten = stax.serial(
        stax.Conv(8, (3, 3), padding="SAME", W_std=w, b_std=b), stax.Relu(),
        stax.Conv(8, (3, 3), padding="SAME", W_std=w, b_std=b), stax.Relu(),
        stax.Flatten(), stax.Dense(1, W_std=w, b_std=b))
    erf_pool_gap = stax.serial(
        stax.Conv(8, (3, 3), strides=(2, 2), padding="SAME", W_std=1.3, b_std=0.2), stax.Erf(),
        stax.Conv(8, (3, 2), padding="VALID", W_std=1.3, b_std=0.2), stax.ABRelu(-0.3, 1.2),
        stax.AvgPool((2, 2), strides=(1, 1), padding="VALID"),
        stax.Dense(8, W_std=1.1, b_std=0.0), stax.Erf(a=1.5, b=0.7, c=0.1),
        stax.GlobalAvgPool(), stax.Dense(1, W_std=1.2, b_std=0.05))
    block = stax.serial(stax.Relu(),
                        stax.Conv(16, (3, 3), padding="CIRCULAR", W_std=1.2, b_std=0.1, parameterization="standard"),
                        stax.Relu(),
                        stax.Conv(16, (3, 3), padding="CIRCULAR", W_std=1.2, b_std=0.1, parameterization="standard"))
    residual_standard = stax.serial(
        stax.Conv(16, (3, 3), padding="CIRCULAR", W_std=1.2, b_std=0.1, parameterization="standard"),
        stax.FanOut(2), stax.parallel(block, stax.Identity()), stax.FanInSum(), stax.Relu(),
        stax.AvgPool((2, 2), strides=(2, 2), padding="SAME"),
        stax.Flatten(), stax.Dense(1, W_std=1.2, b_std=0.1, parameterization="standard"))
    spatial = stax.serial(
        stax.Conv(8, (3, 3), padding="CIRCULAR", W_std=1.4, b_std=0.1), stax.Relu(),
        stax.Conv(8, (3, 3), strides=(2, 2), padding="CIRCULAR", W_std=1.4, b_std=0.1))
    edges = stax.serial(
        stax.Conv(8, (3, 3), padding="VALID", W_std=1.3, b_std=0.05, parameterization="standard"),
        stax.LeakyRelu(0.1),
        stax.Conv(8, (3, 3), strides=(2, 2), padding="CIRCULAR", W_std=1.3, b_std=0.05, parameterization="standard"),
        stax.Erf(), stax.AvgPool((2, 2), strides=(2, 2), padding="SAME", normalize_edges=True),
        stax.GlobalAvgPool(), stax.Dense(1, W_std=1.1, b_std=0.2, parameterization="standard"))
    layer_norm = stax.serial(
        stax.Conv(8, (3, 3), padding="SAME", W_std=1.4, b_std=0.3), stax.LayerNorm(axis=-1), stax.Relu(),
        stax.Conv(8, (3, 3), padding="SAME", W_std=1.4, b_std=0.3), stax.LayerNorm(axis=(1, 2, 3)), stax.Erf(),
        stax.Flatten(), stax.Dense(1, W_std=1.2, b_std=0.1))
    return {"layer_norm": layer_norm, "relu_flatten": relu_flatten, "erf_pool_gap": erf_pool_gap,
            "residual_standard": residual_standard, "spatial": spatial, "edges": edges}


def main() -> None:
    x = inputs()
    xs = onp.transpose(x, (0, 2, 3, 1))  # NHWC for stax
    out = {"x": x}
    for name, (_, _, kernel_fn) in archs().items():
        k = kernel_fn(xs, None, ("nngp", "ntk"))
        for field in ("nngp", "ntk"):
            v = onp.asarray(getattr(k, field))
            if v.ndim == 6:
                v = v.transpose(0, 1, 2, 4, 3, 5)
            out[f"{name}_{field}"] = v
    out["versions"] = onp.array(json.dumps({"neural_tangents": nt.__version__, "jax": jax.__version__,
                                            "numpy": onp.__version__}))
    onp.savez_compressed(OUT, **out)
    print("wrote", OUT, {k: v.shape for k, v in out.items()})


if __name__ == "__main__":
    main()
