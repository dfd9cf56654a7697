"""Tests of theorytools.rmt: spiked random-matrix laws (Monte Carlo), Lanczos / SLQ / power iteration /
Hutchinson, torch Hessian- and GGN-vector products, and the learning-rate experiment helpers.

Provenance of reference numbers: theory.md §C.4 ([RUN] BBP checks, P = 1500) -- recomputed here
from fresh samples rather than hard-coded; all other expectations are closed forms.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import theorytools.rmt as rmt
from theorytools.errors import TheoryError

P_BIG = 1500


@pytest.fixture(autouse=True, scope="module")
def _torch_single_thread():
    """Tiny autograd graphs run ~10x faster with one intra-op thread on the shared 2-core machine."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _top_eig(A, dim: int | None = None) -> float:
    """Top eigenvalue by 40 Lanczos steps (agrees with LAPACK to ~1e-9 on these P = 1500 spectra,
    both for separated outliers and for the finite-P bulk edge; checked when writing the tests)."""
    return float(rmt.lanczos(A, 40, dim=dim, seed=0).ritz_values[-1])


# --------------------------------------------------------------------------- laws: closed forms


def test_wigner_law_limits_and_continuity():
    sigma, P = 1.3, 1000
    B = 250.0
    thr = rmt.wigner_threshold(sigma, P, B)
    assert thr == pytest.approx(sigma * 2.0)
    # both branches meet at the threshold: lambda + thr^2/lambda = 2 thr at lambda = thr
    above = rmt.spiked_wigner_outlier(thr * (1 + 1e-9), sigma, P, B)
    below = rmt.spiked_wigner_outlier(thr * (1 - 1e-9), sigma, P, B)
    assert above == pytest.approx(2 * thr, rel=1e-8)
    assert below == pytest.approx(2 * thr, rel=1e-12)
    assert rmt.wigner_bulk_edge(sigma, P, B) == pytest.approx(2 * thr)
    # B -> infinity: lambda' -> lambda; outliers pushed outward; negative spikes mirror
    assert rmt.spiked_wigner_outlier(3.0, sigma, P, 1e12) == pytest.approx(3.0, rel=1e-8)
    lam = np.linspace(-10, 10, 40)  # excludes 0 (read as the right edge)
    out = rmt.spiked_wigner_outlier(lam, sigma, P, B)
    assert np.all(np.abs(out) >= np.abs(lam) - 1e-12)
    np.testing.assert_allclose(rmt.spiked_wigner_outlier(-lam, sigma, P, B), -out)


def test_wishart_law_limits_and_continuity():
    s2, P, B = 0.7, 600, 300.0
    g = P / B
    thr = rmt.wishart_threshold(s2, P, B)
    assert thr == pytest.approx(s2 * (1 + math.sqrt(g)))
    lo, hi = rmt.wishart_bulk_edges(s2, P, B)
    assert (lo, hi) == pytest.approx((s2 * (1 - math.sqrt(g)) ** 2, s2 * (1 + math.sqrt(g)) ** 2))
    assert rmt.spiked_wishart_outlier(thr * (1 + 1e-10), s2, P, B) == pytest.approx(hi, rel=1e-8)
    assert rmt.spiked_wishart_outlier(thr * 0.9, s2, P, B) == pytest.approx(hi)
    assert rmt.spiked_wishart_outlier(5.0, s2, P, 1e13) == pytest.approx(5.0, rel=1e-8)


