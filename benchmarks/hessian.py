"""Hessian spectral tools: theorytools.rmt vs PyHessian on the same torch model and batch.

PyHessian (GPL-3) is an anchor only, never a dependency.  Install it in a separate venv that reuses the
project's packages, then run this script with that venv's python::

    .venv/bin/python -m venv /tmp/pyhessian-venv
    /tmp/pyhessian-venv/bin/pip install --no-deps pyhessian==0.1
    echo "$PWD/.venv/lib/python3.11/site-packages" > /tmp/pyhessian-venv/lib/python3.11/site-packages/zz_project.pth
    PYTHONPATH=. /tmp/pyhessian-venv/bin/python benchmarks/hessian.py

Without PyHessian the script runs our side only and says so.  Both sides use the same float32 model
and batch; the ground truth is the dense Hessian of a float64 copy (exact eigenvalues and trace).
PyHessian's ``eigenvalues`` is power iteration (largest *magnitude*), ``trace`` is Hutchinson with
Rademacher probes and a relative stopping tolerance; its ``density`` (v0.1 on PyPI) calls ``torch.eig``,
removed from torch 2.x, so the density is compared only if it runs.
"""

from __future__ import annotations

import copy
import sys
import time
import warnings

import numpy as np
import torch

import theorytools.rmt as rmt


def build_problem(seed: int = 0, n: int = 256, d: int = 20, width: int = 32, classes: int = 4):
    torch.manual_seed(seed)
    X = torch.randn(n, d)
    W = torch.randn(d, classes)
    y = torch.argmax(X @ W + 0.5 * torch.randn(n, classes), dim=1)
    model = torch.nn.Sequential(torch.nn.Linear(d, width), torch.nn.Tanh(),
                                torch.nn.Linear(width, width), torch.nn.Tanh(),
                                torch.nn.Linear(width, classes))
    loss = torch.nn.CrossEntropyLoss()
    # a few SGD steps so that the Hessian is not the one at initialisation
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    for _ in range(30):
        opt.zero_grad()
        loss(model(X), y).backward()
        opt.step()
    return model, loss, X, y


def timed(f):
    t = time.perf_counter()
    out = f()
    return out, time.perf_counter() - t


def main() -> None:
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")
    model, loss, X, y = build_problem()
    # ground truth: dense float64 Hessian
    m64 = copy.deepcopy(model).double()
    H = rmt.torch_curvature_operator(m64, loss, X.double(), y).to_dense()
    ev = np.linalg.eigvalsh(H)
    exact_top, exact_bottom, exact_trace = ev[-1], ev[0], float(np.trace(H))
    P = H.shape[0]
    print(f"model: MLP 20-32-32-4 tanh, CE loss, batch 256, float32, P = {P}")
    print(f"exact (dense float64): lambda_max = {exact_top:.6f}, lambda_min = {exact_bottom:.6f}, "
          f"trace = {exact_trace:.6f}")

    (op, t_op) = timed(lambda: rmt.torch_curvature_operator(model, loss, X, y))
    rows = []
    (pw, t_pw) = timed(lambda: rmt.top_eigenvalue(op, seed=0, tol=1e-3, max_iter=100))
    t_pw += t_op  # count building the gradient graph, as PyHessian's constructor does
    rows.append((f"ours power (algebraic, tol 1e-3, {pw.iterations} it)", pw.eigenvalue, exact_top, t_pw,
                 pw.iterations))
    (lz, t_lz) = timed(lambda: rmt.lanczos(op, 30, seed=0))
    rows.append(("ours Lanczos 30 steps (top Ritz)", lz.ritz_values[-1], exact_top, t_lz, 30))
    n_probe = 100
    (tr, t_tr) = timed(lambda: rmt.hutchinson_trace(op, n_probe, seed=0))
    rows.append(("ours Hutchinson trace (100 probes)", tr.trace, exact_trace, t_tr, n_probe))

    try:
        from pyhessian import hessian as PyHessian
    except ImportError:
        PyHessian = None
        print("\nPyHessian is not importable in this interpreter: anchor side SKIPPED "
              "(see the module docstring for the /tmp venv).")
    anchor = {}
    if PyHessian is not None:
        torch.manual_seed(0)
        (hc, t_init) = timed(lambda: PyHessian(model, loss, data=(X, y), cuda=False))
        ((eigs, _), t_e) = timed(lambda: hc.eigenvalues(maxIter=100, tol=1e-3, top_n=1))
        (trs, t_t) = timed(lambda: hc.trace(maxIter=100, tol=1e-3))
        anchor["eig"] = (eigs[0], t_e + t_init)
        anchor["trace"] = (float(np.mean(trs)), t_t, len(trs))
        rows.append(("PyHessian eigenvalues (tol 1e-3)", eigs[0], exact_top, t_e + t_init, None))
        rows.append((f"PyHessian trace ({len(trs)} probes, tol 1e-3)", float(np.mean(trs)),
                     exact_trace, t_t, len(trs)))
        try:
            (dens, t_d) = timed(lambda: hc.density(iter=30, n_v=1))
            rows.append(("PyHessian density top Ritz (30 it)", max(dens[0][0]), exact_top, t_d, 30))
        except Exception as exc:  # torch.eig was removed from torch 2.x
            print(f"PyHessian density() failed on torch {torch.__version__}: "
                  f"{type(exc).__name__}: {str(exc).splitlines()[0][:90]}")

    print(f"\n{'method':40s} {'value':>12s} {'exact':>12s} {'rel.err':>9s} {'seconds':>8s}")
    for name, val, ref, t, _ in rows:
        print(f"{name:40s} {val:12.6f} {ref:12.6f} {abs(val - ref) / abs(ref):9.2e} {t:8.3f}")
    print(f"\nours: Hutchinson standard error = {tr.stderr:.4f} "
          f"(|error| = {abs(tr.trace - exact_trace) / tr.stderr:.2f} s.e.)")
    if anchor:
        e_a = anchor["eig"][0]
        print(f"top eigenvalue ours(power) vs PyHessian: rel. diff = "
              f"{abs(pw.eigenvalue - e_a) / abs(e_a):.2e} (PyHessian tol 1e-3); "
              f"time ratio ours/PyHessian = {t_pw / anchor['eig'][1]:.2f}")
        tr_a, t_ta, k = anchor["trace"]
        # per-probe spread of our samples gives the scale of Monte Carlo disagreement
        se_a = tr.samples.std(ddof=1) / np.sqrt(k)
        print(f"trace ours vs PyHessian: diff = {abs(tr.trace - tr_a):.4f} = "
              f"{abs(tr.trace - tr_a) / np.hypot(tr.stderr, se_a):.2f} combined s.e.; "
              f"time per probe ours/PyHessian = {(t_tr / n_probe) / (t_ta / k):.2f}")
    sys.stdout.flush()
    if PyHessian is not None:
        power_many_starts(model, loss, X, y, PyHessian)


