"""Check a proof of a ``holds`` answer: the split tree covers every input box of the property, and on each
node the certificates refute the disjuncts they name (see docs/proofs.md for the format).

Steps, each named in the rejection message: the header (format, version), the network (fingerprint), each
region (box equal to the property's float box, which contains the exact box; output rows exactly float64),
the tree (every split point inside its box, so the two halves cover it; no missing or extra node), the
coverage (every leaf has every disjunct refuted on it or on an ancestor), then the bounds: each node's
pre-activation bounds are recomputed from its box and its parent's bounds
(:func:`~verification.proofcheck.bounds.layer_bounds`; a node marked ``"full": true`` back-substitutes every
neuron, not only those interval bounds leave unstable), and each certificate's lower bound must be ``> 0``:

* ``crown``: some row ``A_r y - b_r`` of the disjunct has a rigorous CROWN lower bound ``> 0``;
* ``alpha``: row ``row`` of the disjunct has a CROWN lower bound ``> 0`` when the listed unstable neurons
  use the given lower slopes (``[layer, neuron, slope]``, slope in ``[s, 1]``; alpha-CROWN's parameters);
* ``lp``: weights ``w >= 0`` on the disjunct's rows with ``sum_r w_r (A_r y - b_r)`` bounded ``> 0`` (an LP
  dual vector of the verifier's exact leaf; on a box where every neuron is stable the bound is exact);
* ``trusted``: decided by a solver the checker does not repeat (e.g. Z3); counted, never accepted.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from verification.network import Network
from verification.proofcheck._float import add_up, dn, mm, up
from verification.proofcheck.bounds import Chain, layer_bounds, rows_lower
from verification.spec import InputRegion, VnnlibProperty

__all__ = ["FORMAT", "VERSION", "CheckReport", "ProofRejected", "check_proof", "region_rows", "lp_lower", "CHUNK",
           "hexf", "unhex"]

FORMAT = "verification-proof"
VERSION = 1
CHUNK = 32  # boxes bounded per vectorised step (each box's rows: its own unstable neurons, zero-padded)


class ProofRejected(Exception):
    """A step of the check failed; the message names it."""


@dataclass(frozen=True)
class CheckReport:
    """``accepted``: every step checked and passed with no trusted certificate; ``message``: one line."""

    accepted: bool
    message: str
    regions: int = 0
    nodes: int = 0
    leaves: int = 0
    checked: int = 0
    trusted: int = 0
    seconds: float = 0.0
    bound: float | None = None  # a Lipschitz proof: the bound proven


def hexf(x: float) -> str:
    """A float64 as an exact string (``float.hex``)."""
    return float(x).hex()


def unhex(s, what: str) -> float:
    """Inverse of :func:`hexf`; finite values only."""
    try:
        v = float.fromhex(s) if isinstance(s, str) else math.nan
    except (ValueError, OverflowError):
        v = math.nan
    if not math.isfinite(v):
        raise ProofRejected(f"{what}: {s!r} is not a finite float64 in hex form")
    return v


def _float_up(q: Fraction) -> float:
    """Smallest float64 ``>= q``."""
    f = float(q)
    return math.nextafter(f, math.inf) if Fraction(f) < q else f


def region_rows(region: InputRegion) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows ``A_r y - b_r`` of every disjunct: ``(C, cb, grp)`` with ``C`` the float64 coefficients (each
    must equal the exact coefficient), ``cb = -b_up`` (``b_up >= b`` exactly, so ``C y + cb > 0`` implies
    ``A y - b > 0``) and ``grp`` the disjunct of each row."""
    C, cb, grp = [], [], []
    for k, oc in enumerate(region.outputs):
        if oc.A.shape[0] == 0:
            raise ProofRejected(f"disjunct {k} has no rows (every output is unsafe): nothing to refute")
        for r in range(oc.A.shape[0]):
            if any(Fraction(float(a)) != q for a, q in zip(oc.A[r], oc.A_exact[r])):
                raise ProofRejected(f"disjunct {k} row {r}: a coefficient is not exactly a float64 (unsupported)")
            C.append(oc.A[r])
            try:
                cb.append(-_float_up(oc.b_exact[r]))
            except OverflowError:
                raise ProofRejected(f"disjunct {k} row {r}: the bound is beyond the float64 range (unsupported)") from None
            grp.append(k)
    return np.array(C, dtype=np.float64), np.array(cb), np.array(grp)


