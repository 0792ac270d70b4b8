"""Benchmark: seqboltz on a GPU — CD-1 training against the device's matmul roofline, and the
torch sampler's frames/s from batch 1 to 4096.

Two measurements on one device (CUDA when present, else the CPU; ``--tiny`` shrinks every size
so that the script runs anywhere in seconds, e.g. as a smoke test on a CPU machine):

1. **CD-1 training.** The matmul roofline of the device for the step's own shapes (a loop of
   the five ``B×D×H`` GEMMs of a CD-1 update and nothing else, float32, with TF32 off and, on
   CUDA, on), the plain reference loop of issue 15 (``benchmarks/train_rbm.py``), and
   seqboltz's bare CD-1 step (:class:`~seqboltz.training.RBMSystem`, closed-form gradient,
   mean-field negative visibles, no weight decay: the reference loop's algorithm) and its
   autograd path; examples/s, GFLOP/s (10·B·D·H per update) and the share of the roofline.
   Whether TF32 is on for the seqboltz and reference rows is printed (PyTorch's default is
   off for matmuls: ``torch.backends.cuda.matmul.allow_tf32``). Data: random Bernoulli
   probabilities of MNIST's shape (784 visibles; throughput does not depend on the values).
2. **Sampling.** The torch sampler of a motion CRBM (Taylor's generation: ``k`` Gibbs steps per
   frame, :meth:`~seqboltz.models.SequenceRBM.next_frame`) on the device, frames/s for batches
   of 1 to 4096 streams, float64 (what ``generate`` computes in) and float32, the noise drawn
   on the device (``generate`` itself draws it with numpy on the host, per sequence; here the
   device's own throughput is measured).

Run from the repository root::

    python benchmarks/gpu.py                          # CUDA if present (minutes)
    python benchmarks/gpu.py --device cpu --tiny      # smoke test anywhere (seconds)
    python benchmarks/gpu.py --json runs/bench/gpu.json
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `_common` when run as a script

from _common import dump_json, format_machine_info, machine_info, markdown_table, set_threads

from seqboltz._io import atomic_write
from seqboltz.models import BernoulliRBM, ConditionalRBM
from seqboltz.training import RBMSystem

N_VISIBLE, N_HIDDEN = 784, 500
MOTION_VISIBLE, MOTION_HIDDEN, MOTION_ORDER = 49, 150, 3  # recipes/motion_crbm.yaml's sizes
LR = 0.05


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_rate(
    fn: Callable[[], object], device: torch.device, items: int, min_seconds: float, repeats: int
) -> float:
    """Best items/s over ``repeats`` batches of calls, each batch lasting ``min_seconds``."""
    fn()  # warm-up: allocations, kernel selection, cuBLAS handles
    _sync(device)
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        _sync(device)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds or calls >= 1 << 16:
            break
        calls *= 2
    best = elapsed / calls
    for _ in range(repeats - 1):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        _sync(device)
        best = min(best, (time.perf_counter() - start) / calls)
    return items / best


# -- 1. CD-1 training ------------------------------------------------------------------------
def gemm_only_step(batch: int, d: int, h: int, device: torch.device) -> Callable[[], None]:
    """The five GEMMs of one CD-1 update (same shapes and orientations), into fixed outputs."""
    g = torch.Generator(device=device).manual_seed(0)
    w = torch.randn(d, h, generator=g, device=device) * 0.01
    v = torch.rand(batch, d, generator=g, device=device)
    hid, vis, grad = (
        torch.empty(batch, h, device=device),
        torch.empty(batch, d, device=device),
        torch.empty(d, h, device=device),
    )

    def step() -> None:
        torch.mm(v, w, out=hid)
        torch.mm(hid, w.T, out=vis)
        torch.mm(vis, w, out=hid)
        torch.mm(v.T, hid, out=grad)
        torch.mm(vis.T, hid, out=grad)

    return step


def reference_step(batch: int, d: int, h: int, device: torch.device) -> Callable[[], None]:
    """Issue 15's reference CD-1 loop body, plain tensor ops (see benchmarks/train_rbm.py)."""
    g = torch.Generator(device=device).manual_seed(0)
    data = torch.rand(batch, d, generator=g, device=device)
    w = torch.randn(d, h, generator=g, device=device) * 0.01
    b, c = torch.zeros(d, device=device), torch.zeros(h, device=device)
    vel_w, vel_b, vel_c = torch.zeros_like(w), torch.zeros_like(b), torch.zeros_like(c)
    lr, momentum = LR / batch, 0.9

    def step() -> None:
        v0 = data
        ph0 = torch.sigmoid(c + v0 @ w)
        h0 = (torch.rand(ph0.shape, generator=g, device=device) < ph0).float()
        pv1 = torch.sigmoid(b + h0 @ w.T)
        ph1 = torch.sigmoid(c + pv1 @ w)
        d_w = v0.T @ ph0 - pv1.T @ ph1
        vel_w.mul_(momentum).add_(d_w, alpha=lr)
        vel_b.mul_(momentum).add_((v0 - pv1).sum(0), alpha=lr)
        vel_c.mul_(momentum).add_((ph0 - ph1).sum(0), alpha=lr)
        w.add_(vel_w)
        b.add_(vel_b)
        c.add_(vel_c)

    return step


