"""VNN-LIB 2.0 queries, read into the same property model as VNN-LIB 1.0 (:mod:`verification.vnnlib`).

A 2.0 query (VNN-LIB standard, chapter "Query Language"; https://github.com/VNNLIB/VNNLIB-Standard,
``document/chapters/query_language.tex``, grammar ``syntax/grammar.cf``) starts with
``(vnnlib-version <2.x>)``, declares networks with typed, shaped input and output tensors, then asserts
constraints on tensor elements::

    (vnnlib-version <2.0>)
    (declare-network f
        (declare-input  X Real [1,5])
        (declare-output Y Real [1,5]))
    (assert (<= 0.6 X[0,0]))  ...

Supported (the subset that maps onto one :class:`~verification.spec.VnnlibProperty`):

* ``declare-network`` with one ``declare-input`` and one ``declare-output`` each; element type ``Real`` or a
  floating ONNX type (``float16/32/64``, ``bfloat16``; the analysis is over the reals, as for 1.0); any
  shape, scalars ``[]`` included.  Elements are numbered in row-major order: ``X[i,j]`` of a ``[r,c]``
  tensor is input ``i*c + j``;
* several networks (standard, "Multiple networks"): the names are global, each network has its own input
  and output tensors, and the query asks for an assignment of all inputs (the outputs being each network
  applied to its own input) that satisfies every assertion.  Inputs of different networks are tied by
  asserting their equality element by element (``(assert (== X_f[0] X_g[0]))``, the form of the VNN-COMP
  2026 equivalence benchmark); such an asserted equality of two input elements (at the top of an assertion
  or under ``and``) makes them one input of the property.  The property's inputs are the declared input
  elements in order, tied ones merged; its outputs are all declared outputs, concatenated in order
  (:attr:`NetworkDecl.input_index`, :attr:`NetworkDecl.output_offset`); :mod:`verification.compose`
  builds the network it is stated over.  ``(equal-to f)`` (the same model as ``f``; no model file of its
  own) and ``(isomorphic-to f)`` (the same graph, other weights) must name an earlier network without such
  a declaration, with equal shapes (and, for ``equal-to``, equal element types);
* assertions with ``and``, ``or``, ``<= >= < >``, ``==`` (``=`` is accepted too), ``!=`` (read as
  ``(or (< a b) (> a b))``), ``+``, ``-`` (unary and n-ary), ``*``, decimal numerals.  Everything the 1.0
  reader accepts inside an assertion is accepted, with the same exact-rational semantics and limits.

Refused in one line naming the construct: several inputs or outputs of one network, ``declare-hidden``,
``initialized`` inputs, integer or boolean element types, empty tensors, a tie of inputs under ``or``, and
(as in 1.0) constraints that mix inputs and outputs or bound several inputs at once (other than the ties).

The reader rewrites the query into the 1.0 form (element ``X[i,j]`` -> ``X_k``, keeping every line where it
was) and hands it to the 1.0 reader; its errors are translated back to the query's names.  A counterexample
of a 2.0 query is written in the 2.0 assignment format (:meth:`Query.result_text`; standard, chapter
"Command-line Interface", ``document/chapters/verifier_interface.tex``: every declared tensor in declaration
order, a ``NAME TYPE [dims]`` line and its elements in row-major order).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from verification.errors import PropertyFormatError
from verification.spec import VnnlibProperty
from verification.vnnlib import _read_source, _source_text, parse_vnnlib

__all__ = ["TensorDecl", "NetworkDecl", "Query", "parse_query", "read_query", "is_vnnlib2", "FLOAT_TYPES"]

#: element types read as reals (VNN-LIB 2.0 "Real" and the ONNX floating types)
FLOAT_TYPES = {"Real", "real", "float16", "float32", "float64", "bfloat16", "float", "double"}
#: the other ONNX element types: declared correctly, but not analysable here
OTHER_TYPES = {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "bool", "string",
               "complex64", "complex128", "float8e4m3fn", "float8e4m3fnuz", "float8e5m2", "float8e5m2fnuz",
               "uint4", "int4", "float4e2m1"}
_IGNORED = {"check-sat", "get-model", "set-logic", "set-info", "set-option", "exit"}
_MAX_ELEMENTS = 20_000_000

# one token per match, whitespace and comments skipped; group 1 '(', 2 ')', 3 "string", 4 <version>,
# 5 [index list], 6 atom, 7 anything else (an error)
_TOKEN_RE = re.compile(
    r'(?:[ \t\r\n\f\v]+|;[^\n]*)*(?:(\()|(\))|("(?:[^"\\\n]|\\.)*")|(<[0-9]+\.[0-9]+>)|(\[[^\]\[()";]*\])'
    r'|([^ \t\r\n\f\v()\[\]";]+)|(.)|\Z)', re.S)
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_INT_RE = re.compile(r"[0-9]+")
_FLAT_RE = re.compile(r"\b([XY])_([0-9]+)\b")


@dataclass(frozen=True)
class TensorDecl:
    """A declared input or output tensor: ``name``, element ``dtype`` and ``shape`` (``()`` for a scalar)."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def element(self, k: int) -> str:
        """The query's spelling of flat element ``k`` (``X[0,3]``, or ``X`` for a scalar)."""
        if not self.shape:
            return self.name
        return f"{self.name}[{','.join(str(int(i)) for i in np.unravel_index(k, self.shape))}]"

    def header(self) -> str:
        return f"{self.name} {self.dtype} [{','.join(map(str, self.shape))}]"


