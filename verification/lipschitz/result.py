"""Result object shared by every Lipschitz method."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any


from verification._json import jsonable

__all__ = ["LipschitzResult"]


@dataclass(frozen=True)
class LipschitzResult:
    """A Lipschitz bound for a network.

    Attributes
    ----------
    value:
        The bound.  If ``certified`` it is a proven upper bound on the Lipschitz constant
        ``sup ||f(x)-f(y)||_q / ||x-y||_p`` (``p = q = norm``; for a scalar output selected with
        ``output``, the absolute value); if not, it is a lower estimate (``sampled``) or uncertified.
    method:
        Registry name of the method (``naive``, ``exact``, ``lipsdp-neuron``, ...).
    norm:
        ``2`` or ``"inf"``.
    certified:
        True only if ``value`` is a proven upper bound (for SDP methods: the matrix inequality was
        re-checked in float64 at the returned multipliers).
    solver:
        Numerical solver used, or ``None``.
    seconds:
        Wall-clock time of the method, excluding model loading.
    output:
        ``None`` for the full output map, else the output selector (index or vector as a list).
    details:
        Method-specific extras (e.g. ``{"kind": "lower_bound"}``, multipliers, eigenvalue margin).
    """

    value: float
    method: str
    norm: int | str
    certified: bool
    solver: str | None = None
    seconds: float = 0.0
    output: Any = None
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["details"] = jsonable(self.details)
        d["output"] = jsonable(self.output)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def __str__(self) -> str:
        tag = "certified upper bound" if self.certified else (
            "lower bound" if self.details.get("kind") == "lower_bound" else "NOT certified"
        )
        out = "" if self.output is None else f", output {self.output}"
        solver = f", solver {self.solver}" if self.solver else ""
        status = self.details.get("solver_status")
        if self.certified and status not in (None, "optimal"):
            # still a proven bound, but the solver stopped before the optimum of its SDP
            solver += f" stopped early ({status}); the SDP optimum may be lower"
        if not self.certified and self.details.get("failure"):
            tag += f": {self.details['failure']}"
        return (
            f"Lipschitz ({self.method}, l{self.norm}{out}): {self.value:.6g}  [{tag}{solver}, {self.seconds:.3g} s]"
        )


def strip_proof_data(res: LipschitzResult) -> LipschitzResult:
    """The result without the private ``_proof`` entry of its details."""
    if "_proof" not in res.details:
        return res
    return replace(res, details={k: v for k, v in res.details.items() if k != "_proof"})
