"""Offline batch synthesis: shards equal one run byte for byte, a killed run resumes without a
corrupt file, formats need the right model, bad requests are refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from seqboltz.runtime import ArtifactError, load_artifact
from seqboltz.runtime._synthesize import (
    SynthesisJob,
    parse_shard,
    parse_style,
    run_synthesis,
    style_frames,
)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("seq_*"))}


def test_shards_equal_one_run(crbm_path, tmp_path: Path) -> None:
    _, model = crbm_path
    common = {"model": str(model), "count": 11, "frames": 30, "seed": 5, "chunk": 3}
    whole = run_synthesis(SynthesisJob(out=str(tmp_path / "all"), **common), progress=False)
    assert [f["index"] for f in whole["files"]] == list(range(11))
    for i in range(2):
        job = SynthesisJob(out=str(tmp_path / "sharded"), shard=(i, 2), **common)
        run_synthesis(job, workers=2, progress=False)
    reference = _files(tmp_path / "all")
    assert len(reference) == 11 and _files(tmp_path / "sharded") == reference
    # files hold data-unit frames of the right sequences
    art = load_artifact(model)
    expected = art.generate(30, seed=5, count=1, sequence_indices=[7], data_units=True)[0]
    np.testing.assert_array_equal(np.load(tmp_path / "all" / "seq_000007.npy"), expected)
    manifest = json.loads((tmp_path / "sharded" / "manifest.shard-1-of-2.json").read_text())
    assert [f["index"] for f in manifest["files"]] == [3, 4, 5, 9, 10]
    assert len(manifest["model_sha256"]) == 64 and manifest["seed"] == 5


def test_killed_run_resumes(crbm_path, tmp_path: Path) -> None:
    _, model = crbm_path
    out = tmp_path / "out"
    args = ["--model", str(model), "--count", "100", "--frames", "300", "--seed", "2"]
    cmd = [sys.executable, "-m", "seqboltz.cli", "synthesize", *args, "--out", str(out)]
    proc = subprocess.Popen(
        [*cmd, "--chunk", "1", "--workers", "1", "--no-progress"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("seq_*.npy"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = sorted(out.glob("seq_*.npy"))
    assert 3 <= len(done) < 100, "the run was not interrupted half-way"
    for path in done:  # whatever exists is complete
        assert np.load(path).shape == (300, 8)
    job = SynthesisJob(model=str(model), out=str(out), count=100, frames=300, seed=2, chunk=1)
    run_synthesis(job, workers=1, progress=False)
    fresh = tmp_path / "fresh"
    run_synthesis(
        SynthesisJob(model=str(model), out=str(fresh), count=100, frames=300, seed=2, chunk=1),
        workers=2,
        progress=False,
    )
    assert _files(out) == _files(fresh)


def test_plot_and_styled_model(fcrbm_path, tmp_path: Path) -> None:
    _, model = fcrbm_path
    job = SynthesisJob(
        model=str(model), out=str(tmp_path), count=2, frames=20, style=(0.5,), plot=True
    )
    run_synthesis(job, progress=False)
    assert (tmp_path / "seq_000001.png").stat().st_size > 1000
    assert np.load(tmp_path / "seq_000001.npy").shape == (20, 8)


def test_style_schedule_changes_the_style_mid_sequence(fcrbm_path, tmp_path: Path) -> None:
    _, model = fcrbm_path
    schedule = parse_style("-1@0; 1.5@12")
    assert schedule == ((0, (-1.0,)), (12, (1.5,)))
    np.testing.assert_array_equal(style_frames(schedule, 20)[:, 0], [-1.0] * 12 + [1.5] * 8)
    assert parse_style("0.25") == ((0, (0.25,)),)
    job = SynthesisJob(model=str(model), out=str(tmp_path), count=3, frames=20, style=schedule)
    manifest = run_synthesis(job, progress=False)
    assert manifest["style"] == [
        {"start_frame": 0, "values": [-1.0]},
        {"start_frame": 12, "values": [1.5]},
    ]
    art = load_artifact(model)
    per_frame = np.repeat(style_frames(schedule, 20)[None], 3, axis=0)
    expected = art.generate(20, seed=0, count=3, style=per_frame, sequence_indices=[0, 1, 2])
    for i in range(3):
        got = np.load(tmp_path / f"seq_{i:06d}.npy")
        np.testing.assert_array_equal(got, art.to_data_units(expected[i]))
    constant = art.generate(20, seed=0, count=3, style=np.array([-1.0]), sequence_indices=[0, 1, 2])
    np.testing.assert_array_equal(constant[:, :12], expected[:, :12])  # same until the change
    assert not np.array_equal(constant[:, 12:], expected[:, 12:])
    for text, message in (
        ("1@5", "must start at frame 0"),
        ("1@0;2@0", "increasing frames"),
        ("1@0;2,3@4", "same number of values"),
        ("fast", "must be numbers"),
        ("nan", "finite"),
    ):
        with pytest.raises(ArtifactError, match=message):
            parse_style(text)
    late = SynthesisJob(
        model=str(model), out=str(tmp_path / "x"), count=1, frames=10, style=schedule
    )
    with pytest.raises(ArtifactError, match="starts at frame 12, beyond the 10 frames"):
        run_synthesis(late, progress=False)


def test_bad_jobs(crbm_path, fcrbm_path, tmp_path: Path) -> None:
    _, model = crbm_path
    base = {"model": str(model), "out": str(tmp_path), "count": 2, "frames": 5}
    with pytest.raises(ArtifactError, match="BVH needs a motion model"):
        run_synthesis(SynthesisJob(**base, fmt="bvh"), progress=False)
    with pytest.raises(ArtifactError, match="WAV needs a speech model"):
        run_synthesis(SynthesisJob(**base, fmt="wav"), progress=False)
    with pytest.raises(ArtifactError, match="count, frames and chunk"):
        run_synthesis(SynthesisJob(**{**base, "count": 0}), progress=False)
    with pytest.raises(ArtifactError, match="--style has 1 value"):
        run_synthesis(SynthesisJob(**base, style=(1.0,)), progress=False)
    with pytest.raises(ArtifactError, match="--start needs a motion model"):
        run_synthesis(SynthesisJob(**base, start=str(tmp_path / "x.bvh")), progress=False)
    styled = {**base, "model": str(fcrbm_path[1])}
    with pytest.raises(ArtifactError, match="needs --style with 1 value"):
        run_synthesis(SynthesisJob(**styled), progress=False)
    for text in ("2/2", "a/b", "1"):
        with pytest.raises(ArtifactError, match="--shard"):
            parse_shard(text)
    assert not list(tmp_path.glob("seq_*"))  # nothing written by refused jobs


def test_cli_reports_errors(crbm_path, tmp_path: Path) -> None:
    _, model = crbm_path
    cmd = [sys.executable, "-m", "seqboltz.cli", "synthesize", "--model", str(model)]
    out = subprocess.run(
        [*cmd, "--count", "2", "--frames", "3", "--out", str(tmp_path), "--shard", "3/2"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "--shard i/n needs 0 <= i < n" in out.stderr
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "seqboltz.cli",
            "synthesize",
            "--model",
            str(bad),
            "--count=1",
            "--frames=1",
            f"--out={tmp_path}",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "not a readable ONNX file" in out.stderr


def test_diverged_sequences_stop_and_the_others_are_written(
    diverging_path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real exported model that blows up near frame 342, at a frame that depends on each
    sequence's noise: with one frame more than the earliest divergence, those sequences stop
    (no file, a manifest entry and one line each, exit status 1) and the others are written,
    as the runtime generates them."""
    from seqboltz.runtime._cli import synthesize_main

    _, model = diverging_path
    art = load_artifact(model)
    probe = art.frame_stream(seed=0, count=8).run(art.step, 400, stop_diverged=True)
    frames = min(error.frame for error in probe.diverged.values()) + 1
    run = art.frame_stream(seed=0, count=8).run(art.step, frames, stop_diverged=True)
    stopped = {row: error.frame for row, error in run.diverged.items()}
    assert 0 < len(stopped) < 8  # a mix: the test needs both kinds
    out = tmp_path / "out"
    args = ["--model", str(model), "--count", "8", "--frames", str(frames), "--chunk", "3"]
    status = synthesize_main([*args, "--out", str(out), "--workers", "2", "--no-progress"])
    assert status == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"seqboltz synthesize: sequence {i} stopped: model diverged at frame {frame} "
        "('diverging' produced NaN or infinity)"
        for i, frame in sorted(stopped.items())
    ]
    manifest = json.loads((out / "manifest.shard-0-of-1.json").read_text())
    assert [d["index"] for d in manifest["diverged"]] == sorted(stopped)
    assert [d["frame"] for d in manifest["diverged"]] == [stopped[i] for i in sorted(stopped)]
    written = sorted(set(range(8)) - set(stopped))
    assert [f["index"] for f in manifest["files"]] == written
    assert sorted(p.name for p in out.glob("seq_*")) == [f"seq_{i:06d}.npy" for i in written]
    for i in written:
        np.testing.assert_array_equal(np.load(out / f"seq_{i:06d}.npy"), run.frames[i])


