"""Output bounds (IBP, CROWN, alpha-CROWN) and activation relaxations: soundness and ordering."""

from __future__ import annotations

import numpy as np
import pytest

from verification.bounds import layer_bounds, output_bounds
from verification.network import Dense, Network
from verification.activations import GroupSort, Householder, LeakyReLU, ReLU, Sigmoid, Tanh
from verification.errors import InvalidParameterError, UnsupportedLayerError

ACTS = [ReLU(), LeakyReLU(0.1), LeakyReLU(3.0), Tanh(), Sigmoid(), GroupSort(2), GroupSort(4)]


def random_net(widths, act, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    layers = []
    for i in range(len(widths) - 1):
        w = (rng.normal(size=(widths[i + 1], widths[i])) / np.sqrt(widths[i])).astype(dtype)
        b = (0.3 * rng.normal(size=widths[i + 1])).astype(dtype)
        layers.append(Dense(w, b))
        if i < len(widths) - 2:
            layers.append(act)
    return Network(layers)


@pytest.mark.parametrize("act", ACTS, ids=lambda a: a.describe())
def test_linear_relaxation_is_sound(act):
    rng = np.random.default_rng(0)
    l = 3 * rng.normal(size=(400, 8))
    u = l + 3 * rng.exponential(size=(400, 8))
    u[:20] = l[:20]  # degenerate intervals
    z = l + rng.random((30, 400, 8)) * (u - l)
    f = np.stack([act(zz) for zz in z])
    ls, lb, us, ub = act.linear_relaxation(l, u)
    if ls.ndim == 3:  # matrix relaxation of grouped activations
        low = np.einsum("bij,sbj->sbi", ls, z) + lb
        up = np.einsum("bij,sbj->sbi", us, z) + ub
    else:
        low, up = ls * z + lb, us * z + ub
    assert np.all(low <= f + 1e-12)
    assert np.all(f <= up + 1e-12)
    if act.elementwise:
        dl, du = act.derivative_bounds(l, u)
        d = act.derivative(z)
        assert np.all(dl <= d) and np.all(d <= du)


def test_relu_relaxation_values():
    # unstable neuron on [-1, 3]: chord slope 3/4 through (-1, 0); adaptive lower slope 1 (u > -l)
    ls, lb, us, ub = ReLU().linear_relaxation(np.array([-1.0, -3.0, 1.0]), np.array([3.0, 1.0, 2.0]))
    assert np.allclose(us, [0.75, 0.25, 1.0]) and np.allclose(ub, [0.75, 0.75, 0.0])
    assert np.allclose(ls, [1.0, 0.0, 1.0]) and np.allclose(lb, 0.0)


def test_householder_has_no_relaxation():
    net = Network([Dense(np.eye(2)), Householder(np.array([1.0, 0.0])), Dense(np.eye(2))])
    with pytest.raises(UnsupportedLayerError):
        output_bounds(net, -np.ones(2), np.ones(2), method="crown")


@pytest.mark.parametrize("act", ACTS, ids=lambda a: a.describe())
@pytest.mark.parametrize("eps", [0.05, 0.5])
def test_ibp_contains_crown_contains_samples(act, eps):
    net = random_net([5, 12, 12, 4], act, seed=3)
    rng = np.random.default_rng(1)
    x0 = rng.normal(size=5)
    lo, hi = x0 - eps, x0 + eps
    x = np.concatenate([lo + rng.random((5000, 5)) * (hi - lo), np.where(rng.random((500, 5)) < 0.5, lo, hi)])
    y = net(x)
    ibp = output_bounds(net, lo, hi, "ibp")
    crown = output_bounds(net, lo, hi, "crown")
    alpha = output_bounds(net, lo, hi, "alpha-crown")
    tol = 1e-9
    for b in (ibp, crown, alpha):
        assert np.all(b.lower <= y.min(0) + tol) and np.all(y.max(0) <= b.upper + tol)
    assert np.all(ibp.lower <= crown.lower + tol) and np.all(crown.upper <= ibp.upper + tol)
    assert np.all(crown.lower <= alpha.lower + tol) and np.all(alpha.upper <= crown.upper + tol)


def test_crown_strictly_tighter_on_relu_net():
    net = random_net([4, 16, 16, 3], ReLU(), seed=5)
    x0 = np.zeros(4)
    ibp = output_bounds(net, x0 - 0.5, x0 + 0.5, "ibp")
    crown = output_bounds(net, x0 - 0.5, x0 + 0.5, "crown")
    alpha = output_bounds(net, x0 - 0.5, x0 + 0.5, "alpha-crown")
    assert crown.width.sum() < 0.8 * ibp.width.sum()
    assert alpha.width.sum() < crown.width.sum()


@pytest.mark.parametrize("method", ["crown", "alpha-crown"])
def test_layer_bounds_contain_preactivations(method):
    net = random_net([3, 10, 10, 10, 2], ReLU(), seed=7)
    lo, hi = -np.ones(3) * 0.4, np.ones(3) * 0.6
    x = lo + np.random.default_rng(0).random((4000, 3)) * (hi - lo)
    trace = net.forward_trace(x)
    pre = [trace[i] for i, layer in enumerate(net.layers) if not isinstance(layer, Dense)]  # act inputs
    bounds = layer_bounds(net, lo, hi, method)
    ibp = layer_bounds(net, lo, hi, "ibp")
    assert len(bounds) == 3
    for b, ib, z in zip(bounds, ibp, pre):
        assert np.all(b.lower <= z.min(0) + 1e-9) and np.all(z.max(0) <= b.upper + 1e-9)
        assert np.all(ib.lower <= b.lower + 1e-12) and np.all(b.upper <= ib.upper + 1e-12)


def test_affine_and_point_boxes_are_exact():
    rng = np.random.default_rng(2)
    w, b = rng.normal(size=(3, 4)), rng.normal(size=3)
    net = Network([Dense(w, b)])
    lo, hi = -np.ones(4), 2 * np.ones(4)
    c = output_bounds(net, lo, hi, "crown")
    mid, rad = (lo + hi) / 2, (hi - lo) / 2
    assert np.allclose(c.lower, w @ mid + b - np.abs(w) @ rad)
    assert np.allclose(c.upper, w @ mid + b + np.abs(w) @ rad)
    deep = random_net([4, 8, 8, 2], Tanh(), seed=1)
    x = rng.normal(size=4)
    p = output_bounds(deep, x, x, "crown")
    assert np.allclose(p.lower, deep(x), atol=1e-9) and np.allclose(p.upper, deep(x), atol=1e-9)


def test_float32_model_is_converted_and_deterministic():
    net32 = random_net([4, 8, 8, 2], ReLU(), seed=4, dtype=np.float32)
    net64 = Network([Dense(l.weight.astype(np.float64), l.bias.astype(np.float64)) if isinstance(l, Dense) else l
                     for l in net32.layers])
    assert net32.weights[0].dtype == np.float64
    lo, hi = np.zeros(4) - 0.25, np.zeros(4) + 0.25  # exactly representable in float32
    a = output_bounds(net32, lo.astype(np.float32), hi.astype(np.float32), "alpha-crown")
    b = output_bounds(net64, lo, hi, "alpha-crown")
    c = output_bounds(net64, lo, hi, "alpha-crown")
    assert a.lower.dtype == np.float64
    assert np.array_equal(a.lower, b.lower) and np.array_equal(a.upper, b.upper)
    assert np.array_equal(b.lower, c.lower) and np.array_equal(b.upper, c.upper)


def test_invalid_method_and_box():
    net = random_net([2, 3, 1], ReLU(), seed=0)
    with pytest.raises(InvalidParameterError):
        output_bounds(net, np.zeros(2), np.ones(2), method="deeppoly")
    with pytest.raises(InvalidParameterError):
        output_bounds(net, np.ones(2), np.zeros(2), method="crown")


from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), eps=st.floats(0.0, 2.0), act_id=st.integers(0, len(ACTS) - 1))
def test_bounds_sound_property(seed, eps, act_id):
    net = random_net([3, 8, 8, 2], ACTS[act_id], seed=seed)
    rng = np.random.default_rng(seed)
    x0 = rng.normal(size=3)
    lo, hi = x0 - eps, x0 + eps
    y = net(lo + rng.random((800, 3)) * (hi - lo))
    ibp, crown = output_bounds(net, lo, hi, "ibp"), output_bounds(net, lo, hi, "crown")
    assert np.all(crown.lower <= y.min(0) + 1e-9) and np.all(y.max(0) <= crown.upper + 1e-9)
    assert np.all(ibp.lower <= crown.lower + 1e-12) and np.all(crown.upper <= ibp.upper + 1e-12)


