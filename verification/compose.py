"""Several networks as one: the product network of a VNN-LIB 2.0 query over several networks.

A VNN-LIB 2.0 query may declare several networks (VNN-LIB standard, chapter "Query Language", section
"Multiple networks"; https://github.com/VNNLIB/VNNLIB-Standard, ``document/chapters/query_language.tex``):
each ``declare-network`` has its own input and output tensors, and the assertions relate them.  Inputs of
two networks are tied by assertions (``(assert (== X_f[0] X_g[0]))``: the same point fed to both, as in
the VNN-COMP 2026 ACAS Xu equivalence benchmark), and ``(equal-to f)`` says that a declaration names the
same model as ``f`` (one network evaluated twice, e.g. for monotonicity), ``(isomorphic-to f)`` a model of
the same graph with other weights.  The query is satisfiable iff some assignment of all inputs satisfies
every assertion, the outputs being each network applied to its own inputs.

:func:`product_network` builds ONE :class:`~verification.network.Network` computing
``z -> (N_1(P_1 z), ..., N_k(P_k z))``, where ``P_i`` picks network ``i``'s inputs from the product input
``z`` (separate inputs: ``z`` is their concatenation; tied inputs: one entry of ``z`` feeds every tied
element, so the first layers are stacked ``[W_1 P_1; W_2 P_2]`` rather than block-diagonal).  The networks
run side by side, one activation layer at a time; each product affine layer stacks the affine layers of the
networks, read from the previous product state.  Where one network has no activation at a step (it is
shallower, or the networks' next activations differ: a ReLU step then goes first and the others wait), its
values *pass through* the step's activation exactly (the construction of :mod:`verification.io._lift`): a
value known to be non-negative (the output of a ReLU) passes as itself through any two-piece activation
(``z`` for ``z > 0``, ``a z`` otherwise); any other value ``v`` passes as the pair ``phi(v), phi(-v)`` and is
read back as ``(phi(v) - phi(-v)) / (1 + a)``, which is ``v`` in exact arithmetic only when ``1 / (1 + a)``
is a binary float (ReLU: ``a = 0``); other slopes, and activations that are not two-piece (tanh, ...), cannot
pass a value and are refused in one line.

**Exactness.**  Every product weight is a stored weight times ``±1`` or a power of two (each state entry is
read by one value entry), and biases are copied, so the product computes the same real-valued function as
the networks evaluated separately; float64 evaluation differs only in the order of the sums.  Proofs and the
exact counterexample checks on the product net are therefore proofs and checks on the networks.  A network
whose loader computed weights (a :mod:`~verification.layers.deviation` record) is refused in one line: its
records are not carried into the stacked layers.

:func:`query_network` binds a parsed :class:`~verification.vnnlib2.Query` to its models (names checked,
shapes checked, ``equal-to`` resolved) and returns the product net over which ``query.property`` is stated.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Mapping, Sequence

import numpy as np
from scipy import sparse

from verification.activations import Activation, Identity
from verification.errors import InvalidParameterError, ShapeMismatchError, UnsupportedLayerError
from verification.layers import AffineLayer, Dense, SparseAffine
from verification.layers.deviation import has_deviation
from verification.network import Network
from verification.vnnlib2 import Query

__all__ = ["product_network", "query_network", "DENSE_ENTRIES"]

#: product affine layers with at most this many matrix entries are stored as Dense (faster for small nets)
DENSE_ENTRIES = 250_000


def _steps(net: Network) -> tuple[list[tuple[list[AffineLayer], Activation]], list[AffineLayer]]:
    """The network as ``[(affine layers, activation), ...]`` plus its trailing affine layers (identity
    activations dropped: they change nothing)."""
    steps, pending = [], []
    for layer in net.layers:
        if isinstance(layer, AffineLayer):
            pending.append(layer)
        elif not isinstance(layer, Identity):
            steps.append((pending, layer))
            pending = []
    return steps, pending


def _nonneg(act: Activation) -> bool:
    """The activation's range lies in ``[0, inf)`` (it says so through its interval of the whole line)."""
    try:
        lo, _ = act.interval(np.array([[-np.inf]]), np.array([[np.inf]]))
        return bool(np.all(np.asarray(lo) >= 0))
    except Exception:  # cannot bound the whole line: not known to be non-negative
        return False


