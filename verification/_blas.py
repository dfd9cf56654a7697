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

__all__ = ["scipy_blas_single_thread", "solver_blas_threads", "blas_threads"]

#: Environment variable: BLAS threads of numpy's pool during Lipschitz solves (default 1, see solver_blas_threads).
THREADS_ENV = "VERIFICATION_BLAS_THREADS"


_FOUND: list = []  # [(own, others)] once a BLAS other than numpy's is loaded (libraries stay loaded)
_SCIPY_POOL: list = []  # [threadpoolctl controller of those libraries]
_NUMPY_ONLY: list = []  # [(own, others)] scanned before scipy's BLAS was loaded


def _blas_libraries() -> tuple[list[str], list[str]]:
    """File paths of the loaded BLAS libraries: ``(numpy's own, the others)``; numpy's wheel puts its BLAS in
    "numpy.libs" next to the package (empty first list: numpy has no separate one, or threadpoolctl is missing).

    Scanning the loaded libraries costs about 5 ms, so the answer is kept once both kinds are loaded (a
    shared library is not unloaded); before that it is kept until scipy is imported (the library that brings
    the second BLAS), then scanned again."""
    if _FOUND:
        return _FOUND[0]
    import sys

    if _NUMPY_ONLY and "scipy.linalg" not in sys.modules and "scipy.sparse" not in sys.modules:
        return _NUMPY_ONLY[0]
    try:
        import numpy as np
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return [], []
    paths = [i["filepath"] for i in threadpool_info() if i.get("user_api") == "blas"]
    pkg = Path(np.__file__).resolve().parent
    own_dirs = (pkg, pkg.with_name(pkg.name + ".libs"))
    own = [p for p in paths if any(d in Path(p).resolve().parents for d in own_dirs)]
    others = [p for p in paths if p not in own]
    if own and others:
        _FOUND.append((own, others))
    elif "scipy.linalg" not in sys.modules and "scipy.sparse" not in sys.modules:
        _NUMPY_ONLY[:] = [(own, others)]
    return own, others


def _private_blas_paths() -> list[str]:
    """File paths of the loaded BLAS libraries other than numpy's own, if numpy has its own."""
    own, others = _blas_libraries()
    return others if own else []


@contextmanager
def scipy_blas_single_thread():
    """Within the block: every BLAS other than numpy's runs one thread; numpy's keeps its setting."""
    paths = _private_blas_paths()
    if not paths:
        yield
        return
    if not _SCIPY_POOL:
        from threadpoolctl import ThreadpoolController

        _SCIPY_POOL.append(ThreadpoolController().select(filepath=paths))
    with _SCIPY_POOL[0].limit(limits=1):
        yield


def blas_threads() -> int:
    """Threads for numpy's BLAS pool during Lipschitz solves: ``$VERIFICATION_BLAS_THREADS`` if it is a positive
    integer, else 1."""
    import os

    try:
        n = int(os.environ.get(THREADS_ENV, "1"))
    except ValueError:
        return 1
    return n if n >= 1 else 1


_NUMPY_POOL: list = []  # [threadpoolctl controller of numpy's BLAS]


@contextmanager
def solver_blas_threads():
    """Within the block: numpy's BLAS runs :func:`blas_threads` threads (default 1) and every other BLAS one.

    Chosen for a shared machine.  Measured on 3 Dec 2026 (2 cores, load about 5 from other jobs; LipSDP-Neuron
    with our interior-point method, same certified values):

    * 10-80-80-80-5: 10.8 and 19.3 s with default threads, against 1.17 and 1.08 s with one thread;
    * 32-64x12-10: 23.4 and 37.3 s, against 3.7 and 5.2 s.

    On an idle machine two threads were about 10 % faster (depth-16 MNIST-shaped MLP: 7.7 s against 8.5 s),
    so users with idle cores may set ``VERIFICATION_BLAS_THREADS=2``."""
    own, _ = _blas_libraries()
    with scipy_blas_single_thread():
        if not own:
            yield
            return
        if not _NUMPY_POOL:
            from threadpoolctl import ThreadpoolController

            _NUMPY_POOL.append(ThreadpoolController().select(filepath=own))
        with _NUMPY_POOL[0].limit(limits=blas_threads()):
            yield


