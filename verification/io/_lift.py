"""Compile a graph with skip connections and max pooling into the IR's chain, exactly.

The IR is a chain ``affine -> activation -> affine -> ...``.  A graph is not: a residual block adds a
tensor computed several activations earlier, and a max-pooling window takes a maximum.  This module keeps
every tensor as an *affine expression* ``sum_s M_s x_s + c`` over *sources* ``x_s`` (the network input and
the output of every activation node) and lays the sources out along a chain:

* step ``k`` computes source ``k``; its affine layer maps the state (all sources still needed) to the
  pre-activation of source ``k`` stacked with the sources needed later, which *pass through* the step's
  activation unchanged: a source that is provably non-negative (its activation's range is, e.g. a ReLU
  output) passes as itself when the step's activation is the identity on ``z >= 0`` (ReLU, leaky ReLU);
  any other source passes as the pair ``phi(x), phi(-x)`` and is read back as ``(phi(x) - phi(-x)) / (1 + a)``,
  exact for a two-piece activation of negative slope ``a != -1``.  A step whose activation cannot pass a
  needed source (tanh, sigmoid, ...) is refused in one line;
* ``max(a, b) = b + relu(a - b)``: a max-pooling window is a tree of such pairs, one ReLU step per level.

The chain computes the same function as the graph (up to the float64 rounding of the folded products),
which the loader then cross-checks against the file's own runtime.  Every affine layer is a
:class:`~verification.layers.SparseAffine`: memory follows the stored entries, never a dense lowering.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from verification.activations import Activation
from verification.errors import ShapeMismatchError, UnsupportedLayerError
from verification.io.common import pow2
from verification.layers import AffineLayer, SparseAffine
from verification.layers.deviation import deviation_of, gamma, mark_rounded

__all__ = ["Expr", "Lifter"]


_U = 2.0 ** -53


def _eye(n: int) -> sparse.csr_array:
    return sparse.eye_array(n, format="csr")


@dataclass
class Expr:
    """``value = sum_s terms[s] @ x_s + const`` (``terms[s]``: CSR ``(n, n_s)``).

    Rounding (as :class:`verification.io.onnx_format._Var`): the file's exact expression ``(M*, c*)`` has
    ``|M*_s - M_s| <= err P_s``, ``|c* - c| <= err q`` with ``mag = (P, q)`` (non-negative, ``|M_s| <= P_s``,
    ``|c| <= q``); ``err == 0``: exact, no ``mag`` kept.  :meth:`Lifter.chain` records ``2 err`` (the factor 2
    covers the left-out ``(1 + O(u))`` factors) on the layer that computes the expression."""

    terms: dict[int, sparse.csr_array]
    const: np.ndarray
    err: float = 0.0
    mag: "Expr | None" = None

    @property
    def n(self) -> int:
        return int(self.const.shape[0])

    def magnitude(self) -> "Expr":
        """``(P, q)``: the kept magnitudes, or ``(|M|, |c|)`` for an exact expression."""
        if self.mag is not None:
            return self.mag
        return Expr({s: sparse.csr_array(abs(m)) for s, m in self.terms.items()}, np.abs(self.const))


def _then(e: "Expr", terms: dict, const: np.ndarray, rounding: float, step, err: float | None = None) -> "Expr":
    """The next expression; ``rounding``: what this operation adds to ``err`` (0: exact); ``step`` maps the
    magnitude to the next one (only called if some rounding happened)."""
    err = (e.err if err is None else err) + rounding
    return Expr(terms, const, err, step(e.magnitude()) if err else None)


def _sum(p: "Expr", q: "Expr") -> "Expr":
    """``p + q`` of two magnitudes (no rounding record: magnitudes are bounds, see :class:`Expr`)."""
    terms = dict(p.terms)
    for s, m in q.terms.items():
        terms[s] = sparse.csr_array(terms[s] + m) if s in terms else m
    return Expr(terms, p.const + q.const)


def _single_terms(e: "Expr") -> bool:
    """Every column of every term has at most one entry, a power of two, and the constant is zero: a product
    ``W @ M`` is then one exact product per entry and ``W c + b = b``."""
    if np.any(e.const):
        return False
    for m in e.terms.values():
        if m.nnz and (not pow2(m.data) or np.bincount(m.indices, minlength=m.shape[1]).max() > 1):
            return False
    return True


def _own_rel(layer: AffineLayer) -> float:
    """The relative bound of a layer whose record is ``mark_rounded(layer, rel)`` on its own weights (an
    average pool), 0 for an exact layer; anything else is refused."""
    dev = deviation_of(layer)
    if dev is None:
        return 0.0
    if len(dev.chain) == 1 and deviation_of(dev.chain[0]) is None and getattr(dev.chain[0], "weight", None) is \
            getattr(layer, "weight", 0):
        return dev.rel
    raise UnsupportedLayerError(f"{layer.describe()} carries a composite rounding record (internal)")


@dataclass
class _Source:
    n: int
    act: Activation | None  # None: the network input
    pre: Expr | None
    nonneg: bool


def _is_nonneg(act: Activation) -> bool:
    """True if the activation's range is provably within ``[0, inf)`` (it says so through ``interval``)."""
    try:
        lo, _ = act.interval(np.array([[-np.inf]]), np.array([[np.inf]]))
        return bool(np.all(np.asarray(lo) >= 0))
    except Exception:  # an activation that cannot bound the whole line: not known to be non-negative
        return False


