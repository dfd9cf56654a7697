"""Bound propagation on the network IR: output bounds on an input box and local Lipschitz constants.

Public entry points
-------------------
``output_bounds(net, lower, upper, method="ibp"|"crown"|"alpha-crown")`` -> :class:`Bounds` of the output.
``layer_bounds(net, lower, upper, method=...)`` -> per-activation pre-activation bounds of the canonical
network (what an exact encoding needs to fix stable neurons).
``local_lipschitz(net, center, eps, norm="inf", output=None, bab=False, timeout=None)`` ->
:class:`LocalLipschitzResult` (Jacobian bound propagation of Shi et al. 2022, optional branch-and-bound).

Containers (:mod:`verification.bounds.types`): :class:`Bounds` (one pair of bound arrays, optional batch axis),
:class:`LayerBounds` (bounds through a network), :class:`SpecBounds` (lower bounds of specification rows).
"""

from __future__ import annotations

from verification._blas import limit_blas_on_large_nets
from verification.bounds import interval as _interval
from verification.bounds import local as _local
from verification.bounds.local import LocalLipschitzResult
from verification.bounds.types import Bounds, LayerBounds, SpecBounds

# one BLAS thread by default on large nets (robust on a shared machine; see verification/_blas.py)
layer_bounds = limit_blas_on_large_nets(_interval.layer_bounds)
output_bounds = limit_blas_on_large_nets(_interval.output_bounds)
local_lipschitz = limit_blas_on_large_nets(_local.local_lipschitz)

__all__ = ["Bounds", "LayerBounds", "SpecBounds", "output_bounds", "layer_bounds", "local_lipschitz",
           "LocalLipschitzResult"]