def test_learning_rate_rules():
    lam1, sigma, P = 2.0, 0.5, 4000
    Bstar = rmt.critical_batch_size(lam1, sigma, P)
    assert Bstar == pytest.approx(P * sigma**2 / lam1**2)
    # at B* the threshold is crossed: lambda' = 2 lambda1, alpha = 1/lambda1; B -> inf gives 2/lambda1
    assert rmt.sgd_max_lr(lam1, sigma, P, Bstar) == pytest.approx(1 / lam1)
    assert rmt.sgd_max_lr(lam1, sigma, P, 1e12) == pytest.approx(2 / lam1, rel=1e-8)
    # edge regime B < B*: alpha = 1/(sigma sqrt(P/B)) -> grows like sqrt(B)
    B = np.array([Bstar / 16, Bstar / 4])
    a = rmt.sgd_max_lr(lam1, sigma, P, B)
    np.testing.assert_allclose(a, 1 / (sigma * np.sqrt(P / B)))
    assert a[1] / a[0] == pytest.approx(2.0)
    # outlier regime: the paper's ratio rule
    B1, B2 = 2 * Bstar, 8 * Bstar
    expect = (lam1 + P * sigma**2 / (B1 * lam1)) / (lam1 + P * sigma**2 / (B2 * lam1))
    assert rmt.lr_ratio(B1, B2, lam1=lam1, sigma=sigma, P=P) == pytest.approx(expect)
    assert rmt.lr_ratio(B1, B2, lam1=lam1, sigma=sigma, P=P) == pytest.approx(
        rmt.sgd_max_lr(lam1, sigma, P, B2) / rmt.sgd_max_lr(lam1, sigma, P, B1))
    assert rmt.lr_ratio(100, 400, method="linear") == 4.0
    assert rmt.lr_ratio(100, 400, method="sqrt") == 2.0
    assert rmt.adaptive_max_lr(1e-3, 128, 512) == pytest.approx(2e-3)
    assert rmt.sgd_max_lr_linear(lam1, sigma, P, 100) == pytest.approx(2 * 100 * lam1 / (P * sigma**2))


def test_bad_parameters_raise_theory_error():
    with pytest.raises(TheoryError, match="'sigma' parameter of spiked_wigner_outlier"):
        rmt.spiked_wigner_outlier(1.0, -1.0, 10, 10)
    with pytest.raises(TheoryError):
        rmt.wishart_bulk_edges(1.0, 10, 0)
    with pytest.raises(TheoryError):
        rmt.lr_ratio(1, 2, method="cubic")
    with pytest.raises(TheoryError):
        rmt.lanczos(np.ones((3, 4)), 2)
    with pytest.raises(TheoryError, match="'steps' parameter of lanczos"):
        rmt.lanczos(np.eye(3), 0)
    with pytest.raises(TheoryError):
        rmt.hutchinson_trace(lambda v: v, 5)  # callable without dim
    with pytest.raises(TheoryError):
        rmt.max_stable_lr(lambda a: a > 1, lo=2.0, hi=1.0)


# --------------------------------------------------------------------------- laws: Monte Carlo (C.4)


@pytest.mark.parametrize("lam,B", [(3.0, 1500), (3.0, 300), (10.0, 100)])
def test_bbp_wigner_outlier_above_threshold(lam, B):
    H = rmt.sample_spiked_wigner(lam, 1.0, P_BIG, B, seed=11)
    assert lam > rmt.wigner_threshold(1.0, P_BIG, B)
    theory = lam + P_BIG / (B * lam)
    assert rmt.spiked_wigner_outlier(lam, 1.0, P_BIG, B) == pytest.approx(theory)
    assert _top_eig(H) == pytest.approx(theory, rel=0.02)


def test_bbp_wigner_below_threshold_sits_at_edge():
    lam, B = 1.5, 300
    assert lam < rmt.wigner_threshold(1.0, P_BIG, B)
    H = rmt.sample_spiked_wigner(lam, 1.0, P_BIG, B, seed=12)
    edge = 2 * math.sqrt(P_BIG / B)
    assert rmt.spiked_wigner_outlier(lam, 1.0, P_BIG, B) == pytest.approx(edge)
    top = _top_eig(H)
    assert top == pytest.approx(edge, rel=0.02)
    # the naive outlier formula (8% away) is not what the sample shows
    assert abs(top - edge) < 0.5 * abs(lam + P_BIG / (B * lam) - top)


@pytest.mark.parametrize("ell,B,n_seeds", [(4.0, 3000, 4), (4.0, 750, 6), (2.0, 750, 6)])
def test_bbp_wishart_several_seeds(ell, B, n_seeds):
    # single-sample outlier fluctuations are ~2-4% here (std ~ ell sqrt(2/B)), so average seeds
    tops = []
    for seed in range(n_seeds):
        X = rmt.sample_spiked_wishart_data(ell, 1.0, P_BIG, B, seed=100 + seed)
        tops.append(_top_eig(lambda v: X.T @ (X @ v) / B, P_BIG))
    theory = rmt.spiked_wishart_outlier(ell, 1.0, P_BIG, B)
    assert np.mean(tops) == pytest.approx(theory, rel=0.02)


