"""The text side of a text-to-speech model: what travels on the acoustic model's card, and the
stages from text to the per-frame controls the acoustic model is sampled with (torch-free).

**One artifact, not two.** A text-to-speech model is one ``.onnx`` file: the graph is the
acoustic model's sampling step (a conditional RBM over WORLD frames given the frame's
linguistic controls and its acoustic history); the duration model, the front end's card and
the vocoder settings ride on its model card, in ``card["features"]`` (:func:`voice_stats`,
written by :meth:`seqboltz.data.TTSDataModule.stats` into every checkpoint, copied by
``seqboltz export``). Why not two artifacts tied by the card:

* the duration model is small (ridge regression: one weight per phone feature, a few hundred
  floats, :class:`~seqboltz.speech._duration.DurationModel`) and numpy-only, so it needs no
  graph of its own;
* both halves are fitted on the same training prompts and read the same front end (its
  version and feature names are checked here), so a second file could only add a way to pair
  a duration model with an acoustic model it was not made for;
* the service's model repository, hot reload, resume tokens (the model's sha256) and
  ``synthesize`` all deal in one file per model.

A duration model worth its own graph (a network) would change that; the card would then name
the second file's sha256.

Stages (:meth:`VoiceCard.plan`): text → :func:`~seqboltz.speech._text.text_to_utterance`
(normalisation, CMU dictionary, g2p for unknown words, syllables, pauses) → frames per phone
(the duration model) → :func:`~seqboltz.speech._text.frame_features` ``(T, C)`` and the
alignment those durations imply (:meth:`~seqboltz.speech._align.PhoneAlignment.from_durations`).

**Frames with dynamic features.** A model trained on frames with Δ and Δ²
(``TTSDataModule(deltas=True)``) generates ``D + 2K`` values a frame; the card's
``features["deltas"]`` names the columns, the windows and how statics are generated from them:
MLPG (:class:`~seqboltz.speech._mlpg.BlockMLPG`, block by block so that a stream needs only
``block + overlap`` frames ahead), with the variances it states (``null``: 1 in standardised
units). :meth:`VoiceCard.statics` and the runtime's audio chunker both use it.

**The post-filter.** ``seqboltz export`` writes ``features["postfilter"]`` on a voice's card
(:func:`postfilter_card`, :data:`POSTFILTER_BETA` unless ``--postfilter`` names another): the
mel-cepstral formant emphasis the runtime applies, frame by frame, before WORLD
(:func:`~seqboltz.speech._world.formant_postfilter`). It changes the waveform, not the frames.
A card without it (exported before the post-filter existed) speaks without one.

**Pauses the voice has heard.** A text may ask for a pause the voice never heard in training:
the two minutes of CMU ARCTIC ``slt`` are one sentence a prompt, so they hold minor pauses
(commas) and no sentence-internal major ones, and the controls of a major pause were never
seen. Both ``slt`` voices, from a cold start and adapted, answered "Welcome to Zorblax
Industries. Your balance is 42 dollars." with c0 at 8.4-8.9 standard deviations in that
pause: a burst 148-156 dB above the median speech frame (a peak of 5e6-1.4e7), which the
utterance's peak limiter answered by scaling the whole utterance down to silence.
:func:`voice_stats` records the kinds of sentence-internal pause the training prompts held
(``features["pauses_seen"]``), and :meth:`VoiceCard.plan` speaks any other kind as the nearest
one heard (:func:`speakable_pauses`; none heard: no pause). A card without the entry speaks
every pause as the text asks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from seqboltz.errors import BadRequest
from seqboltz.speech._align import PhoneAlignment
from seqboltz.speech._base import SpeechFeatureError
from seqboltz.speech._duration import DurationModel
from seqboltz.speech._mlpg import DELTA_WINDOWS, BlockMLPG, block_mlpg
from seqboltz.speech._text import (
    FRONTEND_VERSION,
    TextFrontEndError,
    Utterance,
    build_utterance,
    frame_feature_names,
    frame_features,
    front_end_card,
    text_to_utterance,
)
from seqboltz.speech._world import WorldFeatures, postfilter_beta_problem

__all__ = [
    "POSTFILTER_BETA",
    "TextPlan",
    "VoiceCard",
    "VoiceError",
    "postfilter_card",
    "seen_pauses",
    "speakable_pauses",
    "voice_stats",
]


class VoiceError(BadRequest):
    """A text that cannot be spoken, or a model card that is no usable voice (one line)."""


POSTFILTER_BETA = 0.4
"""The formant-emphasis post-filter a voice is exported with
(:func:`~seqboltz.speech._world.formant_postfilter`; HTS's and Merlin's default, ``pf_coef``
1.4). On prompts outside the test sets (``benchmarks/tts_postfilter.py``) it tied for the best
Asterisk identification and was within 0.004 of the best ``slt`` WER among 0-0.8. On the 11
held-out CMU ARCTIC ``slt`` prompts spoken from their text it lowered PocketSphinx's word error
rate in all five training seeds (CRBM + MLPG 0.520 -> 0.466; real recordings 0.196), and the
exported Asterisk voice's prompt identification rose from 67.9 % to 75.0 %
(benchmarks/RESULTS.md, text-to-speech session 13). It changes only the waveform: the frames,
and so the MCD, are the model's."""