@dataclass(frozen=True)
class NetworkDecl:
    """A declared network of a 2.0 query: its ``input`` and ``output`` tensors, its ``relation``
    (``"equal-to"``, ``"isomorphic-to"`` or ``None``) to the network ``target``, where its inputs sit in the
    property's input vector (``input_index[k]``: entry of flat input element ``k``; tied elements share one
    entry) and where its outputs start in the property's output vector (``output_offset``)."""

    name: str
    input: TensorDecl
    output: TensorDecl
    relation: str | None = None
    target: str | None = None
    input_index: tuple[int, ...] = ()
    output_offset: int = 0

    @property
    def model_name(self) -> str:
        """The declaration whose model this network uses (``target`` for ``equal-to``, else its own name)."""
        return self.target if self.relation == "equal-to" else self.name


@dataclass(frozen=True)
class Query:
    """A property file read as VNN-LIB 1.0 or 2.0: the ``property``, the ``version`` (``"1.0"``, ``"2.0"``...)
    and, for 2.0, the declared ``networks`` (``network``, ``input``, ``output``: those of the first one).

    With several networks the property is stated over their product (:mod:`verification.compose`): its
    inputs are the entries of ``input_index`` of every network (tied input elements share one), its outputs
    the networks' outputs concatenated in declaration order."""

    property: VnnlibProperty
    version: str = "1.0"
    network: str | None = None
    input: TensorDecl | None = None
    output: TensorDecl | None = None
    networks: tuple[NetworkDecl, ...] = ()
    ties: int = 0  # input elements tied to another by an asserted equality (several networks)

    @property
    def is_v2(self) -> bool:
        return self.input is not None

    @property
    def is_multi(self) -> bool:
        """True for a query over several networks."""
        return len(self.networks) > 1

    def models_needed(self) -> list[str]:
        """The network names that need a model file (every declaration but the ``equal-to`` ones)."""
        return [n.name for n in self.networks if n.relation != "equal-to"]

    def type_note(self) -> str | None:
        """A note when the query declares a floating ONNX element type: the standard reads that as a request
        for analysis in that precision, and ours is over the reals (exact arithmetic on the stored weights)."""
        if not self.is_v2:
            return None
        decls = [d for n in self.networks for d in (n.input, n.output)] or [self.input, self.output]
        declared = sorted({d.dtype for d in decls if d.dtype not in ("Real", "real")})
        if not declared:
            return None
        return (f"the query declares {'/'.join(declared)} tensors; the analysis is over the reals (exact arithmetic "
                f"on the network's stored weights), not in {'/'.join(declared)} rounding (declare Real to say so)")

    def assignment_text(self, x, y) -> str:
        """The counterexample ``x`` / ``f(x) = y`` in the query's format: 1.0 ``((X_0 v) ... (Y_0 w) ...)``;
        2.0 one ``NAME TYPE [dims]`` line per declared tensor followed by its elements in row-major order,
        one per line (VNN-LIB 2.0 standard, "Command-line assignment format")."""
        xs = [float(v) for v in np.asarray(x, dtype=np.float64).reshape(-1)]
        ys = [float(v) for v in np.asarray(y, dtype=np.float64).reshape(-1)]
        if not self.is_v2:
            lines = [f"(X_{i} {v!r})" for i, v in enumerate(xs)] + [f"(Y_{j} {v!r})" for j, v in enumerate(ys)]
            return "(" + "\n".join(lines) + ")\n"
        parts = []
        for n in self.networks:
            parts += [n.input.header(), *(repr(xs[k]) for k in n.input_index)]
            parts += [n.output.header(), *map(repr, ys[n.output_offset:n.output_offset + n.output.size])]
        return "\n".join(parts) + "\n"

    def result_text(self, result) -> str:
        """The VNN-COMP result file of a :class:`~verification.smt.result.VerifyResult` for this query."""
        if result.status == "violated":
            return "sat\n" + self.assignment_text(result.counterexample, result.output)
        return result.vnncomp_text()

    def parse_assignment(self, text: str) -> tuple[list[float], list[float]]:
        """Inputs and outputs of a ``sat`` result text written by :meth:`result_text` (either format)."""
        if not self.is_v2:
            xs: dict[int, float] = {}
            ys: dict[int, float] = {}
            for tok in text.replace("(", " ( ").replace(")", " ) ").split("(")[1:]:
                parts = tok.replace(")", " ").split()
                if len(parts) == 2 and parts[0][:2] in ("X_", "Y_"):
                    (xs if parts[0][0] == "X" else ys)[int(parts[0][2:])] = float(parts[1])
            return [xs[i] for i in sorted(xs)], [ys[j] for j in sorted(ys)]
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        names = {d.name for n in self.networks for d in (n.input, n.output)}
        out: dict[str, list[float]] = {}
        cur = None
        for ln in lines[1:] if lines and lines[0] == "sat" else lines:
            head = ln.split(" ", 1)[0]
            if head in names and " " in ln:
                cur = out.setdefault(head, [])
            elif cur is not None:
                cur.append(float(ln))
        x: list[float | None] = [None] * self.property.in_dim
        ys: list[float] = []
        for n in self.networks:
            vals = out.get(n.input.name, [])
            if len(vals) != n.input.size:
                return [], []
            for k, v in zip(n.input_index, vals):
                if x[k] is not None and x[k] != v:  # tied elements written with different values
                    return [], []
                x[k] = v
            ys += out.get(n.output.name, [])
        if any(v is None for v in x):
            return [], []
        return x, ys


