"""lipsdp-conv: LipSDP-Neuron with channel-wise multipliers on convolutions, per frequency, certified.

Checked against independent computations: the big-grid network against the convolution layers, the symbols
against an FFT of the big-grid convolution, the bound against sampled lower bounds, the naive product, dense
LipSDP-Neuron, and (circular padding) dense LipSDP with channel-tied multipliers solved by cvxpy.
"""

from __future__ import annotations

import numpy as np
import pytest

from verification import Network, lipschitz
from verification.activations import ReLU
from verification.layers import Conv2d, Dense
from verification.lipschitz.conv_sdp import conv_chain
from verification.lipschitz.registry import auto_candidates, available_methods
from verification.lipschitz.sdp.conv_frequency import (axis_plans, big_grid_forward, build_frequency_lmi,
                                                       certify_frequency_lmi, solve_barrier)

P1 = (1, 1, 1, 1)


def _cnn(seed, shape, c1, c2, stride, mode="zeros", head=True, pads=P1):
    rng = np.random.default_rng(seed)
    a = Conv2d(rng.normal(size=(c1, shape[0], 3, 3)) / np.sqrt(9 * shape[0]), rng.normal(size=c1), shape,
               stride=stride, pads=pads, padding_mode=mode)
    b = Conv2d(rng.normal(size=(c2, c1, 3, 3)) / np.sqrt(9 * c1), None, a.output_shape, stride=stride, pads=pads,
               padding_mode=mode)
    layers = [a, ReLU(), b, ReLU()]
    if head:
        layers += [Dense(rng.normal(size=(6, b.out_features)) / np.sqrt(b.out_features)), ReLU(),
                   Dense(rng.normal(size=(3, 6)) / 3)]
    else:
        layers += [Conv2d(rng.normal(size=(2, c2, 3, 3)) / np.sqrt(9 * c2), None, b.output_shape, pads=pads,
                          padding_mode=mode)]
    return Network(tuple(layers))


@pytest.mark.parametrize("stride,dilation,pads", [(1, 1, P1), (2, 1, P1), (2, 1, (0, 2, 1, 0)), (1, 2, (2, 2, 2, 2))])
def test_big_grid_network_equals_the_convolutions(stride, dilation, pads):
    rng = np.random.default_rng(1)
    a = Conv2d(rng.normal(size=(3, 2, 3, 3)), None, (2, 9, 8), stride=stride, dilation=dilation, pads=pads)
    b = Conv2d(rng.normal(size=(4, 3, 3, 2)), None, a.output_shape, stride=stride, dilation=dilation, pads=pads)
    specs = [a.conv_spec, b.conv_spec]
    ph, pw = axis_plans(specs)
    x = rng.normal(size=a.input_shape)
    big = np.zeros((2, ph.m * ph.p[0], pw.m * pw.p[0]))
    big[:, :9, :8] = x  # the isometric embedding
    h = big
    for k, layer in enumerate((a, b)):
        h = big_grid_forward(specs, (ph, pw), h, k)
        _, ho, wo = layer.output_shape
        masked = np.ones(h.shape[1:], dtype=bool)
        masked[:ho, :wo] = False
        h = np.maximum(h, 0.0)
        h[:, masked] = 0.0  # masked neurons: activation 0
    ref = np.maximum(b.linear(np.maximum(a.linear(x.reshape(-1)), 0.0)), 0.0).reshape(b.output_shape)
    _, ho, wo = b.output_shape
    np.testing.assert_allclose(h[:, :ho, :wo], ref, rtol=1e-12, atol=1e-12)


