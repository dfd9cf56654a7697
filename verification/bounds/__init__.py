"""Bound propagation on the network IR: output bounds on an input box and local Lipschitz constants.

Public entry points
-------------------
``output_bounds(net, lower, upper, method="ibp"|"crown"|"alpha-crown")`` -> :class:`Bounds` of the output.
``layer_bounds(net, lower, upper, method=...)`` -> per-activation pre-activation bounds of the canonical
network (what an exact encoding needs to fix stable neurons).
``local_lipschitz(net, center, eps, norm="inf", output=None, bab=False, timeout=None)`` ->
:class:`LocalLipschitzResult` (Jacobian bound propagation of Shi et al. 2022, optional branch-and-bound).
"""

from __future__ import annotations

from verification.bounds.interval import Bounds, layer_bounds, output_bounds
from verification.bounds.local import LocalLipschitzResult, local_lipschitz

__all__ = ["Bounds", "output_bounds", "layer_bounds", "local_lipschitz", "LocalLipschitzResult"]
