"""Empirical NTK of torch models (theorytools.ntk.empirical_ntk) against the analytic limit."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from theorytools import ntk  # noqa: E402
from theorytools.errors import TheoryError  # noqa: E402

X4 = np.array([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.0, 1.0, 1.0], [-1.0, 0.5, 2.0]])


def test_empirical_converges_to_analytic_at_rate_width_to_minus_half():
    # One hidden ReLU layer (W_std 1.5, b_std 0.05, NTK param) keeps width 4096 cheap.  Reference §B.4
    # (two hidden layers, 5 seeds) saw 0.31 → 0.11 → 0.033 over the same widths.
    analytic = ntk.serial(ntk.Dense(W_std=1.5, b_std=0.05), ntk.Relu(), ntk.Dense(W_std=1.5, b_std=0.05))(X4).ntk
    widths = [64, 512, 4096]
    errs = []
    for w in widths:
        e = []
        for seed in range(6):
            m = ntk.torch_mlp(3, [w], 1, W_std=1.5, b_std=0.05, seed=seed)
            emp = ntk.empirical_ntk(m, X4)
            e.append(np.linalg.norm(emp - analytic) / np.linalg.norm(analytic))
        errs.append(float(np.mean(e)))
    assert errs[0] > errs[1] > errs[2]
    slope = np.polyfit(np.log(widths), np.log(errs), 1)[0]
    assert -0.8 < slope < -0.3, (errs, slope)  # O(width^{-1/2})
    assert errs[2] < 0.06


def test_jacobian_and_ntk_vector_product_agree_and_output_modes():
    m = ntk.torch_mlp(3, [32, 16], 3, activation="erf", W_std=1.3, b_std=0.1, seed=1)
    full = ntk.empirical_ntk(m, X4, X4[:2], outputs="full")
    full_vp = ntk.empirical_ntk(m, X4, X4[:2], outputs="full", implementation="ntk_vp")
    assert full.shape == (4, 2, 3, 3)
    np.testing.assert_allclose(full, full_vp, rtol=1e-12, atol=1e-12)
    tr = ntk.empirical_ntk(m, X4, X4[:2], outputs="trace", batch_size=3)
    np.testing.assert_allclose(tr, np.trace(full, axis1=2, axis2=3), rtol=1e-12)
    mean = ntk.empirical_ntk(m, X4, X4[:2], outputs="mean", implementation="ntk_vp", batch_size=1)
    np.testing.assert_allclose(mean, tr / 3, rtol=1e-12)
    # brute force: Θ̂[i, j, a, b] = ⟨∇_p f_a(x_i), ∇_p f_b(x_j)⟩ by autograd
    x = torch.as_tensor(X4, dtype=torch.float64)
    params = [p for p in m.parameters()]

    def grad(i: int, a: int) -> torch.Tensor:
        out = m(x[i : i + 1])[0, a]
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(out, params)])

    assert full[3, 1, 2, 0] == pytest.approx(float(grad(3, 2) @ grad(1, 0)), rel=1e-12)
    # symmetric: x2 = None equals x2 = x1
    np.testing.assert_allclose(ntk.empirical_ntk(m, X4), ntk.empirical_ntk(m, X4, X4), rtol=1e-13)


def test_standard_parameterisation_mlp_matches_analytic_scale():
    # Standard param: the NTK grows ∝ width; at width 2048 the empirical value is within ~10% of the
    # analytic finite-width formula Θ_out = N_in·E + W²Θ + 1.
    w = 2048
    analytic = ntk.serial(
        ntk.Dense(w, W_std=1.5, b_std=0.05, parameterization="standard"),
        ntk.Relu(),
        ntk.Dense(1, W_std=1.5, b_std=0.05, parameterization="standard"),
    )(X4).ntk
    m = ntk.torch_mlp(3, [w], 1, W_std=1.5, b_std=0.05, parameterization="standard", seed=0)
    emp = ntk.empirical_ntk(m, X4)
    assert np.linalg.norm(emp - analytic) / np.linalg.norm(analytic) < 0.1
    assert analytic[0, 0] > 500  # ∝ width, unlike the NTK parameterisation (O(1))


def test_torch_mlp_forward_is_the_ntk_parameterisation():
    m = ntk.torch_mlp(3, [5], 1, activation="identity", W_std=2.0, b_std=None, seed=0)
    w0, w1 = (layer.weight.detach().numpy() for layer in m.layers)
    out = m(torch.as_tensor(X4)).detach().numpy()
    expected = (X4 @ w0.T * 2 / math.sqrt(3)) @ w1.T * 2 / math.sqrt(5)
    np.testing.assert_allclose(out, expected, rtol=1e-13)


def test_bad_arguments():
    m = ntk.torch_mlp(3, [4], 1)
    with pytest.raises(TheoryError, match="outputs"):
        ntk.empirical_ntk(m, X4, outputs="diag")
    with pytest.raises(TheoryError, match="implementation"):
        ntk.empirical_ntk(m, X4, implementation="auto")
    with pytest.raises(TheoryError, match="torch.nn.Module"):
        ntk.empirical_ntk(lambda x: x, X4)
    with pytest.raises(TheoryError, match="activation"):
        ntk.torch_mlp(3, [4], activation="gelu")
