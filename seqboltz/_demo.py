"""``seqboltz demo-mnist``: train the MNIST recipe briefly, evaluate it, draw pictures.

Trains the MNIST recipe briefly on MNIST-5k (fetched once through the pinned fetcher and
cached), reports the test log-likelihood (AIS), and writes PNG grids of samples and filters.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch

from seqboltz._io import atomic_write

__all__ = ["default_recipe", "demo_main"]


def default_recipe() -> Path:
    """``recipes/mnist_rbm.yaml`` of the source checkout this package is installed from."""
    return Path(__file__).resolve().parents[1] / "recipes" / "mnist_rbm.yaml"


def demo_main(argv: Sequence[str]) -> int:
    """Entry point of ``seqboltz demo-mnist``."""
    parser = argparse.ArgumentParser(prog="seqboltz demo-mnist", description=__doc__)
    parser.add_argument("--config", type=Path, default=default_recipe(), help="recipe YAML")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    parser.add_argument("--ais-chains", type=int, default=100)
    parser.add_argument("--ais-betas", type=int, default=14500)
    parser.add_argument("--sample-steps", type=int, default=1000, help="Gibbs steps per sample")
    args = parser.parse_args(list(argv))
    if not args.config.is_file():
        parser.error(
            f"recipe not found: {args.config} (run from a seqboltz checkout or pass --config)"
        )

    from seqboltz.eval._cli import evaluate_checkpoint
    from seqboltz.models import load_model
    from seqboltz.training._cli import run_cli
    from seqboltz.viz import filter_grid, image_grid, save_png

    cli = run_cli(
        [
            "fit",
            "--config",
            str(args.config),
            f"--trainer.max_epochs={args.epochs}",
            f"--trainer.default_root_dir={args.out}",
            "--trainer.check_val_every_n_epoch=5",
        ]
    )
    callback = cli.trainer.checkpoint_callback
    checkpoint = getattr(callback, "last_model_path", "") if callback else ""
    if not checkpoint:
        raise RuntimeError("training wrote no checkpoint")
    report = evaluate_checkpoint(
        checkpoint, method="ais", ais_chains=args.ais_chains, ais_betas=args.ais_betas
    )
    print(report.table())

    model = load_model(checkpoint)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        chains = model.init_chains(100, generator)
        step = model.gibbs_chain(chains, args.sample_steps, generator)
    side = round(model.n_visible**0.5)
    samples_png = save_png(
        args.out / "samples.png", image_grid(step.v_mean.reshape(-1, side, side).numpy())
    )
    filters_png = save_png(
        args.out / "filters.png",
        filter_grid(model.weight.detach().numpy(), (side, side), n=100),  # type: ignore[operator]
    )
    summary = {"checkpoint": checkpoint, **asdict(report)}
    atomic_write(
        args.out / "report.json", lambda f: f.write(json.dumps(summary, indent=2)), text=True
    )
    print(f"samples:  {samples_png}\nfilters:  {filters_png}\nreport:   {args.out / 'report.json'}")
    return 0
