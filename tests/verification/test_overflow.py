"""Finite weights whose bounds overflow float64 (campaign: a bit flip made one weight 1.1e308): no method may
report an infinite "certified" bound or fail its self-check; the answer is "not certified" (exit 1)."""

import numpy as np
import pytest

from verification import lipschitz
from verification.activations import ReLU
from verification.bounds import local_lipschitz
from verification.errors import SolverError
from verification.layers import Dense
from verification.network import Network


def _huge() -> Network:
    w0 = np.array([[1.1e308, 0.5], [0.3, -0.2]])
    return Network((Dense(w0, np.zeros(2)), ReLU(), Dense(np.array([[2.0, 1.0]]), np.zeros(1))))


@pytest.mark.parametrize("method", ["naive", "auto"])
def test_global_bound_that_overflows_is_not_certified(method):
    try:
        res = lipschitz(_huge(), method=method)
    except SolverError as exc:  # auto: no method certified a bound (each failure listed)
        assert "float64 range" in str(exc)
        return
    assert not res.certified and "float64 range" in res.details["failure"] and "NOT certified" in str(res)


def test_local_bound_that_overflows_is_not_certified():
    with pytest.raises(SolverError, match="float64 range"):
        local_lipschitz(_huge(), np.array([0.5, 0.5]), 0.1)


def test_a_deviation_that_overflows_gives_unknown_and_rejections():
    """Computed weights near the float64 limit: the rounding bound itself is infinite.  ``verify`` answers
    ``unknown`` (nothing can be proved or confirmed), the checkers reject, Lipschitz is not certified."""
    from verification import verify
    from verification.layers.deviation import mark_rounded
    from verification.proofcheck import check_counterexample
    from verification.smt.confirm import confirm_property
    from verification.spec import box_property

    first = mark_rounded(Dense(np.array([[1.7e308, 1.7e308], [0.0, 1.0]]), np.zeros(2)), 1e-16)
    net = Network((first, ReLU(), Dense(np.array([[1.0, 1.0]]), np.zeros(1))))
    prop = box_property(np.array([0.5, 0.0]), np.array([1.0, 1.0]), np.eye(1), np.array([0.0]))
    res = verify(net, prop, timeout=10)
    assert res.status == "unknown" and "overflows" in res.reason
    x = np.array([0.5, 0.5])
    assert not confirm_property(net, prop, x)
    assert not check_counterexample(net, prop, x).accepted
    res = lipschitz(net, method="naive")
    assert not res.certified
