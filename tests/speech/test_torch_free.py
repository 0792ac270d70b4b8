"""Speech output without torch: with ``torch`` blocked in ``sys.modules``, the service and the
runtime import, and ``seqboltz synthesize --format wav`` writes WAVs from a WORLD and a log-mel
model (the artifacts are exported here, with torch, beforehand)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from seqboltz.speech import LogMelFeatures, SpeechFeatures, WorldFeatures

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

ORDER, FRAMES = 2, 40

# Runs in a fresh interpreter, where torch, torchaudio and lightning cannot be imported.
BLOCKED = f"""
import sys
for name in ("torch", "torchaudio", "lightning"):
    sys.modules[name] = None
import serving.server
import seqboltz.runtime
from seqboltz.cli import main

status = 0
for model, out in zip(sys.argv[1::2], sys.argv[2::2]):
    status |= main(["synthesize", "--model", model, "--count", "2", "--frames", "{FRAMES}",
                    "--out", out, "--format", "wav", "--workers", "1", "--no-progress"])
loaded = sorted(m for m, v in sys.modules.items() if v is not None and m.split(".")[0] in
                ("torch", "torchaudio", "lightning"))
assert not loaded, loaded
sys.exit(status)
"""


def _artifacts(utterance: np.ndarray, folder: Path) -> dict[str, Path]:
    """A WORLD and a log-mel artifact of one tiny CRBM, exported once.

    The export is the slow part, so one graph serves both: the log-mel features get as many
    bands as a WORLD frame has values, and the graph is saved again with the log-mel card.
    """
    from seqboltz.export import CARD_KEY, build_card, export_onnx
    from seqboltz.models import ConditionalRBM

    world = WorldFeatures(sample_rate=8000)
    kinds: dict[str, SpeechFeatures] = {
        "world": world,
        "logmel": LogMelFeatures(sample_rate=8000, n_mels=world.dim, griffin_lim_iters=8),
    }
    torch.manual_seed(0)
    model = ConditionalRBM(world.dim, 8, ORDER, init_std=0.05).double()
    paths: dict[str, Path] = {}
    for name, features in kinds.items():
        raw = features.analyze(utterance)
        features.fit([raw])
        card = build_card(
            model,
            name=name,
            gibbs_steps=3,
            data={"stats": features.to_dict()},
            default_seed_frames=features.transform(raw[100 : 100 + ORDER]),
        )
        paths[name] = folder / f"{name}.onnx"
        if name == "world":
            export_onnx(model, paths[name], card, gibbs_steps=3)
            continue
        proto = onnx.load(str(paths["world"]))
        (entry,) = [p for p in proto.metadata_props if p.key == CARD_KEY]
        entry.value = json.dumps(card, sort_keys=True)
        onnx.save(proto, str(paths[name]))
    return paths


@pytest.mark.slow  # one export (seconds) and a fresh interpreter
def test_wav_without_torch(tmp_path: Path, arctic_8k: np.ndarray) -> None:
    paths = _artifacts(arctic_8k[:16000], tmp_path)
    argv = [x for name, path in paths.items() for x in (str(path), str(tmp_path / name))]
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED, *argv],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for name in paths:
        manifest = json.loads((tmp_path / name / "manifest.shard-0-of-1.json").read_text())
        assert [f["file"] for f in manifest["files"]] == ["seq_000000.wav", "seq_000001.wav"]
        wave, rate = sf.read(tmp_path / name / "seq_000000.wav")
        assert rate == 8000
        # 40 frames of 5 ms: about 0.2 s (WORLD and Griffin-Lim frame the ends differently)
        assert abs(len(wave) / rate - FRAMES * 0.005) < 0.01, (name, len(wave))
        assert np.isfinite(wave).all() and np.sqrt(np.mean(wave**2)) > 1e-4, name
