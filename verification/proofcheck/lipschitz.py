"""Check a proof of a certified Lipschitz bound (``lipschitz(..., proof=PATH)``; claims, LMIs, certificates, trust:
docs/proofs.md): PSD proofs (:mod:`verification.proofcheck.psd`) of matrices rebuilt from the float64 weights and the
proof's numbers, in rationals up to ``EXACT_MAX_N`` rows, else in float64 with the error bound ``gamma_d |K|`` (``|K|``:
the same assembly on absolute values, ``d`` roundings on any path; Higham Lemma 3.1)."""

from __future__ import annotations

import hashlib
import time
from fractions import Fraction

import numpy as np

from verification.network import Network
from verification.proofcheck._float import TINY, U, mm, up
from verification.proofcheck.bounds import ChainError, float_weights
from verification.proofcheck.checker import VERSION, CheckReport, ProofRejected, hexes, read_header, unhex
from verification.proofcheck.psd import EXACT_MAX_N, exact_psd, float_psd

__all__ = ["KIND", "check_lipschitz_proof", "fingerprint", "live_masks", "lmi_psd"]

KIND = "lipschitz"
MAX_N = 6000  # larger LMIs / Gram matrices are not checked (reported, never accepted)


def fingerprint(net: Network) -> str:
    """SHA-256 of the affine layers (shapes, float64 weights and biases) and the activations' descriptions."""
    h = hashlib.sha256()
    for layer in net.affine_layers:
        W = np.ascontiguousarray(layer.as_matrix(), dtype=np.float64)
        h.update(np.asarray(W.shape, dtype=np.int64).tobytes() + W.tobytes() + np.asarray(layer.bias, np.float64).tobytes())
    h.update("".join(act.describe() + ";" for act in net.activations).encode())
    return h.hexdigest()


def live_masks(mats: list, grouped=()) -> list[np.ndarray]:
    """Per activation layer, the neurons kept: those whose incoming row is not zero, layer by layer after removing
    the columns of the neurons dropped before (one is kept in a layer with none; all of a layer with ``grouped[k]``)."""
    mats, masks = [np.asarray(m) for m in mats], []
    for k in range(len(mats) - 1):
        live = np.any(mats[k] != 0, axis=1) | (k < len(grouped) and bool(grouped[k]))
        live[0] |= not live.any()
        masks.append(live)
        mats[k + 1] = mats[k + 1][:, live]
    return masks


_frac = lambda a: np.vectorize(Fraction, otypes=[object])(np.asarray(a, dtype=np.float64))  # noqa: E731
_diag = lambda t: (t, t, np.zeros((t.size, 0)), t[:0])  # noqa: E731  (an elementwise layer: T1 = T2 = diag t)


def _assemble(Ws, pq, ts, rho, tau, WL, c, norm, sgn):
    """The LMI matrix from float64 or ``Fraction`` arrays (``sgn = +1`` on absolute values: ``|K|``); layer ``k``'s
    ``ts[k] = (l1, l2, U, g)``: ``T1 = diag l1 + U diag(g) Uᵀ`` on its pre-activations, ``T2 = diag l2 + U diag(g) Uᵀ``."""
    wl, Ws = (WL if c is None else c[None, :] @ WL), list(Ws)
    base = rho * np.eye(WL.shape[1] if not Ws else Ws[0].shape[1], dtype=WL.dtype)
    if norm == 2 and Ws and Ws[0].shape[0] < Ws[0].shape[1]:
        Ws[0], base = Ws[0] @ Ws[0].T, rho * (Ws[0] @ Ws[0].T)
    st = np.cumsum([0, base.shape[0]] + [W.shape[0] for W in Ws])
    b = [slice(st[k], st[k + 1]) for k in range(len(st) - 1)]
    K = np.zeros((st[-1] + (norm == "inf"),) * 2, dtype=WL.dtype)
    K[b[0], b[0]] = base if norm == 2 else np.diag(tau)
    if norm == 2:
        K[b[-1], b[-1]] += sgn * (wl.T @ wl)
    else:
        K[-1, -1], K[b[-1], -1], K[-1, b[-1]] = 2 * rho + sgn * tau.sum(), wl[0], wl[0]
    for k, (W, (p, q), (l1, l2, Uk, g)) in enumerate(zip(Ws, pq, ts), start=1):
        TW = l1[:, None] * W + Uk @ (g[:, None] * (Uk.T @ W))
        K[b[k - 1], b[k - 1]] += p * (W.T @ TW)
        K[b[k - 1], b[k]] += (sgn * q) * TW.T
        K[b[k], b[k - 1]] += (sgn * q) * TW
        K[b[k], b[k]] += 2 * (np.diag(l2) + (Uk * g[None, :]) @ Uk.T)
    return K


