"""Pytest plugin: every ``lipschitz()`` call of a test run also writes a proof and runs the independent checker
(docs/proofs.md, "Every certified bound of the Lipschitz tests").

    PYTHONPATH=benchmarks .venv/bin/python -m pytest -q -p lipschitz_proof_sweep \\
        tests/verification/test_lipsdp.py tests/verification/test_lipschitz_baseline.py \\
        tests/verification/test_soundness_properties.py tests/verification/test_sdp_backends.py

One JSON line per call goes to ``$PROOF_SWEEP_LOG`` (default ``lipschitz_proof_sweep.jsonl``): the method,
norm, whether the bound is certified and whether its proof was accepted (else the checker's message), the
writer's bumps, the method's seconds (``seconds``) and one checker run's (``check_seconds``).
Calls with ``method="sampled"`` (a lower bound) or an explicit ``proof=`` are passed through unchanged.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import tempfile

import verification

LOG = os.environ.get("PROOF_SWEEP_LOG", "lipschitz_proof_sweep.jsonl")
_registry = importlib.import_module("verification.lipschitz.registry")
_original = _registry.lipschitz


def _log(rec: dict) -> None:
    with open(LOG, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(rec) + "\n")


def lipschitz_with_proof(net, method="auto", norm=2, output=None, **kw):
    if kw.get("proof") is not None or method == "sampled":
        return _original(net, method, norm, output, **kw)
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        res = _original(net, method, norm, output, proof=path, **kw)
    except Exception as exc:  # noqa: BLE001 - the same call without a proof decides what the test sees
        _log({"method": method, "norm": str(norm), "error": f"{type(exc).__name__}: {str(exc)[:120]}"})
        return _original(net, method, norm, output, **kw)
    finally:
        if os.path.exists(path):
            os.unlink(path)
    p = res.details.get("proof")
    _log({"method": res.method, "norm": str(norm), "certified": res.certified, "net": net.describe()[:150],
          "accepted": None if p is None else p["accepted"], "message": None if p is None else p["message"],
          "bumps": None if p is None else p["bumps"], "seconds": res.seconds,
          "check_seconds": None if p is None else p["check_seconds"]})
    return res


_registry.lipschitz = lipschitz_with_proof
sys.modules["verification.lipschitz"].lipschitz = lipschitz_with_proof
verification.lipschitz = lipschitz_with_proof  # `from verification import lipschitz`
