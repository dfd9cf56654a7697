"""Global Lipschitz bounds on the network IR.

``lipschitz(net, method="auto", norm=2, output=None)`` returns a :class:`LipschitzResult`.
``available_methods()`` lists the registered methods (each method module registers its own).

Layout, bottom to top: :mod:`.result`, :mod:`.registration` (the method table), :mod:`.quotients` (proven
lower bounds), :mod:`.sdp` (chain LMI, certificate, solvers); the methods :mod:`.baseline` (naive, sampled,
exact), :mod:`.lipsdp`, :mod:`.eclipse`, and the stand-alone :mod:`.residual_maxmin` SDPs, none importing
another; :mod:`.registry` (the ``lipschitz`` function) on top.
"""

from __future__ import annotations

from verification.lipschitz.registry import available_methods, lipschitz
from verification.lipschitz.result import LipschitzResult

__all__ = ["lipschitz", "available_methods", "LipschitzResult"]
