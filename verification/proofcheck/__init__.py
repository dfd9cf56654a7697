"""Independent checking of proofs of ``holds`` answers and of Lipschitz bounds, and of counterexamples
(docs/proofs.md).  It imports numpy, the standard library and the network / property model only; nothing from
the bound propagation, Lipschitz, SDP or SMT code.  Every rounding error is bounded (``_float``, ``psd``).
"""

from verification.proofcheck.bounds import Chain, ChainError, layer_bounds, rows_lower
from verification.proofcheck.checker import FORMAT, VERSION, CheckReport, ProofRejected, check_proof
from verification.proofcheck.counterexample import check_counterexample
from verification.proofcheck.lipschitz import check_lipschitz_proof

__all__ = ["check_proof", "check_lipschitz_proof", "check_counterexample", "CheckReport", "ProofRejected", "Chain",
           "ChainError", "layer_bounds", "rows_lower", "FORMAT", "VERSION"]
