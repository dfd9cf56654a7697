"""Many verification instances at once: the VNN-COMP ``instances.csv`` layout run on a Dask cluster.

``read_instances(csv)`` reads the instances, ``run_batch(instances, out_dir, workers=..., scheduler=...)``
verifies those not yet finished in ``out_dir`` (resumable) and writes VNN-COMP result files and a summary;
``verify_instance`` is the task a worker runs.  :mod:`verification.batch.lipschitz_jobs` runs Lipschitz jobs
over many models on the same machinery (``verification batch --lipschitz``).  Dask is imported only when a
batch starts.
"""

from __future__ import annotations

from verification.batch.instances import Instance, read_instances
from verification.batch.results import SCORE_CORRECT, SCORE_WRONG, load_record, score
from verification.batch.runner import BatchRun, run_batch
from verification.batch.worker import verify_instance

__all__ = ["Instance", "read_instances", "run_batch", "BatchRun", "verify_instance", "score", "load_record",
           "SCORE_CORRECT", "SCORE_WRONG"]
