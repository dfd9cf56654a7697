"""Check a proof of a certified Lipschitz bound (``lipschitz(..., proof=PATH)``; docs/proofs.md).

The network ``f = W_L phi_L(... phi_1(W_0 x + b_0) ...) + b_L`` must be an alternating chain as loaded.  A claim
is ``|c.(f(x) - f(y))| <= bound ||x - y||`` (or ``||f(x) - f(y)|| <= bound ||x - y||`` without ``c``) in the l2
or l-inf norm, proved by one of:

* ``sdp`` (LipSDP-Neuron / -Layer, ECLipsE): multipliers ``T_k >= 0`` per activation layer (slope-restricted on
  ``[a_k, b_k]``, from the activation's ``slope_bounds()``), ``rho`` (and ``tau >= 0`` for l-inf).  The checker
  builds the LMI from the weights and proves it PSD (:mod:`verification.proofcheck.psd`):

  - l2 (Fazlyab et al., NeurIPS 2019, Thm 2): blocks ``D_0 = rho I``, ``D_k = 2 T_k``, plus
    ``2 a_k b_k W_{k-1}ᵀ T_k W_{k-1}`` on ``D_{k-1}``, ``-(a_k + b_k) W_{k-1}ᵀ T_k`` between ``k-1`` and ``k``,
    ``-W_Lᵀ W_L`` on ``D_L`` (``W_L`` replaced by ``cᵀ W_L``); then ``bound² >= rho``.  When ``W_0`` has
    fewer rows than columns the input block is taken in the coordinates ``x = W_0ᵀ v`` (congruence by
    ``diag(W_0ᵀ, I, ...)``: ``D_0 = rho G + ...`` with ``G = W_0 W_0ᵀ``; the rest of the input space only adds
    ``rho ||w||²``, so PSD is unchanged).
  - l-inf, scalar output (Wang et al. 2022; Pauli et al. 2024): ``D_0 = diag(tau)``, a border entry
    ``2 rho - sum tau`` coupled to block ``L`` by ``cᵀ W_L``; then ``bound >= rho`` (``|c.Δf| <= rho ||Δx||_inf``).
    Without ``c``: one part per output row ``e_i``, ``bound >= max rho``.

  Neurons whose incoming weight row is zero are constant (their increment is 0) and are removed first.
* ``norms`` (the ``naive`` product): per affine layer ``s_j >= ||W_j||`` (l2: ``[[s_j I, W_j], [W_jᵀ, s_j I]]``
  PSD, no rounding in its entries; l-inf: rigorous row sums) and ``bound >= prod s_j * prod Lip(phi_k)`` rounded up.
* ``unchecked``: not checked; never accepted.

Matrices of at most ``EXACT_MAX_N`` rows are built and factorised in rationals; larger ones in float64 with an
entrywise error bound ``gamma_d |K|`` (``|K|``: the same assembly on absolute values; ``d`` bounds the number
of roundings along any path of the evaluation, Higham Lemma 3.1).
"""

from __future__ import annotations

import hashlib
import time
from fractions import Fraction

import numpy as np

from verification.network import Network
from verification.proofcheck._float import TINY, U, mm, up
from verification.proofcheck.bounds import ChainError
from verification.proofcheck.checker import FORMAT, VERSION, CheckReport, ProofRejected, _load, unhex
from verification.proofcheck.psd import EXACT_MAX_N, exact_psd, float_psd

__all__ = ["KIND", "check_lipschitz_proof", "fingerprint", "live_masks", "lmi_psd"]

KIND = "lipschitz"
MAX_N = 6000  # larger LMIs / Gram matrices are not checked (reported, never accepted)


def fingerprint(net: Network) -> str:
    """SHA-256 of the affine layers (shapes, float64 weights and biases) and the activations' descriptions."""
    h = hashlib.sha256()
    for layer in net.affine_layers:
        W = np.ascontiguousarray(layer.as_matrix(), dtype=np.float64)
        h.update(np.asarray(W.shape, dtype=np.int64).tobytes() + W.tobytes())
        h.update(np.ascontiguousarray(layer.bias, dtype=np.float64).tobytes())
    for act in net.activations:
        h.update(act.describe().encode() + b";")
    return h.hexdigest()