def postfilter_card(beta: float) -> dict[str, Any]:
    """The card entry of a voice's post-filter (``features["postfilter"]``)."""
    problem = postfilter_beta_problem(beta)
    if problem:
        raise ValueError(problem)
    return {
        "method": "mel-cepstral formant emphasis (Yoshimura et al. 2005): c2... times 1 + beta, "
        "c0 keeps each frame's power",
        "beta": float(beta),
    }


INTERNAL_PAUSES = (1, 2)
"""The kinds of a sentence-internal pause (:class:`~seqboltz.speech._text.Phone`'s ``pause``):
1 minor (``, ; : -``), 2 major (``. ! ? …``); 3, the utterance's edges, every prompt has."""


def seen_pauses(utterances: Iterable[Utterance]) -> list[int]:
    """The kinds of sentence-internal pause (:data:`INTERNAL_PAUSES`) among ``utterances``'
    phones (e.g. the training prompts' aligned utterances), sorted."""
    return sorted({p.pause for u in utterances for p in u.phones if p.pause in INTERNAL_PAUSES})


def speakable_pauses(utt: Utterance, seen: Sequence[int]) -> Utterance:
    """``utt`` with every sentence-internal pause of a kind not in ``seen`` spoken as the
    nearest kind in it (major as minor, minor as major), or as no pause if ``seen`` is empty;
    ``utt`` itself when nothing changes.

    >>> u = text_to_utterance("Hello. Goodbye.")
    >>> [p.pause for p in speakable_pauses(u, [1]).phones if p.symbol == "pau"]
    [3, 1, 3]
    """
    kinds = sorted(set(seen) & set(INTERNAL_PAUSES))

    def heard(kind: int) -> int:
        if kind == 0 or kind in kinds:
            return kind
        return min(kinds, key=lambda k: abs(k - kind)) if kinds else 0

    pauses = [heard(w.pause_after) for w in utt.words]
    if pauses == [w.pause_after for w in utt.words]:
        return utt
    return build_utterance(utt.text, utt.words, pauses_after=pauses)


def voice_stats(
    features: WorldFeatures,
    order: int,
    duration_model: DurationModel,
    silence_frames: np.ndarray | None = None,
    aligner: dict[str, Any] | None = None,
    delta_columns: Sequence[int] | None = None,
    pauses_seen: Sequence[int] | None = None,
) -> dict[str, Any]:
    """The data statistics of a text-to-speech model, as its card's ``features`` carry them.

    Args:
        features: fitted WORLD features (settings, ``mean``/``std``).
        order: frames of acoustic history.
        duration_model: the fitted duration model (:meth:`DurationModel.to_dict`).
        silence_frames: ``(order, D)`` standardised frames that start an utterance (the
            training prompts' mean first frames: leading silence); ``None``: the card's
            default seed frames are used.
        aligner: the card of what aligned the training data.
        delta_columns: the static columns whose Δ and Δ² follow the statics in each frame
            (:func:`~seqboltz.speech._mlpg.append_deltas`); ``None``: statics only.
        pauses_seen: the kinds of sentence-internal pause the training prompts held
            (:func:`seen_pauses`); ``None``: not recorded (every pause is spoken as asked).

    Returns:
        ``features.to_dict()`` plus ``order``, ``front_end`` (:func:`front_end_card`),
        ``aligner``, ``n_controls``, ``duration_model``, ``silence_frames`` and, with deltas,
        ``deltas`` (``{"columns", "windows", "generation"}``: :data:`MLPG_GENERATION`).
    """
    size = features.dim + 2 * len(delta_columns or ())
    silence = None if silence_frames is None else np.asarray(silence_frames, dtype=np.float64)
    if silence is not None and silence.shape != (order, size):
        raise ValueError(f"silence frames must be ({order}, {size}), got {silence.shape}")
    d = features.to_dict()
    d.update(
        order=order,
        front_end=front_end_card(),
        aligner=dict(aligner or {}),
        n_controls=len(frame_feature_names()),
        duration_model=duration_model.to_dict(),
    )
    if silence is not None:
        d["silence_frames"] = silence.tolist()
    if pauses_seen is not None:
        d["pauses_seen"] = sorted({int(k) for k in pauses_seen})
    if delta_columns is not None:
        k = len(delta_columns)
        # the model's frames are D + 2K wide; Δ and Δ² are of the standardised statics, so
        # their "raw" values are their standardised ones (mean 0, std 1)
        d["mean"] = [*d["mean"], *([0.0] * 2 * k)]
        d["std"] = [*d["std"], *([1.0] * 2 * k)]
        d["deltas"] = {
            "columns": [int(c) for c in delta_columns],
            "windows": [list(w) for w in DELTA_WINDOWS],
            "units": "delta and delta-delta of the standardised statics (mean 0, std 1 here)",
            "generation": dict(MLPG_GENERATION),
        }
    return d


