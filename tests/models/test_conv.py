"""Convolutional RBM with probabilistic max pooling against brute force on tiny models."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from seqboltz.functional import _conv as C
from seqboltz.models import ConvolutionalRBM, load_model, model_from_spec, model_spec, save_model

DTYPE = torch.float64


def tiny(visible: str = "bernoulli", seed: int = 0) -> ConvolutionalRBM:
    """3×3 images, two 2×2 filters: two 2×2 detection maps, one 2×2 pooling block each."""
    torch.manual_seed(seed)
    model = ConvolutionalRBM((1, 3, 3), n_filters=2, filter_size=2, pool_size=2, visible=visible)
    with torch.no_grad():
        model.filters.normal_(0, 1.0)
        model.hidden_bias.normal_(0, 0.5)
        model.visible_bias.normal_(0, 0.5)
    return model.double()


def valid_states() -> torch.Tensor:
    """Every detection configuration with at most one unit on per block: 5 × 5 = 25 states."""
    block = [np.zeros(4)] + [np.eye(4)[i] for i in range(4)]
    states = [np.concatenate([a, b]) for a, b in itertools.product(block, block)]
    return torch.tensor(np.stack(states), dtype=DTYPE)  # (25, 8): filter 0's block, filter 1's


def explicit_energy(model: ConvolutionalRBM, v: torch.Tensor, h: torch.Tensor) -> float:
    """The energy written as explicit sums over positions (no conv2d)."""
    img = v.reshape(3, 3)
    w = model.filters.detach()[:, 0]
    hm = h.reshape(2, 2, 2)
    interaction = sum(
        hm[k, i, j] * sum(w[k, a, b] * img[i + a, j + b] for a in range(2) for b in range(2))
        for k in range(2)
        for i in range(2)
        for j in range(2)
    )
    hidden = sum(model.hidden_bias[k] * hm[k].sum() for k in range(2))
    c = model.visible_bias[0]
    visible = 0.5 * ((img - c) ** 2).sum() if model.visible == "gaussian" else -c * img.sum()
    return float(visible - interaction - hidden)


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_energy_equals_explicit_sum(visible: str) -> None:
    model = tiny(visible)
    v = torch.rand(4, 9, dtype=DTYPE)
    states = valid_states()[[0, 3, 7, 24]]
    got = model.energy(v, states)
    for b in range(4):
        assert float(got[b]) == pytest.approx(explicit_energy(model, v[b], states[b]), abs=1e-10)


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_free_energy_and_pooling_conditionals_match_enumeration(visible: str) -> None:
    model = tiny(visible, seed=3)
    v = torch.rand(5, 9, dtype=DTYPE)
    states = valid_states()
    with torch.no_grad():
        energies = torch.stack([model.energy(v, s.expand(5, -1)) for s in states], dim=1)
        free = -torch.logsumexp(-energies, dim=1)
        torch.testing.assert_close(model.free_energy(v), free, rtol=0, atol=1e-10)
        post = torch.softmax(-energies, dim=1)  # (5, 25) over valid states
        torch.testing.assert_close(model.hidden_probs(v), post @ states, rtol=0, atol=1e-10)
        pooled = post @ states.reshape(25, 2, 4).amax(-1)  # pooling unit on iff a unit is
        torch.testing.assert_close(model.pooling_probs(v).reshape(5, 2), pooled, atol=1e-10, rtol=0)


def test_visible_conditional_is_the_full_convolution() -> None:
    model = tiny("bernoulli", seed=5)
    h = valid_states()[[1, 9, 24]]
    w = model.filters.detach()[:, 0]
    expected = torch.zeros(3, 3, 3, dtype=DTYPE)
    hm = h.reshape(3, 2, 2, 2)
    for b, k, i, j, a, c in itertools.product(
        range(3), range(2), range(2), range(2), range(2), range(2)
    ):
        expected[b, i + a, j + c] += w[k, a, c] * hm[b, k, i, j]
    expected = torch.sigmoid(expected + model.visible_bias.detach()[0])
    torch.testing.assert_close(model.visible_params(h), expected.reshape(3, 9), atol=1e-12, rtol=0)


def test_block_sampling_frequencies() -> None:
    """One uniform per block picks "all off" or one unit with the softmax's probabilities."""
    gen = torch.Generator().manual_seed(0)
    hidden_input = torch.tensor([[[[0.3, -1.0], [1.2, 0.1]]]], dtype=DTYPE)  # one 2×2 block
    n = 40000
    u = torch.rand(n, 1, 1, 1, generator=gen, dtype=DTYPE)
    h = C.sample_prob_max_pool(hidden_input.expand(n, -1, -1, -1), 2, u)
    assert float(h.reshape(n, 4).sum(1).max()) <= 1.0  # at most one unit on
    freq = torch.cat([1 - h.reshape(n, 4).sum(1, keepdim=True), h.reshape(n, 4)], 1).mean(0)
    probs = torch.softmax(torch.cat([torch.zeros(1, dtype=DTYPE), hidden_input.flatten()]), 0)
    torch.testing.assert_close(freq, probs, atol=0.01, rtol=0)


