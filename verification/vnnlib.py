"""Reader for the VNN-LIB subset used by the VNN-COMP benchmarks.

A VNN-LIB file declares real constants ``X_0 .. X_{n-1}`` (network inputs) and ``Y_0 .. Y_{m-1}``
(network outputs) and asserts constraints whose conjunction describes the **unsafe** set: the property is
*violated* iff some input ``x`` satisfies every input constraint and ``y = f(x)`` satisfies every output
constraint.  Supported:

* ``(declare-const X_i Real)`` / ``(declare-const Y_j Real)`` (also ``(declare-fun X_i () Real)``);
* ``(assert F)`` with ``F`` built from ``and``, ``or`` and comparisons ``<= >= < > =`` between linear terms
  (numbers, variables, ``+``, ``-``, ``*`` by a constant);
* input atoms must bound a single ``X_i``; output atoms may be any linear inequality over the ``Y_j``;
  atoms mixing ``X`` and ``Y`` are rejected;
* ``(check-sat)``, ``(get-model)``, ``(set-logic ...)``, ``(set-info ...)``, ``(exit)`` are ignored.

Strict inequalities are read as non-strict (as VNN-COMP's own tools do); the difference is a set of
measure zero and does not change any benchmark answer.

The formula is brought to disjunctive normal form and grouped by input box: :class:`VnnlibProperty` holds
a tuple of :class:`InputRegion` (box + a disjunction of output polytopes ``A y <= b``).  Any malformed or
unsupported construct raises :class:`~verification.errors.PropertyFormatError` naming the file and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from verification.errors import PropertyFormatError

__all__ = [
    "OutputConstraint",
    "InputRegion",
    "VnnlibProperty",
    "read_vnnlib",
    "parse_vnnlib",
    "box_property",
    "robustness_property",
]

_MAX_DNF_TERMS = 100_000
_VAR_RE = re.compile(r"^([XY])_(\d+)$")
_IGNORED = {"check-sat", "get-model", "set-logic", "set-info", "set-option", "exit"}


# ----------------------------------------------------------------------------------------------- results
@dataclass(frozen=True, eq=False)
class OutputConstraint:
    """Conjunction ``A y <= b`` (rows of ``A`` index outputs).  Zero rows means "any output"."""

    A: np.ndarray
    b: np.ndarray

    def __post_init__(self) -> None:
        A = np.ascontiguousarray(np.asarray(self.A, dtype=np.float64))
        b = np.ascontiguousarray(np.asarray(self.b, dtype=np.float64).reshape(-1))
        if A.ndim != 2 or A.shape[0] != b.shape[0]:
            raise PropertyFormatError(f"output constraint needs A (m, out_dim) and b (m,), got {A.shape}, {b.shape}")
        object.__setattr__(self, "A", A)
        object.__setattr__(self, "b", b)

    def margin(self, y: np.ndarray) -> np.ndarray:
        """``max_r (A y - b)_r`` per row of ``y`` (batched); ``<= 0`` iff ``y`` lies in the unsafe polytope."""
        y = np.atleast_2d(np.asarray(y, dtype=np.float64))
        if self.A.shape[0] == 0:
            return np.full(y.shape[0], -np.inf)
        return (y @ self.A.T - self.b).max(axis=1)


@dataclass(frozen=True, eq=False)
class InputRegion:
    """An input box ``lower <= x <= upper`` with a disjunction of unsafe output polytopes."""

    lower: np.ndarray
    upper: np.ndarray
    outputs: tuple[OutputConstraint, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "lower", np.asarray(self.lower, dtype=np.float64).reshape(-1).copy())
        object.__setattr__(self, "upper", np.asarray(self.upper, dtype=np.float64).reshape(-1).copy())
        object.__setattr__(self, "outputs", tuple(self.outputs))

    def margin(self, y: np.ndarray) -> np.ndarray:
        """``min_k max_r (A_k y - b_k)_r``: ``<= 0`` iff ``y`` is unsafe for this region."""
        return np.min(np.stack([c.margin(y) for c in self.outputs]), axis=0)


@dataclass(frozen=True, eq=False)
class VnnlibProperty:
    """A property in normal form: violated iff some region has ``x`` in its box with ``f(x)`` unsafe."""

    in_dim: int
    out_dim: int
    regions: tuple[InputRegion, ...]
    source: str | None = None
    metadata: dict = field(default_factory=dict)

    def is_violated_by(self, x: np.ndarray, y: np.ndarray, atol: float = 0.0) -> bool:
        """True if ``x`` lies in some region's box (within ``atol``) and ``y`` meets its output constraint
        (margin ``<= atol``)."""
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        for reg in self.regions:
            if np.all(x >= reg.lower - atol) and np.all(x <= reg.upper + atol):
                if reg.margin(y)[0] <= atol:
                    return True
        return False

    def describe(self) -> str:
        n_out = sum(len(r.outputs) for r in self.regions)
        return (
            f"VNN-LIB property: {self.in_dim} inputs, {self.out_dim} outputs, {len(self.regions)} input box(es), "
            f"{n_out} unsafe output polytope(s)"
        )


# ----------------------------------------------------------------------------------------------- parsing
@dataclass
class _Node:
    items: list  # of _Node or (token, line) tuples
    line: int


def _err(src: str, line: int, msg: str) -> PropertyFormatError:
    return PropertyFormatError(f"{src}:{line}: {msg}")


def _tokenize(text: str, src: str) -> list[tuple[str, int]]:
    toks: list[tuple[str, int]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        i = 0
        n = len(line)
        while i < n:
            c = line[i]
            if c == ";":
                break
            if c.isspace():
                i += 1
            elif c in "()":
                toks.append((c, lineno))
                i += 1
            elif c == '"':
                j = line.find('"', i + 1)
                if j < 0:
                    raise _err(src, lineno, "unterminated string literal")
                toks.append((line[i : j + 1], lineno))
                i = j + 1
            else:
                j = i
                while j < n and not line[j].isspace() and line[j] not in "();":
                    j += 1
                toks.append((line[i:j], lineno))
                i = j
    return toks


def _parse_sexprs(toks: list[tuple[str, int]], src: str) -> list[_Node]:
    stack: list[_Node] = []
    top: list[_Node] = []
    for tok, line in toks:
        if tok == "(":
            stack.append(_Node([], line))
        elif tok == ")":
            if not stack:
                raise _err(src, line, "unbalanced ')'")
            node = stack.pop()
            if stack:
                stack[-1].items.append(node)
            else:
                top.append(node)
        else:
            if not stack:
                raise _err(src, line, f"unexpected token {tok!r} outside parentheses")
            stack[-1].items.append((tok, line))
    if stack:
        raise _err(src, stack[-1].line, "unbalanced '(': missing ')' before end of file")
    return top


def _head(node: _Node, src: str) -> str:
    if not node.items or isinstance(node.items[0], _Node):
        raise _err(src, node.line, "expected an operator after '('")
    return node.items[0][0]


def _line_of(item) -> int:
    return item.line if isinstance(item, _Node) else item[1]


def _number(tok: str) -> float | None:
    try:
        v = float(tok)
    except ValueError:
        return None
    return v if np.isfinite(v) else None


class _Parser:
    def __init__(self, src: str):
        self.src = src
        self.vars: dict[str, tuple[str, int]] = {}  # name -> (kind, index)

    # linear term -> (dict var->coef, const)
    def term(self, item) -> tuple[dict, float]:
        if not isinstance(item, _Node):
            tok, line = item
            if tok in self.vars:
                return {tok: 1.0}, 0.0
            v = _number(tok)
            if v is not None:
                return {}, v
            if _VAR_RE.match(tok):
                raise _err(self.src, line, f"variable {tok} is used but not declared")
            raise _err(self.src, line, f"unknown symbol {tok!r} (expected a number or a declared X_i/Y_j)")
        op = _head(item, self.src)
        args = [self.term(a) for a in item.items[1:]]
        if op == "+":
            return self._lin_sum(args, [1.0] * len(args))
        if op == "-":
            if len(args) == 1:
                return self._lin_sum(args, [-1.0])
            if not args:
                raise _err(self.src, item.line, "'-' needs at least one argument")
            return self._lin_sum(args, [1.0] + [-1.0] * (len(args) - 1))
        if op == "*":
            coef, lin = 1.0, None
            for (d, c) in args:
                if d:
                    if lin is not None:
                        raise _err(self.src, item.line, "non-linear product of two variables is not supported")
                    lin = (d, c)
                else:
                    coef *= c
            if lin is None:
                return {}, coef
            return {k: coef * v for k, v in lin[0].items()}, coef * lin[1]
        if op == "/" and len(args) == 2 and not args[1][0] and args[1][1] != 0:
            s = 1.0 / args[1][1]
            return {k: s * v for k, v in args[0][0].items()}, s * args[0][1]
        raise _err(self.src, item.line, f"unsupported term operator {op!r}")

    @staticmethod
    def _lin_sum(args, signs) -> tuple[dict, float]:
        out: dict = {}
        const = 0.0
        for (d, c), s in zip(args, signs):
            for k, v in d.items():
                out[k] = out.get(k, 0.0) + s * v
            const += s * c
        return out, const

    # formula -> DNF: list of conjunctions, each a list of atoms (coef dict, rhs, line) meaning sum <= rhs
    def formula(self, item) -> list[list]:
        if not isinstance(item, _Node):
            tok, line = item
            if tok == "true":
                return [[]]
            if tok == "false":
                return []
            raise _err(self.src, line, f"expected a formula, got {tok!r}")
        op = _head(item, self.src)
        args = item.items[1:]
        if op == "and":
            dnf: list[list] = [[]]
            for a in args:
                sub = self.formula(a)
                if len(dnf) * max(len(sub), 1) > _MAX_DNF_TERMS:
                    raise _err(self.src, item.line, f"formula too large: more than {_MAX_DNF_TERMS} DNF terms")
                dnf = [c1 + c2 for c1 in dnf for c2 in sub]
            return dnf
        if op == "or":
            out: list[list] = []
            for a in args:
                out.extend(self.formula(a))
                if len(out) > _MAX_DNF_TERMS:
                    raise _err(self.src, item.line, f"formula too large: more than {_MAX_DNF_TERMS} DNF terms")
            return out
        if op in ("<=", ">=", "<", ">", "="):
            if len(args) < 2:
                raise _err(self.src, item.line, f"'{op}' needs at least two arguments")
            terms = [self.term(a) for a in args]
            atoms = []
            for (d1, c1), (d2, c2) in zip(terms[:-1], terms[1:]):
                # lhs - rhs as a linear form
                diff = dict(d1)
                for k, v in d2.items():
                    diff[k] = diff.get(k, 0.0) - v
                const = c2 - c1  # d1 + c1 <op> d2 + c2  <=>  diff <op> const
                if op in ("<=", "<", "="):
                    atoms.append((diff, const, item.line))
                if op in (">=", ">", "="):
                    atoms.append(({k: -v for k, v in diff.items()}, -const, item.line))
            return [atoms]
        if op == "not":
            raise _err(self.src, item.line, "'not' is not in the supported VNN-LIB subset (rewrite the comparison)")
        raise _err(self.src, item.line, f"unsupported formula operator {op!r}")

    def declare(self, node: _Node, cmd: str) -> None:
        items = node.items
        if cmd == "declare-const":
            ok = len(items) == 3 and not isinstance(items[1], _Node) and not isinstance(items[2], _Node)
            sort = items[2][0] if ok else None
        else:  # declare-fun NAME () Real
            ok = (
                len(items) == 4 and not isinstance(items[1], _Node) and isinstance(items[2], _Node)
                and not items[2].items and not isinstance(items[3], _Node)
            )
            sort = items[3][0] if ok else None
        if not ok:
            raise _err(self.src, node.line, f"malformed {cmd}: expected ({cmd} NAME{' ()' if cmd == 'declare-fun' else ''} Real)")
        name = items[1][0]
        if sort != "Real":
            raise _err(self.src, node.line, f"variable {name} has sort {sort!r}; only Real is supported")
        m = _VAR_RE.match(name)
        if not m:
            raise _err(self.src, node.line, f"variable name {name!r} is not of the form X_i or Y_j")
        if name in self.vars:
            raise _err(self.src, node.line, f"variable {name} is declared twice")
        self.vars[name] = (m.group(1), int(m.group(2)))


def parse_vnnlib(text: str, source: str = "<string>") -> VnnlibProperty:
    """Parse VNN-LIB text (see the module docstring for the subset) into a :class:`VnnlibProperty`."""
    toks = _tokenize(text, source)
    nodes = _parse_sexprs(toks, source)
    p = _Parser(source)
    dnf: list[list] = [[]]
    n_assert = 0
    for node in nodes:
        cmd = _head(node, source)
        if cmd in ("declare-const", "declare-fun"):
            p.declare(node, cmd)
        elif cmd == "assert":
            if len(node.items) != 2:
                raise _err(source, node.line, "assert takes exactly one formula")
            sub = p.formula(node.items[1])
            if len(dnf) * max(len(sub), 1) > _MAX_DNF_TERMS:
                raise _err(source, node.line, f"formula too large: more than {_MAX_DNF_TERMS} DNF terms")
            dnf = [c1 + c2 for c1 in dnf for c2 in sub]
            n_assert += 1
        elif cmd in _IGNORED:
            continue
        else:
            raise _err(source, node.line, f"unsupported command {cmd!r}")

    idx = {"X": sorted(i for k, i in p.vars.values() if k == "X"), "Y": sorted(i for k, i in p.vars.values() if k == "Y")}
    for kind, name in (("X", "input"), ("Y", "output")):
        if not idx[kind]:
            raise _err(source, 1, f"no {name} variables {kind}_i declared")
        if idx[kind] != list(range(len(idx[kind]))):
            missing = sorted(set(range(max(idx[kind]) + 1)) - set(idx[kind]))
            raise _err(source, 1, f"{name} variables must be {kind}_0..{kind}_{max(idx[kind])} without gaps; missing {kind}_{missing[0]}")
    if n_assert == 0:
        raise _err(source, 1, "no assert: the file states no property")
    n_in, n_out = len(idx["X"]), len(idx["Y"])

    groups: dict[bytes, tuple[np.ndarray, np.ndarray, list]] = {}
    order: list[bytes] = []
    for conj in dnf:
        lo = np.full(n_in, -np.inf)
        hi = np.full(n_in, np.inf)
        rows, rhs = [], []
        feasible = True
        for coefs, const, line in conj:
            coefs = {k: v for k, v in coefs.items() if v != 0.0}
            kinds = {p.vars[k][0] for k in coefs}
            if not kinds:
                if not 0.0 <= const:
                    feasible = False
                continue
            if kinds == {"X", "Y"}:
                raise _err(source, line, "constraints mixing inputs X and outputs Y are not supported")
            if kinds == {"X"}:
                if len(coefs) != 1:
                    raise _err(source, line, "input constraints must bound a single X_i (general input polytopes are not supported)")
                (name, a), = coefs.items()
                i = p.vars[name][1]
                if a > 0:
                    hi[i] = min(hi[i], const / a)
                else:
                    lo[i] = max(lo[i], const / a)
            else:
                row = np.zeros(n_out)
                for name, a in coefs.items():
                    row[p.vars[name][1]] += a
                rows.append(row)
                rhs.append(const)
        if not feasible or np.any(lo > hi):
            continue  # this disjunct is empty: it cannot witness a violation
        unb = np.flatnonzero(~(np.isfinite(lo) & np.isfinite(hi)))
        if unb.size:
            raise _err(source, 1, f"input X_{unb[0]} has no finite {'lower' if not np.isfinite(lo[unb[0]]) else 'upper'} bound in some disjunct; bounded input boxes are required")
        key = lo.tobytes() + hi.tobytes()
        oc = OutputConstraint(np.array(rows).reshape(len(rows), n_out), np.array(rhs))
        if key not in groups:
            groups[key] = (lo, hi, [])
            order.append(key)
        groups[key][2].append(oc)
    regions = tuple(InputRegion(groups[k][0], groups[k][1], tuple(groups[k][2])) for k in order)
    return VnnlibProperty(n_in, n_out, regions, source)


def read_vnnlib(path: str | Path) -> VnnlibProperty:
    """Read a VNN-LIB file into a :class:`VnnlibProperty` (errors name file and line)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise PropertyFormatError(f"{path}: no such VNN-LIB file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PropertyFormatError(f"{path}: cannot read VNN-LIB file ({exc})") from None
    return parse_vnnlib(text, str(path))


# ----------------------------------------------------------------------------------------------- builders
def box_property(lower, upper, A, b) -> VnnlibProperty:
    """Property "some x in [lower, upper] has A f(x) <= b" (one box, one unsafe polytope)."""
    lo = np.asarray(lower, dtype=np.float64).reshape(-1)
    hi = np.asarray(upper, dtype=np.float64).reshape(-1)
    A = np.atleast_2d(np.asarray(A, dtype=np.float64))
    if lo.shape != hi.shape or np.any(lo > hi) or not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise PropertyFormatError("box_property needs finite lower <= upper of equal length")
    return VnnlibProperty(lo.size, A.shape[1], (InputRegion(lo, hi, (OutputConstraint(A, b),)),))


def robustness_property(lower, upper, label: int, out_dim: int) -> VnnlibProperty:
    """Unsafe iff some x in the box has ``f_j(x) >= f_label(x)`` for a class ``j != label`` (ties count as
    violations, as in VNN-COMP robustness specs)."""
    lo = np.asarray(lower, dtype=np.float64).reshape(-1)
    hi = np.asarray(upper, dtype=np.float64).reshape(-1)
    outs = []
    for j in range(out_dim):
        if j == label:
            continue
        row = np.zeros(out_dim)
        row[label], row[j] = 1.0, -1.0  # y_label - y_j <= 0
        outs.append(OutputConstraint(row[None, :], np.zeros(1)))
    return VnnlibProperty(lo.size, out_dim, (InputRegion(lo, hi, tuple(outs)),))
