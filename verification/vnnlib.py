"""Reader for the VNN-LIB subset used by the VNN-COMP benchmarks (the property model it builds is
:mod:`verification.spec`; its names are re-exported here).

A VNN-LIB file declares real constants ``X_0 .. X_{n-1}`` (network inputs) and ``Y_0 .. Y_{m-1}``
(network outputs) and asserts constraints whose conjunction describes the **unsafe** set: the property is
*violated* iff some input ``x`` satisfies every input constraint and ``y = f(x)`` satisfies every output
constraint.  Supported:

* ``(declare-const X_i Real)`` / ``(declare-const Y_j Real)`` (also ``(declare-fun X_i () Real)``);
* ``(assert F)`` with ``F`` built from ``and``, ``or``, ``true``, ``false`` and (chained) comparisons
  ``<= >= < > =`` between linear terms (numerals, variables, ``+``, ``-``, ``*`` and ``/`` by constants);
* input atoms must bound a single ``X_i``; output atoms may be any linear inequality over the ``Y_j``;
  atoms mixing ``X`` and ``Y`` are rejected;
* ``(check-sat)``, ``(get-model)``, ``(set-logic ...)``, ``(set-info ...)``, ``(set-option ...)``,
  ``(exit)`` are ignored.

**Exact values.**  Numerals (decimal, scientific ``1e-3``, hexadecimal floats ``0x1.8p-3``) are read as
exact rationals (:class:`~fractions.Fraction`: ``0.1`` is 1/10) and terms are folded exactly.  Every
numeral, every folded constant and every final coefficient / bound must lie in the float64 range
(``|v| <= 1.797e308``); NaN and infinity are errors.  Each constraint keeps its exact value
(``A_exact``, ``b_exact``, ``lower_exact``, ``upper_exact``) next to float64 arrays: output rows and
bounds are the nearest floats; input boxes are rounded **outward** (``lower``/``upper``: proofs on the float
box cover the exact box) and :meth:`InputRegion.inner_bounds` gives the floats inside the exact box.

**Strictness.**  ``<`` and ``>`` are recorded per row (``OutputConstraint.strict``) and per box bound
(``InputRegion.lower_strict``/``upper_strict``); ``=`` gives two non-strict rows.  Proofs may treat ``<`` as
``<=`` (that only enlarges the unsafe set, so it is sound); a counterexample must satisfy the property as
written: :meth:`VnnlibProperty.is_violated_exactly` checks the float input point and exact outputs in
rational arithmetic, strict rows strictly.

The formula is brought to disjunctive normal form and grouped by input box: :class:`VnnlibProperty` holds
a tuple of :class:`InputRegion` (box + a disjunction of output polytopes ``A y <= b``).  Disjuncts with an
empty input box are dropped; if every disjunct is empty the file is rejected.  The reader is iterative and
linear in the file size (no recursion, any nesting depth up to ``_MAX_DEPTH``).  Any malformed or
unsupported construct raises :class:`~verification.errors.PropertyFormatError` (one line, naming the file
and line).
"""

from __future__ import annotations

import itertools
import os
import re
from collections import deque
from fractions import Fraction
from pathlib import Path

import numpy as np

from verification.errors import PropertyFormatError
# the property model lives in verification.spec; its names are re-exported here for existing imports
from verification.spec import (InputRegion, OutputConstraint, VnnlibProperty, _fmt, _in_float_range, _one_line,
                               box_property, robustness_property)

__all__ = [
    "OutputConstraint",
    "InputRegion",
    "VnnlibProperty",
    "read_vnnlib",
    "parse_vnnlib",
    "box_property",
    "robustness_property",
]

# ----------------------------------------------------------------------------------------------- limits
_MAX_FILE_BYTES = 200 * 2**20  # larger files are refused before reading
_MAX_DEPTH = 200_000  # parenthesis nesting (memory: about 0.5 kB per open level)
_MAX_DNF_TERMS = 100_000  # disjuncts of the normal form
_MAX_DNF_ATOMS = 5_000_000  # atoms copied while distributing `and` over `or`
_MAX_DENSE = 20_000_000  # float entries of all boxes and output matrices together
_MAX_DIGITS = 1100  # significant digits of a numeral (exact float64 decimals need up to 767)
_MIN_EXP10, _MAX_EXP10 = -400, 308  # decimal order of magnitude of a nonzero numeral
_MAX_BITS = 16384  # numerator + denominator bits of any exact value

