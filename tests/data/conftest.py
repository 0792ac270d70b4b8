"""Fixtures for the data tests. The real MNIST-5k file is fetched once per session into
:func:`seqboltz.data.default_cache_dir` (``$SEQBOLTZ_CACHE_DIR`` to put it elsewhere)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seqboltz.data import default_cache_dir, fetch_mnist5k, load_mnist5k


@pytest.fixture(scope="session")
def mnist5k_path() -> Path:
    return fetch_mnist5k(default_cache_dir())


@pytest.fixture(scope="session")
def mnist5k(mnist5k_path: Path) -> tuple[np.ndarray, np.ndarray]:
    return load_mnist5k(mnist5k_path.parent)