def lp_lower(ch: Chain, lo: np.ndarray, hi: np.ndarray, pre: list, w: np.ndarray, C: np.ndarray,
             cb: np.ndarray) -> np.ndarray:
    """Rigorous lower bounds ``(B,)`` of ``sum_r w_r (C_r y + cb_r)`` over the boxes (``w >= 0``)."""
    M, E = mm(w[None, :], C)  # combined coefficients, error E
    v, e = mm(w, cb)
    yl, yu = pre[-1]
    ymax = np.maximum(np.abs(yl), np.abs(yu))
    ey, eey = mm(ymax, E[0])
    c = dn(dn(v - e) - up(ey + eey))
    return rows_lower(ch, lo, hi, pre, M, c[:, None])[:, 0]


def _load(proof) -> dict:
    if isinstance(proof, dict):
        return proof
    try:
        with open(Path(proof), "rb") as fh:
            return json.load(fh)
    except (OSError, ValueError, RecursionError) as exc:
        raise ProofRejected(f"proof file: {' '.join(str(exc).split())}") from None


@dataclass
class _Node:
    lo: np.ndarray
    hi: np.ndarray
    parent: int
    depth: int
    certs: list
    leaf: bool = True
    full: bool = False


def _tree(entries, lo, hi, K: int, nrows: list, where: str) -> list[_Node]:
    """Nodes of a region's tree from its preorder list (children: lower half, then upper half)."""
    if not isinstance(entries, list):
        raise ProofRejected(f"{where}: 'nodes' is not a list")
    nodes: list[_Node] = []
    stack = [(lo, hi, -1, 0)]
    while stack:
        lo, hi, par, d = stack.pop()
        i = len(nodes)
        if i >= len(entries):
            raise ProofRejected(f"{where}: the tree ends early (node {i} missing)")
        e = entries[i]
        if not isinstance(e, dict):
            raise ProofRejected(f"{where}, node {i}: not an object")
        certs = e.get("refute", [])
        if not isinstance(certs, list):
            raise ProofRejected(f"{where}, node {i}: 'refute' is not a list")
        for c in certs:
            if not (isinstance(c, dict) and type(c.get("k")) is int and 0 <= c["k"] < K
                    and c.get("by") in ("crown", "alpha", "lp", "trusted")):
                raise ProofRejected(f"{where}, node {i}: bad certificate {c!r}")
            if c["by"] == "lp":
                w = c.get("w")
                if not (isinstance(w, list) and len(w) == nrows[c["k"]]):
                    raise ProofRejected(f"{where}, node {i}: lp weights for disjunct {c['k']} need {nrows[c['k']]} entries")
            if c["by"] == "alpha" and not (type(c.get("row")) is int and 0 <= c["row"] < nrows[c["k"]]
                                           and isinstance(c.get("slopes"), list)):
                raise ProofRejected(f"{where}, node {i}: an alpha certificate needs a row of disjunct {c['k']} and slopes")
        if e.get("full", False) not in (True, False) or type(e.get("full", False)) is not bool:
            raise ProofRejected(f"{where}, node {i}: 'full' must be true or false")
        nodes.append(_Node(lo, hi, par, d, certs, full=e.get("full", False)))
        if "split" in e:
            s = e["split"]
            if not (isinstance(s, list) and len(s) == 2 and type(s[0]) is int and 0 <= s[0] < lo.size):
                raise ProofRejected(f"{where}, node {i}: bad split {s!r}")
            dim, p = s[0], unhex(s[1], f"{where}, node {i}: split point")
            if not lo[dim] <= p <= hi[dim]:
                raise ProofRejected(f"{where}, node {i}: split point {p!r} outside [{float(lo[dim])!r}, {float(hi[dim])!r}] of input {dim}")
            nodes[i].leaf = False
            lo2, hi1 = lo.copy(), hi.copy()
            hi1[dim], lo2[dim] = p, p
            stack.append((lo2, hi, i, d + 1))  # upper half, popped second
            stack.append((lo, hi1, i, d + 1))
    if len(nodes) != len(entries):
        raise ProofRejected(f"{where}: {len(entries) - len(nodes)} node(s) after the end of the tree")
    return nodes


