"""Suite-wide settings: under pytest-xdist each worker gets its share of the cores.

The README's test command runs the suite on ``-n auto`` workers (one per core). Torch and the
BLAS libraries would otherwise start one thread per core in every worker, and the workers
would fight over the same cores; each worker is given ``cores // workers`` threads instead.
"""

from __future__ import annotations

import os


def _threads_per_worker() -> int | None:
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not workers:
        return None
    return max(1, (os.cpu_count() or 1) // int(workers))


_THREADS = _threads_per_worker()
if _THREADS is not None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(_THREADS))
    import torch

    torch.set_num_threads(_THREADS)
