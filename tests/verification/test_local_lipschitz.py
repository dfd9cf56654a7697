"""Local Lipschitz constants by Jacobian bound propagation (Shi et al. 2022) and branch-and-bound."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.optimize import linprog

from verification.activations import GroupSort, Householder, LeakyReLU, ReLU, Sigmoid, Tanh
from verification.bounds import local_lipschitz
from verification.errors import InvalidParameterError, UnsupportedLayerError
from verification.lipschitz import lipschitz
from verification.network import Dense, Network


def random_net(widths, act, seed, scale=1.0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    layers = []
    for i in range(len(widths) - 1):
        w = (scale * rng.normal(size=(widths[i + 1], widths[i])) / np.sqrt(widths[i])).astype(dtype)
        layers.append(Dense(w, (0.5 * rng.normal(size=widths[i + 1])).astype(dtype)))
        if i < len(widths) - 2:
            layers.append(act)
    return Network(layers)


def exact_local_one_hidden(net: Network, lo, hi) -> np.ndarray:
    """Exact l-inf local constant of every output for one hidden ReLU/leaky layer: enumerate the sign
    patterns of the neurons that are unstable on the box, keep those whose region meets the box interior
    (LP with a margin variable; depth-first, pruning infeasible prefixes), take max ||W1_k D W0||_1
    (reference notes §4.1 item 5)."""
    w0, b0 = net.dense_layers[0].weight, net.dense_layers[0].bias
    w1 = net.dense_layers[1].weight
    a = getattr(net.activations[0], "negative_slope", 0.0)
    mid, rad = (lo + hi) / 2, (hi - lo) / 2
    zc, zr = w0 @ mid + b0, np.abs(w0) @ rad
    unstable = np.nonzero((zc - zr < 0) & (zc + zr > 0))[0]
    base = np.where(zc - zr >= 0, 1.0, a)
    n = lo.size
    best = np.full(w1.shape[0], -np.inf)

    def margin(signs):
        rows = w0[unstable[: len(signs)]]
        s = np.array(signs)
        norms = np.linalg.norm(rows, axis=1)
        a_ub = np.vstack([np.hstack([-s[:, None] * rows, norms[:, None]]),
                          np.hstack([-np.eye(n), np.ones((n, 1))]), np.hstack([np.eye(n), np.ones((n, 1))])])
        b_ub = np.r_[s * b0[unstable[: len(signs)]], -lo, hi]
        res = linprog(np.r_[np.zeros(n), -1.0], A_ub=a_ub, b_ub=b_ub,
                      bounds=[(None, None)] * n + [(None, 1.0)], method="highs")
        return res.x[-1] if res.status == 0 else -np.inf

    def visit(signs):
        nonlocal best
        if signs and margin(signs) <= 1e-9:
            return
        if len(signs) == unstable.size:
            d = base.copy()
            d[unstable] = np.where(np.array(signs) > 0, 1.0, a)
            best = np.maximum(best, np.abs((w1 * d) @ w0).sum(1))
            return
        visit(signs + [-1.0])
        visit(signs + [1.0])

    visit([])
    return best


CASES = [(seed, act) for seed in range(4) for act in (ReLU(), LeakyReLU(0.1))]


@pytest.mark.parametrize("seed,act", CASES, ids=[f"{a.describe()}-{s}" for s, a in CASES])
def test_one_hidden_layer_bound_and_bab_reach_exact(seed, act):
    rng = np.random.default_rng(100 + seed)
    n0, h = 3, [8, 10, 12, 12][seed]
    net = Network([Dense(rng.normal(size=(h, n0)), rng.normal(size=h)), act, Dense(rng.normal(size=(2, h)))])
    x0, eps = rng.normal(size=n0), 0.8
    exacts = exact_local_one_hidden(net, x0 - eps, x0 + eps)
    for k in range(2):
        exact = exacts[k]
        plain = local_lipschitz(net, x0, eps, output=k)
        assert plain.value >= exact - 1e-9
        assert plain.lower <= exact + 1e-9
        bab = local_lipschitz(net, x0, eps, output=k, bab=True, timeout=30)
        assert bab.converged
        assert abs(bab.value - exact) <= 1e-6
        assert abs(bab.lower - exact) <= 1e-6


def test_bound_is_exact_when_no_neuron_is_unstable():
    net = random_net([4, 10, 3], ReLU(), seed=1)
    x0 = np.random.default_rng(0).normal(size=4)
    res = local_lipschitz(net, x0, 1e-6)
    jac = net.jacobian(x0)
    assert res.details["unstable"] == [0]
    assert np.allclose(res.per_output, np.abs(jac).sum(1), rtol=1e-12)
    assert res.converged and res.value == pytest.approx(np.abs(jac).sum(1).max(), rel=1e-12)


@pytest.mark.parametrize("act", [ReLU(), LeakyReLU(0.2), Tanh(), Sigmoid(), GroupSort(2)], ids=lambda a: a.describe())
def test_local_between_sampled_and_global_naive(act):
    net = random_net([4, 12, 12, 3], act, seed=2, scale=1.5)
    x0 = np.random.default_rng(3).normal(size=4)
    naive = [lipschitz(net, method="naive", norm="inf", output=k).value for k in range(3)]
    bounds = {}
    for relax in ("crown", "recurjac", "ibp"):
        res = local_lipschitz(net, x0, 0.3, relaxation=relax, n_samples=300)
        assert res.certified
        assert np.all(np.array(res.per_output) >= np.array(res.per_output_lower) - 1e-9)
        assert np.all(np.array(res.per_output) <= np.array(naive) * (1 + 1e-9))
        bounds[relax] = np.array(res.per_output)
    # the paper's relaxation is never looser than the RecurJac-style one, which is never looser than IBP
    assert np.all(bounds["crown"] <= bounds["recurjac"] + 1e-9)
    assert np.all(bounds["recurjac"] <= bounds["ibp"] + 1e-9)


@pytest.mark.parametrize("act", [ReLU(), Tanh()], ids=lambda a: a.describe())
def test_non_decreasing_in_eps(act):
    net = random_net([3, 10, 10, 2], act, seed=4, scale=1.5)
    x0 = np.random.default_rng(5).normal(size=3)
    vals = [local_lipschitz(net, x0, eps, n_samples=100).value for eps in (0.0, 0.01, 0.05, 0.2, 0.5, 1.0, 3.0)]
    assert all(b >= a - 1e-12 for a, b in zip(vals, vals[1:]))
    assert vals[-1] <= lipschitz(net, method="naive", norm="inf").value * (1 + 1e-9)


def test_deep_relu_bab_improves_and_stays_above_lower():
    net = random_net([4, 10, 10, 2], ReLU(), seed=6, scale=1.5)
    x0 = np.zeros(4)
    plain = local_lipschitz(net, x0, 0.5)
    bab = local_lipschitz(net, x0, 0.5, bab=True, timeout=3)
    assert bab.value <= plain.value + 1e-12
    assert bab.lower <= bab.value + 1e-9 and bab.lower >= plain.lower - 1e-12
    assert np.all(np.array(bab.per_output) >= np.array(bab.per_output_lower) - 1e-9)


def test_deterministic_float64_and_float32_converted():
    net32 = random_net([5, 8, 8, 3], ReLU(), seed=7, dtype=np.float32)
    net64 = Network([Dense(l.weight.astype(np.float64), l.bias.astype(np.float64)) if isinstance(l, Dense) else l
                     for l in net32.layers])
    x0 = np.full(5, 0.25, dtype=np.float32)
    a = local_lipschitz(net32, x0, 0.5)
    b = local_lipschitz(net64, x0.astype(np.float64), 0.5)
    c = local_lipschitz(net64, x0.astype(np.float64), 0.5)
    assert isinstance(a.value, float)
    assert a.per_output == b.per_output == c.per_output
    assert a.per_output_lower == b.per_output_lower == c.per_output_lower



def _simple_mlp_3layer(act) -> Network:
    """Shi et al.'s ``simple_mlp_3layer`` (16-16-16-10, torch.manual_seed(0) init) with activation ``act``."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16), torch.nn.ReLU(),
                                torch.nn.Linear(16, 10))
    lin = [m for m in model if isinstance(m, torch.nn.Linear)]
    layers = []
    for i, m in enumerate(lin):
        layers.append(Dense(m.weight.detach().numpy(), m.bias.detach().numpy()))
        if i < 2:
            layers.append(act())
    return Network(layers)

