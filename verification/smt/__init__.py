"""Complete verification with Z3 as the exact back end.

``verify(net, prop, timeout=...)`` decides a VNN-LIB property (falsify -> bound -> branch and bound ->
exact LP / Z3 leaves); ``verify_region(net, x0, eps, ...)`` checks that the predicted class is constant on
a ball (complete), or runs the DLV-style layer-by-layer discretised search (``method="dlv"``).
``encode_network`` / ``z3_decide`` expose the exact Z3 encoding of the IR.
"""

from __future__ import annotations

from verification.smt.encode import encode_network, z3_decide
from verification.smt.region import verify_region
from verification.smt.result import VerifyResult
from verification.smt.verifier import verify

__all__ = ["verify", "verify_region", "VerifyResult", "encode_network", "z3_decide"]
