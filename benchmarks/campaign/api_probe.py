"""Public-API probes, run in a forked child of the fork server (isolated: time and memory limits).

Each function prints one JSON object on stdout and returns an exit code.  A :class:`VerificationError`
(a refusal) is reported as ``{"refused": message}`` with exit code 2.  Run by hand as
``python api_probe.py FUNC '{json args}'``.
"""

from __future__ import annotations

import json
import sys

import numpy as np


def _load(path, trust=False, arch=None, input_shape=None):
    import verification

    return verification.load_network(path, trust=trust, arch=arch,
                                      input_shape=tuple(input_shape) if input_shape else None)


def evaluate(path: str, points: str, out: str, trust=False, arch=None, input_shape=None) -> int:
    """``load_network(path)(X)`` for ``X = np.load(points)``; outputs saved to ``out``."""
    from verification.errors import VerificationError

    try:
        net = _load(path, trust, arch, input_shape)
    except VerificationError as exc:
        print(json.dumps({"refused": " ".join(str(exc).split())}))
        return 2
    X = np.load(points)
    Y = np.asarray(net(X), dtype=np.float64)
    np.save(out, Y)
    print(json.dumps({"in_dim": net.in_dim, "out_dim": net.out_dim, "describe": net.describe(),
                      "has_domain": net.input_lower is not None}))
    return 0


def bounds(path: str, lo: list, hi: list, methods: list, arch=None) -> int:
    """``output_bounds(net, lo, hi, m)`` for each method; reports refusals per method."""
    import verification
    from verification.errors import VerificationError

    try:
        net = _load(path, arch=arch)
    except VerificationError as exc:
        print(json.dumps({"refused": " ".join(str(exc).split())}))
        return 2
    res = {}
    for m in methods:
        try:
            b = verification.output_bounds(net, np.array(lo, dtype=np.float64), np.array(hi, dtype=np.float64), m)
            res[m] = {"lower": [float(v) for v in b.lower], "upper": [float(v) for v in b.upper]}
        except VerificationError as exc:
            res[m] = {"refused": " ".join(str(exc).split())}
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(globals()[sys.argv[1]](**json.loads(sys.argv[2])))
