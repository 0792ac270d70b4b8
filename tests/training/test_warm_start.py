"""WarmStartHidden: a small voice's hidden units start from a larger voice's."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
from _trainer import quiet_trainer
from torch.utils.data import DataLoader

from seqboltz.models import ResidualCRBM
from seqboltz.training import FitConditionalMean, RBMSystem, WarmStartHidden


def _clips(
    seed: int, drive: np.ndarray, n: int, t: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """AR clips whose mean moves with the XOR of two binary controls (no linear function of
    [history, controls] holds it); ``drive`` is the "voice": how the XOR shows in its frames."""
    rng = np.random.default_rng(seed)
    clips, controls = [], []
    for _ in range(n):
        c = rng.integers(0, 2, size=(t, 2)).astype(np.float64)
        x = np.zeros((t, drive.size))
        for i in range(2, t):
            x[i] = 0.5 * x[i - 1] + drive * float(c[i, 0] != c[i, 1])
            x[i] += 0.1 * rng.normal(size=drive.size)
        clips.append(x)
        controls.append(c)
    return clips, controls


def _loader(clips: list[np.ndarray], controls: list[np.ndarray], shuffle: bool) -> DataLoader:
    rows = [
        {
            "v": torch.tensor(x[i]),
            "cond": {
                "history": torch.tensor(x[i - 2 : i][::-1].copy()),
                "controls": torch.tensor(c[i]),
            },
        }
        for x, c in zip(clips, controls, strict=True)
        for i in range(2, len(x))
    ]
    return DataLoader(rows, batch_size=64, shuffle=shuffle)  # type: ignore[arg-type]


def _model(data: tuple[list[np.ndarray], list[np.ndarray]], n_hidden: int = 8) -> ResidualCRBM:
    torch.manual_seed(0)
    clips, controls = data
    m = ResidualCRBM(
        clips[0].shape[1],
        n_hidden,
        order=2,
        n_controls=2,
        train_linear=False,
        history_to_hidden=False,
    ).double()
    m.init_from_sequences(clips, controls=controls)
    return m


Clips = tuple[list[np.ndarray], list[np.ndarray]]


def _fit(
    m: ResidualCRBM,
    data: Clips,
    val: DataLoader,
    epochs: int,
    extra: list[Any],
    root: Path | None = None,
) -> L.Trainer:
    trainer = quiet_trainer(
        root, max_epochs=epochs, callbacks=[FitConditionalMean(lr=0.05), *extra]
    )
    system = RBMSystem(m, k=1, lr=1e-3, eval_log_z="none", mean_field_negative=True)
    trainer.fit(system, _loader(data[0], data[1], shuffle=True), val)
    return trainer


def _mean_error(m: ResidualCRBM, loader: DataLoader) -> float:
    with torch.no_grad():
        return float(
            torch.cat([m.conditional_mean_error(b["v"], b["cond"]) for b in loader]).mean()
        )


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A "large voice": 3 values a frame, 4 clips of 300 frames, its hidden part trained."""
    data = _clips(0, np.array([1.5, -1.0, 0.5]), n=4, t=300)
    root = tmp_path_factory.mktemp("source")
    trainer = _fit(
        _model(data),
        data,
        _loader(*_clips(1, np.array([1.5, -1.0, 0.5]), 1, 200), False),
        8,
        [],
        root,
    )
    path = root / "source.ckpt"
    trainer.save_checkpoint(path)
    return path


def test_a_small_voice_learns_faster_from_a_larger_voices_hidden_units(source: Path) -> None:
    """Another "voice" (5 values a frame, another drive), one short clip: after the same ten
    epochs the warm-started conditional mean is much closer to the data than the cold one
    (measured: from 3.27, cold 3.26, warm 2.95)."""
    drive = np.array([-0.8, 1.2, 0.3, -1.5, 0.9])
    data = _clips(2, drive, n=1, t=120)
    val = _loader(*_clips(3, drive, n=2, t=200), shuffle=False)
    cold, warm = _model(data), _model(data)
    start = _mean_error(cold, val)
    _fit(cold, data, val, 10, [])
    _fit(warm, data, val, 10, [WarmStartHidden(source)])
    cold_err, warm_err = _mean_error(cold, val), _mean_error(warm, val)
    assert warm_err < cold_err - 0.05 * start, (start, cold_err, warm_err)


