"""Put the training clips' foot contacts (``features.contact``) on an exported motion model's
card, graph unchanged.

``seqboltz synthesize --plant-feet`` holds a foot still while it is within a tolerance of the
floor under it. Models trained since session 18 carry that floor on their card (the training
clips', :meth:`seqboltz.motion.MotionFeatures.contact`); a card without it falls back on each
generated clip's own floor. This script rebuilds an older model's training data from its card
(checking the training tensor's sha256 against the card's), fits the same features and writes
their contact entry into the card::

    python serving/models/add_contact.py serving/models/motion_crbm.onnx
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # add_style_range, as a script

from add_style_range import training_data, write_card


def add_contact(path: Path) -> dict[str, Any]:
    """Rewrite ``path``'s card with its features' contact entry (returned).

    Raises:
        ValueError: not a motion model, a rig without feet, or a card whose training data are
            not those it names (one line).
    """
    import onnx

    from seqboltz.runtime import load_artifact

    card = load_artifact(path).card
    if card.get("domain") != "motion" or "skeleton" not in card.get("features", {}):
        raise ValueError(f"{path}: model {card.get('name')!r} is not a motion model with a rig")
    dm = training_data(path, card)
    fitted = dm.features.to_dict()
    given = card["features"]
    mismatch = [k for k in ("skeleton_signature", "kept") if fitted[k] != given[k]]
    mismatch += [
        k for k in ("mean", "std") if not np.allclose(fitted[k], given[k], rtol=1e-9, atol=1e-12)
    ]
    if mismatch:
        raise ValueError(f"{path}: the rebuilt features differ from the card's in {mismatch}")
    if fitted["contact"] is None:
        raise ValueError(f"{path}: the rig names no foot joints")
    card["features"]["contact"] = fitted["contact"]
    write_card(path, onnx.load(str(path)), card)
    return dict(fitted["contact"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, nargs="+", help="exported .onnx, rewritten in place")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)
    from seqboltz.runtime import ArtifactError

    for model in args.model:
        try:
            contact = add_contact(model)
        except (ArtifactError, ValueError) as exc:
            print(f"{parser.prog}: error: {' '.join(str(exc).split())}", file=sys.stderr)
            return 2
        print(model, json.dumps(contact))
    return 0


if __name__ == "__main__":
    sys.exit(main())