def is_vnnlib2(text: str) -> bool:
    """True if the first command of ``text`` is ``(vnnlib-version ...)``."""
    m = _TOKEN_RE.match(text, 0)
    if not m or not m.group(1):
        return False
    m2 = _TOKEN_RE.match(text, m.end())
    return bool(m2 and m2.group(6) == "vnnlib-version")


class _Translator:
    """One pass over the tokens: declarations are checked and collected, assertions copied in 1.0 form."""

    def __init__(self, text: str, src: str):
        self.text, self.src = text, src
        self.version = ""
        self.networks: list[tuple[str, int]] = []
        self.declared: list[tuple[str, int, int]] = []  # network, inputs and outputs declared up to its end
        self.inputs: list[tuple[TensorDecl, int]] = []
        self.outputs: list[tuple[TensorDecl, int]] = []
        self.names: dict[str, tuple[str, TensorDecl | None]] = {}  # name -> ("network"|"input"|"output", decl)
        self.out: list[str] = []  # the 1.0 text of the assertions
        self.n_assert = 0
        self.relations: dict[str, tuple[str, str, int]] = {}  # network -> (relation, target, position)
        self.offsets: dict[str, int] = {}  # tensor -> offset of its first element among all inputs / outputs
        self.n_inputs = self.n_outputs = 0  # elements declared so far
        self.ties: list[tuple[int, int]] = []  # asserted equalities of two input elements (several networks)
        self.input_atoms: dict[int, int] = {}  # index in ``out`` of a bare input element -> its element id

    def line(self, pos: int) -> int:
        return self.text.count("\n", 0, pos) + 1

    def err(self, pos: int, msg: str) -> PropertyFormatError:
        return PropertyFormatError(f"{self.src}:{self.line(pos)}: {msg}")

    def tokens(self):
        """``(kind, text, pos, newlines before it)`` for each token; kind one of ``( ) s v i a``."""
        text, at, n = self.text, 0, len(self.text)
        match = _TOKEN_RE.match
        while at <= n:
            m = match(text, at)
            if m.lastindex is None:
                return
            g = m.lastindex
            pos = m.start(g)
            nl = text.count("\n", at, pos)
            at = m.end()
            if g == 7:
                c = m.group(7)
                what = "unterminated string" if c == '"' else f"unexpected character {c!r}"
                raise self.err(pos, what)
            yield "()svia"[g - 1], m.group(g), pos, nl

    # ------------------------------------------------------------------ commands
    def run(self) -> None:
        toks = self.tokens()
        first = True
        seen_assert = False
        for kind, tok, pos, nl in toks:
            self.out.append("\n" * nl)
            if kind != "(":
                raise self.err(pos, f"unexpected {_show(tok)} outside a command (expected '(')")
            head = next(toks, None)
            if head is None:
                raise self.err(pos, "unbalanced '(': missing ')' before end of file")
            hk, htok, hpos, hnl = head
            self.out.append("\n" * hnl)
            if hk != "a":
                raise self.err(hpos, "expected a command name after '('")
            if first:
                if htok != "vnnlib-version":
                    raise self.err(hpos, "a VNN-LIB 2.0 query starts with (vnnlib-version <2.0>)")
                self._version(toks, hpos)
                first = False
            elif htok == "declare-network":
                if seen_assert:
                    raise self.err(hpos, "declare-network after an assert: all network declarations come before "
                                   "the assertions")
                self._network(toks, hpos)
            elif htok == "assert":
                seen_assert = True
                self.n_assert += 1
                self._assert(toks, pos)
            elif htok in _IGNORED:
                self._skip(toks, pos)
            elif htok in ("declare-const", "declare-fun"):
                raise self.err(hpos, f"{htok} is VNN-LIB 1.0; a 2.0 query declares variables in declare-network")
            else:
                raise self.err(hpos, f"unknown command {_show(htok)}")
        if first:
            raise self.err(0, "empty query")

    def _list(self, toks, pos: int, what: str) -> list[tuple[str, str, int, int]]:
        """The flat tokens up to the closing ')' of a list whose '(' and head were read."""
        items = []
        for t in toks:
            self.out.append("\n" * t[3])
            if t[0] == ")":
                return items
            if t[0] == "(":
                raise self.err(t[2], f"unexpected '(' in {what}")
            items.append(t)
        raise self.err(pos, f"unbalanced '(' in {what}: missing ')' before end of file")

    def _version(self, toks, pos: int) -> None:
        items = self._list(toks, pos, "vnnlib-version")
        if len(items) != 1 or items[0][0] != "v":
            raise self.err(pos, "malformed version: expected (vnnlib-version <2.0>)")
        self.version = items[0][1][1:-1]
        if self.version.split(".")[0] != "2":
            raise self.err(pos, f"VNN-LIB version {self.version} is not supported (this reader knows 1.0 and 2.x)")

    def _skip(self, toks, pos: int) -> None:
        depth = 1
        for t in toks:
            self.out.append("\n" * t[3])
            depth += 1 if t[0] == "(" else -1 if t[0] == ")" else 0
            if depth == 0:
                return
        raise self.err(pos, "unbalanced '(': missing ')' before end of file")

    def _declare_name(self, name: str, pos: int, kind: str, decl: TensorDecl | None) -> None:
        if not _NAME_RE.fullmatch(name):
            raise self.err(pos, f"{_show(name)} is not a valid name (a letter, then letters, digits or '_')")
        if name in self.names:
            raise self.err(pos, f"name {name} is declared twice (names are global and unique)")
        self.names[name] = (kind, decl)

    def _network(self, toks, pos: int) -> None:
        name = next(toks, None)
        if name is None or name[0] != "a":
            raise self.err(pos, "malformed declare-network: expected (declare-network NAME (declare-input ...) ...)")
        self.out.append("\n" * name[3])
        self._declare_name(name[1], name[2], "network", None)
        self.networks.append((name[1], pos))
        stage, n_in, n_out = 0, 0, 0  # 0 equivalence allowed, 1 inputs, 2 hidden, 3 outputs
        for t in toks:
            self.out.append("\n" * t[3])
            if t[0] == ")":
                break
            if t[0] != "(":
                raise self.err(t[2], f"unexpected {_show(t[1])} in declare-network (expected a declaration)")
            head = next(toks, None)
            if head is None or head[0] != "a":
                raise self.err(t[2], "expected a declaration name after '('")
            self.out.append("\n" * head[3])
            items = self._list(toks, t[2], head[1])
            h = head[1]
            if h in ("equal-to", "isomorphic-to"):
                if stage > 0:
                    raise self.err(head[2], f"({h} ...) must come before the input declarations")
                if len(items) != 1 or items[0][1] not in self.names or self.names[items[0][1]][0] != "network":
                    raise self.err(head[2], f"({h} NAME) must name a network declared earlier")
                if items[0][1] in self.relations:
                    raise self.err(head[2], f"({h} {items[0][1]}): {items[0][1]} is itself {self.relations[items[0][1]][0]} "
                                   f"{self.relations[items[0][1]][1]} (name a network without equal-to / isomorphic-to)")
                self.relations[name[1]] = (h, items[0][1], head[2])
                stage = 1
            elif h in ("declare-input", "declare-hidden", "declare-output"):
                order = {"declare-input": 1, "declare-hidden": 2, "declare-output": 3}[h]
                if order < stage:
                    raise self.err(head[2], "declarations must be ordered: inputs, then hidden nodes, then outputs")
                stage = order
                decl = self._tensor(h, items, head[2])
                if h == "declare-input":
                    n_in += 1
                    self.inputs.append((decl, head[2]))
                    self.offsets[decl.name] = self.n_inputs
                    self.n_inputs += decl.size
                elif h == "declare-output":
                    n_out += 1
                    self.outputs.append((decl, head[2]))
                    self.offsets[decl.name] = self.n_outputs
                    self.n_outputs += decl.size
                else:
                    self.hidden = head[2]
            else:
                raise self.err(head[2], f"unknown declaration {_show(h)} in declare-network")
        else:
            raise self.err(pos, "unbalanced '(' in declare-network: missing ')' before end of file")
        if n_in == 0 or n_out == 0:
            raise self.err(pos, f"network {name[1]} declares no {'input' if n_in == 0 else 'output'} "
                           "(each network needs at least one declare-input and one declare-output)")
        self.declared.append((name[1], len(self.inputs), len(self.outputs)))

    def _tensor(self, h: str, items: list, pos: int) -> TensorDecl:
        want = 4 if h == "declare-hidden" else 3
        opts = items[want:]
        if len(items) < want or items[0][0] != "a" or items[1][0] != "a" or items[2][0] != "i":
            extra = " \"onnx-node\"" if h == "declare-hidden" else ""
            raise self.err(pos, f"malformed {h}: expected ({h} NAME TYPE [d1,...,dn]{extra})")
        if h == "declare-hidden" and items[3][0] != "s":
            raise self.err(pos, "malformed declare-hidden: the ONNX node name is a \"string\"")
        if h == "declare-input" and [o[1] for o in opts] == ["initialized"]:
            opts = []
            self.initialized = pos
        if opts:
            raise self.err(opts[0][2], f"unexpected {_show(opts[0][1])} in {h}")
        name, dtype = items[0][1], items[1][1]
        if dtype not in FLOAT_TYPES and dtype not in OTHER_TYPES:
            raise self.err(pos, f"unknown element type {_show(dtype)} (Real or an ONNX element type)")
        body = items[2][1][1:-1].strip()
        dims = [d.strip() for d in body.split(",")] if body else []
        if any(not _INT_RE.fullmatch(d) or len(d) > 12 for d in dims):
            raise self.err(pos, f"malformed shape {_show(items[2][1])}: expected [d1,...,dn] with integers >= 0")
        shape = tuple(int(d) for d in dims)
        decl = TensorDecl(name, dtype, shape)
        self._declare_name(name, items[0][2], h[8:], decl)
        if decl.size > _MAX_ELEMENTS:
            raise self.err(pos, f"tensor {name} has more than {_MAX_ELEMENTS} elements")
        return decl

    # ------------------------------------------------------------------ assertions
    def _assert(self, toks, pos: int) -> None:
        """Copy ``(assert ...)`` in 1.0 form.  Frames: [head, out index of '(' , [out index of each arg]]."""
        out = self.out
        out.append("(assert")
        stack = [["assert", len(out) - 1, []]]
        want_head = False
        for kind, tok, tpos, nl in toks:
            if nl:
                out.append("\n" * nl)
            if want_head:
                want_head = False
                if kind != "a":
                    raise self.err(tpos, "expected an operator after '('")
                if tok == "!=":
                    stack[-1][0] = "!="
                    out.append("")  # replaced when the comparison closes
                    continue
                out.append("=" if tok == "==" else tok)
                stack[-1][0] = tok
                continue
            if kind == "(":
                stack[-1][2].append(len(out))
                out.append(" (")
                stack.append([None, len(out) - 1, []])
                want_head = True
            elif kind == ")":
                head, start, args = stack.pop()
                if head == "!=":
                    self._not_equal(start, args, tpos)
                elif head in ("==", "=") and len(self.networks) > 1 and self._tie(stack, start, args, tpos):
                    continue
                out.append(")")
                if not stack:
                    return
            elif kind == "i":
                raise self.err(tpos, f"index {_show(tok)} without a tensor name")
            elif kind in "sv":
                raise self.err(tpos, f"unexpected {_show(tok)} in an assertion")
            else:
                stack[-1][2].append(len(out))
                out.append(" " + self._element(tok, tpos, toks))
        raise self.err(pos, "unbalanced '(' in assert: missing ')' before end of file")

    def _tie(self, stack: list, start: int, args: list, pos: int) -> bool:
        """``(== A[i] B[j])`` of two bare input elements, asserted (at the top of an assertion or under
        ``and``): the elements are one variable (VNN-LIB 2.0 ties the inputs of several networks this way).
        Its text becomes ``true`` (line breaks kept); returns False for any other equality."""
        if len(args) != 2 or any(self.out[a] != f" X_{self.input_atoms.get(a)}" for a in args):
            return False
        if any(frame[0] != "and" for frame in stack[1:]):
            raise self.err(pos, "an equality of two input elements under or: ties of inputs must be asserted "
                           "(at the top of an assertion or under and)")
        self.ties.append((self.input_atoms[args[0]], self.input_atoms[args[1]]))
        newlines = "".join(self.out[start:]).count("\n")
        del self.out[start + 1:]
        self.out[start] = " true" + "\n" * newlines
        return True

    def _not_equal(self, start: int, args: list, pos: int) -> None:
        """``(!= a b)`` -> ``(or (< a b) (> a b))`` in the output buffer."""
        if len(args) != 2:
            raise self.err(pos, f"!= takes two arguments; got {len(args)}")
        body = "".join(self.out[args[0]:])
        del self.out[start + 1:]
        self.out[start] = f" (or (<{body}) (>{body.replace(chr(10), ' ')})"
        self.out.append("")  # the caller appends the closing ')' of the 'or'

    def _element(self, tok: str, pos: int, toks) -> str:
        """A numeral unchanged, or a tensor element ``X[i,j]`` / scalar ``X`` as ``X_k`` / ``Y_k``."""
        entry = self.names.get(tok)
        if entry is None:
            if _NAME_RE.fullmatch(tok) and tok not in ("and", "or"):
                raise self.err(pos, f"unknown variable {_show(tok)} (not declared in a declare-network)")
            return tok
        kind, decl = entry
        if kind == "network":
            raise self.err(pos, f"{tok} is a network, not a tensor")
        if kind == "hidden":
            raise self.err(pos, f"{tok} is a hidden node: declare-hidden is not supported")
        idx: tuple[int, ...] = ()
        if decl.shape:
            nxt = next(toks, None)
            if nxt is None or nxt[0] != "i" or nxt[3]:
                raise self.err(pos, f"{tok} has shape [{','.join(map(str, decl.shape))}]: refer to an element, "
                               f"e.g. {tok}[{','.join('0' * len(decl.shape))}]")
            body = nxt[1][1:-1]
            parts = [p.strip() for p in body.split(",")] if body.strip() else []
            if any(not _INT_RE.fullmatch(p) or len(p) > 12 for p in parts):
                raise self.err(pos, f"malformed index {tok}{nxt[1]}: expected non-negative integers")
            idx = tuple(int(p) for p in parts)
            if len(idx) != len(decl.shape):
                raise self.err(pos, f"{tok}{nxt[1]}: {len(idx)} indices for a tensor of {len(decl.shape)} dimensions")
            if any(i >= d for i, d in zip(idx, decl.shape)):
                raise self.err(pos, f"{tok}{nxt[1]} is out of range for shape [{','.join(map(str, decl.shape))}]")
        flat = int(np.ravel_multi_index(idx, decl.shape)) if idx else 0
        flat += self.offsets[decl.name]
        if kind == "input":
            self.input_atoms[len(self.out)] = flat
        return f"{'X' if kind == 'input' else 'Y'}_{flat}"

    # ------------------------------------------------------------------ result
    def check_supported(self) -> list[tuple[str, TensorDecl, TensorDecl, tuple | None]]:
        """``(network, input, output, (relation, target) or None)`` per declared network, in order."""
        if not self.networks:
            raise self.err(0, "no declare-network: the query declares no network")
        if getattr(self, "hidden", None) is not None:
            raise self.err(self.hidden, "declare-hidden (constraints on hidden nodes) is not supported")
        if getattr(self, "initialized", None) is not None:
            raise self.err(self.initialized, "'initialized' inputs are not supported")
        out, n_in, n_out = [], 0, 0
        for (net, pos), (_, i_end, o_end) in zip(self.networks, self.declared):
            for what, decls in (("inputs", self.inputs[n_in:i_end]), ("outputs", self.outputs[n_out:o_end])):
                if len(decls) > 1:
                    raise self.err(decls[1][1], f"network {net} declares {len(decls)} {what}: only one input and one "
                                   "output tensor per network are supported")
            x, y = self.inputs[n_in][0], self.outputs[n_out][0]
            n_in, n_out = i_end, o_end
            rel = self.relations.get(net)
            out.append((net, x, y, rel[:2] if rel else None))
            if rel:
                _, tx, ty, _ = next(o for o in out if o[0] == rel[1])
                for mine, theirs in ((x, tx), (y, ty)):
                    if mine.shape != theirs.shape or (rel[0] == "equal-to" and mine.dtype != theirs.dtype):
                        raise self.err(rel[2], f"({rel[0]} {rel[1]}): {mine.header()} does not match {theirs.header()} "
                                       f"of {rel[1]} ({'type and ' if rel[0] == 'equal-to' else ''}shape must be equal)")
        for decl, pos in self.inputs + self.outputs:
            if decl.dtype not in FLOAT_TYPES:
                raise self.err(pos, f"element type {decl.dtype} of {decl.name} is not supported (Real or a "
                               "floating type)")
            if decl.size == 0:
                raise self.err(pos, f"tensor {decl.name} of shape [{','.join(map(str, decl.shape))}] has no elements")
        return out

    def input_classes(self) -> tuple[np.ndarray, int]:
        """The property input of every input element (tied elements share the smallest's), and their number."""
        parent = list(range(self.n_inputs))

        def find(a: int) -> int:
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        for a, b in self.ties:
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
        roots = np.array([find(a) for a in range(self.n_inputs)], dtype=np.int64)
        uniq, cls = np.unique(roots, return_inverse=True)  # roots sorted: classes ordered by their first element
        return cls.astype(np.int64), int(uniq.size)


