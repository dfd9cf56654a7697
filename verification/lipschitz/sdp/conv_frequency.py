"""LipSDP-Neuron for chains of 2-D convolutions, with one multiplier per channel, solved per frequency.

**The big-grid network.**  Along each spatial axis, a chain of convolutions with zero padding equals a chain
of strided *circular* convolutions on larger grids where every layer's valid region sits at positions
``0 .. n_k - 1`` of a grid of ``N_k`` positions and the other positions are *masked* neurons whose activation
is the constant 0.  Output position ``j`` of layer ``k`` reads ``(j s + t d - p_top) mod N_k``; when ``N_k`` is
at least the length of the interval holding the valid region and every position a valid output reads
(``max(n_k, last read + 1) + p_top``), the reads of a valid output do not wrap onto valid positions: they
hit the valid input where the original layer reads it and masked (zero) positions where it reads padding.
The input is embedded isometrically (zeros outside).  A circular layer whose output is one per stride step
(``n_out s = n_in``) is its own circular convolution on ``N_k = n_k`` (no masked positions).  A masked
neuron's activation (constant 0) is slope-restricted in ``[0, 0]``, inside ``[min(alpha, 0), max(beta, 0)]``;
the quadratic constraints with that widened interval and one multiplier per channel (the same at every
position, masked or not) hold for every neuron of the big network, so its LipSDP bound bounds the original.

**Frequencies.**  All grids are ``N_k = M P_k`` with ``P_k`` the product of the strides of layers ``k, k+1,
...``: split layer ``k``'s grid into ``P_k`` phases (per axis) and every layer lives on the common coarse
``M_h x M_w`` grid.  Each block of the LipSDP matrix is then block-circulant over the coarse grid, so the LMI
is unitarily equivalent to the direct sum over frequencies ``w`` of Hermitian LMIs of size
``n = sum_k C_k P_k^h P_k^w`` in which layer ``k`` is its symbol ``B_k(w)`` (rows ``(c_out, b_h, b_w)``,
columns ``(c_in, a_h, a_w)``): tap ``(t, u)`` of output phase ``b`` reads ``b s + t d - p = Q p_in + a`` and
adds ``w[:, :, t, u] exp(2 pi i (w_h Q_h / M_h + w_w Q_w / M_w))`` to entry ``(b, a)``.  Conjugate frequencies
give conjugate matrices: ``w_w`` runs over ``0 .. M_w // 2`` only.  With slope interval ``[a, b]`` and
``T_k = diag(t_k)`` (repeated over the phases):

    K(w) = rho E_0 + sum_k [ 2ab B_k^H T_k B_k on (k, k);  -(a+b) T_k B_k on (k+1, k);  2 T_k on (k+1, k+1) ]
           - C^H C on the last block  ⪰ 0  for all w,     bound = sqrt(rho)

with ``C = I`` (the chain ends with an activation) or ``C = B_out(w)`` (a last convolution, no activation).

**Solver.**  A log-barrier path-following method on ``(rho, t)`` (few variables, many small LMIs): Newton
steps with the Hessian ``tr(K^-1 A_i K^-1 A_j)`` from the rank-``2p`` form of each multiplier's matrix.  Any
strictly feasible iterate certifies, so a deadline stops it with its last iterate.

**Certification** (:func:`certify_frequency_lmi`): each frequency's real embedding ``[[Re, -Im], [Im, Re]]`` is
rebuilt in float64 from the (rounded) multipliers, with an entrywise bound of its distance to the exact
matrix (twiddles within :data:`~verification.layers.conv_norms.TWIDDLE_ERROR`, dot products within
``gamma_n``, products of the multipliers); the Frobenius norm ``e`` of that bound moves eigenvalues by at most
``e``, so ``K_float - e' I ⪰ 0`` (``e'`` covers the rounding of the shift), certified by
:func:`~verification.lipschitz.sdp.certificate.certify_psd`, proves the exact ``K(w) ⪰ 0``.  ``rho`` is the
largest certified value over the frequencies.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from verification.errors import SolverError, UnsupportedLayerError
from verification.layers.affine import ConvSpec
from verification.layers.conv_norms import TWIDDLE_ERROR
from verification.lipschitz.sdp.certificate import certify_psd

__all__ = ["AxisPlan", "FrequencyLMI", "build_frequency_lmi", "axis_plans", "solve_barrier", "solve_cvxpy",
           "certify_frequency_lmi", "big_grid_forward", "FrequencyCertificate"]

_EPS = float(np.finfo(np.float64).eps)
_U = _EPS / 2
_TINY = 2.0 ** -900
MAX_SHRINK = 0.5  # barrier steps: the largest relative decrease of an eigenvalue of K in one step


def _gamma(n: int) -> float:
    """Upper bound of ``gamma_n = n u / (1 - n u)``."""
    return n * _U / (1 - n * _U) * (1 + 4 * _EPS)


# ---------------------------------------------------------------------------------------------- the grids
@dataclass(frozen=True)
class AxisPlan:
    """One spatial axis of the chain: coarse grid ``m``; per layer ``k``: valid lengths ``n[k]``, phases
    ``p[k]`` (grid ``N_k = m p[k]``), and the taps ``(t, b, a, Q)`` (kernel offset, output phase, input phase,
    coarse shift) of each convolution."""

    m: int
    n: tuple[int, ...]
    p: tuple[int, ...]
    taps: tuple[tuple[tuple[int, int, int, int], ...], ...]


def _axis(specs: list[ConvSpec], axis: int) -> AxisPlan:
    n = [specs[0].input_shape[1 + axis]] + [s.output_shape[1 + axis] for s in specs]
    strides = [s.stride[axis] for s in specs]
    p = [math.prod(strides[k:]) for k in range(len(specs) + 1)]
    lower = [n[-1]]  # the last grid holds the last valid region
    exact: set[int] = set()
    for k, s in enumerate(specs):
        kk, st, dl = s.kernel.shape[2 + axis], s.stride[axis], s.dilation[axis]
        top = s.pads[2 * axis]
        if s.padding_mode == "zeros":
            last = (n[k + 1] - 1) * st + (kk - 1) * dl - top
            lower.append(-(-(max(n[k], last + 1) + top) // p[k]))
        elif s.padding_mode == "circular" and n[k] % st == 0 and n[k + 1] * st == n[k]:
            if n[k] % p[k]:
                raise UnsupportedLayerError(f"circular padding: the grid {n[k]} is not a multiple of the strides "
                                            f"{p[k]} of the layers from here on")
            exact.add(n[k] // p[k])
        else:
            raise UnsupportedLayerError(
                f"padding {s.padding_mode!r} with output {n[k + 1]} for input {n[k]} and stride {st} "
                "(only zero padding, and circular padding with one output per stride step, are handled)")
    m = max(lower)
    if exact:
        if len(exact) > 1 or min(exact) < m:
            raise UnsupportedLayerError("circular layers and the other layers need different grids in this chain")
        m = exact.pop()
    taps = []
    for k, s in enumerate(specs):
        kk, st, dl, top = s.kernel.shape[2 + axis], s.stride[axis], s.dilation[axis], s.pads[2 * axis]
        tk = []
        for b in range(p[k + 1]):
            for t in range(kk):
                pos = b * st + t * dl - top
                a = pos % p[k]
                tk.append((t, b, a, (pos - a) // p[k]))
        taps.append(tuple(tk))
    return AxisPlan(m, tuple(n), tuple(p), tuple(taps))


def axis_plans(specs: list[ConvSpec]) -> tuple[AxisPlan, AxisPlan]:
    """The plans of both axes (:class:`UnsupportedLayerError` if a padding mode is not handled)."""
    return _axis(specs, 0), _axis(specs, 1)


def big_grid_forward(specs: list[ConvSpec], plans: tuple[AxisPlan, AxisPlan], x: np.ndarray,
                     layer: int) -> np.ndarray:
    """Layer ``layer``'s circular convolution on the big grids, by index arithmetic (no symbols): ``x`` of
    shape ``(C_in, N_h, N_w)`` -> ``(C_out, N_h / s_h, N_w / s_w)``; for the tests."""
    s = specs[layer]
    w = np.asarray(s.kernel)
    c_out, c_in_g, kh, kw = w.shape
    nh, nw = plans[0].m * plans[0].p[layer], plans[1].m * plans[1].p[layer]
    oh, ow = nh // s.stride[0], nw // s.stride[1]
    out = np.zeros((c_out, oh, ow))
    per = c_out // s.groups
    for t in range(kh):
        rows = (np.arange(oh) * s.stride[0] + t * s.dilation[0] - s.pads[0]) % nh
        for u in range(kw):
            cols = (np.arange(ow) * s.stride[1] + u * s.dilation[1] - s.pads[2]) % nw
            for g in range(s.groups):
                xs = x[g * c_in_g:(g + 1) * c_in_g][:, rows][:, :, cols]
                out[g * per:(g + 1) * per] += np.einsum("oc,chw->ohw", w[g * per:(g + 1) * per, :, t, u], xs)
    return out


# ---------------------------------------------------------------------------------------------- the symbols
def _twiddles(mh: int, mw: int, qh: int, qw: int) -> tuple[np.ndarray, np.ndarray]:
    """``cos``, ``sin`` of ``2 pi (f_h q_h / M_h + f_w q_w / M_w)`` over the kept frequencies (``k`` reduced
    exactly in integers; the same expression as :func:`~verification.layers.conv_norms.circular_norm_bound`,
    so each value is within ``TWIDDLE_ERROR``)."""
    fh, fw = np.arange(mh), np.arange(mw // 2 + 1)
    ang = 2 * np.pi * ((fh * qh) % mh) / mh
    ang = ang[:, None] + (2 * np.pi * ((fw * qw) % mw) / mw)[None, :]
    return np.cos(ang).reshape(-1), np.sin(ang).reshape(-1)


def _symbol(spec: ConvSpec, k: int, plans: tuple[AxisPlan, AxisPlan]) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Layer ``k``'s symbols at the kept frequencies: ``(Re, Im)`` of shape ``(F, C_out P_{k+1}, C_in P_k)``,
    ``S`` the sums of ``|weight|`` per entry, and ``delta``: ``|computed - exact| <= delta S`` for Re and Im."""
    ph, pw = plans
    w = np.asarray(spec.kernel, dtype=np.float64)
    c_out, c_in_g, kh, kw = w.shape
    c_in = c_in_g * spec.groups
    per = c_out // spec.groups
    full = np.zeros((kh, kw, c_out, c_in))
    for g in range(spec.groups):
        full[:, :, g * per:(g + 1) * per, g * c_in_g:(g + 1) * c_in_g] = np.moveaxis(w[g * per:(g + 1) * per], (2, 3), (0, 1))
    po_h, po_w, pi_h, pi_w = ph.p[k + 1], pw.p[k + 1], ph.p[k], pw.p[k]
    n_f = ph.m * (pw.m // 2 + 1)
    rows_n, cols_n = c_out * po_h * po_w, c_in * pi_h * pi_w
    re = np.zeros((n_f, rows_n, cols_n))
    im = np.zeros_like(re)
    s_abs = np.zeros((rows_n, cols_n))
    count = np.zeros((rows_n, cols_n), dtype=int)
    o_idx, c_idx = np.arange(c_out) * po_h * po_w, np.arange(c_in) * pi_h * pi_w
    for t, bh, ah, qh in ph.taps[k]:
        for u, bw, aw, qw in pw.taps[k]:
            wt = full[t, u]
            if not np.any(wt):
                continue
            cos, sin = _twiddles(ph.m, pw.m, qh, qw)
            r = o_idx + bh * po_w + bw
            c = c_idx + ah * pi_w + aw
            ix = np.ix_(r, c)
            re[:, ix[0], ix[1]] += cos[:, None, None] * wt[None]
            im[:, ix[0], ix[1]] += sin[:, None, None] * wt[None]
            s_abs[ix] += np.abs(wt)
            count[ix] += 1
    n_terms = int(count.max()) if count.size else 1
    delta = (_gamma(n_terms + 1) * (1 + TWIDDLE_ERROR) + TWIDDLE_ERROR) * (1 + 4 * _EPS)
    return re, im, s_abs * (1 + _gamma(n_terms + 1)), delta


# ---------------------------------------------------------------------------------------------- the LMI model
@dataclass
class FrequencyLMI:
    """The per-frequency LMIs of a convolution chain.

    ``sizes[k]`` (complex) rows of block ``k`` (``C_k P_k^h P_k^w``); ``sym[k] = (Re, Im, S, delta)`` of layer
    ``k`` (activation layers first; ``out`` the symbol of a last convolution without activation, or ``None``
    for ``C = I``); ``slopes[k] = (a, b)`` (widened to contain 0); ``reps[k]`` phases per channel of block
    ``k + 1``; multipliers ``y = [rho, t_0, t_1, ...]`` with ``t_k`` one per output channel of layer ``k``."""

    sizes: list[int]
    sym: list[tuple[np.ndarray, np.ndarray, np.ndarray, float]]
    out: tuple[np.ndarray, np.ndarray, np.ndarray, float] | None
    slopes: list[tuple[float, float]]
    channels: list[int]
    reps: list[int]
    grid: tuple[int, int]

    @property
    def n(self) -> int:
        return int(sum(self.sizes))

    @property
    def n_freq(self) -> int:
        return int(self.sym[0][0].shape[0]) if self.sym else int(self.out[0].shape[0])

    @property
    def n_vars(self) -> int:
        return 1 + int(sum(self.channels))

    @property
    def starts(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.sizes)]).astype(int)

    def split(self, y: np.ndarray) -> list[np.ndarray]:
        """The multipliers ``t_k`` of each activation layer."""
        offs = np.concatenate([[1], 1 + np.cumsum(self.channels)]).astype(int)
        return [np.asarray(y[offs[k]:offs[k + 1]], dtype=np.float64) for k in range(len(self.channels))]

    def complex_symbols(self) -> list[np.ndarray]:
        if getattr(self, "_csym", None) is None:
            self._csym = [re + 1j * im for re, im, _, _ in self.sym]
            self._cout = None if self.out is None else self.out[0] + 1j * self.out[1]
        return self._csym

    def matrices(self, y: np.ndarray) -> np.ndarray:
        """``K(w)`` for all kept frequencies, complex ``(F, n, n)`` (for the solvers; not certified)."""
        bs = self.complex_symbols()
        st = self.starts
        k = np.zeros((self.n_freq, self.n, self.n), dtype=complex)
        idx0 = np.arange(st[0], st[1])
        k[:, idx0, idx0] += float(y[0])
        for i, (t, (a, b)) in enumerate(zip(self.split(y), self.slopes)):
            tr = np.repeat(t, self.reps[i])
            r0, r1, c0, c1 = st[i + 1], st[i + 2], st[i], st[i + 1]
            off = -(a + b) * tr[None, :, None] * bs[i]
            k[:, r0:r1, c0:c1] += off
            k[:, c0:c1, r0:r1] += np.conj(np.swapaxes(off, 1, 2))
            d = np.arange(r0, r1)
            k[:, d, d] += 2 * tr
            if a * b != 0:
                k[:, c0:c1, c0:c1] += 2 * a * b * np.conj(np.swapaxes(bs[i], 1, 2)) @ (tr[None, :, None] * bs[i])
        last = np.arange(st[-2], st[-1])
        if self._cout is None:
            k[:, last, last] -= 1.0
        else:
            k[:, st[-2]:, st[-2]:] -= np.conj(np.swapaxes(self._cout, 1, 2)) @ self._cout
        return k


