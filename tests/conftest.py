"""Suite-wide settings: under pytest-xdist each worker gets its share of the cores.

The README's test command runs the suite on ``-n auto`` workers (one per core). Torch and the
BLAS libraries would otherwise start one thread per core in every worker, and the workers
would fight over the same cores; each worker is given ``cores // workers`` threads instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


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


def _tiny_tts_artifact(folder: Path) -> Path:
    """A text-to-speech artifact in seconds (tests/runtime/test_speak.py, tests/serving): a
    residual CRBM (H 8, order 2, no visible noise) started at the least-squares fit on one
    ARCTIC utterance (pysptk's example, 8 kHz) with its phones spread evenly, no training; the
    voice (duration model, front end, WORLD statistics) in the checkpoint's data statistics, as
    RBMSystem writes them for TTSDataModule; exported by ``seqboltz export``."""
    import warnings

    import numpy as np
    import torch

    from seqboltz.cli import main
    from seqboltz.models import ResidualCRBM, save_model
    from seqboltz.speech import WorldFeatures, read_audio
    from seqboltz.speech._duration import DurationModel
    from seqboltz.speech._text import frame_features, text_to_utterance
    from seqboltz.speech._voice import voice_stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pysptk

    order = 2
    wf = WorldFeatures(sample_rate=8000)
    raw = wf.analyze(read_audio(pysptk.util.example_audio_file(), 8000))
    utt = text_to_utterance("And you always want to see it in the superlative degree.")
    n = len(utt.phones)
    durations = np.diff(np.linspace(0, raw.shape[0], n + 1).round()).astype(np.int64)
    wf.fit([raw])
    z = wf.transform(raw)
    controls = frame_features(utt, durations)
    torch.manual_seed(0)
    model = ResidualCRBM(
        wf.dim, 8, order, n_controls=controls.shape[1], ridge=1.0, start_history_noise=1.0,
        train_linear=False, visible_noise=0.0,
    ).double()  # fmt: skip
    model.init_from_sequences([z], [controls])
    ckpt = save_model(model, folder / "tts.ckpt")
    entry = torch.load(ckpt, weights_only=True)
    stats = voice_stats(wf, order, DurationModel().fit([utt], [durations]), z[:order])
    entry["seqboltz"]["data"] = {"class_path": "seqboltz.data.TTSDataModule", "stats": stats}
    torch.save(entry, ckpt)
    out = folder / "tts.onnx"
    argv = ["export", str(ckpt), "--out", str(out), "--gibbs-steps", "2", "--no-data"]
    assert main(argv) == 0
    ckpt.unlink()
    return out


@pytest.fixture(scope="session")
def tiny_tts_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`_tiny_tts_artifact` once per test process."""
    return _tiny_tts_artifact(tmp_path_factory.mktemp("tts"))


ARCTIC_A0007 = "And you always want to see it in the superlative degree."


@pytest.fixture(scope="session")
def voice_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A voice as a user would bring one: two 16-kHz recordings with transcripts (pysptk's
    ARCTIC a0007 and its first 2.2 s), one recording without, and the transcript file
    ``text.txt`` (a comment and a line for a file that does not exist included); for
    :class:`~seqboltz.data.TTSDataModule` (tests/data/test_tts.py, tests/eval,
    tests/training)."""
    import warnings

    from seqboltz.speech import read_audio, write_wav

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pysptk

    arctic = read_audio(pysptk.util.example_audio_file())
    root = tmp_path_factory.mktemp("voice")
    write_wav(root / "a0007.wav", arctic, 16000)
    write_wav(root / "sub" / "a0007_part.wav", arctic[: int(2.2 * 16000)], 16000)
    write_wav(root / "untranscribed.wav", arctic[:16000], 16000)
    (root / "text.txt").write_text(
        f"; my voice\na0007: {ARCTIC_A0007}\nsub/a0007_part: And you always want to see it.\n"
        "beep: [a tone]\n"
    )
    return root


@pytest.fixture(scope="session")
def random_walk_clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of three BVH clips (400, 300 and 260 frames at 120 fps) of a four-joint rig
    whose channels drift as smooth random walks: a motion DataModule's data in a second, for
    tests of what is built on a trained first layer (tests/data/test_hidden.py,
    tests/training/test_stack.py)."""
    import numpy as np

    from seqboltz.motion import Joint, MotionClip, Skeleton, write_bvh

    folder = tmp_path_factory.mktemp("random_walk_clips")
    rot = ("Zrotation", "Xrotation", "Yrotation")
    sk = Skeleton(
        (
            Joint("Hips", -1, (0, 0, 0), ("Xposition", "Yposition", "Zposition", *rot)),
            Joint("Spine", 0, (0, 10, 0), rot),
            Joint("Leg", 0, (4, -2, 0), rot),
            Joint("Shin", 2, (0, -20, 0), rot, (0, -20, 0)),
        )
    )
    for seed, n in enumerate((400, 300, 260)):
        steps = np.random.default_rng(seed).normal(size=(n, sk.n_channels))
        frames = np.cumsum(np.cumsum(steps, axis=0) * 0.01, axis=0)
        frames[:, 1] += 90.0
        write_bvh(folder / f"clip{seed}.bvh", MotionClip(sk, frames, 1 / 120, f"clip{seed}"))
    return folder
