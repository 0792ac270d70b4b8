"""Calibrating the style control: the fixed-point steps of CalibrateStyleGain, and the gain
measured on real motion."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from seqboltz.models import ResidualCRBM
from seqboltz.training import CalibrateStyleGain, _calibrate


class _Module:
    def __init__(self, model: Any) -> None:
        self.energy_model = model
        self.logged: dict[str, float] = {}

    def log(self, key: str, value: float) -> None:
        self.logged[key] = value


def _trainer(style: str = "root_speed") -> Any:
    return SimpleNamespace(sanity_checking=False, datamodule=SimpleNamespace(style=style))


@pytest.mark.parametrize(("slope", "expected"), [(0.4, 2.5), (0.1, 4.0), (1.5, 1.0)])
def test_the_gain_reaches_the_target_within_its_bounds(
    monkeypatch: pytest.MonkeyPatch, slope: float, expected: float
) -> None:
    """A control whose measured gain is ``slope · g`` gets ``g = 1 / slope`` in [1, max]."""
    model = ResidualCRBM(3, 4, order=2, n_style=1).double()
    seen: list[float] = []

    def fake(m: ResidualCRBM, *args: Any) -> float:
        seen.append(float(m.style_gain))
        assert not m.training  # measured in eval mode
        return slope * float(m.style_gain)

    monkeypatch.setattr(_calibrate, "measure_speed_gain", fake)
    module = _Module(model)
    CalibrateStyleGain(max_gain=4.0).on_validation_epoch_start(_trainer(), module)  # type: ignore[arg-type]
    assert float(model.style_gain) == pytest.approx(expected)
    assert seen[0] == 1.0  # every epoch starts from the uncalibrated model
    assert module.logged["val/style_gain"] == pytest.approx(expected)
    assert model.training


def test_a_blown_up_measurement_leaves_the_model_uncalibrated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = ResidualCRBM(3, 4, order=2, n_style=1).double()
    model.style_gain.fill_(3.0)
    monkeypatch.setattr(_calibrate, "measure_speed_gain", lambda *a: math.nan)
    CalibrateStyleGain().on_validation_epoch_start(_trainer(), _Module(model))  # type: ignore[arg-type]
    assert float(model.style_gain) == 1.0


def test_the_curve_inverts_the_measured_response(monkeypatch: pytest.MonkeyPatch) -> None:
    """A control that settles at ``m(u) = 0.3 u + 0.2 u³`` for input ``u``: the curve's knots
    are the levels spread over the training range (``low``/``high``) and what they made, so a
    request of ``m(u)`` is given ``u``; the gain is left at 1."""
    import numpy as np

    from seqboltz.eval import _sequence_report

    model = ResidualCRBM(3, 4, order=2, n_style=1).double()
    model.style_gain.fill_(2.5)
    response = lambda u: 0.3 * u + 0.2 * u**3  # noqa: E731

    def fake(m: ResidualCRBM, view: Any, levels: list[float], *args: Any) -> Any:
        assert m.style_curve.shape == (2, 0) and float(m.style_gain) == 1.0  # raw response
        return response(np.asarray(levels))

    monkeypatch.setattr(_sequence_report, "speed_response", fake)
    monkeypatch.setattr(_calibrate, "measure_speed_gain", lambda *a: 0.9)
    stats = {"style": {"low": [-1.0], "high": [2.0]}}
    trainer = SimpleNamespace(
        sanity_checking=False,
        datamodule=SimpleNamespace(style="root_speed", stats=lambda: stats),
    )
    module = _Module(model)
    CalibrateStyleGain(curve_points=4).on_validation_epoch_start(trainer, module)  # type: ignore[arg-type]
    levels = np.linspace(-1.0, 2.0, 4)
    np.testing.assert_allclose(model.style_curve.numpy(), [response(levels), levels])
    requests = torch.tensor([[0.5], [float(response(0.5))]], dtype=torch.float64)
    # a knot's speed gets its input; between knots the curve is a line (0.175 -> 0.35)
    np.testing.assert_allclose(model.requested_style(requests).numpy()[:, 0], [1.0, 0.35])
    assert float(model.style_gain) == 1.0 and module.logged["val/speed_gain_measured"] == 0.9


def test_monotone_knots_keep_a_rising_curve_or_none() -> None:
    import numpy as np

    got = _calibrate.monotone_knots(np.array([-0.7, -0.7, -0.5, 0.4, 0.3, 1.2]), np.arange(6.0))
    np.testing.assert_allclose(got, [[-0.7, -0.5, 0.4, 1.2], [0.0, 2.0, 3.0, 5.0]])
    assert _calibrate.monotone_knots(np.array([0.2, 0.1, 0.0]), np.arange(3.0)) is None
    assert _calibrate.monotone_knots(np.array([0.2, np.nan]), np.arange(2.0)) is None


def test_bad_use_says_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="needs a ResidualCRBM with a style"):
        CalibrateStyleGain().on_validation_epoch_start(
            _trainer(),
            _Module(ResidualCRBM(3, 4, order=2)),  # type: ignore[arg-type]
        )
    with pytest.raises(ValueError, match="root-speed style"):
        CalibrateStyleGain().on_validation_epoch_start(
            _trainer("kind"),
            _Module(ResidualCRBM(3, 4, order=2, n_style=1)),  # type: ignore[arg-type]
        )
    with pytest.raises(ValueError, match="0 < target <= 2"):
        CalibrateStyleGain(target=0)
    with pytest.raises(ValueError, match="segment_seconds"):
        CalibrateStyleGain(segment_seconds=0)
    with pytest.raises(ValueError, match="curve_points must be 0"):
        CalibrateStyleGain(curve_points=1)


@pytest.mark.realdata
def test_measured_gain_on_real_motion_doubles_with_the_style_gain() -> None:
    """On the CMU user's clips (its whole held-out clips), an untrained styled model's speed
    response grows with ``g`` (generation reads ``g·z``): the measurement sees the gain."""
    from seqboltz.data import MotionDataModule, motion_fixture_folder

    dm = MotionDataModule(
        path=str(motion_fixture_folder("cmu_daz_bvh")), order=3, style="root_speed"
    )
    dm.setup("fit")
    torch.manual_seed(0)
    model = ResidualCRBM(dm.n_features, 8, order=3, n_style=1, max_radius=0.99).double()
    model.init_from_sequences(dm.clips("train"), styles=dm.style_clips("train"))
    one = _calibrate.measure_speed_gain(model, dm, "val", seeds=2, segment_seconds=4.0)
    model.style_gain.fill_(2.0)
    two = _calibrate.measure_speed_gain(model, dm, "val", seeds=2, segment_seconds=4.0)
    assert math.isfinite(one) and one > 0
    assert two > 1.5 * one