# --------------------------------------------------------------------------- spectral tools


def _test_matrix(P: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((P, P)))
    ev = np.sort(np.linspace(-3.0, 2.0, P) + 0.01 * rng.standard_normal(P))
    H = (Q * ev) @ Q.T
    return 0.5 * (H + H.T), ev


def test_lanczos_full_steps_reproduces_eigenvalues():
    H, ev = _test_matrix(80, 0)
    res = rmt.lanczos(H, 80, seed=1, return_vectors=True)
    assert res.steps == 80
    np.testing.assert_allclose(res.ritz_values, np.linalg.eigvalsh(H), atol=1e-8, rtol=0)
    assert res.weights.sum() == pytest.approx(1.0, abs=1e-12)
    # Ritz vectors are eigenvectors
    V = res.ritz_vectors
    np.testing.assert_allclose(H @ V, V * res.ritz_values, atol=1e-8)


def test_lanczos_gauss_quadrature_moment_identity():
    H, _ = _test_matrix(60, 3)
    m = 8
    v = np.random.default_rng(5).standard_normal(60)
    u = v / np.linalg.norm(v)
    res = rmt.lanczos(H, m, v0=v)
    Hj = np.eye(60)
    for j in range(2 * m + 1):
        exact = u @ Hj @ u
        quad = res.quadrature(lambda x: x**j)
        if j <= 2 * m - 1:
            assert quad == pytest.approx(exact, rel=1e-9, abs=1e-9)
        else:  # degree 2m is not integrated exactly: the identity is sharp
            assert abs(quad - exact) > 1e-6 * abs(exact)
        Hj = Hj @ H


def test_lanczos_breakdown_on_invariant_subspace():
    H = np.diag([1.0, 2.0, 3.0, 4.0])
    res = rmt.lanczos(H, 4, v0=np.array([1.0, 1.0, 0.0, 0.0]))
    assert res.breakdown and res.steps == 2
    np.testing.assert_allclose(res.ritz_values, [1.0, 2.0], atol=1e-12)
    np.testing.assert_allclose(res.weights, [0.5, 0.5], atol=1e-12)


def test_slq_density_moments_and_histogram():
    H, ev = _test_matrix(200, 4)
    d = rmt.slq_density(H, 30, n_probes=20, kernel_width=0.2, seed=0)
    assert np.trapezoid(d.density, d.grid) == pytest.approx(1.0, abs=1e-3)
    assert d.weights.sum() == pytest.approx(1.0, abs=1e-12)
    # E[u^T H^j u] = tr(H^j)/P: Monte Carlo over 20 probes, check moments to a few percent
    assert d.moment(1) == pytest.approx(np.mean(ev), abs=0.05)
    assert d.moment(2) == pytest.approx(np.mean(ev**2), rel=0.05)
    # against the exact eigenvalue histogram smoothed with the same kernel
    exact = np.exp(-0.5 * ((d.grid[:, None] - ev[None, :]) / 0.2) ** 2).sum(1) / (
        len(ev) * 0.2 * math.sqrt(2 * math.pi))
    assert np.max(np.abs(d.density - exact)) < 0.15 * exact.max()


def test_power_iteration_top_algebraic_vs_magnitude():
    H, ev = _test_matrix(40, 6)  # spectrum in [-3, 2]: dominant eigenvalue is negative
    mag = rmt.top_eigenvalue(H, which="magnitude", seed=0, tol=1e-12, max_iter=20000)
    assert mag.eigenvalue == pytest.approx(ev[0], rel=1e-6)
    top = rmt.top_eigenvalue(H, seed=0, tol=1e-12, max_iter=50000)
    assert top.converged and top.shift > 0
    assert top.eigenvalue == pytest.approx(ev[-1], rel=1e-6)
    np.testing.assert_allclose(np.abs(top.eigenvector @ np.linalg.eigh(H)[1][:, -1]), 1.0, atol=1e-4)
    pos = rmt.top_eigenvalue(np.diag([5.0, 1.0, -2.0]), seed=0, tol=1e-13)
    assert pos.shift == 0.0 and pos.eigenvalue == pytest.approx(5.0, rel=1e-10)


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_unbiased(probe):
    H, ev = _test_matrix(50, 7)
    est = rmt.hutchinson_trace(H, 3000, probe=probe, seed=1)
    assert abs(est.trace - ev.sum()) < 3 * est.stderr
    # the standard error matches the known variance 2 sum_{i!=j} H_ij^2 (Rademacher) / 2||H||_F^2
    off = 2 * (np.sum(H**2) - np.sum(np.diag(H) ** 2))
    var = off if probe == "rademacher" else 2 * np.sum(H**2)
    assert est.stderr == pytest.approx(math.sqrt(var / 3000), rel=0.1)


