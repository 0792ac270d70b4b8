"""The voice on a text-to-speech model card: what it records, how a text becomes controls,
what a card that is no voice (or another front end's) says; alignments from durations as HTK
labels and TextGrid."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from seqboltz.speech import WorldFeatures
from seqboltz.speech._align import PhoneAlignment
from seqboltz.speech._duration import DurationModel
from seqboltz.speech._text import FRONTEND_VERSION, frame_feature_names, text_to_utterance
from seqboltz.speech._voice import (
    VoiceCard,
    VoiceError,
    postfilter_card,
    seen_pauses,
    speakable_pauses,
    voice_stats,
)

ORDER = 2


@pytest.fixture(scope="module")
def card() -> dict:
    """A sequence card as ``seqboltz export`` writes it for a TTSDataModule checkpoint."""
    wf = WorldFeatures(sample_rate=8000)
    rng = np.random.default_rng(0)
    wf.mean, wf.std = rng.normal(size=wf.dim), np.ones(wf.dim)
    utt = text_to_utterance("Please hold the line.")
    durations = DurationModel().fit([utt], [np.full(len(utt.phones), 7)])
    stats = voice_stats(wf, ORDER, durations, np.zeros((ORDER, wf.dim)))
    return {
        "name": "voice",
        "order": ORDER,
        "features": stats,
        "conditioning": {"controls": {"size": len(frame_feature_names())}},
    }


def test_plan(card: dict) -> None:
    voice = VoiceCard.from_card(card)
    assert voice.sample_rate == 8000 and voice.frame_period == 5.0
    assert card["features"]["front_end"]["version"] == FRONTEND_VERSION
    plan = voice.plan("Hold, please.")
    assert plan.durations.tolist() == voice.durations.predict(plan.utterance).tolist()
    assert plan.controls.shape == (plan.durations.sum(), len(frame_feature_names()))
    assert plan.alignment.duration == pytest.approx(plan.durations.sum() * 0.005)
    # given durations replace the model's; too few frames for the history: the end pause grows
    n = len(plan.utterance.phones)
    assert voice.plan("Hold, please.", [1] * n).durations.sum() == max(n, ORDER + 1)
    longer = dataclasses.replace(voice, order=6)  # "a": pau AH pau, 3 frames for 6 + 1
    assert longer.plan("a", [1, 1, 1]).durations.tolist() == [1, 1, 5]
    with pytest.raises(VoiceError, match="durations of at least one frame"):
        voice.plan("a", [1, 0, 1])
    with pytest.raises(VoiceError, match="text is empty"):
        voice.plan("   ")


def _internal_pauses(plan_or_utt: object) -> list[int]:
    utt = getattr(plan_or_utt, "utterance", plan_or_utt)
    return [p.pause for p in utt.phones[1:-1] if p.symbol == "pau"]  # type: ignore[attr-defined]


def test_pauses_the_voice_never_heard_are_spoken_as_ones_it_did(card: dict) -> None:
    """A voice trained on one-sentence prompts (minor pauses only, as CMU ARCTIC slt) speaks
    a sentence break as a minor pause, and its controls as the training prompts had them; a
    voice that heard none runs the words on; a card without the entry speaks what the text
    asks; an unreadable entry is one line."""
    text = "Welcome to Zorblax Industries. Your balance is 42 dollars, thank you."
    asked = text_to_utterance(text)
    assert _internal_pauses(asked) == [2, 1]
    assert seen_pauses([asked, text_to_utterance("Hold.")]) == [1, 2]
    assert seen_pauses([text_to_utterance("Hold, please.")]) == [1]
    assert speakable_pauses(asked, [1, 2]) is asked
    assert _internal_pauses(speakable_pauses(asked, [1])) == [1, 1]
    assert _internal_pauses(speakable_pauses(text_to_utterance("Hold, please."), [2])) == [2]
    run_on = speakable_pauses(asked, [])
    assert _internal_pauses(run_on) == [] and [w.text for w in run_on.words] == [
        w.text for w in asked.words
    ]
    voice = VoiceCard.from_card(card)
    assert voice.pauses_seen is None and _internal_pauses(voice.plan(text)) == [2, 1]
    heard = {**card, "features": {**card["features"], "pauses_seen": [1]}}
    minor = VoiceCard.from_card(heard)
    plan = minor.plan(text)
    assert minor.pauses_seen == (1,) and _internal_pauses(plan) == [1, 1]
    major = frame_feature_names().index("pause_major")
    assert plan.controls[:, major].max() == 0 and voice.plan(text).controls[:, major].max() == 1
    for bad in ([3], ["x"], 5):
        broken = {**card, "features": {**card["features"], "pauses_seen": bad}}
        with pytest.raises(VoiceError, match="pauses_seen"):
            VoiceCard.from_card(broken)


def test_postfilter_on_the_card(card: dict) -> None:
    """A card without a post-filter (exported before it existed) speaks without one; one
    with it gives its beta; an unreadable or negative one is one line."""
    assert VoiceCard.from_card(card).postfilter == 0.0
    features = card["features"] | {"postfilter": postfilter_card(0.4)}
    assert VoiceCard.from_card(card | {"features": features}).postfilter == 0.4
    for bad, message in [
        ({"beta": -1.0}, "post-filter beta must be finite and >= 0, got -1.0"),
        ({"beta": float("nan")}, "post-filter beta must be finite and >= 0"),
        ({}, "unreadable post-filter on its card"),
        ("0.4", "unreadable post-filter on its card"),
    ]:
        with pytest.raises(VoiceError, match=message):
            VoiceCard.from_card(card | {"features": card["features"] | {"postfilter": bad}})
    with pytest.raises(ValueError, match="beta must be finite and >= 0"):
        postfilter_card(-0.5)


def test_not_a_voice(card: dict) -> None:
    with pytest.raises(VoiceError, match="'m' is not a text-to-speech model"):
        VoiceCard.from_card({"name": "m", "features": {"kind": "world"}})
    other = {**card, "features": {**card["features"]}}
    other["features"]["front_end"] = {**card["features"]["front_end"], "version": "0.1"}
    with pytest.raises(VoiceError, match=r"trained with text front end '0\.1'"):
        VoiceCard.from_card(other)
    with pytest.raises(VoiceError, match="takes 3 controls per frame"):
        VoiceCard.from_card({**card, "conditioning": {"controls": {"size": 3}}})

    def with_deltas(d: dict[str, object]) -> dict[str, object]:
        return {**card, "features": {**card["features"], "deltas": d}}

    with pytest.raises(VoiceError, match="unreadable deltas"):
        VoiceCard.from_card(with_deltas({"columns": [0]}))  # no windows
    windows = [[-0.5, 0.0, 0.5], [1.0, -2.0, 1.0]]
    with pytest.raises(VoiceError, match="delta windows"):
        VoiceCard.from_card(with_deltas({"columns": [0], "windows": [[-1.0, 1.0, 0.0]]}))
    with pytest.raises(VoiceError, match="do not fit"):
        VoiceCard.from_card(with_deltas({"columns": [0, 99], "windows": windows}))
    bad_var = {"columns": [0], "windows": windows, "generation": {"variances": [1.0, 2.0]}}
    with pytest.raises(VoiceError, match="MLPG variances"):
        VoiceCard.from_card(with_deltas(bad_var))
    # statics only: the silence frames on this card are (order, D), not (order, D + 2K)
    with pytest.raises(VoiceError, match="silence frames of shape"):
        VoiceCard.from_card(with_deltas({"columns": [0], "windows": windows}))
    with pytest.raises(ValueError, match="silence frames must be"):
        voice_stats(WorldFeatures(sample_rate=8000), ORDER, DurationModel(), np.zeros((1, 2)))


def test_alignment_from_durations() -> None:
    utt = text_to_utterance("Hello, world.")
    durs = np.arange(1, len(utt.phones) + 1)
    al = PhoneAlignment.from_durations(utt, durs, 5.0)
    assert al.duration == pytest.approx(durs.sum() * 0.005)
    assert al.durations(5.0, int(durs.sum())).tolist() == durs.tolist()  # the round trip
    lab = [line.split() for line in al.htk_labels().splitlines()]
    assert [x[2] for x in lab] == utt.symbols and int(lab[-1][1]) == round(al.duration * 1e7)
    grid = al.textgrid()
    sizes = [int(n) for n in re.findall(r"intervals: size = (\d+)", grid)]
    # words: pause, hello, pause, world, pause; phones: every phone
    assert sizes == [5, len(utt.phones)]
    texts = re.findall(r'text = "(.*)"', grid)
    assert texts[:5] == ["", "hello", "", "world", ""]
    assert texts[5:] == utt.symbols
    # the intervals of each tier tile [0, duration]
    bounds = [float(x) for x in re.findall(r"xm(?:in|ax) = ([\d.]+)", grid)]
    assert bounds[1] == pytest.approx(al.duration, abs=1e-6)
    with pytest.raises(ValueError, match="durations of at least one frame"):
        PhoneAlignment.from_durations(utt, durs[:-1], 5.0)
