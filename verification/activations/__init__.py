"""Activations of the network IR (see :mod:`verification.activations.base` for the protocol and
:mod:`verification.activations.names` for the name table).

``two_piece_relaxation`` and ``two_piece_derivative_bounds`` are public because methods bound MaxMin through
the ReLU of its pair differences (``pair_form``)."""

from __future__ import annotations

from verification.activations._relax import two_piece_derivative_bounds, two_piece_relaxation
from verification.activations.base import Activation
from verification.activations.elementwise import Identity, LeakyReLU, ReLU, Sigmoid, Tanh
from verification.activations.grouped import GroupSort, Householder, MaxMin
from verification.activations.names import from_spec, parse_activation
from verification.activations.silu import SiLU

__all__ = [
    "Activation",
    "Identity",
    "ReLU",
    "LeakyReLU",
    "Tanh",
    "Sigmoid",
    "SiLU",
    "GroupSort",
    "MaxMin",
    "Householder",
    "from_spec",
    "parse_activation",
    "two_piece_relaxation",
    "two_piece_derivative_bounds",
]