# ----------------------------------------------------------------- batched bounds (input splitting)
def _boxes_and_rows(rng, n_boxes: int, dim: int, n_rows: int):
    """Random boxes inside [-1, 1]^dim (widths 0.05..1) and random specification rows ``C x + cb``."""
    lo = rng.uniform(-1, 0, size=(n_boxes, dim))
    hi = lo + rng.uniform(0.05, 1.0, size=(n_boxes, dim))
    return lo, hi, rng.normal(size=(n_rows, dim)), rng.normal(size=n_rows)


@pytest.mark.parametrize("act", [ReLU(), LeakyReLU(0.2), Tanh(), GroupSort(2), Householder(np.array([0.6, 0.8]))],
                         ids=lambda a: a.describe())
@pytest.mark.parametrize("method", ["incremental", "crown", "ibp"])
def test_batched_spec_bounds_are_sound_linear_lower_bounds(act, method):
    from verification.bounds.batched import spec_bounds

    net = random_net([3, 10, 10, 3], act, seed=5).canonical()
    rng = np.random.default_rng(0)
    lo, hi, C, cb = _boxes_and_rows(rng, 5, 3, 4)
    sb = spec_bounds(net, lo, hi, C, cb, method=method)
    E = rng.uniform(-1, 1, size=(5, 400, 3))
    X = (hi + lo)[:, None, :] / 2 + (hi - lo)[:, None, :] / 2 * E
    rows = net(X.reshape(-1, 3)).reshape(5, 400, 3) @ C.T + cb  # (5, 400, 4)
    assert np.all(sb.lower[:, None, :] <= rows + 1e-9)
    # the linear function behind each bound is itself below the row at every sample
    lin = np.einsum("brd,bsd->bsr", sb.coef, E) + (sb.lower + np.abs(sb.coef).sum(-1))[:, None, :]
    assert np.all(lin <= rows + 1e-9)
    for j, (l, u) in enumerate(sb.pre):
        z = net.forward_trace(X.reshape(-1, 3))[2 * j + 1].reshape(5, 400, -1)
        assert np.all(z >= l[:, None, :] - 1e-9) and np.all(z <= u[:, None, :] + 1e-9)


