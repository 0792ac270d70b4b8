"""Taylor et al. (2007)'s two-layer CRBM: the binary-visible upper layer against enumeration,
and the stacked sampler against an independent numpy construction of its definition."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import expit, logsumexp

from seqboltz.models import (
    BinaryConditionalRBM,
    ConditionalRBM,
    ResidualCRBM,
    TwoLayerCRBM,
    load_model,
    save_model,
)
from seqboltz.noise import gibbs_uniforms, sequence_rng

DTYPE = torch.float64


def binary_states(n: int) -> np.ndarray:
    grid = np.arange(2**n)[:, None] >> np.arange(n - 1, -1, -1)[None, :]
    return (grid & 1).astype(np.float64)


def _filled(model: torch.nn.Module, seed: int, std: float = 0.5) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    model = model.to(DTYPE)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=DTYPE) * std)
    return model


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


# -- the binary-visible conditional RBM ------------------------------------------------------
@pytest.fixture
def top() -> BinaryConditionalRBM:
    return _filled(BinaryConditionalRBM(4, 3, order=2), seed=1)  # type: ignore[return-value]


def _dynamic_biases(model: BinaryConditionalRBM, history: np.ndarray):
    x = history.reshape(history.shape[0], -1)
    a = _np(model.visible_bias) + x @ _np(model.autoregressive)
    b = _np(model.hidden_bias) + x @ _np(model.past_to_hidden)
    return a, b


def test_binary_crbm_free_energy_is_the_enumerated_sum(top: BinaryConditionalRBM) -> None:
    g = torch.Generator().manual_seed(0)
    history = torch.rand((5, 2, 4), generator=g, dtype=DTYPE)
    v = torch.rand((5, 4), generator=g, dtype=DTYPE)  # probabilities, as layer 2 sees them
    a, b = _dynamic_biases(top, _np(history))
    w = _np(top.weight)
    hs = binary_states(3)
    energies = -(_np(v) * a).sum(1)[:, None] - b @ hs.T - (_np(v) @ w) @ hs.T  # (5, 8)
    expected = -logsumexp(-energies, axis=1)
    got = _np(top.free_energy(v, {"history": history}))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # the joint energy of one configuration, from the same formula
    e = _np(top.energy(v, torch.from_numpy(hs[[5] * 5]), {"history": history}))
    np.testing.assert_allclose(e, energies[:, 5], rtol=1e-12)


def test_binary_crbm_conditionals_and_gibbs_step(top: BinaryConditionalRBM) -> None:
    g = torch.Generator().manual_seed(2)
    history = torch.rand((6, 2, 4), generator=g, dtype=DTYPE)
    h = (torch.rand((6, 3), generator=g, dtype=DTYPE) < 0.5).to(DTYPE)
    a, b = _dynamic_biases(top, _np(history))
    cond = {"history": history}
    np.testing.assert_allclose(
        _np(top.visible_params(h, cond)), expit(a + _np(h) @ _np(top.weight).T), rtol=1e-12
    )
    noise = {
        "hidden": torch.rand((6, 3), generator=g, dtype=DTYPE),
        "visible": torch.rand((6, 4), generator=g, dtype=DTYPE),
    }
    v0 = torch.rand((6, 4), generator=g, dtype=DTYPE)
    step = top.gibbs_step(v0, noise, cond)
    ph = expit(b + _np(v0) @ _np(top.weight))
    h_ref = (_np(noise["hidden"]) < ph).astype(float)
    pv = expit(a + h_ref @ _np(top.weight).T)
    np.testing.assert_array_equal(_np(step.h), h_ref)
    np.testing.assert_allclose(_np(step.v_mean), pv, rtol=1e-12)
    np.testing.assert_array_equal(_np(step.v), (_np(noise["visible"]) < pv).astype(float))
    assert set(np.unique(_np(step.v))) <= {0.0, 1.0}


def test_binary_crbm_trains_through_its_own_free_energy(top: BinaryConditionalRBM) -> None:
    from seqboltz.training import RBMSystem
    from seqboltz.training._system import ClosedFormCD

    assert isinstance(ConditionalRBM(4, 3, order=2), ClosedFormCD)
    assert not isinstance(top, ClosedFormCD)  # the Gaussian closed form would be wrong here
    assert not RBMSystem(top)._uses_closed_form()


def test_binary_crbm_refuses_data_outside_0_1(top: BinaryConditionalRBM) -> None:
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        top.init_from_data(torch.tensor([[0.2, 1.5, 0.0, 0.1]], dtype=DTYPE))


# -- the stack ---------------------------------------------------------------------------------
@pytest.fixture
def stack() -> TwoLayerCRBM:
    layer1 = _filled(ConditionalRBM(5, 4, order=3), seed=3, std=0.4)
    layer2 = _filled(BinaryConditionalRBM(4, 3, order=2), seed=4, std=0.8)
    return TwoLayerCRBM.from_layers(layer1, layer2)  # type: ignore[arg-type]


def _reference_frame(model: TwoLayerCRBM, history: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Taylor's two-layer sampler written out in numpy, for one batch."""
    l1, l2 = model.layer1, model.layer2
    w1, w2 = _np(l1.weight), _np(l2.weight)
    n1, n2 = model.order1, model.order2

    def posterior1(j: int) -> np.ndarray:  # p(h¹ | v_{t-1-j}, its own n1 earlier frames)
        x = history[:, j + 1 : j + 1 + n1].reshape(history.shape[0], -1)
        b_hat = _np(l1.hidden_bias) + x @ _np(l1.past_to_hidden)
        return expit(b_hat + history[:, j] @ w1)

    h1_hist = np.stack([posterior1(j) for j in range(n2)], axis=1)
    x2 = h1_hist.reshape(h1_hist.shape[0], -1)
    a2 = _np(l2.visible_bias) + x2 @ _np(l2.autoregressive)
    b2 = _np(l2.hidden_bias) + x2 @ _np(l2.past_to_hidden)
    h1 = h1_hist[:, 0]
    for s in range(noise.shape[1]):
        h2 = (noise[:, s] < expit(b2 + h1 @ w2)).astype(float)
        h1 = expit(a2 + h2 @ w2.T)
    h1 = expit(a2 + expit(b2 + h1 @ w2) @ w2.T)
    x1 = history[:, :n1].reshape(history.shape[0], -1)
    a1 = _np(l1.visible_bias) + x1 @ _np(l1.autoregressive)
    return a1 + h1 @ w1.T


