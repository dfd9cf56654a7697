"""SiLU, the activation added through ``verification/activations`` alone: its constants recomputed at 60
digits, sampled soundness of every bound it gives (interval, linear relaxation, derivative range, slope
bounds) on random boxes (wide, tiny, around the minimum and the inflection points, far in both tails), and
the toolkit (IBP/CROWN, Lipschitz methods, local Lipschitz, verify, loaders) on SiLU networks.

Sampled values are float64 evaluations; the bounds are built to contain both the exact values and these
(their rounding may cross an exact extreme).  A few points per box are also checked against 60-digit values.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verification import lipschitz, local_lipschitz, output_bounds, verify
from verification.activations import SiLU, from_spec, parse_activation
from verification.activations import silu as silu_mod
from verification.network import Dense, Network
from verification.vnnlib import box_property

mp = pytest.importorskip("mpmath")
mp.mp.dps = 60

SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
ACT = SiLU()
SPECIAL = [-1.278464542761074, -2.3993572805154675, 2.3993572805154675, 0.0, -40.0, 40.0, -745.0, 700.0]


def _f(z):
    return mp.mpf(z) / (1 + mp.exp(-mp.mpf(z)))


def _df(z):
    z = mp.mpf(z)
    s = 1 / (1 + mp.exp(-z))
    return s * (1 + z * (1 - s))


@st.composite
def boxes(draw, n: int = 8):
    """``n`` boxes with centres near the special points, moderate, or far out, widths from 1e-12 to 1e3."""
    rows = []
    for _ in range(n):
        kind = draw(st.sampled_from(["special", "moderate", "far"]))
        if kind == "special":
            c = draw(st.sampled_from(SPECIAL)) + draw(st.floats(-1e-6, 1e-6))
        elif kind == "moderate":
            c = draw(st.floats(-8, 8))
        else:
            c = draw(st.floats(-1e4, 1e4))
        w = 10.0 ** draw(st.floats(-12, 3))
        t = draw(st.floats(0, 1))
        rows.append((c - t * w, c + (1 - t) * w))
    arr = np.array(rows)
    return arr[:, 0], arr[:, 1]


def _samples(l, u, rng, m: int = 400):
    z = l + (u - l) * rng.random((m, l.size))
    return np.vstack([z, l, u, np.clip(silu_mod.Z_MIN[0], l, u), np.clip(silu_mod.C[0], l, u), np.clip(-silu_mod.C[0], l, u)])


def test_constants_enclose_the_60_digit_values():
    zs = mp.findroot(lambda z: 1 + z * (1 - 1 / (1 + mp.exp(-z))), -1.3)
    c = mp.findroot(lambda z: z * mp.tanh(z / 2) - 2, 2.4)
    assert silu_mod.Z_MIN[0] <= zs <= silu_mod.Z_MIN[1]
    assert silu_mod.C[0] <= c <= silu_mod.C[1]
    assert silu_mod.PHI_MIN <= _f(zs) and _f(zs) - silu_mod.PHI_MIN < 1e-14
    assert silu_mod.D_MIN <= _df(-c) and _df(-c) - silu_mod.D_MIN < 1e-14
    assert silu_mod.D_MAX >= _df(c) and silu_mod.D_MAX - _df(c) < 1e-14
    # phi'' changes sign exactly once on each side: concave, convex, concave
    d2 = lambda z: mp.diff(_f, z, 2)  # noqa: E731
    assert d2(-3) < 0 and d2(-silu_mod.C[1]) < 0 < d2(-silu_mod.C[0]) and d2(silu_mod.C[0]) > 0 > d2(silu_mod.C[1])
    assert ACT.slope_bounds() == (silu_mod.D_MIN, silu_mod.D_MAX) and ACT.lipschitz() == silu_mod.D_MAX


def test_facts_and_names():
    assert not ACT.monotone and not ACT.is_piecewise_linear and ACT.two_piece_slope is None
    assert ACT.group_size == 1 and not ACT.pair_form and ACT.qc_basis() is None
    assert parse_activation(" SiLU ") == ACT and from_spec(ACT.to_spec()) == ACT and ACT.describe() == "silu"
    z = np.array([[-800.0, -40.0, -1.0, 0.0, 1.0, 40.0, 800.0]])
    np.testing.assert_allclose(ACT(z), [[-0.0, -40 / (1 + np.exp(40)), -1 / (1 + np.e), 0, 1 / (1 + np.exp(-1)), 40, 800]],
                               rtol=1e-15, atol=0)
    # the derivative is accurate in both tails (no cancellation): compare with 60 digits
    for v in [-700.0, -60.0, -1e-8, 3.0, 35.0, 700.0]:
        assert abs(ACT.derivative(np.array([v]))[0] - float(_df(v))) <= 2e-15 * abs(float(_df(v)))
    assert abs(ACT.derivative(np.array([-1.2784645427610738]))[0] - float(_df(-1.2784645427610738))) <= 1e-15


@settings(max_examples=150, **SETTINGS)
@given(box=boxes(), seed=st.integers(0, 2**32 - 1))
def test_interval_relaxation_and_derivative_bounds_are_sound(box, seed):
    l, u = box
    rng = np.random.default_rng(seed)
    z = _samples(l, u, rng)
    f, d = ACT(z), ACT.derivative(z)
    lo, hi = ACT.interval(l, u)
    assert np.all(lo <= f) and np.all(f <= hi)
    inside = (l <= -1.2784645427610738) & (u >= -1.278464542761074)
    assert np.all(lo[inside] <= silu_mod.PHI_MIN * (1 - 1e-15))  # the minimum is reached: lo is at most it
    ls, lb, us, ub = ACT.linear_relaxation(l, u)
    assert np.all(ls * z + lb <= f) and np.all(f <= us * z + ub)
    dl, du = ACT.derivative_bounds(l, u)
    assert np.all(dl <= d) and np.all(d <= du)
    # a few points against 60-digit values (the lines evaluated exactly as well)
    for i, j in zip(rng.integers(0, z.shape[0], 6), rng.integers(0, l.size, 6)):
        zi = z[i, j]
        fz = _f(zi)
        assert mp.mpf(lo[j]) <= fz <= mp.mpf(hi[j])
        assert mp.mpf(ls[j]) * mp.mpf(zi) + mp.mpf(lb[j]) <= fz <= mp.mpf(us[j]) * mp.mpf(zi) + mp.mpf(ub[j])
        assert mp.mpf(dl[j]) <= _df(zi) <= mp.mpf(du[j])


@settings(max_examples=60, **SETTINGS)
@given(box=boxes(), seed=st.integers(0, 2**32 - 1))
def test_difference_quotients_lie_in_the_slope_bounds(box, seed):
    l, u = box
    rng = np.random.default_rng(seed)
    a, b = _samples(l, u, rng, 200), _samples(l, u, rng, 200)
    keep = np.abs(a - b) > 1e-6 * (1 + np.abs(a))  # quotients of float values are meaningful there
    q = ((ACT(a) - ACT(b)) / np.where(keep, a - b, 1.0))[keep]
    alpha, beta = ACT.slope_bounds()
    assert np.all(q >= alpha - 1e-9) and np.all(q <= beta + 1e-9)


def test_relaxation_is_tight_on_moderate_boxes():
    """Not only sound: on a box the lines are the chord-parallel support lines (gap = exact spread)."""
    l, u = np.array([-5.0, -1.5, 0.5, 3.0]), np.array([5.0, -1.0, 0.6, 4.0])
    ls, lb, us, ub = ACT.linear_relaxation(l, u)
    z = np.linspace(l, u, 20001)
    g = ACT(z) - ls * z
    assert np.all(lb <= g.min(0)) and np.all(ub >= g.max(0))
    np.testing.assert_allclose(lb, g.min(0), atol=1e-6)
    np.testing.assert_allclose(ub, g.max(0), atol=1e-6)


def _silu_net(rng, widths=(3, 10, 8, 2)):
    layers = []
    for k in range(len(widths) - 1):
        layers.append(Dense(rng.normal(size=(widths[k + 1], widths[k])), rng.normal(size=widths[k + 1])))
        if k < len(widths) - 2:
            layers.append(SiLU())
    return Network(tuple(layers))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_toolkit_on_a_silu_network(seed):
    rng = np.random.default_rng(seed)
    net = _silu_net(rng)
    lo, hi = -np.ones(3), np.ones(3)
    x = lo + (hi - lo) * rng.random((20000, 3))
    y = net(x)
    widths = {}
    for method in ("ibp", "crown", "alpha-crown"):
        b = output_bounds(net, lo, hi, method=method)
        assert np.all(b.lower <= y.min(0)) and np.all(y.max(0) <= b.upper)
        widths[method] = (b.upper - b.lower).sum()
    assert widths["crown"] <= widths["ibp"] + 1e-9
    # global Lipschitz: certified >= sampled quotients
    a, c = rng.normal(size=(4000, 3)) * 3, rng.normal(size=(4000, 3)) * 3
    q2 = (np.linalg.norm(net(a) - net(c), axis=1) / np.linalg.norm(a - c, axis=1)).max()
    qi = (np.abs(net(a) - net(c)).max(1) / np.abs(a - c).max(1)).max()
    naive = lipschitz(net, "naive")
    sdp = lipschitz(net, "lipsdp-neuron")
    assert naive.certified and sdp.certified
    assert q2 <= sdp.value <= naive.value * (1 + 1e-9)
    assert qi <= lipschitz(net, "naive", norm="inf").value
    # local Lipschitz (l-inf -> l-inf) on a box: >= the largest sampled Jacobian row norm
    r = local_lipschitz(net, np.zeros(3), 0.5)
    xs = rng.uniform(-0.5, 0.5, size=(5000, 3))
    assert np.abs(net.jacobian(xs)).sum(2).max() <= r.value
    assert r.lower <= r.value


@pytest.mark.parametrize("seed", [0, 1])
def test_verify_on_a_silu_network_agrees_with_sampling(seed):
    rng = np.random.default_rng(seed)
    net = _silu_net(rng, (2, 6, 1))
    lo, hi = -np.ones(2), np.ones(2)
    x = lo + (hi - lo) * rng.random((40000, 2))
    ymin = net(x)[:, 0].min()
    for t, sampled_violation in [(ymin + 0.1, True), (ymin - 1.0, False), (ymin - 1e-6, False)]:
        res = verify(net, box_property(lo, hi, [[1.0]], [t]), timeout=30, n_samples=200, pgd_steps=5, pgd_starts=4)
        assert res.status in ("holds", "violated", "unknown")
        if sampled_violation:
            assert res.status != "holds"
        if res.status == "violated":
            cx = res.counterexample
            assert np.all(lo <= cx) and np.all(cx <= hi) and net(cx)[0] <= t
    # far below the minimum the bounds prove it
    assert verify(net, box_property(lo, hi, [[1.0]], [ymin - 100.0]), timeout=30).status == "holds"


def test_torch_silu_module_and_its_onnx_export_load_as_silu(tmp_path):
    torch = pytest.importorskip("torch")
    import warnings

    from verification.errors import UnsupportedLayerError
    from verification.io import load_network, save_network

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.SiLU(), torch.nn.Linear(5, 2)).double().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(model), str(tmp_path / "m.pt"))
        torch.jit.save(torch.jit.trace(model, torch.zeros(1, 3, dtype=torch.float64)), str(tmp_path / "t.pt"))
    x = np.random.default_rng(0).normal(size=(50, 3))
    ref = model(torch.tensor(x)).detach().numpy()
    for name in ("m.pt", "t.pt"):
        net = load_network(tmp_path / name)
        assert net.activations == [SiLU()]
        np.testing.assert_allclose(net(x), ref, rtol=1e-13, atol=1e-13)
    save_network(net, tmp_path / "m.npz")
    assert load_network(tmp_path / "m.npz").activations == [SiLU()]
    # the ONNX exporter writes SiLU as Mul(x, Sigmoid(x)): read as one SiLU; a product of two other data
    # tensors is still refused, never mis-read
    pytest.importorskip("onnx")
    from .onnx_builders import export_onnx

    export_onnx(model, tmp_path / "m.onnx", torch.zeros(1, 3, dtype=torch.float64))
    net = load_network(tmp_path / "m.onnx")
    assert net.activations == [SiLU()]
    np.testing.assert_allclose(net(x), ref, rtol=1e-12, atol=1e-12)

    class Product(torch.nn.Module):
        def forward(self, v):
            return torch.sigmoid(v) * torch.tanh(v)

    export_onnx(torch.nn.Sequential(torch.nn.Linear(3, 2), Product()).double(), tmp_path / "p.onnx",
                torch.zeros(1, 3, dtype=torch.float64))
    with pytest.raises(UnsupportedLayerError, match="Mul.*combines data tensors"):
        load_network(tmp_path / "p.onnx")