def build_frequency_lmi(specs: list[ConvSpec], slopes: list[tuple[float, float]],
                        out: ConvSpec | None = None) -> FrequencyLMI:
    """The model of the chain ``specs[0], act, specs[1], act, ..., [out]`` (``slopes``: one per activation,
    already widened to contain 0)."""
    chain = list(specs) + ([out] if out is not None else [])
    plans = axis_plans(chain)
    syms = [_symbol(s, k, plans) for k, s in enumerate(chain)]
    reps = [plans[0].p[k + 1] * plans[1].p[k + 1] for k in range(len(chain))]
    sizes = [chain[0].input_shape[0] * plans[0].p[0] * plans[1].p[0]]
    sizes += [s.output_shape[0] * reps[k] for k, s in enumerate(chain)]
    if out is not None:
        sizes = sizes[:-1]
    lmi = FrequencyLMI(sizes, syms[:len(specs)], syms[-1] if out is not None else None, list(slopes),
                       [s.output_shape[0] for s in specs], reps[:len(specs)], (plans[0].m, plans[1].m))
    lmi.plans = plans
    lmi.complex_symbols()
    return lmi


# ---------------------------------------------------------------------------------------------- the solver
def _start(lmi: FrequencyLMI, margin: float = 2.0) -> np.ndarray:
    """A strictly feasible point: split ``K`` into 2x2 links ``[[a_k I, .], [., b_k I]]`` (the naive product
    bound, times ``margin`` per link)."""
    bs = lmi.complex_symbols()
    nrm = [float(np.max(np.linalg.norm(b, 2, axis=(1, 2)))) if b.size else 0.0 for b in bs]
    c2 = 1.0 if lmi._cout is None else float(np.max(np.linalg.norm(lmi._cout, 2, axis=(1, 2)))) ** 2
    c2 = max(c2, 1e-300)
    lam = [0.0] * len(bs)
    lam[-1] = c2
    b_link = c2
    for k in range(len(bs) - 1, -1, -1):
        a, b = lmi.slopes[k]
        need = lam[k] ** 2 * (a + b) ** 2 * nrm[k] ** 2 / b_link + 2 * abs(a * b) * lam[k] * nrm[k] ** 2
        a_k = margin * need + 1e-12 * max(lam[k], 1e-300)
        if k == 0:
            rho = a_k
        else:
            lam[k - 1] = a_k
            b_link = a_k
    t = [np.full(c, lam[k]) for k, c in enumerate(lmi.channels)]
    return np.concatenate([[rho], *t])


