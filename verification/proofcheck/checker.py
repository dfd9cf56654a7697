"""Check a proof of a ``holds`` answer (docs/proofs.md): the trees cover every input box of the property, and on each
node the certificates refute the disjuncts they name.  Steps, each named in the rejection message: the header
(format, version), the network (fingerprint), each region (box equal to the property's float box, which contains the
exact box; output rows exactly float64), the trees (input splits inside their box; a ReLU split ``[layer, neuron]``
has the children ``z >= 0``, ``z <= 0``; no missing or extra node), the coverage (each disjunct refuted on every
leaf, or an ancestor, of some tree), then each node's pre-activation bounds from its box, its parent's bounds and its
split constraints (:func:`~verification.proofcheck.bounds.layer_bounds`), and each certificate's lower bound must be
``> 0``: ``crown`` (some row of the disjunct), ``alpha`` (one row, given lower slopes), ``lp`` (rows combined with
weights ``w >= 0``), ``beta`` (``lp`` with slopes and multipliers ``beta >= 0`` of the node's split constraints:
beta-CROWN), ``empty`` (the clamped bounds cross); ``trusted`` ones are counted, never accepted."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from verification.network import Network
from verification.proofcheck._float import dn, mm, up
from verification.proofcheck.bounds import Chain, layer_bounds, rows_lower
from verification.spec import InputRegion, VnnlibProperty

__all__ = ["FORMAT", "VERSION", "CheckReport", "ProofRejected", "check_proof", "RELU_VERSION", "region_rows",
           "combine", "CHUNK", "hexf", "unhex", "hexes", "read_header"]

FORMAT = "verification-proof"
VERSION = 1  # input-split trees only (also the Lipschitz proofs)
RELU_VERSION = 2  # several trees per region, ReLU splits, ``beta`` and ``empty`` certificates
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


def hexes(v, what: str, n: int) -> np.ndarray:
    """A list of ``n`` :func:`hexf` strings as a float64 array."""
    if not isinstance(v, list) or len(v) != n:
        raise ProofRejected(f"{what}: expected a list of {n} numbers")
    return np.array([unhex(x, what) for x in v], dtype=np.float64)


def read_header(proof, fingerprint: str, versions: tuple, kind: str | None = None) -> dict:
    """The proof (a dict, or a path to the JSON file) once its header and network fingerprint are checked."""
    if not isinstance(proof, dict):
        try:
            with open(Path(proof), "rb") as fh:
                proof = json.load(fh)
        except (OSError, ValueError, RecursionError) as exc:
            raise ProofRejected(f"proof file: {' '.join(str(exc).split())}") from None
    if not isinstance(proof, dict) or proof.get("format") != FORMAT or (kind and proof.get("kind") != kind):
        raise ProofRejected(f"header: not a {FORMAT} file" + (f" of kind {kind!r}" if kind else ""))
    if type(proof.get("version")) is not int or proof["version"] not in versions:
        raise ProofRejected(f"header: version {proof.get('version')!r}, this checker reads version(s) "
                            f"{' and '.join(map(str, versions))}")
    if not isinstance(proof.get("network"), dict) or proof["network"].get("sha256") != fingerprint:
        raise ProofRejected("network: the fingerprint differs (the proof was made for another network)")
    return proof


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
            try:  # the smallest float64 >= b
                f = float(oc.b_exact[r])
                cb.append(-(math.nextafter(f, math.inf) if Fraction(f) < oc.b_exact[r] else f))
            except OverflowError:
                raise ProofRejected(f"disjunct {k} row {r}: the bound is beyond the float64 range (unsupported)") from None
            C.append(oc.A[r])
            grp.append(k)
    return np.array(C, dtype=np.float64), np.array(cb), np.array(grp)


def combine(w: np.ndarray, C: np.ndarray, cb: np.ndarray, out: tuple) -> tuple[np.ndarray, np.ndarray]:
    """``(M, c)``: ``M . y + c <= sum_r w_r (C_r y + cb_r)`` for ``y`` within the output bounds ``out``."""
    M, E = mm(w[None, :], C)  # combined coefficients, error E
    v, e = mm(w, cb)
    ey, eey = mm(np.maximum(np.abs(out[0]), np.abs(out[1])), E[0])
    return M[0], dn(dn(v - e) - up(ey + eey))


@dataclass
class _Node:
    lo: np.ndarray
    hi: np.ndarray
    parent: int
    depth: int
    certs: list
    leaf: bool
    full: bool | None  # the ``full`` argument of ``layer_bounds``
    signs: list | None  # per activation (n_j,) int8: the ReLU split constraints s z >= 0
    tight: list | None  # bounds back-substituted with given slopes: [(layer, neuron, side, slopes)]


def _tree(entries, lo, hi, K: int, nrows: list, ch: Chain, where: str) -> list[_Node]:
    """Nodes of a tree from its preorder list (children: lower, then upper half; ``z >= 0``, then ``z <= 0``)."""
    if not isinstance(entries, list):
        raise ProofRejected(f"{where}: 'nodes' is not a list")
    nodes: list[_Node] = []
    stack = [(lo, hi, -1, 0, None, False)]
    while stack:
        lo, hi, par, d, signs, relu = stack.pop()
        i = len(nodes)
        if i >= len(entries):
            raise ProofRejected(f"{where}: the tree ends early (node {i} missing)")
        e, at = entries[i], f"{where}, node {i}"
        if not isinstance(e, dict):
            raise ProofRejected(f"{at}: not an object")
        certs = e.get("refute", [])
        if not isinstance(certs, list):
            raise ProofRejected(f"{at}: 'refute' is not a list")
        for c in certs:
            if not (isinstance(c, dict) and type(c.get("k")) is int and 0 <= c["k"] < K
                    and c.get("by") in ("crown", "alpha", "lp", "trusted", "beta", "empty")):
                raise ProofRejected(f"{at}: bad certificate {c!r}")
            if c["by"] in ("lp", "beta") and not (isinstance(c.get("w"), list) and len(c["w"]) == nrows[c["k"]]
                                                  and all(isinstance(c.get(f, []), list) for f in ("slopes", "betas"))):
                raise ProofRejected(f"{at}: {c['by']} weights for disjunct {c['k']} need {nrows[c['k']]} entries")
            if c["by"] == "alpha" and not (type(c.get("row")) is int and 0 <= c["row"] < nrows[c["k"]]
                                           and isinstance(c.get("slopes"), list)):
                raise ProofRejected(f"{at}: an alpha certificate needs a row of disjunct {c['k']} and slopes")
        if type(full := e.get("full", False)) is not bool:
            raise ProofRejected(f"{at}: 'full' must be true or false")
        full = None if relu and not full else full  # a ReLU split's child: no back-substitution unless "full"
        nodes.append(_Node(lo, hi, par, d, certs, "relu" not in e and "split" not in e, full, signs,
                           _tight(ch, e["tighten"], at) if "tighten" in e else None))
        if "relu" in e:
            s = e["relu"]
            if not (isinstance(s, list) and len(s) == 2 and type(s[0]) is int and type(s[1]) is int
                    and 0 <= s[0] < ch.depth and 0 <= s[1] < ch.W[s[0]].shape[0]) or "split" in e:
                raise ProofRejected(f"{at}: bad ReLU split {s!r}")
            if signs is not None and signs[s[0]][s[1]]:
                raise ProofRejected(f"{at}: neuron {s[1]} of layer {s[0]} is already split")
            for sign in (-1, 1):  # z <= 0 popped second
                kid = [np.zeros(w.shape[0], np.int8) for w in ch.W[:-1]] if signs is None else [a.copy() for a in signs]
                kid[s[0]][s[1]] = sign
                stack.append((lo, hi, i, d + 1, kid, True))
        if "split" in e:
            s = e["split"]
            if not (isinstance(s, list) and len(s) == 2 and type(s[0]) is int and 0 <= s[0] < lo.size):
                raise ProofRejected(f"{at}: bad split {s!r}")
            dim, p = s[0], unhex(s[1], f"{at}: split point")
            if not lo[dim] <= p <= hi[dim]:
                raise ProofRejected(f"{at}: split point {p!r} outside [{float(lo[dim])!r}, {float(hi[dim])!r}] of input {dim}")
            lo2, hi1 = lo.copy(), hi.copy()
            hi1[dim], lo2[dim] = p, p
            stack.append((lo2, hi, i, d + 1, signs, False))  # upper half, popped second
            stack.append((lo, hi1, i, d + 1, signs, False))
    if len(nodes) != len(entries):
        raise ProofRejected(f"{where}: {len(entries) - len(nodes)} node(s) after the end of the tree")
    return nodes



def _check_region(ch: Chain, region: InputRegion, rp, r: int, counts: dict, version: int) -> None:
    where = f"region {r}"
    if not isinstance(rp, dict):
        raise ProofRejected(f"{where}: not an object")
    lo, hi = (hexes(rp.get(side), f"{where} {side}", region.lower.size) for side in ("lower", "upper"))
    if not (np.array_equal(lo, region.lower) and np.array_equal(hi, region.upper)):
        raise ProofRejected(f"{where}: the box differs from the property's")
    if any(Fraction(float(a)) > q for a, q in zip(lo, region.lower_exact)) or \
            any(Fraction(float(a)) < q for a, q in zip(hi, region.upper_exact)):
        raise ProofRejected(f"{where}: the float box does not contain the exact box")
    C, cb, grp = region_rows(region)
    K = len(region.outputs)
    trees = rp.get("trees") if version == RELU_VERSION else [rp.get("nodes")]
    if not (isinstance(trees, list) and trees):
        raise ProofRejected(f"{where}: 'trees' is not a non-empty list")
    nrows = [int((grp == k).sum()) for k in range(K)]
    ats = [where if version != RELU_VERSION else f"{where}, tree {t}" for t in range(len(trees))]
    forest = [_tree(entries, lo, hi, K, nrows, ch, at) for entries, at in zip(trees, ats)]
    done, first = set(), {}
    for nodes, at in zip(forest, ats):  # coverage: every disjunct refuted on every leaf of some tree
        covered, bad = [], set()
        for i, nd in enumerate(nodes):
            covered.append((covered[nd.parent] if nd.parent >= 0 else set()) | {c["k"] for c in nd.certs})
            for k in sorted(set(range(K)) - covered[i] - bad) if nd.leaf else ():
                bad.add(k)
                first.setdefault(k, f"{at}, node {i} (leaf): disjunct {k} is not refuted")
        done |= set(range(K)) - bad
    for k in sorted(set(range(K)) - done):
        raise ProofRejected(first[k])
    for nodes, at in zip(forest, ats):
        _check_tree(ch, nodes, C, cb, grp, at, counts)


def _check_tree(ch: Chain, nodes: list, C, cb, grp, where: str, counts: dict) -> None:
    counts["nodes"] += len(nodes)
    counts["leaves"] += sum(nd.leaf for nd in nodes)
    # bounds level by level: each node's bounds from its box and its parent's bounds
    pre: dict[int, list] = {}
    for d in range(max(nd.depth for nd in nodes) + 1):
        level = [i for i, nd in enumerate(nodes) if nd.depth == d]
        for full in (False, True, None):
            group = [i for i in level if nodes[i].full is full]
            for s in range(0, len(group), CHUNK):
                ids = group[s:s + CHUNK]
                blo, bhi = np.stack([nodes[i].lo for i in ids]), np.stack([nodes[i].hi for i in ids])
                prior = [tuple(np.stack([pre[nodes[i].parent][j][side] for i in ids]) for side in (0, 1))
                         for j in range(ch.depth + 1)] if d > 0 else None
                signed = any(nodes[i].signs is not None for i in ids)
                sg = [np.stack([np.zeros(w.shape[0], np.int8) if nodes[i].signs is None else nodes[i].signs[j]
                                for i in ids]) for j, w in enumerate(ch.W[:-1])] if signed else None
                tight = [nodes[i].tight or [] for i in ids] if any(nodes[i].tight for i in ids) else None
                try:
                    bnds = layer_bounds(ch, blo, bhi, prior, full=full, signs=sg, tight=tight)
                except ArithmeticError as exc:
                    raise ProofRejected(f"{where}, node {ids[0]}..{ids[-1]}: {exc}") from None
                bnds, empty = bnds if sg is not None else (bnds, np.zeros(len(ids), bool))
                for b, i in enumerate(ids):
                    pre[i] = [(l[b], u[b]) for l, u in bnds]
                _check_certs(ch, nodes, ids, blo, bhi, bnds, empty, sg, C, cb, grp, where, counts)
        for i in [i for i, nd in enumerate(nodes) if nd.depth == d - 1]:
            pre.pop(i, None)  # parents of the next level are at depth d


def _check_certs(ch, nodes, ids, blo, bhi, bnds, empty, sg, C, cb, grp, where, counts) -> None:
    low = np.full((len(ids), C.shape[0]), -np.inf)
    if need := [b for b, i in enumerate(ids) if any(c["by"] == "crown" for c in nodes[i].certs)]:
        low[need] = rows_lower(ch, blo[need], bhi[need], [(l[need], u[need]) for l, u in bnds], C, cb)
    # the alpha and beta certificates of the chunk in one back-substitution (one row each; beta: combined rows)
    al = [(b, n, c) for b, i in enumerate(ids) for n, c in enumerate(nodes[i].certs) if c["by"] in ("alpha", "beta", "lp")]
    aval = {}
    if al:
        sel = np.array([b for b, _, _ in al])
        pre = [(l[sel], u[sel]) for l, u in bnds]
        at = [f"{where}, node {ids[b]}" for b, _, _ in al]
        alpha = _entries(ch, pre, sg, sel, al, at)
        M, c0 = zip(*[(C[grp == c["k"]][c["row"]], cb[grp == c["k"]][c["row"]:c["row"] + 1]) if c["by"] == "alpha" else
                      combine(_weights(c, w), C[grp == c["k"]], cb[grp == c["k"]], (bnds[-1][0][b:b + 1], bnds[-1][1][b:b + 1]))
                      for (b, _, c), w in zip(al, at)])
        v = rows_lower(ch, blo[sel], bhi[sel], pre, np.stack(M)[:, None, :], np.stack(c0), *alpha)[:, 0]
        aval = {(b, n): float(x) for (b, n, _), x in zip(al, v)}
    for b, i in enumerate(ids):
        for n, c in enumerate(nodes[i].certs):
            k = c["k"]
            if c["by"] == "trusted":
                r = str(c.get("reason", "unknown"))
                counts["trusted"], counts["reasons"][r] = counts["trusted"] + 1, counts["reasons"].get(r, 0) + 1
                continue
            if c["by"] == "empty":
                if not empty[b]:
                    raise ProofRejected(f"{where}, node {i}: disjunct {k}: the split constraints' bounds do not "
                                        "cross (the domain is not shown empty)")
            else:
                val = float(low[b, grp == k].max()) if c["by"] == "crown" else aval[(b, n)]
                if not val > 0:
                    raise ProofRejected(f"{where}, node {i}: disjunct {k}: {c['by']} lower bound {val:.6g} is not > 0")
            counts["checked"] += 1


def _entry(ch: Chain, e, where: str, key: str = "slope", below: int | None = None) -> tuple[int, int, float]:
    """A ``[layer, neuron, value]`` entry (layer ``< below``); a slope must lie in ``[s_j, 1]``."""
    if not (isinstance(e, list) and len(e) == 3 and type(e[0]) is int and type(e[1]) is int
            and 0 <= e[0] < (ch.depth if below is None else below) and 0 <= e[1] < ch.W[e[0]].shape[0]):
        raise ProofRejected(f"{where}: bad {key} entry {e!r}")
    v = unhex(e[2], f"{where}: {key}")
    if key == "slope" and not ch.s[e[0]] <= v <= 1.0:
        raise ProofRejected(f"{where}: slope {v!r} of layer {e[0]} neuron {e[1]} outside [{ch.s[e[0]]}, 1]")
    return e[0], e[1], v


def _tight(ch: Chain, rows, where: str) -> list:
    """``[[layer, neuron, side, [[j, i, slope], ...]], ...]``: bounds back-substituted with alpha-CROWN slopes."""
    for r in rows if isinstance(rows, list) else [None]:
        if not (isinstance(r, list) and len(r) == 4 and all(type(v) is int for v in r[:3]) and 0 < r[0] < ch.depth
                and 0 <= r[1] < ch.W[r[0]].shape[0] and r[2] in (1, -1) and isinstance(r[3], list)):
            raise ProofRejected(f"{where}: bad tighten entry {r!r}")
    return [(r[0], r[1], r[2], [_entry(ch, e, where, below=r[0]) for e in r[3]]) for r in rows]


def _weights(c: dict, where: str) -> np.ndarray:
    w = np.array([unhex(v, f"{where}: {c['by']} weight") for v in c["w"]])
    if np.any(w < 0):
        raise ProofRejected(f"{where}: disjunct {c['k']}: a negative {c['by']} weight")
    return w


def _entries(ch: Chain, pre: list, sg: list | None, sel, certs: list, at: list) -> tuple[list, list]:
    """Lower slopes and terms ``beta s`` (each ``(A, 1, n_j)``) of the certificates: CROWN's slopes replaced by
    the listed ``[layer, neuron, slope]`` (in ``[s_j, 1]``); ``[layer, neuron, beta]``, ``beta >= 0`` on a
    neuron split on the node (``sg``: the nodes' signs)."""
    alpha = [np.where(u > -l, 1.0, s)[:, None, :] for (l, u), s in zip(pre[:-1], ch.s)]  # CROWN's
    lag = [np.zeros_like(a) for a in alpha]
    for a, ((_, _, c), where) in enumerate(zip(certs, at)):
        for key, e in [("slope", e) for e in c.get("slopes", [])] + [("beta", e) for e in c.get("betas", [])]:
            j, i, v = _entry(ch, e, where, key)
            sign = 0 if sg is None else int(sg[j][sel[a], i])
            if key == "beta" and not (v >= 0 and sign):
                raise ProofRejected(f"{where}: beta {v!r} of layer {j} neuron {i}: "
                                    + ("negative" if sign else "the neuron is not split on this node"))
            (alpha if key == "slope" else lag)[j][a, 0, i] = v if key == "slope" else v * sign
    return alpha, (lag if any(c.get("betas") for _, _, c in certs) else None)


def check_proof(net: Network, prop: VnnlibProperty, proof) -> CheckReport:
    """Check ``proof`` (a dict, or a path to the JSON file) that ``net`` satisfies ``prop``: a failed step gives
    ``accepted=False``, named in ``message``; a network outside what the checker handles raises ``ChainError``."""
    t0, counts = time.monotonic(), {"nodes": 0, "leaves": 0, "checked": 0, "trusted": 0, "reasons": {}}
    ch = Chain.of(net)
    try:
        p = read_header(proof, ch.fingerprint(), (VERSION, RELU_VERSION))
        shape = {"in_dim": net.in_dim, "out_dim": net.out_dim, "widths": [int(w.shape[0]) for w in ch.W]}
        if any(p["network"].get(key) != val or type(p["network"].get(key)) is not type(val) for key, val in shape.items()):
            raise ProofRejected(f"network: in_dim / out_dim / widths differ from the network's {shape}")
        n, regions = p["property"].get("regions") if isinstance(p.get("property"), dict) else "?", p.get("regions")
        if type(n) is not int or n != len(prop.regions):
            raise ProofRejected(f"property: the proof is for {n} region(s), the property has {len(prop.regions)}")
        if not isinstance(regions, list) or len(regions) != n:
            raise ProofRejected(f"property: the proof has {len(regions) if isinstance(regions, list) else 'no'} "
                                f"region(s), the property {n}")
        if net.in_dim != prop.in_dim or net.out_dim != prop.out_dim:
            raise ProofRejected("property: its dimensions differ from the network's")
        for r, (region, rp) in enumerate(zip(prop.regions, regions)):
            try:
                # computed weights: the rows widened by their deviation over the box (docs/guarantees.md)
                _check_region(ch, region.widened(net.deviation(region.lower, region.upper)), rp, r, counts,
                              p["version"])
            except ArithmeticError as exc:
                raise ProofRejected(f"region {r}: {exc}") from None
            except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:  # malformed content
                raise ProofRejected(f"region {r}: malformed proof ({type(exc).__name__}: {exc})") from None
        if counts["trusted"]:
            why = ", ".join(f"{m} {k}" for k, m in sorted(counts["reasons"].items()))
            ok, msg = False, f"not fully checked: {counts['trusted']} of {counts['trusted'] + counts['checked']} " \
                             f"certificates are trusted, not checked ({why}); the other {counts['checked']} hold"
        else:
            ok, msg = True, f"accepted: {counts['checked']} certificates on {counts['nodes']} boxes " \
                            f"({counts['leaves']} leaves, {len(prop.regions)} region(s)) checked"
    except ProofRejected as exc:
        ok, msg = False, f"rejected: {' '.join(str(exc).split())}"
    return CheckReport(ok, msg, len(prop.regions), counts["nodes"], counts["leaves"], counts["checked"],
                       counts["trusted"], time.monotonic() - t0)
