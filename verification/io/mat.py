"""MATLAB ``.mat`` weight lists (LipSDP / Pauli et al. convention).

Variables: a cell array ``weights`` (or ``W``) of real matrices ``(out, in)`` (a single matrix is a one-layer
network); optional cell array ``biases`` (or ``b``); optional ``activation`` / ``activations``: one name for
every hidden layer or one per hidden layer (``relu``, ``tanh``, ``maxmin``, ``groupsort(4)``, ...).  Without
them the activations come from ``arch``, else ReLU between layers is assumed and recorded in
``metadata["assumed"]``.  Any other variable, and strings, structs or complex numbers where numbers are
expected, are refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from verification.errors import InvalidParameterError, ModelFormatError, ShapeMismatchError
from verification.io._matv5 import Unsupported
from verification.io.common import assumed_activations, chain_from_weights, parse_arch, real_array
from verification.network import Network

__all__ = ["load"]

_WEIGHTS, _BIASES, _ACTS = ("weights", "W"), ("biases", "b"), ("activation", "activations")


def _read(path: Path) -> dict:
    """Variables of the file (see :func:`verification.io._matv5.read_mat`)."""
    from verification.io._matv5 import MatError, read_mat

    try:
        return read_mat(path.read_bytes())
    except MatError as exc:
        raise ModelFormatError(f"could not read MATLAB file {path.name!r} (truncated or corrupt?): {exc}") from None


def _cells(value, what: str) -> list[np.ndarray]:
    """The matrices of a cell array (or the one matrix of a numeric variable)."""
    if isinstance(value, Unsupported):
        raise ModelFormatError(f"{what} is a MATLAB {value}, not a numeric matrix or a cell array of them")
    if not isinstance(value, list):
        return [real_array(value, what)]
    if not value:
        raise ModelFormatError(f"{what} is an empty cell array")
    return [_cell(c, f"{what}{{{k + 1}}}") for k, c in enumerate(value)]


def _cell(value, what: str) -> np.ndarray:
    if isinstance(value, (list, Unsupported)):
        raise ModelFormatError(f"{what} is a {'cell array' if isinstance(value, list) else value}, not a numeric matrix")
    return real_array(value, what)


def _names(value, what: str) -> list[str]:
    """Activation names from a char array or a cell array of strings."""
    cells = value if isinstance(value, list) else [value]
    names: list[str] = []
    for c in cells:
        if not isinstance(c, np.ndarray) or c.dtype.kind != "U":
            raise ModelFormatError(f"{what} must hold activation names (strings)")
        names.extend(str(s).strip() for s in c.ravel())
    if not names:
        raise ModelFormatError(f"{what} is empty")
    return names


def _pick(variables: dict, keys: tuple, fname: str):
    found = [k for k in keys if k in variables]
    if len(found) > 1:
        raise ModelFormatError(f"{fname!r} has both {found[0]!r} and {found[1]!r}; keep one")
    return found[0] if found else None


def load(path: Path, arch: str | None = None) -> Network:
    fname = path.name
    variables = _read(path)
    unknown = sorted(set(variables) - set(_WEIGHTS + _BIASES + _ACTS))
    if unknown:
        raise ModelFormatError(
            f"{fname!r}: unknown variable(s) {unknown[:4]}; expected 'weights' (or 'W'), optional 'biases' (or 'b') "
            "and 'activation(s)'"
        )
    wkey = _pick(variables, _WEIGHTS, fname)
    if wkey is None:
        raise ModelFormatError(f"{fname!r} has no cell array 'weights' or 'W' (found: {sorted(variables)})")
    weights = _cells(variables[wkey], f"{fname}: {wkey!r}")
    bkey = _pick(variables, _BIASES, fname)
    biases = _cells(variables[bkey], f"{fname}: {bkey!r}") if bkey else [None] * len(weights)
    if len(biases) != len(weights):
        raise ModelFormatError(f"{fname!r}: {len(weights)} weights but {len(biases)} biases")
    n_hidden = len(weights) - 1
    akey = _pick(variables, _ACTS, fname)
    if akey is not None and arch is not None:
        raise InvalidParameterError(f"{fname!r} stores its activations in {akey!r}; do not pass --arch / arch")
    if akey is not None:
        names = _names(variables[akey], f"{fname}: {akey!r}")
        if len(names) not in (1, n_hidden):
            raise ShapeMismatchError(f"{fname!r}: {akey!r} lists {len(names)} activations for {n_hidden} hidden layers")
        acts = parse_arch(",".join(names) if len(names) > 1 else names[0], n_hidden)
    else:
        acts = parse_arch(arch, n_hidden)
    net = chain_from_weights(weights, biases, acts, fname)
    if akey is None and arch is None:
        net.metadata["assumed"] = assumed_activations(n_hidden, "the .mat file")
    return net
