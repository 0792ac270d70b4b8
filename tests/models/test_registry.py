"""Tests of the model registry and of safe checkpoint loading."""

from __future__ import annotations

import inspect
import math
from typing import Any

import pytest
import torch

from seqboltz.models import (
    BernoulliRBM,
    GaussianBernoulliRBM,
    _registry,
    load_model,
    model_from_spec,
    model_spec,
    register_model,
)


class NotAWeight:
    """An arbitrary class: a checkpoint that pickles it must not be loaded."""

    def __init__(self) -> None:
        self.payload = "code"


MODELS = [
    pytest.param(lambda: BernoulliRBM(6, 4, init_std=0.3), id="bernoulli"),
    pytest.param(
        lambda: GaussianBernoulliRBM(
            5, 3, init_std=0.2, sigma_init=0.8, min_sigma=0.1, max_sigma=4.0
        ),
        id="gaussian",
    ),
    pytest.param(
        lambda: GaussianBernoulliRBM(5, 3, learn_sigma=False, sigma_init=2.0), id="gaussian-fixed"
    ),
]


def _perturb(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            t.add_(0.1 * torch.randn(t.shape, generator=g))
    return model


@pytest.mark.parametrize("make", MODELS)
def test_spec_round_trip(make) -> None:
    model = make()
    spec = model_spec(model)
    assert spec["kind"] == type(model).__name__
    rebuilt = model_from_spec(spec)
    assert type(rebuilt) is type(model)
    assert rebuilt.init_args() == model.init_args()
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }


def test_unknown_kind_lists_known_kinds() -> None:
    with pytest.raises(ValueError, match="unknown model kind 'Nope'") as info:
        model_from_spec({"kind": "Nope", "init_args": {}})
    assert "BernoulliRBM" in str(info.value)
    assert "GaussianBernoulliRBM" in str(info.value)
    with pytest.raises(ValueError, match="known kinds"):
        model_from_spec({"init_args": {"n_visible": 2, "n_hidden": 2}})


def test_register_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))

    class TinyRBM(BernoulliRBM):
        pass

    with pytest.raises(ValueError, match="TinyRBM"):
        model_from_spec({"kind": "TinyRBM", "init_args": {"n_visible": 2, "n_hidden": 3}})
    assert register_model(TinyRBM) is TinyRBM
    model = model_from_spec({"kind": "TinyRBM", "init_args": {"n_visible": 2, "n_hidden": 3}})
    assert type(model) is TinyRBM
    assert (model.n_visible, model.n_hidden) == (2, 3)


def test_load_model_missing_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_model(tmp_path / "absent.ckpt")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path)  # a directory is not a checkpoint file


def test_load_model_garbage_file(tmp_path) -> None:
    path = tmp_path / "garbage.ckpt"
    path.write_bytes(b"\x00\x01 this is not a torch file \xff" * 10)
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        load_model(path)


@pytest.mark.parametrize(
    "content",
    [
        torch.zeros(3),
        {"state_dict": {}},
        {"seqboltz": {"model": {"kind": "BernoulliRBM", "init_args": {}}}},
    ],
    ids=["tensor", "no-spec", "no-state-dict"],
)
def test_load_model_rejects_non_seqboltz_checkpoints(tmp_path, content) -> None:
    path = tmp_path / "other.ckpt"
    torch.save(content, path)
    with pytest.raises(ValueError, match="not a seqboltz checkpoint"):
        load_model(path)


def test_load_model_refuses_pickled_code(tmp_path) -> None:
    """``weights_only=True``: an arbitrary object in the file is refused, not unpickled."""
    model = BernoulliRBM(3, 2)
    path = tmp_path / "evil.ckpt"
    torch.save(
        {
            "state_dict": {f"energy_model.{k}": v for k, v in model.state_dict().items()},
            "seqboltz": {"model": model_spec(model)},
            "extra": NotAWeight(),
        },
        path,
    )
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        load_model(path)


def test_load_model_unknown_kind_in_checkpoint(tmp_path) -> None:
    path = tmp_path / "unknown.ckpt"
    torch.save({"state_dict": {}, "seqboltz": {"model": {"kind": "os.system"}}}, path)
    with pytest.raises(ValueError, match="unknown model kind"):
        load_model(path)


