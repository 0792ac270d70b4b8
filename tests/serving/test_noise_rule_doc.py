"""proto/NOISE.md, the noise rule for implementers in other languages: its pure-Python
reference implementation (run from the document) gives numpy's uniforms bit for bit, at frame
0 and after a jump, for seeds and sequence indices of one and of several 32-bit words."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from seqboltz.noise import gibbs_uniforms, sequence_rng
from seqboltz.runtime import FrameStream

DOC = Path(__file__).resolve().parents[2] / "proto" / "NOISE.md"


@pytest.fixture(scope="module")
def reference() -> dict[str, object]:
    text = DOC.read_text()
    (block,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    namespace: dict[str, object] = {}
    exec(compile(block, str(DOC), "exec"), namespace)
    return namespace


@pytest.mark.parametrize(
    ("seed", "index", "frame", "k", "width"),
    [(0, 0, 0, 5, 12), (42, 0, 14, 5, 12), (7, 3, 10**6, 30, 150), (2**64 - 1, 2**33, 999, 2, 3)],
)
def test_the_documented_rule_is_numpys(reference, seed, index, frame, k, width) -> None:
    frame_noise = reference["frame_noise"]
    expected = gibbs_uniforms(sequence_rng(seed, index, frame, k, width), 1, k, width)[0]
    np.testing.assert_array_equal(np.asarray(frame_noise(seed, index, frame, k, width)), expected)


def test_the_document_names_the_current_version() -> None:
    assert f"# The noise rule (version {FrameStream.NOISE_RULE})" in DOC.read_text()