def _pass_scale(act: Activation) -> float | None:
    """``1 / (1 + a)`` for a two-piece activation whose read-back is exact in binary, else ``None``."""
    a = act.two_piece_slope
    if a is None or a == -1.0:
        return None
    c = 1.0 / (1.0 + a)
    return c if Fraction(c) * (1 + Fraction(a)) == 1 else None


def _pick(offset: int, n: int, width: int, scale: float = 1.0) -> sparse.csr_array:
    return sparse.csr_array((np.full(n, scale), (np.arange(n), np.arange(offset, offset + n))), shape=(n, width))


def _layer(mat: sparse.csr_array, bias: np.ndarray, label: str) -> AffineLayer:
    mat = sparse.csr_array(mat)
    mat.eliminate_zeros()
    if mat.shape[0] * mat.shape[1] <= DENSE_ENTRIES:
        return Dense(mat.toarray(), bias)
    return SparseAffine(mat, bias, label)


class _Lane:
    """One network's progress: its steps, and ``read`` (``(n, state width)``) giving its current value from
    the product state; ``plain_nonneg`` when that value is the state's own entries and known >= 0."""

    def __init__(self, name: str, net: Network, pick: sparse.csr_array):
        self.name = name
        self.steps, self.final = _steps(net)
        self.pos = 0
        self.read = pick
        self.plain_nonneg = False

    @property
    def done(self) -> bool:
        return self.pos >= len(self.steps)

    def next_act(self) -> Activation:
        return self.steps[self.pos][1]


def product_network(nets: Sequence[Network], input_maps: Sequence[Sequence[int]] | None = None,
                    in_dim: int | None = None, names: Sequence[str] | None = None) -> Network:
    """ONE network computing ``z -> (N_1(z[map_1]), ..., N_k(z[map_k]))`` (outputs concatenated in order).

    ``input_maps[i][j]`` is the entry of the product input ``z`` (of ``in_dim`` entries) that feeds input ``j``
    of ``nets[i]``; without maps the inputs are separate (``z`` is their concatenation).  A network whose
    activations cannot be aligned with the others' exactly raises :class:`UnsupportedLayerError` (one line).
    """
    nets = list(nets)
    if not nets:
        raise InvalidParameterError("product_network needs at least one network")
    names = [str(n) for n in names] if names is not None else [f"#{i}" for i in range(len(nets))]
    if input_maps is None:
        offsets = np.cumsum([0] + [n.in_dim for n in nets])
        input_maps = [np.arange(offsets[i], offsets[i + 1]) for i in range(len(nets))]
        in_dim = int(offsets[-1])
    maps = [np.asarray(m, dtype=np.int64).reshape(-1) for m in input_maps]
    if in_dim is None:
        in_dim = int(max(int(m.max()) for m in maps if m.size) + 1)
    for name, net, m in zip(names, nets, maps):
        if has_deviation(net):
            raise UnsupportedLayerError(
                f"network {name}: some of its weights were computed by the loader (a folded normalisation or batch "
                "norm, rounding recorded); a product of several networks needs stored weights")
        if m.size != net.in_dim:
            raise ShapeMismatchError(f"network {name}: its input map has {m.size} entries, the network {net.in_dim} inputs")
        if m.size and (m.min() < 0 or m.max() >= in_dim):
            raise ShapeMismatchError(f"network {name}: its input map points outside the product input of {in_dim}")
    # the same network on the same inputs (a model compared with itself, or equal-to on tied inputs) is run
    # once, its outputs copied: the copies are then equal by construction, not only up to a bound
    first: dict[tuple, int] = {}
    runs = [first.setdefault((id(net), m.tobytes()), i) for i, (net, m) in enumerate(zip(nets, maps))]
    if len(first) < len(nets):
        keep = sorted(first.values())
        inner = product_network([nets[i] for i in keep], [maps[i] for i in keep], in_dim, [names[i] for i in keep])
        starts = dict(zip(keep, np.cumsum([0] + [nets[i].out_dim for i in keep])[:-1].tolist()))
        idx = np.concatenate([starts[runs[i]] + np.arange(nets[i].out_dim) for i in range(len(nets))])
        sel = sparse.csr_array((np.ones(idx.size), (np.arange(idx.size), idx)), shape=(idx.size, inner.out_dim))
        meta = dict(inner.metadata, networks=list(names), sources=[n.metadata.get("source") for n in nets])
        return Network(inner.layers + (_layer(sel, np.zeros(idx.size), "copies of outputs"),), metadata=meta)
    layers: list = []
    picks = [sparse.csr_array((np.ones(m.size), (np.arange(m.size), m)), shape=(m.size, in_dim)) for m in maps]
    if any(np.bincount(m, minlength=in_dim).max(initial=0) > 1 for m in maps):
        # an input feeding several inputs of ONE network: select first, so that no weights are summed
        sel = sparse.vstack(picks, format="csr")
        layers.append(_layer(sel, np.zeros(sel.shape[0]), "input selection"))
        off, picks = 0, []
        for m in maps:
            picks.append(_pick(off, m.size, sel.shape[0]))
            off += m.size
    lanes = [_Lane(name, net, p) for name, net, p in zip(names, nets, picks)]
    step = 0
    while not all(lane.done for lane in lanes):
        step += 1
        act, appliers = _choose(lanes)
        scale = _pass_scale(act)
        blocks: list[tuple[str, list[AffineLayer], _Lane]] = []
        for lane in lanes:
            if lane in appliers:
                blocks.append(("apply", lane.steps[lane.pos][0], lane))
            elif lane.plain_nonneg and act.two_piece_slope is not None:
                blocks.append(("plain", [], lane))  # a value >= 0 passes as itself
            elif scale is None:
                raise UnsupportedLayerError(
                    f"network {lane.name} has no {act.describe()} at activation step {step} (it is "
                    f"{'shallower' if lane.done else 'at ' + lane.next_act().describe()}), and its values cannot pass "
                    f"through {act.describe()} exactly: the networks cannot run side by side")
            else:
                blocks.append(("pair", [], lane))  # passes as the pair (v, -v)
        _emit_step(layers, blocks, act, scale, step)
    _emit_final(layers, lanes)
    meta = {"format": "product", "networks": list(names),
            "sources": [n.metadata.get("source") for n in nets]}
    return Network(tuple(layers), metadata=meta)


