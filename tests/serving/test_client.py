"""``seqboltz generate`` (serving/client.py): what ``--plant-feet`` needs of a model, said in
one line before anything is streamed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqboltz.runtime import load_artifact
from seqboltz.v1 import generation_pb2 as pb
from serving.client import _plant_problem

EMBEDDED = Path(__file__).resolve().parents[2] / "serving" / "models" / "motion_crbm.onnx"


def _info(card: dict[str, object], domain: str = "motion") -> pb.ModelInfo:
    return pb.ModelInfo(name="m", domain=domain, card_json=json.dumps(card))


def test_plant_feet_is_refused_for_models_it_cannot_clean(monkeypatch: pytest.MonkeyPatch) -> None:
    import seqboltz.motion

    card = load_artifact(EMBEDDED).card
    assert _plant_problem(_info(card)) is None  # the embedded rig names its feet
    speech = _plant_problem(_info({"features": {}}, domain="speech"))
    assert speech == "model 'm' is a speech model; feet are planted in motion BVH"

    def footless(*args: object) -> None:  # a rig check_plantable refuses (tests/motion)
        raise ValueError("no joint of its skeleton names a foot (foot/toe/ankle)")

    monkeypatch.setattr(seqboltz.motion, "check_plantable", footless)
    problem = _plant_problem(_info(card))
    assert problem == "model 'm': no joint of its skeleton names a foot (foot/toe/ankle)"