@dataclass
class Lifter:
    """Build expressions with :meth:`affine`, :meth:`add`, :meth:`concat`, :meth:`activate` and :meth:`max_pool`
    from :meth:`input`, then :meth:`chain` lays them out as IR layers."""

    n_in: int
    sources: list[_Source] = field(default_factory=list)
    carrying_steps: int = 0  # set by :meth:`chain`: steps that carry earlier tensors

    def __post_init__(self) -> None:
        self.sources.append(_Source(self.n_in, None, None, False))

    # ---------------------------------------------------------------- expressions
    def input(self) -> Expr:
        return Expr({0: _eye(self.n_in)}, np.zeros(self.n_in))

    @staticmethod
    def affine(e: Expr, layer: AffineLayer, rel: float = 0.0) -> Expr:
        """``layer(e)``; ``rel``: the relative error of the layer's float weights and bias (0: exact copies)."""
        if layer.in_features != e.n:
            raise ShapeMismatchError(f"{layer.describe()} expects {layer.in_features} inputs, the tensor has {e.n}")
        w = layer.as_sparse()
        r = rel + _own_rel(layer)
        if not _single_terms(e):  # sums of at most k + 1 terms per entry
            r += gamma(int(np.diff(w.indptr).max(initial=0)) + 1)
        aw, ab = sparse.csr_array(abs(w)), np.abs(layer.bias)
        return _then(e, {s: sparse.csr_array(w @ m) for s, m in e.terms.items()},
                     np.asarray(layer(e.const), dtype=np.float64), r,
                     lambda p: Expr({s: sparse.csr_array(aw @ m) for s, m in p.terms.items()}, aw @ p.const + ab))

    @staticmethod
    def scale_shift(e: Expr, scale: np.ndarray, shift: np.ndarray, rel: float = 0.0,
                    shift_mag: np.ndarray | None = None) -> Expr:
        """``scale * e + shift`` entrywise (constant ``scale`` and ``shift`` of length ``e.n``); ``rel``: a relative
        bound of the float ``scale`` (of ``|scale|``) and ``shift`` (of ``shift_mag``, default ``|shift|``)
        against the file's exact values."""
        scale = np.asarray(scale, dtype=np.float64)
        d = sparse.diags_array(scale, format="csr")
        const = scale * e.const
        r = rel
        if not pow2(scale) and not (all(pow2(m.data) for m in e.terms.values()) and pow2(e.const)):
            r += _U  # s M, s c: one product per entry
        if np.any((const != 0) & (np.asarray(shift) != 0)):
            r += _U  # s c + t
        sm = np.abs(shift) if shift_mag is None else shift_mag
        ad = sparse.diags_array(np.abs(scale), format="csr")
        return _then(e, {s: sparse.csr_array(d @ m) for s, m in e.terms.items()}, const + shift, r,
                     lambda p: Expr({s: sparse.csr_array(ad @ m) for s, m in p.terms.items()},
                                    np.abs(scale) * p.const + sm))

    @staticmethod
    def select(e: Expr, index: np.ndarray) -> Expr:
        """Rows ``e[index]``."""
        idx = np.asarray(index, dtype=np.int64)
        return _then(e, {s: sparse.csr_array(m[idx]) for s, m in e.terms.items()}, e.const[idx].copy(), 0.0,
                     lambda p: Lifter.select(p, idx))

    @staticmethod
    def gather(e: Expr, index: np.ndarray, fill: float = 0.0) -> Expr:
        """Rows ``e[index]``, with the constant ``fill`` where ``index`` is ``-1`` (constant padding)."""
        idx = np.asarray(index, dtype=np.int64).reshape(-1)
        keep = idx >= 0
        pick = sparse.csr_array((np.ones(int(keep.sum())), (np.nonzero(keep)[0], idx[keep])), shape=(idx.size, e.n))
        const = np.where(keep, e.const[np.where(keep, idx, 0)], fill)
        return _then(e, {s: sparse.csr_array(pick @ m) for s, m in e.terms.items()}, const, 0.0,
                     lambda p: Lifter.gather(p, idx, abs(fill)))

    @staticmethod
    def add(a: Expr, b: Expr, sign: float = 1.0) -> Expr:
        """``a + sign * b``."""
        if a.n != b.n:
            raise ShapeMismatchError(f"cannot add tensors of {a.n} and {b.n} entries")
        terms = dict(a.terms)
        overlap = bool(np.any((a.const != 0) & (b.const != 0)))
        for s, m in b.terms.items():
            if s in terms:
                overlap = overlap or bool(sparse.csr_array(abs(terms[s])).multiply(abs(m)).count_nonzero())
            terms[s] = sparse.csr_array(terms[s] + sign * m) if s in terms else sparse.csr_array(sign * m)
        r = _U if overlap else 0.0
        return _then(a, terms, a.const + sign * b.const, r, lambda p: _sum(p, b.magnitude()), err=max(a.err, b.err))

    def concat(self, parts: list[Expr]) -> Expr:
        """The parts stacked (in order)."""
        terms = {}
        for s in {s for p in parts for s in p.terms}:
            blocks = [p.terms[s] if s in p.terms else sparse.csr_array((p.n, self.sources[s].n)) for p in parts]
            terms[s] = sparse.csr_array(sparse.vstack(blocks, format="csr"))
        err = max(p.err for p in parts)
        const = np.concatenate([p.const for p in parts])
        return Expr(terms, const, err, self.concat([p.magnitude() for p in parts]) if err else None)

    def activate(self, e: Expr, act: Activation) -> Expr:
        """A new source ``act(e)``."""
        act.check_width(e.n)
        k = len(self.sources)
        self.sources.append(_Source(e.n, act, e, _is_nonneg(act)))
        return Expr({k: _eye(e.n)}, np.zeros(e.n))

    def max_pool(self, e: Expr, windows: np.ndarray, relu: Activation) -> Expr:
        """``out[j] = max_t e[windows[j, t]]`` (every row of ``windows`` lists valid indices of ``e``; repeat an
        index to fill a short window), as a tree of ``max(a, b) = b + relu(a - b)``."""
        cols = [self.select(e, windows[:, t]) for t in range(windows.shape[1])]
        while len(cols) > 1:
            pairs, rest = [(cols[i], cols[i + 1]) for i in range(0, len(cols) - 1, 2)], cols[len(cols) & ~1:]
            diff = self.concat([self.add(a, b, -1.0) for a, b in pairs])
            r = self.activate(diff, relu)
            n = windows.shape[0]
            cols = [self.add(b, self.select(r, np.arange(i * n, (i + 1) * n))) for i, (_, b) in enumerate(pairs)] + rest
        return cols[0]

    # ---------------------------------------------------------------- the chain
    def chain(self, out: Expr) -> list:
        """The IR layers ``[SparseAffine, activation, ..., SparseAffine]`` computing ``out`` from the input."""
        last_use = {s: 0 for s in range(len(self.sources))}
        for k, src in enumerate(self.sources):
            if src.pre is not None:
                for s in src.pre.terms:
                    last_use[s] = max(last_use[s], k)
        for s in out.terms:
            last_use[s] = len(self.sources)
        read: dict[int, sparse.csr_array] = {0: _eye(self.n_in)}  # source -> (n_s, state width)
        width, layers = self.n_in, []
        self.carrying_steps = 0
        for k in range(1, len(self.sources)):
            src = self.sources[k]
            rows = [self._rows(src.pre, read, width)]
            bias = [src.pre.const]
            keep = [s for s in read if last_use[s] > k]
            slope = src.act.two_piece_slope
            new_read: dict[int, sparse.csr_array] = {}
            offset = src.n
            new_read[k] = None  # placeholder, filled below once the width is known
            plan = []
            for s in keep:
                n_s = self.sources[s].n
                if slope is None:
                    raise UnsupportedLayerError(
                        f"a skip connection or max pooling carries a tensor past a {src.act.describe()} activation; "
                        "only ReLU and leaky ReLU networks can carry tensors past an activation (the identity "
                        "must pass through it exactly)")
                if self.sources[s].nonneg:
                    rows.append(read[s])
                    bias.append(np.zeros(n_s))
                    plan.append((s, offset, n_s, None))
                    offset += n_s
                else:
                    if slope == -1.0:
                        raise UnsupportedLayerError(
                            "a skip connection carries a tensor past leaky_relu(-1) (|x|), which cannot pass it")
                    rows += [read[s], -read[s]]
                    bias += [np.zeros(n_s), np.zeros(n_s)]
                    plan.append((s, offset, n_s, 1.0 / (1.0 + slope)))
                    offset += 2 * n_s
            mat = sparse.csr_array(sparse.vstack(rows, format="csr"))
            layer = SparseAffine(mat, np.concatenate(bias), _label(k, len(keep)))
            carried = [read[s] for s, _, _, sc in plan for _ in range(1 if sc is None else 2)]
            layers += [_record(layer, src.pre, read, width, carried), src.act]
            self.carrying_steps += bool(keep)
            width = offset
            new_read[k] = _pick(0, src.n, width)
            for s, off, n_s, scale in plan:
                if scale is None:
                    new_read[s] = _pick(off, n_s, width)
                else:
                    new_read[s] = sparse.csr_array(scale * (_pick(off, n_s, width) - _pick(off + n_s, n_s, width)))
            read = new_read
        mat = self._rows(out, read, width)
        layers.append(_record(SparseAffine(mat, out.const, "output"), out, read, width, []))
        return layers

    @staticmethod
    def _rows(e: Expr, read: dict, width: int) -> sparse.csr_array:
        acc = sparse.csr_array((e.n, width))
        for s, m in e.terms.items():
            if s not in read:
                raise ShapeMismatchError(f"internal: source {s} is not available")  # pragma: no cover
            acc = acc + m @ read[s]
        acc = sparse.csr_array(acc)
        acc.eliminate_zeros()
        return acc


