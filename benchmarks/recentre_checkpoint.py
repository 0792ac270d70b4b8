"""Re-centre a residual CRBM checkpoint's intercept at another k, and write a new checkpoint.

A residual CRBM's intercept is matched to its sampler at one number of Gibbs steps per frame
(``RecentreIntercept``). Until session 11 the motion recipes matched it at k = 10 and the card
generated at k = 1; this script re-centres such a checkpoint at the k it will generate with,
on its own training clips, without retraining (the session-11 diagnosis in
``benchmarks/RESULTS.md``). It prints the sampler's mean one-step error at k = 1 and k = 10
before, and at the new k after (on another noise draw), and records the k in the checkpoint
(``seqboltz export`` and ``seqboltz evaluate`` then default to it).

    python benchmarks/recentre_checkpoint.py best.ckpt best_k1.ckpt --gibbs-steps 1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from seqboltz._io import atomic_write
from seqboltz.eval._cli import datamodule_from_checkpoint
from seqboltz.models import ResidualCRBM, load_model
from seqboltz.training._recentre import recentre_intercept, sampler_mean_error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="a ResidualCRBM checkpoint of `seqboltz fit`")
    parser.add_argument("out", type=Path, help="the re-centred checkpoint to write")
    parser.add_argument("--gibbs-steps", type=int, default=1, help="the k to match (the card's)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    if args.gibbs_steps < 1:
        parser.error(f"--gibbs-steps must be >= 1; got {args.gibbs_steps}")
    if args.out.resolve() == args.checkpoint.resolve():
        parser.error("write the re-centred checkpoint to another file")
    torch.set_num_threads(args.threads)
    try:
        model = load_model(args.checkpoint).double().eval()
    except (FileNotFoundError, ValueError) as exc:
        parser.error(str(exc))
    if not isinstance(model, ResidualCRBM) or model.n_controls or model.n_style:
        parser.error(f"{args.checkpoint}: needs a ResidualCRBM without controls or style")
    dm = datamodule_from_checkpoint(args.checkpoint)
    dm.prepare_data()
    dm.setup("fit")
    clips = dm.clips("train")
    for k in sorted({1, 10, args.gibbs_steps}):
        error = float(sampler_mean_error(model, clips, k).norm())
        print(f"before: sampler mean error at k = {k}: {error:.4f} (norm over dimensions)")
    shift = recentre_intercept(model, clips, args.gibbs_steps)
    after = float(sampler_mean_error(model, clips, args.gibbs_steps, seed=1).norm())
    print(f"shift {float(shift.norm()):.4f}; after, at k = {args.gibbs_steps}: {after:.4f}")
    ckpt = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    key = "energy_model.visible_bias"
    ckpt["state_dict"][key] = model.visible_bias.detach().to(ckpt["state_dict"][key].dtype)
    ckpt.setdefault("seqboltz", {})["recentred_gibbs_steps"] = args.gibbs_steps
    atomic_write(args.out, lambda f: torch.save(ckpt, f))
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