_IGNORED = {"check-sat", "get-model", "set-logic", "set-info", "set-option", "exit"}
_CMP = {"<=", ">=", "<", ">", "="}
# one match per token: whitespace and comments skipped possessively (no backtracking), `\Z` ends the text
_TOKEN_RE = re.compile(
    r'(?:[ \t\r\n\f\v]++|;[^\n]*+)*+([()]|"[^"]*+(?:""[^"]*+)*+"|\|[^|]*+\||[^ \t\r\n\f\v();"|]++|["|]|\Z)'
)
_SIMPLE_RE = re.compile(  # a whole `(assert (OP A B))` without comments: the common case, matched at once
    r'(\()[ \t\r\n\f\v]*+assert[ \t\r\n\f\v]*+(\()[ \t\r\n\f\v]*+(<=|>=|<|>|=)[ \t\r\n\f\v]++'
    r'([^ \t\r\n\f\v();"|]++)[ \t\r\n\f\v]++([^ \t\r\n\f\v();"|]++)[ \t\r\n\f\v]*+\)[ \t\r\n\f\v]*+\)'
)
_CMP_RE = re.compile(  # `(OP A B)` inside a formula
    r'(\()[ \t\r\n\f\v]*+(<=|>=|<|>|=)[ \t\r\n\f\v]++'
    r'([^ \t\r\n\f\v();"|]++)[ \t\r\n\f\v]++([^ \t\r\n\f\v();"|]++)[ \t\r\n\f\v]*+\)'
)
_VAR_RE = re.compile(r"([XY])_([0-9]+)")
_PLAIN_RE = re.compile(r"([+-]?)([0-9]{1,18})(?:\.([0-9]{0,18}))?")
_POW10 = [10**k for k in range(19)]
_DEC_RE = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?")
_HEX_RE = re.compile(r"([+-]?)0[xX]([0-9a-fA-F]*)(?:\.([0-9a-fA-F]*))?(?:[pP]([+-]?[0-9]+))?")
_NONFINITE_RE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)
_ZERO, _ONE = Fraction(0), Fraction(1)


# ----------------------------------------------------------------------------------------------- messages
def _show(tok: str) -> str:
    """A token for an error message: quoted, ASCII-escaped, at most 40 characters."""
    return ascii(tok if len(tok) <= 40 else tok[:40] + "...")


# ----------------------------------------------------------------------------------------------- parsing
class _Lin:
    """Exact linear term ``s * sum(d[k] * var_k) + c`` (keys: ``i`` for X_i, ``-1-j`` for Y_j).  The scale ``s``
    makes negation and scaling O(1); values are consumed once, so operations mutate their arguments."""

    __slots__ = ("s", "d", "c")

    def __init__(self, s: Fraction, d: dict, c: Fraction):
        self.s, self.d, self.c = s, d, c


class _Conj:
    """``and`` of atoms with ``factors`` (disjunctions not yet distributed); ``terms`` = DNF size."""

    __slots__ = ("atoms", "factors", "terms")

    def __init__(self, atoms: deque, factors: list, terms: int):
        self.atoms, self.factors, self.terms = atoms, factors, terms


class _Disj:
    """``or`` of flat conjunctions (deques of atoms); empty = false."""

    __slots__ = ("conjs",)

    def __init__(self, conjs: deque):
        self.conjs = conjs


class _Frame:
    """An open parenthesis.  ``kind``: pending head '0' (command) / 'f' (formula) / 't' (term), or
    'A' assert, 'D' declare, 'S' skipped command, 'F' and/or, 'C' comparison, 'T' term operator, 'R' raw list."""

    __slots__ = ("kind", "op", "pos", "args", "skip")

    def __init__(self, kind: str, pos: int):
        self.kind, self.pos, self.args, self.skip = kind, pos, [], 0
        self.op = "" if kind == "R" else None


_CHILD = {"A": "f", "F": "f", "C": "t", "T": "t", "D": "R", "R": "R"}


def _concat(parts: list) -> deque:
    """Concatenate deques in order, extending the largest one (small-to-large: linear overall)."""
    if not parts:
        return deque()
    k = max(range(len(parts)), key=lambda i: len(parts[i]))
    base = parts[k]
    for p in reversed(parts[:k]):
        base.extendleft(reversed(p))
    for p in parts[k + 1:]:
        base.extend(p)
    return base


def _tighten(b: list, atom: tuple) -> None:
    """Apply an input atom ``(0, i, bound, is_upper, strict, pos)`` to ``b = [lo, ls, lline, hi, hs, hline]``."""
    _, _, v, up, st, ln = atom
    j = 3 if up else 0
    cur = b[j]
    if cur is None or (v < cur if up else v > cur):
        b[j], b[j + 1], b[j + 2] = v, st, ln
    elif v == cur and st and not b[j + 1]:
        b[j + 1], b[j + 2] = True, ln


def _box_key(ov: dict, box: dict) -> tuple:
    """Canonical key of a disjunct's box: its bounds that differ from the common box, sorted."""
    out = []
    for i, b in ov.items():
        base = box.get(i)
        if base is None or (b[0], b[1], b[3], b[4]) != (base[0], base[1], base[3], base[4]):
            lo, hi = b[0], b[3]  # bounded here; integer pairs hash much faster than Fractions
            out.append((i, lo.numerator, lo.denominator, b[1], hi.numerator, hi.denominator, b[4]))
    return tuple(sorted(out))


