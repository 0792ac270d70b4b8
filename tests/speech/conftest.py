"""Real speech for the speech tests: CMU ARCTIC ``arctic_a0007.wav`` (4.0 s, 16 kHz, free use),
which ships inside the pysptk package (a dependency of the ``speech`` extra)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from seqboltz.speech import read_audio


@pytest.fixture(scope="session")
def arctic_path() -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pysptk

    return Path(pysptk.util.example_audio_file())


@pytest.fixture(scope="session")
def arctic_8k(arctic_path: Path) -> np.ndarray:
    return read_audio(arctic_path, 8000)