MLPG_GENERATION: dict[str, Any] = {
    "method": "MLPG (Tokuda et al. 2000), block by block",
    "variances": None,
    "block": 10,
    "overlap": 10,
}
"""How a voice with deltas turns its frames into statics: MLPG with unit variances
(``variances: None``; the model's frames are standardised) in blocks of 10 frames solved with
10 frames of context on each side (:class:`~seqboltz.speech._mlpg.BlockMLPG`): a stream's
audio waits for 19 frames more, and on the validation prompts the statics were within 2e-5
(standardised) of the whole utterance's MLPG. Unit variances rather than each model's own
free-running error variances, which a card cannot know at export: on the validation prompts
they gained 0.006 dB of MCD (residual CRBM) and 0.020 dB (linear) over no MLPG, against 0.013
and 0.037 dB with the free-running variances (benchmarks/RESULTS.md, session 7)."""

STATICS_GENERATION: dict[str, Any] = {
    "method": "statics",
}
"""The other way a voice with deltas may speak: the model's statics as they are, its Δ and Δ²
unused (what ``seqboltz export --generation statics`` writes on the card); a stream's audio
then waits for no MLPG look-ahead. MLPG stays the default: it lowers the MCD (by 0.04 dB on
the adapted ``slt`` voices), and on the non-test prompts neither way was the more intelligible
on both voices (benchmarks/RESULTS.md, "Text-to-speech, session 14")."""

GENERATIONS = {"mlpg": MLPG_GENERATION, "statics": STATICS_GENERATION}
"""Generation modes by their ``seqboltz export --generation`` name."""


@dataclass(frozen=True)
class TextPlan:
    """What the acoustic model is asked to say.

    Attributes:
        utterance: the front end's phones, words and pauses.
        durations: ``(P,)`` frames per phone (predicted).
        controls: ``(T, C)`` per-frame linguistic features, ``T = Σ durations``.
        alignment: the phone times the durations imply.
    """

    utterance: Utterance
    durations: np.ndarray
    controls: np.ndarray
    alignment: PhoneAlignment

    @property
    def n_frames(self) -> int:
        return int(self.controls.shape[0])