def _choose(lanes: list[_Lane]) -> tuple[Activation, list[_Lane]]:
    """The activation of this product step and the networks that apply it (the others pass through).

    Where the networks' next activations differ, one that passes any value exactly (ReLU) goes first, so
    that the others wait for their own step; :func:`product_network` refuses the values that cannot pass."""
    active = [lane for lane in lanes if not lane.done]
    lead = next((lane for lane in active if _pass_scale(lane.next_act()) is not None), active[0])
    act = lead.next_act()
    return act, [lane for lane in active if lane.next_act() == act and type(lane.next_act()) is type(act)]


def _carry_layers(layers: list, blocks, label: str) -> list[sparse.csr_array]:
    """All but the last affine layer of a step (``blocks``: ``(kind, affine layers, lane)``): a network with
    fewer applies its first ones, then carries its value unchanged (a selection).  Returns the reads of the
    lanes' values from the state after these layers."""
    reads = [lane.read for _, _, lane in blocks]
    for t in range(max(len(affs) for _, affs, _ in blocks) - 1):
        rows, bias = [], []
        for (_, affs, _), read in zip(blocks, reads):
            if t < len(affs) - 1:
                rows.append(sparse.csr_array(affs[t].as_sparse() @ read))
                bias.append(np.asarray(affs[t].bias, dtype=np.float64))
            else:
                rows.append(read)
                bias.append(np.zeros(read.shape[0]))
        mat = sparse.vstack(rows, format="csr")
        layers.append(_layer(mat, np.concatenate(bias), f"{label}.{t}"))
        reads, off = [], 0
        for r in rows:
            reads.append(_pick(off, r.shape[0], mat.shape[0]))
            off += r.shape[0]
    return reads


def _emit_step(layers: list, blocks, act: Activation, scale: float | None, step: int) -> None:
    """Append the affine layer(s) and the activation of one product step; update the lanes' reads."""
    reads = _carry_layers(layers, blocks, f"product step {step}")
    rows, bias, plan = [], [], []
    for (kind, affs, lane), read in zip(blocks, reads):
        if kind == "pair":
            rows += [read, -read]
            bias += [np.zeros(read.shape[0])] * 2
            plan.append((lane, read.shape[0], kind))
        elif affs:
            rows.append(sparse.csr_array(affs[-1].as_sparse() @ read))
            bias.append(np.asarray(affs[-1].bias, dtype=np.float64))
            plan.append((lane, affs[-1].out_features, kind))
        else:  # "plain", or an activation with no affine layer before it
            rows.append(read)
            bias.append(np.zeros(read.shape[0]))
            plan.append((lane, read.shape[0], kind))
    mat = sparse.vstack(rows, format="csr")
    layers += [_layer(mat, np.concatenate(bias), f"product step {step}"), act]
    width, off = mat.shape[0], 0
    for lane, n, kind in plan:
        if kind == "pair":
            lane.read = sparse.csr_array(_pick(off, n, width, scale) - _pick(off + n, n, width, scale))
            lane.plain_nonneg = False
            off += 2 * n
            continue
        lane.read = _pick(off, n, width)
        if kind == "apply":
            lane.plain_nonneg = _nonneg(lane.steps[lane.pos][1])
            lane.pos += 1
        off += n


