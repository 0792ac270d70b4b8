"""Benchmark: conditional RBM training throughput and torch generation speed on this CPU.

On the CMU-style take (``recipes/motion_crbm.yaml``'s data: 30 fps, order 3, 150 hidden),
in one process:

1. training throughput in frames (windows) per second of the CRBM and the factored CRBM
   through the real Lightning path (``RBMSystem`` + ``Trainer``, CD-1, batch 100), with the
   same process's least-squares AR fit on the same windows as a peer;
2. torch generation speed (Taylor's sampler, ``k = 30`` Gibbs steps per frame) in frames per
   second at batch 1 and batch 64, next to the linear AR baseline's numpy generation.

Run from the repository root::

    python benchmarks/train_sequence.py [--epochs 5] [--frames 300] [--json PATH]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `_common` when run as a script

from _common import (
    dump_json,
    format_machine_info,
    machine_info,
    markdown_table,
    quiet_trainer,
    seed_all,
)

from seqboltz.data import MotionDataModule
from seqboltz.eval._sequence import fit_linear_ar
from seqboltz.models import ConditionalRBM, FactoredConditionalRBM, SequenceRBM
from seqboltz.training import RBMSystem


class _BatchTimer(Callback):
    """Seconds spent in training batches after the first epoch (warm-up excluded)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.frames = 0
        self._start = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        if trainer.current_epoch > 0:
            self.seconds += time.perf_counter() - self._start
            self.frames += int(batch["v"].shape[0])


def train_throughput(model: SequenceRBM, dm: MotionDataModule, epochs: int) -> float:
    """Frames per second of CD-1 training through Lightning."""
    timer = _BatchTimer()
    system = RBMSystem(model, lr=0.01, mean_field_negative=True, eval_log_z="none")
    quiet_trainer(epochs + 1, [timer]).fit(system, dm)
    return timer.frames / timer.seconds


def generation_speed(
    model: SequenceRBM, seeds: torch.Tensor, frames: int, batch: int, style: torch.Tensor | None
) -> float:
    """Generated frames per second (all sequences counted) at ``batch`` sequences."""
    s = seeds[:1].expand(batch, -1, -1).contiguous()
    st = None if style is None else style[:1].expand(batch, -1).contiguous()
    model.generate(s, 5, 30, style=st)  # warm-up
    start = time.perf_counter()
    model.generate(s, frames, 30, style=st)
    return batch * frames / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5, help="timed training epochs")
    parser.add_argument("--frames", type=int, default=300, help="frames per generation timing")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning").setLevel(logging.ERROR)
    seed_all(0)
    print(format_machine_info(machine_info()))

    dm = MotionDataModule(order=3)
    dm_style = MotionDataModule(order=3, style="root_speed")
    for m in (dm, dm_style):
        m.prepare_data()
        m.setup("fit")
    d, windows = dm.n_features, dm.n_windows("train")
    crbm = ConditionalRBM(d, 150, 3)
    fcrbm = FactoredConditionalRBM(d, 150, 3, n_style=1, n_factors=100, gated_autoregressive=False)
    train_fps = {
        "CRBM": train_throughput(crbm, dm, args.epochs),
        "FCRBM": train_throughput(fcrbm, dm_style, args.epochs),
    }
    start = time.perf_counter()
    ar = fit_linear_ar(dm.clips("train"), 3)
    train_fps["linear AR (least squares, numpy)"] = windows / (time.perf_counter() - start)

    seeds = torch.from_numpy(np.stack([c[:3] for c in dm.clips("test")])).float()
    style = torch.zeros(seeds.shape[0], 1)
    gen: dict[str, dict[int, float]] = {
        "CRBM": {b: generation_speed(crbm, seeds, args.frames, b, None) for b in (1, 64)},
        "FCRBM": {b: generation_speed(fcrbm, seeds, args.frames, b, style) for b in (1, 64)},
    }
    ar_speed = {}
    for b in (1, 64):
        s = np.repeat(seeds[:1].double().numpy(), b, axis=0)
        start = time.perf_counter()
        ar.generate(s, args.frames, seed=0)
        ar_speed[b] = b * args.frames / (time.perf_counter() - start)
    gen["linear AR (numpy)"] = ar_speed

    rows = [
        [name, train_fps[name], gen[name][1], gen[name][64], gen[name][64] / gen[name][1]]
        for name in ("CRBM", "FCRBM")
    ]
    rows.append(
        [
            "linear AR (order 3)",
            train_fps["linear AR (least squares, numpy)"],
            ar_speed[1],
            ar_speed[64],
            ar_speed[64] / ar_speed[1],
        ]
    )
    print(
        f"\nCMU-style take, {d} features at 30 fps, order 3, {windows} training windows; "
        "CRBM/FCRBM 150 hidden (FCRBM 100 factors), CD-1, batch 100; generation k = 30.\n"
    )
    print(
        markdown_table(
            [
                "model",
                "training frames/s",
                "generation frames/s (batch 1)",
                "generation frames/s (batch 64)",
                "batch-64 speed-up",
            ],
            rows,
            digits=[0, 0, 0, 0, 1],
        )
    )
    print(
        "\nReal time at 30 fps needs 30 frames/s per stream; batch-64 throughput counts all "
        "64 sequences' frames."
    )
    result = {
        "training_frames_per_second": train_fps,
        "generation_frames_per_second": {
            k: {str(b): v for b, v in g.items()} for k, g in gen.items()
        },
        "features": d,
        "windows": windows,
    }
    print(dump_json(result, args.json))


if __name__ == "__main__":
    main()
