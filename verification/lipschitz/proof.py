"""Proof files of certified Lipschitz bounds (``lipschitz(..., proof=PATH)``; format in docs/proofs.md).

The SDP methods leave ``details["_proof"] = {"parts": [...]}`` (the certified multipliers of each LMI, from
:func:`sdp_part`); ``naive`` leaves its per-layer norms.  :func:`write_proof` turns them into the proof file,
runs the independent checker (:mod:`verification.proofcheck.lipschitz`) on it and, where the checker's proven
rounding bounds need more room than the method's own float64 certificate, raises ``rho`` (or the layer norms)
by a tiny relative amount until it accepts; the reported value is then the proven bound.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from fractions import Fraction

import numpy as np

from typing import TYPE_CHECKING

from verification.lipschitz.result import LipschitzResult, strip_proof_data
from verification.network import Network
from verification.errors import UnsupportedLayerError
from verification.proofcheck.bounds import ChainError
from verification.proofcheck.checker import FORMAT, VERSION, CheckReport, hexf
from verification.proofcheck.lipschitz import KIND, check_lipschitz_proof, fingerprint, live_masks

if TYPE_CHECKING:  # annotations only: the registry imports this module without loading scipy
    from verification.lipschitz.sdp.certificate import Certificate
    from verification.lipschitz.sdp.chain import ChainSDP

__all__ = ["sdp_part", "write_proof", "strip_proof_data"]

BUMPS = 10  # relative increases 2^-44 * 16^k, k < BUMPS
DELTAS = (1e-12, 1e-10, 1e-8)  # then multipliers rescaled by (1 + delta)^e (as chain.certify's repair)


def _grouped(qc, y: np.ndarray) -> dict | None:
    """A grouped layer's multipliers ``lambda_j I + gamma_j b_j b_jᵀ`` per group (``b_j``: the QC's unit basis
    vector of the preserved direction; ``None`` if it has more than one per group)."""
    g = qc.width // max(1, int(np.sum(qc.nonneg)))
    lam, gam, b = np.zeros(qc.width // g), np.zeros(qc.width // g), np.zeros((qc.width // g, g))
    for vec, var in zip(qc.vectors, qc.var):
        j = int(np.flatnonzero(vec)[0]) // g
        if qc.nonneg[var]:
            lam[j] = y[var]
        elif np.any(b[j]):
            return None
        else:
            gam[j], b[j] = y[var], vec[j * g:(j + 1) * g]
    return {"lambda": lam, "gamma": gam, "b": b}


def _checker_form(act, t: dict, f: float = 1.0) -> dict:
    """The checker's multipliers of a grouped layer: ``lambda_j I + gamma_j b bᵀ`` is twice ``lambda'_j I +
    gamma'_j u uᵀ`` for the checker's ``u`` (GroupSort: ``1``; Householder, ``d = 2``: ``(-v_2, v_1)``), ``b``
    parallel to ``u`` (else the part is not checkable: ``ValueError``)."""
    g, n = act.group_size, t["b"].size
    if t["lambda"].size != n // g:  # the layer form: one lambda, no gamma
        t = {"lambda": np.full(n // g, t["lambda"][0]), "gamma": np.zeros(n // g), "b": np.zeros((n // g, g))}
    u = np.array([-act.v[1], act.v[0]]) if act.describe() == "householder(d=2)" else np.ones(g)
    if act.describe().startswith("householder") and g != 2 and np.any(t["gamma"]):
        raise ValueError(f"{act.describe()}: the checker has no preserved direction for d > 2")
    gam = np.zeros_like(t["gamma"])
    for j, (gj, b) in enumerate(zip(t["gamma"], t["b"])):
        if gj != 0 and abs(abs(b @ u) - np.linalg.norm(b) * np.linalg.norm(u)) > 1e-9 * np.linalg.norm(u):
            raise ValueError(f"{act.describe()}: the preserved directions are not the checker's")
        gam[j] = gj * (b @ u) ** 2 / (u @ u) ** 2
    return {"lambda": [hexf(v) for v in t["lambda"] * f / 2], "gamma": [hexf(v) for v in gam * f / 2]}


def sdp_part(sdp: ChainSDP, cert: Certificate) -> dict | None:
    """The certified multipliers of one chain LMI (``None`` if not certified or a QC the checker lacks)."""
    y = cert.multipliers
    if not cert.certified or y is None:
        return None
    ts = []
    for qc, off in zip(sdp.qcs, sdp.var_offsets):
        if qc.unit and qc.kind.startswith("slope"):
            ts.append(np.asarray(y[off + qc.var], dtype=np.float64))
            continue
        t = _grouped(qc, np.asarray(y[off:off + qc.n_vars], dtype=np.float64))
        if t is None:
            return None
        ts.append(t)
    tau = np.asarray(y[1:1 + int(sdp.blocks[1])], dtype=np.float64) if sdp.norm == "inf" else None
    return {"rho": float(cert.rho), "T": ts, "tau": tau}


def _sqrt_up(r: float) -> float:
    b = math.sqrt(r)
    while Fraction(b) ** 2 < Fraction(r):
        b = math.nextafter(b, math.inf)
    return b


def _certificate(net: Network, res: LipschitzResult, scale: float, delta: float = 0.0) -> tuple[dict, float]:
    """The certificate with every ``rho`` (or layer norm) times ``scale``, and the bound it proves; with ``delta``
    the multipliers of activation layer ``k`` of ``l`` are times ``(1 + delta)^(2(l - k) - 1)``, ``tau`` and ``rho``
    times ``(1 + delta)^(2l + 2)``: room in every block where a tight one needs more than ``rho`` gives."""
    data = res.details.get("_proof") or {}
    parts = data.get("parts")
    if res.method == "naive" and "layer_norms" in res.details:
        layers = [float(s) * scale for s in res.details["layer_norms"]]
        prod = 1.0
        for v in layers + [float(a.lipschitz(res.norm)) for a in net.activations]:
            prod = float(np.nextafter(prod * v, np.inf))
        return {"by": "norms", "layers": [hexf(v) for v in layers]}, prod
    if res.method == "exact":
        if not net.activations:  # an affine network: the norm of its one layer
            return {"by": "norms", "layers": [hexf(res.value * scale)]}, float(np.nextafter(res.value * scale, np.inf))
        return {"by": "patterns"}, res.value * scale
    if not parts or any(p is None for p in parts):
        return {"by": "unchecked", "reason": f"method {res.method} gives no checkable certificate here"}, res.value
    masks = live_masks([layer.as_matrix() for layer in net.affine_layers], [not a.elementwise for a in net.activations])
    out, worst, l = [], 0.0, len(net.activations)
    for p in parts:
        rho = p["rho"] * scale * (1 + delta) ** (2 * l + 2) if p["rho"] > 0 else 0.0
        ts = []
        for k, (t, live, act) in enumerate(zip(p["T"], masks, net.activations)):
            f = (1 + delta) ** (2 * (l - k) - 1)
            if isinstance(t, dict):  # a grouped layer (no neuron dropped)
                try:
                    ts.append(_checker_form(act, t, f))
                except ValueError as exc:
                    return {"by": "unchecked", "reason": str(exc)}, res.value
                continue
            full = np.zeros(live.size)
            full[live] = t * f  # constant neurons (dropped by the LMI) get 0
            ts.append([hexf(v) for v in full])
        part = {"rho": hexf(rho), "T": ts}
        if p["tau"] is not None:
            part["tau"] = [hexf(v) for v in p["tau"] * (1 + delta) ** (2 * l + 2)]
        out.append(part)
        worst = max(worst, _sqrt_up(rho) if res.norm == 2 else rho)
    return {"by": "sdp", "parts": out}, worst


def write_proof(net: Network, res: LipschitzResult, path, c: np.ndarray | None) -> LipschitzResult:
    """Write the proof of the certified ``res`` (computed on the canonical ``net``) to ``path`` and check it;
    returns ``res`` with ``details["proof"]`` (and the proven value if it had to be raised)."""
    t0 = time.perf_counter()
    try:
        sha = fingerprint(net)
    except UnsupportedLayerError as exc:  # a layer too large for a dense matrix: nothing the checker can do
        sha, too_large = "unavailable", " ".join(str(exc).split())
    else:
        too_large = None
    head = {"format": FORMAT, "version": VERSION, "kind": KIND,
            "network": {"sha256": sha, "in_dim": net.in_dim, "out_dim": net.out_dim,
                        "widths": [int(layer.out_features) for layer in net.affine_layers]},
            "method": res.method, "norm": res.norm, "output": None if c is None else [hexf(v) for v in c]}
    rep, bumps = None, 0
    tries = [(k, 0.0) for k in range(BUMPS + 1)] + ([(2, d) for d in DELTAS] if res.details.get("_proof") else [])
    for bumps, (k, delta) in enumerate(tries):
        scale = 1.0 if k == 0 else 1.0 + 2.0 ** -44 * 16.0 ** (k - 1)
        if too_large is not None:
            cert, proven = {"by": "unchecked", "reason": too_large}, res.value
        else:
            cert, proven = _certificate(net, res, scale, delta)
        bound = max(float(res.value), proven)
        proof = dict(head, bound=hexf(bound), certificate=cert)
        try:
            if too_large is not None:
                raise ChainError(too_large)
            rep = check_lipschitz_proof(net, proof)
        except (ChainError, UnsupportedLayerError, MemoryError) as exc:  # e.g. a layer too large to check
            rep = CheckReport(False, f"not checkable: {' '.join(str(exc).split())}")
        if rep.accepted or not rep.message.startswith("rejected"):
            break
    proof["stats"] = {"seconds": res.seconds, "bumps": bumps, "check_seconds": rep.seconds}
    text = json.dumps(proof, separators=(",", ":"))
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    info = {"path": str(path), "bytes": len(text), "accepted": rep.accepted, "message": rep.message,
            "bumps": bumps, "check_seconds": rep.seconds, "write_seconds": time.perf_counter() - t0}
    value = bound if rep.accepted else res.value
    return replace(res, value=value, details=dict(res.details, proof=info))
