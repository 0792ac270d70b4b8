"""Benchmark: time to first audio of the ``Speak`` RPC against synthesising the whole utterance.

A real server process (``seqboltz serve --models DIR`` holding one text-to-speech artifact)
and a blocking client in this process, on the same cores. For each text (the Asterisk-style
prompts below, 1–6 s of speech) and ``--repeats`` seeds:

- *time to first audio*: from sending ``SpeakRequest`` to receiving the first ``AudioChunk``
  (the front end, the duration model, the first chunk's frames through the batcher and one
  WORLD call);
- *stream total*: to the last chunk, and its real-time factor (seconds of compute per second
  of audio);
- *whole utterance*: the same text offline in this process, ``TextToSpeech.speak`` (what a
  non-streaming service would have to finish before sending anything).

The first request of each kind is a warm-up (it loads the dictionary and the g2p model) and is
reported on its own. Run from the repository root::

    python benchmarks/tts_stream.py --model tts.onnx [--repeats 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `_common` when run as a script

from _common import dump_json, format_machine_info, machine_info, markdown_table, start_serve

from seqboltz.runtime import load_voice
from seqboltz.v1 import generation_pb2 as pb
from seqboltz.v1 import generation_pb2_grpc as pb_grpc

TEXTS = (
    "Please hold.",
    "Your call is important to us.",
    "Press 1 for sales, or 2 for support.",
    "The party you are calling is not available. Please leave a message after the tone.",
)


def speak_timed(stub: Any, model: str, text: str, seed: int) -> dict[str, float]:
    """Send one Speak request; seconds to the first and the last chunk, audio seconds."""
    tick = time.perf_counter()
    first = float("inf")
    samples, rate, chunks = 0, 1, 0
    for chunk in stub.Speak(pb.SpeakRequest(model=model, text=text, seed=seed)):
        if first == float("inf"):
            first = time.perf_counter() - tick
        samples += len(chunk.pcm) // 2
        rate = chunk.sample_rate
        chunks += 1
    total = time.perf_counter() - tick
    return {"first": first, "total": total, "audio": samples / rate, "chunks": chunks}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a text-to-speech artifact (.onnx)")
    parser.add_argument("--repeats", type=int, default=5, help="seeds per text")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="tts-stream-"))
    shutil.copy(args.model, folder / "voice.onnx")
    proc, address = start_serve("--models", str(folder), "--threads", "1")
    try:
        stub = pb_grpc.GenerationStub(grpc.insecure_channel(address))
        warm = speak_timed(stub, "voice", TEXTS[0], seed=0)
        tts = load_voice(args.model)
        tick = time.perf_counter()
        tts.speak(TEXTS[0])
        warm_offline = time.perf_counter() - tick
        rows: list[dict[str, Any]] = []
        for text in TEXTS:
            runs = [speak_timed(stub, "voice", text, seed) for seed in range(args.repeats)]
            offline = []
            for seed in range(args.repeats):
                tick = time.perf_counter()
                tts.speak(text, seed=seed)
                offline.append(time.perf_counter() - tick)
            audio = runs[0]["audio"]
            rows.append(
                {
                    "text": text,
                    "audio_s": audio,
                    "chunks": runs[0]["chunks"],
                    "first_ms": 1000 * statistics.median(r["first"] for r in runs),
                    "first_max_ms": 1000 * max(r["first"] for r in runs),
                    "stream_total_s": statistics.median(r["total"] for r in runs),
                    "stream_rtf": statistics.median(r["total"] for r in runs) / audio,
                    "offline_s": statistics.median(offline),
                }
            )
            print(rows[-1], file=sys.stderr, flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)
    results = {
        "machine": machine_info(),
        "model": args.model,
        "warm_up": {"first_ms": 1000 * warm["first"], "offline_s": warm_offline},
        "texts": rows,
        "settings": vars(args),
    }
    print(format_machine_info(results["machine"]))
    print(
        f"warm-up (first request: dictionary and g2p load): first audio "
        f"{results['warm_up']['first_ms']:.0f} ms; offline {warm_offline:.2f} s"
    )
    print(
        markdown_table(
            [
                "text",
                "audio s",
                "chunks",
                "first audio ms (median)",
                "max",
                "stream total s",
                "stream RTF",
                "whole utterance offline s",
            ],
            [
                [
                    r["text"][:40],
                    r["audio_s"],
                    r["chunks"],
                    r["first_ms"],
                    r["first_max_ms"],
                    r["stream_total_s"],
                    r["stream_rtf"],
                    r["offline_s"],
                ]
                for r in rows
            ],
            [0, 2, 0, 0, 0, 2, 2, 2],
        )
    )
    if args.json:
        dump_json(results, args.json)
    return results


if __name__ == "__main__":
    main()