def test_stacked_sampler_matches_its_definition(stack: TwoLayerCRBM) -> None:
    assert (stack.order, stack.n_hidden, stack.n_visible) == (5, 3, 5)
    rng = np.random.default_rng(0)
    history = rng.normal(size=(7, 5, 5))
    noise = rng.random((7, 4, 3))
    got = stack.next_frame({"history": torch.from_numpy(history)}, torch.from_numpy(noise))
    np.testing.assert_allclose(_np(got), _reference_frame(stack, history, noise), rtol=1e-10)


def test_generate_follows_the_noise_rule_and_the_step(stack: TwoLayerCRBM) -> None:
    rng = np.random.default_rng(1)
    seed_frames = rng.normal(size=(2, 6, 5))
    out = stack.generate(torch.from_numpy(seed_frames), n_frames=4, gibbs_steps=3, seed=9)
    window = seed_frames[:, -5:][:, ::-1]
    noise = np.stack([gibbs_uniforms(sequence_rng(9, i), 4, 3, 3) for i in range(2)])
    for t in range(4):
        frame = _reference_frame(stack, window, noise[:, t])
        np.testing.assert_allclose(_np(out[:, t]), frame, rtol=1e-9, atol=1e-12)
        window = np.concatenate([frame[:, None], window[:, :-1]], axis=1)
    # one sequence alone equals the same sequence in the batch
    alone = stack.generate(
        torch.from_numpy(seed_frames[1]), 4, gibbs_steps=3, seed=9, sequence_indices=[1]
    )
    np.testing.assert_allclose(_np(alone), _np(out[1]), rtol=1e-12)