def test_incremental_crown_matches_full_crown_on_unstable_first_hidden_layers():
    """Layer 1 (the first back-substituted layer) of incremental CROWN equals crown_layers wherever the
    interval bound leaves a neuron unstable; elsewhere it is the interval bound (never looser than IBP)."""
    from verification.bounds.batched import incremental_crown
    from verification.bounds.crown import crown_layers

    net = random_net([4, 16, 16, 16, 2], ReLU(), seed=2).canonical()
    rng = np.random.default_rng(3)
    lo = rng.uniform(-1, 0, size=(8, 4))
    hi = lo + rng.uniform(0.1, 1.0, size=(8, 4))
    inc = incremental_crown(net, lo, hi)
    full = crown_layers(net, lo, hi, final=False).pre
    np.testing.assert_array_equal(inc[0].lower, full[0].lower)  # layer 0: exact affine interval in both
    l_i, u_i = inc[1]
    l_f, u_f = full[1]
    unst = ((l_i < 0) & (u_i > 0)).any(axis=0)
    np.testing.assert_allclose(l_i[:, unst], l_f[:, unst], rtol=0, atol=1e-12)
    np.testing.assert_allclose(u_i[:, unst], u_f[:, unst], rtol=0, atol=1e-12)
    assert np.all(l_i <= l_f + 1e-12) and np.all(u_i >= u_f - 1e-12)


