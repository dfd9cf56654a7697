"""Generate the Gelu fixtures of tests/theorytools/test_gelu_kernel.py with neural-tangents.

Run with the interpreter of the separate neural-tangents 0.6.5 venv (see README.md), from the repository
root:

    /tmp/nt-venv/bin/python tests/data/ntk/generate_gelu_fixtures.py

Writes tests/data/ntk/gelu_fixtures.npz: dense inputs ``xd`` (5, 10) and image inputs ``x`` (NCHW,
float64, the inputs of generate_cnn_fixtures.py) and, per architecture name, ``<name>_nngp`` and
``<name>_ntk`` of ``kernel_fn(x, None)``.  The architectures are written out again, with theorytools
layers, in the test file.
"""

import json
import pathlib

import jax
import numpy as onp

jax.config.update("jax_enable_x64", True)
import neural_tangents as nt  # noqa: E402
from neural_tangents import stax  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parent / "gelu_fixtures.npz"


def dense_inputs() -> onp.ndarray:
    rng = onp.random.RandomState(7)
    x = rng.randn(5, 10) * onp.array([[0.3], [1.0], [2.5], [1.0], [1.0]])
    x[3] = x[1]  # identical pair
    x[4] = -x[2]  # opposite pair
    return x


def image_inputs() -> onp.ndarray:
    rng = onp.random.RandomState(2024)
    x = rng.randn(5, 2, 8, 8)
    x[3] = x[0]
    x[4] = -x[1]
    return x


def archs() -> dict:
    dense = stax.serial(stax.Dense(16, W_std=1.4, b_std=0.1), stax.Gelu(),
                        stax.Dense(16, W_std=1.4, b_std=0.1), stax.Gelu(), stax.Dense(1, W_std=1.4, b_std=0.1))
    dense_standard = stax.serial(
        stax.Dense(16, W_std=1.2, b_std=0.2, parameterization="standard"), stax.Gelu(),
        stax.Dense(1, W_std=1.2, b_std=0.2, parameterization="standard"))
    cnn = stax.serial(
        stax.Conv(8, (3, 3), padding="SAME", W_std=1.5, b_std=0.1), stax.Gelu(),
        stax.Conv(8, (3, 3), strides=(2, 2), padding="CIRCULAR", W_std=1.5, b_std=0.1), stax.Gelu(),
        stax.AvgPool((2, 2), strides=(1, 1), padding="VALID"), stax.Flatten(), stax.Dense(1, W_std=1.5, b_std=0.1))
    cnn_gap = stax.serial(
        stax.Conv(8, (3, 3), padding="VALID", W_std=1.3, b_std=0.05, parameterization="standard"), stax.Gelu(),
        stax.Conv(8, (3, 3), padding="SAME", W_std=1.3, b_std=0.05, parameterization="standard"), stax.Gelu(),
        stax.GlobalAvgPool(), stax.Dense(1, W_std=1.1, b_std=0.2, parameterization="standard"))
    return {"dense": dense, "dense_standard": dense_standard, "cnn": cnn, "cnn_gap": cnn_gap}


def main() -> None:
    xd, x = dense_inputs(), image_inputs()
    xs = onp.transpose(x, (0, 2, 3, 1))  # NHWC for stax
    out = {"xd": xd, "x": x}
    for name, (_, _, kernel_fn) in archs().items():
        k = kernel_fn(xd if name.startswith("dense") else xs, None, ("nngp", "ntk"))
        for field in ("nngp", "ntk"):
            out[f"{name}_{field}"] = onp.asarray(getattr(k, field))
    out["versions"] = onp.array(json.dumps({"neural_tangents": nt.__version__, "jax": jax.__version__,
                                            "numpy": onp.__version__}))
    onp.savez_compressed(OUT, **out)
    print("wrote", OUT, {k: v.shape for k, v in out.items()})


if __name__ == "__main__":
    main()