def seqboltz_step(
    batch: int, d: int, h: int, device: torch.device, closed_form: bool
) -> Callable[[], None]:
    """RBMSystem's CD-1 step as the Trainer calls it (training_step, zero_grad and backward
    hooks, optimizer.step, on_train_batch_end), without a Trainer; the reference's algorithm."""
    torch.manual_seed(0)
    model = BernoulliRBM(d, h).to(device)
    system = RBMSystem(
        model,
        k=1,
        lr=LR,
        negative="mean_field",
        weight_decay=0.0,
        initial_momentum=0.9,
        eval_log_z="none",
        closed_form=closed_form,
    )
    system.generator = torch.Generator(device=device).manual_seed(0)
    optimizer = system.configure_optimizers()
    data = torch.rand(batch, d, generator=system.generator, device=device)

    def step() -> None:
        loss = system.training_step(data, 0)
        system.optimizer_zero_grad(0, 0, optimizer)
        system.backward(loss)
        optimizer.step()
        system.on_train_batch_end(loss, data, 0)

    return step


def training_rows(
    device: torch.device, batches: list[int], min_seconds: float, repeats: int
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    tf32_modes = [False, True] if device.type == "cuda" else [False]
    for batch in batches:
        flops = 10 * batch * N_VISIBLE * N_HIDDEN
        roof: dict[bool, float] = {}
        for tf32 in tf32_modes:
            torch.backends.cuda.matmul.allow_tf32 = tf32
            rate = timed_rate(
                gemm_only_step(batch, N_VISIBLE, N_HIDDEN, device), device, 1, min_seconds, repeats
            )
            roof[tf32] = rate
            rows.append(
                {
                    "contender": f"GEMM-only (5 GEMMs/update), TF32 {'on' if tf32 else 'off'}",
                    "batch": batch,
                    "tf32": tf32,
                    "examples_per_s": rate * batch,
                    "gflops": rate * flops / 1e9,
                    "share_of_roofline": 1.0,
                }
            )
        torch.backends.cuda.matmul.allow_tf32 = False  # PyTorch's default for matmuls
        contenders: list[tuple[str, Callable[[], None]]] = [
            ("reference loop (issue 15)", reference_step(batch, N_VISIBLE, N_HIDDEN, device)),
            (
                "seqboltz CD-1 (bare step, closed form)",
                seqboltz_step(batch, N_VISIBLE, N_HIDDEN, device, True),
            ),
            (
                "seqboltz CD-1 (bare step, autograd)",
                seqboltz_step(batch, N_VISIBLE, N_HIDDEN, device, False),
            ),
        ]
        for name, fn in contenders:
            rate = timed_rate(fn, device, 1, min_seconds, repeats)
            rows.append(
                {
                    "contender": name,
                    "batch": batch,
                    "tf32": False,
                    "examples_per_s": rate * batch,
                    "gflops": rate * flops / 1e9,
                    "share_of_roofline": rate / roof[False],
                }
            )
    return rows


# -- 2. sampling -----------------------------------------------------------------------------
def sampler_rate(
    batch: int,
    gibbs_steps: int,
    frames: int,
    dtype: torch.dtype,
    device: torch.device,
    min_seconds: float,
    repeats: int,
) -> float:
    """Frames/s of ``frames`` frames of ``batch`` streams of a motion CRBM (Taylor's sampler)."""
    torch.manual_seed(0)
    model = ConditionalRBM(MOTION_VISIBLE, MOTION_HIDDEN, order=MOTION_ORDER, init_std=0.05)
    model = model.to(device=device, dtype=dtype)
    g = torch.Generator(device=device).manual_seed(0)
    start = torch.randn(
        batch, MOTION_ORDER, MOTION_VISIBLE, generator=g, device=device, dtype=dtype
    )

    @torch.no_grad()
    def run() -> None:
        window = start
        for _ in range(frames):
            noise = torch.rand(
                batch, gibbs_steps, MOTION_HIDDEN, generator=g, device=device, dtype=dtype
            )
            v = model.next_frame({"history": window}, noise)
            window = torch.cat([v[:, None], window[:, :-1]], dim=1)

    return timed_rate(run, device, batch * frames, min_seconds, repeats)


def sampling_rows(
    device: torch.device,
    batches: list[int],
    gibbs_steps: int,
    frames: int,
    min_seconds: float,
    repeats: int,
) -> list[dict[str, Any]]:
    rows = []
    for dtype in (torch.float64, torch.float32):
        for batch in batches:
            rate = sampler_rate(batch, gibbs_steps, frames, dtype, device, min_seconds, repeats)
            rows.append(
                {
                    "dtype": str(dtype).removeprefix("torch."),
                    "batch": batch,
                    "gibbs_steps": gibbs_steps,
                    "frames_per_s": rate,
                    "streams_at_30_fps": rate / 30.0,
                }
            )
    return rows


# -- main ------------------------------------------------------------------------------------
def device_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {"device": str(device)}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            name=props.name,
            memory_gib=round(props.total_memory / 2**30, 1),
            capability=f"{props.major}.{props.minor}",
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
        )
    return info


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p.add_argument("--tiny", action="store_true", help="tiny sizes: a smoke test, not results")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (torch and BLAS)")
    p.add_argument("--gibbs-steps", type=int, default=30, help="k of the sampler")
    p.add_argument("--json", type=Path, default=None, help="also write the JSON results here")
    args = p.parse_args(argv)
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda but torch sees no CUDA device")
    if args.gibbs_steps < 1:
        p.error("--gibbs-steps must be >= 1")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    set_threads(args.threads)
    device = torch.device(args.device)
    info = machine_info()
    print(format_machine_info(info), flush=True)
    dev = device_info(device)
    print(f"device: {dev}", flush=True)
    if args.tiny:
        print("--tiny: smoke test, the numbers below are not results", flush=True)
        train_batches, sample_batches, frames, min_s, repeats = [16], [1, 4], 2, 0.0, 1
        gibbs = min(args.gibbs_steps, 3)
    else:
        train_batches = [100, 1000, 10000]
        sample_batches = [1, 4, 16, 64, 256, 1024, 4096]
        frames, min_s, repeats, gibbs = 30, 0.2, 3, args.gibbs_steps

    training = training_rows(device, train_batches, min_s, repeats)
    print()
    print(f"CD-1 training, {N_VISIBLE}→{N_HIDDEN}, float32 on {device}")
    print(
        markdown_table(
            ["contender", "batch", "TF32", "examples/s", "GFLOP/s", "share of roofline"],
            [
                [
                    r["contender"],
                    r["batch"],
                    "on" if r["tf32"] else "off",
                    r["examples_per_s"],
                    r["gflops"],
                    r["share_of_roofline"],
                ]
                for r in training
            ],
            digits=[0, 0, 0, 0, 1, 3],
        )
    )
    sampling = sampling_rows(device, sample_batches, gibbs, frames, min_s, repeats)
    print()
    print(
        f"Motion CRBM sampler ({MOTION_VISIBLE}→{MOTION_HIDDEN}, order {MOTION_ORDER}, "
        f"k = {gibbs}) on {device}, {frames} frames per call"
    )
    print(
        markdown_table(
            ["dtype", "streams (batch)", "frames/s", "30-fps streams"],
            [[r["dtype"], r["batch"], r["frames_per_s"], r["streams_at_30_fps"]] for r in sampling],
            digits=[0, 0, 0, 0],
        )
    )
    result = {
        "benchmark": "gpu",
        "tiny": args.tiny,
        "machine": info,
        "device": dev,
        "tf32_default_matmul": False,
        "flop_convention": "one CD-1 update = 10·B·D·H FLOPs (five B×D×H GEMMs)",
        "training": training,
        "sampling": sampling,
    }
    text = dump_json(result)
    if args.json is not None:
        atomic_write(args.json, lambda f: f.write(text + "\n"), text=True)
    print()
    print(text)
    if any(not math.isfinite(r["examples_per_s"]) for r in training):
        raise SystemExit("a training rate is not finite")
    return result


if __name__ == "__main__":
    main()
