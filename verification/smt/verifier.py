"""Complete verification of a property: :func:`verify` validates its inputs and orders the stages.

Stages (per input box of the property):

1. **Cheap falsification** (:mod:`~verification.smt.attack`): the centre, box corners (d <= 10) and a few
   hundred uniform samples.
2. **Bound the whole box** (:func:`~verification.smt.input_split.root_refuted`); a box whose disjuncts are all
   refuted is done, so most ``holds`` instances never pay for step 3.
3. **Falsification**: uniform samples, then projected (sign) gradient descent on the unsafe margin
   ``m(x) = min_k max_r (A_k f(x) - b_k)_r`` (``m <= 0`` iff unsafe), gradients by reverse mode.
4. **Branch and bound**: ``input-split`` (:mod:`~verification.smt.input_split`; default for ``in_dim <= 12``,
   e.g. ACAS Xu) or ``relu-split`` (:mod:`~verification.smt.relu_split`; default otherwise: bounds on the
   whole box, then Z3's own DPLL(T) search on the bounded encoding).
5. **Exact leaves** of input splitting (:mod:`~verification.smt.leaves`): one LP with a float64-checked dual
   bound for fully stable boxes, opt-in MILP / activation-pattern leaves, Z3 on the exact rational
   encoding for the rest.

Stages return :class:`~verification.smt.outcome.Outcome` values.  Outcomes: ``holds`` only from refuted
bounds / infeasible exact leaves; ``violated`` only with a counterexample that lies in the box and meets
the unsafe constraint as written (:mod:`~verification.smt.confirm`); otherwise ``unknown`` (timeout, box
limit, Z3 unknown, or an unresolved boundary leaf).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from verification.errors import InvalidParameterError, ShapeMismatchError
from verification.layers.deviation import output_deviation
from verification.network import Network
from verification.proofcheck import Chain, ChainError, ProofRejected
from verification.proofcheck.checker import region_rows
from verification.smt.attack import falsify
from verification.smt.confirm import confirm_property
from verification.smt.input_split import input_split, root_refuted
from verification.smt.options import METHODS, Budget, Stats, VerifyOptions
from verification.smt.outcome import REFUTED, Outcome
from verification.smt.proof import ProofLog, build_proof, write_proof
from verification.smt.relu_bab import relu_bab
from verification.smt.relu_split import relu_split
from verification.smt.result import VerifyResult
from verification.smt.task import NetFacts, Task
from verification.spec import VnnlibProperty
from verification.vnnlib import read_vnnlib

__all__ = ["verify", "METHODS"]


def _as_property(prop) -> VnnlibProperty:
    if isinstance(prop, VnnlibProperty):
        return prop
    if isinstance(prop, (str, Path)):
        return read_vnnlib(prop)
    raise InvalidParameterError(
        f"The 'prop' parameter of verify must be a VnnlibProperty or a path to a .vnnlib file. Got {type(prop).__name__}."
    )


def _as_timeout(timeout) -> float:
    try:
        value = float(timeout)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"The 'timeout' parameter of verify must be a number >= 0. Got {timeout!r} instead.") from None
    if not value >= 0:
        raise InvalidParameterError(f"The 'timeout' parameter of verify must be a number >= 0. Got {value!r} instead.")
    return value


def verify(
    net: Network,
    prop: VnnlibProperty | str | Path,
    timeout: float = 60.0,
    *,
    method: str = "auto",
    seed: int = 0,
    n_samples: int = 5000,
    pgd_steps: int = 40,
    pgd_starts: int = 32,
    batch: int = 64,
    intermediate: str = "incremental",
    max_boxes: int | None = None,
    leaf_unstable: int = 0,
    pattern_unstable: int = 0,
    alpha_unstable: int = 16,
    proof: str | Path | None = None,
) -> VerifyResult:
    """Decide whether ``net`` satisfies ``prop`` (no input of any box reaches its unsafe output set).

    Parameters
    ----------
    net: the network (any IR network; exact leaves need piecewise-linear activations).
    prop: a property object (:class:`~verification.spec.VnnlibProperty`, e.g. from
        :func:`~verification.spec.box_property`) or a path to a ``.vnnlib`` file.
    timeout: wall-clock budget in seconds (``0`` returns ``unknown`` at once).
    method: ``"auto"`` (input splitting for ``in_dim <= 12``; else ``"bab"`` on ReLU / leaky-ReLU nets and
        ``"relu-split"`` on other piecewise-linear nets), ``"input-split"``, ``"bab"`` (ReLU-splitting branch
        and bound with beta-CROWN bounds and Z3 leaves, :mod:`~verification.smt.relu_bab`), ``"relu-split"``
        (bounds on the whole box, then Z3's own search), or ``"z3-plain"`` (the whole network handed to Z3
        without bounds; a baseline).
    seed, n_samples, pgd_steps, pgd_starts: falsification budget (random samples, projected-gradient steps
        and restarts).
    batch: boxes bounded per vectorised step of input splitting.
    intermediate: intermediate bounds (:func:`verification.bounds.batched.batched_layer_bounds`):
        ``"incremental"`` (default; batched CROWN that reuses the parent box's bounds and back-substitutes
        only neurons left unstable by interval bounds; ReLU / leaky-ReLU nets, others use ``"crown"``),
        ``"crown"`` (batched CROWN of every neuron) or ``"ibp"`` (intervals only).  Activations without a
        linear relaxation (Householder) fall back to intervals.
    max_boxes: optional cap on the number of boxes bounded by input splitting (a deterministic resource
        limit; exceeding it gives ``unknown`` with reason ``"box limit"``).
    leaf_unstable: input splitting stops at boxes with at most this many unstable neurons (ReLU / leaky
        ReLU nets; default 0 = only fully stable boxes) and decides them with one big-M MILP (HiGHS); a MILP
        optimum within 1e-6 of unsafe that is no float64 counterexample sends the box back to splitting.
    pattern_unstable: boxes with 1..k unstable ReLU / leaky-ReLU neurons are decided by enumerating the
        activation patterns (:mod:`verification.smt._pattern`; closed-form Lagrangian bounds, then an LP
        whose dual weights give a float64-checked certificate).  Default 0 (off); undecided boxes are split.
    alpha_unstable: boxes that CROWN leaves unrefuted and that have at most this many unstable neurons get
        alpha-CROWN on the specification rows (:func:`~verification.bounds.batched.alpha_spec_bounds`: lower
        slopes optimised by 10 Adam steps, intermediate bounds fixed, early exit once refuted) before they are
        split.  ReLU / leaky-ReLU nets with CROWN intermediate bounds; ``0`` turns it off.  Default 16.
    proof: optional path; when the answer is ``holds`` a proof is written there (docs/proofs.md: the input-split
        tree, or with ``"bab"`` the ReLU-split trees with beta-CROWN certificates) for the
        independent checker :func:`verification.proofcheck.check_proof` (ReLU / leaky-ReLU nets given as an
        alternating chain of affine layers and activations, output rows with float64 coefficients).
        ``details`` then gives ``proof_nodes``, ``proof_trusted`` (certificates the checker cannot check),
        ``proof_bytes`` and ``proof_seconds``.

    Returns a :class:`VerifyResult` with status ``holds`` / ``violated`` (counterexample re-checked in
    float64) / ``unknown``.
    """
    t0 = time.monotonic()
    prop = _as_property(prop)
    if not isinstance(net, Network):
        raise InvalidParameterError(f"The 'net' parameter of verify must be a Network. Got {type(net).__name__}.")
    timeout = _as_timeout(timeout)
    options = VerifyOptions(method=method, seed=seed, n_samples=n_samples, pgd_steps=pgd_steps,
                            pgd_starts=pgd_starts, batch=batch, intermediate=intermediate, max_boxes=max_boxes,
                            leaf_unstable=leaf_unstable, pattern_unstable=pattern_unstable,
                            alpha_unstable=alpha_unstable)
    if proof is not None and not net.is_canonical:  # the checker takes the network as loaded: no merged layers
        raise InvalidParameterError("no proof can be written: the checker needs the network as an alternating "
                                    "chain affine, activation, ..., affine (no consecutive affine layers)")
    net = net.canonical()
    if prop.in_dim != net.in_dim or prop.out_dim != net.out_dim:
        raise ShapeMismatchError(
            f"the property has {prop.in_dim} inputs and {prop.out_dim} outputs, the network has "
            f"{net.in_dim} inputs and {net.out_dim} outputs"
        )
    facts = NetFacts.of(net)
    logs = _proof_logs(net, prop, proof)
    method = options.method
    if method == "auto":
        # many inputs: ReLU splitting (beta-CROWN branch and bound on ReLU / leaky-ReLU nets, Z3 on other
        # piecewise-linear nets); its leaves go to Z3, which needs piecewise-linear activations
        if net.in_dim <= 12 or not facts.exact:
            method = "input-split"
        else:
            method = "bab" if facts.two_piece else "relu-split"
    # what the loader assumed about the file, carried into the result
    stats = Stats({key: net.metadata[key] for key in ("assumed", "dropped") if net.metadata.get(key)})

    def done(status, x=None, reason=""):
        return VerifyResult(status, x, None if x is None else net(x), time.monotonic() - t0, method, reason,
                            stats.as_dict())

    if timeout == 0:
        return done("unknown", reason="timeout")
    if not prop.regions:
        if proof is not None:
            _write(net, prop, [], proof, stats)
        return done("holds", reason="empty input set")
    budget = Budget(t0 + timeout, options.max_boxes)
    rng = np.random.default_rng(options.seed)
    try:
        tasks = [Task(net, _searched(net, region, stats), options, budget, stats, rng, facts, log, written=region)
                 for region, log in zip(prop.regions, logs)]
    except ArithmeticError as exc:  # a deviation too large for float64: nothing can be proved or confirmed
        return done("unknown", reason=str(exc))
    outcome = _run_stages(tasks, method)
    if outcome.found:
        # re-check from scratch against the whole property as written (exact box, exact rows, strictness)
        if not confirm_property(net, prop, outcome.x):  # pragma: no cover - defensive
            return done("unknown", reason="counterexample failed re-evaluation")
        return done("violated", outcome.x, "counterexample")
    if outcome.reason:
        return done("unknown", reason=outcome.reason)
    if outcome.unresolved:
        if not facts.exact:
            names = sorted({a.describe() for a in net.activations if not a.is_piecewise_linear})
            return done("unknown", reason=f"{outcome.unresolved} region(s) undecided: bounds did not refute them, no "
                        f"counterexample was found, and {', '.join(names)} has no exact encoding")
        return done("unknown", reason=f"{outcome.unresolved} leaf problem(s) unresolved")
    if proof is not None:
        _write(net, prop, logs, proof, stats)
    return done("holds", reason="proved")


def _searched(net: Network, region, stats: Stats):
    """The region the search decides: the region as written, its unsafe rows widened by the deviation of the
    file's function from the float weights (:mod:`verification.layers.deviation`: folded or rescaled layers)
    over its box, so that refuting the widened rows proves the file's function safe."""
    d = output_deviation(net, region.lower, region.upper)
    if d is None:
        return region
    stats.set("output_deviation", max(float(np.max(d)), stats.get("output_deviation", 0.0)))
    return region.widened(d)