# --------------------------------------------------------------------------- least squares + GD


def test_least_squares_hvp_and_stable_lr_bisection():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    B, d = 64, 12
    X = rng.standard_normal((B, d)) * np.linspace(0.5, 2.0, d)
    y = rng.standard_normal(B)
    model = torch.nn.Linear(d, 1, bias=False).double()

    def loss_fn(o, t):
        return 0.5 * ((o.reshape(-1) - t) ** 2).mean()

    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    H_exact = X.T @ X / B
    for kind in ("hessian", "ggn"):
        op = rmt.torch_curvature_operator(model, loss_fn, Xt, yt, kind=kind)
        v = rng.standard_normal(d)
        np.testing.assert_allclose(op.matvec(v), H_exact @ v, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(op.to_dense(), H_exact, atol=1e-13)
    lam_max = np.linalg.eigvalsh(H_exact)[-1]
    assert rmt.top_eigenvalue(op, seed=0, tol=1e-13, max_iter=5000).eigenvalue == \
        pytest.approx(lam_max, rel=1e-8)

    def loss(w):
        r = X @ w - y
        return 0.5 * r @ r / B

    def grad(w):
        return X.T @ (X @ w - y) / B

    w0 = np.zeros(d)
    assert not rmt.gd_diverges(loss, grad, w0, 0.995 * 2 / lam_max, steps=2000)
    assert rmt.gd_diverges(loss, grad, w0, 1.005 * 2 / lam_max, steps=2000)
    res = rmt.max_stable_lr(lambda a: rmt.gd_diverges(loss, grad, w0, a, steps=2000),
                            lo=0.05, hi=0.1, rel_tol=5e-4)
    assert res.stable < res.unstable
    assert res.alpha == pytest.approx(2 / lam_max, rel=2e-3)


# --------------------------------------------------------------------------- torch Hessian / GGN


def _mlp_problem(torch):
    torch.manual_seed(0)
    X = torch.randn(40, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (40,))
    mlp = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(),
                              torch.nn.Linear(4, 3)).double()
    return mlp, torch.nn.CrossEntropyLoss(), X, y


def _flat_fn(torch, mlp, f):
    from torch.func import functional_call
    names = [n for n, _ in mlp.named_parameters()]
    shapes = [p.shape for _, p in mlp.named_parameters()]

    def call(w):
        params, i = {}, 0
        for n, s in zip(names, shapes):
            k = int(np.prod(s))
            params[n] = w[i: i + k].reshape(s)
            i += k
        return f(functional_call(mlp, params, (X_CACHE[0],)))
    flat = torch.cat([p.detach().reshape(-1) for p in mlp.parameters()])
    return call, flat


X_CACHE: list = []