def _show(tok: str) -> str:
    return ascii(tok if len(tok) <= 40 else tok[:40] + "...")


def parse_query(text: str | bytes, source: str = "<string>") -> Query:
    """Parse VNN-LIB 1.0 or 2.0 text (2.0 when it starts with ``(vnnlib-version ...)``) into a :class:`Query`."""
    text, src = _source_text(text, source)
    if not is_vnnlib2(text):
        return Query(parse_vnnlib(text, src))
    tr = _Translator(text, src)
    tr.run()
    nets = tr.check_supported()
    if tr.n_assert == 0:
        raise tr.err(0, "no assert: the query states no property")
    cls, n_x = tr.input_classes()
    body = "".join(tr.out)
    if tr.ties:
        body = _FLAT_RE.sub(lambda m: f"X_{cls[int(m.group(2))]}" if m.group(1) == "X" else m.group(0), body)
    decls = "".join(f"(declare-const X_{i} Real)" for i in range(n_x))
    decls += "".join(f"(declare-const Y_{j} Real)" for j in range(tr.n_outputs))
    first_of = np.full(n_x, -1, dtype=np.int64)  # the first input element of every property input
    for e in range(cls.size - 1, -1, -1):
        first_of[cls[e]] = e
    xs = [(tr.offsets[d.name], d) for _, d, _, _ in nets]
    ys = [(tr.offsets[d.name], d) for _, _, d, _ in nets]

    def spelled(k: int, table: list) -> str:
        off, decl = next((o, d) for o, d in reversed(table) if o <= k)
        return decl.element(k - off) if k - off < decl.size else f"element {k}"

    try:
        prop = parse_vnnlib(decls + body, src)
    except PropertyFormatError as exc:
        def name(m: re.Match) -> str:
            k = int(m.group(2))
            if m.group(1) == "X":
                return spelled(int(first_of[k]), xs) if k < n_x else m.group(0)
            return spelled(k, ys) if k < tr.n_outputs else m.group(0)

        msg = _FLAT_RE.sub(name, str(exc)).replace("X_i", "input element").replace("Y_j", "output element")
        if len(nets) > 1 and "bound a single input element" in msg:
            msg += "; the inputs of several networks are related only by asserted equalities (== A[i] B[j])"
        raise PropertyFormatError(msg) from None
    decl_list = tuple(
        NetworkDecl(net, x, y, rel[0] if rel else None, rel[1] if rel else None,
                    tuple(int(c) for c in cls[tr.offsets[x.name]:tr.offsets[x.name] + x.size]), tr.offsets[y.name])
        for net, x, y, rel in nets)
    return Query(prop, tr.version, nets[0][0], nets[0][1], nets[0][2], decl_list, len(tr.ties))


def read_query(path: str | Path) -> Query:
    """Read a VNN-LIB 1.0 or 2.0 file (UTF-8, at most 200 MiB); errors name the file and line."""
    text, src = _read_source(path)
    return parse_query(text, src)
