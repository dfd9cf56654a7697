"""Demo: every applicable Lipschitz method on the bundled classifier, next to the sampled lower bound,
then two region checks (one proved, one with a re-checked counterexample).

    python examples/demo.py [MODEL]

Prints one row per method: value, certified or not, seconds.  The true constant lies between the
largest lower bound and the smallest certified upper bound.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from verification import load_network, verify_region
from verification.errors import VerificationError
from verification.lipschitz import available_methods, lipschitz


def main(path: str) -> int:
    net = load_network(path)
    print(f"model: {path}\n  {net.describe()}\n")
    rows = []
    for norm in (2, "inf"):
        for name, spec in sorted(available_methods().items()):
            if norm not in spec.norms:
                continue
            try:
                res = lipschitz(net, method=name, norm=norm)
            except VerificationError as exc:
                rows.append((norm, name, None, f"n/a: {exc}", 0.0))
                continue
            kind = "certified upper bound" if res.certified else res.details.get("kind", "not certified")
            rows.append((norm, name, res.value, kind, res.seconds))
    print(f"{'norm':>5} {'method':<22} {'value':>12}  {'seconds':>8}  kind")
    for norm, name, value, kind, sec in rows:
        val = f"{value:12.5f}" if value is not None else " " * 12
        print(f"{'l' + str(norm):>5} {name:<22} {val}  {sec:8.3f}  {kind[:90]}")
    for norm in (2, "inf"):
        lows = [v for n, _, v, k, _ in rows if n == norm and v is not None and k == "lower_bound"]
        ups = [v for n, _, v, k, _ in rows if n == norm and v is not None and k == "certified upper bound"]
        if lows and ups:
            print(f"\nl{norm}: {max(lows):.5f} <= Lipschitz constant <= {min(ups):.5f} (certified)")
    if net.in_dim == 2:
        print("\nIs the predicted class constant on the l-inf ball of radius eps around x0?")
        for x0, eps in ((np.array([-0.5, -0.5]), 0.1), (np.array([0.0, 0.0]), 0.1)):
            res = verify_region(net, x0, eps, timeout=30)
            print(f"  x0 = {x0}, eps = {eps}: {res.status}", end="")
            if res.counterexample is not None:
                cx = res.counterexample
                print(f"; counterexample {cx} has class {int(np.argmax(net(cx)))}, x0 has class {int(np.argmax(net(x0)))}")
            else:
                print()
    return 0


if __name__ == "__main__":
    default = Path(__file__).resolve().parent / "classifier.onnx"
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else str(default)))
