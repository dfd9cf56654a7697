"""Solving a chain LMI: the backend table, the ``auto`` choice, the fallbacks and the float64 certificate.

:data:`BACKENDS` maps every solver name to a :class:`Backend`: its ``solve`` (one signature for all, see
:mod:`verification.lipschitz.sdp.backends`), the backend to fall back to under ``solver="auto"`` when it fails,
and the ``info`` key that records the failure.  :func:`solve_chain_sdp` runs the chosen backend and, under
``auto``, its fallbacks (each backend at most once), then certifies the answer in float64
(:meth:`ChainSDP.certify`); a forced solver's failure is raised.  A new backend is one file in ``backends/``
plus one entry here.

Deadlines (``deadline``, a ``time.monotonic()`` value): ``ipm`` gets the time left (it checks it before
every iteration and stops with its last strictly feasible iterate, which is certified like any other); the
solvers we cannot stop (CVXOPT through cvxpy or with the low-rank KKT solver, Clarabel, SCS, MOSEK) run only
when :func:`predicted_seconds` fits in the time left, else they count as failed (``auto`` falls back).
Time for the float64 certificate is reserved first (:func:`certify_seconds`).
"""

from __future__ import annotations

import importlib.util
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from verification.errors import InvalidParameterError, SolverError
from verification.lipschitz.sdp.backends import chain_pd, cvxpy_lmi, lowrank_cvxopt, report
from verification.lipschitz.sdp.certificate import Certificate
from verification.lipschitz.sdp.chain import ChainSDP
from verification.lipschitz.sdp.cvxpy_problem import installed_solvers, mosek_available

__all__ = ["Backend", "BACKENDS", "SOLVERS", "auto_backend", "solve_chain_sdp", "predicted_seconds", "certify_seconds"]

LOWRANK_MIN_MULTIPLIERS = 40  # the rank-2 KKT solver pays off with many multipliers (neuron form)
IPM_AUTO_MIN_N = 200  # auto: the block-tridiagonal method for l2 LMIs of at least this many rows ...
IPM_AUTO_MIN_LAYERS = 4  # ... or this many activation layers
IPM_RETRY_MAX_N = 600  # auto: up to this size a non-converged ipm run is retried with CVXOPT
CLARABEL_MAX_N = 150  # cvxpy fallback: Clarabel (dense KKT block per cone) up to this size, else SCS


def _cvxopt_for(sdp: ChainSDP) -> str:
    return "cvxopt-lowrank" if sdp.nonneg.shape[0] >= LOWRANK_MIN_MULTIPLIERS else "CVXOPT"


def _robust_cvxpy(sdp: ChainSDP) -> str:
    return "CLARABEL" if sdp.n <= CLARABEL_MAX_N else "SCS"


def _always(sdp: ChainSDP, status: str) -> bool:
    return True


def _ipm_converged_or_large(sdp: ChainSDP, status: str) -> bool:
    # not converged: its iterate is feasible (it would certify a looser bound); small LMIs go to CVXOPT instead,
    # unless the deadline or Ctrl-C stopped it (no time for another solver)
    return status in ("optimal", "time limit", "interrupted") or sdp.n > IPM_RETRY_MAX_N


@dataclass(frozen=True)
class Backend:
    """An entry of :data:`BACKENDS`.

    ``solve(sdp, *, progress, label, **options) -> (y, status, info)``; ``fallback(sdp)``: the backend
    ``auto`` tries next when this one fails; ``error_key``: the ``info`` key of the failure message;
    ``accept(sdp, status)``: under ``auto``, whether an answer with this status is kept (else it counts as a
    failure)."""

    solve: Callable[..., tuple[np.ndarray, str, dict]]
    fallback: Callable[[ChainSDP], str]
    error_key: str
    accept: Callable[[ChainSDP, str], bool] = _always


_CVXPY = dict(fallback=_robust_cvxpy, error_key="first_solver_error")

BACKENDS: dict[str, Backend] = {
    "cvxopt-lowrank": Backend(lowrank_cvxopt.solve, lambda sdp: "CVXOPT", "lowrank_error"),
    "ipm": Backend(chain_pd.solve, _cvxopt_for, "ipm_error", _ipm_converged_or_large),
    "CVXOPT": Backend(cvxpy_lmi.solver("CVXOPT"), **_CVXPY),
    "CLARABEL": Backend(cvxpy_lmi.solver("CLARABEL"), **_CVXPY),
    "SCS": Backend(cvxpy_lmi.solver("SCS"), **_CVXPY),
    "MOSEK": Backend(cvxpy_lmi.solver("MOSEK"), **_CVXPY),
}

SOLVERS = ("auto", *BACKENDS)

# Cost models of the solvers we cannot stop, in seconds on one core: a constant start-up (cvxpy's import and
# compilation) plus u = n² m + m³ flop units (n LMI rows, m multipliers).  Measured on random ReLU MLPs
# (LMIs of 90 and 170 rows, 3 Dec, shared 2-core machine: cvxopt-lowrank 0.6 / 1.2 s, CVXOPT 4.3 / 6.3 s,
# Clarabel 37-52 s and SCS 3-37 s at 90 rows), then doubled to stay on the safe side.
_COST = {  # backend -> (seconds, seconds per unit)
    "cvxopt-lowrank": (1.0, 1.6e-7),
    "CVXOPT": (6.0, 8e-7),
    "CLARABEL": (2.0, 7e-5),
    "SCS": (2.0, 6e-5),
    "MOSEK": (2.0, 2e-7),
}


