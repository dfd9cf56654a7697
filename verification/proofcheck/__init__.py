"""Independent checking of proofs of ``holds`` answers (docs/proofs.md).

The checker imports numpy, the standard library (``fractions``, ``json``) and the network / property model
only; nothing from the bound propagation, Lipschitz, SDP or SMT code.  It recomputes every bound in
float64 with a proven bound on every rounding error (:mod:`verification.proofcheck._float`).
"""

from verification.proofcheck.bounds import Chain, ChainError, layer_bounds, rows_lower
from verification.proofcheck.checker import FORMAT, VERSION, CheckReport, ProofRejected, check_proof

__all__ = ["check_proof", "CheckReport", "ProofRejected", "Chain", "ChainError", "layer_bounds", "rows_lower",
           "FORMAT", "VERSION"]
