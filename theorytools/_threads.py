"""Thread counts of the numba ``parallel`` kernels, chosen per call for a shared machine.

Measured on 3 Dec 2026 (2 cores; ``benchmarks/threads_hotpaths.py``), numba's two threads against one: at load
average 3–5 (other jobs on both cores) the NTK of 4 inputs took 127 ms against 0.24 ms (the threads hand over
work while other jobs hold the cores), the 1000 x 100 dense NTK 0.40–0.46 s against 0.25 s, an 8-image CNTK
181–232 ms against 14–19 ms; at load 2 (one other job) two threads were 1.3–1.4x faster on the large kernels and
equal on the tiny one.  So a kernel runs on one thread unless its work is large; a large one uses every core
while the 1-minute load average is at most ``cores + 0.5`` (our own process counts about 1), and fewer above.
``THEORYTOOLS_NUM_THREADS`` overrides the choice.  Results do not depend on the thread count: every entry is a
fixed-order sum of its own inputs.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

__all__ = ["kernel_threads", "numba_threads", "THREADS_ENV", "PARALLEL_WORK"]

#: Environment variable: a fixed number of threads for the numba kernels (default: chosen per call).
THREADS_ENV = "THEORYTOOLS_NUM_THREADS"
#: Entry-layer updates below which a kernel runs on one thread.
PARALLEL_WORK = 1 << 22


def kernel_threads(work: int) -> int:
    """Threads for a kernel call doing about ``work`` entry updates (see the module docstring)."""
    import numba

    cores = int(numba.config.NUMBA_NUM_THREADS)
    env = os.environ.get(THREADS_ENV, "").strip()
    if env:
        try:
            return max(1, min(cores, int(env)))
        except ValueError:
            pass
    if cores <= 1 or work < PARALLEL_WORK:
        return 1
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover - platforms without a load average
        return 1
    if load <= cores + 0.5:  # our own process counts about 1: at most one other busy job on the cores
        return cores
    return max(1, min(cores, int(2 * cores - load)))


@contextmanager
def numba_threads(work: int) -> Iterator[int]:
    """Within the block numba's parallel kernels use :func:`kernel_threads` threads (restored afterwards)."""
    import numba

    n = kernel_threads(work)
    old = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield n
    finally:
        numba.set_num_threads(old)


def _rows(x) -> int:
    import numpy as np

    shape = np.shape(x)
    return int(shape[0]) if shape else 1


def _per_row(x) -> int:
    import numpy as np

    shape = np.shape(x)
    return int(np.prod(shape[1:])) if len(shape) > 1 else 1


def dense_work(layers, x1, x2=None) -> int:
    """Entry updates of a kernel over ``len(layers)`` layers between the rows of ``x1`` and ``x2``."""
    return _rows(x1) * _rows(x1 if x2 is None else x2) * max(1, len(layers))


def image_work(layers, x1, x2=None) -> int:
    """An upper estimate for image kernels: every pair of positions of every pair of images, per layer."""
    import numpy as np

    shape = np.shape(x1)
    positions = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return dense_work(layers, x1, x2) * positions * positions
