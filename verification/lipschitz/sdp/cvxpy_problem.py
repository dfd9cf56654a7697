"""Solving a cvxpy problem with the project's error contract: every solver failure is a :class:`SolverError`.

Used by the cvxpy backends of the chain LMI, the per-layer SDPs of ECLipsE and the residual MaxMin SDPs.
"""

from __future__ import annotations

from verification.errors import InvalidParameterError, SolverError

__all__ = ["installed_solvers", "mosek_available", "solve_cvxpy_problem"]


def installed_solvers() -> list[str]:
    """The solvers cvxpy can use here."""
    import cvxpy as cp

    return list(cp.installed_solvers())


_MOSEK: list[bool] = []  # the answer, once known (a licence check solves a problem)


def mosek_available() -> bool:
    """True if MOSEK is installed in cvxpy and a licence works.  Without the ``mosek`` package this answers
    without importing cvxpy (about 1–2 s, most of it scipy.stats), so the first ``lipschitz()`` call of a
    process does not pay for it."""
    if not _MOSEK:
        _MOSEK.append(_mosek_works())
    return _MOSEK[0]


def _mosek_works() -> bool:
    import importlib.util

    if importlib.util.find_spec("mosek") is None or "MOSEK" not in installed_solvers():
        return False
    try:  # pragma: no cover - no licence here
        import cvxpy as cp

        x = cp.Variable()
        cp.Problem(cp.Minimize(x), [x >= 1]).solve(solver="MOSEK")
        return True
    except Exception:  # noqa: BLE001
        return False


def solve_cvxpy_problem(prob, solver: str, **kwargs) -> str:
    """Solve a cvxpy problem; map every failure to a SolverError.  Returns the solver name."""
    import cvxpy as cp

    solver = solver.upper()
    if solver not in installed_solvers():
        raise InvalidParameterError(f"solver {solver} is not installed (installed: {', '.join(installed_solvers())})")
    opts = dict(kwargs)
    if solver == "SCS":
        opts.setdefault("eps", 1e-6)
        opts.setdefault("max_iters", 20000)
    try:
        prob.solve(solver=solver, **opts)
    except (cp.error.SolverError, ArithmeticError, ValueError, MemoryError) as exc:
        raise SolverError(f"{solver} failed on the LipSDP problem: {type(exc).__name__}: {exc}".strip()) from None
    if prob.status not in ("optimal", "optimal_inaccurate"):
        raise SolverError(f"{solver} returned status {prob.status!r}; no bound")
    return solver
