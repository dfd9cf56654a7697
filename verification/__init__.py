"""Neural-network verification on one network IR: certified Lipschitz bounds, bound propagation, and
complete verification with Z3.

Heavy dependencies (cvxpy, z3, onnx, torch) are imported only when the function that needs them runs.
"""

from __future__ import annotations

import importlib
from typing import Any

from verification.errors import VerificationError
from verification.network import Dense, Network

# The function ``lipschitz`` shares its name with the subpackage ``verification.lipschitz``.  Importing the
# subpackage binds the module to this attribute, so bind the function eagerly afterwards (the subpackage
# itself is light: heavy solvers are imported by the methods that use them).
from verification.lipschitz import LipschitzResult, available_methods, lipschitz  # noqa: E402

__version__ = "0.1.0"

# public name -> module that defines it (imported on first access)
_LAZY = {
    "load_network": "verification.io",
    "save_network": "verification.io",
    "output_bounds": "verification.bounds",
    "layer_bounds": "verification.bounds",
    "local_lipschitz": "verification.bounds",
    "read_vnnlib": "verification.vnnlib",
    "verify": "verification.smt",
    "verify_region": "verification.smt",
}

__all__ = ["Network", "Dense", "VerificationError", "lipschitz", "available_methods", "LipschitzResult", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'verification' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
