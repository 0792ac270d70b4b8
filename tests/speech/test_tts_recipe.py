"""``recipes/tts_rcrbm.yaml`` budgets training in optimizer steps and keeps the final model;
through ``seqboltz fit`` on a three-prompt voice, validation counts steps across epochs and
``last.ckpt`` holds the last validated step.

Why steps: the hybrid's network (``FitConditionalMean``) leaves its plateau after thousands of
Adam steps, whatever an epoch holds; 10 epochs were enough on the Asterisk prompts (853
batches each) and far too few on 2 minutes of CMU ARCTIC ``slt``. Why not the lowest
``val_mean_error``: on ``slt`` it rose all through training while the free-running MCD fell,
and selecting on it kept the plateau's model (benchmarks/RESULTS.md, "Text-to-speech, session 11").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from seqboltz.speech import write_wav

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "tts_rcrbm.yaml"
ARCTIC_A0007 = "And you always want to see it in the superlative degree."


def _callbacks(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["class_path"]: c.get("init_args", {}) for c in config["trainer"]["callbacks"]}


def test_recipe_budget_is_in_steps() -> None:
    config = yaml.safe_load(RECIPE.read_text())
    trainer = config["trainer"]
    assert trainer["max_epochs"] == -1 and trainer["max_steps"] > 0
    # the Asterisk voice keeps its budget: 10 epochs of 853 batches, validated at each end
    assert trainer["max_steps"] == 10 * 853 and trainer["val_check_interval"] == 853
    assert trainer["check_val_every_n_epoch"] is None  # validation by steps, across epochs
    assert trainer["max_steps"] % trainer["val_check_interval"] == 0  # the last step validated
    callbacks = _callbacks(config)
    assert "seqboltz.training.FitConditionalMean" in callbacks  # it logs val_mean_error
    checkpoint = callbacks["lightning.pytorch.callbacks.ModelCheckpoint"]
    # no monitor: last.ckpt is the final model (with one, Lightning 2.6 rewrites last.ckpt
    # only when the monitored value improves)
    assert checkpoint.get("monitor") is None and checkpoint["save_last"] is True


@pytest.mark.slow
def test_recipe_fits_by_steps(
    arctic_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three copies of one ARCTIC utterance (one each for training, validation and test: the
    data module holds one out of a tiny set), two batches an epoch, 6 steps validated every 3:
    validation runs at steps 3 and 6, in epochs 1 and 2 (0-based), and ``last.ckpt`` is step
    6's model."""
    from seqboltz.cli import main
    from seqboltz.speech import read_audio

    audio = read_audio(arctic_path)
    voice = tmp_path / "voice"
    for name in ("a", "b", "c"):
        write_wav(voice / f"{name}.wav", audio, 16000)
    (voice / "t.txt").write_text("".join(f"{n}: {ARCTIC_A0007}\n" for n in "abc"))
    monkeypatch.chdir(tmp_path)
    argv = [
        "fit", "--config", str(RECIPE),
        f"--data.init_args.path={voice}", f"--data.init_args.transcripts={voice / 't.txt'}",
        f"--data.init_args.cache_dir={tmp_path / 'cache'}", "--data.init_args.batch_size=512",
        "--model.energy_model.init_args.n_hidden=8", "--trainer.max_steps=6",
        "--trainer.val_check_interval=3", "--trainer.default_root_dir=runs",
        "--trainer.enable_progress_bar=false", "--trainer.accelerator=cpu",
    ]  # fmt: skip
    assert main(argv) == 0
    logs = tmp_path / "runs" / "lightning_logs" / "version_0"
    last = torch.load(logs / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["global_step"] == 6 and last["epoch"] == 2
    metrics = (logs / "metrics.csv").read_text().splitlines()
    header = metrics[0].split(",")
    col, step = header.index("val_mean_error"), header.index("step")
    validated = [int(r.split(",")[step]) for r in metrics[1:] if r.split(",")[col]]
    assert validated == [2, 5]  # at global steps 3 and 6 (the CSV logs the step before)
