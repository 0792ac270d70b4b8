"""Log partition functions: exact enumeration and annealed importance sampling.

* :func:`exact_log_partition` sums over every configuration of the smaller binary side of a
  model (Gaussian visibles are integrated analytically through
  :meth:`~seqboltz.models.EnergyModel.hidden_free_energy`).
* :func:`ais_log_partition` is annealed importance sampling (Neal 2001) along the geometric
  path from a base-rate model fitted to data to the model (Salakhutdinov & Murray 2008,
  "On the quantitative analysis of deep belief networks", ICML).
"""

from __future__ import annotations

import copy
import logging
import math
import sys
import time
from dataclasses import dataclass

import torch
from torch import Tensor

from seqboltz.models import EnergyModel

__all__ = [
    "AISResult",
    "ais_log_partition",
    "default_betas",
    "exact_log_partition",
    "log_likelihood",
    "log_progress_to_stderr",
]

logger = logging.getLogger("seqboltz.eval")
"""Progress of long estimates (AIS) at INFO level; silent unless logging is configured
(``seqboltz evaluate`` and ``seqboltz test`` send it to stderr)."""


class _StderrHandler(logging.Handler):
    """Writes each record's message as one line to whatever ``sys.stderr`` is at the time."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(record.getMessage() + "\n")
            sys.stderr.flush()
        except Exception:  # logging must not raise
            self.handleError(record)


def log_progress_to_stderr() -> None:
    """Send the ``seqboltz.eval`` INFO lines (AIS progress) to stderr, one plain line each
    (for the command line; the service's ``seqboltz.serving`` logs are left alone).

    Does nothing if that logger already has a handler.
    """
    if not logger.handlers:
        logger.addHandler(_StderrHandler())
        logger.propagate = False
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)


class _Progress:
    """Logs ``what: 30% (k/n …), elapsed, estimated time left`` every ``every`` of ``total``."""

    def __init__(self, what: str, total: int, every: float, unit: str) -> None:
        self.what, self.total, self.unit = what, total, unit
        self.start = time.perf_counter()
        enabled = every > 0 and total > 0 and logger.isEnabledFor(logging.INFO)
        n_marks = max(1, math.ceil(1.0 / every)) if enabled else 0
        # the last mark is the summary line that follows the loop
        self.marks = {math.ceil(total * i / n_marks) for i in range(1, n_marks)}

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def step(self, done: int) -> None:
        if done not in self.marks:
            return
        elapsed = self.elapsed()
        left = elapsed * (self.total - done) / done
        logger.info(
            "%s: %3.0f%% (%d/%d %s), %.1f s elapsed, about %.0f s left",
            self.what,
            100.0 * done / self.total,
            done,
            self.total,
            self.unit,
            elapsed,
            left,
        )


def _as_float64(model: EnergyModel) -> EnergyModel:
    """A float64 copy of ``model`` on the CPU-or-same device, leaving ``model`` untouched."""
    return copy.deepcopy(model).to(torch.float64).eval()


def _all_binary_states(n_units: int, start: int, stop: int, dtype: torch.dtype) -> Tensor:
    """Rows ``start..stop-1`` of the ``2**n_units`` binary states, ``(stop-start, n_units)``."""
    codes = torch.arange(start, stop, dtype=torch.int64)
    shifts = torch.arange(n_units, dtype=torch.int64)
    return ((codes[:, None] >> shifts) & 1).to(dtype)


@torch.no_grad()
def exact_log_partition(
    model: EnergyModel, *, max_units: int = 25, chunk_size: int = 1 << 14
) -> float:
    """Exact ``log Z`` by enumerating the smaller binary side of ``model``.

    Binary visibles with ``D <= H`` are enumerated through ``F(v)``; otherwise the hidden
    units are enumerated through ``F(h)`` (for Gaussian visibles this integrates ``v`` in
    closed form). Computed in float64.

    Args:
        model: an unconditional energy model.
        max_units: refuse to enumerate more than ``2**max_units`` states.
        chunk_size: states evaluated per batch.

    Returns:
        ``log Z`` in nats.

    Raises:
        ValueError: the smaller binary side has more than ``max_units`` units.
    """
    m = _as_float64(model)
    enumerate_visible = m.visible_kind == "bernoulli" and m.n_visible <= m.n_hidden
    n_units = m.n_visible if enumerate_visible else m.n_hidden
    if n_units > max_units:
        raise ValueError(
            f"exact log Z needs 2**{n_units} terms ({type(model).__name__} with "
            f"{m.n_visible} visible and {m.n_hidden} hidden units); the limit is "
            f"2**{max_units}: use ais_log_partition instead"
        )
    free_energy = m.free_energy if enumerate_visible else m.hidden_free_energy
    total = 1 << n_units
    parts = []
    for start in range(0, total, chunk_size):
        states = _all_binary_states(n_units, start, min(start + chunk_size, total), torch.float64)
        parts.append(torch.logsumexp(-free_energy(states.to(m.reference_parameter().device)), 0))
    return float(torch.logsumexp(torch.stack(parts), 0))


def default_betas(n_betas: int = 14500) -> Tensor:
    """Inverse temperatures ``0 = β₀ < … < β_K = 1`` shaped like Salakhutdinov & Murray's.

    Their schedule spends 500 steps on [0, 0.5), 4000 on [0.5, 0.9) and 10000 on [0.9, 1];
    this keeps those proportions for any total ``n_betas >= 4``.
    """
    if n_betas < 4:
        raise ValueError(f"n_betas must be >= 4, got {n_betas}")
    n1 = max(1, round(n_betas * 500 / 14500))
    n2 = max(1, round(n_betas * 4000 / 14500))
    n3 = max(2, n_betas - n1 - n2)
    return torch.cat(
        [
            torch.linspace(0.0, 0.5, n1 + 1, dtype=torch.float64)[:-1],
            torch.linspace(0.5, 0.9, n2 + 1, dtype=torch.float64)[:-1],
            torch.linspace(0.9, 1.0, n3, dtype=torch.float64),
        ]
    )


@dataclass(frozen=True)
class AISResult:
    """An AIS estimate of ``log Z`` and its spread.

    Attributes:
        log_z: ``log`` of the mean importance weight times ``Z_base``.
        log_z_low: ``log(Ẑ - 3 s)``, with ``s`` the standard error of ``Ẑ`` (``-inf`` if
            the interval reaches zero), as reported by Salakhutdinov & Murray (2008).
        log_z_high: ``log(Ẑ + 3 s)``.
        log_z_std: standard error of ``log Ẑ`` by the delta method, ``s / Ẑ``.
        effective_sample_size: ``(Σw)² / Σw²`` over the chains.
        log_weights: per-chain log importance weights ``(n_chains,)`` (float64).
        n_betas: number of intermediate distributions.
    """

    log_z: float
    log_z_low: float
    log_z_high: float
    log_z_std: float
    effective_sample_size: float
    log_weights: Tensor
    n_betas: int


@torch.no_grad()
def ais_log_partition(
    model: EnergyModel,
    base_data: Tensor | None = None,
    *,
    n_chains: int = 100,
    n_betas: int = 14500,
    betas: Tensor | None = None,
    seed: int = 0,
    report_every: float = 0.1,
) -> AISResult:
    """Estimate ``log Z`` by annealed importance sampling (Salakhutdinov & Murray 2008).

    The base distribution is the model family's tractable base-rate model fitted to
    ``base_data`` (the training set: visible marginals for binary units, per-dimension
    Gaussians for Gaussian ones); chains run in parallel along the geometric path
    ``f_β = f_base^(1-β) f_model^β``, each transition one block Gibbs step at ``β``.
    Computed in float64 on the model's device.

    Args:
        model: an unconditional energy model.
        base_data: ``(N, D)`` data for the base-rate model; ``None`` uses the model's own
            visible biases (and scales).
        n_chains: number of independent AIS runs (``M``).
        n_betas: number of inverse temperatures (ignored if ``betas`` is given).
        betas: explicit increasing schedule from 0 to 1, ``(K,)``.
        seed: seed of the chains' random numbers.
        report_every: log progress at INFO level on the ``seqboltz.eval`` logger every this
            fraction of the schedule (elapsed and remaining time), then the estimate with its
            ±3σ bounds; ``0`` never. Silent unless logging is configured (see
            :func:`log_progress_to_stderr`).

    Returns:
        An :class:`AISResult`.
    """
    if n_chains < 2:
        raise ValueError(f"n_chains must be >= 2, got {n_chains}")
    m = _as_float64(model)
    schedule = default_betas(n_betas) if betas is None else betas.to(torch.float64).flatten()
    if (
        schedule.numel() < 2
        or not bool(torch.isfinite(schedule).all())
        or schedule[0].item() != 0.0
        or schedule[-1].item() != 1.0
        or bool((schedule.diff() < 0).any())
    ):
        raise ValueError("betas must be finite and increase monotonically from 0 to 1")
    device = m.reference_parameter().device
    generator = torch.Generator(device=device).manual_seed(seed)
    path = m.annealing_path(None if base_data is None else base_data.to(device, torch.float64))
    beta_list = schedule.tolist()

    progress = _Progress(
        f"AIS ({type(model).__name__}, {n_chains} chains)",
        len(beta_list) - 1,
        report_every,
        "steps",
    )
    v = path.sample_base(n_chains, generator)
    log_w = torch.zeros(n_chains, dtype=torch.float64, device=device)
    for i in range(1, len(beta_list)):
        delta, v = path.advance(v, beta_list[i - 1], beta_list[i], generator)
        log_w += delta
        progress.step(i)
    result = _summarise(log_w.cpu(), path.log_z_base, len(beta_list))
    if progress.marks:
        logger.info(
            "AIS: log Z = %.3f, ±3σ [%.3f, %.3f], effective sample size %.1f of %d chains, "
            "%d β, %.1f s",
            result.log_z,
            result.log_z_low,
            result.log_z_high,
            result.effective_sample_size,
            n_chains,
            result.n_betas,
            progress.elapsed(),
        )
    return result


def _summarise(log_w: Tensor, log_z_base: float, n_betas: int) -> AISResult:
    n = log_w.numel()
    log_mean = float(torch.logsumexp(log_w, 0)) - math.log(n)
    w = torch.exp(log_w - log_mean)  # weights relative to their mean (mean 1)
    rel_se = float(w.std(unbiased=True)) / math.sqrt(n)
    ess = float(w.sum() ** 2 / (w**2).sum())
    log_z = log_z_base + log_mean
    low = log_z + math.log(1.0 - 3.0 * rel_se) if 3.0 * rel_se < 1.0 else -math.inf
    return AISResult(
        log_z=log_z,
        log_z_low=low,
        log_z_high=log_z + math.log(1.0 + 3.0 * rel_se),
        log_z_std=rel_se,
        effective_sample_size=ess,
        log_weights=log_w,
        n_betas=n_betas,
    )


@torch.no_grad()
def log_likelihood(model: EnergyModel, v: Tensor, log_z: float, batch_size: int = 1000) -> Tensor:
    """Per-example log-likelihood ``log p(v) = -F(v) - log Z`` in nats, ``(N, D)`` → ``(N,)``."""
    model.check_visible(v, "v")
    m = _as_float64(model)
    device = m.reference_parameter().device
    out = [
        -m.free_energy(chunk.to(device, torch.float64)).cpu() - log_z
        for chunk in v.split(batch_size)
    ]
    return torch.cat(out)