def test_gibbs_step_uses_its_noise_and_registry_round_trip(tmp_path) -> None:
    model = ConvolutionalRBM((1, 12, 12), n_filters=3, filter_size=5, pool_size=4, init_std=0.5)
    v = torch.rand(2, 144)
    noise = model.sample_noise(2, torch.Generator().manual_seed(1))
    a, b = model.gibbs_step(v, noise), model.gibbs_step(v, noise)
    torch.testing.assert_close(a.v, b.v)
    h = a.h.reshape(2, 3, 2, 4, 2, 4).sum((3, 5))
    assert float(h.max()) <= 1.0  # the block constraint holds in samples
    again = model_from_spec(model_spec(model))
    assert again.init_args() == model.init_args()
    path = tmp_path / "m.ckpt"
    save_model(model, path)
    loaded = load_model(path)
    torch.testing.assert_close(loaded.free_energy(v), model.free_energy(v))


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="not divisible into 2×2 pooling blocks"):
        ConvolutionalRBM((1, 28, 28), n_filters=4, filter_size=4, pool_size=2)
    with pytest.raises(ValueError, match="do not fit"):
        ConvolutionalRBM((1, 4, 4), n_filters=4, filter_size=5)
    with pytest.raises(ValueError, match="image_shape"):
        ConvolutionalRBM((28, 28), n_filters=4, filter_size=5)  # type: ignore[arg-type]
    model = ConvolutionalRBM((1, 12, 12), n_filters=2, filter_size=5, pool_size=2)
    with pytest.raises(ValueError, match=r"expects v of shape \(batch, 144\)"):
        model.free_energy(torch.rand(2, 100))
    with pytest.raises(ValueError, match="NaN"):
        model.check_visible(torch.full((2, 144), float("nan")))


def test_trains_with_the_shared_system() -> None:
    """Three epochs of CD-1 on real digits through RBMSystem, with a sparsity target."""
    import lightning as L
    from sklearn.datasets import load_digits

    from seqboltz.data import ArrayDataModule
    from seqboltz.training import RBMSystem

    x = load_digits().data.astype(np.float32) / 16.0  # 8×8 digits in [0, 1]
    dm = ArrayDataModule.from_arrays(x[:1200], x[1200:1500], x[1500:], batch_size=50)
    model = ConvolutionalRBM((1, 8, 8), n_filters=6, filter_size=3, pool_size=2, init_std=0.1)
    system = RBMSystem(model, lr=0.05, sparsity_target=0.05, sparsity_cost=0.1, eval_log_z="none")
    trainer = L.Trainer(
        max_epochs=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    test = torch.from_numpy(x[1500:])
    scrambled = test[:, torch.randperm(64, generator=torch.Generator().manual_seed(0))]

    def gap() -> float:  # log p(digit) - log p(same pixels scrambled), per image: log Z cancels
        with torch.no_grad():
            return float((model.free_energy(scrambled) - model.free_energy(test)).mean())

    def recon_error() -> float:
        with torch.no_grad():
            return float(((model.reconstruct(test) - test) ** 2).sum(1).mean())

    gap0, err0 = gap(), recon_error()
    trainer.fit(system, datamodule=dm)
    assert gap() > gap0 + 5.0, (gap0, gap())  # digits now far more probable than scrambles
    assert recon_error() < 0.7 * err0, (err0, recon_error())