def live_masks(mats: list) -> list[np.ndarray]:
    """Per activation layer, the neurons kept: those whose incoming row is not zero, layer by layer after
    removing the columns of the neurons dropped before (one neuron is kept in a layer with none)."""
    mats, masks = [np.asarray(m) for m in mats], []
    for k in range(len(mats) - 1):
        live = np.any(mats[k] != 0, axis=1)
        if not live.any():
            live[0] = True
        masks.append(live)
        mats[k], mats[k + 1] = mats[k][live], mats[k + 1][:, live]
    return masks


def _frac(a) -> np.ndarray:
    return np.vectorize(Fraction, otypes=[object])(np.asarray(a, dtype=np.float64))


def _assemble(Ws, pq, ts, rho, tau, WL, c, norm, sgn):
    """The LMI matrix (see the module docstring) from numbers of one kind (float64 or ``Fraction`` arrays);
    ``sgn = +1`` with absolute values gives ``|K|``, the magnitude used for the rounding-error bound."""
    wl = WL if c is None else c[None, :] @ WL
    if not Ws:  # no activation: ||wl|| <= bound
        if norm == "inf":
            raise ProofRejected("certificate: an sdp proof of an affine network in l-inf (use norms)")
        side = wl @ wl.T if wl.shape[0] < wl.shape[1] else wl.T @ wl
        return rho * np.eye(side.shape[0], dtype=side.dtype) + sgn * side
    Ws = list(Ws)
    base = rho * np.eye(Ws[0].shape[1], dtype=Ws[0].dtype)
    if norm == 2 and Ws[0].shape[0] < Ws[0].shape[1]:
        G = Ws[0] @ Ws[0].T
        Ws[0], base = G, rho * G
    dims = [Ws[0].shape[1]] + [W.shape[0] for W in Ws]
    st = np.concatenate([[0], np.cumsum(dims)]).astype(int)
    N = int(st[-1]) + (norm == "inf")
    K = np.zeros((N, N), dtype=Ws[0].dtype)
    b = [slice(st[k], st[k + 1]) for k in range(len(dims))]
    if norm == 2:
        K[b[0], b[0]] = base
    else:
        K[b[0], b[0]] = np.diag(tau)
        K[-1, -1] = 2 * rho + sgn * tau.sum()
    for k, (W, (p, q), t) in enumerate(zip(Ws, pq, ts), start=1):
        TW = t[:, None] * W
        K[b[k - 1], b[k - 1]] += p * (W.T @ TW)
        E = (sgn * q) * TW.T
        K[b[k - 1], b[k]] += E
        K[b[k], b[k - 1]] += E.T
        K[b[k], b[k]] += np.diag(2 * t)
    if norm == 2:
        K[b[-1], b[-1]] += sgn * (wl.T @ wl)
    else:
        K[b[-1], -1] += wl[0]
        K[-1, b[-1]] += wl[0]
    return K


def lmi_psd(Ws, pq, ts, rho, tau, WL, c, norm) -> str | None:
    """``None`` if the LMI at these float64 numbers is proven PSD, else the failing step."""
    n0 = Ws[0].shape[1] if Ws else WL.shape[1]
    N = (min(n0, Ws[0].shape[0]) if Ws else min(WL.shape)) + sum(W.shape[0] for W in Ws) + (norm == "inf")
    if N > MAX_N:
        raise ChainError(f"the LMI has {N} rows; the checker handles at most {MAX_N}")
    work = sum(W.size for W in Ws) * (N if Ws else 1) + WL.size * min(WL.shape)
    if N <= EXACT_MAX_N and work <= 200_000:
        fr = _frac
        K = _assemble([fr(W) for W in Ws], [(Fraction(2) * Fraction(a) * Fraction(b_), Fraction(a) + Fraction(b_))
                                             for a, b_ in pq], [fr(t) for t in ts], Fraction(rho),
                      None if tau is None else fr(tau), fr(WL), None if c is None else fr(c), norm, -1)
        return exact_psd(K.tolist())
    fq = [(2.0 * a * b_, a + b_) for a, b_ in pq]
    K = _assemble(Ws, fq, ts, rho, tau, WL, c, norm, -1)
    A = _assemble([np.abs(W) for W in Ws], [(abs(p), abs(q)) for p, q in fq], ts, rho,
                  None if tau is None else np.abs(tau), np.abs(WL), None if c is None else np.abs(c), norm, 1)
    m = WL.shape[0]
    d = 2 * n0 + 2 * max([W.shape[0] for W in Ws] + [n0, m]) + 2 * m + 16
    g = d * U / (1 - d * U)
    E = A * (g / (1 - g) * (1 + 4 * U)) + TINY
    # rows that are structurally zero (same assembly on 0/1 indicators: no rounding) are zero in the exact
    # matrix: removing them does not change PSD-ness
    nz = lambda a: (np.asarray(a) != 0).astype(np.float64)  # noqa: E731
    pat = _assemble([nz(W) for W in Ws], [(float(p != 0), float(q != 0)) for p, q in fq], [nz(t) for t in ts],
                    float(rho != 0), None if tau is None else nz(tau), nz(WL), None if c is None else nz(c), norm, 1)
    keep = np.flatnonzero(pat.any(axis=1))
    why, _ = float_psd(K[np.ix_(keep, keep)], E[np.ix_(keep, keep)])
    return why