def _empty_reason(i: int, b: list) -> tuple[int, str] | None:
    """``(position, message)`` if the bounds ``b`` of X_i leave no value, else ``None``."""
    lo, ls, p1, hi, hs, p2 = b
    if lo is None or hi is None or lo < hi or (lo == hi and not (ls or hs)):
        return None
    what = f"lower {_fmt(lo)} > upper {_fmt(hi)}" if lo > hi else f"lower = upper = {_fmt(lo)} with a strict bound"
    return max(p1, p2), f"the input constraints are contradictory (X_{i}: {what})"


class _Reader:
    """Streaming VNN-LIB reader: each closing parenthesis reduces its list to a value at once (no syntax
    tree, no recursion); top-level conjunctions are folded into a common box and common output rows."""

    def __init__(self, src: str):
        self.src = src
        self.names: dict[str, int] = {}
        self.key_names: dict[int, tuple[str, int]] = {}
        self.text = ""
        self.box: dict[int, list] = {}  # common input bounds: i -> [lo, ls, lo_pos, hi, hs, hi_pos]
        self.rows: dict[tuple, list] = {}  # common output rows: sparse row -> [rhs, strict, pos]
        self.factors: list[_Disj] = []
        self.terms = 1
        self.n_assert = 0
        self.false_pos: int | None = None  # an assert that is false for every input
        self.first_false: int | None = None  # first constant comparison / literal that is false
        self.budget = _MAX_DNF_ATOMS

    def _mark_false(self, pos: int) -> None:
        if self.first_false is None:
            self.first_false = pos

    def line(self, pos: int) -> int:
        """Line number of a character offset (positions are kept instead of lines: cheaper to track)."""
        nl = "\n" if "\n" in self.text else "\r"  # old Mac line endings
        return self.text.count(nl, 0, pos) + 1

    def err(self, pos: int, msg: str) -> PropertyFormatError:
        return PropertyFormatError(f"{self.src}:{self.line(pos)}: {msg}")

    # ---------------------------------------------------------------- tokens and frames
    def run(self, text: str) -> None:
        self.text = text
        stack: list[_Frame] = []
        token, simple, cmp, at = _TOKEN_RE.match, _SIMPLE_RE.match, _CMP_RE.match, 0
        while True:
            m = token(text, at)
            tok = m.group(1)
            if not tok:
                break
            at = m.end()
            c = tok[0]
            if c == "(":
                if not stack:
                    s = simple(text, m.start(1))
                    if s:
                        self._simple_assert(s)
                        at = s.end()
                        continue
                elif stack[-1].kind in "AF":
                    s = cmp(text, m.start(1))
                    if s:
                        stack[-1].args.append(self._simple_compare(s, 1))
                        at = s.end()
                        continue
                self._open(stack, m.start(1))
            elif c == ")":
                self._close(stack, m.start(1))
            elif c == '"' or c == "|":
                if len(tok) == 1:
                    raise self.err(m.start(1), "unterminated string literal" if c == '"' else "unterminated |quoted symbol|")
                self._leaf(stack, tok[1:-1] if c == "|" else tok, m.start(1))
            else:
                self._leaf(stack, tok, m.start(1))
        if stack:
            raise self.err(stack[-1].pos, "unbalanced '(': missing ')' before end of file")

    def _simple_compare(self, m: re.Match, g: int):
        """Fast path for ``(OP A B)`` with plain symbols A, B (groups g..g+3): the general path's reductions."""
        f = _Frame("C", m.start(g))
        f.op = m.group(g + 1)
        f.args = [self._term_leaf(m.group(g + 2), m.start(g + 2)), self._term_leaf(m.group(g + 3), m.start(g + 3))]
        return self._compare(f)

    def _simple_assert(self, m: re.Match) -> None:
        """Fast path for a whole ``(assert (OP A B))``."""
        a = _Frame("A", m.start(1))
        a.op = "assert"
        a.args = [self._simple_compare(m, 2)]
        self._assert(a)

    def _open(self, stack: list, pos: int) -> None:
        if not stack:
            stack.append(_Frame("0", pos))
            return
        p = stack[-1]
        if p.kind == "S":
            p.skip += 1
        elif p.op is None:
            raise self.err(p.pos, "expected an operator after '('")
        elif len(stack) >= _MAX_DEPTH:
            raise self.err(pos, f"nesting deeper than {_MAX_DEPTH} levels")
        else:
            stack.append(_Frame(_CHILD[p.kind], pos))

    def _close(self, stack: list, pos: int) -> None:
        if not stack:
            raise self.err(pos, "unbalanced ')'")
        f = stack[-1]
        if f.skip:
            f.skip -= 1
            return
        stack.pop()
        if f.op is None:
            raise self.err(f.pos, "expected an operator after '('")
        k = f.kind
        if k == "A":
            self._assert(f)
        elif k == "D":
            self._declare(f)
        elif k != "S":
            v = self._term(f) if k == "T" else self._compare(f) if k == "C" else tuple(f.args) if k == "R" else (
                self._and(f) if f.op == "and" else self._or(f))
            stack[-1].args.append(v)

    def _leaf(self, stack: list, tok: str, pos: int) -> None:
        if not stack:
            raise self.err(pos, f"unexpected token {_show(tok)} outside parentheses")
        f = stack[-1]
        k = f.kind
        if f.op is None:
            self._head(f, tok)
        elif k == "C" or k == "T":
            f.args.append(self._term_leaf(tok, pos))
        elif k == "A" or k == "F":
            f.args.append(self._formula_leaf(tok, pos))
        elif k != "S":
            f.args.append(tok)

    def _head(self, f: _Frame, tok: str) -> None:
        k = f.kind
        if k == "0":
            if tok in ("declare-const", "declare-fun"):
                f.kind = "D"
            elif tok == "assert":
                f.kind = "A"
            elif tok in _IGNORED:
                f.kind = "S"
            else:
                raise self.err(f.pos, f"unsupported command {_show(tok)}")
        elif k == "f":
            if tok == "and" or tok == "or":
                f.kind = "F"
            elif tok in _CMP:
                f.kind = "C"
            elif tok == "not":
                raise self.err(f.pos, "'not' is not in the supported VNN-LIB subset (rewrite the comparison)")
            else:
                raise self.err(f.pos, f"unsupported formula operator {_show(tok)}")
        elif tok in ("+", "-", "*", "/"):
            f.kind = "T"
        else:
            raise self.err(f.pos, f"unsupported term operator {_show(tok)}")
        f.op = tok

    # ---------------------------------------------------------------- numbers and terms
    def _check(self, q: Fraction, pos: int, what: str = "folded constant") -> Fraction:
        """``q`` if it is small enough to compute with and within the float64 range, else an error."""
        if q.numerator.bit_length() + q.denominator.bit_length() > _MAX_BITS:
            raise self.err(pos, f"{what} needs more than {_MAX_BITS} bits as an exact fraction")
        if not _in_float_range(q):
            raise self.err(pos, f"{what} is outside the float64 range (|v| > 1.7976931348623157e308, the largest float64)")
        return q

    def _bits(self, q: Fraction, pos: int) -> Fraction:
        if q.numerator.bit_length() + q.denominator.bit_length() > _MAX_BITS:
            raise self.err(pos, f"exact coefficient needs more than {_MAX_BITS} bits")
        return q

    def _numeral(self, tok: str, pos: int) -> Fraction | None:
        """Exact value of a decimal / scientific / hex-float numeral, ``None`` if ``tok`` is not one."""
        m = _PLAIN_RE.fullmatch(tok)
        if m:  # fast path: at most 18 + 18 digits, no exponent
            fp = m.group(3) or ""
            q = Fraction(int(m.group(2) + fp), _POW10[len(fp)])
            return -q if m.group(1) == "-" else q
        m = _DEC_RE.fullmatch(tok)
        if m and (m.group(2) or m.group(3)):
            sign, ip, fp, ex, base, per = m.group(1), m.group(2), m.group(3) or "", m.group(4), 10, 1
        else:
            m = _HEX_RE.fullmatch(tok)
            if not (m and (m.group(2) or m.group(3))):
                return None
            sign, ip, fp, ex, base, per = m.group(1), m.group(2), m.group(3) or "", m.group(4), 2, 4
        digits = (ip + fp).lstrip("0")
        if not digits:
            return _ZERO
        ex_digits = (ex or "0").lstrip("+-").lstrip("0") or "0"
        if len(ex_digits) > 7:
            raise self.err(pos, f"number {_show(tok)} has an absurd exponent")
        sig = digits.rstrip("0")
        e = int(ex_digits) * (-1 if ex and ex[0] == "-" else 1) - per * len(fp) + per * (len(digits) - len(sig))
        mant = int(sig, 16 if base == 2 else 10) if len(sig) <= _MAX_DIGITS else None
        if mant is None:
            raise self.err(pos, f"number {_show(tok)} has more than {_MAX_DIGITS} significant digits")
        order = (len(sig) - 1 + e) if base == 10 else (mant.bit_length() - 1 + e) * 0.30103
        if not _MIN_EXP10 <= order <= _MAX_EXP10 + 1:
            raise self.err(pos, f"number {_show(tok)} is outside the float64 range"
                           if order > 0 else f"number {_show(tok)} is too small (below 1e{_MIN_EXP10})")
        q = Fraction(mant * base**e) if e >= 0 else Fraction(mant, base**-e)
        q = -q if sign == "-" else q
        # below 1e307 the value is in range and (by the caps above) far below _MAX_BITS
        return q if order < _MAX_EXP10 - 1 else self._check(q, pos, f"number {_show(tok)}")

    def _term_leaf(self, tok: str, pos: int) -> _Lin:
        key = self.names.get(tok)
        if key is not None:
            return _Lin(_ONE, {key: _ONE}, _ZERO)
        q = self._numeral(tok, pos)
        if q is not None:
            return _Lin(_ONE, {}, q)
        if _VAR_RE.fullmatch(tok):
            raise self.err(pos, f"variable {tok} is used but not declared")
        if _NONFINITE_RE.fullmatch(tok):
            raise self.err(pos, f"non-finite number {_show(tok)}: NaN and infinity are not allowed")
        raise self.err(pos, f"unknown symbol {_show(tok)} (expected a number or a declared X_i/Y_j)")

    def _scale(self, t: _Lin, k: Fraction, pos: int) -> _Lin:
        if not k:
            return _Lin(_ONE, {}, _ZERO)
        if t.d:
            t.s = self._bits(t.s * k, pos)
        if t.c:
            t.c = self._check(t.c * k, pos)
        return t

    def _add(self, a: _Lin, b: _Lin, pos: int) -> _Lin:
        if len(a.d) < len(b.d):
            a, b = b, a
        if b.d:
            r = b.s / a.s
            d = a.d
            for k, v in b.d.items():
                w = v if r == 1 else self._bits(v * r, pos)
                old = d.get(k)
                d[k] = w if old is None else self._bits(old + w, pos)
        if b.c:
            a.c = self._check(a.c + b.c, pos)
        return a

    def _term(self, f: _Frame) -> _Lin:
        op, args, pos = f.op, f.args, f.pos
        if not args:
            raise self.err(pos, f"'{op}' needs at least one argument")
        if op == "+" or (op == "-" and len(args) > 1):
            acc = args[0]
            for a in args[1:]:
                acc = self._add(acc, a if op == "+" else self._scale(a, -_ONE, pos), pos)
            return acc
        if op == "-":
            return self._scale(args[0], -_ONE, pos)
        lin, k = None, _ONE
        for a in args if op == "*" else args[1:]:
            if a.d:
                if op == "/":
                    raise self.err(pos, "division by a variable is not supported")
                if lin is not None:
                    raise self.err(pos, "non-linear product of two variables is not supported")
                lin = a
            else:
                k = self._check(k * a.c, pos)
        if op == "*":
            return _Lin(_ONE, {}, k) if lin is None else self._scale(lin, k, pos)
        if len(args) < 2:
            raise self.err(pos, "'/' needs at least two arguments")
        if not k:
            raise self.err(pos, "division by zero")
        return self._scale(args[0], 1 / k, pos)

    # ---------------------------------------------------------------- formulas
    def _formula_leaf(self, tok: str, pos: int):
        if tok == "true":
            return _Conj(deque(), [], 1)
        if tok == "false":
            self._mark_false(pos)
            return _Disj(deque())
        raise self.err(pos, f"expected a formula, got {_show(tok)}")

    @staticmethod
    def _normal(t: _Lin) -> tuple[dict, Fraction]:
        s = t.s
        if s is _ONE or s == 1:
            return {k: v for k, v in t.d.items() if v}, t.c
        return {k: v * s for k, v in t.d.items() if v}, t.c

    def _compare(self, f: _Frame):
        op, pos = f.op, f.pos
        if len(f.args) < 2:
            raise self.err(pos, f"'{op}' needs at least two arguments")
        forms = [self._normal(t) for t in f.args]
        strict = op == "<" or op == ">"
        atoms: list = []
        ok = True
        for (d1, c1), (d2, c2) in zip(forms, forms[1:]):  # d1 + c1 <op> d2 + c2  <=>  d1 - d2 <op> c2 - c1
            diff = dict(d1)
            for k, v in d2.items():
                w = diff.get(k)
                diff[k] = -v if w is None else w - v
            rhs = c2 if not c1 else -c1 if not c2 else self._check(c2 - c1, pos)
            if op != ">=" and op != ">":
                ok &= self._atom(diff, rhs, strict, pos, atoms)
            if op != "<=" and op != "<":
                ok &= self._atom({k: -v for k, v in diff.items()}, -rhs, strict, pos, atoms)
        if not ok:
            self._mark_false(pos)
            return _Disj(deque())
        return _Conj(deque(atoms), [], 1)

    def _atom(self, coefs: dict, rhs: Fraction, strict: bool, pos: int, out: list) -> bool:
        """Append ``sum coefs <= rhs`` (``<`` if strict) as an input / output atom; a variable-free atom is not
        appended and its truth value returned."""
        if not all(coefs.values()):
            coefs = {k: v for k, v in coefs.items() if v}
        if not coefs:
            return 0 < rhs if strict else 0 <= rhs
        nx = sum(1 for k in coefs if k >= 0)
        if nx == 0:
            row = tuple(sorted((-1 - k, v if abs(v) == 1 else self._check(v, pos, "coefficient"))
                               for k, v in coefs.items()))
            out.append((1, row, rhs, strict, pos))
        elif nx == len(coefs):
            if nx > 1:
                raise self.err(pos, "input constraints must bound a single X_i (general input polytopes are not supported)")
            ((i, a),) = coefs.items()
            bound = rhs if a is _ONE or a == 1 else -rhs if a == -1 else self._check(rhs / a, pos, f"bound of X_{i}")
            out.append((0, i, bound, a > 0, strict, pos))
        else:
            raise self.err(pos, "constraints mixing inputs X and outputs Y are not supported")
        return True

    def _and(self, f: _Frame):
        parts, factors, terms, false = [], [], 1, False
        for v in f.args:
            if type(v) is _Conj:
                parts.append(v.atoms)
                factors.extend(v.factors)
                terms *= v.terms
            elif len(v.conjs) == 1:
                parts.append(v.conjs[0])
            elif not v.conjs:
                false = True
            else:
                factors.append(v)
                terms *= len(v.conjs)
            if terms > _MAX_DNF_TERMS:
                raise self.err(f.pos, f"formula too large: more than {_MAX_DNF_TERMS} DNF terms")
        return _Disj(deque()) if false else _Conj(_concat(parts), factors, terms)

    def _or(self, f: _Frame) -> _Disj:
        parts, total = [], 0
        for v in f.args:
            p = self._expand(v, f.pos) if type(v) is _Conj else v.conjs
            total += len(p)
            if total > _MAX_DNF_TERMS:
                raise self.err(f.pos, f"formula too large: more than {_MAX_DNF_TERMS} DNF terms")
            parts.append(p)
        if total == 0:
            self._mark_false(f.pos)
        return _Disj(_concat(parts))

    def _spend(self, factors: list, base: int, terms: int, pos: int) -> None:
        """Charge the atoms that distributing ``factors`` (``terms`` combinations) will touch to the budget."""
        work = base * terms + sum(sum(map(len, g.conjs)) * (terms // len(g.conjs)) for g in factors)
        self.budget -= work
        if self.budget < 0:
            raise self.err(pos, f"formula too large: its disjunctive normal form has more than {_MAX_DNF_ATOMS} atoms")

    def _expand(self, v: _Conj, pos: int) -> deque:
        """Distribute a conjunction over its factors: a deque of flat conjunctions."""
        if not v.factors:
            return deque([v.atoms])
        self._spend(v.factors, len(v.atoms), v.terms, pos)
        res = [v.atoms]
        for g in v.factors:
            res = [deque(itertools.chain(p, q)) for p in res for q in g.conjs]
        return deque(res)

    # ---------------------------------------------------------------- commands
    def _assert(self, f: _Frame) -> None:
        if len(f.args) != 1:
            raise self.err(f.pos, "assert takes exactly one formula")
        self.n_assert += 1
        v = f.args[0]
        if type(v) is _Conj:
            atoms, factors = v.atoms, v.factors
        elif len(v.conjs) > 1:
            atoms, factors = (), [v]
        elif v.conjs:
            atoms, factors = v.conjs[0], []
        else:
            self.false_pos = f.pos if self.false_pos is None else self.false_pos
            return
        for a in atoms:
            self._common(a)
        for g in factors:
            self.terms *= len(g.conjs)
            if self.terms > _MAX_DNF_TERMS:
                raise self.err(f.pos, f"formula too large: more than {_MAX_DNF_TERMS} DNF terms")
            self.factors.append(g)

    def _common(self, a: tuple) -> None:
        """Fold an atom that holds in every disjunct into the common box / rows."""
        if a[0] == 0:
            b = self.box.get(a[1])
            if b is None:
                b = self.box[a[1]] = [None, False, 0, None, False, 0]
            _tighten(b, a)
            return
        _, key, rhs, st, ln = a
        cur = self.rows.get(key)
        if cur is None:
            self.rows[key] = [rhs, st, ln]
        elif rhs < cur[0] or (rhs == cur[0] and st and not cur[1]):
            cur[0], cur[1], cur[2] = rhs, st, ln

    def _declare(self, f: _Frame) -> None:
        cmd, a = f.op, f.args
        if cmd == "declare-const":
            ok = len(a) == 2 and isinstance(a[0], str) and isinstance(a[1], str)
        else:
            ok = len(a) == 3 and isinstance(a[0], str) and a[1] == () and isinstance(a[2], str)
        if not ok:
            raise self.err(f.pos, f"malformed {cmd}: expected ({cmd} NAME{' ()' if cmd == 'declare-fun' else ''} Real)")
        name, sort = a[0], a[-1]
        if sort != "Real":
            raise self.err(f.pos, f"variable {_show(name)} has sort {_show(sort)}; only Real is supported")
        m = _VAR_RE.fullmatch(name)
        if not m:
            raise self.err(f.pos, f"variable name {_show(name)} is not of the form X_i or Y_j")
        if name in self.names:
            raise self.err(f.pos, f"variable {name} is declared twice")
        if len(m.group(2).lstrip("0")) > 9:
            raise self.err(f.pos, f"variable {_show(name)}: index too large")
        idx = int(m.group(2))
        key = idx if m.group(1) == "X" else -1 - idx
        if key in self.key_names:
            other, opos = self.key_names[key]
            raise self.err(f.pos, f"{name} and {other} (line {self.line(opos)}) both name {'input' if key >= 0 else 'output'} {idx}")
        self.names[name] = key
        self.key_names[key] = (name, f.pos)

    # ---------------------------------------------------------------- normal form
    def _dims(self) -> tuple[int, int]:
        xs = sorted(k for k in self.key_names if k >= 0)
        ys = sorted(-1 - k for k in self.key_names if k < 0)
        for idx, kind, name in ((xs, "X", "input"), (ys, "Y", "output")):
            if not idx:
                raise self.err(0, f"no {name} variables {kind}_i declared")
            gap = next((i for i, v in enumerate(idx) if i != v), None)
            if gap is not None:
                raise self.err(0, f"{name} variables must be {kind}_0..{kind}_{idx[-1]} without gaps; missing {kind}_{gap}")
        return len(xs), len(ys)

    def build(self) -> VnnlibProperty:
        n_in, n_out = self._dims()
        if self.n_assert == 0:
            raise self.err(0, "no assert: the file states no property")
        if self.false_pos is not None:
            hint = "" if self.first_false is None else f" (first false comparison at line {self.line(self.first_false)})"
            raise self.err(self.false_pos, f"the constraints are contradictory: this assert is false for every input{hint}")
        for i, b in self.box.items():
            why = _empty_reason(i, b)
            if why:
                raise self.err(*why)
        return _Builder(self, n_in, n_out).run()


class _Builder:
    """Disjuncts (common part x one choice per factor) -> regions grouped by exact input box."""

    def __init__(self, r: _Reader, n_in: int, n_out: int):
        self.r, self.n_in, self.n_out = r, n_in, n_out
        self.dense = 0
        self.unbounded = [i for i in range(n_in) if (b := r.box.get(i)) is None or b[0] is None or b[3] is None]
        self.common = [(1, key, rhs, st, ln) for key, (rhs, st, ln) in r.rows.items()]
        self.common_dense = self._dense_rows(self.common)

    def _charge(self, n: int) -> None:
        self.dense += n
        if self.dense > _MAX_DENSE:
            raise self.r.err(0, f"property too large: its normal form has more than {_MAX_DENSE} matrix entries")

    def _dense_rows(self, rows: list) -> tuple:
        """Float rows, bounds, strictness, exact rows and exact bounds of sparse output atoms."""
        self._charge(len(rows) * self.n_out)
        A = np.zeros((len(rows), self.n_out))
        ex = []
        for k, (_, row, _, _, _) in enumerate(rows):
            full = [_ZERO] * self.n_out
            for j, a in row:
                A[k, j] = float(a)
                full[j] = a
            ex.append(tuple(full))
        return A, [float(a[2]) for a in rows], [a[3] for a in rows], tuple(ex), tuple(a[2] for a in rows)

    def _constraint(self, own: list) -> OutputConstraint:
        """The output constraint of one disjunct: the common rows, then its own rows."""
        A, b, st, ex, bex = self.common_dense
        self._charge(A.size)
        if own:
            A2, b2, st2, ex2, bex2 = self._dense_rows(own)
            A, b, st, ex, bex = np.vstack([A, A2]), b + b2, st + st2, ex + ex2, bex + bex2
        return OutputConstraint(A.copy(), np.array(b, dtype=np.float64).reshape(-1), np.array(st, dtype=bool), ex, bex)

    def _disjuncts(self):
        """Each disjunct as a tuple of flat conjunctions (one per factor), lazily."""
        r = self.r
        if not r.factors:
            return [()]
        r._spend(r.factors, 0, r.terms, 0)
        return itertools.product(*(g.conjs for g in r.factors))

    def _split(self, combo: tuple) -> tuple[dict, list]:
        """A disjunct's own input bounds (``i -> bounds``, starting from the common box) and output atoms."""
        box, ov, own = self.r.box, {}, []
        for a in itertools.chain.from_iterable(combo):
            if a[0] == 0:
                b = ov.get(a[1])
                if b is None:
                    base = box.get(a[1])
                    b = ov[a[1]] = list(base) if base else [None, False, 0, None, False, 0]
                _tighten(b, a)
            else:
                own.append(a)
        return ov, own

    def _require_bounded(self, ov: dict) -> None:
        for u in self.unbounded:
            b = ov.get(u) or self.r.box.get(u)
            if b is None or b[0] is None or b[3] is None:
                side = "lower" if b is None or b[0] is None else "upper"
                raise self.r.err(0, f"input X_{u} has no finite {side} bound in some disjunct; bounded input boxes are required")

    def run(self) -> VnnlibProperty:
        """Group the non-empty disjuncts by exact box; refuse the property if every disjunct is empty."""
        groups: dict[tuple, tuple[dict, list]] = {}
        first_empty = None
        for combo in self._disjuncts():
            ov, own = self._split(combo)
            why = next((w for i, b in ov.items() if (w := _empty_reason(i, b))), None)
            if why:
                first_empty = first_empty or why
                continue
            self._require_bounded(ov)
            key = _box_key(ov, self.r.box)
            group = groups.get(key)
            if group is None:
                group = groups[key] = (ov, [])
            group[1].append(self._constraint(own))
        if not groups:
            raise self.r.err(*first_empty)
        regions = tuple(self._region(ov, ocs) for ov, ocs in groups.values())
        return VnnlibProperty(self.n_in, self.n_out, regions, self.r.src)

    def _region(self, ov: dict, ocs: list) -> InputRegion:
        self._charge(2 * self.n_in)
        lo, ls, hi, hs = [], [], [], []
        for i in range(self.n_in):
            b = ov.get(i) or self.r.box[i]
            lo.append(b[0])
            ls.append(b[1])
            hi.append(b[3])
            hs.append(b[4])
        return InputRegion.from_exact(lo, hi, tuple(ocs), np.array(ls, bool), np.array(hs, bool))


def _decode(data: bytes, src: str) -> str:
    """UTF-8 text of a VNN-LIB file (a BOM is dropped), whatever the locale; one-line errors otherwise."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise PropertyFormatError(f"{src}:1: UTF-16 text is not supported; save the VNN-LIB file as UTF-8")
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise PropertyFormatError(f"{src}:{line}: not a text file (NUL byte at offset {nul})")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise PropertyFormatError(f"{src}:{line}: invalid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                                  "VNN-LIB files must be UTF-8 text") from None
    return text[1:] if text.startswith("\ufeff") else text


def _source_text(text: str | bytes, source: str) -> tuple[str, str]:
    """VNN-LIB text as ``str`` (bytes decoded as UTF-8, a BOM dropped, at most 200 MiB) and the source's name
    for messages."""
    src = _one_line(str(source))
    if isinstance(text, (bytes, bytearray)):
        text = _decode(bytes(text), src)
    if not isinstance(text, str):
        raise PropertyFormatError(f"{src}: VNN-LIB text must be str or bytes, got {type(text).__name__}")
    if len(text) > _MAX_FILE_BYTES:
        raise PropertyFormatError(f"{src}: VNN-LIB text larger than {_MAX_FILE_BYTES >> 20} MiB")
    return (text[1:] if text.startswith("\ufeff") else text), src


def parse_vnnlib(text: str | bytes, source: str = "<string>") -> VnnlibProperty:
    """Parse VNN-LIB text (see the module docstring for the subset and semantics) into a :class:`VnnlibProperty`."""
    text, src = _source_text(text, source)
    reader = _Reader(src)
    reader.run(text)
    return reader.build()


def read_vnnlib(path: str | Path) -> VnnlibProperty:
    """Read a VNN-LIB file (UTF-8, at most 200 MiB) into a :class:`VnnlibProperty` (errors name file and line)."""
    text, src = _read_source(path)
    return parse_vnnlib(text, src)


def _read_source(path: str | Path) -> tuple[str, str]:
    """The text of a VNN-LIB file (UTF-8, at most 200 MiB) and its name for messages; one-line
    :class:`PropertyFormatError` when it cannot be read."""
    path = Path(path)
    src = _one_line(str(path))
    try:
        with open(path, "rb") as fh:
            size = _file_size(fh)
            if size > _MAX_FILE_BYTES:
                raise PropertyFormatError(f"{src}: VNN-LIB file of {size >> 20} MiB is larger than the "
                                          f"{_MAX_FILE_BYTES >> 20} MiB limit")
            data = fh.read(_MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise PropertyFormatError(f"{src}: no such VNN-LIB file") from None
    except IsADirectoryError:
        raise PropertyFormatError(f"{src}: is a directory, not a VNN-LIB file") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL character in the path
        raise PropertyFormatError(f"{src}: cannot read VNN-LIB file ({_one_line(str(getattr(exc, 'strerror', None) or exc))})") from None
    if len(data) > _MAX_FILE_BYTES:
        raise PropertyFormatError(f"{src}: VNN-LIB file larger than the {_MAX_FILE_BYTES >> 20} MiB limit")
    return _decode(data, src), src


def _file_size(fh) -> int:
    return os.fstat(fh.fileno()).st_size
