"""Complete verification with Z3 as the exact back end.

``verify(net, prop, timeout=...)`` decides a VNN-LIB property (falsify -> bound -> branch and bound ->
exact LP / Z3 leaves); ``verify_region(net, x0, eps, ...)`` checks that the predicted class is constant on
a ball (complete), or runs the DLV-style layer-by-layer discretised search (``method="dlv"``).
``encode_network`` / ``z3_decide`` expose the exact Z3 encoding of the IR.
"""

from __future__ import annotations

from verification.smt.encode import encode_network, z3_decide
from verification._blas import limit_blas_on_large_nets
from verification.smt import region as _region
from verification.smt import verifier as _verifier
from verification.smt.result import VerifyResult

# one BLAS thread by default on large nets (robust on a shared machine; see verification/_blas.py)
verify = limit_blas_on_large_nets(_verifier.verify)
verify_region = limit_blas_on_large_nets(_region.verify_region)

__all__ = ["verify", "verify_region", "VerifyResult", "encode_network", "z3_decide"]