def _norm_psd(W: np.ndarray, c, s: float) -> str | None:
    """``None`` if ``||W||_2 <= s`` (``W`` replaced by ``cᵀW``) is proven: ``[[s I, W], [Wᵀ, s I]]`` is PSD."""
    m, n = (1 if c is not None else W.shape[0]), W.shape[1]
    if m + n > MAX_N:
        raise ChainError(f"a layer of {m} x {n}: the checker handles norm proofs of at most {MAX_N} rows and columns")
    if m + n <= EXACT_MAX_N:
        M = _frac(W) if c is None else _frac(c)[None, :] @ _frac(W)
        S = np.block([[np.eye(m, dtype=object) * Fraction(s), M], [M.T, np.eye(n, dtype=object) * Fraction(s)]])
        return exact_psd(S.tolist())
    M, EM = (W, np.zeros_like(W)) if c is None else mm(c[None, :], W)
    S = np.block([[s * np.eye(m), M], [M.T, s * np.eye(n)]])
    E = np.block([[np.zeros((m, m)), EM], [EM.T, np.zeros((n, n))]])
    return float_psd(S, E)[0]


def _hexes(v, what: str, n: int | None = None) -> np.ndarray:
    if not isinstance(v, list) or (n is not None and len(v) != n):
        raise ProofRejected(f"{what}: expected a list of {n if n is not None else 'some'} numbers")
    return np.array([unhex(x, what) for x in v], dtype=np.float64)


def _check_sdp(net, Ws, WL, cert, norm, c, bound: float, counts: dict) -> None:
    pq = []
    for k, act in enumerate(net.activations):
        sb = act.slope_bounds() if act.elementwise else None
        if sb is None:
            raise ChainError(f"activation {k} ({act.describe()}) is not slope-restricted elementwise")
        pq.append((float(sb[0]), float(sb[1])))
    parts = cert.get("parts")
    rows = [None] if (norm == 2 or c is not None) else list(range(net.out_dim))
    if not isinstance(parts, list) or len(parts) != len(rows):
        raise ProofRejected(f"certificate: expected {len(rows)} part(s)")
    for i, (part, row) in enumerate(zip(parts, rows)):
        where = f"certificate part {i}"
        if not isinstance(part, dict):
            raise ProofRejected(f"{where}: not an object")
        rho = unhex(part.get("rho"), f"{where}: rho")
        if not rho >= 0:
            raise ProofRejected(f"{where}: rho is negative")
        Tin = part.get("T")
        if not isinstance(Tin, list) or len(Tin) != len(Ws):
            raise ProofRejected(f"{where}: 'T' needs one list per activation layer ({len(Ws)})")
        ts = [_hexes(t, f"{where}: T[{k}]", W.shape[0]) for k, (t, W) in enumerate(zip(Tin, Ws))]
        if any(np.any(t < 0) for t in ts):
            raise ProofRejected(f"{where}: a multiplier T is negative")
        tau = None
        if norm == "inf":
            tau = _hexes(part.get("tau"), f"{where}: tau", net.in_dim)
            if np.any(tau < 0):
                raise ProofRejected(f"{where}: a multiplier tau is negative")
        cc = c if row is None else np.eye(net.out_dim)[row]
        if norm == 2 and Fraction(bound) ** 2 < Fraction(rho) or norm == "inf" and bound < rho:
            raise ProofRejected(f"{where}: the bound {bound!r} is below what rho = {rho!r} proves")
        masks = live_masks(Ws + [WL])
        W2 = [W for W in Ws]
        for k, live in enumerate(masks):
            W2[k] = W2[k][live]
            ts[k] = ts[k][live]
            if k + 1 < len(W2):
                W2[k + 1] = W2[k + 1][:, live]
        WL2 = WL[:, masks[-1]] if masks else WL
        why = lmi_psd(W2, pq, ts, rho, tau, WL2, cc, norm)
        if why is not None:
            raise ProofRejected(f"{where}: LMI: {why}")
        counts["checked"] += 1