def test_stack_round_trips_through_a_checkpoint(stack: TwoLayerCRBM, tmp_path: Path) -> None:
    again = load_model(save_model(stack, tmp_path / "stack.ckpt"))
    assert isinstance(again, TwoLayerCRBM) and again.init_args() == stack.init_args()
    seed = torch.randn(5, 5, dtype=DTYPE, generator=torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(
        _np(again.to(DTYPE).generate(seed, 3, gibbs_steps=2)),
        _np(stack.generate(seed, 3, gibbs_steps=2)),
    )


def test_stacking_checks_the_layers() -> None:
    layer1 = ConditionalRBM(5, 4, order=3)
    with pytest.raises(ValueError, match="2 visibles but layer 1 has 4 hidden"):
        TwoLayerCRBM.from_layers(layer1, BinaryConditionalRBM(2, 3, order=2))
    with pytest.raises(ValueError, match="layer 2 must be a BinaryConditionalRBM"):
        TwoLayerCRBM.from_layers(layer1, ConditionalRBM(4, 3, order=2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="layer 1 must be a ConditionalRBM"):
        TwoLayerCRBM.from_layers(
            BinaryConditionalRBM(5, 4, order=3), BinaryConditionalRBM(4, 3, order=2)
        )


def test_the_stack_has_no_joint_free_energy(stack: TwoLayerCRBM) -> None:
    with pytest.raises(NotImplementedError, match="trained layer by layer"):
        stack.free_energy(torch.zeros(1, 5, dtype=DTYPE), {"history": torch.zeros(1, 5, 5)})


# -- the stack over a residual CRBM --------------------------------------------------------------
def _residual_layer1() -> ResidualCRBM:
    rng = np.random.default_rng(0)
    clips = [np.cumsum(rng.normal(size=(120, 5)), 0) * 0.1 for _ in range(3)]
    layer1 = ResidualCRBM(5, 4, order=3, visible_noise=0.7).double()
    layer1.init_from_sequences(clips)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in (layer1.weight, layer1.past_to_hidden, layer1.hidden_bias):
            p.copy_(torch.randn(p.shape, generator=g, dtype=DTYPE) * 0.4)
    return layer1


@pytest.fixture
def residual_stack() -> TwoLayerCRBM:
    layer2 = _filled(BinaryConditionalRBM(4, 3, order=2), seed=4, std=0.8)
    return TwoLayerCRBM.from_layers(_residual_layer1(), layer2)  # type: ignore[arg-type]


def test_residual_stack_sampler_matches_its_definition(residual_stack: TwoLayerCRBM) -> None:
    """h¹ re-inferred from the whitened residual, the top layer's chain on the first H² columns,
    then v = L(â¹ + W¹h¹ + s ε) with ε by Box–Muller from the columns past H²."""
    m = residual_stack
    l1, l2 = m.layer1, m.layer2
    assert isinstance(l1, ResidualCRBM) and m.lower == "residual"
    assert m.noise_width == 3 + 6  # H² + 2⌈D/2⌉
    rng = np.random.default_rng(2)
    history = rng.normal(size=(6, 5, 5))
    noise = rng.random((6, 3, m.noise_width))
    got = _np(m.next_frame({"history": torch.from_numpy(history)}, torch.from_numpy(noise)))
    w1, w2, M, L = _np(l1.weight), _np(l2.weight), _np(l1.whiten), _np(l1.unwhiten)

    def a_hat(j: int) -> np.ndarray:  # layer 1's prediction of frame t-1-j (whitened)
        x = history[:, j + 1 : j + 4].reshape(6, -1)
        return _np(l1.visible_bias) + x @ _np(l1.autoregressive)

    def posterior1(j: int) -> np.ndarray:
        x = history[:, j + 1 : j + 4].reshape(6, -1)
        b_hat = _np(l1.hidden_bias) + x @ _np(l1.past_to_hidden)
        return expit(b_hat + (history[:, j] @ M.T - a_hat(j)) @ w1)

    h1_hist = np.stack([posterior1(j) for j in range(2)], axis=1).reshape(6, -1)
    a2 = _np(l2.visible_bias) + h1_hist @ _np(l2.autoregressive)
    b2 = _np(l2.hidden_bias) + h1_hist @ _np(l2.past_to_hidden)
    h1 = h1_hist[:, :4]
    for s in range(3):
        h1 = expit(a2 + (noise[:, s, :3] < expit(b2 + h1 @ w2)) @ w2.T)
    h1 = expit(a2 + expit(b2 + h1 @ w2) @ w2.T)
    u1, u2 = noise[:, -1, 3:6], noise[:, -1, 6:9]
    eps = np.concatenate(
        [
            np.sqrt(-2 * np.log1p(-u1)) * np.cos(2 * np.pi * u2),
            np.sqrt(-2 * np.log1p(-u1)) * np.sin(2 * np.pi * u2),
        ],
        axis=1,
    )[:, :5]
    x1 = history[:, :3].reshape(6, -1)
    a1 = _np(l1.visible_bias) + x1 @ _np(l1.autoregressive)
    np.testing.assert_allclose(got, (a1 + h1 @ w1.T + 0.7 * eps) @ L.T, rtol=1e-9, atol=1e-12)


def test_residual_stack_round_trips_with_its_data_record(
    residual_stack: TwoLayerCRBM, tmp_path: Path
) -> None:
    from seqboltz.eval._cli import data_record

    record = {"class_path": "seqboltz.data.MotionDataModule", "init_args": {"order": 5}}
    path = save_model(residual_stack, tmp_path / "stack.ckpt", data=record)
    again = load_model(path)
    assert isinstance(again, TwoLayerCRBM) and again.init_args() == residual_stack.init_args()
    assert data_record(path)["init_args"] == {"order": 5}
    seed = torch.randn(5, 5, dtype=DTYPE, generator=torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(
        _np(again.to(DTYPE).generate(seed, 3, gibbs_steps=2, seed=1)),
        _np(residual_stack.generate(seed, 3, gibbs_steps=2, seed=1)),
    )
    with pytest.raises(ValueError, match="data must be"):
        save_model(residual_stack, tmp_path / "bad.ckpt", data={"init_args": {}})


def test_a_styled_or_controlled_residual_layer_is_refused() -> None:
    top = BinaryConditionalRBM(4, 3, order=2)
    for layer1 in (
        ResidualCRBM(5, 4, order=3, n_style=1),
        ResidualCRBM(5, 4, order=3, n_controls=2),
    ):
        with pytest.raises(ValueError, match="without controls or style"):
            TwoLayerCRBM.from_layers(layer1, top)
    with pytest.raises(ValueError, match="lower must be"):
        TwoLayerCRBM(5, 4, 3, order1=3, order2=2, lower="gaussian")  # type: ignore[arg-type]


def test_recentring_the_stack_zeroes_its_sampler_mean_error(residual_stack: TwoLayerCRBM) -> None:
    from seqboltz.training._recentre import recentre_intercept, sampler_mean_error

    rng = np.random.default_rng(3)
    clips = [np.cumsum(rng.normal(size=(150, 5)), 0) * 0.1 + 2.0 for _ in range(3)]
    before = float(sampler_mean_error(residual_stack, clips, 2).norm())
    recentre_intercept(residual_stack, clips, 2, iterations=3)
    after = float(sampler_mean_error(residual_stack, clips, 2).norm())
    assert before > 0.1 and after < 1e-3 * before  # (0.21 → 1e-7 here)
    with pytest.raises(ValueError, match="iterations"):
        recentre_intercept(residual_stack, clips, 2, iterations=0)
    plain = TwoLayerCRBM(5, 4, 3, order1=3, order2=2)
    with pytest.raises(TypeError, match="over one"):
        recentre_intercept(plain, clips, 2)
