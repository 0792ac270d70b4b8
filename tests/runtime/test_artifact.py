"""The torch-free runtime: same frames as torch generation, alone or batched, streamed or not;
clear errors for bad artifacts and bad requests; imports without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from seqboltz.export import CARD_KEY
from seqboltz.runtime import ArtifactError, BadRequest, load_artifact

D, H, ORDER, K = 8, 12, 3, 5


def test_torch_runtime_and_batch_agree(crbm_path) -> None:
    """200 frames of 64 sequences: torch, the runtime in one batch, and each sequence alone."""
    model, path = crbm_path
    art = load_artifact(path)
    seeds = np.random.default_rng(0).normal(size=(64, ORDER, D))
    batch = art.generate(200, seed=11, seed_frames=seeds)
    expected = model.generate(torch.from_numpy(seeds), 200, K, seed=11).double().numpy()
    assert batch.shape == (64, 200, D)
    assert np.isfinite(batch).all() and np.abs(batch).max() < 100  # a bounded test model
    assert np.abs(batch - expected).max() <= 1e-4
    for i in (0, 17, 63):
        alone = art.generate(200, seed=11, seed_frames=seeds[i : i + 1], sequence_indices=[i])
        np.testing.assert_array_equal(alone[0], batch[i])
    other = art.generate(5, seed=12, seed_frames=seeds[:2])
    assert not np.allclose(other, batch[:2, :5])


def test_stream_and_data_units(crbm_path) -> None:
    _, path = crbm_path
    art = load_artifact(path, threads=2)
    frames = list(art.stream(6, seed=3, count=2))
    assert len(frames) == 6 and frames[0].shape == (2, D)
    np.testing.assert_array_equal(np.stack(frames, 1), art.generate(6, seed=3, count=2))
    # the card's default seed and its (identity) statistics
    np.testing.assert_array_equal(art.default_seed_frames[0], np.arange(D) / 10)
    np.testing.assert_array_equal(art.to_data_units(frames[0]), frames[0])


def test_style_changes_midsequence_like_torch(fcrbm_path) -> None:
    model, path = fcrbm_path
    art = load_artifact(path)
    style = np.concatenate([np.full(10, -1.0), np.full(10, 1.5)])[None, :, None].repeat(3, 0)
    got = art.generate(20, seed=4, count=3, style=style)
    seeds = torch.zeros(3, ORDER, D, dtype=torch.float64)
    expected = model.generate(seeds, 20, K, style=torch.from_numpy(style), seed=4)
    assert np.abs(got - expected.double().numpy()).max() <= 1e-4
    constant = art.generate(20, seed=4, count=3, style=np.array([0.5]))
    assert constant.shape == (3, 20, D)


def test_bad_requests(crbm_path, fcrbm_path) -> None:
    """Requests an artifact cannot serve: :class:`BadRequest` (INVALID_ARGUMENT when served)."""
    art = load_artifact(crbm_path[1])
    with pytest.raises(BadRequest, match=r"seed frames must have shape \(batch, >= 3, 8\)"):
        art.generate(2, seed_frames=np.zeros((2, 3, 7)))
    with pytest.raises(BadRequest, match="need at least 3 seed frames"):
        art.generate(2, seed_frames=np.zeros((2, 2, D)))
    with pytest.raises(BadRequest, match="NaN"):
        art.generate(2, seed_frames=np.full((1, 3, D), np.nan))
    with pytest.raises(BadRequest, match="takes no style"):
        art.generate(2, style=np.zeros(1))
    with pytest.raises(BadRequest, match="n_frames"):
        art.generate(0)
    styled = load_artifact(fcrbm_path[1])
    with pytest.raises(BadRequest, match="needs style of size 1"):
        styled.generate(2)
    with pytest.raises(BadRequest, match="style must have shape"):
        styled.generate(2, count=2, style=np.zeros((2, 3)))


def _rewrite_card(src: Path, dst: Path, change) -> Path:
    proto = onnx.load(str(src))
    props = {p.key: p.value for p in proto.metadata_props}
    del proto.metadata_props[:]
    card = json.loads(props[CARD_KEY])
    value = change(card)
    if value is not None:
        entry = proto.metadata_props.add()
        entry.key, entry.value = CARD_KEY, value
    onnx.save_model(proto, str(dst))
    return dst


def test_bad_artifacts(crbm_path, tmp_path: Path) -> None:
    good = crbm_path[1]
    with pytest.raises(ArtifactError, match="no such model file"):
        load_artifact(tmp_path / "missing.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage" * 50)
    with pytest.raises(ArtifactError, match=r"corrupt\.onnx"):
        load_artifact(corrupt)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ArtifactError, match=r"truncated\.onnx"):
        load_artifact(truncated)
    plain = _rewrite_card(good, tmp_path / "plain.onnx", lambda card: None)
    with pytest.raises(ArtifactError, match="not a seqboltz artifact"):
        load_artifact(plain)

    def drop_order(card: dict) -> str:
        del card["order"]
        return json.dumps(card)

    with pytest.raises(ArtifactError, match=r"lacks field\(s\) \['order'\]"):
        load_artifact(_rewrite_card(good, tmp_path / "noorder.onnx", drop_order))

    def future(card: dict) -> str:
        card["schema_version"] = 99
        return json.dumps(card)

    with pytest.raises(ArtifactError, match="schema 99"):
        load_artifact(_rewrite_card(good, tmp_path / "future.onnx", future))
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load_artifact(_rewrite_card(good, tmp_path / "json.onnx", lambda card: "{oops"))

    def styled(card: dict) -> str:
        card["conditioning"] = {"style": {"size": 1, "meaning": "x"}}
        return json.dumps(card)

    with pytest.raises(ArtifactError, match="do not match the card"):
        load_artifact(_rewrite_card(good, tmp_path / "styled.onnx", styled))


def test_runtime_imports_and_samples_without_torch(crbm_path, tmp_path: Path) -> None:
    _, path = crbm_path
    out_dir = tmp_path / "synth"
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "sys.modules['lightning'] = None\n"
        "from seqboltz.runtime import load_artifact\n"
        f"art = load_artifact({str(path)!r})\n"
        "x = art.generate(4, seed=1, count=2)\n"
        "assert x.shape == (2, 4, 8)\n"
        "from seqboltz.runtime._synthesize import SynthesisJob, run_synthesis\n"
        f"job = SynthesisJob(model={str(path)!r}, out={str(out_dir)!r}, count=3, frames=4)\n"
        "run_synthesis(job, workers=2, progress=False)\n"
        "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"
    assert len(list(out_dir.glob("seq_*.npy"))) == 3


def test_the_style_range_on_the_card_clips_every_request(tmp_path: Path) -> None:
    """The embedded speed-steerable model carries the styles it can be trusted with
    (``conditioning.style.range``: with its calibration curve, the speeds its curve's inputs,
    the training speeds' 1st to 99th percentile, made on the validation clips); a request
    beyond it generates what the bound does, in every path (one step, blocks), and a card whose
    range does not fit is refused at load in one line."""
    path = Path(__file__).resolve().parents[2] / "serving" / "models" / "motion_speed.onnx"
    art = load_artifact(path)
    assert art.style_range is not None
    low, high = art.style_range
    trusted = art.card["conditioning"]["style"]["range"]
    stats = art.card["conditioning"]["style"]["stats"]
    curve = trusted["curve"]
    assert curve["inputs"][0] == pytest.approx(stats["low"][0])
    assert curve["inputs"][-1] == pytest.approx(stats["high"][0])
    assert (low[0], high[0]) == (curve["requests"][0], curve["requests"][-1])
    assert np.all(np.diff(curve["requests"]) > 0)
    at_bound = art.generate(70, style=high, seed=3)
    assert np.array_equal(art.generate(70, style=high + 2.0, seed=3), at_bound)
    assert not np.array_equal(art.generate(70, style=high - 0.5, seed=3), at_bound)
    history = np.zeros((1, art.order, art.frame_size))
    noise = np.random.default_rng(0).random((1, art.gibbs_steps, art.noise_width))
    one = art.step(history, noise, np.array([[low[0] - 5.0]]))
    assert np.array_equal(one, art.step(history, noise, np.array([[low[0]]])))
    proto = onnx.load(str(path))
    card = json.loads(next(p.value for p in proto.metadata_props if p.key == CARD_KEY))
    card["conditioning"]["style"]["range"]["min"] = [1.0, 2.0]
    for p in proto.metadata_props:
        if p.key == CARD_KEY:
            p.value = json.dumps(card)
    bad = tmp_path / "bad.onnx"
    onnx.save(proto, str(bad))
    with pytest.raises(ArtifactError, match="style range must be 1 \\(min, max\\) pairs"):
        load_artifact(bad)