def _check_norms(net, mats, cert, norm, c, bound: float, counts: dict) -> None:
    s = _hexes(cert.get("layers"), "certificate: layers", len(mats))
    prod = 1.0
    for j, (M, sj) in enumerate(zip(mats, s)):
        last = c is not None and j == len(mats) - 1
        if norm == 2:
            if not sj >= 0:
                raise ProofRejected(f"certificate: layer {j}: negative norm bound")
            why = _norm_psd(M, c if last else None, sj)
        else:
            if last:  # the l1 norm of cᵀW: each entry's magnitude plus its rounding bound
                C, E = mm(c[None, :], M)
                C, E = mm(up(np.abs(C) + E), np.ones(M.shape[1]))
            else:
                C, E = mm(np.abs(M), np.ones(M.shape[1]))
            row = float(up(C + E).max())
            why = None if row <= sj else f"max row sum {row!r} exceeds {sj!r}"
        if why is not None:
            raise ProofRejected(f"certificate: layer {j}: norm bound {sj!r}: {why}")
        prod = float(up(prod * sj))
        counts["checked"] += 1
    for act in net.activations:
        prod = float(up(prod * float(act.lipschitz(norm))))  # the activation's Lipschitz constant (a fact)
    if not bound >= prod:
        raise ProofRejected(f"certificate: the bound {bound!r} is below the product {prod!r} of the norms")


def check_lipschitz_proof(net: Network, proof) -> CheckReport:
    """Check a Lipschitz ``proof`` (a dict or a JSON path) for ``net``; ``accepted`` only if every step holds.
    A network outside what the checker handles raises :class:`~verification.proofcheck.bounds.ChainError`."""
    t0 = time.monotonic()
    counts = {"checked": 0}
    if not net.is_canonical:
        raise ChainError("the checker needs an alternating chain of affine layers and activations")
    bound = float("nan")

    def report(ok: bool, msg: str) -> CheckReport:
        return CheckReport(ok, msg, checked=counts["checked"], seconds=time.monotonic() - t0, bound=bound)

    try:
        p = _load(proof)
        if not isinstance(p, dict) or p.get("format") != FORMAT or p.get("kind") != KIND:
            raise ProofRejected(f"header: not a {FORMAT} file of kind {KIND!r}")
        if type(p.get("version")) is not int or p["version"] != VERSION:
            raise ProofRejected(f"header: version {p.get('version')!r}, this checker reads version {VERSION}")
        if not isinstance(p.get("network"), dict) or p["network"].get("sha256") != fingerprint(net):
            raise ProofRejected("network: the fingerprint differs (the proof was made for another network)")
        norm = p.get("norm")
        if norm not in (2, "inf") or type(norm) is bool:
            raise ProofRejected(f"claim: norm {norm!r} is not 2 or 'inf'")
        c = None if p.get("output") is None else _hexes(p["output"], "claim: output", net.out_dim)
        b = unhex(p.get("bound"), "claim: bound")
        cert = p.get("certificate")
        if not isinstance(cert, dict):
            raise ProofRejected("certificate: missing")
        mats = [np.asarray(layer.as_matrix(), dtype=np.float64) for layer in net.affine_layers]
        if not all(np.isfinite(m).all() for m in mats):
            raise ChainError("the network has a NaN or infinite weight")
        if cert.get("by") == "unchecked":
            return report(False, f"not checkable: {cert.get('reason', 'no certificate')}")
        if cert.get("by") == "sdp":
            _check_sdp(net, mats[:-1], mats[-1], cert, norm, c, b, counts)
        elif cert.get("by") == "norms":
            _check_norms(net, mats, cert, norm, c, b, counts)
        else:
            raise ProofRejected(f"certificate: unknown kind {cert.get('by')!r}")
        bound = b
    except ProofRejected as exc:
        return report(False, f"rejected: {' '.join(str(exc).split())}")
    except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:  # malformed content
        return report(False, f"rejected: malformed proof ({type(exc).__name__}: {exc})")
    out = "" if c is None else ", scalar output"
    return report(True, f"accepted: Lipschitz bound {b!r} (l{norm}{out}) proven by {cert['by']} "
                        f"({counts['checked']} certificate(s) checked)")
