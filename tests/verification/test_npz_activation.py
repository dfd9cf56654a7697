""".npz files in the common exchange layout ``W0, b0, ..., activation``: the activation key is read by name."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from verification import load_network, save_network
from verification.activations import LeakyReLU, ReLU, Sigmoid, Tanh
from verification.errors import InvalidParameterError, ModelFormatError, ShapeMismatchError, UnsupportedLayerError


def _weights(rng, widths=(3, 8, 6, 2)):
    arrays = {}
    for k, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        arrays[f"W{k}"] = rng.standard_normal((n_out, n_in))
        arrays[f"b{k}"] = rng.standard_normal(n_out)
    return arrays


def _numpy_net(arrays, acts, x):
    n = sum(1 for k in arrays if k.startswith("W"))
    h = x
    for k in range(n):
        h = h @ arrays[f"W{k}"].T + arrays[f"b{k}"]
        if k < n - 1:
            h = acts[k](h)
    return h


def test_tanh_string_applies_to_every_hidden_layer(tmp_path, rng):
    arrays = _weights(rng)
    np.savez(tmp_path / "tanh.npz", **arrays, activation="tanh")
    net = load_network(tmp_path / "tanh.npz")
    assert all(isinstance(a, Tanh) for a in net.activations) and len(net.activations) == 2
    assert "assumed" not in net.metadata
    x = rng.uniform(-2, 2, size=(200, 3))
    np.testing.assert_allclose(net(x), _numpy_net(arrays, [np.tanh, np.tanh], x), rtol=0, atol=1e-12)


def test_array_gives_one_activation_per_hidden_layer(tmp_path, rng):
    arrays = _weights(rng)
    np.savez(tmp_path / "mixed.npz", **arrays, activation=np.array(["Sigmoid", "leaky_relu(0.2)"]))
    net = load_network(tmp_path / "mixed.npz")
    assert isinstance(net.activations[0], Sigmoid)
    assert isinstance(net.activations[1], LeakyReLU) and net.activations[1].negative_slope == 0.2
    x = rng.uniform(-2, 2, size=(100, 3))
    sig = lambda h: 1 / (1 + np.exp(-h))  # noqa: E731
    leaky = lambda h: np.where(h > 0, h, 0.2 * h)  # noqa: E731
    np.testing.assert_allclose(net(x), _numpy_net(arrays, [sig, leaky], x), rtol=0, atol=1e-12)


def test_bytes_array_is_read_as_ascii(tmp_path, rng):
    arrays = _weights(rng)
    np.savez(tmp_path / "b.npz", **arrays, activation=np.array([b"relu", b"tanh"]))
    net = load_network(tmp_path / "b.npz")
    assert isinstance(net.activations[0], ReLU) and isinstance(net.activations[1], Tanh)


def test_wrong_length_unknown_name_and_conflicts_are_one_line_errors(tmp_path, rng):
    arrays = _weights(rng)
    cases = {
        "short.npz": (dict(activation=np.array(["tanh"])), ShapeMismatchError, "1 names for 2 hidden layers"),
        "long.npz": (dict(activation=np.array(["tanh"] * 3)), ShapeMismatchError, "3 names for 2 hidden layers"),
        "unknown.npz": (dict(activation="swish2"), UnsupportedLayerError, "swish2"),
        "number.npz": (dict(activation=np.array([1.0, 2.0])), ModelFormatError, "string"),
        "both.npz": (
            dict(activation="tanh", activations=np.array(json.dumps([{"type": "tanh"}] * 2))),
            ModelFormatError,
            "both",
        ),
    }
    for name, (extra, err, text) in cases.items():
        np.savez(tmp_path / name, **arrays, **extra)
        with pytest.raises(err, match=text) as info:
            load_network(tmp_path / name)
        assert "\n" not in str(info.value) and name in str(info.value)
    np.savez(tmp_path / "arch.npz", **arrays, activation="tanh")
    with pytest.raises(InvalidParameterError, match="do not pass --arch"):
        load_network(tmp_path / "arch.npz", arch="relu")


def test_existing_activations_key_and_arch_still_work(tmp_path, rng):
    arrays = _weights(rng)
    np.savez(tmp_path / "plain.npz", **arrays)
    plain = load_network(tmp_path / "plain.npz")
    assert all(isinstance(a, ReLU) for a in plain.activations) and "assumed" in plain.metadata
    as_tanh = load_network(tmp_path / "plain.npz", arch="tanh")
    assert all(isinstance(a, Tanh) for a in as_tanh.activations) and "assumed" not in as_tanh.metadata
    save_network(as_tanh, tmp_path / "saved.npz")  # writes the `activations` JSON key
    back = load_network(tmp_path / "saved.npz")
    x = rng.uniform(-1, 1, size=(50, 3))
    np.testing.assert_array_equal(back(x), as_tanh(x))


def test_cli_reports_the_stored_activation(tmp_path, rng):
    np.savez(tmp_path / "tanh.npz", **_weights(rng), activation="tanh")
    out = subprocess.run(
        [sys.executable, "-m", "verification", "info", str(tmp_path / "tanh.npz")], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "tanh" in out.stdout.lower() and "relu" not in out.stdout.lower()
    bad = subprocess.run(
        [sys.executable, "-m", "verification", "info", str(tmp_path / "tanh.npz"), "--arch", "relu"],
        capture_output=True, text=True, timeout=120,
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