def lmi_psd(Ws, pq, ts, rho, tau, WL, c, norm) -> str | None:
    """``None`` if the LMI at these float64 numbers is proven PSD, else the failing step."""
    n0, m = (Ws[0].shape[1] if Ws else WL.shape[1]), WL.shape[0]
    N = (min(n0, Ws[0].shape[0]) if Ws else n0) + sum(W.shape[0] for W in Ws) + (norm == "inf")
    if N > MAX_N:
        raise ChainError(f"the LMI has {N} rows; the checker handles at most {MAX_N}")

    def on(f, q: list, sgn: int) -> np.ndarray:  # the assembly with f applied to every number (q: given)
        return _assemble([f(W) for W in Ws], q, [tuple(f(a) for a in t) for t in ts], f(rho),
                         None if tau is None else f(tau), f(WL), None if c is None else f(c), norm, sgn)
    if N <= EXACT_MAX_N and sum(W.size for W in Ws) * (N if Ws else 1) + WL.size * min(WL.shape) <= 200_000:
        fq = [(2 * Fraction(a) * Fraction(b_), Fraction(a) + Fraction(b_)) for a, b_ in pq]
        return exact_psd(on(_frac, fq, -1).tolist())
    fq = [(2.0 * a * b_, a + b_) for a, b_ in pq]
    K, A = on(np.asarray, fq, -1), on(np.abs, [(abs(p), abs(q)) for p, q in fq], 1)  # A = |K| (rho >= 0)
    g = (d := 2 * n0 + 4 * max([W.shape[0] for W in Ws] + [n0, m]) + 2 * m + 16) * U / (1 - d * U)  # (U: 2 n_k of d)
    # structurally zero rows (the assembly on 0/1 indicators: no rounding) are zero in the exact matrix too
    nz = lambda a: (np.asarray(a) != 0).astype(np.float64)  # noqa: E731
    keep = np.flatnonzero(on(nz, [(nz(p), nz(q)) for p, q in fq], 1).any(axis=1))
    return float_psd(K[np.ix_(keep, keep)], (A * (g / (1 - g) * (1 + 4 * U)) + TINY)[np.ix_(keep, keep)])[0]


def _norm_psd(M: np.ndarray, EM, s: float, exact=None) -> str | None:
    """``None`` if ``||M_exact||_2 <= s`` is proven (``|M_exact - M| <= EM``; ``exact``: ``M_exact`` in rationals,
    a callable, used when small): ``[[s I, M], [Mᵀ, s I]]`` is PSD.  ``M``: one matrix or a stack (all proven)."""
    (m, n), tr = M.shape[-2:], lambda a: np.swapaxes(a, -1, -2)  # noqa: E731
    if m + n > MAX_N:
        raise ChainError(f"a {m} x {n} matrix: the checker handles norm proofs of at most {MAX_N} rows and columns")
    if exact is not None and m + n <= EXACT_MAX_N:
        Q, eye = exact(), lambda k: np.eye(k, dtype=object) * Fraction(s)  # noqa: E731
        return exact_psd(np.block([[eye(m), Q], [Q.T, eye(n)]]).tolist())
    S, Eb, i = np.zeros(M.shape[:-2] + (m + n, m + n)), np.zeros(M.shape[:-2] + (m + n, m + n)), np.arange(m + n)
    S[..., :m, m:], S[..., m:, :m], S[..., i, i] = M, tr(M), s
    Eb[..., :m, m:], Eb[..., m:, :m] = EM, tr(np.broadcast_to(EM, M.shape))
    return float_psd(S, Eb)[0]


