"""Helpers shared by the benchmark scripts: seeding, timing, GEMM ceiling, machine info, output.

Nothing here knows about a particular model; each ``benchmarks/*.py`` script imports what it
needs (run the scripts from the repository root, e.g. ``python benchmarks/train_rbm.py``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "GemmResult",
    "Timer",
    "best_time",
    "dump_json",
    "format_machine_info",
    "gemm_ceiling",
    "machine_info",
    "markdown_table",
    "measure_gemm",
    "seed_all",
    "set_threads",
    "timed",
]


# -- seeding and threads --------------------------------------------------------------------
def seed_all(seed: int) -> None:
    """Seed Python's, NumPy's legacy global and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_threads(n: int | None) -> None:
    """Use ``n`` threads in torch *and* in the BLAS/OpenMP pools NumPy and SciPy use.

    ``None`` leaves every pool as it is. Limiting both keeps comparisons between a torch code
    and a NumPy code (e.g. scikit-learn) fair.
    """
    if n is None:
        return
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return
    threadpool_limits(limits=n)


# -- timing ---------------------------------------------------------------------------------
@dataclass
class Timer:
    """Elapsed wall-clock seconds of a :func:`timed` block (``time.perf_counter``)."""

    seconds: float = math.nan


@contextmanager
def timed() -> Iterator[Timer]:
    """``with timed() as t: ...`` then ``t.seconds``."""
    timer = Timer()
    start = time.perf_counter()
    try:
        yield timer
    finally:
        timer.seconds = time.perf_counter() - start


def best_time(fn: Callable[[], object], repeats: int = 5, min_seconds: float = 0.05) -> float:
    """Best (smallest) seconds per call of ``fn`` over ``repeats`` timed batches.

    The number of calls per batch is chosen so that one batch lasts at least ``min_seconds``
    (one untimed warm-up call first), which keeps short calls above the timer's resolution.
    """
    fn()  # warm-up (allocations, thread pool start-up, kernel selection)
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds or calls >= 1 << 20:
            break
        calls *= 2
    best = elapsed / calls
    for _ in range(repeats - 1):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


# -- GEMM -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class GemmResult:
    """Best rate of ``(m, k) @ (k, n)``: ``2·m·k·n`` FLOPs per call."""

    m: int
    k: int
    n: int
    dtype: str
    seconds: float
    gflops: float

    @property
    def shape(self) -> str:
        return f"{self.m}x{self.k}x{self.n}"


def measure_gemm(
    m: int,
    k: int,
    n: int,
    dtype: torch.dtype = torch.float32,
    repeats: int = 5,
    min_seconds: float = 0.05,
    seed: int = 0,
) -> GemmResult:
    """Best-of-``repeats`` rate of ``torch.mm`` for ``(m, k) @ (k, n)`` on the CPU."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(m, k, generator=gen, dtype=dtype)
    b = torch.randn(k, n, generator=gen, dtype=dtype)
    out = torch.empty(m, n, dtype=dtype)
    seconds = best_time(lambda: torch.mm(a, b, out=out), repeats, min_seconds)
    return GemmResult(
        m, k, n, str(dtype).removeprefix("torch."), seconds, 2 * m * k * n / seconds / 1e9
    )


def gemm_ceiling(
    sizes: Sequence[int] = (2048, 4096), dtype: torch.dtype = torch.float32, repeats: int = 3
) -> tuple[float, list[GemmResult]]:
    """The machine's GEMM ceiling: best GFLOP/s of large square ``torch.mm`` of ``sizes``."""
    results = [measure_gemm(s, s, s, dtype, repeats=repeats, min_seconds=0.0) for s in sizes]
    return max(r.gflops for r in results), results