def _atoms(lmi: FrequencyLMI):
    """The columns ``U`` (F, n, q) of all multipliers' matrices, the 2x2 coefficient pairing of the columns and
    the variable of each column."""
    bs = lmi.complex_symbols()
    st = lmi.starts
    n_f, n = lmi.n_freq, lmi.n
    cols, var, pair, coef_self, coef_pair = [], [], [], [], []
    u_blocks = []
    n0 = lmi.sizes[0]
    u0 = np.zeros((n_f, n, n0), dtype=complex)
    u0[:, np.arange(n0), np.arange(n0)] = 1.0
    u_blocks.append(u0)
    var.append(np.zeros(n0, dtype=int))
    q = n0
    pair.append(np.full(n0, -1))
    coef_self.append(np.ones(n0))
    coef_pair.append(np.zeros(n0))
    offs = np.concatenate([[1], 1 + np.cumsum(lmi.channels)]).astype(int)
    for i, (a, b) in enumerate(lmi.slopes):
        r0, r1, c0, c1 = st[i + 1], st[i + 2], st[i], st[i + 1]
        w = r1 - r0
        up = np.zeros((n_f, n, w), dtype=complex)
        up[:, np.arange(r0, r1), np.arange(w)] = 1.0
        uv = np.zeros((n_f, n, w), dtype=complex)
        uv[:, c0:c1, :] = np.conj(np.swapaxes(bs[i], 1, 2))
        u_blocks += [up, uv]
        v = offs[i] + np.arange(w) // lmi.reps[i]
        var += [v, v]
        pair += [q + w + np.arange(w), q + np.arange(w)]
        coef_self += [np.full(w, 2.0), np.full(w, 2.0 * a * b)]
        coef_pair += [np.full(w, -(a + b)), np.full(w, -(a + b))]
        q += 2 * w
    return (np.concatenate(u_blocks, axis=2), np.concatenate(var), np.concatenate(pair), np.concatenate(coef_self),
            np.concatenate(coef_pair))