def test_matches_auto_lirpa_on_simple_mlp_3layer():
    """Shi et al.'s ``simple_mlp_3layer`` (16-16-16-10 ReLU, torch.manual_seed(0) init), centre 0.5·1, max over
    the 10 classes: auto_LiRPA HEAD gives 1.0563 (eps 0.1) and 3.9620 (eps 0.5), reference notes §3.3 [RUN]."""
    net = _simple_mlp_3layer(ReLU)
    assert local_lipschitz(net, np.full(16, 0.5), 0.1, n_samples=100).value == pytest.approx(1.0563, abs=1e-4)
    assert local_lipschitz(net, np.full(16, 0.5), 0.5, n_samples=100).value == pytest.approx(3.9620, abs=1e-4)
    rj = local_lipschitz(net, np.full(16, 0.5), 0.5, relaxation="recurjac", n_samples=100).value
    assert rj == pytest.approx(6.0793, abs=1e-4)  # Shi et al.'s recurjac option, §3.3
    # ReLU layers have no derivative lines: the input-tied bound is skipped
    assert local_lipschitz(net, np.full(16, 0.5), 0.1, n_samples=10).details["coupled_upper"] is None


def test_output_vector_and_result_json():
    net = random_net([3, 6, 3], ReLU(), seed=8)
    c = np.array([1.0, -1.0, 0.0])
    res = local_lipschitz(net, np.zeros(3), 0.2, output=c)
    d = json.loads(res.to_json())
    assert d["output"] == [1.0, -1.0, 0.0] and len(d["per_output"]) == 1
    assert "certified upper bound" in str(res)