def _grouped(act, n: int, entry, where: str) -> tuple:
    """``(l1, l2, U, g)`` of a grouped layer from ``{"lambda": [...], "gamma": [...]}`` (one each per group): Pauli
    et al. (ICLR 2024): if ``||dphi|| <= L ||dz||`` and ``uᵀphi(z) = uᵀz`` on each group, ``dzᵀ(L² lambda I + gamma
    uuᵀ)dz >= dphiᵀ(lambda I + gamma uuᵀ)dphi`` for ``lambda >= 0``, any ``gamma``.  GroupSort: ``L = 1``, ``u = 1``;
    Householder ``v``: ``L² = max(1, (2vᵀv - 1)²)`` (rationals, rounded up), ``u = (-v_2, v_1)`` (exactly orthogonal
    to the float64 ``v``) if ``d = 2``, else no ``u`` (``gamma`` unused)."""
    kind, gs = act.describe().split("(")[0], int(getattr(act, "group_size", 0) or 0)
    if kind not in ("maxmin", "groupsort", "householder") or gs < 2 or n % gs:
        raise ChainError(f"an sdp proof has no quadratic constraint for {act.describe()} here")
    lam, gam = (hexes(entry.get(key), f"{where}: {key}", n // gs) for key in ("lambda", "gamma"))
    u, L2, v = np.ones((gs, 1)), Fraction(1), np.asarray(getattr(act, "v", np.zeros(2)), dtype=np.float64)
    if kind == "householder":
        u, L2 = np.array([[-v[1]], [v[0]]]) if gs == 2 else np.zeros((gs, 0)), max(L2, (2 * sum(Fraction(x) ** 2 for x in v) - 1) ** 2)
    L2f, l2 = (float(L2) if Fraction(float(L2)) >= L2 else float(up(float(L2)))), np.repeat(lam, gs)
    return (l2 if L2 == 1 else up(l2 * L2f)), l2, np.kron(np.eye(n // gs), u), gam[:n // gs * u.shape[1]]


def _check_sdp(net, mats, cert, norm, c, bound: float, counts: dict) -> None:
    Ws, WL, grouped = mats[:-1], mats[-1], [not act.elementwise for act in net.activations]
    sbs = [(-1.0, 1.0) if gr else act.slope_bounds() for act, gr in zip(net.activations, grouped)]  # grouped: [[2 T1, 0], [0, -2 T2]]
    if None in sbs:
        raise ChainError("an sdp proof needs slope-restricted elementwise or grouped (sorting, Householder) activations")
    parts, rows = cert.get("parts"), ([None] if (norm == 2 or c is not None) else list(range(net.out_dim)))
    if not isinstance(parts, list) or len(parts) != len(rows):
        raise ProofRejected(f"certificate: expected {len(rows)} part(s)")
    masks = live_masks(Ws + [WL], grouped)  # constant neurons (zero incoming row) are removed, with their multipliers
    W2, WL2 = [W[lv] if k == 0 else W[lv][:, masks[k - 1]] for k, (W, lv) in enumerate(zip(Ws, masks))], WL[:, masks[-1]] if masks else WL
    for i, (part, row) in enumerate(zip(parts, rows)):
        where = f"certificate part {i}"
        rho, Tin = unhex(part.get("rho"), f"{where}: rho"), part.get("T")
        if not isinstance(Tin, list) or len(Tin) != len(Ws):
            raise ProofRejected(f"{where}: 'T' needs one list per activation layer ({len(Ws)})")
        ts = [_grouped(act, W.shape[0], t, f"{where}: T[{k}]") if gr else _diag(hexes(t, f"{where}: T[{k}]", W.shape[0]))
              for k, (t, W, act, gr) in enumerate(zip(Tin, Ws, net.activations, grouped))]
        tau = hexes(part.get("tau"), f"{where}: tau", net.in_dim) if norm == "inf" else None
        if rho < 0 or any(np.any(t[1] < 0) for t in ts) or (tau is not None and np.any(tau < 0)):
            raise ProofRejected(f"{where}: rho or a multiplier is negative")
        if norm == 2 and Fraction(bound) ** 2 < Fraction(rho) or norm == "inf" and bound < rho:
            raise ProofRejected(f"{where}: the bound {bound!r} is below what rho = {rho!r} proves")
        why = lmi_psd(W2, [(float(a), float(b_)) for a, b_ in sbs], [(t[0][lv], t[1][lv], t[2][lv], t[3])
                      for t, lv in zip(ts, masks)], rho, tau, WL2, c if row is None else np.eye(net.out_dim)[row], norm)
        if why is not None:
            raise ProofRejected(f"{where}: LMI: {why}")
        counts["checked"] += 1


def _check_norms(net, mats, cert, norm, c, bound: float, counts: dict) -> None:
    s, prod = hexes(cert.get("layers"), "certificate: layers", len(mats)), 1.0
    for j, (M, sj) in enumerate(zip(mats, s)):
        last = c is not None and j == len(mats) - 1
        M2, EM = mm(c[None, :], M) if last else (M, np.zeros_like(M))  # cᵀW and its rounding bound
        if norm == 2:
            why = _norm_psd(M2, EM, sj, lambda: _frac(c)[None, :] @ _frac(M) if last else _frac(M)) if sj >= 0 else "< 0"
        else:
            C, E = mm(up(np.abs(M2) + EM), np.ones(M.shape[1]))
            why = None if float(up(C + E).max()) <= sj else f"a row sum exceeds {sj!r}"
        if why is not None:
            raise ProofRejected(f"certificate: layer {j}: norm bound {sj!r}: {why}")
        prod = float(up(prod * sj))
        counts["checked"] += 1
    for act in net.activations:
        prod = float(up(prod * float(act.lipschitz(norm))))  # the activation's Lipschitz constant (a fact)
    if not bound >= prod:
        raise ProofRejected(f"certificate: the bound {bound!r} is below the product {prod!r} of the norms")


def _check_patterns(net, mats, cert, norm, c, bound: float, counts: dict) -> None:
    """One hidden layer: ``||W_1 D W_0|| <= bound`` for the ``2^h`` diagonal patterns ``D`` of two-piece activations
    (slopes ``s``, 1), the ``2^(h/2)`` pair swaps of MaxMin (every linear piece's Jacobian is one of them)."""
    act, s = (net.activations[0], net.activations[0].two_piece_slope) if len(mats) == 2 else (None, None)
    G = mats[0].shape[0] // (1 if s is not None else 2)
    if (s is None and (act is None or act.describe() != "maxmin")) or G > 16:
        raise ChainError("a patterns proof needs one hidden layer of at most 16 two-piece (ReLU-like) neurons or MaxMin pairs")
    (W0, h), (W1, E1) = (mats[0], mats[0].shape[0]), ((mats[1], 0.0 * mats[1]) if c is None else mm(c[None, :], mats[1]))
    codes, sm, g = np.arange(2 ** G), max(abs(float(s or 0)), 1.0), (h + 4) * U / (1 - (h + 4) * U)
    bits = (codes[:, None] >> np.arange(G)) & 1
    # |W_1 D| |W_0| <= sm |W_1| A0 for every D: A0 = |W_0| (diagonal D), the larger row of each pair (swaps)
    A0 = np.abs(W0) if s is not None else np.repeat(np.maximum(np.abs(W0[0::2]), np.abs(W0[1::2])), 2, axis=0)
    E = ((np.abs(W1) + E1) @ A0) * (sm * g / (1 - g) * (1 + 4 * U)) + (E1 @ A0) * sm * (1 + 4 * U) + TINY
    perm = lambda: ((2 * np.arange(G))[None, :, None] + (bits[:, :, None] ^ np.array([0, 1]))).reshape(-1, h)  # noqa: E731
    # (2^G, m, n0): each pattern's Jacobian; MaxMin: column 2j of W_1 D is column 2j + b_j of W_1
    Ms = (W1[None] * np.where(bits, 1.0, float(s))[:, None, :] if s is not None else W1[:, perm()].transpose(1, 0, 2)) @ W0
    A, lim = up(np.abs(Ms) + E), float(up(1 + (Ms.shape[1] * Ms.shape[2] + 2) * U))  # magnitudes, rounding included
    # l-inf: the largest row sum; l2: ||M||_2 <= ||M||_F decides most patterns, the others get a PSD proof
    mag = A.sum(axis=2).max(axis=1) if norm == "inf" else (A * A).sum(axis=(1, 2))
    bad = np.flatnonzero(~(mag * lim <= (bound if norm == "inf" else float(np.nextafter(bound * bound, 0)))))
    for k in range(0, len(bad), 1024):  # PSD proofs of 1024 patterns at a time, then one by one to name a failure
        if norm == "inf" or _norm_psd(Ms[bad[k:k + 1024]], E, bound) is not None:
            for code in bad[k:k + 1024]:
                why = "a row sum exceeds the bound" if norm == "inf" else _norm_psd(Ms[code], E, bound)
                if why is not None:
                    raise ProofRejected(f"certificate: pattern {code}: {why}")
    counts["checked"] += 2 ** G


def check_lipschitz_proof(net: Network, proof) -> CheckReport:
    """Check a Lipschitz ``proof`` (a dict or a JSON path) for ``net``; ``accepted`` only if every step holds.
    A network outside what the checker handles raises :class:`~verification.proofcheck.bounds.ChainError`."""
    t0, counts, b, mats = time.monotonic(), {"checked": 0}, None, list(float_weights(net)[0])
    try:
        p = read_header(proof, fingerprint(net), (VERSION,), KIND)
        norm, cert = p.get("norm"), p.get("certificate")
        if norm not in (2, "inf") or type(norm) is bool or not isinstance(cert, dict):
            raise ProofRejected(f"claim: norm {norm!r} is not 2 or 'inf', or the certificate is missing")
        c = None if p.get("output") is None else hexes(p["output"], "claim: output", net.out_dim)
        b, by = unhex(p.get("bound"), "claim: bound"), cert.get("by")
        if by == "unchecked":
            return CheckReport(False, f"not checkable: {cert.get('reason', 'no certificate')}", seconds=time.monotonic() - t0)
        if by not in ("sdp", "patterns", "norms"):
            raise ProofRejected(f"certificate: unknown kind {by!r}")
        {"sdp": _check_sdp, "patterns": _check_patterns, "norms": _check_norms}[by](net, mats, cert, norm, c, b, counts)
        msg = f"accepted: Lipschitz bound {b!r} (l{norm}{'' if c is None else ', scalar output'}) proven by {by} " \
              f"({counts['checked']} certificate(s) checked)"
    except ProofRejected as exc:
        b, msg = None, f"rejected: {' '.join(str(exc).split())}"
    except ChainError:  # not checkable (a ValueError, not malformed content)
        raise
    except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:  # malformed content
        b, msg = None, f"rejected: malformed proof ({type(exc).__name__}: {exc})"
    return CheckReport(b is not None, msg, checked=counts["checked"], seconds=time.monotonic() - t0, bound=b)
