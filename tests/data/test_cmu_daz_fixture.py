"""The ``cmu_daz_bvh`` motion fixture (the "user's own clips" set in another rig): the archive
matches its pinned sha256, extracts into a fresh cache, and every clip its ``clips.json`` lists
is there byte for byte and parses as the one 43-joint, 120-fps rig, with whole clips held out."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

import numpy as np

from seqboltz.data import MOTION_FIXTURES, motion_fixture_folder
from seqboltz.motion import read_motion_folder


def test_cmu_daz_bvh_extracts_matches_its_sha256_and_every_clip_parses(tmp_path: Path) -> None:
    archive = resources.files("seqboltz.data").joinpath("motion_fixtures/cmu_daz_bvh.tar.xz")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert digest == MOTION_FIXTURES["cmu_daz_bvh"]

    folder = motion_fixture_folder("cmu_daz_bvh", cache_dir=tmp_path)
    assert folder == tmp_path / "motion_fixtures" / f"cmu_daz_bvh-{digest[:12]}" / "cmu_daz_bvh"
    entries = json.loads((folder / "clips.json").read_text(encoding="utf-8"))["clips"]
    by_name = {e["clip"]: e for e in entries}
    assert sorted(by_name) == sorted(p.name for p in folder.glob("*.bvh"))
    for name, e in by_name.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == e["sha256"], name

    clips = read_motion_folder(folder)  # raises on a malformed file or a second skeleton
    assert len(clips) == len(entries) == 76
    assert len(clips[0].skeleton.joints) == 43
    assert clips[0].skeleton.joints[0].name == "hip"
    seconds = 0.0
    for c in clips:
        e = by_name[c.name]
        assert abs(c.fps - 120.0) < 1e-3 and c.n_frames == e["frames"], c.name
        assert np.isfinite(c.frames).all(), c.name
        seconds += (c.n_frames - 1) / c.fps
    assert seconds > 6 * 60

    splits: dict[str, set[str]] = {"train": set(), "val": set(), "test": set()}
    for e in entries:
        splits[e["split"]].add(e["kind"])
    assert sum(e["split"] != "train" for e in entries) >= 10  # whole clips held out
    assert splits["val"] and splits["test"]
    assert splits["val"] | splits["test"] <= splits["train"]