def _max_step(lmi: FrequencyLMI, ch: np.ndarray, y: np.ndarray, step: np.ndarray) -> float:
    """The largest ``alpha <= 1`` with which no eigenvalue of ``L^-1 K(y + alpha step) L^-H`` falls below
    ``1 - MAX_SHRINK`` (fraction to the boundary; ``K`` is affine in ``y``)."""
    dk = lmi.matrices(y + step) - lmi.matrices(y)
    z = np.linalg.solve(ch, dk)
    z = np.linalg.solve(ch, np.conj(np.swapaxes(z, 1, 2)))
    mu = float(np.min(np.linalg.eigvalsh((z + np.conj(np.swapaxes(z, 1, 2))) / 2)[:, 0]))
    return min(1.0, MAX_SHRINK / -mu) if mu < 0 else 1.0


def solve_barrier(lmi: FrequencyLMI, tol: float = 1e-7, deadline: float | None = None, max_newton: int = 400,
                  progress=None, t_barrier: float = 0.0, tau0: float = 1.0, tau_step: float = 2.0) -> tuple[np.ndarray, str, dict]:
    """Minimise ``rho`` s.t. ``K(w) ≻ 0`` for all kept ``w`` and ``t > 0`` by the log-barrier method; returns
    ``(y, status, info)`` with a strictly feasible ``y`` ("optimal": relative barrier gap below ``tol``)."""
    y = _start(lmi)
    for _ in range(30):
        try:
            np.linalg.cholesky(lmi.matrices(y))
            break
        except np.linalg.LinAlgError:
            y = _start(lmi, margin=4.0 * (1 + _))
    else:  # pragma: no cover - the start is feasible by construction
        raise SolverError("no strictly feasible start found for the frequency LMI")
    u, var, pair, cs, cp = _atoms(lmi)
    m = lmi.n_vars
    s_ind = np.zeros((var.size, m))
    s_ind[np.arange(var.size), var] = 1.0
    deg = lmi.n_freq * lmi.n + t_barrier * (m - 1)
    uh = np.conj(np.swapaxes(u, 1, 2))

    def logdet(yv):  # (-log det K summed, Cholesky factors) or None outside the domain
        if np.any(yv[1:] <= 0):
            return None
        try:
            ch = np.linalg.cholesky(lmi.matrices(yv))
        except np.linalg.LinAlgError:
            return None
        ld = 2 * float(np.sum(np.log(np.real(np.diagonal(ch, axis1=1, axis2=2)))))
        return ld + t_barrier * float(np.sum(np.log(yv[1:]))), ch

    tau = None  # set at the first iterate: the tau for which the start is closest to the centre
    status, newton, t0 = "iteration limit", 0, time.perf_counter()
    cur = logdet(y)
    has = pair >= 0
    last_update = 0
    while newton < max_newton:
        if deadline is not None and time.monotonic() > deadline:
            status = "time limit"
            break
        ld, ch = cur
        w = np.linalg.solve(ch, u)  # L^-1 U
        g_mat = np.conj(np.swapaxes(w, 1, 2)) @ w  # U^H K^-1 U, (F, q, q)
        x = cs[None, :, None] * g_mat
        x[:, has, :] += cp[has][None, :, None] * g_mat[:, pair[has], :]
        diag = np.real(np.einsum("fii->i", x))
        hess = s_ind.T @ np.real(np.sum(x * np.swapaxes(x, 1, 2), axis=0)) @ s_ind
        grad = -(s_ind.T @ diag)
        if tau is None:  # argmin_tau ||tau e_0 + grad||_{H^-1}
            dsc0 = 1.0 / np.sqrt(np.maximum(np.diag(hess), 1e-300))
            hs = dsc0[:, None] * hess * dsc0[None, :]
            h_e0 = np.linalg.solve(hs, dsc0 * np.eye(m)[0])
            tau = max(-float((dsc0 * grad) @ h_e0) / float(dsc0[0] * h_e0[0]), deg / max(y[0], 1e-300)) * tau0
        grad[0] += tau
        grad[1:] -= t_barrier / y[1:]
        hess[np.arange(1, m), np.arange(1, m)] += t_barrier / y[1:] ** 2
        # Jacobi scaling: the multipliers of different layers differ by orders of magnitude
        dsc = 1.0 / np.sqrt(np.maximum(np.diag(hess), 1e-300))
        try:
            step = -dsc * np.linalg.solve(dsc[:, None] * hess * dsc[None, :], dsc * grad)
        except np.linalg.LinAlgError:
            status = "singular Newton system"
            break
        dec = float(-grad @ step)
        newton += 1
        if not dec > 1e-4:  # centred enough (the Newton decrement squared; a long-step method)
            if deg / tau <= tol * max(y[0], 1e-300):
                status = "optimal"
                break
            tau *= tau_step ** 2 if newton - last_update <= 3 else tau_step  # longer when centring is easy
            last_update = newton
            continue
        alpha = _max_step(lmi, ch, y, step)
        nxt = None
        while alpha > 1e-10:
            cand = y + alpha * step
            nxt = logdet(cand)
            # the change of tau rho - log det, without forming the two large values
            if nxt is not None and tau * alpha * step[0] - (nxt[0] - ld) <= -0.1 * alpha * dec:
                break
            alpha *= 0.5
            nxt = None
        if nxt is None:
            status = "line search failed"
            break
        y, cur = cand, nxt
        if callable(progress):
            progress({"stage": "lipsdp-conv", "iteration": newton, "solver_rho": float(y[0]), "tau": tau,
                      "decrement": dec, "step": alpha})
    return y, status, {"newton_steps": newton, "solver_seconds": time.perf_counter() - t0,
                       "barrier_gap": deg / tau if tau else math.inf}