@dataclass(frozen=True)
class VoiceCard:
    """The voice a text-to-speech model card describes (:meth:`from_card`).

    Attributes:
        name: the model's name (for messages).
        features: WORLD settings and the statistics that undo standardisation.
        order: frames of acoustic history.
        durations: the duration model.
        silence_frames: ``(order, D + 2K)`` standardised frames that start an utterance, or
            ``None``.
        delta_columns: the static columns whose Δ and Δ² the model generates too (``K``;
            empty: statics only).
        generation: with deltas, how statics are made (:data:`MLPG_GENERATION`'s keys).
        postfilter: the ``beta`` of the formant-emphasis post-filter the waveform is made
            with (:func:`~seqboltz.speech._world.formant_postfilter`; 0: none, as on cards
            exported before it existed).
        pauses_seen: the sentence-internal pause kinds the training prompts held
            (:func:`speakable_pauses` maps the others); ``None``: not recorded.
    """

    name: str
    features: WorldFeatures
    order: int
    durations: DurationModel
    silence_frames: np.ndarray | None
    delta_columns: tuple[int, ...] = ()
    generation: dict[str, Any] | None = None
    postfilter: float = 0.0
    pauses_seen: tuple[int, ...] | None = None

    @property
    def frame_size(self) -> int:
        """Values per model frame: the statics, then Δ and Δ² of :attr:`delta_columns`."""
        return int(self.features.dim + 2 * len(self.delta_columns))

    @property
    def uses_mlpg(self) -> bool:
        """Whether the statics come from MLPG (a voice with deltas whose card does not ask
        for :data:`STATICS_GENERATION`)."""
        method = (self.generation or MLPG_GENERATION).get("method")
        return bool(self.delta_columns) and method != STATICS_GENERATION["method"]

    def mlpg_solver(self) -> BlockMLPG | None:
        """A fresh block MLPG for one utterance (``None``: statics used as they are)."""
        if not self.uses_mlpg:
            return None
        g = self.generation or MLPG_GENERATION
        var = None if g.get("variances") is None else np.asarray(g["variances"], dtype=float)
        return BlockMLPG(self.delta_columns, var, int(g["block"]), int(g["overlap"]))

    def statics(self, frames: np.ndarray) -> np.ndarray:
        """Standardised model frames ``(T, D + 2K)`` → statics ``(T, D)`` (the card's MLPG,
        or the first ``D`` columns)."""
        solver = self.mlpg_solver()
        if solver is None:
            return np.asarray(frames, dtype=np.float64)[:, : self.features.dim]
        return block_mlpg(frames, solver.columns, solver.variances, solver.block, solver.overlap)

    @staticmethod
    def is_voice(card: dict[str, Any]) -> bool:
        """Whether a model card carries a voice (a front end and a duration model)."""
        features = card.get("features") or {}
        return isinstance(features, dict) and {"front_end", "duration_model"} <= set(features)

    @classmethod
    def from_card(cls, card: dict[str, Any]) -> VoiceCard:
        """Read and check the voice on an exported model's card.

        Raises:
            VoiceError: no voice on the card (not a text-to-speech model), another front end
                (version or feature names), controls of another size, or unreadable fields.
        """
        name = str(card.get("name", "?"))
        if not cls.is_voice(card):
            raise VoiceError(
                f"model {name!r} is not a text-to-speech model (its card has no front end and "
                "duration model); export one from a checkpoint trained on "
                "seqboltz.data.TTSDataModule (recipes/tts_rcrbm.yaml)"
            )
        feats = card["features"]
        front = feats["front_end"]
        if front.get("version") != FRONTEND_VERSION or front.get("frame_features") != (
            frame_feature_names()
        ):
            raise VoiceError(
                f"model {name!r} was trained with text front end {front.get('version')!r}; this "
                f"seqboltz has {FRONTEND_VERSION!r} with other linguistic features: retrain it, "
                "or use the seqboltz version it was trained with"
            )
        size = int((card.get("conditioning") or {}).get("controls", {}).get("size", 0))
        if size != len(frame_feature_names()):
            raise VoiceError(
                f"model {name!r} takes {size} controls per frame; the text front end makes "
                f"{len(frame_feature_names())}"
            )
        deltas = feats.get("deltas")
        try:
            extra = 2 * len(deltas["columns"]) if deltas else 0
            world_dict = dict(feats)
            for key in ("mean", "std"):  # the statics' statistics; Δ, Δ² are standardised
                if extra and isinstance(feats.get(key), list) and len(feats[key]) > extra:
                    world_dict[key] = feats[key][:-extra]
            world = WorldFeatures.from_dict(world_dict)
            durations = DurationModel.from_dict(feats["duration_model"])
            order = int(card.get("order", feats.get("order")))
        except (SpeechFeatureError, ValueError, KeyError, TypeError) as exc:
            raise VoiceError(f"model {name!r}: unreadable voice on its card ({exc})") from exc
        if world.mean is None or world.std is None:
            raise VoiceError(f"model {name!r}: its card has no feature statistics")
        columns, generation = cls._deltas(name, deltas, world.dim)
        size = world.dim + 2 * len(columns)
        silence = feats.get("silence_frames")
        seed = None if silence is None else np.asarray(silence, dtype=np.float64)
        if seed is not None and seed.shape != (order, size):
            raise VoiceError(
                f"model {name!r}: silence frames of shape {seed.shape}, expected ({order}, {size})"
            )
        return cls(
            name, world, order, durations, seed, columns, generation,
            cls._postfilter(name, feats.get("postfilter")),
            cls._pauses_seen(name, feats.get("pauses_seen")),
        )  # fmt: skip

    @staticmethod
    def _pauses_seen(name: str, entry: Any) -> tuple[int, ...] | None:
        """The card's heard pause kinds, checked (``None``: not recorded)."""
        if entry is None:
            return None
        try:
            kinds = tuple(sorted({int(k) for k in entry}))
        except (TypeError, ValueError) as exc:
            raise VoiceError(f"model {name!r}: unreadable pauses_seen on its card ({exc})") from exc
        if not set(kinds) <= set(INTERNAL_PAUSES):
            raise VoiceError(
                f"model {name!r}: pauses_seen {list(kinds)} must be kinds among {INTERNAL_PAUSES}"
            )
        return kinds

    @staticmethod
    def _postfilter(name: str, entry: Any) -> float:
        """The card's post-filter ``beta``, checked (0: none on the card)."""
        if entry is None:
            return 0.0
        try:
            beta = float(entry["beta"])
        except (KeyError, TypeError, ValueError) as exc:
            raise VoiceError(f"model {name!r}: unreadable post-filter on its card ({exc})") from exc
        problem = postfilter_beta_problem(beta)
        if problem:
            raise VoiceError(f"model {name!r}: {problem}")
        return beta

    @staticmethod
    def _deltas(name: str, deltas: Any, dim: int) -> tuple[tuple[int, ...], dict[str, Any] | None]:
        """The card's delta columns and MLPG settings, checked (``((), None)``: none)."""
        if not deltas:
            return (), None
        try:
            columns = tuple(int(c) for c in deltas["columns"])
            windows = [tuple(float(x) for x in w) for w in deltas["windows"]]
            own = dict(deltas.get("generation") or {})
            statics = own.get("method") == STATICS_GENERATION["method"]
            generation = own if statics else dict(MLPG_GENERATION) | own
            block = 1 if statics else int(generation["block"])
            overlap = 0 if statics else int(generation["overlap"])
        except (KeyError, TypeError, ValueError) as exc:
            raise VoiceError(f"model {name!r}: unreadable deltas on its card ({exc})") from exc
        if windows != [tuple(w) for w in DELTA_WINDOWS]:
            raise VoiceError(
                f"model {name!r}: delta windows {windows}; this runtime's MLPG uses "
                f"{[list(w) for w in DELTA_WINDOWS]}"
            )
        if (
            not columns
            or len(set(columns)) != len(columns)
            or not all(0 <= c < dim for c in columns)
        ):
            raise VoiceError(f"model {name!r}: delta columns {list(columns)} do not fit {dim}")
        var = generation.get("variances")
        if var is not None and (
            np.asarray(var, dtype=float).shape != (dim + 2 * len(columns),)
            or not (np.asarray(var, dtype=float) > 0).all()
        ):
            raise VoiceError(f"model {name!r}: MLPG variances must be {dim + 2 * len(columns)} > 0")
        if block < 1 or overlap < 0:
            raise VoiceError(f"model {name!r}: MLPG block {block} and overlap {overlap}")
        return columns, generation

    @property
    def frame_period(self) -> float:
        return float(self.features.frame_period)

    @property
    def sample_rate(self) -> int:
        return int(self.features.sample_rate)

    def plan(self, text: str, durations: Sequence[int] | np.ndarray | None = None) -> TextPlan:
        """Text → phones (pause kinds the voice never heard spoken as ones it did:
        :func:`speakable_pauses`) → frames per phone → per-frame controls (see the module).

        Args:
            text: what to say (unknown words go through the g2p).
            durations: frames per phone to use instead of the duration model's (e.g. a
                recording's aligned durations).

        Raises:
            VoiceError: empty text, text without a speakable word, or wrong durations.
        """
        try:
            utt = text_to_utterance(text)
        except TextFrontEndError as exc:
            raise VoiceError(str(exc)) from None
        if self.pauses_seen is not None:
            utt = speakable_pauses(utt, self.pauses_seen)
        durs = (
            self.durations.predict(utt)
            if durations is None
            else np.asarray(durations, dtype=np.int64)
        )
        if durs.shape != (len(utt.phones),) or durs.min() < 1:
            raise VoiceError(
                f"need {len(utt.phones)} durations of at least one frame, got shape {durs.shape}"
            )
        short = self.order + 1 - int(durs.sum())
        if short > 0:  # a generation needs frames past the seed: lengthen the final pause
            durs = durs.copy()
            durs[-1] += short
        controls = frame_features(utt, durs)
        alignment = PhoneAlignment.from_durations(utt, durs, self.frame_period)
        return TextPlan(utt, durs, controls, alignment)
