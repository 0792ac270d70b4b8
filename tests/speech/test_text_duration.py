"""Duration models: ridge on linguistic context against the mean per phone."""

from __future__ import annotations

import numpy as np
import pytest

from seqboltz.speech._duration import DurationModel, MeanDurationModel, duration_rmse
from seqboltz.speech._text import PAUSE, Utterance, text_to_utterance

TEXTS = [
    "Please enter your password, followed by the pound key.",
    "Your call cannot be completed as dialed.",
    "Thank you for calling. Goodbye.",
    "Press one to mute or unmute yourself.",
    "The conference has been extended.",
    "That agent is already logged on.",
    "Please check the number and dial again.",
    "All circuits are busy now.",
    "You are entering conference number seven.",
    "Please hold while we connect you.",
]


def _rule(utt: Utterance, rng: np.random.Generator) -> np.ndarray:
    """Synthetic durations with context effects the mean per phone cannot see: stressed
    vowels and phrase-final syllables are longer; log-normal noise."""
    out = []
    for p in utt.phones:
        if p.symbol == PAUSE:
            base = 40.0 if p.pause == 3 else 25.0
        else:
            base = 14.0 if p.stress >= 0 else 8.0
            if p.stress == 1:
                base *= 1.6
            if p.phrase_word == p.phrase_size - 1 and p.syllable == p.n_syllables - 1:
                base *= 1.5
        out.append(max(1, round(base * np.exp(0.1 * rng.standard_normal()))))
    return np.array(out)


@pytest.fixture(scope="module")
def data() -> tuple[list[Utterance], list[np.ndarray]]:
    rng = np.random.default_rng(0)
    utts = [text_to_utterance(t) for t in TEXTS]
    return utts, [_rule(u, rng) for u in utts]


def test_ridge_beats_the_mean_per_phone(data: tuple[list[Utterance], list[np.ndarray]]) -> None:
    utts, durs = data
    train, test = slice(0, 7), slice(7, 10)
    ridge = DurationModel(ridge=1.0).fit(utts[train], durs[train])
    mean = MeanDurationModel().fit(utts[train], durs[train])
    r = duration_rmse(ridge, utts[test], durs[test], frame_period=5.0)
    m = duration_rmse(mean, utts[test], durs[test], frame_period=5.0)
    assert r["n_phones"] == m["n_phones"] > 50
    assert r["rmse_ms"] < 0.8 * m["rmse_ms"]
    assert r["corr"] > m["corr"]


def test_predictions_are_frames(data: tuple[list[Utterance], list[np.ndarray]]) -> None:
    utts, durs = data
    model = DurationModel().fit(utts, durs)
    pred = model.predict(utts[0])
    assert pred.dtype == np.int64 and pred.shape == (len(utts[0].phones),) and pred.min() >= 1
    # edge pauses get the training median of the edge pauses
    edges = np.concatenate([d[[0, -1]] for d in durs])
    assert pred[0] == pred[-1] == int(np.median(edges))


def test_round_trip(data: tuple[list[Utterance], list[np.ndarray]]) -> None:
    utts, durs = data
    model = DurationModel(ridge=2.0).fit(utts, durs)
    again = DurationModel.from_dict(model.to_dict())
    np.testing.assert_array_equal(again.predict(utts[3]), model.predict(utts[3]))
    bad = model.to_dict() | {"weights": [0.0, 1.0]}
    with pytest.raises(ValueError, match="weights"):
        DurationModel.from_dict(bad)


def test_predicts_the_mean_not_the_median() -> None:
    """Log-normal durations with a wide spread (σ = 0.5, as real phones have): the model's
    predictions add up to the data's frames, where ``exp(ŷ)``, the median, falls short by
    about ``exp(-σ²/2)``; a card without the recorded variance predicts the median as
    before."""
    rng = np.random.default_rng(1)
    utts = [text_to_utterance(t) for t in TEXTS * 3]
    durs = []
    for u in utts:
        d = np.array([max(1, round(12 * np.exp(0.5 * rng.standard_normal()))) for _ in u.phones])
        durs.append(d)
    model = DurationModel(ridge=1.0).fit(utts, durs)
    assert 0.12 < model.log_residual_var < 0.3  # σ² = 0.25, less what the fit absorbs (0.18)
    inner = [slice(1, len(u.phones) - 1) for u in utts]  # edge pauses aside
    real = sum(d[i].sum() for d, i in zip(durs, inner, strict=True))
    pred = sum(model.predict(u)[i].sum() for u, i in zip(utts, inner, strict=True))
    old = DurationModel.from_dict(model.to_dict() | {"log_residual_var": 0.0})
    median = sum(old.predict(u)[i].sum() for u, i in zip(utts, inner, strict=True))
    assert 0.95 < pred / real < 1.05
    assert median / real < 0.94  # measured 0.906
    legacy = {k: v for k, v in model.to_dict().items() if k != "log_residual_var"}
    assert DurationModel.from_dict(legacy).log_residual_var == 0.0
    with pytest.raises(ValueError, match="log_residual_var must be >= 0"):
        DurationModel.from_dict(model.to_dict() | {"log_residual_var": -1.0})


def test_errors(data: tuple[list[Utterance], list[np.ndarray]]) -> None:
    utts, durs = data
    with pytest.raises(RuntimeError, match="not fitted"):
        DurationModel().predict(utts[0])
    with pytest.raises(ValueError, match="phones"):
        DurationModel().fit(utts[:2], [durs[0], durs[0]])
    with pytest.raises(ValueError, match="ridge"):
        DurationModel(ridge=-1.0)