def solve_cvxpy(lmi: FrequencyLMI, solver: str) -> tuple[np.ndarray, str, dict]:
    """The same problem through cvxpy (real embeddings ``[[Re, -Im], [Im, Re]]``, one PSD constraint per kept
    frequency); for small chains and cross-checks."""
    import cvxpy as cp

    from verification.lipschitz.sdp.cvxpy_problem import solve_cvxpy_problem

    rho = cp.Variable()
    ts = [cp.Variable(c, nonneg=True) for c in lmi.channels]
    st = lmi.starts
    n = lmi.n
    cons = []
    bs = lmi.complex_symbols()
    for f in range(lmi.n_freq):
        blocks_re = [[None] * len(lmi.sizes) for _ in lmi.sizes]
        blocks_im = [[None] * len(lmi.sizes) for _ in lmi.sizes]
        expr_re = 0
        expr_im = 0
        for i, ((a, b), t) in enumerate(zip(lmi.slopes, ts)):
            tr = cp.hstack([t[c] * np.ones(lmi.reps[i]) for c in range(lmi.channels[i])]) if lmi.reps[i] > 1 else t
            r0, r1, c0, c1 = st[i + 1], st[i + 2], st[i], st[i + 1]
            e_r = np.zeros((n, r1 - r0))
            e_r[r0:r1] = np.eye(r1 - r0)
            e_c = np.zeros((n, c1 - c0))
            e_c[c0:c1] = np.eye(c1 - c0)
            bre, bim = np.real(bs[i][f]), np.imag(bs[i][f])
            off_re = -(a + b) * cp.multiply(cp.reshape(tr, (r1 - r0, 1), order="F") @ np.ones((1, c1 - c0)), bre)
            off_im = -(a + b) * cp.multiply(cp.reshape(tr, (r1 - r0, 1), order="F") @ np.ones((1, c1 - c0)), bim)
            expr_re = expr_re + e_r @ off_re @ e_c.T + e_c @ off_re.T @ e_r.T + 2 * e_r @ cp.diag(tr) @ e_r.T
            expr_im = expr_im + e_r @ off_im @ e_c.T - e_c @ off_im.T @ e_r.T
            if a * b != 0:
                g_re = bre.T @ cp.diag(tr) @ bre + bim.T @ cp.diag(tr) @ bim
                g_im = bre.T @ cp.diag(tr) @ bim - bim.T @ cp.diag(tr) @ bre
                expr_re = expr_re + 2 * a * b * e_c @ g_re @ e_c.T
                expr_im = expr_im + 2 * a * b * e_c @ g_im @ e_c.T
        e0 = np.zeros((n, n))
        e0[:st[1], :st[1]] = np.eye(st[1])
        cst = np.zeros((n, n), dtype=complex)
        if lmi._cout is None:
            cst[st[-2]:, st[-2]:] = -np.eye(n - st[-2])
        else:
            co = lmi._cout[f]
            cst[st[-2]:, st[-2]:] = -np.conj(co.T) @ co
        kre = expr_re + rho * e0 + np.real(cst)
        kim = expr_im + np.imag(cst)
        big = cp.bmat([[kre, -kim], [kim, kre]])
        cons.append((big + big.T) / 2 >> 0)
    prob = cp.Problem(cp.Minimize(rho), cons)
    t0 = time.perf_counter()
    used = solve_cvxpy_problem(prob, solver)
    y = np.concatenate([[float(rho.value)], *[np.maximum(np.asarray(t.value, dtype=float).reshape(-1), 0.0) for t in ts]])
    return y, str(prob.status), {"solver_seconds": time.perf_counter() - t0, "cvxpy_solver": used}


