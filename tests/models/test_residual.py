"""The residual CRBM: it starts at the least-squares AR model, its energy against enumeration,
its sampler against a numpy construction, and Box–Muller against the normal law."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import expit, logsumexp

from seqboltz.eval._sequence import ar_spectral_radius, fit_linear_ar, history_windows
from seqboltz.models import ResidualCRBM
from seqboltz.models._residual import box_muller
from seqboltz.noise import gibbs_uniforms, sequence_rng

DTYPE = torch.float64


def binary_states(n: int) -> np.ndarray:
    grid = np.arange(2**n)[:, None] >> np.arange(n - 1, -1, -1)[None, :]
    return (grid & 1).astype(np.float64)


def _clips(d: int = 3, n: int = 3) -> list[np.ndarray]:
    """Correlated, smooth sequences (a damped rotation plus noise): a real AR structure."""
    out = []
    for i in range(n):
        rng = np.random.default_rng(i)
        x = np.zeros((300, d))
        mix = rng.normal(size=(d, d))
        for t in range(2, 300):
            x[t] = 1.6 * x[t - 1] - 0.7 * x[t - 2] + rng.normal(size=d) @ mix * 0.1
        out.append(x)
    return out


@pytest.fixture
def model() -> ResidualCRBM:
    m = ResidualCRBM(3, 4, order=2, init_std=0.4).double()
    m.init_from_sequences(_clips())
    with torch.no_grad():  # a non-trivial hidden part
        g = torch.Generator().manual_seed(1)
        m.weight.copy_(torch.randn(m.weight.shape, generator=g, dtype=DTYPE) * 0.5)
        m.past_to_hidden.copy_(torch.randn(m.past_to_hidden.shape, generator=g, dtype=DTYPE) * 0.3)
        m.hidden_bias.copy_(torch.randn(4, generator=g, dtype=DTYPE) * 0.3)
    return m


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


def test_the_start_is_the_least_squares_ar_model() -> None:
    clips = _clips()
    m = ResidualCRBM(3, 4, order=2).double()
    m.init_from_sequences(clips)
    ar = fit_linear_ar(clips, 2, ridge=m.ridge)
    L = _np(m.unwhiten)
    np.testing.assert_allclose(L @ L.T, ar.residual_cov, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(_np(m.whiten) @ L, np.eye(3), atol=1e-9)
    history = np.random.default_rng(5).normal(size=(6, 2, 3))
    with torch.no_grad():
        params = m.frame_params({"history": torch.from_numpy(history)})
        mean = m.visible_mean(torch.zeros(6, 4, dtype=DTYPE), params)
    np.testing.assert_allclose(_np(mean), ar.predict(history), rtol=1e-8, atol=1e-10)
    # with W = 0 a generated frame is the AR prediction plus L z, z ~ N(0, I)
    with torch.no_grad():
        m.weight.zero_()
        noise = torch.rand((6, 3, m.noise_width), generator=torch.Generator().manual_seed(0))
        v = m.next_frame({"history": torch.from_numpy(history)}, noise.double())
    z = _np(box_muller(noise[:, -1, 4:].double(), 3))
    np.testing.assert_allclose(_np(v), ar.predict(history) + z @ L.T, rtol=1e-8, atol=1e-10)


def test_free_energy_and_conditionals_against_enumeration(model: ResidualCRBM) -> None:
    rng = np.random.default_rng(2)
    history = torch.from_numpy(rng.normal(size=(5, 2, 3)))
    v = torch.from_numpy(rng.normal(size=(5, 3)))
    cond = {"history": history}
    x = _np(history).reshape(5, -1)
    a_hat = _np(model.visible_bias) + x @ _np(model.autoregressive)
    b_hat = _np(model.hidden_bias) + x @ _np(model.past_to_hidden)
    r = _np(v) @ _np(model.whiten).T - a_hat
    w = _np(model.weight)
    hs = binary_states(4)
    energies = 0.5 * (r**2).sum(1)[:, None] - b_hat @ hs.T - (r @ w) @ hs.T  # (5, 16)
    np.testing.assert_allclose(
        _np(model.free_energy(v, cond)), -logsumexp(-energies, axis=1), rtol=1e-10
    )
    np.testing.assert_allclose(
        _np(model.energy(v, torch.from_numpy(hs[[9] * 5]), cond)), energies[:, 9], rtol=1e-10
    )
    np.testing.assert_allclose(_np(model.hidden_probs(v, cond)), expit(b_hat + r @ w), rtol=1e-10)
    h = torch.from_numpy(hs[[3, 7, 9, 12, 15]])
    np.testing.assert_allclose(
        _np(model.visible_params(h, cond)),
        (a_hat + _np(h) @ w.T) @ _np(model.unwhiten).T,
        rtol=1e-10,
    )


def test_sampler_matches_its_definition(model: ResidualCRBM) -> None:
    rng = np.random.default_rng(3)
    seed_frames = rng.normal(size=(2, 4, 3))
    out = _np(model.generate(torch.from_numpy(seed_frames), 5, gibbs_steps=3, seed=7))
    noise = np.stack(
        [gibbs_uniforms(sequence_rng(7, i), 5, 3, model.noise_width) for i in range(2)]
    )
    w, L, M = _np(model.weight), _np(model.unwhiten), _np(model.whiten)
    assert model.noise_width == 4 + 4
    window = seed_frames[:, ::-1][:, :2]
    for t in range(5):
        x = window.reshape(2, -1)
        a_hat = _np(model.visible_bias) + x @ _np(model.autoregressive)
        b_hat = _np(model.hidden_bias) + x @ _np(model.past_to_hidden)
        r = np.zeros((2, 3))
        for s in range(3):
            r = (noise[:, t, s, :4] < expit(b_hat + r @ w)).astype(float) @ w.T
        r = expit(b_hat + r @ w) @ w.T
        u1, u2 = noise[:, t, -1, 4:6], noise[:, t, -1, 6:8]
        z = np.concatenate(
            [
                np.sqrt(-2 * np.log(1 - u1)) * np.cos(2 * np.pi * u2),
                np.sqrt(-2 * np.log(1 - u1)) * np.sin(2 * np.pi * u2),
            ],
            axis=1,
        )[:, :3]
        frame = (a_hat + r + z) @ L.T
        np.testing.assert_allclose(out[:, t], frame, rtol=1e-9, atol=1e-12)
        window = np.concatenate([frame[:, None], window[:, :-1]], axis=1)
    assert M.shape == (3, 3)


def test_box_muller_gives_standard_normals() -> None:
    u = torch.rand((200_000, 4), generator=torch.Generator().manual_seed(0), dtype=DTYPE)
    z = _np(box_muller(u, 3))
    assert z.shape == (200_000, 3)
    np.testing.assert_allclose(z.mean(0), 0, atol=0.01)
    np.testing.assert_allclose(z.std(0), 1, atol=0.01)
    np.testing.assert_allclose(np.corrcoef(z.T), np.eye(3), atol=0.01)
    assert abs(float(np.mean(z**4)) - 3.0) < 0.05  # the normal's kurtosis
    assert math.isfinite(float(box_muller(torch.zeros(1, 2, dtype=DTYPE), 1)))
    with pytest.raises(ValueError, match="3 normals need 4 uniforms"):
        box_muller(u[:, :3], 3)


def test_bad_starts_are_refused() -> None:
    m = ResidualCRBM(3, 4, order=2)
    with pytest.raises(ValueError, match=r"clips of shape \(T, 3\)"):
        m.init_from_sequences([np.zeros((50, 4))])
    with pytest.raises(ValueError, match="too few windows"):
        m.init_from_sequences([np.zeros((4, 3))])
    bad = _clips()
    bad[1][10, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        m.init_from_sequences(bad)


def test_a_frozen_linear_part_stays_at_the_stabilised_start() -> None:
    clips = _clips()
    m = ResidualCRBM(3, 4, order=2, max_radius=0.9, train_linear=False).double()
    m.init_from_sequences(clips)
    coef = _np(m.autoregressive) @ _np(m.unwhiten).T
    assert ar_spectral_radius(coef) <= 0.9 + 1e-9
    start = [m.autoregressive.detach().clone(), m.visible_bias.detach().clone()]
    trainable = {id(p) for params in m.parameter_roles().values() for p in params}
    assert id(m.autoregressive) not in trainable and id(m.visible_bias) not in trainable
    hist, targ = history_windows(clips, 2)
    cond = {"history": torch.as_tensor(hist)}
    v = torch.as_tensor(targ)
    loss = m.free_energy(v, cond).mean()
    loss.backward()
    assert m.autoregressive.grad is None and m.visible_bias.grad is None
    assert m.weight.grad is not None
    torch.testing.assert_close(m.autoregressive.detach(), start[0])
    torch.testing.assert_close(m.visible_bias.detach(), start[1])
    assert ResidualCRBM(3, 4, order=2, train_linear=False).init_args()["train_linear"] is False