_POTRF: list = []  # [callable or None], resolved once


def _numpy_potrf():
    """LAPACK ``dpotrf`` of numpy's own BLAS through ctypes (its thread pool, the one the big products use), or
    ``None`` if numpy has no separate BLAS library, the symbol is missing or the self-check fails."""
    if _POTRF:
        return _POTRF[0]
    _POTRF.append(None)
    try:
        import ctypes

        import numpy as np

        paths = _blas_libraries()[0]
        if len(paths) != 1:
            return None
        lib = ctypes.CDLL(paths[0])
        for name, int_t in (("scipy_dpotrf_64_", ctypes.c_int64), ("dpotrf_64_", ctypes.c_int64)):
            fn = getattr(lib, name, None)
            if fn is not None:
                break
        else:
            return None
        fn.restype = None

        def potrf(a: np.ndarray, upper: bool) -> int:
            n = int_t(a.shape[0])
            info = int_t(0)
            fn(ctypes.c_char_p(b"U" if upper else b"L"), ctypes.byref(n), ctypes.c_void_p(a.ctypes.data),
               ctypes.byref(n), ctypes.byref(info), ctypes.c_size_t(1))
            return int(info.value)

        test = np.asfortranarray([[4.0, 2.0, 0.0], [2.0, 5.0, 3.0], [0.0, 3.0, 10.0]])
        ref = np.linalg.cholesky(test)
        if potrf(test, upper=False) != 0 or not np.allclose(np.tril(test), ref, rtol=0, atol=1e-14):
            return None
        _POTRF[0] = potrf
    except (ImportError, OSError, AttributeError, TypeError, ValueError):
        return None
    return _POTRF[0]


def cholesky_inplace(a, upper: bool) -> int:
    """LAPACK ``dpotrf`` in place on the Fortran-ordered square ``a`` (the ``upper`` or lower triangle is read and
    overwritten); returns LAPACK's ``info`` (0: positive definite).  Uses numpy's BLAS when it is a separate
    library: its threads are the ones the big matrix products already use (scipy's pool is held to one thread,
    see :func:`scipy_blas_single_thread`); n = 4033: 0.30 s instead of 0.53 s on the 2-core machine."""
    import numpy as np
    import scipy.linalg as sla

    if not (a.flags.f_contiguous and a.ndim == 2 and a.shape[0] == a.shape[1] and a.dtype == np.float64):
        raise ValueError("cholesky_inplace needs a square Fortran-ordered float64 array")
    potrf = _numpy_potrf()
    if potrf is not None:
        return potrf(a, upper)
    _, info = sla.lapack.dpotrf(a, lower=0 if upper else 1, clean=0, overwrite_a=1)
    return int(info)


#: Weight entries below which the bound and verification entry points leave the BLAS pools alone: small products
#: run on one thread anyway, and the first library scan of threadpoolctl costs about 50 ms.
LIMIT_FROM_WEIGHTS = 1 << 16


def limit_blas_on_large_nets(fn):
    """Decorator for entry points ``fn(net, ...)``: on networks of at least :data:`LIMIT_FROM_WEIGHTS` weight
    entries the call runs inside :func:`solver_blas_threads` (one BLAS thread by default).  Measured on
    3 Dec 2026 (2 cores, load about 3; ``benchmarks/threads_hotpaths.py``): CROWN on a 784-256x4-10 net took
    111 ms with one thread and 250 ms with two, alpha-CROWN 2.8 s and 6.7 s."""
    import functools

    @functools.wraps(fn)
    def wrapper(net, *args, **kwargs):
        try:
            weights = sum(a.in_features * a.out_features for a in net.affine_layers)
        except (AttributeError, TypeError):  # not a network: the entry point reports it
            return fn(net, *args, **kwargs)
        if weights < LIMIT_FROM_WEIGHTS:
            return fn(net, *args, **kwargs)
        with solver_blas_threads():
            return fn(net, *args, **kwargs)

    return wrapper
