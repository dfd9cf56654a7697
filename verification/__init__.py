"""Neural-network verification on one network IR: certified Lipschitz bounds, bound propagation, and
complete verification with Z3.

Heavy dependencies (cvxpy, z3, onnx, torch) are imported only when the function that needs them runs.
"""

from __future__ import annotations

import importlib
from typing import Any

from verification.errors import VerificationError
from verification.network import Dense, Network

__version__ = "0.1.0"

# public name -> module that defines it (imported on first access)
_LAZY = {
    "load_network": "verification.io",
    "save_network": "verification.io",
    "lipschitz": "verification.lipschitz",
    "available_methods": "verification.lipschitz",
    "LipschitzResult": "verification.lipschitz",
    "output_bounds": "verification.bounds",
    "layer_bounds": "verification.bounds",
    "local_lipschitz": "verification.bounds",
    "read_vnnlib": "verification.vnnlib",
    "verify": "verification.smt",
    "verify_region": "verification.smt",
}

__all__ = ["Network", "Dense", "VerificationError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'verification' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