@pytest.mark.parametrize("act", [ReLU(), LeakyReLU(0.2)], ids=lambda a: a.describe())
def test_alpha_spec_bounds_sound_and_never_below_crown(act):
    """alpha-CROWN on the specification rows: every row bound <= the sampled row minimum, its linear
    function below the row at every sample, and >= the CROWN bound built from the same intermediate bounds."""
    from verification.bounds.batched import alpha_spec_bounds, spec_bounds

    net = random_net([3, 12, 12, 3], act, seed=11).canonical()
    rng = np.random.default_rng(4)
    lo, hi, C, cb = _boxes_and_rows(rng, 6, 3, 4)
    sb = spec_bounds(net, lo, hi, C, cb)
    ab = alpha_spec_bounds(net, lo, hi, C, cb, sb.pre, iters=20)
    assert np.all(ab.lower >= sb.lower - 1e-12)
    assert np.any(ab.lower > sb.lower + 1e-6)  # the optimised slopes do help on these boxes
    E = rng.uniform(-1, 1, size=(6, 400, 3))
    E[:, :8] = np.sign(E[:, :8])  # box vertices too
    X = (hi + lo)[:, None, :] / 2 + (hi - lo)[:, None, :] / 2 * E
    rows = net(X.reshape(-1, 3)).reshape(6, 400, 3) @ C.T + cb
    assert np.all(ab.lower[:, None, :] <= rows + 1e-9)
    lin = np.einsum("brd,bsd->bsr", ab.coef, E) + (ab.lower + np.abs(ab.coef).sum(-1))[:, None, :]
    assert np.all(lin <= rows + 1e-9)
    # early exit: boxes marked done keep their bound from the iterations they took part in (still sound)
    ae = alpha_spec_bounds(net, lo, hi, C, cb, sb.pre, iters=20, done=lambda idx, low: idx % 2 == 0)
    assert np.all(ae.lower >= sb.lower - 1e-12) and np.all(ae.lower[:, None, :] <= rows + 1e-9)
    np.testing.assert_allclose(ae.lower[1::2], ab.lower[1::2], rtol=0, atol=1e-12)


def _triangle_lp(W1, b1, W2, b2, c, lo, hi, l, u):
    """min c·(W2 relu(W1 x + b1) + b2) over the box with the triangle relaxation of every unstable neuron
    (the LP optimum that alpha-CROWN approaches from below; Salman et al. 2019)."""
    from scipy.optimize import linprog

    n, d = W1.shape
    # variables x (d), a (n)
    obj = np.concatenate([np.zeros(d), W2.T @ c])
    A, bu = [], []
    bounds = [(lo[i], hi[i]) for i in range(d)]
    for i in range(n):
        e = np.zeros(n)
        e[i] = 1.0
        if l[i] >= 0:  # a = z
            A += [np.concatenate([-W1[i], e]), np.concatenate([W1[i], -e])]
            bu += [b1[i], -b1[i]]
            bounds.append((None, None))
        elif u[i] <= 0:
            bounds.append((0.0, 0.0))
        else:
            s = u[i] / (u[i] - l[i])
            A += [np.concatenate([W1[i], -e]), np.concatenate([-s * W1[i], e])]  # a >= z ; a <= s (z - l)
            bu += [-b1[i], s * (b1[i] - l[i])]
            bounds.append((0.0, None))
    res = linprog(obj, A_ub=np.array(A), b_ub=np.array(bu), bounds=bounds, method="highs")
    assert res.status == 0
    return res.fun + c @ b2