def _check_region(ch: Chain, region: InputRegion, rp, r: int, counts: dict) -> None:
    where = f"region {r}"
    if not isinstance(rp, dict):
        raise ProofRejected(f"{where}: not an object")
    if not (isinstance(rp.get("lower"), list) and isinstance(rp.get("upper"), list)):
        raise ProofRejected(f"{where}: 'lower' and 'upper' must be lists")
    lo = np.array([unhex(v, f"{where} lower") for v in rp["lower"]])
    hi = np.array([unhex(v, f"{where} upper") for v in rp["upper"]])
    if lo.shape != region.lower.shape or not (np.array_equal(lo, region.lower) and np.array_equal(hi, region.upper)):
        raise ProofRejected(f"{where}: the box differs from the property's")
    # the float box must contain the box as written
    if any(Fraction(float(a)) > q for a, q in zip(lo, region.lower_exact)) or \
            any(Fraction(float(a)) < q for a, q in zip(hi, region.upper_exact)):
        raise ProofRejected(f"{where}: the float box does not contain the exact box")
    C, cb, grp = region_rows(region)
    K = len(region.outputs)
    nodes = _tree(rp.get("nodes"), lo, hi, K, [int((grp == k).sum()) for k in range(K)], where)
    covered: list[set] = []
    for i, nd in enumerate(nodes):
        covered.append((covered[nd.parent] if nd.parent >= 0 else set()) | {c["k"] for c in nd.certs})
        if nd.leaf:
            missing = sorted(set(range(K)) - covered[i])
            if missing:
                raise ProofRejected(f"{where}, node {i} (leaf): disjunct {missing[0]} is not refuted")
    counts["nodes"] += len(nodes)
    counts["leaves"] += sum(nd.leaf for nd in nodes)
    # bounds level by level: each node's bounds from its box and its parent's bounds
    pre: dict[int, list] = {}
    depth = max(nd.depth for nd in nodes)
    for d in range(depth + 1):
        level = [i for i, nd in enumerate(nodes) if nd.depth == d]
        for full in (False, True):
            group = [i for i in level if nodes[i].full == full]
            for s in range(0, len(group), CHUNK):
                ids = group[s:s + CHUNK]
                blo = np.stack([nodes[i].lo for i in ids])
                bhi = np.stack([nodes[i].hi for i in ids])
                prior = None
                if d > 0:
                    prior = [(np.stack([pre[nodes[i].parent][j][0] for i in ids]),
                              np.stack([pre[nodes[i].parent][j][1] for i in ids])) for j in range(ch.depth + 1)]
                try:
                    bnds = layer_bounds(ch, blo, bhi, prior, full=full)
                except ArithmeticError as exc:
                    raise ProofRejected(f"{where}, node {ids[0]}..{ids[-1]}: {exc}") from None
                for b, i in enumerate(ids):
                    pre[i] = [(l[b], u[b]) for l, u in bnds]
                _check_certs(ch, nodes, ids, blo, bhi, bnds, C, cb, grp, where, counts)
        for i in [i for i, nd in enumerate(nodes) if nd.depth == d - 1]:
            pre.pop(i, None)  # parents of the next level are at depth d


def _check_certs(ch, nodes, ids, blo, bhi, bnds, C, cb, grp, where, counts) -> None:
    need = [b for b, i in enumerate(ids) if any(c["by"] == "crown" for c in nodes[i].certs)]
    low = np.full((len(ids), C.shape[0]), -np.inf)
    if need:
        sel = np.array(need)
        low[sel] = rows_lower(ch, blo[sel], bhi[sel], [(l[sel], u[sel]) for l, u in bnds], C, cb)
    # the alpha certificates of the chunk in one back-substitution (one row each)
    al = [(b, n, c) for b, i in enumerate(ids) for n, c in enumerate(nodes[i].certs) if c["by"] == "alpha"]
    aval = {}
    if al:
        sel = np.array([b for b, _, _ in al])
        pre = [(l[sel], u[sel]) for l, u in bnds]
        alpha = _slopes(ch, pre, [(c["slopes"], f"{where}, node {ids[b]}") for b, _, c in al])
        rows = np.array([np.flatnonzero(grp == c["k"])[c["row"]] for _, _, c in al])
        v = rows_lower(ch, blo[sel], bhi[sel], pre, C[rows][:, None, :], cb[rows][:, None], alpha)[:, 0]
        aval = {(b, n): float(x) for (b, n, _), x in zip(al, v)}
    for b, i in enumerate(ids):
        for n, c in enumerate(nodes[i].certs):
            k = c["k"]
            if c["by"] == "trusted":
                counts["trusted"] += 1
                reason = str(c.get("reason", "unknown"))
                counts["reasons"][reason] = counts["reasons"].get(reason, 0) + 1
                continue
            if c["by"] == "crown":
                val = float(low[b, grp == k].max())
            elif c["by"] == "alpha":
                val = aval[(b, n)]
            else:
                w = np.array([unhex(v, f"{where}, node {i}: lp weight") for v in c["w"]])
                if np.any(w < 0):
                    raise ProofRejected(f"{where}, node {i}: disjunct {k}: a negative lp weight")
                one = [(l[b:b + 1], u[b:b + 1]) for l, u in bnds]
                val = float(lp_lower(ch, blo[b:b + 1], bhi[b:b + 1], one, w, C[grp == k], cb[grp == k])[0])
            if not val > 0:
                raise ProofRejected(f"{where}, node {i}: disjunct {k}: {c['by']} lower bound {val:.6g} is not > 0")
            counts["checked"] += 1