EMBEDDED = Path(__file__).resolve().parents[2] / "serving" / "models" / "motion_crbm.onnx"


def test_motion_continues_a_users_bvh_and_draws_the_body(tmp_path: Path) -> None:
    import dataclasses

    from seqboltz.motion import read_bvh, write_bvh

    first = SynthesisJob(
        model=str(EMBEDDED), out=str(tmp_path / "a"), count=1, frames=40, fmt="bvh", plot=True
    )
    run_synthesis(first, progress=False)
    for name in ("seq_000000_body_filmstrip.png", "seq_000000_body.gif"):
        assert (tmp_path / "a" / name).stat().st_size > 1000
    # the same clip moved 1000 units along the ground: a continuation starts where it stands
    clip = read_bvh(tmp_path / "a" / "seq_000000.bvh")
    root = clip.skeleton.joints[0]
    x = root.channels.index("Xposition")
    frames = clip.frames.copy()
    frames[:, x] += 1000.0
    write_bvh(tmp_path / "moved.bvh", dataclasses.replace(clip, frames=frames))
    job = dataclasses.replace(first, out=str(tmp_path / "b"), start=str(tmp_path / "moved.bvh"))
    manifest = run_synthesis(job, progress=False)
    assert manifest["start"]["file"] == str(tmp_path / "moved.bvh")
    cont = read_bvh(tmp_path / "b" / "seq_000000.bvh").local_translations()[:, 0]
    last = clip.local_translations()[-1, 0] + np.eye(3)[0] * 1000.0
    step = np.linalg.norm(np.diff(clip.local_translations()[:, 0], axis=0), axis=1).mean()
    assert np.linalg.norm(cont[0] - last) < 5 * step + 1e-6
    with pytest.raises(ArtifactError, match=r"--start .*manifest.*expected HIERARCHY"):
        bad = dataclasses.replace(job, start=str(tmp_path / "a" / "manifest.shard-0-of-1.json"))
        run_synthesis(bad, progress=False)


