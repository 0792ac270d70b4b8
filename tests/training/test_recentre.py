"""Moment matching of the residual CRBM's intercept to its own sampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqboltz.models import ConditionalRBM, ResidualCRBM
from seqboltz.training import RecentreIntercept
from seqboltz.training._recentre import recentre_intercept, sampler_mean_error


def _clips(n: int = 3, frames: int = 300, dims: int = 4) -> list[np.ndarray]:
    out = []
    for i in range(n):
        rng = np.random.default_rng(i)
        x = np.zeros((frames, dims))
        for t in range(1, frames):  # a stable AR(1) with noise
            x[t] = 0.9 * x[t - 1] + 0.3 * rng.normal(size=dims)
        out.append(x)
    return out


def _model_with_biased_hiddens(clips: list[np.ndarray]) -> ResidualCRBM:
    torch.manual_seed(0)
    model = ResidualCRBM(4, 6, order=2, train_linear=False).double()
    model.init_from_sequences(clips)
    with torch.no_grad():  # hidden units that are mostly on and push one way: a mean offset
        model.weight.copy_(torch.full((4, 6), 0.4, dtype=torch.float64))
        model.hidden_bias.fill_(2.0)
    return model


def test_recentring_zeroes_the_samplers_mean_error_and_nothing_else() -> None:
    clips = _clips()
    model = _model_with_biased_hiddens(clips)
    before = sampler_mean_error(model, clips, gibbs_steps=3, seed=5)
    # the hidden units add ~0.4 * 6 * sigmoid(2) whitened units to every dimension
    assert before.abs().min() > 0.1
    weight = model.weight.detach().clone()
    applied = recentre_intercept(model, clips, gibbs_steps=3, seed=5)
    torch.testing.assert_close(applied, before)
    # the sampler never reads the intercept, so the same noise gives exactly shifted frames
    after = sampler_mean_error(model, clips, gibbs_steps=3, seed=5)
    assert after.abs().max() < 1e-10
    # another noise draw: zero to Monte-Carlo error, far below the offset removed
    assert sampler_mean_error(model, clips, gibbs_steps=3, seed=6).abs().max() < 0.05
    torch.testing.assert_close(model.weight.detach(), weight)


def test_more_noise_draws_average_the_monte_carlo_error_away() -> None:
    clips = _clips()
    model = _model_with_biased_hiddens(clips)
    one = sampler_mean_error(model, clips, gibbs_steps=1, seed=5)
    torch.testing.assert_close(sampler_mean_error(model, clips, 1, seed=5, draws=1), one)
    # re-centred on one draw, the error another draw finds is that draw's noise alone ...
    recentre_intercept(model, clips, gibbs_steps=1, seed=5)
    left_one = [sampler_mean_error(model, clips, 1, seed=s).norm() for s in range(20, 24)]
    # ... and re-centred on 16, what other draws find is that much smaller (1/4 expected)
    recentre_intercept(model, clips, gibbs_steps=1, seed=5, draws=16)
    left_16 = [sampler_mean_error(model, clips, 1, seed=s, draws=16).norm() for s in (40, 41)]
    assert max(left_16) < 0.6 * float(np.mean(left_one))
    with pytest.raises(ValueError, match="draws must be >= 1"):
        sampler_mean_error(model, clips, 1, draws=0)
    with pytest.raises(ValueError, match="draws must be >= 1"):
        RecentreIntercept(gibbs_steps=1, draws=0)


def test_recentring_refuses_models_whose_sampler_reads_the_intercept() -> None:
    with pytest.raises(TypeError, match="needs a ResidualCRBM"):
        recentre_intercept(ConditionalRBM(4, 6, order=2), _clips(), gibbs_steps=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="gibbs_steps must be >= 1"):
        RecentreIntercept(gibbs_steps=0)
    with pytest.raises(ValueError, match="longer than the model's order"):
        sampler_mean_error(ResidualCRBM(4, 6, order=2), [np.zeros((2, 4))], gibbs_steps=1)


def test_the_callback_records_the_k_it_matched_and_keeps_it_over_a_resume() -> None:
    callback = RecentreIntercept(gibbs_steps=2)
    checkpoint: dict = {}
    callback.on_save_checkpoint(None, None, checkpoint)  # type: ignore[arg-type]
    assert checkpoint == {}  # nothing matched yet: nothing claimed
    callback._matched = True  # as on_validation_epoch_start leaves it
    checkpoint = {"seqboltz": {"model": "kept"}}
    callback.on_save_checkpoint(None, None, checkpoint)  # type: ignore[arg-type]
    assert checkpoint["seqboltz"] == {"model": "kept", "recentred_gibbs_steps": 2}
    resumed = RecentreIntercept(gibbs_steps=2)
    resumed.on_load_checkpoint(None, None, checkpoint)  # type: ignore[arg-type]
    assert resumed._matched  # a last.ckpt written before the next validation still says k
    other_k = RecentreIntercept(gibbs_steps=5)
    other_k.on_load_checkpoint(None, None, checkpoint)  # type: ignore[arg-type]
    assert not other_k._matched  # matched at another k until it re-centres


@pytest.mark.realdata
def test_a_fitted_checkpoint_records_the_recentred_k_beside_the_model(tmp_path) -> None:
    """A real fit: the callback's record survives the system's own checkpoint entry."""
    from _trainer import quiet_trainer

    from seqboltz.data import MotionDataModule, motion_fixture_folder
    from seqboltz.models import load_model, recentred_gibbs_steps
    from seqboltz.training import RBMSystem

    dm = MotionDataModule(path=str(motion_fixture_folder("cmu_daz_bvh")), order=3)
    dm.setup("fit")
    torch.manual_seed(0)
    model = ResidualCRBM(dm.n_features, 8, order=3, train_linear=False, max_radius=0.99)
    trainer = quiet_trainer(
        tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=1, log_every_n_steps=1
    )
    callback = RecentreIntercept(gibbs_steps=2)
    trainer.callbacks.append(callback)
    trainer.fit(RBMSystem(model, eval_log_z="none"), datamodule=dm)
    assert callback.last_shift is not None  # it re-centred before the validation
    path = tmp_path / "fitted.ckpt"
    trainer.save_checkpoint(path)
    assert recentred_gibbs_steps(path) == 2
    assert isinstance(load_model(path), ResidualCRBM)  # the model's own entry is intact