def test_the_copy_is_the_sources_parameters_and_a_resume_keeps_its_own(source: Path) -> None:
    state = torch.load(source, map_location="cpu", weights_only=False)["state_dict"]
    data = _clips(2, np.array([1.0, 2.0]), n=1, t=50)
    model = _model(data)
    system = RBMSystem(model, k=1, eval_log_z="none")
    before = model.control_to_hidden.detach().clone()
    resumed = SimpleNamespace(ckpt_path="some.ckpt", datamodule=None)
    WarmStartHidden(source).on_fit_start(resumed, system)  # type: ignore[arg-type]
    torch.testing.assert_close(model.control_to_hidden, before)
    WarmStartHidden(source).on_fit_start(SimpleNamespace(ckpt_path=None, datamodule=None), system)  # type: ignore[arg-type]
    for name in ("control_to_hidden", "hidden_bias"):
        torch.testing.assert_close(getattr(model, name), state[f"energy_model.{name}"])
    assert model.weight.shape != state["energy_model.weight"].shape  # the visible side is its own


def test_other_hidden_sizes_front_ends_and_missing_files_are_refused(
    source: Path, tmp_path: Path
) -> None:
    data = _clips(2, np.array([1.0, 2.0]), n=1, t=50)
    fresh = SimpleNamespace(ckpt_path=None, datamodule=None)
    wider = RBMSystem(_model(data, n_hidden=6), k=1, eval_log_z="none")
    with pytest.raises(
        ValueError, match=r"control_to_hidden has shape \(2, 8\) in .* but \(2, 6\)"
    ):
        WarmStartHidden(source).on_fit_start(fresh, wider)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'style_to_hidden' is missing"):
        WarmStartHidden(source, ["style_to_hidden"]).on_fit_start(fresh, wider)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no checkpoint at"):
        WarmStartHidden(tmp_path / "none.ckpt").on_fit_start(fresh, wider)  # type: ignore[arg-type]
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"cannot read .*garbage\.ckpt"):
        WarmStartHidden(garbage).on_fit_start(fresh, wider)  # type: ignore[arg-type]
    exported = tmp_path / "voice.onnx"
    exported.write_bytes(b"")
    with pytest.raises(ValueError, match=r"voice\.onnx: .*start from the voice's training"):
        WarmStartHidden(exported).on_fit_start(fresh, wider)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one parameter"):
        WarmStartHidden(source, [])
    # a checkpoint whose card names other controls (another text front end)
    ckpt = torch.load(source, map_location="cpu", weights_only=False)
    ckpt.setdefault("seqboltz", {})["data"] = {
        "stats": {"front_end": {"frame_features": ["a", "b"]}}
    }
    other = tmp_path / "other.ckpt"
    torch.save(ckpt, other)
    stats = {"front_end": {"frame_features": ["a", "c"]}}
    trainer = SimpleNamespace(ckpt_path=None, datamodule=SimpleNamespace(stats=lambda: stats))
    system = RBMSystem(_model(data), k=1, eval_log_z="none")
    with pytest.raises(ValueError, match="text front ends differ"):
        WarmStartHidden(other).on_fit_start(trainer, system)  # type: ignore[arg-type]
    stats["front_end"]["frame_features"] = ["a", "b"]
    WarmStartHidden(other).on_fit_start(trainer, system)  # type: ignore[arg-type]
    torch.testing.assert_close(
        system.energy_model.hidden_bias, ckpt["state_dict"]["energy_model.hidden_bias"]
    )
