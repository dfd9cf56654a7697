"""Keep two BLAS thread pools from fighting over the cores.

The numpy and scipy wheels each ship their own OpenBLAS, each with one thread per core.  OpenBLAS threads
busy-wait for a while after a call, so code that alternates large numpy products with small scipy calls
(triangular solves, 64 x 64 Cholesky factorisations: the block-tridiagonal LipSDP solver does thousands per
iteration) runs both pools at once and oversubscribes the machine.  Measured on the 2-core CI machine, LipSDP-Neuron
on the depth-16 MNIST-shaped MLP: 47.7 s with both pools at their default, 8.5 s with both at one thread,
7.7 s with scipy's at one thread and numpy's at two (the setting :func:`scipy_blas_single_thread` applies).

If scipy and numpy share one BLAS (conda/MKL builds) or ``threadpoolctl`` is missing, nothing is changed."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

__all__ = ["scipy_blas_single_thread"]


def _private_blas_paths() -> list[str]:
    """File paths of the loaded BLAS libraries other than numpy's own, if numpy has its own."""
    try:
        import numpy as np
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return []
    infos = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    if len(infos) < 2:
        return []
    pkg = Path(np.__file__).resolve().parent  # numpy's wheel puts its BLAS in "numpy.libs" next to the package
    own_dirs = (pkg, pkg.with_name(pkg.name + ".libs"))
    own = [i for i in infos if any(d in Path(i["filepath"]).resolve().parents for d in own_dirs)]
    if not own:
        return []
    return [i["filepath"] for i in infos if i not in own]


@contextmanager
def scipy_blas_single_thread():
    """Within the block: every BLAS other than numpy's runs one thread; numpy's keeps its setting."""
    paths = _private_blas_paths()
    if not paths:
        yield
        return
    from threadpoolctl import ThreadpoolController

    with ThreadpoolController().select(filepath=paths).limit(limits=1):
        yield