def _slopes(ch: Chain, pre: list, certs: list) -> list:
    """Lower slopes ``(A, 1, n_j)`` of the certificates ``[(entries, where)]``: CROWN's, replaced by the listed."""
    alpha = [np.where(u > -l, 1.0, s)[:, None, :] for (l, u), s in zip(pre[:-1], ch.s)]
    for a, (entries, where) in enumerate(certs):
        for e in entries:
            if not (isinstance(e, list) and len(e) == 3 and type(e[0]) is int and type(e[1]) is int
                    and 0 <= e[0] < ch.depth and 0 <= e[1] < alpha[e[0]].shape[-1]):
                raise ProofRejected(f"{where}: bad slope entry {e!r}")
            v = unhex(e[2], f"{where}: slope")
            if not ch.s[e[0]] <= v <= 1.0:
                raise ProofRejected(f"{where}: slope {v!r} of layer {e[0]} neuron {e[1]} outside [{ch.s[e[0]]}, 1]")
            alpha[e[0]][a, 0, e[1]] = v
    return alpha


def check_proof(net: Network, prop: VnnlibProperty, proof) -> CheckReport:
    """Check ``proof`` (a dict, or a path to the JSON file) that ``net`` satisfies ``prop``.  Returns a
    :class:`CheckReport`; a failed step gives ``accepted=False`` with the step in ``message``.  A network
    outside what the checker handles raises :class:`~verification.proofcheck.bounds.ChainError`."""
    t0 = time.monotonic()
    counts = {"nodes": 0, "leaves": 0, "checked": 0, "trusted": 0, "reasons": {}}

    def report(ok: bool, msg: str) -> CheckReport:
        return CheckReport(ok, msg, len(prop.regions), counts["nodes"], counts["leaves"], counts["checked"],
                           counts["trusted"], time.monotonic() - t0)

    ch = Chain.of(net)
    try:
        p = _load(proof)
        if not isinstance(p, dict) or p.get("format") != FORMAT:
            raise ProofRejected(f"header: not a {FORMAT} file")
        if type(p.get("version")) is not int or p["version"] != VERSION:
            raise ProofRejected(f"header: version {p.get('version')!r}, this checker reads version {VERSION}")
        if not isinstance(p.get("network"), dict) or p["network"].get("sha256") != ch.fingerprint():
            raise ProofRejected("network: the fingerprint differs (the proof was made for another network)")
        shape = {"in_dim": net.in_dim, "out_dim": net.out_dim, "widths": [int(w.shape[0]) for w in ch.W]}
        if any(p["network"].get(key) != val or type(p["network"].get(key)) is not type(val) for key, val in shape.items()):
            raise ProofRejected(f"network: in_dim / out_dim / widths differ from the network's {shape}")
        if not isinstance(p.get("property"), dict) or type(p["property"].get("regions")) is not int \
                or p["property"]["regions"] != len(prop.regions):
            raise ProofRejected(f"property: the proof is for {p.get('property', {}).get('regions') if isinstance(p.get('property'), dict) else '?'} "
                                f"region(s), the property has {len(prop.regions)}")
        regions = p.get("regions")
        if not isinstance(regions, list) or len(regions) != len(prop.regions):
            raise ProofRejected(f"property: the proof has {len(regions) if isinstance(regions, list) else 'no'} "
                                f"region(s), the property {len(prop.regions)}")
        if net.in_dim != prop.in_dim or net.out_dim != prop.out_dim:
            raise ProofRejected("property: its dimensions differ from the network's")
        for r, (region, rp) in enumerate(zip(prop.regions, regions)):
            try:
                _check_region(ch, region, rp, r, counts)
            except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:  # malformed content
                raise ProofRejected(f"region {r}: malformed proof ({type(exc).__name__}: {exc})") from None
    except ProofRejected as exc:
        return report(False, f"rejected: {' '.join(str(exc).split())}")
    if counts["trusted"]:
        why = ", ".join(f"{n} {k}" for k, n in sorted(counts["reasons"].items()))
        return report(False, f"not fully checked: {counts['trusted']} of {counts['trusted'] + counts['checked']} "
                             f"certificates are trusted, not checked ({why}); the other {counts['checked']} hold")
    return report(True, f"accepted: {counts['checked']} certificates on {counts['nodes']} boxes "
                        f"({counts['leaves']} leaves, {len(prop.regions)} region(s)) checked")