# ---------------------------------------------------------------------------------------------- certification
@dataclass(frozen=True)
class FrequencyCertificate:
    """``rho`` certified for all frequencies (``certified``), the multipliers it holds for, the largest
    perturbation radius ``e`` used, the worst frequency and, if not certified, why."""

    rho: float
    certified: bool
    y: np.ndarray
    max_shift: float
    worst_frequency: int
    repair_delta: float
    reason: str = ""


def _fro_up(x: np.ndarray) -> float:
    """Upper bound of the Frobenius norm of a nonnegative array (sum of squares and sqrt rounded up)."""
    return float(np.sqrt(np.sum(x * x))) * (1 + (x.size + 8) * _EPS) + _TINY


def _embed(re: np.ndarray, im: np.ndarray) -> np.ndarray:
    return np.block([[re, -im], [im, re]])


def _real_lmi(lmi: FrequencyLMI, f: int, ts: list[np.ndarray]) -> tuple[np.ndarray, float]:
    """Frequency ``f``'s real embedded ``K0`` (without ``rho``; block ``k`` holds its Re rows then its Im rows,
    a permutation of the usual embedding) and ``e``: ``||K0_computed - K0_exact||_2 <= e``."""
    sizes = [2 * s for s in lmi.sizes]
    st = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    n2 = int(st[-1])
    k = np.zeros((n2, n2))
    err = np.zeros((n2, n2))
    sum_abs = np.zeros((n2, n2))  # |terms| summed into each entry (for the rounding of the additions)

    def gram(b, s_abs, delta, d):  # d * B^T D B, error bound (symmetric)
        g = b.T @ (d[:, None] * b)
        g = np.tril(g) + np.tril(g, -1).T
        ab, ad, ds = np.abs(b), np.abs(d), delta * s_abs
        e = ds.T @ (ad[:, None] * ab)
        e = e + e.T + ds.T @ (ad[:, None] * ds) + _gamma(b.shape[0] + 4) * (ab.T @ (ad[:, None] * ab))
        return g, e * (1 + _gamma(b.shape[0] + 4))

    for i, ((a, b_), t) in enumerate(zip(lmi.slopes, ts)):
        re, im, s_abs, delta = lmi.sym[i]
        b = _embed(re[f], im[f])
        s2 = np.block([[s_abs, s_abs], [s_abs, s_abs]])
        tr = np.repeat(t, lmi.reps[i])
        tr2 = np.concatenate([tr, tr])
        r0, r1, c0, c1 = st[i + 1], st[i + 2], st[i], st[i + 1]
        v = (-(a + b_)) * tr2
        off = v[:, None] * b
        k[r0:r1, c0:c1] = off
        k[c0:c1, r0:r1] = off.T
        e_off = np.abs(v)[:, None] * (1 + 2 * _U) * (delta * s2 + _gamma(2) * np.abs(b))
        err[r0:r1, c0:c1] = e_off
        err[c0:c1, r0:r1] = e_off.T
        d_idx = np.arange(r0, r1)
        k[d_idx, d_idx] += 2 * tr2
        sum_abs[d_idx, d_idx] += 2 * tr2
        if a * b_ != 0:
            dv = (2 * a * b_) * tr2
            g, e = gram(b, s2, delta, dv)
            k[c0:c1, c0:c1] += g
            sum_abs[c0:c1, c0:c1] += np.abs(g)
            err[c0:c1, c0:c1] += e  # the rounding of dv (two products) is inside gamma(n + 4)
    lo = st[-2]
    if lmi.out is None:
        d_idx = np.arange(lo, n2)
        k[d_idx, d_idx] -= 1.0
        sum_abs[d_idx, d_idx] += 1.0
    else:
        re, im, s_abs, delta = lmi.out
        b = _embed(re[f], im[f])
        s2 = np.block([[s_abs, s_abs], [s_abs, s_abs]])
        g, e = gram(b, s2, delta, -np.ones(b.shape[0]))  # -B^T B
        k[lo:, lo:] += g
        sum_abs[lo:, lo:] += np.abs(g)
        err[lo:, lo:] += e
    # entries that are sums of two or three computed terms carry up to two more roundings
    err = err + _gamma(2) * (sum_abs + np.abs(k))
    return k, _fro_up(err) * (1 + 1e-9)