def test_torch_hessian_and_ggn_match_dense_autograd():
    torch = pytest.importorskip("torch")
    mlp, ce, X, y = _mlp_problem(torch)
    X_CACHE[:] = [X]
    f, flat = _flat_fn(torch, mlp, lambda out: ce(out, y))
    H_ref = torch.autograd.functional.hessian(f, flat).numpy()
    op = rmt.torch_curvature_operator(mlp, ce, X, y)
    assert op.dim == flat.numel() == 39
    assert op.loss() == pytest.approx(float(f(flat)))
    np.testing.assert_allclose(op.to_dense(), H_ref, atol=1e-12)
    # GGN = J^T H_out J from dense Jacobians
    out_fn, _ = _flat_fn(torch, mlp, lambda out: out)
    J = torch.autograd.functional.jacobian(out_fn, flat).reshape(40 * 3, -1).numpy()
    o = out_fn(flat).detach().reshape(-1)
    Ho = torch.autograd.functional.hessian(lambda z: ce(z.reshape(40, 3), y), o).numpy()
    G_ref = J.T @ Ho @ J
    G = rmt.torch_curvature_operator(mlp, ce, X, y, kind="ggn").to_dense()
    np.testing.assert_allclose(G, G_ref, atol=1e-12)
    assert np.linalg.eigvalsh(G)[0] > -1e-12  # PSD for a convex loss
    # spectral tools run on the torch operator: Lanczos with m = P reproduces eig(H)
    # (the CE Hessian has repeated eigenvalues, which Lanczos returns once each)
    res = rmt.lanczos(op, op.dim, seed=0)
    ev = np.linalg.eigvalsh(H_ref)
    assert np.max(np.min(np.abs(res.ritz_values[:, None] - ev[None, :]), axis=1)) < 1e-8
    assert res.ritz_values[-1] == pytest.approx(ev[-1], abs=1e-8)
    assert res.ritz_values[0] == pytest.approx(ev[0], abs=1e-8)
    tr = rmt.hutchinson_trace(op, 200, seed=0)
    assert abs(tr.trace - np.trace(H_ref)) < 4 * tr.stderr


