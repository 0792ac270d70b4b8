"""Benchmark: the shipped text-to-speech path (the runtime, torch-free) on the held-out prompts.

An exported voice (``seqboltz export`` of a checkpoint trained on
:class:`~seqboltz.data.TTSDataModule`) speaks each test prompt twice:

1. with the prompt's natural (aligned) phones and durations, from the card's silence frames:
   MCD, F0 RMSE, voicing error and GV ratio of its statics, with the card's parameter
   generation (block MLPG for a voice with deltas) and without it (the model's own static
   predictions), so the runtime's MLPG is measured where it runs;
2. from its text alone (:meth:`TextToSpeech.speak`, predicted durations, the written
   waveform): prompt identification by PocketSphinx with the grammar of every prompt text
   (as ``benchmarks/tts.py``), and levels (peak, RMS in dBFS over frames above -50 dBFS,
   the gain ``speak`` applied) against the real recordings.

Run from the repository root::

    python benchmarks/tts_runtime.py --model tts.onnx [--json benchmarks/tts_runtime.json]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import dump_json, markdown_table
from tts import acoustic_metrics, bootstrap_means, mean_metrics

from seqboltz.data import TTSDataModule
from seqboltz.runtime import load_voice
from seqboltz.speech import read_audio
from seqboltz.speech._recognize import PromptRecognizer, prompt_words
from seqboltz.speech._text import frame_features
from seqboltz.speech._voice import TextPlan


def levels(wave: np.ndarray, rate: int) -> dict[str, float]:
    """Peak, RMS dBFS of the 10-ms frames above -50 dBFS (the speech), clipped share."""
    hop = rate // 100
    frames = wave[: len(wave) // hop * hop].reshape(-1, hop)
    db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    loud = frames[db > -50]
    rms = 10 * np.log10(np.mean(loud**2) + 1e-12) if loud.size else -math.inf
    return {
        "peak": float(np.abs(wave).max()),
        "speech_rms_dbfs": float(rms),
        "clipped": float(np.mean(np.abs(wave) >= 0.999)),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="an exported text-to-speech .onnx")
    parser.add_argument("--max-test", type=int, default=None)
    parser.add_argument("--split", default="test", choices=["val", "test"], help="prompts scored")
    parser.add_argument(
        "--no-intelligibility", action="store_true", help="natural-duration acoustics only"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    tts = load_voice(args.model)
    voice = tts.voice
    wf = voice.features
    dm = TTSDataModule(order=voice.order, val_fraction=0.05, deltas=bool(voice.delta_columns))
    dm.prepare_data()
    dm.setup()
    test = dm.prompts(args.split)[: args.max_test]
    rows: dict[str, list[dict[str, float]]] = {"runtime, card's generation": []}
    if voice.delta_columns:
        rows["runtime, static predictions (no MLPG)"] = []
    for p in test:
        utt = p.alignment.utterance  # the aligned phones, with the recording's pauses
        plan = TextPlan(utt, p.durations, frame_features(utt, p.durations), p.alignment)
        frames = tts.frames(plan, seed=args.seed)
        statics = voice.statics(frames)
        rows["runtime, card's generation"].append(
            acoustic_metrics(p.frames, wf.inverse_transform(statics), wf)
        )
        if voice.delta_columns:
            plain = wf.inverse_transform(frames[:, : wf.dim])
            rows["runtime, static predictions (no MLPG)"].append(
                acoustic_metrics(p.frames, plain, wf)
            )
    results: dict[str, Any] = {
        "model": str(args.model),
        "card": {
            "name": tts.name,
            "gibbs_steps": tts.artifact.card.get("gibbs_steps"),
            "deltas": tts.artifact.card["features"].get("deltas"),
        },
        "acoustics": {k: mean_metrics(v) for k, v in rows.items()},
        "intervals": {k: bootstrap_means(v) for k, v in rows.items()},
        "per_prompt_mcd": {k: [r["mcd_db"] for r in v] for k, v in rows.items()},
    }
    if voice.delta_columns:
        from _structured_common import paired_bootstrap

        a, b = (np.array(v) for v in results["per_prompt_mcd"].values())
        results["mlpg_minus_plain"] = paired_bootstrap(a, b)
    if args.no_intelligibility:
        if args.json:
            dump_json(results | {"settings": vars(args)}, args.json)
        print(results["acoustics"], results.get("mlpg_minus_plain"))
        return results
    all_texts = [q.text for q in dm.prompts("train") + dm.prompts("val") + dm.prompts("test")]
    rec = PromptRecognizer(all_texts)
    spoken = {"real recordings": [], "runtime speak()": []}
    lv: dict[str, list[dict[str, float]]] = {k: [] for k in spoken}
    gains = []
    for p in test:
        real = read_audio(p.wav)
        speech = tts.speak(p.text, seed=args.seed)
        gains.append(speech.gain)
        for k, w in (("real recordings", real), ("runtime speak()", speech.wave)):
            spoken[k].append(rec.identify(w, wf.sample_rate) == prompt_words(p.text))
            lv[k].append(levels(w, wf.sample_rate))
    short = np.array([len(prompt_words(p.text)) <= 2 for p in test])
    results["intelligibility"] = {
        k: {
            "identified": float(np.mean(v)),
            "identified_short": float(np.array(v)[short].mean()),
            "identified_long": float(np.array(v)[~short].mean()),
            "prompts": len(v),
        }
        for k, v in spoken.items()
    }
    results["levels"] = {k: mean_metrics(v) for k, v in lv.items()}
    results["levels"]["runtime speak()"]["max_peak"] = max(r["peak"] for r in lv["runtime speak()"])
    results["gain"] = {"scaled": int(np.sum(np.array(gains) < 1)), "min": float(min(gains))}
    results["seconds"] = time.perf_counter() - started
    cols = ["mcd_db", "f0_rmse_hz", "vuv_error", "gv_ratio", "voiced", "energy_spread_db"]
    print(
        markdown_table(
            ["system", *cols],
            [[k, *[v[m] for m in cols]] for k, v in results["acoustics"].items()],
            [0, 3, 2, 3, 3, 3, 2],
        )
    )
    if "mlpg_minus_plain" in results:
        print("MLPG - plain MCD:", results["mlpg_minus_plain"])
    for k, v in results["intelligibility"].items():
        print(k, v, results["levels"][k])
    print("gain:", results["gain"])
    if args.json:
        dump_json(results | {"settings": vars(args)}, args.json)
    return results


if __name__ == "__main__":
    main()