def test_alpha_spec_bounds_approach_the_triangle_lp_from_below():
    """One hidden layer: the intermediate bounds are exact intervals, so the best alpha-CROWN bound equals
    the triangle-relaxation LP optimum; Adam gets within 2% of the CROWN-to-LP gap and never above it."""
    from verification.bounds.batched import alpha_spec_bounds, spec_bounds

    rng = np.random.default_rng(8)
    gaps = []
    for k in range(6):
        W1, b1 = rng.normal(size=(10, 3)), rng.normal(size=10)
        W2, b2 = rng.normal(size=(2, 10)), rng.normal(size=2)
        net = Network([Dense(W1, b1), ReLU(), Dense(W2, b2)])
        lo = rng.uniform(-1, 0, size=(1, 3))
        hi = lo + rng.uniform(0.5, 1.5, size=(1, 3))
        c = np.array([[1.0, -1.0]])
        sb = spec_bounds(net, lo, hi, c, np.zeros(1))
        ab = alpha_spec_bounds(net, lo, hi, c, np.zeros(1), sb.pre, iters=200, lr=0.05)
        l, u = sb.pre[0].lower[0], sb.pre[0].upper[0]
        lp = _triangle_lp(W1, b1, W2, b2, c[0], lo[0], hi[0], l, u)
        a, cr = ab.lower[0, 0], sb.lower[0, 0]
        assert cr <= a + 1e-12 and a <= lp + 1e-8 * (1 + abs(lp)), (k, cr, a, lp)
        if lp - cr > 1e-6:
            gaps.append((lp - a) / (lp - cr))
    assert gaps and max(gaps) < 0.02, gaps


def test_incremental_crown_stops_at_its_deadline_and_blocks_rows_exactly():
    """A passed deadline raises DeadlineReached (no partial bounds); rows bounded in blocks give the same bounds."""
    import time

    from verification.bounds import batched, crown
    from verification.bounds.types import DeadlineReached

    rng = np.random.default_rng(5)
    layers = []
    for a, b in ((30, 40), (40, 40), (40, 5)):
        layers += [Dense(rng.normal(size=(b, a)) / np.sqrt(a), rng.normal(size=b) * 0.1), ReLU()]
    net = Network(tuple(layers[:-1]))
    lo, hi = -np.ones((2, 30)), np.ones((2, 30))
    with pytest.raises(DeadlineReached):
        batched.incremental_crown(net, lo, hi, deadline=time.monotonic() - 1.0)
    ref = batched.incremental_crown(net, lo, hi, deadline=time.monotonic() + 60.0)
    old = crown.ROW_BLOCK_ENTRIES
    try:
        batched.ROW_BLOCK_ENTRIES = 2 * 30 * 7  # blocks of 16 rows (the minimum)
        blocked = batched.incremental_crown(net, lo, hi)
    finally:
        batched.ROW_BLOCK_ENTRIES = old
    for a, b in zip(ref, blocked):
        np.testing.assert_array_equal(a.lower, b.lower)
        np.testing.assert_array_equal(a.upper, b.upper)


def test_plain_crown_step_without_record_equals_the_recorded_step():
    """The record-free step (only the columns whose two lines differ need the sign) gives the recorded step's
    coefficients exactly and its bias up to summation order, for 2-D shared and 3-D batched rows."""
    from verification.bounds import crown

    rng = np.random.default_rng(7)
    B, m, n = 3, 5, 40
    l = rng.normal(size=(B, n)) - 0.3
    u = l + rng.uniform(0, 2, size=(B, n))
    for act in (ReLU(), LeakyReLU(0.1), Tanh()):
        r = crown._make_relax(act, l, u)
        for lam in (rng.normal(size=(m, n)), rng.normal(size=(B, m, n))):
            full = lam if lam.ndim == 3 else np.broadcast_to(lam, (B, m, n))
            a, ab, rec = crown._step(r, full, record=True)
            b, bb, none = crown._step(r, lam, record=False)
            assert rec is not None and none is None
            np.testing.assert_array_equal(a, b)
            np.testing.assert_allclose(ab, bb, rtol=1e-13, atol=1e-13)