def test_domain_clipping_shrinks_box():
    net = random_net([2, 8, 8, 1], ReLU(), seed=9, scale=2.0)
    full = local_lipschitz(net, np.zeros(2), 1.0)
    clipped = local_lipschitz(net, np.zeros(2), 1.0, domain=(np.zeros(2), np.ones(2)))
    assert np.allclose(clipped.details["box_lower"], 0.0)
    assert clipped.value <= full.value + 1e-12


def test_invalid_inputs():
    net = random_net([2, 4, 1], ReLU(), seed=0)
    with pytest.raises(InvalidParameterError, match="'eps' parameter of local_lipschitz"):
        local_lipschitz(net, np.zeros(2), -1.0)
    with pytest.raises(InvalidParameterError, match="'norm'"):
        local_lipschitz(net, np.zeros(2), 0.1, norm=2)
    with pytest.raises(InvalidParameterError, match="'center'"):
        local_lipschitz(net, np.zeros(3), 0.1)
    with pytest.raises(InvalidParameterError, match="'relaxation'"):
        local_lipschitz(net, np.zeros(2), 0.1, relaxation="lipsdp")
    hh = Network([Dense(np.eye(2)), Householder(np.array([0.6, 0.8])), Dense(np.ones((1, 2)))])
    with pytest.raises(UnsupportedLayerError):
        local_lipschitz(hh, np.zeros(2), 0.1)
    gs = Network([Dense(np.eye(4)), GroupSort(4), Dense(np.ones((1, 4)))])
    with pytest.raises(UnsupportedLayerError):
        local_lipschitz(gs, np.zeros(4), 0.1)


