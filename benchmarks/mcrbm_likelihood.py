"""Benchmark: mean-covariance RBM against a Gaussian-Bernoulli RBM, held-out log-likelihood.

Trains (or loads checkpoints of) ``recipes/patches_mcrbm.yaml`` and
``recipes/patches_grbm_whitened.yaml``: the same ZCA-whitened 8×8 photo patches, the same
128 hidden units (64 mean + 64 covariance units for the mcRBM). For each model it estimates
``log Z`` by annealed importance sampling (float64, base ``N(0, I)`` for the mcRBM, a
per-pixel Gaussian fitted to the training patches for the GRBM) and reports the average
log-likelihood in nats per patch of

* ``val``: held-out patches from the training region (positions never trained on), and
* ``test``: patches from the bottom quarter of each photograph (never seen, more contrast),

with the interval that AIS's ``±3σ`` bounds on ``log Z`` give, and the AIS chains' effective
sample size. Two exact references follow: ``N(0, I)``, the Gaussian that whitened training data
follow, and an isotropic Gaussian scale mixture fitted by EM (how far modelling each patch's
contrast alone goes). It also writes the mcRBM's covariance filters, mean filters and samples
(its own sampler from ``init_chains``) as PNGs, and everything as JSON. From the repository
root::

    python benchmarks/mcrbm_likelihood.py [--mcrbm CKPT] [--grbm CKPT] [--betas 14500]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `_common` when run as a script

from _common import (
    dump_json,
    fit_recipe,
    format_machine_info,
    machine_info,
    markdown_table,
    set_threads,
)

from seqboltz.eval import ais_log_partition, log_likelihood
from seqboltz.eval._cli import datamodule_from_checkpoint
from seqboltz.models import EnergyModel, GaussianBernoulliRBM, MeanCovarianceRBM, load_model
from seqboltz.viz import image_grid, save_png

REPO = Path(__file__).resolve().parents[1]
FIGURES = REPO / "benchmarks" / "figures"
RECIPES = {
    "mcrbm": REPO / "recipes" / "patches_mcrbm.yaml",
    "grbm": REPO / "recipes" / "patches_grbm_whitened.yaml",
}


def train(name: str, root: Path, threads: int | None = None) -> Path:
    """``seqboltz fit --config <recipe>`` into ``root``; returns its ``last.ckpt``."""
    return fit_recipe(RECIPES[name], root, threads)


def hidden_label(model: EnergyModel) -> str:
    if isinstance(model, MeanCovarianceRBM):
        return f"{model.n_hidden} ({model.n_mean_hidden} mean + {model.n_cov_hidden} cov)"
    return str(model.n_hidden)


def evaluate(
    model: EnergyModel, data: Any, n_chains: int, n_betas: int, seed: int
) -> dict[str, Any]:
    """AIS ``log Z`` and per-patch log-likelihoods of val and test, with the ±3σ interval."""
    start = time.perf_counter()
    ais = ais_log_partition(model, data.train_tensor, n_chains=n_chains, n_betas=n_betas, seed=seed)
    seconds = time.perf_counter() - start
    out: dict[str, Any] = {
        "log_z": ais.log_z,
        "log_z_low": ais.log_z_low,
        "log_z_high": ais.log_z_high,
        "ess": ais.effective_sample_size,
        "ais_chains": n_chains,
        "ais_betas": ais.n_betas,
        "ais_seconds": seconds,
    }
    for split in ("val", "test"):
        ll = log_likelihood(model, getattr(data, f"{split}_tensor"), ais.log_z)
        mean = float(ll.mean())
        out[split] = {
            "log_likelihood": mean,
            "stderr": float(ll.std() / math.sqrt(ll.numel())),
            # log p = -F - log Z: a larger log Z bound gives a smaller likelihood.
            "low": mean - (ais.log_z_high - ais.log_z),
            "high": mean + (ais.log_z - ais.log_z_low),
            "n": int(ll.numel()),
        }
    return out


def gaussian_baseline(data: Any) -> dict[str, Any]:
    """Exact per-patch log-likelihood under ``N(0, I)``."""
    out: dict[str, Any] = {}
    for split in ("val", "test"):
        x = getattr(data, f"{split}_tensor").double()
        ll = -0.5 * (x * x).sum(1) - 0.5 * x.shape[1] * math.log(2 * math.pi)
        out[split] = {
            "log_likelihood": float(ll.mean()),
            "stderr": float(ll.std() / math.sqrt(ll.numel())),
        }
    return out


def scale_mixture_baseline(data: Any, k: int = 8, iterations: int = 300) -> dict[str, Any]:
    """Exact per-patch log-likelihood under an isotropic Gaussian scale mixture
    ``Σₖ πₖ N(0, sₖ² I)`` fitted to the training patches by EM (2k parameters).

    A reference for how much of a model's gain is the contrast of a patch varying (what the
    covariance units can express) rather than its structure.
    """
    d = data.train_tensor.shape[1]

    def components(r2: torch.Tensor, log_pi: torch.Tensor, log_s2: torch.Tensor) -> torch.Tensor:
        return (
            log_pi - 0.5 * d * (math.log(2 * math.pi) + log_s2) - 0.5 * r2[:, None] / log_s2.exp()
        )

    r2 = (data.train_tensor.double() ** 2).sum(1)
    log_s2 = torch.linspace(-4.0, 2.0, k, dtype=torch.float64)
    log_pi = torch.full((k,), -math.log(k), dtype=torch.float64)
    for _ in range(iterations):
        g = torch.softmax(components(r2, log_pi, log_s2), dim=1)
        log_pi = torch.log(g.mean(0))
        log_s2 = torch.log((g * r2[:, None]).sum(0) / (d * g.sum(0)))
    out: dict[str, Any] = {"k": k, "scales": log_s2.mul(0.5).exp().tolist()}
    for split in ("val", "test"):
        x = getattr(data, f"{split}_tensor").double()
        ll = torch.logsumexp(components((x * x).sum(1), log_pi, log_s2), dim=1)
        out[split] = {
            "log_likelihood": float(ll.mean()),
            "stderr": float(ll.std() / math.sqrt(ll.numel())),
        }
    return out


def write_figures(model: MeanCovarianceRBM, stats: dict[str, Any], seed: int) -> dict[str, str]:
    """Filters and samples of the mcRBM; samples also de-whitened back to pixels."""
    pictures = model.pictures(torch.Generator().manual_seed(seed))
    paths = {
        key: str(save_png(FIGURES / f"mcrbm_{name}.png", pictures[key]))
        for key, name in (
            ("cov_filters", "cov_filters"),
            ("mean_filters", "mean_filters"),
            ("samples", "samples"),
        )
    }
    if "dewhitening" in stats:  # the same samples as photographs: y Z⁻¹ + mean
        d = model.n_visible
        side = math.isqrt(d)
        dewhite = np.asarray(stats["dewhitening"], dtype=np.float64).reshape(d, d)
        mean = np.asarray(stats["mean"], dtype=np.float64)
        with torch.no_grad():
            g = torch.Generator().manual_seed(seed)
            y = model.gibbs_chain(model.init_chains(64, g), model.PICTURE_STEPS, g).v
        pixels = y.double().numpy() @ dewhite + mean
        lo, hi = np.percentile(pixels, [1, 99])
        grid = image_grid(((pixels - lo) / (hi - lo)).reshape(-1, side, side), ncols=16, scale=3)
        paths["samples_pixels"] = str(save_png(FIGURES / "mcrbm_samples_pixels.png", grid))
    return paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mcrbm", type=Path, help="checkpoint of patches_mcrbm.yaml (else train)")
    p.add_argument("--grbm", type=Path, help="checkpoint of patches_grbm_whitened.yaml")
    p.add_argument("--runs", type=Path, default=REPO / "runs" / "mcrbm_likelihood")
    p.add_argument("--chains", type=int, default=100)
    p.add_argument("--betas", type=int, default=14500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=Path, default=REPO / "benchmarks" / "mcrbm_likelihood.json")
    args = p.parse_args(argv)
    set_threads(args.threads)
    ckpts = {
        "mcrbm": args.mcrbm or train("mcrbm", args.runs / "mcrbm", args.threads),
        "grbm": args.grbm or train("grbm", args.runs / "grbm", args.threads),
    }
    results: dict[str, Any] = {"checkpoints": {k: str(v) for k, v in ckpts.items()}}
    rows = []
    data = None
    stats: dict[str, Any] = {}
    for name, ckpt in ckpts.items():
        model = load_model(ckpt)
        expected = MeanCovarianceRBM if name == "mcrbm" else GaussianBernoulliRBM
        if not isinstance(model, expected):
            raise SystemExit(f"{ckpt} holds a {type(model).__name__}, not a {expected.__name__}")
        dm = datamodule_from_checkpoint(ckpt)
        dm.setup("test")
        ckpt_stats = torch.load(ckpt, map_location="cpu", weights_only=True)["seqboltz"]["data"]
        if "whitening" not in ckpt_stats.get("stats", {}):
            raise SystemExit(f"{ckpt} was not trained on whitened patches")
        if name == "mcrbm":
            data, stats = dm, ckpt_stats["stats"]
        elif data is not None and not torch.equal(dm.test_tensor, data.test_tensor):
            raise SystemExit("the two checkpoints were trained on different data")
        print(f"AIS for {name}: {args.chains} chains × {args.betas} β ...", flush=True)
        res = evaluate(model, dm, args.chains, args.betas, args.seed)
        res["hidden"] = hidden_label(model)
        results[name] = res
        rows.append(
            [
                type(model).__name__,
                res["hidden"],
                res["val"]["log_likelihood"],
                f"[{res['val']['low']:.2f}, {res['val']['high']:.2f}]",
                res["test"]["log_likelihood"],
                f"[{res['test']['low']:.2f}, {res['test']['high']:.2f}]",
                res["log_z"],
                res["ess"],
            ]
        )
    assert data is not None
    base = gaussian_baseline(data)
    results["gaussian_baseline"] = base
    rows.append(
        [
            "N(0, I) (exact)",
            "0",
            base["val"]["log_likelihood"],
            "exact",
            base["test"]["log_likelihood"],
            "exact",
            None,
            None,
        ]
    )
    mixture = scale_mixture_baseline(data)
    results["scale_mixture_baseline"] = mixture
    rows.append(
        [
            f"Gaussian scale mixture, {mixture['k']} scales (EM, exact)",
            "0",
            mixture["val"]["log_likelihood"],
            "exact",
            mixture["test"]["log_likelihood"],
            "exact",
            None,
            None,
        ]
    )
    mc = load_model(ckpts["mcrbm"])
    assert isinstance(mc, MeanCovarianceRBM)
    results["figures"] = write_figures(mc, stats, args.seed)
    results["machine"] = machine_info()
    print(format_machine_info(results["machine"]))
    n_val, n_test = results["mcrbm"]["val"]["n"], results["mcrbm"]["test"]["n"]
    print(
        f"\nZCA-whitened 8×8 photo patches (D = 64); log-likelihood in nats per patch, AIS "
        f"({args.chains} chains × {args.betas} β, float64); val: {n_val} held-out patches "
        f"from the training region, test: {n_test} from the bottom quarter of each photo; "
        "[..]: interval from AIS's ±3σ bounds on log Z\n"
    )
    print(
        markdown_table(
            [
                "model",
                "hidden units",
                "val log-lik",
                "val ±3σ(log Z)",
                "test log-lik",
                "test ±3σ(log Z)",
                "log Z",
                "AIS ESS",
            ],
            rows,
            digits=[0, 0, 2, 0, 2, 0, 2, 1],
        )
    )
    for name in ("mcrbm", "grbm"):
        r = results[name]
        print(
            f"{name}: standard error of the mean over patches: val ±{r['val']['stderr']:.2f}, "
            f"test ±{r['test']['stderr']:.2f}; AIS {r['ais_seconds']:.0f} s"
        )
    print("\nfigures: " + ", ".join(results["figures"].values()))
    dump_json(results, args.json)
    print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
