"""Result type of :func:`verification.verify` and :func:`verification.verify_region`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

__all__ = ["VerifyResult", "STATUSES"]

STATUSES = ("holds", "violated", "unknown")
_VNNCOMP = {"holds": "unsat", "violated": "sat"}


@dataclass(frozen=True, eq=False)
class VerifyResult:
    """Outcome of a verification query.

    ``status``: ``"holds"`` (proved: no input in the region is unsafe), ``"violated"`` (``counterexample``
    is an input inside the region whose float64 output ``output`` meets the unsafe constraint; it has been
    re-evaluated on the network), or ``"unknown"`` (timeout / resource limit / unresolved; ``reason`` says
    which).  ``unknown`` is never a guess in either direction.
    """

    status: str
    counterexample: np.ndarray | None = None
    output: np.ndarray | None = None
    seconds: float = 0.0
    method: str = ""
    reason: str = ""
    details: dict = field(default_factory=dict)

    @property
    def holds(self) -> bool:
        return self.status == "holds"

    @property
    def violated(self) -> bool:
        return self.status == "violated"

    def vnncomp_text(self) -> str:
        """VNN-COMP result file: ``unsat``; ``sat`` + ``((X_0 v) ... (Y_0 w) ...)``; or ``timeout``/``unknown``."""
        if self.status == "holds":
            return "unsat\n"
        if self.status == "violated":
            lines = [f"(X_{i} {float(v)!r})" for i, v in enumerate(self.counterexample)]
            lines += [f"(Y_{j} {float(v)!r})" for j, v in enumerate(self.output)]
            return "sat\n(" + "\n".join(lines) + ")\n"
        return ("timeout" if self.reason == "timeout" else "unknown") + "\n"

    def to_dict(self) -> dict:
        return {
            "status": self.status,
            "vnncomp": self.vnncomp_text().split("\n", 1)[0],
            "counterexample": None if self.counterexample is None else [float(v) for v in self.counterexample],
            "output": None if self.output is None else [float(v) for v in self.output],
            "seconds": self.seconds,
            "method": self.method,
            "reason": self.reason,
            "details": self.details,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def __str__(self) -> str:
        s = f"{self.status} ({self.method}, {self.seconds:.3g} s"
        s += f", {self.reason})" if self.reason else ")"
        if self.counterexample is not None:
            s += f"\n  counterexample x = {np.array2string(self.counterexample, precision=9)}"
            s += f"\n  output        y = {np.array2string(self.output, precision=9)}"
        return s