# -- machine --------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    for key in ("model name", "Model", "Hardware", "CPU part"):
        for line in text.splitlines():
            if line.startswith(key) and ":" in line:
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """CPU model, core and thread counts, library versions and BLAS-related settings."""
    info: dict[str, Any] = {
        "cpu_model": _cpu_model(),
        "machine": platform.machine(),
        "os_cpu_count": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_mkl": torch.backends.mkl.is_available(),
        "numpy": np.__version__,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }
    try:
        import sklearn

        info["sklearn"] = sklearn.__version__
    except ImportError:  # pragma: no cover
        info["sklearn"] = None
    try:
        from threadpoolctl import threadpool_info

        info["native_pools"] = [
            {k: p.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
            | {"library": Path(str(p.get("filepath", ""))).name}
            for p in threadpool_info()
        ]
    except ImportError:  # pragma: no cover
        info["native_pools"] = None
    return info


def format_machine_info(info: dict[str, Any]) -> str:
    """Human-readable lines for :func:`machine_info`."""
    lines = [
        f"CPU: {info['cpu_model']} ({info['machine']}), {info['os_cpu_count']} logical CPUs "
        f"({info['affinity_cpus']} usable)",
        f"torch {info['torch']} (threads: {info['torch_threads']}, MKL: {info['torch_mkl']}), "
        f"numpy {info['numpy']}, scikit-learn {info['sklearn']}, Python {info['python']}",
        "OPENBLAS_CORETYPE: "
        + (
            "not set"
            if info["OPENBLAS_CORETYPE"] is None
            else f"set to {info['OPENBLAS_CORETYPE']!r}"
        )
        + f"; OMP_NUM_THREADS: {info['OMP_NUM_THREADS'] or 'not set'}",
    ]
    for pool in info.get("native_pools") or []:
        lines.append(
            f"native pool: {pool['internal_api']} {pool['version'] or ''} ({pool['library']}), "
            f"{pool['num_threads']} threads"
            + (f", kernel {pool['architecture']}" if pool.get("architecture") else "")
        )
    return "\n".join(lines)


# -- output ---------------------------------------------------------------------------------
def _cell(value: Any, digits: int) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        if value != 0 and abs(value) < 10.0**-digits:
            return f"{value:.2g}"
        return f"{value:,.{digits}f}"
    return str(value)


def markdown_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], digits: int | Sequence[int] = 2
) -> str:
    """A GitHub Markdown table; ``None``/NaN print as ``—``.

    Floats get ``digits`` decimals (one number for all columns or one per column). Columns
    holding numbers are right-aligned.
    """
    per_column = [digits] * len(headers) if isinstance(digits, int) else list(digits)
    if len(per_column) != len(headers):
        raise ValueError(f"digits has {len(per_column)} entries for {len(headers)} columns")
    body = [[_cell(v, d) for v, d in zip(row, per_column, strict=True)] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(headers)]
    numeric = [
        any(isinstance(r[i], int | float) and not isinstance(r[i], bool) for r in rows)
        for i in range(len(headers))
    ]

    def line(cells: Sequence[str]) -> str:
        padded = [
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(cells, widths, numeric, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join(
            "-" * (w + 1) + ":" if num else "-" * (w + 2)
            for w, num in zip(widths, numeric, strict=True)
        )
        + "|"
    )
    return "\n".join([line(list(headers)), rule, *(line(r) for r in body)])


def _jsonable(obj: Any) -> Any:
    """Make ``obj`` strict JSON: dataclasses to dicts, NaN/inf to ``None``, numpy to Python."""
    if hasattr(obj, "__dataclass_fields__") and not isinstance(obj, type):
        return _jsonable(asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def dump_json(obj: Any, path: str | Path | None = None) -> str:
    """``obj`` as indented strict JSON; also written to ``path`` if given."""
    text = json.dumps(_jsonable(obj), indent=2, allow_nan=False)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n")
    return text


def quiet_trainer(max_epochs: int, callbacks: list[Any] | None = None) -> Any:
    """A CPU Lightning Trainer for timing: no logger, checkpoints, bars, summary or validation."""
    import lightning as L

    return L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=max_epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=callbacks or [],
    )


def artifact_with_data(
    parser: argparse.ArgumentParser, model: str, what: str = "", **overrides: Any
) -> Any:
    """``(artifact, its training DataModule, set up)`` of an exported model; a missing or
    unreadable file, or data that cannot be rebuilt, end the script through ``parser.error``
    (one line, after ``what``)."""
    from seqboltz.eval._cli import datamodule_from_card
    from seqboltz.runtime import ArtifactError, load_artifact

    try:
        art = load_artifact(model)
        dm = datamodule_from_card(art.card, **overrides)
    except (ArtifactError, ValueError, OSError) as exc:
        parser.error(f"{what}{exc}")
    dm.prepare_data()
    dm.setup()
    return art, dm


def styled_artifact(parser: argparse.ArgumentParser, model: str, **overrides: Any) -> Any:
    """:func:`artifact_with_data` of a model that takes a style (else ``parser.error``)."""
    art, dm = artifact_with_data(parser, model, **overrides)
    if not art.style_size:
        parser.error(f"model {art.name!r} takes no style")
    return art, dm


def fit_recipe(recipe: str | Path, root: Path, threads: int | None = None) -> Path:
    """Run ``seqboltz fit --config <recipe>`` into ``root`` and return its newest ``last.ckpt``.

    ``threads`` sets ``OMP_NUM_THREADS`` of the training process (on a busy machine one
    thread avoids OpenMP threads spinning against other jobs). Raises ``SystemExit`` with the
    end of the log when training fails.
    """
    import subprocess
    import sys

    cmd = [
        sys.executable,
        "-m",
        "seqboltz.cli",
        "fit",
        "--config",
        str(recipe),
        f"--trainer.default_root_dir={root}",
        "--trainer.enable_progress_bar=false",
    ]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    print(f"training: {' '.join(cmd[2:])}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"training {recipe} failed:\n{done.stderr[-3000:]}")
    print(f"  trained in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return max(root.rglob("last.ckpt"), key=lambda p: p.stat().st_mtime)


def start_serve(*args: str) -> tuple[subprocess.Popen[str], str]:
    """``seqboltz serve --port 0 ARGS`` in a subprocess: ``(process, "host:port")`` once it
    prints its listening line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "seqboltz.cli", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline()
        if line.startswith("{"):
            return proc, json.loads(line)["listening"]["address"]
        if proc.poll() is not None:
            raise RuntimeError("server did not start")