@pytest.mark.parametrize("make", MODELS)
def test_load_model_restores_weights(tmp_path, make) -> None:
    model = _perturb(make())
    path = tmp_path / "model.ckpt"
    torch.save(
        {
            "state_dict": {
                **{f"energy_model.{k}": v for k, v in model.state_dict().items()},
                "other_module.weight": torch.ones(2),  # not part of the energy model
            },
            "seqboltz": {"model": model_spec(model)},
            "epoch": 3,
        },
        path,
    )
    loaded = load_model(path)
    assert type(loaded) is type(model)
    assert not loaded.training
    assert loaded.init_args() == model.init_args()
    expected = model.state_dict()
    got = loaded.state_dict()
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert torch.equal(got[key], value), key
    # And it computes the same thing.
    v = torch.rand(4, model.n_visible)
    torch.testing.assert_close(loaded.free_energy(v), model.free_energy(v), rtol=0, atol=0)


def test_load_model_missing_weight_is_an_error(tmp_path) -> None:
    model = BernoulliRBM(3, 2)
    state = {f"energy_model.{k}": v for k, v in model.state_dict().items() if k != "weight"}
    path = tmp_path / "partial.ckpt"
    torch.save({"state_dict": state, "seqboltz": {"model": model_spec(model)}}, path)
    with pytest.raises(ValueError, match="weight"):
        load_model(path)


def test_spec_values_survive_weights_only_load(tmp_path) -> None:
    """The spec is plain data: it round-trips through a weights-only torch.load."""
    model = GaussianBernoulliRBM(4, 2, sigma_init=math.e / 3, min_sigma=0.2, max_sigma=5.0)
    path = tmp_path / "spec.pt"
    torch.save(model_spec(model), path)
    spec = torch.load(path, weights_only=True)
    assert model_from_spec(spec).init_args() == model.init_args()


# Every constructor argument of every registered model, each given a non-default value where
# the model allows one: init_args() must hand back exactly these (tuples as lists).
CONSTRUCTOR_ARGS: dict[str, dict[str, Any]] = {
    "BernoulliRBM": {"n_visible": 6, "n_hidden": 4, "init_std": 0.3},
    "GaussianBernoulliRBM": {
        "n_visible": 5,
        "n_hidden": 3,
        "init_std": 0.2,
        "learn_sigma": False,
        "sigma_init": 0.8,
        "min_sigma": 0.1,
        "max_sigma": 4.0,
    },
    "ConditionalRBM": {
        "n_visible": 4,
        "n_hidden": 5,
        "order": 3,
        "n_controls": 2,
        "init_std": 0.2,
    },
    "FactoredConditionalRBM": {
        "n_visible": 4,
        "n_hidden": 5,
        "order": 2,
        "n_style": 2,
        "n_factors": 3,
        "n_controls": 1,
        "init_std": 0.2,
        "gated_autoregressive": False,
    },
    "ConvolutionalRBM": {
        "image_shape": (2, 7, 7),
        "n_filters": 3,
        "filter_size": 2,
        "pool_size": 3,
        "visible": "gaussian",
        "init_std": 0.2,
    },
    "MeanCovarianceRBM": {
        "n_visible": 5,
        "n_mean_hidden": 3,
        "n_cov_hidden": 4,
        "sampler": "hmc",
        "hmc_steps": 7,
        "hmc_step_size": 0.05,
        "init_std": 0.2,
    },
    "StructuredOutputCRBM": {
        "n_visible": 5,
        "n_hidden": 4,
        "n_cond": 3,
        "init_std": 0.2,
        "inference": "map",
        "inference_start": "input",
        "inference_steps": 7,
        "damping": 0.3,
    },
    "BinaryConditionalRBM": {
        "n_visible": 6,
        "n_hidden": 4,
        "order": 2,
        "n_controls": 1,
        "init_std": 0.2,
    },
    "ResidualCRBM": {
        "n_visible": 4,
        "n_hidden": 5,
        "order": 2,
        "init_std": 0.2,
        "visible_noise": 0.5,
        "ridge": 0.01,
        "max_radius": 0.95,
        "stabilise": "clip",
        "train_linear": False,
        "n_controls": 2,
        "start_history_noise": 0.5,
        "history_to_hidden": False,
        "n_style": 1,
        "generation": "mean",
        "style_bands": None,  # bands need a model without controls (test_residual.py)
    },
    "TwoLayerCRBM": {
        "n_visible": 4,
        "n_hidden1": 6,
        "n_hidden2": 5,
        "order1": 3,
        "order2": 2,
        "init_std": 0.2,
        "lower": "residual",
        "visible_noise": 0.7,
    },
}


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, tuple | list) else value


