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

import hashlib
import json
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace


def main(path: str) -> int:
    import onnx
    from onnx import numpy_helper

    from seqboltz.data import MotionDataModule
    from seqboltz.export._onnx import CARD_KEY, _style_range

    warnings.filterwarnings("ignore", category=UserWarning)
    proto = onnx.load(path)
    card = json.loads(next(p.value for p in proto.metadata_props if p.key == CARD_KEY))
    dm = MotionDataModule(**card["training"]["data"]["init_args"])
    dm.prepare_data()
    dm.setup("fit")
    tensor = dm.train_tensor
    assert tensor is not None
    sha = hashlib.sha256(tensor.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
    if sha != card["training"]["data"]["train_sha256"]:
        print(f"{path}: its training data is not this data (sha256 {sha})", file=sys.stderr)
        return 2
    gain = float(card["training"]["metrics"]["val/style_gain"])
    graph_gain = next(
        float(numpy_helper.to_array(i)) for i in proto.graph.initializer if i.name.endswith("gain")
    )
    if abs(graph_gain - gain) > 1e-9:
        print(f"{path}: the card's gain {gain} is not the graph's {graph_gain}", file=sys.stderr)
        return 2
    style = dm.stats()["style"]
    entry = card["conditioning"]["style"]
    entry["stats"].update(low=style["low"], high=style["high"])
    entry["range"] = _style_range(SimpleNamespace(style_gain=gain), style)
    for p in proto.metadata_props:
        if p.key == CARD_KEY:
            p.value = json.dumps(card, sort_keys=True)
    onnx.checker.check_model(proto, full_check=True)
    part = Path(path).with_suffix(".part")
    onnx.save(proto, str(part))
    part.replace(path)
    print(json.dumps(entry["range"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