def test_cli_local_lipschitz(tmp_path, capsys):
    from verification.cli import main
    from verification.io import save_network

    net = random_net([3, 6, 2], ReLU(), seed=10)
    path = tmp_path / "net.npz"
    save_network(net, path)
    assert main(["local-lipschitz", str(path), "--center", "0.1,0.2,0.3", "--eps", "0.2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    ref = local_lipschitz(net, np.array([0.1, 0.2, 0.3]), 0.2)
    assert out["value"] == pytest.approx(ref.value, rel=1e-12)
    np.save(tmp_path / "c.npy", np.array([0.1, 0.2, 0.3]))
    assert main(["local-lipschitz", str(path), "--center", str(tmp_path / "c.npy"), "--eps", "0.2", "--bab",
                 "--timeout", "2"]) == 0
    assert "local Lipschitz (crown+bab" in capsys.readouterr().out
    assert main(["local-lipschitz", str(path), "--center", "1,2", "--eps", "0.2"]) == 2


def test_affine_network_is_exact():
    w = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
    net = Network([Dense(w, np.zeros(2))])
    res = local_lipschitz(net, np.zeros(3), 0.3)
    # exact up to the float64 rounding allowance, never below the exact row sums
    assert res.per_output == pytest.approx((3.5, 4.0), rel=1e-13) and res.converged
    assert res.per_output[0] >= 3.5 and res.per_output[1] >= 4.0


# --- derivatives tied to the input (verification.bounds.jacobian_coupled) -----------------------------------


def _attained_lower(net: Network, lo, hi, k: int, seed: int) -> float:
    """Largest ``||J_k(x)||_1`` found on the box: dense random points, vertices, then projected ascent of
    ``s · J_k(x)`` (``s`` the sign pattern at the iterate, central-difference gradient) from the best ones.
    Every value is a gradient norm at a point of the box, hence a lower bound of the local constant."""
    rng = np.random.default_rng(seed)
    n = lo.size
    pts = lo + (hi - lo) * rng.random((400, n))
    verts = lo + (hi - lo) * ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1)
    pts = np.concatenate([pts, verts])
    vals = np.abs(net.jacobian(pts)[:, k]).sum(-1)
    best = vals.max()
    x = pts[np.argsort(-vals)[:3]]  # (3, n) starts
    h = 1e-6 * (1 + np.abs(hi - lo).max())
    offsets = np.concatenate([np.zeros((1, n)), h * np.eye(n), -h * np.eye(n)])  # (1 + 2n, n)
    step = 0.3 * (hi - lo)
    for _ in range(40):
        jac = net.jacobian((x[:, None, :] + offsets[None]).reshape(-1, n))[:, k].reshape(3, 1 + 2 * n, n)
        s = np.sign(jac[:, :1])  # sign pattern at each iterate
        f = (s * jac).sum(-1)  # (3, 1 + 2n)
        grad = (f[:, 1:n + 1] - f[:, n + 1:]) / (2 * h)
        x = np.clip(x + step * np.sign(grad), lo, hi)
        best = max(best, np.abs(net.jacobian(x)[:, k]).sum(-1).max())
        step = step * 0.85
    return float(best)


SMOOTH_CASES = [(seed, act, eps) for seed in range(3) for act in (Tanh(), Sigmoid()) for eps in (0.05, 0.4)]


@pytest.mark.parametrize("seed,act,eps", SMOOTH_CASES, ids=[f"{a.describe()}-{s}-{e}" for s, a, e in SMOOTH_CASES])
def test_coupled_bound_is_sound_on_smooth_nets(seed, act, eps):
    """The input-tied bound of every output is >= the largest gradient norm found on the box (dense sampling
    and gradient ascent), and the reported value is the smaller of the two sound bounds."""
    net = random_net([3, 8, 8, 2], act, seed=20 + seed, scale=2.0)
    x0 = np.random.default_rng(30 + seed).normal(size=3)
    res = local_lipschitz(net, x0, eps, n_samples=200)
    coupled = np.asarray(res.details["coupled_upper"])
    indep = np.asarray(res.details["independent_upper"])
    allow = np.asarray(res.details["rounding_allowance"])  # float64 rounding, tiny next to the bound
    assert np.all(allow > 0) and np.all(allow < 1e-10 * np.minimum(coupled, indep))
    assert np.all(np.array(res.per_output) == np.nextafter(np.minimum(coupled, indep) + allow, np.inf))
    for k in range(2):
        low = _attained_lower(net, x0 - eps, x0 + eps, k, seed)
        assert coupled[k] >= low * (1 - 1e-12)
        assert res.per_output[k] >= low * (1 - 1e-12)


def test_coupled_bound_mixed_activations_sound():
    """A tanh layer followed by a ReLU layer (constant derivative lines for the ReLU) and by a sigmoid layer."""
    rng = np.random.default_rng(40)
    net = Network([Dense(rng.normal(size=(8, 3)), rng.normal(size=8)), Tanh(), Dense(rng.normal(size=(8, 8)) / 2),
                   ReLU(), Dense(rng.normal(size=(6, 8)) / 2, rng.normal(size=6)), Sigmoid(), Dense(rng.normal(size=(2, 6)))])
    x0 = rng.normal(size=3)
    for eps in (0.02, 0.3):
        res = local_lipschitz(net, x0, eps, n_samples=200)
        coupled = np.asarray(res.details["coupled_upper"])
        for k in range(2):
            assert coupled[k] >= _attained_lower(net, x0 - eps, x0 + eps, k, 1) * (1 - 1e-12)


@pytest.mark.parametrize("act", [Tanh(), Sigmoid()], ids=lambda a: a.describe())
def test_coupled_bound_improves_at_small_radius_and_is_exact_in_the_limit(act):
    """Where derivatives vary little, tying them to the input beats independent ranges; as eps -> 0 the bound
    tends to the gradient norm at the centre."""
    net = random_net([4, 12, 12, 3], act, seed=2, scale=1.5)
    x0 = np.random.default_rng(3).normal(size=4)
    res = local_lipschitz(net, x0, 0.02, n_samples=100)
    coupled = np.asarray(res.details["coupled_upper"])
    indep = np.asarray(res.details["independent_upper"])
    assert np.all(coupled < indep)
    assert res.value <= indep.max()
    tiny = local_lipschitz(net, x0, 1e-7, n_samples=10)
    exact = np.abs(net.jacobian(x0)).sum(1)
    assert np.all(np.asarray(tiny.details["coupled_upper"]) >= exact * (1 - 1e-12))
    assert np.allclose(tiny.details["coupled_upper"], exact, rtol=1e-5)


@pytest.mark.parametrize("act", [Tanh(), Sigmoid()], ids=lambda a: a.describe())
def test_derivative_relaxation_sound_on_dense_grid(act):
    rng = np.random.default_rng(50)
    centre = rng.normal(size=300) * 3
    width = np.abs(rng.normal(size=300)) * rng.choice([1e-7, 1e-2, 0.3, 3.0], size=300)
    l, u = centre - width, centre + width
    ls, lb, us, ub = act.derivative_relaxation(l, u)
    z = l[:, None] + (u - l)[:, None] * np.linspace(0, 1, 501)[None, :]
    d = act.derivative(z)
    assert np.all(ls[:, None] * z + lb[:, None] <= d)
    assert np.all(d <= us[:, None] * z + ub[:, None])
    h = 1e-6
    assert np.allclose(act.second_derivative(centre), (act.derivative(centre + h) - act.derivative(centre - h)) / (2 * h),
                       atol=1e-8)


def test_tanh_benchmark_net_at_most_auto_lirpa():
    """The tanh version of ``simple_mlp_3layer`` (torch.manual_seed(0) init), centre 0.5·1: auto_LiRPA 0.7.1
    gives 1.0142 (eps 0.1), 2.6511 (0.5), 6.8805 (2.0) (benchmarks/local_lipschitz.py); the independent-range
    relaxation alone 1.0694 / 1.9616 / 3.6154 (the values before the input-tied bound)."""
    net = _simple_mlp_3layer(Tanh)
    res = [local_lipschitz(net, np.full(16, 0.5), eps, n_samples=100) for eps in (0.1, 0.5, 2.0)]
    assert [max(r.details["independent_upper"]) for r in res] == pytest.approx([1.0694, 1.9616, 3.6154], abs=1e-4)
    assert res[0].value <= 1.0142
    assert [r.value for r in res] == pytest.approx([0.9990, 1.8026, 3.5510], abs=1e-4)
