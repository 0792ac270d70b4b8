"""Benchmark: the formant-emphasis post-filter of an exported voice, chosen without the test
prompts.

An exported voice (``seqboltz export``) speaks prompts from their text alone through the
runtime (:meth:`TextToSpeech.speak`: predicted durations, the card's MLPG, the written
waveform) once for every post-filter strength ``beta``
(:func:`~seqboltz.speech._world.formant_postfilter`; 0 is none), and PocketSphinx scores each
waveform as ``benchmarks/tts.py`` does: prompt identification with the grammar of every
prompt text, and the word error rate of free decoding with its general language model. The
real recordings are scored beside them. ``--generations mlpg statics`` speaks every prompt
once for each way of making the statics too (:data:`~seqboltz.speech._voice.GENERATIONS`).

``--split select`` (the default) speaks the validation prompts and ``--train-prompts``
training prompts (a seeded draw; the acoustic model has seen their frames, so they flatter
every ``beta`` alike): the split a ``beta`` is chosen on. ``--split test`` speaks the
held-out prompts, to be run once, for the chosen ``beta``.

Run from the repository root::

    python benchmarks/tts_postfilter.py --model tts.onnx --betas 0 0.2 0.4 0.6 0.8
    python benchmarks/tts_postfilter.py --model slt.onnx --path SLT --transcripts \
        SLT/transcripts.txt --held-out-fraction 0.25 --wer-prompts 100
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import dump_json, markdown_table

from seqboltz.data import TTSDataModule
from seqboltz.runtime import load_voice
from seqboltz.speech import read_audio
from seqboltz.speech._recognize import PromptRecognizer, prompt_words, word_error_rate
from seqboltz.speech._voice import GENERATIONS

COLUMNS = ("identified", "identified_short", "identified_long", "wer", "wer_ratio")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="an exported text-to-speech .onnx")
    parser.add_argument("--path", default=None, help="its corpus (default: the Asterisk prompts)")
    parser.add_argument("--transcripts", default=None, help="the corpus's `name: text` file")
    parser.add_argument("--held-out-fraction", type=float, default=0.1)
    parser.add_argument("--val-fraction", type=float, default=0.05)
    parser.add_argument("--split", default="select", choices=["select", "test"])
    parser.add_argument("--train-prompts", type=int, default=120, help="with --split select")
    parser.add_argument("--betas", type=float, nargs="+", default=[0.0, 0.2, 0.4, 0.6, 0.8])
    parser.add_argument(
        "--generations",
        nargs="+",
        default=None,
        choices=sorted(GENERATIONS),
        help="how a voice with deltas makes its statics, each tried with every beta "
        "(default: the card's own)",
    )
    parser.add_argument(
        "--wer-prompts", type=int, default=20, help="prompts also decoded freely for WER"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    tts = load_voice(args.model)
    card_voice = tts.voice
    dm = TTSDataModule(
        path=args.path,
        transcripts=args.transcripts,
        held_out_fraction=args.held_out_fraction,
        val_fraction=args.val_fraction,
        order=card_voice.order,
        deltas=bool(card_voice.delta_columns),
    )
    dm.prepare_data()
    dm.setup()
    if args.split == "test":
        prompts = dm.prompts("test")
    else:
        train = dm.prompts("train")
        pick = np.random.default_rng(args.seed).permutation(len(train))[: args.train_prompts]
        prompts = dm.prompts("val") + [train[i] for i in sorted(pick)]
    all_texts = [q.text for q in dm.prompts("train") + dm.prompts("val") + dm.prompts("test")]
    rec = PromptRecognizer(all_texts)
    rate = card_voice.sample_rate
    short = np.array([len(prompt_words(p.text)) <= 2 for p in prompts])
    waves: dict[str, list[np.ndarray]] = {"real recordings": [read_audio(p.wav) for p in prompts]}
    for generation in args.generations or [None]:
        voice = card_voice
        if generation is not None:
            voice = dataclasses.replace(voice, generation=dict(GENERATIONS[generation]))
        for beta in args.betas:
            tts.voice = dataclasses.replace(voice, postfilter=beta)
            label = f"beta {beta:g}" if generation is None else f"{generation}, beta {beta:g}"
            waves[label] = [tts.speak(p.text, seed=args.seed).wave for p in prompts]
    tts.voice = card_voice
    rows: dict[str, dict[str, Any]] = {}
    for name, ws in waves.items():
        hits, errors, words = [], 0, 0
        for i, (w, p) in enumerate(zip(ws, prompts, strict=True)):
            hits.append(rec.identify(w, rate) == prompt_words(p.text))
            if i < args.wer_prompts:
                e, n = word_error_rate(prompt_words(p.text), rec.transcribe(w, rate))
                errors, words = errors + e, words + n
        h = np.array(hits)
        rows[name] = {
            "identified": float(h.mean()),
            "identified_short": float(h[short].mean()) if short.any() else float("nan"),
            "identified_long": float(h[~short].mean()) if (~short).any() else float("nan"),
            "wer": errors / max(words, 1),
            "wer_words": words,
        }
        print(name, rows[name], file=sys.stderr, flush=True)
    real_wer = rows["real recordings"]["wer"]
    for v in rows.values():
        v["wer_ratio"] = v["wer"] / real_wer if real_wer else float("nan")
    results = {
        "model": str(args.model),
        "card_postfilter": card_voice.postfilter,
        "prompts": len(prompts),
        "short_prompts": int(short.sum()),
        "rows": rows,
        "seconds": time.perf_counter() - started,
        "settings": vars(args),
    }
    print(
        f"{args.split}: {len(prompts)} prompts ({int(short.sum())} of one or two words), "
        f"WER on the first {min(args.wer_prompts, len(prompts))}"
    )
    print(
        markdown_table(
            ["system", "identified", "1-2 words", "3+ words", "WER", "WER / real"],
            [[k, *(v[c] for c in COLUMNS)] for k, v in rows.items()],
            [0, 3, 3, 3, 3, 2],
        )
    )
    if args.json:
        dump_json(results, args.json)
    return results


if __name__ == "__main__":
    main()
