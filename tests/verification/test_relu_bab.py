"""ReLU-splitting branch and bound: beta-CROWN bounds on split domains and the verdicts of ``method="bab"``.

Soundness: on random nets, every beta-CROWN bound (any slopes, any multipliers >= 0, optimised or not) is
below the minimum over sampled points *of the domain* (points of the box whose activation signs meet the
split constraints); split constraints must never cut off a feasible point.  Verdicts: on random nets with
20-40 inputs, ``verify(method="bab")`` agrees with the truth of an independent MILP (scipy/HiGHS, big-M
encoding written here) on both sides of the true minimum.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import Bounds as LPBounds
from scipy.optimize import LinearConstraint, milp

from verification import verify
from verification.activations import LeakyReLU, ReLU
from verification.bounds.batched import incremental_crown, spec_bounds
from verification.bounds.beta import beta_crown, clamp_to_splits
from verification.network import Dense, Network
from verification.smt.relu_bab import empty_margin, leaf_lp
from verification.spec import box_property


def _net(rng, sizes, act=ReLU, scale=1.0):
    layers = []
    for i in range(len(sizes) - 1):
        W = scale * rng.normal(size=(sizes[i + 1], sizes[i])) / np.sqrt(sizes[i])
        layers.append(Dense(W, 0.3 * rng.normal(size=sizes[i + 1])))
        if i < len(sizes) - 2:
            layers.append(act())
    return Network(tuple(layers))


def _preacts(net, X):
    """Pre-activations of every activation layer at the rows of ``X``."""
    out, h = [], X
    layers, acts = net.affine_layers, net.activations
    for j, act in enumerate(acts):
        z = layers[j](h)
        out.append(z)
        h = act(z)
    return out


def _domain(net, rng, lo, hi, n_split):
    """Root bounds and random split constraints taken from the signs at a random point of the box (so the
    domain holds that point); returns (clamped bounds, splits)."""
    pre = incremental_crown(net, lo[None], hi[None])
    x0 = rng.uniform(lo, hi)
    zs = _preacts(net, x0[None])
    cand = [(j, i) for j, (l, u) in enumerate(pre) for i in np.flatnonzero((l[0] < 0) & (u[0] > 0))]
    splits = [np.zeros((1, l.shape[1]), dtype=np.int8) for l, _ in pre]
    for t in rng.permutation(len(cand))[:n_split]:
        j, i = cand[t]
        splits[j][0, i] = 1 if zs[j][0, i] >= 0 else -1
    clamped = []
    for (l, u), s in zip(pre, splits):
        l2, u2, empty = clamp_to_splits(l, u, s)
        assert not empty.any()
        clamped.append((l2, u2))
    return clamped, splits


def _domain_min(net, lo, hi, splits, C, cb, rng, n=40000):
    """Smallest value of each row of ``C f(x) + cb`` over sampled points of the domain."""
    X = rng.uniform(lo, hi, size=(n, lo.size))
    ok = np.ones(n, dtype=bool)
    for z, s in zip(_preacts(net, X), splits):
        ok &= np.all(s[0] * z >= 0, axis=1)
    assert ok.sum() > 0
    return (net(X[ok]) @ C.T + cb).min(axis=0)


@pytest.mark.parametrize("seed", range(6))
def test_beta_crown_without_splits_equals_crown(seed):
    rng = np.random.default_rng(seed)
    net = _net(rng, [4, 10, 10, 3])
    lo, hi = -np.ones(4), np.ones(4)
    C, cb = rng.normal(size=(2, 3)), rng.normal(size=2)
    pre = incremental_crown(net, lo[None], hi[None])
    want = spec_bounds(net, lo[None], hi[None], C, cb).lower
    splits = [np.zeros((1, l.shape[1]), dtype=np.int8) for l, _ in pre]
    got = beta_crown(net, lo[None], hi[None], C, cb, [(l, u) for l, u in pre], splits, iters=1).lower
    assert np.allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(12))
def test_beta_crown_bounds_are_below_the_domain_minimum(seed):
    rng = np.random.default_rng(100 + seed)
    act = ReLU if seed % 2 == 0 else (lambda: LeakyReLU(0.1))
    net = _net(rng, [2, 8, 8, 2], act=act, scale=2.0)
    lo, hi = -np.ones(2), np.ones(2)
    C, cb = rng.normal(size=(1, 2)), np.zeros(1)
    pre, splits = _domain(net, rng, lo, hi, n_split=1 + seed % 4)
    truth = _domain_min(net, lo, hi, splits, C, cb, rng)
    L = len(pre)
    # arbitrary admissible parameters: any slopes in range, any multipliers >= 0
    a_lo = [min(a.two_piece_slope, 1.0) for a in net.activations]
    alphas = [rng.uniform(a_lo[j], 1.0, size=(1, 1, pre[j][0].shape[1])) for j in range(L)]
    betas = [rng.exponential(2.0, size=(1, 1, pre[j][0].shape[1])) for j in range(L)]
    for kw in ({"iters": 1}, {"iters": 1, "alphas": alphas, "betas": betas}, {"iters": 30},
               {"iters": 30, "alphas": alphas, "betas": betas}):
        res = beta_crown(net, lo[None], hi[None], C, cb, pre, splits, **kw)
        assert res.lower[0, 0] <= truth[0] + 1e-9
    # optimising the multipliers does not lose against plain CROWN on the domain
    base = beta_crown(net, lo[None], hi[None], C, cb, pre, splits, iters=1).lower[0, 0]
    assert beta_crown(net, lo[None], hi[None], C, cb, pre, splits, iters=30).lower[0, 0] >= base - 1e-12


@pytest.mark.parametrize("seed", range(8))
def test_fully_split_leaf_lp_gives_a_sound_tight_bound(seed):
    rng = np.random.default_rng(200 + seed)
    net = _net(rng, [2, 6, 6, 2], scale=2.0)
    lo, hi = -np.ones(2), np.ones(2)
    C, cb = rng.normal(size=(1, 2)), np.zeros(1)
    pre, splits = _domain(net, rng, lo, hi, n_split=100)  # every unstable neuron split
    assert all(not np.any((l < 0) & (u > 0)) for l, u in pre)
    lp = leaf_lp(net, lo, hi, C, cb, pre, splits)
    assert lp is not None and lp[0] == "lp"
    _, w, mu, x = lp
    # the minimiser is a point of the domain (up to LP tolerances) and attains the LP value
    t_star = float((C @ net(x[None])[0] + cb).max())
    res = beta_crown(net, lo[None], hi[None], (w @ C)[None], np.array([w @ cb]), pre, splits,
                     betas=[m[None, None, :] for m in mu], iters=1)
    truth = _domain_min(net, lo, hi, splits, C, cb, rng)
    assert res.lower[0, 0] <= truth[0] + 1e-9  # sound
    assert res.lower[0, 0] == pytest.approx(t_star, abs=1e-6)  # the duals close the gap to the LP value
    assert t_star <= truth[0] + 1e-6


@pytest.mark.parametrize("seed", range(10))
def test_empty_domains_are_only_certified_when_empty(seed):
    """Flipping split signs of a fully split domain often empties it: the LP's certificate then holds, and no
    sampled point meets the constraints; for the non-empty domain of a point, no multipliers certify."""
    rng = np.random.default_rng(500 + seed)
    net = _net(rng, [2, 6, 6, 2], scale=2.0)
    lo, hi = -np.ones(2), np.ones(2)
    C, cb = rng.normal(size=(1, 2)), np.zeros(1)
    pre, splits = _domain(net, rng, lo, hi, n_split=100)
    for _ in range(20):  # the domain of a point: any multipliers >= 0 leave a non-negative maximum
        mu = [rng.exponential(1.0, size=s.shape[1]) * (s[0] != 0) for s in splits]
        assert empty_margin(net, lo, hi, pre, splits, mu)[0] >= -1e-12
    flipped = [-s for s in splits]
    root = incremental_crown(net, lo[None], hi[None])
    pre2 = [clamp_to_splits(l, u, s)[:2] for (l, u), s in zip(root, flipped)]
    lp = leaf_lp(net, lo, hi, C, cb, pre2, flipped)
    X = rng.uniform(lo, hi, size=(40000, 2))
    ok = np.ones(len(X), dtype=bool)
    for z, s in zip(_preacts(net, X), flipped):
        ok &= np.all(s[0] * z >= 0, axis=1)
    if lp is not None and lp[0] == "empty":
        top, scale = empty_margin(net, lo, hi, pre2, flipped, lp[1])
        assert top < 0
        assert not ok.any()
    elif lp is not None:
        assert lp[0] == "lp"


def _ibp(net, lo, hi):
    out, l, u = [], lo, hi
    for j, layer in enumerate(net.affine_layers[:-1]):
        W, b = layer.as_matrix(), layer.bias
        c, r = W @ ((l + u) / 2) + b, np.abs(W) @ ((u - l) / 2)
        out.append((c - r - 1e-6, c + r + 1e-6))
        l, u = np.maximum(c - r, 0), np.maximum(c + r, 0)
    return out


def _milp_min(net, lo, hi, c):
    """Exact ``min c·f(x)`` over the box of a ReLU net, by a big-M MILP (independent of the library)."""
    layers = net.affine_layers
    pre = _ibp(net, lo, hi)
    n0 = lo.size
    sizes = [l.shape[0] for l, _ in pre]
    # variables: x, then per layer z (pre), a (post), d (binary)
    off, idx = n0, []
    for n in sizes:
        idx.append((off, off + n, off + 2 * n))
        off += 3 * n
    nv = off
    A, lb_c, ub_c = [], [], []

    def row():
        return np.zeros(nv)

    prev = (0, n0)
    for j, n in enumerate(sizes):
        W, b = layers[j].as_matrix(), layers[j].bias
        zs, as_, ds = idx[j]
        l, u = pre[j]
        for i in range(n):
            r = row()
            r[zs + i] = 1.0
            r[prev[0]:prev[0] + prev[1]] -= W[i]
            A.append(r); lb_c.append(b[i]); ub_c.append(b[i])  # z = W a + b
            r = row(); r[as_ + i] = 1.0; r[zs + i] = -1.0
            A.append(r); lb_c.append(0.0); ub_c.append(np.inf)  # a >= z
            r = row(); r[as_ + i] = 1.0; r[zs + i] = -1.0; r[ds + i] = -l[i]
            A.append(r); lb_c.append(-np.inf); ub_c.append(-l[i])  # a <= z - l (1 - d)
            r = row(); r[as_ + i] = 1.0; r[ds + i] = -max(u[i], 0.0)
            A.append(r); lb_c.append(-np.inf); ub_c.append(0.0)  # a <= u d
        prev = (as_, n)
    W, b = layers[-1].as_matrix(), layers[-1].bias
    cost = np.zeros(nv)
    cost[prev[0]:prev[0] + prev[1]] = c @ W
    lo_v = np.full(nv, -np.inf)
    hi_v = np.full(nv, np.inf)
    lo_v[:n0], hi_v[:n0] = lo, hi
    integ = np.zeros(nv)
    for (zs, as_, ds), n in zip(idx, sizes):
        lo_v[as_:as_ + n] = 0.0
        lo_v[ds:ds + n], hi_v[ds:ds + n] = 0.0, 1.0
        integ[ds:ds + n] = 1
    res = milp(cost, constraints=LinearConstraint(np.array(A), lb_c, ub_c), integrality=integ,
               bounds=LPBounds(lo_v, hi_v), options={"mip_rel_gap": 1e-9})
    assert res.status == 0
    return float(res.fun + c @ b)


def milp_instance(rng, n_in: int):
    """A random 16x16 ReLU net on ``n_in`` inputs, a box of radius 0.15, the row ``c = e_0 - e_1``, the MILP minimum
    of ``c·f`` on the box and ``c·f`` at 4000 sampled points."""
    net = _net(rng, [n_in, 16, 16, 3], scale=1.5)
    x0 = rng.uniform(-1, 1, size=n_in)
    lo, hi = x0 - 0.15, x0 + 0.15
    c = np.array([1.0, -1.0, 0.0])
    return net, lo, hi, c, _milp_min(net, lo, hi, c), net(rng.uniform(lo, hi, size=(4000, n_in))) @ c


@pytest.mark.parametrize("seed", range(5))
def test_bab_verdicts_equal_milp_truth(seed):
    rng = np.random.default_rng(300 + seed)
    net, lo, hi, c, m, samples = milp_instance(rng, int(rng.integers(20, 41)))
    assert m <= samples.min() + 1e-7
    gap = 0.02 * (samples.max() - m)
    for b, want in ((m - gap, "holds"), (m + gap, "violated")):
        # unsafe: c·f(x) <= b
        res = verify(net, box_property(lo, hi, c[None], [b]), timeout=60)
        assert res.method == "bab"
        assert res.status == want, (seed, b, m, res)
        if want == "violated":
            assert float(c @ net(res.counterexample[None])[0]) <= b


def test_bab_proves_what_root_bounds_cannot():
    """Cases where CROWN on the whole box does not refute the property but the split search proves it."""
    searched = 0
    for seed in range(4):
        rng = np.random.default_rng(400 + seed)
        net = _net(rng, [24, 16, 16, 2], scale=1.5)
        x0 = rng.uniform(-1, 1, size=24)
        lo, hi = x0 - 0.25, x0 + 0.25
        c = np.array([1.0, -1.0])
        b = _milp_min(net, lo, hi, c) - 1e-3
        root = spec_bounds(net, lo[None], hi[None], c[None], np.array([-b])).lower[0, 0]  # of c·f(x) - b
        res = verify(net, box_property(lo, hi, c[None], [b]), timeout=60)
        assert res.status == "holds"
        if root <= 0:
            assert res.details["domains"] > 0
            searched += 1
    assert searched >= 2


def _small_cnn(rng):
    from verification.layers.conv import Conv2d, avg_pool2d

    c1 = Conv2d(rng.normal(size=(3, 1, 3, 3)) / 2, rng.normal(size=3) * 0.1, (1, 6, 6), 1, 1, 1, (1, 1, 1, 1))
    pool = avg_pool2d(c1.output_shape, 2)
    c2 = Conv2d(rng.normal(size=(4, 3, 2, 2)) / 2, rng.normal(size=4) * 0.1, pool.output_shape, 1, 1, 1, (0, 1, 0, 1))
    head = Dense(rng.normal(size=(3, c2.out_features)) / 4, rng.normal(size=3) * 0.1)
    return Network((c1, ReLU(), pool, c2, ReLU(), head))


@pytest.mark.parametrize("seed", range(3))
def test_bab_on_convolutions_equals_milp_truth_and_the_dense_lowering(seed):
    """The engine runs on the convolutional IR without densifying; verdicts equal the MILP truth and those of
    the same net lowered to dense matrices."""
    rng = np.random.default_rng(600 + seed)
    net = _small_cnn(rng)
    canon = net.canonical()
    dense = Network(tuple(Dense(l.as_matrix(), l.bias) if hasattr(l, "as_matrix") else l for l in canon.layers))
    x0 = rng.uniform(0, 1, size=net.in_dim)
    lo, hi = x0 - 0.08, x0 + 0.08
    c = np.array([1.0, -1.0, 0.0])
    m = _milp_min(dense, lo, hi, c)
    gap = 0.05 * abs(m) + 1e-3
    for b, want in ((m - gap, "holds"), (m + gap, "violated")):
        prop = box_property(lo, hi, c[None], [b])
        res = verify(net, prop, timeout=60)
        assert res.method == "bab" and res.status == want, (seed, b, m, res)
        assert verify(dense, prop, timeout=60).status == want


def test_bab_on_an_affine_network_is_one_exact_leaf():
    """No activation at all: the LP leaf decides it on both sides of the exact minimum."""
    rng = np.random.default_rng(9)
    W, b = rng.normal(size=(2, 20)), rng.normal(size=2)
    net = Network((Dense(W, b),))
    lo, hi = -np.ones(20), np.ones(20)
    c = np.array([1.0, -1.0])
    m = c @ b - np.abs(c @ W).sum()  # the exact minimum of c·f over the box
    assert verify(net, box_property(lo, hi, c[None], [m - 1e-6]), method="bab").status == "holds"
    res = verify(net, box_property(lo, hi, c[None], [m + 1e-6]), method="bab")
    assert res.status == "violated" and float(c @ net(res.counterexample[None])[0]) <= m + 1e-6