def test_symbols_diagonalise_the_big_grid_convolution():
    rng = np.random.default_rng(2)
    a = Conv2d(rng.normal(size=(4, 1, 3, 3)), None, (2, 8, 8), stride=2, pads=P1, groups=2)
    b = Conv2d(rng.normal(size=(3, 4, 3, 3)), None, a.output_shape, stride=2, pads=P1)
    specs = [a.conv_spec, b.conv_spec]
    lmi = build_frequency_lmi(specs, [(0.0, 1.0)] * 2)
    ph, pw = lmi.plans
    for k, spec in enumerate(specs):
        c_in = spec.input_shape[0]
        x = rng.normal(size=(c_in, ph.m * ph.p[k], pw.m * pw.p[k]))
        y = big_grid_forward(specs, lmi.plans, x, k)

        def poly(v, p_h, p_w):  # (C, M p_h, M p_w) -> FFT of the phases (C p_h p_w, M_h, M_w)
            c = v.shape[0]
            ph_ = v.reshape(c, ph.m, p_h, pw.m, p_w).transpose(0, 2, 4, 1, 3).reshape(c * p_h * p_w, ph.m, pw.m)
            return np.fft.fft2(ph_)[:, :, :pw.m // 2 + 1].reshape(c * p_h * p_w, -1)

        xf, yf = poly(x, ph.p[k], pw.p[k]), poly(y, ph.p[k + 1], pw.p[k + 1])
        sym = lmi.complex_symbols()[k]
        pred = np.einsum("fij,jf->if", sym, xf)
        np.testing.assert_allclose(pred, yf, rtol=1e-10, atol=1e-10 * np.abs(yf).max())


@pytest.mark.parametrize("shape,c1,c2,stride", [((1, 6, 6), 3, 4, 1), ((1, 6, 6), 3, 4, 2), ((2, 8, 8), 3, 4, 2)])
def test_bound_between_sampled_naive_and_dense_lipsdp(shape, c1, c2, stride):
    net = _cnn(3, shape, c1, c2, stride)
    res = lipschitz(net, "lipsdp-conv")
    assert res.certified and res.details["solver_status"] == "optimal"
    assert res.details["conv_layers"] == 2
    naive = lipschitz(net, "naive").value
    sampled = lipschitz(net, "sampled").value
    dense = lipschitz(net, "lipsdp-neuron").value
    assert sampled <= res.value <= naive
    assert res.value >= dense * (1 - 1e-5)  # per-neuron multipliers and the whole net in one LMI: at least as tight


def test_all_conv_chain_keeps_the_last_convolution_and_dense_lipsdp_bounds_it():
    net = _cnn(4, (1, 6, 6), 2, 3, 2, head=False)
    res = lipschitz(net, "lipsdp-conv")
    assert res.certified and res.details["last_conv_in_lmi"]
    assert lipschitz(net, "sampled").value <= res.value <= lipschitz(net, "naive").value
    assert res.value >= lipschitz(net, "lipsdp-neuron").value * (1 - 1e-5)


def _tied_dense_lipsdp(net: Network) -> float:
    """LipSDP with one multiplier per channel on the dense lowering (cvxpy, CVXOPT): the same SDP as the
    frequency LMI for circular convolutions."""
    import cvxpy as cp

    w = [layer.as_matrix() for layer in net.affine_layers]
    chans = [layer.output_shape for layer in net.affine_layers[:-1]]
    rho = cp.Variable()
    ts = [cp.Variable(c[0], nonneg=True) for c in chans]
    tr = [cp.hstack([t[i] * np.ones(c[1] * c[2]) for i in range(c[0])]) for t, c in zip(ts, chans)]
    n = [w[0].shape[1]] + [m.shape[0] for m in w[:-1]]
    z = [[np.zeros((n[i], n[j])) for j in range(3)] for i in range(3)]
    blocks = [[z[i][j] for j in range(3)] for i in range(3)]
    blocks[0][0] = rho * np.eye(n[0])
    blocks[1][0] = -cp.diag(tr[0]) @ w[0]
    blocks[0][1] = blocks[1][0].T
    blocks[1][1] = 2 * cp.diag(tr[0])
    blocks[2][1] = -cp.diag(tr[1]) @ w[1]
    blocks[1][2] = blocks[2][1].T
    blocks[2][2] = 2 * cp.diag(tr[1]) - w[2].T @ w[2]
    k = cp.bmat(blocks)
    prob = cp.Problem(cp.Minimize(rho), [(k + k.T) / 2 >> 0])
    prob.solve(solver="CVXOPT")
    return float(np.sqrt(rho.value))


def test_circular_equals_channel_tied_dense_lipsdp():
    net = _cnn(5, (1, 4, 4), 2, 3, 1, mode="circular", head=False)
    res = lipschitz(net, "lipsdp-conv")
    assert res.certified and res.details["solver_status"] == "optimal"
    tied = _tied_dense_lipsdp(net)
    assert res.value == pytest.approx(tied, rel=2e-5)
    # by the shift symmetry, channel-tied multipliers lose nothing on circular convolutions
    assert res.value == pytest.approx(lipschitz(net, "lipsdp-neuron").value, rel=2e-5)


def test_certificate_is_a_dense_certificate_on_circular_convolutions():
    net = _cnn(6, (1, 4, 4), 2, 2, 1, mode="circular", head=False)
    specs, slopes, out, _, _ = conv_chain(net)
    lmi = build_frequency_lmi(specs, slopes, out)
    y, _, _ = solve_barrier(lmi)
    cert = certify_frequency_lmi(lmi, y)
    assert cert.certified
    t0, t1 = (np.repeat(t, 16) for t in lmi.split(cert.y))
    w = [layer.as_matrix() for layer in net.affine_layers]
    n0, n1 = 16, 32
    k = np.zeros((n0 + 2 * n1, n0 + 2 * n1))
    k[:n0, :n0] = cert.rho * np.eye(n0)
    k[n0:n0 + n1, :n0] = -t0[:, None] * w[0]
    k[n0:n0 + n1, n0:n0 + n1] = np.diag(2 * t0)
    k[n0 + n1:, n0:n0 + n1] = -t1[:, None] * w[1]
    k[n0 + n1:, n0 + n1:] = np.diag(2 * t1) - w[2].T @ w[2]
    k = np.tril(k) + np.tril(k, -1).T
    assert np.linalg.eigvalsh(k)[0] >= -1e-10


def test_unsupported_padding_and_auto_choice(tmp_path):
    net = _cnn(7, (1, 6, 6), 2, 2, 1, mode="reflect")
    with pytest.raises(Exception, match="padding 'reflect'"):
        lipschitz(net, "lipsdp-conv")
    big = _cnn(8, (1, 28, 28), 8, 8, 2)
    names = auto_candidates(big.canonical(), 2, False, available_methods())
    # the dense LMIs do not fit; ECLipsE-Fast (tighter where the dense lowering fits) comes first
    assert "lipsdp-neuron" not in names and names.index("eclipse-fast") < names.index("lipsdp-conv")
    small = _cnn(9, (1, 6, 6), 2, 2, 2)
    res = lipschitz(small, "lipsdp-conv", proof=tmp_path / "p.json")
    assert res.certified and not res.details["proof"]["accepted"]
    assert "not checkable" in res.details["proof"]["message"] or "unchecked" in res.details["proof"]["message"]
