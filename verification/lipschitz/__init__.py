"""Global Lipschitz bounds on the network IR.

``lipschitz(net, method="auto", norm=2, output=None)`` returns a :class:`LipschitzResult`.
``available_methods()`` lists the registered methods (each module registers its own).
"""

from __future__ import annotations

from verification.lipschitz.registry import available_methods, lipschitz
from verification.lipschitz.result import LipschitzResult

__all__ = ["lipschitz", "available_methods", "LipschitzResult"]