def test_bvh_is_written_at_the_users_frame_rate(tmp_path: Path) -> None:
    """``--fps`` writes BVH at another rate (the same motion, resampled by slerp); ``source``
    is the rate of the files the model was trained on (the embedded model's CMU AMC: 120)."""
    import dataclasses

    from seqboltz.motion import read_bvh

    job = SynthesisJob(model=str(EMBEDDED), out=str(tmp_path / "m"), count=1, frames=31, fmt="bvh")
    run_synthesis(job, progress=False)
    model_rate = read_bvh(tmp_path / "m" / "seq_000000.bvh")
    at24 = dataclasses.replace(job, out=str(tmp_path / "24"), fps=24)
    assert run_synthesis(at24, progress=False)["bvh_fps"] == 24.0
    clip = read_bvh(tmp_path / "24" / "seq_000000.bvh")
    assert clip.fps == pytest.approx(24.0, rel=1e-6) and clip.n_frames == 25  # 1 s either way
    # the same motion: the last frame (1 s in) is the model-rate clip's last frame
    np.testing.assert_allclose(
        clip.local_translations()[-1], model_rate.local_translations()[-1], atol=1e-6
    )
    source = dataclasses.replace(job, out=str(tmp_path / "src"), fps="source")
    assert run_synthesis(source, progress=False)["bvh_fps"] == 120.0
    assert read_bvh(tmp_path / "src" / "seq_000000.bvh").n_frames == 121
    for bad, match in (
        (dataclasses.replace(job, fmt="npy", fps=24), "frame rate of BVH"),
        (dataclasses.replace(job, fps="fast"), "number or 'source'"),
        (dataclasses.replace(job, fps=0), "between 1 and 1000"),
    ):
        with pytest.raises(ArtifactError, match=match):
            run_synthesis(bad, progress=False)


def test_plant_feet_holds_the_feet_the_model_slides(tmp_path: Path) -> None:
    """``--plant-feet``: the embedded model's BVH, cleaned on the floor its card records from
    the training clips, slides its feet on that floor less than half as fast (the evaluation's
    own measure), at the model's rate and at another; the manifest says so; anything but BVH
    is refused in one line."""
    import dataclasses

    from seqboltz.eval._motion_metrics import foot_skating
    from seqboltz.motion import MotionFeatures, foot_joints, forward_kinematics, read_bvh

    features = MotionFeatures.from_dict(load_artifact(EMBEDDED).card["features"])
    assert features.contact is not None  # serving/models/add_contact.py
    floor, threshold = features.contact
    job = SynthesisJob(model=str(EMBEDDED), out=str(tmp_path / "a"), count=2, frames=300, fmt="bvh")
    planted = dataclasses.replace(job, out=str(tmp_path / "b"), plant_feet=True)
    assert run_synthesis(job, progress=False)["plant_feet"] is False
    assert run_synthesis(planted, progress=False)["plant_feet"] is True

    def skating(path: Path) -> float:
        clip = read_bvh(path)
        pos = forward_kinematics(clip.skeleton, clip.frames)[:, foot_joints(clip.skeleton.names)]
        return foot_skating(pos, clip.fps, floor, threshold)[0]

    for name in ("seq_000000.bvh", "seq_000001.bvh"):
        before, after = skating(tmp_path / "a" / name), skating(tmp_path / "b" / name)
        assert after < 0.5 * before, (name, before, after)
    at24 = dataclasses.replace(planted, out=str(tmp_path / "c"), count=1, fps=24)
    run_synthesis(at24, progress=False)
    assert read_bvh(tmp_path / "c" / "seq_000000.bvh").fps == pytest.approx(24.0, rel=1e-6)
    with pytest.raises(ArtifactError, match="--plant-feet cleans up BVH files"):
        run_synthesis(dataclasses.replace(planted, fmt="npy"), progress=False)