def _emit_final(layers: list, lanes: list[_Lane]) -> None:
    """The trailing affine layers of every network (outputs concatenated in order)."""
    blocks = [("apply", lane.final, lane) for lane in lanes]
    reads = _carry_layers(layers, blocks, "product output")
    rows, bias = [], []
    for (_, affs, _), read in zip(blocks, reads):
        if affs:
            rows.append(sparse.csr_array(affs[-1].as_sparse() @ read))
            bias.append(np.asarray(affs[-1].bias, dtype=np.float64))
        else:
            rows.append(read)
            bias.append(np.zeros(read.shape[0]))
    mat = sparse.vstack(rows, format="csr")
    layers.append(_layer(mat, np.concatenate(bias), "product output"))


def query_network(query: Query, models: Mapping[str, Network]) -> Network:
    """The network over which ``query.property`` is stated: the model itself for a query over one network,
    else the product of the declared networks (``equal-to`` declarations reuse their target's model).

    ``models`` maps declared names to loaded networks; every declaration but the ``equal-to`` ones needs one,
    and no other name may appear (VNN-LIB 2.0, "The verify command": neither insufficient nor unnecessary
    models).  Errors are one line (:class:`InvalidParameterError`, :class:`ShapeMismatchError`)."""
    if not query.networks:  # VNN-LIB 1.0: one network, whatever its name
        if len(models) != 1:
            raise InvalidParameterError(f"a VNN-LIB 1.0 property is about one network; got {len(models)} models")
        return next(iter(models.values()))
    declared = [n.name for n in query.networks]
    needed = query.models_needed()
    for name in models:
        if name not in declared:
            raise InvalidParameterError(f"--network {name}: the query declares no network {name} (it declares "
                                        f"{', '.join(declared)})")
        if name not in needed:
            decl = next(n for n in query.networks if n.name == name)
            raise InvalidParameterError(f"--network {name}: network {name} is (equal-to {decl.target}) and uses the "
                                        f"model of {decl.target}; pass no model for it")
    missing = [n for n in needed if n not in models]
    if missing:
        raise InvalidParameterError(f"no model for network {missing[0]} (pass --network {missing[0]}=PATH for each of "
                                    f"{', '.join(needed)})")
    nets = []
    for decl in query.networks:
        net = models[decl.model_name]
        for what, tensor, n in (("input", decl.input, net.in_dim), ("output", decl.output, net.out_dim)):
            if tensor.size != n:
                raise ShapeMismatchError(f"network {decl.name}: the query declares {what} {tensor.header()} "
                                         f"({tensor.size} elements), the model has {n} {what}s")
        if decl.relation == "isomorphic-to":
            _check_isomorphic(decl.name, net, decl.target, models[decl.target])
        nets.append(net)
    if not query.is_multi and list(query.networks[0].input_index) == list(range(nets[0].in_dim)):
        return nets[0]
    return product_network(nets, [n.input_index for n in query.networks], query.property.in_dim,
                           [n.name for n in query.networks])


def _check_isomorphic(name: str, net: Network, target: str, other: Network) -> None:
    """``(isomorphic-to target)``: the same graph with other weights; checked as the same layer sequence
    (kinds and widths)."""
    def shape(n: Network) -> list[str]:
        return [f"affine({l.in_features}->{l.out_features})" if isinstance(l, AffineLayer) else l.describe()
                for l in n.layers]

    a, b = shape(net), shape(other)
    if a != b:
        at = next((i for i, (p, q) in enumerate(zip(a, b)) if p != q), min(len(a), len(b)))
        raise ShapeMismatchError(f"network {name} is (isomorphic-to {target}) but its model differs at layer {at}: "
                                 f"{a[at] if at < len(a) else 'end'} vs {b[at] if at < len(b) else 'end'}")
