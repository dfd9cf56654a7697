"""What a stage of the verifier concluded: refuted, a counterexample, or undecided (and why)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Outcome", "REFUTED", "OPEN", "BUDGET_REASONS"]

BUDGET_REASONS = ("timeout", "box limit")


@dataclass(frozen=True, eq=False)
class Outcome:
    """``status``: ``"refuted"`` (no unsafe point in what the stage covered: a proof), ``"counterexample"``
    (``x``: a confirmed counterexample of the region) or ``"undecided"``.  An undecided outcome carries
    ``unresolved`` (leaf problems given up: Z3 unknown, boundary models, no exact encoding; the run ends
    ``unknown`` unless a counterexample turns up) and ``reason`` (``"timeout"`` / ``"box limit"``: the budget
    ran out and the run stops).  Undecided with neither is *open*: the caller keeps searching."""

    status: str
    x: np.ndarray | None = None
    unresolved: int = 0
    reason: str = ""

    @classmethod
    def counterexample(cls, x: np.ndarray) -> "Outcome":
        return cls("counterexample", x=x)

    @classmethod
    def undecided(cls, unresolved: int = 0, reason: str = "") -> "Outcome":
        return cls("undecided", unresolved=unresolved, reason=reason)

    @property
    def refuted(self) -> bool:
        return self.status == "refuted"

    @property
    def found(self) -> bool:
        return self.status == "counterexample"

    @property
    def stops(self) -> bool:
        """The run ends here: a counterexample, or the budget is spent."""
        return self.found or self.reason in BUDGET_REASONS


REFUTED = Outcome("refuted")
OPEN = Outcome("undecided")
