"""SDP backends for the chain LMI, one file each; the table that names them is :mod:`verification.lipschitz.sdp.solve`.

Every backend has the signature ``solve(sdp, *, progress, label, **options) -> (y, status, info)``: ``y`` the
multipliers (``y[0] = ρ``, never trusted: the caller certifies them), ``status`` ``"optimal"`` or the reason it
stopped, ``info`` extra figures (keys prefixed by the backend).  Failures raise
:class:`~verification.errors.SolverError`.

* :mod:`.cvxpy_lmi`: the LMI as a cvxpy problem (CVXOPT, CLARABEL, SCS, MOSEK);
* :mod:`.lowrank_cvxopt`: CVXOPT's cone solver with a KKT solver for the rank-2 atoms;
* :mod:`.chain_pd`: a primal-dual interior-point method on the block-tridiagonal (chordal) pattern.
"""

import sys
from typing import Any

__all__ = ["report"]


def report(progress: Any, label: str, message: str, **fields) -> None:
    """Tell the caller about the solve: ``progress`` a callable gets ``{"stage": label, "message": message,
    **fields}`` (the CLI draws its bar from it); ``True`` prints ``message`` on stderr; false-like: nothing."""
    if callable(progress):
        progress({"stage": label, "message": message, **fields})
    elif progress:
        print(f"[{label}] {message}", file=sys.stderr, flush=True)