def power_many_starts(model, loss, X, y, PyHessian, n_starts: int = 60) -> None:
    """Power iteration from ``n_starts`` random starts on both sides, interleaved (one PyHessian run, then one
    of ours, per start): the number of products depends on the start, so one start per side says little.
    Both sides iterate on the same operator (largest magnitude, relative-change stopping at 1e-3)."""
    import os

    mod = sys.modules["pyhessian.hessian"]
    count = [0]
    plain_hvp = mod.hessian_vector_product

    def counted(*a, **k):
        count[0] += 1
        return plain_hvp(*a, **k)

    mod.hessian_vector_product = counted
    hc = PyHessian(model, loss, data=(X, y), cuda=False)
    op = rmt.torch_curvature_operator(model, loss, X, y)
    its_a, its_o, t_a, t_o = [], [], 0.0, 0.0
    load0 = os.getloadavg()[0]
    for s in range(n_starts):
        torch.manual_seed(s)
        count[0] = 0
        t = time.perf_counter()
        hc.eigenvalues(maxIter=100, tol=1e-3, top_n=1)
        t_a += time.perf_counter() - t
        its_a.append(count[0])
        t = time.perf_counter()
        r = rmt.top_eigenvalue(op, seed=s, tol=1e-3, max_iter=100, which="magnitude")
        t_o += time.perf_counter() - t
        its_o.append(r.iterations)
    mod.hessian_vector_product = plain_hvp
    print(f"\npower iteration, {n_starts} random starts each, interleaved (load {load0:.2f} -> {os.getloadavg()[0]:.2f}):")
    print(f"  products per run: ours mean {np.mean(its_o):.1f} (min {min(its_o)}, max {max(its_o)}), "
          f"PyHessian mean {np.mean(its_a):.1f} (min {min(its_a)}, max {max(its_a)})")
    print(f"  time per product: ours {t_o / sum(its_o) * 1e3:.2f} ms, PyHessian {t_a / sum(its_a) * 1e3:.2f} ms "
          f"(ratio {(t_o / sum(its_o)) / (t_a / sum(its_a)):.2f})")
    print(f"  total time ours/PyHessian = {t_o / t_a:.2f}")


if __name__ == "__main__":
    main()