def _record(layer: SparseAffine, e: Expr, read: dict, width: int, carried: list) -> SparseAffine:
    """``layer`` (rows: ``e`` read from the state, then the ``carried`` reads) with its rounding recorded: the
    expression's ``err``, and where a read is not exact in binary (``(phi(x) - phi(-x)) / (1 + a)``: ``1 + a``,
    the division and the product each round once) ``gamma_4`` more; magnitude ``P |R| + q`` and ``|R|``."""
    used = [read[s] for s in e.terms] + carried
    r = e.err + (0.0 if all(pow2(m.data) for m in used) else gamma(4))
    if not r:
        return layer
    p = e.magnitude()
    absread = {s: sparse.csr_array(abs(read[s])) for s in p.terms}
    rows = [Lifter._rows(p, absread, width)] + [sparse.csr_array(abs(m)) for m in carried]
    mag = SparseAffine(sparse.csr_array(sparse.vstack(rows, format="csr")),
                       np.concatenate([p.const, np.zeros(layer.out_features - p.n)]), "magnitude")
    return mark_rounded(layer, 2.0 * r, mag)


def _pick(offset: int, n: int, width: int) -> sparse.csr_array:
    """The ``(n, width)`` selection of state entries ``offset .. offset + n``."""
    return sparse.csr_array((np.ones(n), (np.arange(n), np.arange(offset, offset + n))), shape=(n, width))


def _label(k: int, carried: int) -> str:
    return f"step {k}" if not carried else f"step {k} (+{carried} carried)"
