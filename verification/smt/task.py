"""One region to decide, with what every stage shares: the canonical net and its facts, the region's
specification rows, the options, budget, counters and random source, and the candidate screen through
which every counterexample is confirmed (:mod:`verification.smt.confirm`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from verification.bounds.batched import is_two_piece
from verification.network import Network
from verification.smt.confirm import confirm, point_in_region
from verification.smt.options import Budget, Stats, VerifyOptions
from verification.smt.proof import ProofLog
from verification.spec import InputRegion

__all__ = ["TOL", "NetFacts", "Task", "spec_rows"]

# A refuting lower bound must exceed TOL * (1 + scale), scale = magnitude of the terms summed into it: a
# float64 rounding guard relative to the numbers involved (an absolute 1e-9 is no guard at magnitude 1e8).
TOL = 1e-9


def spec_rows(region: InputRegion) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The region's unsafe rows stacked: ``C y + cb <= 0`` (``C = A_k``, ``cb = -b_k``), ``grp``: disjunct k of
    each row."""
    rows, rhs, grp = [], [], []
    for k, oc in enumerate(region.outputs):
        rows.extend(oc.A)
        rhs.extend(oc.b)
        grp.extend([k] * oc.A.shape[0])
    m = len(region.outputs[0].A[0]) if rows else 0
    C = np.array(rows).reshape(len(rows), -1) if rows else np.zeros((0, m))
    return C, -np.array(rhs, dtype=np.float64), np.array(grp, dtype=int)


@dataclass(frozen=True)
class NetFacts:
    """What the stages need to know about the activations of a canonical net."""

    exact: bool  # every activation piecewise linear: exact (LP / Z3) leaves exist
    two_piece: bool  # every activation max(z, a z) with a <= 1: pattern / MILP leaves and alpha-CROWN apply
    slopes: tuple  # negative slope a of each activation (two-piece nets; empty otherwise)

    @classmethod
    def of(cls, net: Network) -> "NetFacts":
        two = is_two_piece(net)
        return cls(all(a.is_piecewise_linear for a in net.activations), two,
                   tuple(float(a.two_piece_slope) for a in net.activations) if two else ())


@dataclass(frozen=True, eq=False)
class Task:
    """A region of the property and the run it belongs to (see the module docstring)."""

    net: Network
    region: InputRegion
    options: VerifyOptions
    budget: Budget
    stats: Stats
    rng: np.random.Generator
    facts: NetFacts
    proof: ProofLog | None = None  # records the split tree when a proof is asked for
    #: the region as written, against which candidates are confirmed (``region`` may be a widened copy:
    #: :func:`verification.smt.verifier._searched`); ``None``: ``region`` itself
    written: InputRegion | None = None
    C: np.ndarray = field(init=False)
    cb: np.ndarray = field(init=False)
    grp: np.ndarray = field(init=False)
    #: bounds shared between stages (e.g. ``"root_pre"``: pre-activation bounds of the whole box, computed once
    #: by :func:`~verification.smt.input_split.root_refuted` and reused by :func:`~verification.smt.relu_bab.relu_bab`)
    cache: dict = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        C, cb, grp = spec_rows(self.region)
        object.__setattr__(self, "C", C)
        object.__setattr__(self, "cb", cb)
        object.__setattr__(self, "grp", grp)

    @property
    def K(self) -> int:
        """Number of disjuncts (unsafe polytopes) of the region."""
        return len(self.region.outputs)

    def screen(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Candidate inputs ``X`` (rows, clipped into the box): float64 unsafe margins of the rows (``<= 0``
        where float64 finds them unsafe, non-strictly) and the first counterexample of the region as written
        (float64 screening, then :func:`~verification.smt.confirm.confirm` in exact terms), or ``None``."""
        region = self.region
        X = np.clip(np.atleast_2d(X), region.lower, region.upper)
        Y = self.net(X)
        m = region.margin(Y)
        hit = np.flatnonzero(region.contains_output(Y))
        self.stats.add("evaluations", X.shape[0])
        if hit.size:
            for i in hit[np.argsort(m[hit], kind="stable")][:4]:
                x = point_in_region(self.written or region, X[i])
                if x is not None and confirm(self.net, self.written or region, x):
                    return m, x.copy()
            # float64 says unsafe, exact arithmetic does not (a boundary point, a strict row): keep searching
            self.stats.add("rejected_candidates", int(hit.size))
        return m, None

    def disjunct_bounds(self, lb: np.ndarray) -> np.ndarray:
        """``(n, K)``: per box, the largest row bound of each disjunct (a disjunct is refuted where ``> 0``)."""
        grp = self.grp
        return np.stack([lb[:, grp == k].max(axis=1) for k in range(self.K)], axis=1)