def certify_frequency_lmi(lmi: FrequencyLMI, y: np.ndarray) -> FrequencyCertificate:
    """The smallest float64-certified ``rho`` for the multipliers ``y`` (``y[0]`` is only a hint); if some
    frequency's multiplier part is not positive definite, the multipliers are rescaled layer by layer by
    ``(1 + delta)^(2(l - k) - 1)`` (a congruence plus ``delta``-multiples of ``2 T_k``), delta = 1e-9 .. 1e-2."""
    y = np.asarray(y, dtype=np.float64)
    base = [np.maximum(t, 0.0) for t in lmi.split(y)]
    l_act = len(base)
    j_real = None
    reason = ""
    for delta in (0.0, 1e-9, 1e-7, 1e-5, 1e-3, 1e-2):
        ts = [t * (1 + delta) ** (2 * (l_act - k) - 1) if delta else t for k, t in enumerate(base)]
        rho, worst, shift, ok = 0.0, -1, 0.0, True
        for f in range(lmi.n_freq):
            k0, e = _real_lmi(lmi, f, ts)
            if j_real is None:
                n0 = lmi.sizes[0]
                j_real = np.arange(2 * n0)  # block 0: its Re rows then its Im rows
            # K_exact ⪰ K_computed - e I; the shift by e2 rounds each diagonal entry once more
            e2 = (e + _U * float(np.max(np.abs(np.diag(k0))))) / (1 - _U) * (1 + 4 * _EPS)
            k_shift = k0 - e2 * np.eye(k0.shape[0])
            cert = certify_psd(k_shift, j_real, 1.0, rho_hint=float(y[0]))
            if not cert.certified:
                ok, reason = False, f"frequency {f}: {cert.reason}"
                break
            shift = max(shift, e2)
            if cert.rho > rho:
                rho, worst = cert.rho, f
        if ok:
            yc = np.concatenate([[rho], *ts])
            return FrequencyCertificate(float(rho), True, yc, shift, worst, delta)
    return FrequencyCertificate(float(y[0]), False, y, float("nan"), -1, float("nan"), reason)
