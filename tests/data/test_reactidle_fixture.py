"""The ``reactidle_bvh`` motion fixture (not CMU: people standing idle, a markerless solve on a
Blender rig with position channels, 24 fps): the archive matches its pinned sha256, every clip
its ``clips.json`` lists is there byte for byte and parses as the one rig, whole subjects are
held out, and the rig's copied channels no longer make the residual CRBM's start fail."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from seqboltz.data import MOTION_FIXTURES, motion_fixture_folder
from seqboltz.models import ResidualCRBM
from seqboltz.motion import MotionFeatures, read_motion_folder, resample_clip


def test_reactidle_extracts_matches_its_sha256_and_holds_out_whole_subjects(
    tmp_path: Path,
) -> None:
    archive = resources.files("seqboltz.data").joinpath("motion_fixtures/reactidle_bvh.tar.xz")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert digest == MOTION_FIXTURES["reactidle_bvh"]
    folder = motion_fixture_folder("reactidle_bvh", cache_dir=tmp_path)
    entries = json.loads((folder / "clips.json").read_text(encoding="utf-8"))["clips"]
    by_name = {e["clip"]: e for e in entries}
    assert sorted(by_name) == sorted(p.name for p in folder.glob("*.bvh"))
    for name, e in by_name.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == e["sha256"], name
    clips = read_motion_folder(folder)
    assert len(clips) == 10 and len(clips[0].skeleton.joints) == 19
    assert clips[0].skeleton.joints[0].name == "pelvis"
    for c in clips:
        assert abs(c.fps - 24.0) < 1e-2 and c.n_frames == by_name[c.name]["frames"], c.name
        assert np.isfinite(c.frames).all(), c.name
    assert sum((c.n_frames - 1) / c.fps for c in clips) > 18 * 60
    subjects: dict[str, set[str]] = {"train": set(), "val": set(), "test": set()}
    for e in entries:
        subjects[e["split"]].add(e["subject"])
    assert len(subjects["test"]) == 3 and len(subjects["val"]) == 2
    assert not (subjects["train"] & (subjects["val"] | subjects["test"]))


@pytest.fixture(scope="module")
def idle_features() -> list[np.ndarray]:
    """Two training subjects at 30 fps, as MotionDataModule resamples them (24 → 30: not an
    integer ratio)."""
    folder = motion_fixture_folder("reactidle_bvh")
    clips = [
        c for c in read_motion_folder(folder) if c.name in ("002_genuine.bvh", "000_genuine.bvh")
    ]
    return [resample_clip(c, 30.0) for c in clips]  # type: ignore[misc]


def test_performer_channels_are_dropped_and_the_clipped_linear_start_fits(
    idle_features: list,
) -> None:
    """The rig stores each performer's bone lengths as position channels: constant within a
    clip, different between people, and several copies of one another. As motion features they
    are exactly collinear and the clipped least-squares start could not be built ("too close to
    defective to clip"); either check (per-clip constants, or copies) removes the cause."""
    clips = idle_features
    mf = MotionFeatures(up_axis="auto", forward_axis="auto").fit(clips)
    per_clip = set(mf.report()["per_clip_constant"])
    assert {"neck_Yposition", "shoulder.L_Zposition", "forearm.R_Xposition"} <= per_clip
    assert all(n.endswith("position") for n in per_clip)  # no rotation is a per-clip constant
    copies = MotionFeatures(up_axis="auto", forward_axis="auto", per_clip_tol=0.0).fit(clips)
    assert {"shoulder.L_Zposition", "shoulder.R_Yposition"} <= set(copies.report()["dependent"])
    plain = MotionFeatures(
        up_axis="auto", forward_axis="auto", per_clip_tol=0.0, dependent_tol=0.0
    ).fit(clips)
    for feats, ok in ((mf, True), (copies, True), (plain, False)):
        x = [feats.transform(c) for c in clips]
        model = ResidualCRBM(feats.n_features, 8, order=3, max_radius="auto", stabilise="clip")
        if ok:
            model.init_from_sequences(x)
            assert model.start_radius is not None and 0.99 < model.start_radius < 1.0
        else:
            with pytest.raises(ValueError, match="defective"):
                model.init_from_sequences(x)
    back = mf.inverse_transform(mf.transform(clips[0]), mf.initial_state(clips[0]))
    assert np.isfinite(back.frames).all() and back.n_frames == clips[0].n_frames - 1