def test_every_registered_model_has_constructor_args() -> None:
    assert set(CONSTRUCTOR_ARGS) == set(_registry._REGISTRY), "add the model to CONSTRUCTOR_ARGS"


@pytest.mark.parametrize("kind", sorted(_registry._REGISTRY))
def test_init_args_are_the_constructor_arguments(kind: str) -> None:
    """init_args() has one key per constructor parameter, with the value it was given."""
    cls = _registry._REGISTRY[kind]
    args = CONSTRUCTOR_ARGS[kind]
    parameters = [n for n in inspect.signature(cls.__init__).parameters if n != "self"]
    assert sorted(args) == sorted(parameters), f"CONSTRUCTOR_ARGS[{kind!r}] misses arguments"
    model = cls(**args)
    assert list(model.init_args()) == parameters
    assert model.init_args() == {k: _plain(v) for k, v in args.items()}
    rebuilt = model_from_spec(model_spec(model))
    assert type(rebuilt) is cls and rebuilt.init_args() == model.init_args()
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }


def test_a_forgotten_constructor_argument_fails() -> None:
    """A subclass that takes an argument but does not keep it cannot write its spec."""

    class ForgetfulRBM(BernoulliRBM):
        def __init__(self, n_visible: int, n_hidden: int, temperature: float = 1.0) -> None:
            super().__init__(n_visible, n_hidden)
            self.scale = temperature  # kept under another name

    with pytest.raises(TypeError, match=r"takes 'temperature' .* self\.temperature"):
        ForgetfulRBM(3, 2).init_args()

    class ByKeywords(BernoulliRBM):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)

    with pytest.raises(TypeError, match="needs named arguments"):
        ByKeywords(n_visible=3, n_hidden=2).init_args()

    class NamedLikeAWeight(BernoulliRBM):
        def __init__(self, n_visible: int, n_hidden: int, weight: float = 0.1) -> None:
            super().__init__(n_visible, n_hidden, init_std=weight)

    with pytest.raises(TypeError, match="takes 'weight'"):
        NamedLikeAWeight(3, 2).init_args()


def test_recentred_gibbs_steps_reads_what_the_checkpoint_records(tmp_path) -> None:
    from seqboltz.models import recentred_gibbs_steps, save_model

    path = save_model(BernoulliRBM(4, 3), tmp_path / "m.ckpt")
    assert recentred_gibbs_steps(path) is None  # never re-centred
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    ckpt["seqboltz"]["recentred_gibbs_steps"] = 1
    torch.save(ckpt, path)
    assert recentred_gibbs_steps(path) == 1
    assert recentred_gibbs_steps(ckpt) == 1  # or the dictionary already read
    assert recentred_gibbs_steps({"state_dict": {}}) is None


def test_evaluate_defaults_to_the_recentred_k(tmp_path) -> None:
    import argparse

    from seqboltz.eval._cli import _gibbs_steps
    from seqboltz.models import ResidualCRBM, default_gibbs_steps, save_model

    model = BernoulliRBM(4, 3)
    path = save_model(model, tmp_path / "m.ckpt")
    assert _gibbs_steps(argparse.Namespace(checkpoint=path, gibbs_steps=None), model) == 30
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    ckpt["seqboltz"]["recentred_gibbs_steps"] = 1
    torch.save(ckpt, path)
    assert _gibbs_steps(argparse.Namespace(checkpoint=path, gibbs_steps=None), model) == 1
    asked = argparse.Namespace(checkpoint=path, gibbs_steps=7)
    assert _gibbs_steps(asked, model) == 7  # asked for
    # a model whose frames do not depend on k (the text-to-speech recipe's conditional mean)
    speaker = ResidualCRBM(4, 3, order=2, generation="mean")
    sampler = ResidualCRBM(4, 3, order=2)
    assert default_gibbs_steps(speaker, None) == 1 and default_gibbs_steps(sampler, None) == 30
    assert default_gibbs_steps(speaker, 5) == 5  # a recorded k still wins
