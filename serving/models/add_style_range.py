"""Put ``conditioning.style.range`` on an exported steerable motion model's card, graph unchanged.

``seqboltz export`` writes the range for checkpoints trained since session 14 (from the
training styles' ``low``/``high`` in the data statistics and the model's generation gain).
The embedded ``motion_speed.onnx`` was exported before that, from a checkpoint that is not in
the repository, so this script rebuilds its training data from the card (checking the training
tensor's sha256 against the card's), reads the gain from the card (``val/style_gain``, checked
against the graph's ``model.style_gain``) and rewrites the card::

    python serving/models/add_style_range.py serving/models/motion_speed.onnx
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any


def add_style_range(path: Path) -> dict[str, Any]:
    """Rewrite ``path``'s card with its style range (returned).

    Raises:
        ValueError: a model without a style, or whose card does not say how it was trained
            (its data, their sha256, the gain), or whose data are not those (one line).
    """
    import onnx
    from onnx import numpy_helper

    from seqboltz.export._onnx import _style_range
    from seqboltz.runtime import load_artifact

    card = load_artifact(path).card  # a readable seqboltz artifact, or one line saying why
    entry = (card.get("conditioning") or {}).get("style")
    if not entry:
        raise ValueError(f"{path}: model {card.get('name')!r} takes no style")
    metrics = card.get("training", {}).get("metrics", {})
    if "val/style_gain" not in metrics:
        raise ValueError(f"{path}: its card records no calibrated style gain (val/style_gain)")
    gain = float(metrics["val/style_gain"])
    proto = onnx.load(str(path))
    graph_gain = [
        float(numpy_helper.to_array(i)) for i in proto.graph.initializer if i.name.endswith("gain")
    ]
    if graph_gain != [gain]:
        raise ValueError(f"{path}: the card's gain {gain} is not the graph's {graph_gain}")
    dm = training_data(path, card)
    style = dm.stats()["style"]
    entry["stats"].update(low=style["low"], high=style["high"])
    entry["range"] = _style_range(SimpleNamespace(style_gain=gain), style)
    write_card(path, proto, card)
    return dict(entry["range"])


def training_data(path: Path, card: dict[str, Any]) -> Any:
    """The DataModule ``path``'s model was trained on, rebuilt from its card (set up), its
    training tensor checked against the card's sha256 (``ValueError`` if it differs)."""
    from seqboltz.eval._cli import datamodule_from_card

    dm = datamodule_from_card(card)
    dm.prepare_data()
    dm.setup("fit")
    raw = dm.train_tensor.detach().cpu().contiguous().numpy().tobytes()
    sha = hashlib.sha256(raw).hexdigest()
    if sha != card["training"]["data"].get("train_sha256"):
        raise ValueError(f"{path}: its training data are not these (sha256 {sha})")
    return dm


def write_card(path: Path, proto: Any, card: dict[str, Any]) -> None:
    """Put ``card`` in ``proto``'s metadata and save it over ``path``, all or nothing."""
    import onnx

    from seqboltz.export._onnx import CARD_KEY

    for p in proto.metadata_props:
        if p.key == CARD_KEY:
            p.value = json.dumps(card, sort_keys=True)
    onnx.checker.check_model(proto, full_check=True)
    part = path.with_suffix(".part")
    onnx.save(proto, str(part))
    part.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="the exported .onnx, rewritten in place")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)
    from seqboltz.runtime import ArtifactError

    try:
        trusted = add_style_range(args.model)
    except (ArtifactError, ValueError) as exc:
        print(f"{parser.prog}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(json.dumps(trusted, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