def predicted_seconds(sdp: ChainSDP, backend: str) -> float:
    """A pessimistic forecast of the wall time of ``backend`` on ``sdp`` (``0`` for ``ipm``, which honours a
    time limit itself)."""
    if backend == "ipm":
        return 0.0
    base, per = _COST[backend]
    n, m = sdp.n, int(sdp.nonneg.shape[0])
    return base + per * (n * n * m + m**3)


def certify_seconds(sdp: ChainSDP) -> float:
    """Time reserved for the float64 certificate (eigenvalues and a few Cholesky factorisations of ``n x n``)."""
    return 0.2 + 5e-9 * sdp.n**3


def backend_available(name: str) -> bool:
    """Whether the backend can run here: ``ipm`` always; ``cvxopt-lowrank`` and ``CVXOPT`` need the optional
    (GPL) ``cvxopt`` package; the cvxpy solvers must be installed (MOSEK also licensed)."""
    if name == "ipm":
        return True
    if name == "cvxopt-lowrank":
        return importlib.util.find_spec("cvxopt") is not None
    if name == "MOSEK":
        return mosek_available()
    return name in installed_solvers()


def auto_backend(sdp: ChainSDP) -> str:
    """The first backend of ``solver="auto"``: MOSEK if licensed; the block-tridiagonal interior-point method
    (cost linear in depth per iteration) for large or deep l2 LMIs; else CVXOPT, with the low-rank KKT solver
    when there are many multipliers.  (Clarabel only as a fallback for small LMIs; SCS never by default.)"""
    if mosek_available():
        return "MOSEK"
    if sdp.norm == 2 and sdp.qcs and (sdp.n >= IPM_AUTO_MIN_N or len(sdp.qcs) >= IPM_AUTO_MIN_LAYERS):
        return "ipm"
    return _cvxopt_for(sdp)


def solve_chain_sdp(
    sdp: ChainSDP, solver: str = "auto", progress=False, label: str = "lipsdp", deadline: float | None = None,
    **solver_options
) -> tuple[Certificate, str, dict]:
    """Solve and certify; returns ``(certificate, backend used, info)``.  ``solver``: ``"auto"`` or a key of
    :data:`BACKENDS` (the cvxpy names in any case); ``solver_options`` go to every backend tried.
    ``progress``: ``True`` (text on stderr) or a callable (see :func:`~.backends.report`).  ``deadline``
    (``time.monotonic()``): see the module docstring; ``info["solver_status"]`` is ``"time limit"`` when it
    stopped ``ipm``."""
    name = solver if solver in BACKENDS else solver.upper()
    if solver != "auto" and name not in BACKENDS:
        raise InvalidParameterError(f"The 'solver' parameter must be one of {list(SOLVERS)}. Got {solver!r} instead.")
    auto = solver == "auto"
    info: dict = {"lmi_size": sdp.n, "n_multipliers": int(sdp.nonneg.shape[0]), "input_dim": sdp.reduced_from}
    chosen = auto_backend(sdp) if auto else name
    tried: set[str] = set()
    t0 = time.perf_counter()
    while True:
        backend = BACKENDS[chosen]
        tried.add(chosen)
        try:
            if auto and not backend_available(chosen):  # e.g. a core install without the [gpl] extra
                raise SolverError(f"{chosen} is not installed")
            opts = _with_deadline(sdp, chosen, deadline, solver_options)
            y, status, extra = backend.solve(sdp, progress=progress, label=label, **opts)
            info.update(extra)
            if auto and not backend.accept(sdp, status):
                raise SolverError(f"the {chosen} backend stopped: {status}")
            break
        except SolverError as exc:
            nxt = backend.fallback(sdp)
            if not auto or nxt in tried:
                raise
            info[backend.error_key] = str(exc)
            chosen = nxt
    info["solver_seconds"] = time.perf_counter() - t0
    report(progress, label, f"{chosen} finished in {info['solver_seconds']:.1f} s; certifying in float64 ...",
           solver_rho=float(y[0]))
    info["solver_status"] = status
    info["solver_rho"] = float(y[0])
    cert = sdp.certify(y)
    info["multipliers"] = y[1:]
    return cert, chosen, info


def _with_deadline(sdp: ChainSDP, backend: str, deadline: float | None, options: dict) -> dict:
    """The options of one backend run under ``deadline``: ``ipm`` gets ``time_limit``; the other backends raise
    :class:`SolverError` (a failure ``auto`` falls back from) when their forecast does not fit."""
    if deadline is None:
        return options
    left = deadline - time.monotonic() - certify_seconds(sdp)
    if left <= 0:
        raise SolverError(f"{backend}: no time left within the time limit")
    if backend == "ipm":
        return dict(options, time_limit=min(left, options.get("time_limit", math.inf)))
    need = predicted_seconds(sdp, backend)
    if need > left:
        raise SolverError(f"{backend}: predicted {need:.3g} s, only {left:.3g} s left within the time limit "
                          "(this solver cannot be stopped midway)")
    return options
