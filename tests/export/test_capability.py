"""Export by capability: every registered model either exports and round-trips through the
torch-free runtime, or ``seqboltz export`` refuses it with one clear line and exit status 2.

``seqboltz.cli.main`` is what the console script runs (``sys.exit(main())``), so its return
value is the process's exit status and its stderr is all the user sees."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from seqboltz.cli import main
from seqboltz.export import ExportError, export_onnx
from seqboltz.models import (
    BernoulliRBM,
    BinaryConditionalRBM,
    ConditionalRBM,
    ConvolutionalRBM,
    EnergyModel,
    FactoredConditionalRBM,
    GaussianBernoulliRBM,
    MeanCovarianceRBM,
    ResidualCRBM,
    SequenceRBM,
    StructuredOutputCRBM,
    TwoLayerCRBM,
    _registry,
    save_model,
)
from seqboltz.noise import sequence_rng
from seqboltz.runtime import load_artifact


def _banded_residual() -> ResidualCRBM:
    """A styled residual CRBM with two speed bands whose own dynamics differ (random deltas)
    and a bent calibration curve, so that the export has to carry both."""
    model = ResidualCRBM(5, 4, order=2, init_std=0.3, n_style=1, style_bands=[-1.0, 1.0])
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name in ("band_autoregressive", "band_style", "band_bias"):
            buf = getattr(model, name)
            buf.copy_(0.2 * torch.randn(buf.shape, generator=g))
    # and a calibration curve for the requested speed (CalibrateStyleGain(curve_points=4))
    model.style_curve = torch.tensor([[-1.0, 0.0, 0.7, 1.2], [-1.5, 0.1, 0.9, 2.0]])
    return model


# Small instances of every registered model (several where settings change the capability).
EXAMPLES: dict[str, list[Callable[[], EnergyModel]]] = {
    "BernoulliRBM": [lambda: BernoulliRBM(7, 5, init_std=0.5)],
    "GaussianBernoulliRBM": [lambda: GaussianBernoulliRBM(7, 5, init_std=0.5, sigma_init=0.7)],
    "ConditionalRBM": [lambda: ConditionalRBM(4, 6, 2, n_controls=1, init_std=0.3)],
    "FactoredConditionalRBM": [
        lambda: FactoredConditionalRBM(4, 6, 2, n_style=1, n_factors=3, init_std=0.3)
    ],
    "ConvolutionalRBM": [
        lambda: ConvolutionalRBM((1, 6, 6), n_filters=2, filter_size=3, pool_size=2, init_std=0.5),
        lambda: ConvolutionalRBM(
            (1, 6, 6), n_filters=2, filter_size=3, visible="gaussian", init_std=0.5
        ),
    ],
    "MeanCovarianceRBM": [
        lambda: MeanCovarianceRBM(5, 3, 4, sampler="exact", init_std=0.3),
        lambda: MeanCovarianceRBM(5, 3, 4, sampler="hmc", hmc_steps=3, init_std=0.3),
    ],
    "StructuredOutputCRBM": [lambda: StructuredOutputCRBM(5, 4, 3, init_std=0.3)],
    "BinaryConditionalRBM": [lambda: BinaryConditionalRBM(4, 6, 2, init_std=0.3)],
    "TwoLayerCRBM": [
        lambda: TwoLayerCRBM(4, 5, 6, order1=2, order2=1, init_std=0.3),
        lambda: TwoLayerCRBM(
            5, 4, 6, order1=2, order2=1, init_std=0.3, lower="residual", visible_noise=0.5
        ),
    ],
    "ResidualCRBM": [lambda: ResidualCRBM(5, 4, order=2, init_std=0.3), _banded_residual],
}

CASES = [
    pytest.param(kind, i, id=f"{kind}-{i}")
    for kind in sorted(_registry._REGISTRY)
    for i in range(len(EXAMPLES.get(kind, [None])))
]


def test_every_registered_model_has_an_example() -> None:
    assert set(EXAMPLES) == set(_registry._REGISTRY), "add the new model to EXAMPLES"


def _torch_chains(model: EnergyModel, start: np.ndarray, n_steps: int, seed: int):
    """Gibbs chains in torch driven by the runtime's noise rule (seqboltz.noise): per step,
    chain i draws each noise input from sequence_rng(seed, i), inputs sorted by name."""
    count = start.shape[0]
    rngs = [sequence_rng(seed, i) for i in range(count)]
    specs = model.noise_spec()
    v = torch.from_numpy(start)
    for _ in range(n_steps):
        noise = {}
        for name in sorted(specs):
            spec = specs[name]
            draw = [
                r.random(spec.shape) if spec.kind == "uniform" else r.standard_normal(spec.shape)
                for r in rngs
            ]
            noise[name] = torch.from_numpy(np.stack(draw))
        with torch.no_grad():
            step = model.gibbs_step(v, noise)
        v = step.v
    return step.v.numpy(), step.v_mean.numpy()


@pytest.mark.slow  # an export takes seconds (torch.export + ONNX translation)
@pytest.mark.parametrize(("kind", "index"), CASES)
def test_exports_or_refuses_in_one_line(
    kind: str, index: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert kind in EXAMPLES, f"no example of the registered model {kind}"
    torch.manual_seed(index)
    model = EXAMPLES[kind][index]().double()
    assert type(model) is _registry._REGISTRY[kind]
    ckpt = save_model(model, tmp_path / "m.ckpt")
    out = tmp_path / "m.onnx"
    support = model.export_support()
    status = main(["export", str(ckpt), "--out", str(out), "--no-data", "--gibbs-steps", "3"])
    captured = capsys.readouterr()
    if support.path is None:
        assert support.reason and "\n" not in support.reason
        assert status == 2
        assert captured.err.count("\n") == 1, captured.err  # one line, no traceback
        assert captured.err.startswith(f"seqboltz export: error: {kind} does not export: ")
        assert support.reason in captured.err
        assert not out.exists() and list(tmp_path.iterdir()) == [ckpt]
        with pytest.raises(ExportError, match="does not export"):
            export_onnx(model, out, {})
        return
    assert status == 0, captured.err
    assert captured.out.strip() == str(out)
    art = load_artifact(out)
    if support.path == "sequence":
        assert isinstance(model, SequenceRBM)
        kwargs = {}
        if model.n_style:
            kwargs["style"] = np.full((2, model.n_style), 0.5)
        if model.n_controls:
            kwargs["controls"] = np.full((2, model.n_controls), -0.5)
        seed_frames = np.random.default_rng(0).standard_normal((2, model.order, model.n_visible))
        got = art.generate(6, seed=4, seed_frames=seed_frames, **kwargs)
        with torch.no_grad():
            expected = model.generate(
                torch.from_numpy(seed_frames),
                6,
                gibbs_steps=3,
                seed=4,
                **{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in kwargs.items()},
            ).numpy()
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-8)
        return
    assert support.path == "gibbs" and art.family == "rbm"
    assert list(art.card["noise"]) == sorted(model.noise_spec())
    v, v_mean = art.gibbs_chains(5, seed=3, count=3)
    start = np.broadcast_to(np.asarray(art.card["initial_state"]), (3, model.n_visible))
    expected_v, expected_mean = _torch_chains(model, np.array(start), 5, seed=3)
    np.testing.assert_allclose(v, expected_v, rtol=0, atol=1e-8)
    np.testing.assert_allclose(v_mean, expected_mean, rtol=0, atol=1e-8)
    assert np.std(v) > 0  # the chains moved somewhere
