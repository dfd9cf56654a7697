"""The public ``lipschitz`` function: method choice (``auto`` with fallbacks), options, and the self-check.

It imports every method module (importing one registers its methods in
:mod:`verification.lipschitz.registration`) on first use, so that ``import verification`` does not load
numba, scipy.linalg or cvxpy (``verification verify`` never needs them), and checks each certified value
against attained difference quotients (:mod:`verification.lipschitz.quotients`).
"""

from __future__ import annotations

import inspect
import time
from dataclasses import replace

import numpy as np

from verification.layers.deviation import has_deviation, lipschitz_allowance
from verification._blas import solver_blas_threads
from verification.errors import (InternalCheckError, InvalidParameterError, PreconditionError, SolverError,
                                 UnsupportedLayerError)
from verification.lipschitz.quotients import attained_quotients
from verification.lipschitz.registration import MethodSpec, registered_methods
from verification.lipschitz.result import LipschitzResult, strip_proof_data
from verification.network import Network, output_vector

__all__ = ["lipschitz", "available_methods", "auto_candidates", "normalize_norm", "LipschitzInterrupted",
           "FALLBACKS"]

# auto under a time limit: when the tight method does not fit, these certified methods (in this order)
# still answer; naive always does, at no cost
FALLBACKS = ("eclipse-fast", "naive")


class LipschitzInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`lipschitz`: ``partial`` is the best certified (and self-checked) result found so
    far, with ``details["interrupted"] = True``, or ``None``."""

    def __init__(self, partial: LipschitzResult | None):
        super().__init__("interrupted")
        self.partial = partial


def _load_methods() -> None:
    """Import the method modules (importing one registers its methods, in this order: the order of
    :func:`available_methods`).  Done on first use: they pull in numba, scipy.linalg and the SDP layer."""
    from verification.lipschitz import baseline, lipsdp, eclipse, conv_sdp  # noqa: F401


def available_methods() -> dict[str, MethodSpec]:
    """The registered methods: name -> :class:`MethodSpec`."""
    _load_methods()
    return registered_methods()


def normalize_norm(norm: int | float | str) -> int | str:
    """Accept ``2``, ``"2"``, ``"l2"``, ``"inf"``, ``np.inf``, ``"linf"``; return ``2`` or ``"inf"``."""
    if isinstance(norm, str):
        key = norm.strip().lower().lstrip("l")
        if key == "2":
            return 2
        if key in ("inf", "infinity", "∞"):
            return "inf"
    elif norm == 2:
        return 2
    elif norm == np.inf:
        return "inf"
    raise InvalidParameterError(f"The 'norm' parameter of lipschitz must be 2 or 'inf'. Got {norm!r} instead.")


def lipschitz(
    net: Network,
    method: str = "auto",
    norm: int | str = 2,
    output: int | np.ndarray | None = None,
    *,
    time_limit: float | None = None,
    proof=None,
    **options,
) -> LipschitzResult:
    """Lipschitz bound of ``net`` from input norm ``norm`` to output norm ``norm``.

    Conventions: ``norm=2`` bounds ``||f(x)-f(y)||_2 / ||x-y||_2``; ``norm="inf"`` bounds
    ``||f(x)-f(y)||_inf / ||x-y||_inf``.  With ``output`` (an output index or a vector ``c``) the bound is for
    the scalar ``|cᵀ(f(x)-f(y))|``; e.g. ``c = e_i - e_j`` bounds a logit difference.  ``method="auto"``
    picks the tightest registered certified method expected to finish quickly for this network; if it fails
    (solver failure, or an answer it cannot certify) the next one is tried, down to ``naive``, which always
    certifies; ``details["auto_tried"]`` lists the methods that failed and why.  With ``auto``, ``options``
    reach only the methods that accept them (e.g. ``solver`` the SDP methods).
    Biases never matter.  See ``available_methods()`` for the method names.

    Every certified value is checked against a few attained difference quotients before it is returned
    (:class:`~verification.errors.InternalCheckError` if one exceeds it: a bug of ours, never reported as
    a bound).  ``details["assumed"]`` and ``["dropped"]`` repeat what the loader assumed or dropped, if anything.

    ``time_limit`` (seconds, default ``None``: none): a wall-clock budget.  ``auto`` then runs a method only
    when it can finish in time: the SDP methods get a deadline (the ``ipm`` solver stops with its last
    feasible iterate, which is certified; solvers that cannot be stopped run only when their predicted cost
    fits), keeping time for the fast certified fallbacks :data:`FALLBACKS`; the smallest certified value
    found is returned, ``details["time_limit"]`` records the limit and ``details["auto_tried"]`` what did not
    fit.  A named method gets the same deadline (an SDP solve stopped by it still certifies its iterate).
    ``progress`` (option): ``True`` prints solver lines on stderr; a callable receives one ``dict`` per
    event: solver iterations (``stage``, ``iteration``, ``solver_rho``, ...) and ``{"event": "certified",
    "result": LipschitzResult}`` for each self-checked certified bound found (the CLI's "best so far").
    Ctrl-C raises :class:`LipschitzInterrupted` carrying the best certified result so far (an SDP solve
    interrupted midway certifies its last iterate first).

    ``proof`` (a path): write a proof of the certified bound that :mod:`verification.proofcheck` checks
    (docs/proofs.md); ``details["proof"]`` reports its size and the check.  The value is then the bound the
    proof proves (raised by a tiny relative amount where the checker's rounding bounds need it).
    """
    if not isinstance(net, Network):
        raise InvalidParameterError(f"lipschitz expects a verification.Network. Got {type(net).__name__}.")
    norm = normalize_norm(norm)
    methods = available_methods()
    cnet = net.canonical()
    if method != "auto" and method not in methods:
        raise InvalidParameterError(
            f"The 'method' parameter of lipschitz must be one of {['auto', *sorted(methods)]}. Got {method!r} instead."
        )
    if method != "auto" and norm not in methods[method].norms:
        raise InvalidParameterError(f"method {method!r} supports norm {methods[method].norms}, not {norm!r}")
    if proof is not None and (method == "sampled" or not net.is_canonical):
        raise (InvalidParameterError("proof= needs a certified method, not 'sampled' (a lower bound)")
               if method == "sampled" else PreconditionError(
                   "proof= needs an alternating chain of affine layers and activations as given (merging rounds)"))
    if time_limit is not None and not (isinstance(time_limit, (int, float)) and time_limit > 0):
        raise InvalidParameterError(f"The 'time_limit' parameter of lipschitz must be a number > 0 or None. Got {time_limit!r} instead.")
    c = None if output is None else output_vector(output, cnet.out_dim)
    t0 = time.perf_counter()
    out_repr = None if output is None else (int(output) if isinstance(output, (int, np.integer)) else c.tolist())

    def finish(res: LipschitzResult) -> LipschitzResult:
        details = dict(res.details)
        for key in ("assumed", "dropped"):  # what the loader assumed about the file, carried into the result
            if net.metadata.get(key):
                details[key] = net.metadata[key]
        if time_limit is not None:
            details["time_limit"] = float(time_limit)
        value = res.value
        # folded layers, and the product c·W_L a method forms for a scalar output (a proof is checked with the
        # exact c and W_L instead): cover the file's weights
        scalar = cnet if c is None or proof is not None else cnet.with_output(c)
        if res.certified and has_deviation(scalar):
            allow = float(lipschitz_allowance(scalar, norm, None if scalar is not cnet or c is None else c[None, :])[0])
            details["deviation_allowance"] = allow
            value = float(np.nextafter(value + allow, np.inf))
            if not np.isfinite(value):  # the rounding of computed weights overflows: no bound is proven
                details["failure"] = "the bound exceeds the float64 range (weights too large)"
                res = replace(res, certified=False)
        return replace(res, value=value, seconds=time.perf_counter() - t0, output=out_repr, details=details)

    run = _Run(cnet, norm, c, options, None if time_limit is None else time.monotonic() + time_limit, finish)
    try:
        with solver_blas_threads():  # one BLAS thread by default: robust on a shared machine (see _blas)
            if method == "auto":
                res = run.auto(methods)
            else:
                res = run.call(methods[method], strict=True, deadline=run.deadline)
                if res.certified:
                    run.found(res)
            if res.certified and not run.checked(res):
                _self_check(cnet, norm, c, res)
    except KeyboardInterrupt:
        best = None if run.best is None else replace(run.best, details=dict(run.best.details, interrupted=True))
        raise LipschitzInterrupted(None if best is None else strip_proof_data(best)) from None
    if proof is not None and res.certified:
        from verification.lipschitz.proof import write_proof  # loads the proof checker

        res = write_proof(cnet, res, proof, c)
    return strip_proof_data(finish(res))


def auto_candidates(net: Network, norm, has_output: bool, methods: dict[str, MethodSpec]) -> list[str]:
    """Registered certified methods applicable to this network and norm, tightest (highest priority) first."""
    candidates = [
        m
        for m in methods.values()
        if m.auto_priority is not None
        and norm in m.norms
        and (m.auto_applicable is None or m.auto_applicable(net, norm, has_output))
    ]
    return [m.name for m in sorted(candidates, key=lambda m: -m.auto_priority)]


def _lmi_rows(net: Network) -> int:
    """Rows of the l2 chain LMI (input reduced to the first layer's rank bound)."""
    layers = net.affine_layers
    n0 = min(layers[0].in_features, layers[0].out_features) if len(layers) > 1 else layers[0].in_features
    return n0 + sum(layer.out_features for layer in layers[:-1])


def fallback_seconds(name: str, net: Network) -> float:
    """A pessimistic forecast of a fallback method's wall time (``eclipse-fast``: the recursion plus the float64
    certificate of the ``n x n`` LMI, a few ``n³`` factorisations; ``naive``: nothing)."""
    if name == "naive":
        return 0.0
    n = _lmi_rows(net)
    return 0.5 + 3e-9 * n**3 + 1e-8 * sum(w**3 for w in net.hidden_widths)


def _least_seconds(name: str, net: Network) -> float:
    """The least time a method needs to give anything: for the SDP methods, building the LMI and its float64
    certificate (a stopped solve still needs both)."""
    if name not in ("lipsdp-neuron", "lipsdp-layer"):  # the dense chain LMIs (lipsdp-conv builds no dense LMI)
        return 0.0
    return 0.5 + 6e-9 * _lmi_rows(net) ** 3


class _Run:
    """One call of :func:`lipschitz`: the method calls, the deadline, and the best certified result so far."""

    def __init__(self, net: Network, norm, c, options: dict, deadline: float | None, finish):
        self.net, self.norm, self.c, self.options, self.deadline = net, norm, c, options, deadline
        self.finish = finish
        self.progress = options.get("progress")
        self.best: LipschitzResult | None = None  # finished (self-checked) best certified result
        self._checked: list[tuple] = []  # (method, value) of the self-checked results

    def call(self, spec: MethodSpec, strict: bool, deadline: float | None = None) -> LipschitzResult:
        """Run one method; ``strict``: unknown options are an error, else they are dropped for this method.
        ``deadline`` reaches the methods that take options or a ``deadline`` parameter (the SDP methods)."""
        params = inspect.signature(spec.func).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        options = dict(self.options)
        if deadline is not None and (takes_any or "deadline" in params):
            options["deadline"] = deadline
        unknown = [k for k in options if k not in params and not takes_any]
        if unknown and strict:
            raise InvalidParameterError(f"method {spec.name!r} has no option {unknown[0]!r}")
        opts = {k: v for k, v in options.items() if k not in unknown}
        res = spec.func(self.net, norm=self.norm, c=self.c, **opts)
        if res.certified and res.value == np.inf:  # finite weights whose bound overflows float64: no answer
            res = replace(res, certified=False, details=dict(
                res.details, failure="the bound exceeds the float64 range (weights too large)"))
        if res.details.get("solver_status") == "interrupted":  # Ctrl-C inside the solver: keep its certified bound
            if res.certified and np.isfinite(res.value):
                self.found(res)
            raise KeyboardInterrupt
        return res

    def found(self, res: LipschitzResult) -> None:
        """A certified result: keep it as the best so far (after the self-check) and tell ``progress``."""
        if self.best is not None and self.best.value <= res.value:
            return
        _self_check(self.net, self.norm, self.c, res)
        self._checked.append((res.method, res.value))
        self.best = self.finish(res)
        if callable(self.progress):
            self.progress({"event": "certified", "result": self.best})

    def checked(self, res: LipschitzResult) -> bool:
        """Whether this value of this method has passed the self-check already."""
        return (res.method, res.value) in self._checked

    def left(self) -> float:
        return np.inf if self.deadline is None else self.deadline - time.monotonic()

    def auto(self, methods: dict[str, MethodSpec]) -> LipschitzResult:
        net, c = self.net, self.c
        tried = []
        names = auto_candidates(net, self.norm, c is not None, methods)
        if "naive" not in names:
            names.append("naive")
        timed = self.deadline is not None
        crude = None
        if timed or callable(self.progress):  # an answer from the start (for Ctrl-C and the deadline)
            crude = self.call(methods["naive"], strict=False)
            if crude.certified:
                self.found(crude)
        for i, name in enumerate(names):
            later = [f for f in FALLBACKS if f in names[i + 1:]]
            reserve = sum(fallback_seconds(f, net) for f in later)
            if timed and name in FALLBACKS and name != "naive" and fallback_seconds(name, net) > self.left():
                tried.append({"method": name, "failure": "skipped: predicted to exceed the time limit"})
                continue
            if timed and name not in FALLBACKS and self.left() - reserve <= _least_seconds(name, net):
                tried.append({"method": name, "failure": "skipped: no time left within the time limit"})
                continue
            try:
                deadline = None if not timed or name in FALLBACKS else self.deadline - reserve
                res = crude if name == "naive" and crude is not None else self.call(methods[name], strict=False, deadline=deadline)
            except (SolverError, PreconditionError, UnsupportedLayerError, ArithmeticError,
                    np.linalg.LinAlgError) as exc:  # UnsupportedLayerError: dense weights refused (a large CNN)
                tried.append({"method": name, "failure": " ".join(str(exc).split())[:300] or type(exc).__name__})
                continue
            if res.certified and np.isfinite(res.value):
                if res.details.get("solver_status") == "time limit":
                    # stopped by the deadline: still a certified bound; the fallbacks may do better
                    tried.append({"method": name, "failure": f"stopped by the time limit, certified {res.value:.6g}"})
                    self.found(res)
                    continue
                if name != "naive":  # the product of norms costs nothing; on badly scaled nets it can be tighter
                    crude = crude or self.call(methods["naive"], strict=False)
                    if crude.certified and crude.value < res.value:
                        tried.append({"method": name, "failure": f"certified {res.value:.6g}, looser than naive"})
                        res = crude
                return self._best_of(res, tried)
            why = res.details.get("failure")
            tried.append({"method": name, "failure": f"not certified (value {res.value:.6g})" + (f": {why}" if why else "")})
        if self.best is not None:  # only under a deadline: the smallest certified value found
            return self._best_of(self.best, tried)
        raise SolverError(f"no method certified a bound: {tried}")  # pragma: no cover - naive always certifies

    def _best_of(self, res: LipschitzResult, tried: list) -> LipschitzResult:
        if self.best is not None and self.best.value < res.value:
            tried.append({"method": res.method, "failure": f"certified {res.value:.6g}, looser than "
                          f"{self.best.method} stopped by the time limit"})
            res = self.best
        if tried:
            res = replace(res, details=dict(res.details, auto_tried=tried))
        return res


def _self_check(net: Network, norm, c, res: LipschitzResult, n_pairs: int = 64) -> None:
    """Raise :class:`InternalCheckError` if an attained difference quotient exceeds the certified value."""
    if not np.isfinite(res.value) or res.value < 0:
        raise InternalCheckError(f"method {res.method!r} returned the non-finite or negative bound {res.value!r}")
    low = attained_quotients(net, norm, c, n_pairs=n_pairs, seed=12345)
    if low > res.value:
        raise InternalCheckError(
            f"method {res.method!r} certified {res.value!r}, but the network attains a difference quotient of "
            f"{low!r}; the bound is withheld (please report this network)"
        )