def test_torch_operator_over_dataloader_equals_full_batch():
    """PyHessian-style data loader: sum over batches weighted by B_b / N equals the operator of the
    mean loss over the concatenated data, for equal (10 x 4) and unequal (15, 15, 10) batches."""
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, TensorDataset
    mlp, ce, X, y = _mlp_problem(torch)
    for kind in ("hessian", "ggn"):
        full = rmt.torch_curvature_operator(mlp, ce, X, y, kind=kind)
        H_full = full.to_dense()
        for bs, shuffle in ((10, False), (15, False), (15, True)):
            loader = DataLoader(TensorDataset(X, y), batch_size=bs, shuffle=shuffle)
            op = rmt.torch_curvature_operator(mlp, ce, dataloader=loader, kind=kind)
            assert (op.n_samples, op.n_batches) == (40, -(-40 // bs))
            assert op.loss() == pytest.approx(full.loss(), rel=1e-12)
            np.testing.assert_allclose(op.to_dense(), H_full, atol=1e-12)
            np.testing.assert_array_equal(op.parameters_flat(), full.parameters_flat())
    # the weighting matters for unequal batches: an unweighted mean of batch Hessians differs
    batches = [(X[i:i + 15], y[i:i + 15]) for i in range(0, 40, 15)]
    op = rmt.torch_curvature_operator(mlp, ce, dataloader=batches)
    per = [rmt.torch_curvature_operator(mlp, ce, a, b).to_dense() for a, b in batches]
    weighted = sum(len(b) / 40 * h for (_, b), h in zip(batches, per))
    H = op.to_dense()
    np.testing.assert_allclose(H, weighted, atol=1e-12)
    assert np.abs(H - np.mean(per, axis=0)).max() > 1e-3
    # spectral tools run on it
    assert rmt.lanczos(op, op.dim, seed=0).ritz_values[-1] == pytest.approx(
        np.linalg.eigvalsh(H)[-1], abs=1e-8)


def test_torch_operator_dataloader_bad_input():
    torch = pytest.importorskip("torch")
    mlp, ce, X, y = _mlp_problem(torch)
    with pytest.raises(TheoryError, match="re-iterable"):
        rmt.torch_curvature_operator(mlp, ce, dataloader=iter([(X, y)]))
    with pytest.raises(TheoryError, match="not both"):
        rmt.torch_curvature_operator(mlp, ce, X, y, dataloader=[(X, y)])
    with pytest.raises(TheoryError, match="needs inputs"):
        rmt.torch_curvature_operator(mlp, ce)
    with pytest.raises(TheoryError, match="no samples"):
        rmt.torch_curvature_operator(mlp, ce, dataloader=[])
    with pytest.raises(TheoryError, match="pairs"):
        rmt.torch_curvature_operator(mlp, ce, dataloader=[X])


# --------------------------------------------------------------------------- experiment helpers


def test_batch_extremes_follow_wishart_law_and_fit():
    # least squares with isotropic features: batch Hessian X_B^T X_B / B is a Wishart matrix whose top
    # eigenvalue is sigma2 (1 + sqrt(P/B))^2 -- the helper must reproduce the B-dependence
    from scipy.sparse.linalg import LinearOperator
    rng = np.random.default_rng(1)
    N, P = 20000, 200
    X = rng.standard_normal((N, P))  # isotropic: top eigenvalue is the MP edge (1 + sqrt(P/B))^2

    def factory(idx):
        Xb = X[idx]
        return LinearOperator((P, P), matvec=lambda v: Xb.T @ (Xb @ v) / len(idx))

    bs = [50, 200, 800]
    spec = rmt.batch_extreme_eigenvalues(factory, N, bs, n_batches=4, steps=40, seed=0)
    assert spec.top.shape == (3, 4)
    upper = rmt.wishart_bulk_edges(1.0, P, np.array(bs, float))[1]
    lower = np.maximum(rmt.wishart_bulk_edges(1.0, P, np.array(bs, float))[0], 0.0)
    np.testing.assert_allclose(spec.top_mean, upper, rtol=0.05)
    assert np.all(np.diff(spec.top_mean) < 0)  # decreasing in B
    # for B < P the batch matrix is singular; for B > P the bottom follows the lower MP edge
    assert np.all(np.abs(spec.bottom[0]) < 1e-8)
    assert spec.bottom[2].mean() == pytest.approx(lower[2], rel=0.1)
    assert spec.full_top == pytest.approx(np.linalg.eigvalsh(X.T @ X / N)[-1], rel=1e-6)


def test_fit_batch_curve_recovers_parameters():
    lam1, sigma, P = 2.0, 1.0, 1000.0
    B = np.array([300.0, 500.0, 1000.0, 2000.0, 4000.0])  # all above B* = 250
    y = rmt.spiked_wigner_outlier(lam1, sigma, P, B)
    for method in ("outlier", "bbp"):
        fit = rmt.fit_batch_curve(B, y, method=method)
        assert fit.lambda1 == pytest.approx(lam1, rel=1e-8)
        assert fit.noise == pytest.approx(P * sigma**2, rel=1e-6)
        assert fit.critical_batch_size == pytest.approx(250.0, rel=1e-6)
        np.testing.assert_allclose(fit.predict(B), y, rtol=1e-8)
    # with edge-regime points the full BBP fit still recovers the parameters
    B2 = np.array([50.0, 100.0, 200.0, 400.0, 1000.0, 3000.0])
    y2 = rmt.spiked_wigner_outlier(lam1, sigma, P, B2)
    fit = rmt.fit_batch_curve(B2, y2, method="bbp")
    assert fit.lambda1 == pytest.approx(lam1, rel=1e-5)
    assert fit.noise == pytest.approx(P, rel=1e-5)


def test_fit_lr_scaling_exponents():
    B = np.array([16, 32, 64, 128])
    assert rmt.fit_lr_scaling(B, 0.01 * B).exponent == pytest.approx(1.0)
    f = rmt.fit_lr_scaling(B, 3e-3 * np.sqrt(B))
    assert f.exponent == pytest.approx(0.5) and f.prefactor == pytest.approx(3e-3)


def test_torch_training_divergence_matches_quadratic_threshold():
    # full-batch "SGD" (batch = all samples) on least squares is GD: the bisection on training
    # divergence must land on 2/lambda_max of X^T X / N
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    N, d = 32, 6
    X = torch.from_numpy(rng.standard_normal((N, d)))
    y = torch.from_numpy(rng.standard_normal((N, 1)))
    model = torch.nn.Linear(d, 1, bias=False).double()

    def loss_fn(o, t):
        return 0.5 * ((o - t) ** 2).mean()

    lam = np.linalg.eigvalsh(X.numpy().T @ X.numpy() / N)[-1]
    sweep = rmt.stable_lr_sweep(model, loss_fn, X, y, [N], optimizer="sgd", steps=150,
                                lo=1.0, hi=2.0, rel_tol=5e-3, blowup=1.0)
    assert sweep.fit is None
    assert sweep.alphas[0] == pytest.approx(2 / lam, rel=0.02)


def test_torch_training_divergence_sgd_and_adam_extremes():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    X = torch.from_numpy(rng.standard_normal((64, 5)))
    y = torch.from_numpy(rng.standard_normal((64, 1)))
    model = torch.nn.Linear(5, 1).double()
    mse = torch.nn.MSELoss()
    w_before = [p.detach().clone() for p in model.parameters()]
    for opt in ("sgd", "adam"):
        for crit in ("final", "peak"):
            kw = dict(batch_size=8, optimizer=opt, steps=40, criterion=crit)
            assert not rmt.torch_training_diverges(model, mse, X, y, lr=1e-3, **kw)
            assert rmt.torch_training_diverges(model, mse, X, y, lr=1e3, **kw)
    # the model itself is never trained (a copy is)
    for p, q in zip(model.parameters(), w_before):
        assert torch.equal(p.detach(), q)
    with pytest.raises(TheoryError, match="'optimizer' parameter"):
        rmt.torch_training_diverges(model, mse, X, y, lr=0.1, batch_size=8, optimizer="lbfgs")
    with pytest.raises(TheoryError, match="'batch_size' parameter"):
        rmt.torch_training_diverges(model, mse, X, y, lr=0.1, batch_size=65)


try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    given = None

if given is not None:
    @settings(max_examples=60, deadline=None)
    @given(lam=st.floats(0.01, 100), sigma=st.floats(0.01, 10), P=st.integers(10, 10**6),
           B1=st.floats(1, 1e5), factor=st.floats(1.0, 100))
    def test_property_outlier_outward_and_lr_monotone(lam, sigma, P, B1, factor):
        B2 = B1 * factor
        out1 = rmt.spiked_wigner_outlier(lam, sigma, P, B1)
        out2 = rmt.spiked_wigner_outlier(lam, sigma, P, B2)
        # pushed outward, and never inside the bulk (AM-GM: lam + thr^2/lam >= 2 thr)
        assert out1 >= lam * (1 - 1e-12)
        assert out1 >= 2 * rmt.wigner_threshold(sigma, P, B1) * (1 - 1e-12)
        assert out2 <= out1 * (1 + 1e-12)           # larger batches never raise lambda'
        assert rmt.sgd_max_lr(lam, sigma, P, B2) >= rmt.sgd_max_lr(lam, sigma, P, B1) * (1 - 1e-12)
        assert rmt.sgd_max_lr(lam, sigma, P, B2) <= 2 / lam * (1 + 1e-12)
        w = rmt.spiked_wishart_outlier(lam, sigma**2, P, B1)
        assert w >= lam * (1 - 1e-12)
        assert w >= rmt.wishart_bulk_edges(sigma**2, P, B1)[1] * (1 - 1e-12)


def test_estimate_noise_scale_matches_closed_form():
    # per-sample Hessian x x^T with x ~ N(0, I_P): E||(x x^T - I) z||^2 = P + 1 for a unit z, so the
    # estimator (which divides by P and removes the without-replacement factor) must give (P + 1)/P
    rng = np.random.default_rng(0)
    N, P = 4000, 50
    X = rng.standard_normal((N, P))
    est = rmt.estimate_noise_scale(lambda idx: X[idx].T @ X[idx] / len(idx), N, 100,
                                   n_batches=20, n_probes=4, seed=0)
    assert est.samples.size == 80
    assert abs(est.sigma2 - (P + 1) / P) < 3 * est.stderr
    assert est.stderr < 0.05
    # user-supplied probes (coordinate axes; the law is rotation invariant): same closed form
    ax = rmt.estimate_noise_scale(lambda idx: X[idx].T @ X[idx] / len(idx), N, 100,
                                  n_batches=20, probes=3.0 * np.eye(P)[:4], seed=1)
    assert abs(ax.sigma2 - (P + 1) / P) < 3 * ax.stderr
    with pytest.raises(TheoryError, match="'probes' parameter"):
        rmt.estimate_noise_scale(lambda idx: X[idx].T @ X[idx], N, 100, probes=np.zeros((1, P)))
    with pytest.raises(TheoryError, match="'batch_size' parameter of estimate_noise_scale"):
        rmt.estimate_noise_scale(lambda idx: np.eye(2), 10, 10)
