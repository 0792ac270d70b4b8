"""``seqboltz stack``: two greedily trained CRBM layers as one generating model.

Taylor, Hinton & Roweis (2007, section 3.3) train a second conditional RBM on the first one's
hidden probabilities and generate through both. With seqboltz the steps are::

    seqboltz fit --config recipes/motion_rcrbm.yaml                   # layer 1
    seqboltz fit --config recipes/motion_rcrbm_layer2.yaml \\
        --data.init_args.checkpoint=LAYER1.ckpt                        # layer 2 on its h1
    seqboltz stack LAYER1.ckpt LAYER2.ckpt --out two_layer.ckpt       # this
    seqboltz evaluate two_layer.ckpt; seqboltz export two_layer.ckpt --out m.onnx

:func:`stack_checkpoints` builds :meth:`~seqboltz.models.TwoLayerCRBM.from_layers`, re-centres
a residual layer 1's intercept on the stack's own sampler (its ``h¹`` now comes from the top
layer, with another mean than layer 1's posterior: :func:`~seqboltz.training.recentre_intercept`,
iterated) and saves the stack with layer 1's data record, its ``order`` set to the stack's
``order1 + order2``, so ``evaluate`` and ``export`` rebuild the right windows.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["stack_checkpoints", "stack_main"]


def stack_checkpoints(
    layer1: str | Path,
    layer2: str | Path,
    out: str | Path,
    gibbs_steps: int = 1,
    recentre: bool = True,
    iterations: int = 3,
    draws: int = 8,
) -> Path:
    """Stack two trained layers into a :class:`~seqboltz.models.TwoLayerCRBM` checkpoint.

    Args:
        layer1: a ``ConditionalRBM`` or ``ResidualCRBM`` checkpoint (no controls or style).
        layer2: a ``BinaryConditionalRBM`` checkpoint trained on layer 1's hidden probabilities
            (``recipes/motion_rcrbm_layer2.yaml``).
        out: the stacked checkpoint to write.
        gibbs_steps: ``k`` of the sampler the intercept is matched to (the card's k).
        recentre: re-centre a residual layer 1's intercept on the stack's sampler over layer
            1's training clips (ignored for a plain ``ConditionalRBM``, whose sampler reads
            its intercept).
        iterations: re-centring rounds.
        draws: noise draws per training window in each round
            (:func:`~seqboltz.training._recentre.sampler_mean_error`; 8, as
            ``recipes/motion_rcrbm.yaml``'s layer 1).

    Returns:
        ``out``.

    Raises:
        ValueError: the layers do not stack (one line saying why: sizes, kinds, or a layer 2
            whose recorded first layer is another checkpoint), or a checkpoint is missing.
    """
    import numpy as np

    from seqboltz.data import sha256_file
    from seqboltz.eval._cli import data_record, datamodule_from_checkpoint
    from seqboltz.models import BinaryConditionalRBM, ResidualCRBM, TwoLayerCRBM, load_model
    from seqboltz.models._registry import save_model
    from seqboltz.training._recentre import recentre_intercept

    lower, top = load_model(layer1), load_model(layer2)
    if not isinstance(top, BinaryConditionalRBM):
        raise ValueError(
            f"{layer2} holds a {type(top).__name__}; layer 2 must be a BinaryConditionalRBM "
            "trained on layer 1's hidden probabilities"
        )
    trained_on = _lower_sha256(layer2)
    if trained_on is not None and trained_on != sha256_file(Path(layer1)):
        raise ValueError(
            f"{layer2} was trained on the hidden units of another first layer (sha256 "
            f"{trained_on[:12]}…), not {layer1}: its top layer would read meaningless h1"
        )
    model = TwoLayerCRBM.from_layers(lower, top).double()  # type: ignore[arg-type]
    record = data_record(layer1)
    matched = None
    if recentre and isinstance(model.layer1, ResidualCRBM):
        dm = datamodule_from_checkpoint(layer1)
        dm.prepare_data()
        dm.setup("fit")
        clips = [np.asarray(c, dtype=np.float64) for c in dm.clips("train")]
        recentre_intercept(model, clips, gibbs_steps, iterations=iterations, draws=draws)
        matched = gibbs_steps  # export and evaluate default to it
    record["init_args"] = {**record["init_args"], "order": model.order}
    stats = _recorded(layer1, "stats")
    if isinstance(stats, dict):  # the features' inverse, so an export speaks motion (BVH)
        record["stats"] = {**stats, "order": model.order} if "order" in stats else stats
    return save_model(model, out, data=record, recentred_gibbs_steps=matched)


def _recorded(checkpoint: str | Path, key: str) -> Any:
    """``key`` of the data entry a seqboltz checkpoint recorded (``None`` if none)."""
    import torch

    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    data = ckpt.get("seqboltz", {}).get("data") if isinstance(ckpt, dict) else None
    return (data or {}).get(key)


def _lower_sha256(layer2: str | Path) -> str | None:
    """The sha256 of the first layer ``layer2`` was trained on, as its
    :class:`~seqboltz.data.CRBMHiddenDataModule` recorded it (``None`` if it recorded none)."""
    value = (_recorded(layer2, "init_args") or {}).get("checkpoint_sha256")
    return value if isinstance(value, str) else None


def stack_main(argv: Sequence[str] | None = None) -> int:
    """``seqboltz stack LAYER1 LAYER2 --out STACK.ckpt``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="seqboltz stack",
        description="Stack a CRBM and a second layer trained on its hidden probabilities "
        "(Taylor et al. 2007) into one generating checkpoint.",
    )
    parser.add_argument("layer1", type=Path, help="ConditionalRBM or ResidualCRBM checkpoint")
    parser.add_argument("layer2", type=Path, help="BinaryConditionalRBM checkpoint on its h1")
    parser.add_argument("--out", type=Path, required=True, help="the stacked checkpoint")
    parser.add_argument("--gibbs-steps", type=int, default=1, help="k the intercept matches")
    parser.add_argument("--no-recentre", action="store_true", help="keep layer 1's intercept")
    parser.add_argument(
        "--draws", type=int, default=8, help="noise draws per training window when re-centring"
    )
    args = parser.parse_args(argv)
    if args.gibbs_steps < 1:
        parser.error(f"--gibbs-steps must be >= 1; got {args.gibbs_steps}")
    if args.draws < 1:
        parser.error(f"--draws must be >= 1; got {args.draws}")
    try:
        path = stack_checkpoints(
            args.layer1,
            args.layer2,
            args.out,
            args.gibbs_steps,
            recentre=not args.no_recentre,
            draws=args.draws,
        )
    except (ValueError, OSError) as exc:
        from seqboltz.training._cli import _one_line

        print(f"seqboltz stack: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    print(path)
    return 0
