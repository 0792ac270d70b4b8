"""The mean-covariance RBM recipes are a fair pair, and the mcRBM one saves its pictures.

Both recipes run with ``--trainer.fast_dev_run`` in ``test_cli.py``'s recipe test, which covers
every file under ``recipes/``; that :class:`SavePictures` writes the mcRBM's three PNGs through
a Lightning fit is tested in ``tests/models/test_mc.py``.
"""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
MCRBM = REPO / "recipes" / "patches_mcrbm.yaml"
GRBM = REPO / "recipes" / "patches_grbm_whitened.yaml"


def test_recipes_compare_like_with_like() -> None:
    mc, gb = (yaml.safe_load(p.read_text()) for p in (MCRBM, GRBM))
    assert mc["data"] == gb["data"], "both models must see the same whitened patches"
    assert mc["data"]["init_args"]["whiten"] is True
    mc_args = mc["model"]["energy_model"]["init_args"]
    gb_args = gb["model"]["energy_model"]["init_args"]
    assert mc["model"]["energy_model"]["class_path"] == "seqboltz.models.MeanCovarianceRBM"
    assert gb["model"]["energy_model"]["class_path"] == "seqboltz.models.GaussianBernoulliRBM"
    assert mc_args["n_mean_hidden"] + mc_args["n_cov_hidden"] == gb_args["n_hidden"]
    assert mc["trainer"]["max_epochs"] == gb["trainer"]["max_epochs"]
    callbacks = [c["class_path"] for c in mc["trainer"]["callbacks"]]
    assert "seqboltz.training.SavePictures" in callbacks