def _proof_logs(net: Network, prop: VnnlibProperty, proof) -> list:
    """One empty :class:`ProofLog` per region when a proof is asked for (checked to be writable), else
    ``None`` entries."""
    if proof is None:
        return [None] * len(prop.regions)
    if not isinstance(proof, (str, Path)):
        raise InvalidParameterError(f"The 'proof' parameter of verify must be a path. Got {type(proof).__name__}.")
    try:
        Chain.of(net)
        for region in prop.regions:
            region_rows(region)
    except (ChainError, ProofRejected) as exc:
        raise InvalidParameterError(f"no proof can be written: {exc}") from None
    return [ProofLog() for _ in prop.regions]


def _write(net: Network, prop: VnnlibProperty, logs: list, path, stats: Stats) -> None:
    doc = build_proof(net, prop, logs)
    try:
        size = write_proof(doc, path)
    except OSError as exc:
        raise InvalidParameterError(f"cannot write the proof to {path}: {' '.join(str(exc).split())}") from None
    for key in ("nodes", "trusted", "seconds"):
        stats.set(f"proof_{key}", doc["stats"][key])
    stats.set("proof_bytes", size)


def _run_stages(tasks: list[Task], method: str) -> Outcome:
    """The stages in order over the regions: refuted (every region), the first counterexample or budget
    stop, or undecided with the number of unresolved leaves."""
    opts = tasks[0].options
    if method in ("input-split", "bab"):
        # cheap falsification, then a bound on each whole box (most `holds` end here), then the full
        # falsification (samples + PGD) and branch and bound on the boxes not yet proved
        for task in tasks:
            outcome = falsify(task, min(opts.n_samples, 256), 0, 0)
            if outcome.found:
                return outcome
        tasks = [task for task in tasks if not root_refuted(task)]
    if method != "z3-plain":
        for task in tasks:
            if task.budget.expired():  # the cheap falsification above already ran; on a large net one pass costs seconds
                break
            outcome = falsify(task, opts.n_samples, opts.pgd_steps, opts.pgd_starts)
            if outcome.found:
                return outcome
    unresolved = 0
    for task in tasks:
        if method == "input-split":
            # non piecewise-linear nets: bounds + splitting still prove; leaves are left unresolved
            outcome = input_split(task)
        elif not task.facts.exact:  # bounds and the attack may still settle it; otherwise unknown, never an error
            if method not in ("relu-split", "bab") or not root_refuted(task):
                task.stats.add("undecided_leaves")
                outcome = Outcome.undecided(unresolved=1)
            else:
                outcome = REFUTED
        elif method == "bab" and task.facts.two_piece:
            outcome = relu_bab(task)
        else:
            outcome = relu_split(task, use_bounds=(method != "z3-plain"))
        if outcome.stops:
            return outcome
        unresolved += outcome.unresolved
    return REFUTED if unresolved == 0 else Outcome.undecided(unresolved=unresolved)
