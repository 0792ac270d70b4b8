"""The residual CRBM: it starts at the least-squares AR model, its energy against enumeration,
its sampler against a numpy construction, and Box–Muller against the normal law."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from scipy.special import expit, logsumexp

from seqboltz.eval._sequence import (
    ar_spectral_radius,
    clip_length_radius,
    fit_linear_ar,
    history_windows,
)
from seqboltz.models import ResidualCRBM
from seqboltz.models._residual import box_muller, fit_log_scale
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


def test_an_auto_radius_comes_from_the_training_clips_lengths() -> None:
    # random walks: a unit root, slower than any clip can show, is clipped to 1 - 1/120
    clips = [np.cumsum(np.random.default_rng(i).normal(size=(120, 3)), 0) for i in range(4)]
    radius = clip_length_radius(clips)
    assert radius == pytest.approx(1 - 1 / 120)
    assert ar_spectral_radius(fit_linear_ar(clips, 2).coef) > radius
    auto = ResidualCRBM(3, 4, order=2, max_radius="auto", stabilise="clip").double()
    assert auto.start_radius is None  # until fitted
    auto.init_from_sequences(clips)
    assert auto.start_radius == radius
    fixed = ResidualCRBM(3, 4, order=2, max_radius=radius, stabilise="clip").double()
    fixed.init_from_sequences(clips)
    torch.testing.assert_close(auto.autoregressive, fixed.autoregressive, rtol=0, atol=0)
    torch.testing.assert_close(auto.visible_bias, fixed.visible_bias, rtol=0, atol=0)
    coef = _np(auto.autoregressive) @ _np(auto.unwhiten).T
    assert ar_spectral_radius(coef) == pytest.approx(radius, abs=1e-9)
    assert auto.init_args()["max_radius"] == "auto" and "start_radius=" in repr(auto)
    # the chosen radius travels with the weights (it is not an init argument)
    again = ResidualCRBM(3, 4, order=2, max_radius="auto", stabilise="clip").double()
    again.load_state_dict(auto.state_dict())
    assert again.start_radius == radius
    old = {k: v for k, v in auto.state_dict().items() if k != "start_radius_"}
    again = ResidualCRBM(3, 4, order=2, max_radius="auto", stabilise="clip").double()
    again.load_state_dict(old)  # a checkpoint from before it was recorded
    assert again.start_radius is None
    for bad in ("fast", 1.5, 0.0):
        with pytest.raises(ValueError, match=r"max_radius must be in \(0, 1\] or 'auto'"):
            ResidualCRBM(3, 4, order=2, max_radius=bad)


# -- frame-level controls (text-to-speech's linguistic features) -----------------------------
def _controlled_clips(d: int = 3, c: int = 2) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """AR clips driven by controls (a random 0/1 and a ramp): the controls carry signal the
    history cannot predict."""
    clips, controls = [], []
    drive = np.random.default_rng(9).normal(size=(c, d))
    for i in range(3):
        rng = np.random.default_rng(10 + i)
        ctl = np.stack([rng.integers(0, 2, 200), np.linspace(0, 1, 200)], 1)[:, :c]
        x = np.zeros((200, d))
        for t in range(2, 200):
            x[t] = 0.9 * x[t - 1] - 0.2 * x[t - 2] + ctl[t] @ drive + rng.normal(size=d) * 0.1
        clips.append(x)
        controls.append(ctl.astype(np.float64))
    return clips, controls


def _lstsq(clips, controls, order, ridge, noise=0.0):  # type: ignore[no-untyped-def]
    xs, ys = [], []
    for v, c in zip(clips, controls, strict=True):
        hist, targ = history_windows([v], order)
        xs.append(
            np.concatenate([hist.reshape(len(hist), -1), c[order:], np.ones((len(hist), 1))], 1)
        )
        ys.append(targ)
    x, y = np.concatenate(xs), np.concatenate(ys)
    pen = np.full(x.shape[1], ridge)
    pen[: order * clips[0].shape[1]] += len(x) * noise**2
    sol = np.linalg.solve(x.T @ x + np.diag(pen), x.T @ y)
    return x, y, sol


def test_the_start_with_controls_is_the_least_squares_fit_on_history_and_controls() -> None:
    clips, controls = _controlled_clips()
    for noise in (0.0, 0.5):
        m = ResidualCRBM(3, 4, order=2, n_controls=2, start_history_noise=noise).double()
        m.init_from_sequences(clips, controls=controls)
        x, y, sol = _lstsq(clips, controls, 2, m.ridge, noise)
        with torch.no_grad():
            cond = {
                "history": torch.from_numpy(x[:, :6].reshape(-1, 2, 3)),
                "controls": torch.from_numpy(x[:, 6:8]),
            }
            mean = m.visible_mean(torch.zeros(len(x), 4, dtype=DTYPE), m.frame_params(cond))
        np.testing.assert_allclose(_np(mean), x @ sol, rtol=1e-7, atol=1e-9)
        L = _np(m.unwhiten)
        np.testing.assert_allclose(L @ L.T, np.cov((y - x @ sol).T), rtol=1e-6, atol=1e-10)
    # the controls matter: without them the start fits worse
    plain = fit_linear_ar(clips, 2, ridge=m.ridge)
    assert np.trace(plain.residual_cov) > 2 * np.trace(
        np.cov((y - x @ _lstsq(clips, controls, 2, m.ridge)[2]).T)
    )
    # a stabilised start: history shrunk to the radius, controls and intercept refitted
    s = ResidualCRBM(3, 4, order=2, n_controls=2, max_radius=0.5, train_linear=False).double()
    s.init_from_sequences(clips, controls=controls)
    coef = _np(s.autoregressive) @ _np(s.unwhiten).T
    assert ar_spectral_radius(coef) == pytest.approx(0.5, abs=1e-9)
    trainable = {id(p) for params in s.parameter_roles().values() for p in params}
    assert id(s.control_to_visible) not in trainable and id(s.control_to_hidden) in trainable
    assert not s.control_to_visible.requires_grad
    # clipped instead: only the roots above the radius move, the rest of the fit stays
    c = ResidualCRBM(
        3, 4, order=2, n_controls=2, max_radius=0.5, stabilise="clip", train_linear=False
    ).double()
    c.init_from_sequences(clips, controls=controls)
    clipped = _np(c.autoregressive) @ _np(c.unwhiten).T
    assert ar_spectral_radius(clipped) == pytest.approx(0.5, abs=1e-9)
    assert not np.allclose(clipped, coef)
    with pytest.raises(ValueError, match="stabilise must be one of"):
        ResidualCRBM(3, 4, order=2, stabilise="shrink")


def _random_controlled(seed: int, n: int) -> tuple[ResidualCRBM, dict[str, torch.Tensor], Any]:
    """A controlled model at its least-squares start with random hidden weights, ``n`` random
    windows, and the numpy ``(history, a_hat, b_hat, v)`` of them."""
    clips, controls = _controlled_clips()
    m = ResidualCRBM(3, 4, order=2, n_controls=2, init_std=0.4).double()
    m.init_from_sequences(clips, controls=controls)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in (m.weight, m.control_to_hidden, m.past_to_hidden, m.hidden_bias):
            p.copy_(torch.randn(p.shape, generator=g, dtype=DTYPE) * 0.5)
    rng = np.random.default_rng(seed + 2)
    history, ctl, v = rng.normal(size=(n, 2, 3)), rng.normal(size=(n, 2)), rng.normal(size=(n, 3))
    cond = {"history": torch.from_numpy(history), "controls": torch.from_numpy(ctl)}
    x = history.reshape(n, -1)
    a_hat = _np(m.visible_bias) + x @ _np(m.autoregressive) + ctl @ _np(m.control_to_visible)
    b_hat = _np(m.hidden_bias) + x @ _np(m.past_to_hidden) + ctl @ _np(m.control_to_hidden)
    return m, cond, (history, a_hat, b_hat, v)


def test_free_energy_with_controls_against_enumeration() -> None:
    m, cond, (history, a_hat, b_hat, v) = _random_controlled(4, 5)
    r = v @ _np(m.whiten).T - a_hat
    hs = binary_states(4)
    energies = 0.5 * (r**2).sum(1)[:, None] - b_hat @ hs.T - (r @ _np(m.weight)) @ hs.T
    vt = torch.from_numpy(v)
    np.testing.assert_allclose(
        _np(m.free_energy(vt, cond)), -logsumexp(-energies, axis=1), rtol=1e-10
    )
    np.testing.assert_allclose(
        _np(m.energy(vt, torch.from_numpy(hs[[5] * 5]), cond)), energies[:, 5], rtol=1e-10
    )
    with pytest.raises(ValueError, match=r"needs controls of shape \(batch, 2\)"):
        m.free_energy(vt, {"history": torch.from_numpy(history)})


def test_bad_control_clips_are_refused() -> None:
    clips, controls = _controlled_clips()
    m = ResidualCRBM(3, 4, order=2, n_controls=2)
    with pytest.raises(ValueError, match="needs the clips' controls"):
        m.init_from_sequences(clips)
    with pytest.raises(ValueError, match=r"control clip 1 has shape \(199, 2\)"):
        m.init_from_sequences(clips, controls=[controls[0], controls[1][1:], controls[2]])
    with pytest.raises(ValueError, match="n_controls=0"):
        ResidualCRBM(3, 4, order=2).init_from_sequences(clips, controls=controls)
    with pytest.raises(ValueError, match="n_controls >= 0"):
        ResidualCRBM(3, 4, order=2, n_controls=-1)


def _exported(m: ResidualCRBM, tmp_path: Path) -> tuple[ResidualCRBM, Any]:
    """``m`` as a checkpoint keeps it (float32, back to float64: what is exported is compared)
    and its artifact from ``seqboltz export`` at k = 3."""
    from seqboltz.cli import main
    from seqboltz.models import save_model
    from seqboltz.runtime import load_artifact

    m = m.float().double()
    ckpt = save_model(m, tmp_path / "m.ckpt")
    argv = ["export", str(ckpt), "--out", str(tmp_path / "m.onnx"), "--no-data"]
    assert main([*argv, "--gibbs-steps", "3"]) == 0
    return m, load_artifact(tmp_path / "m.onnx")


@pytest.mark.slow  # an export takes seconds (torch.export + ONNX translation)
def test_a_controlled_model_exports_and_the_runtime_generates_the_same(tmp_path) -> None:  # type: ignore[no-untyped-def]

    clips, controls = _controlled_clips()
    m = ResidualCRBM(3, 4, order=2, n_controls=2, init_std=0.3).double()
    m.init_from_sequences(clips, controls=controls)
    m, art = _exported(m, tmp_path)
    seed_frames = np.stack([clips[0][:2], clips[1][:2]])
    ctl = np.stack([controls[0][2:8], controls[1][2:8]])  # per frame (B, T, C)
    got = art.generate(6, seed=4, seed_frames=seed_frames, controls=ctl)
    with torch.no_grad():
        expected = m.generate(
            torch.from_numpy(seed_frames), 6, gibbs_steps=3, seed=4, controls=torch.from_numpy(ctl)
        ).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-8)
    assert art.card["conditioning"]["controls"]["size"] == 2


def test_hidden_units_blind_to_the_history_stay_blind() -> None:
    clips, controls = _controlled_clips()
    m = ResidualCRBM(3, 4, order=2, n_controls=2, init_std=0.3, history_to_hidden=False)
    m = m.double()
    m.init_from_sequences(clips, controls=controls)
    trainable = {id(p) for params in m.parameter_roles().values() for p in params}
    assert id(m.past_to_hidden) not in trainable and not m.past_to_hidden.requires_grad
    hist, targ = history_windows(clips, 2)
    ctl = torch.from_numpy(np.concatenate([c[2:] for c in controls]))
    cond = {"history": torch.as_tensor(hist), "controls": ctl}
    m.free_energy(torch.as_tensor(targ), cond).mean().backward()
    assert m.past_to_hidden.grad is None and m.control_to_hidden.grad is not None
    assert float(m.past_to_hidden.abs().max()) == 0.0
    with torch.no_grad():  # b̂ depends on the controls only
        b1 = m.frame_params(cond).hidden_bias
        b2 = m.frame_params({"history": torch.as_tensor(hist) * 3, "controls": ctl}).hidden_bias
    torch.testing.assert_close(b1, b2)


# -- a per-frame style (motion's root speed): a mean input and a residual scale ----------------
def _styled_clips(d: int = 3) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """AR clips whose innovation scale is exp(0.2 + 0.5 z) with z a slow per-frame style, and
    whose mean moves with z too: (clips, styles, the true κ)."""
    kappa = np.array([0.2, 0.5])
    clips, styles = [], []
    for i in range(4):
        rng = np.random.default_rng(20 + i)
        z = np.sin(np.linspace(0, 3, 400) + i)[:, None] * 1.5
        x = np.zeros((400, d))
        for t in range(2, 400):
            scale = np.exp(kappa[0] + kappa[1] * z[t, 0])
            x[t] = 0.8 * x[t - 1] - 0.1 * x[t - 2] + 0.3 * z[t] + rng.normal(size=d) * scale
        clips.append(x)
        styles.append(z)
    return clips, styles, kappa


def test_fit_log_scale_recovers_a_log_linear_scale() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(20000, 2))
    s = 0.3 + z @ np.array([0.4, -0.2])
    r = rng.normal(size=(20000, 5)) * np.exp(s)[:, None]
    kappa = fit_log_scale((r**2).sum(1), z, 5)
    np.testing.assert_allclose(kappa, [0.3, 0.4, -0.2], atol=0.01)


def test_the_styled_start_fits_the_mean_and_the_scale() -> None:
    clips, styles, kappa = _styled_clips()
    m = ResidualCRBM(3, 4, order=2, n_style=1, max_radius=0.99, train_linear=False).double()
    m.init_from_sequences(clips, styles=styles)
    x, y, sol = _lstsq(clips, styles, 2, m.ridge)  # the style is a regressor like a control
    cond = {
        "history": torch.from_numpy(x[:, :6].reshape(-1, 2, 3)),
        "style": torch.from_numpy(x[:, 6:7]),
    }
    with torch.no_grad():
        params = m.frame_params(cond)
        mean = m.visible_mean(torch.zeros(len(x), 4, dtype=DTYPE), params)
    np.testing.assert_allclose(_np(mean), x @ sol, rtol=1e-7, atol=1e-9)
    # the scale is the ML fit on the whitened residuals: close to the generating κ's shape
    r = (y - x @ sol) @ _np(m.whiten).T
    expected = fit_log_scale((r**2).sum(1), x[:, 6:7], 3)
    got = [float(m.log_scale_bias), float(m.style_to_log_scale[0])]
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    assert got[1] == pytest.approx(kappa[1], abs=0.05)
    assert params.gate is not None  # σ(z) (B, 1)
    np.testing.assert_allclose(_np(params.gate)[:, 0], np.exp(x[:, 6] * got[1] + got[0]))
    # frozen with the linear part, and bounded for any requested style
    trainable = {id(p) for params_ in m.parameter_roles().values() for p in params_}
    for p in (m.style_to_visible, m.log_scale_bias, m.style_to_log_scale):
        assert id(p) not in trainable and not p.requires_grad
    assert id(m.style_to_hidden) in trainable
    huge = m.residual_scale(torch.tensor([[1e6], [-1e6]], dtype=DTYPE))
    np.testing.assert_allclose(_np(huge)[:, 0], np.exp([3.0, -3.0]))
    with pytest.raises(ValueError, match="needs the clips' styles"):
        m.init_from_sequences(clips)
    with pytest.raises(ValueError, match=r"style clip 0 has shape \(399, 1\)"):
        m.init_from_sequences(clips, styles=[styles[0][1:], *styles[1:]])
    with pytest.raises(ValueError, match="n_style=0"):
        ResidualCRBM(3, 4, order=2).init_from_sequences(clips, styles=styles)


def _styled_model() -> ResidualCRBM:
    clips, styles, _ = _styled_clips()
    m = ResidualCRBM(3, 4, order=2, n_style=1, n_controls=1, init_std=0.4).double()
    controls = [np.cos(np.arange(len(c)) / 7.0)[:, None] for c in clips]
    m.init_from_sequences(clips, controls=controls, styles=styles)
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for p in (m.weight, m.style_to_hidden, m.control_to_hidden, m.past_to_hidden):
            p.copy_(torch.randn(p.shape, generator=g, dtype=DTYPE) * 0.5)
    return m


def test_the_style_gain_scales_the_requested_style_in_generation_only() -> None:
    m = _styled_model()
    rng = np.random.default_rng(8)
    start = torch.from_numpy(rng.normal(size=(2, 2, 3)))
    ctl = torch.from_numpy(rng.normal(size=(2, 1)))
    sty = torch.from_numpy(rng.normal(size=(2, 5, 1)))
    assert float(m.style_gain) == 1.0  # uncalibrated
    doubled = m.generate(start, 5, gibbs_steps=2, style=2 * sty, controls=ctl, seed=3)
    v = torch.from_numpy(rng.normal(size=(4, 3)))
    cond = {
        "history": torch.from_numpy(rng.normal(size=(4, 2, 3))),
        "style": torch.from_numpy(rng.normal(size=(4, 1))),
        "controls": torch.from_numpy(rng.normal(size=(4, 1))),
    }
    before = m.free_energy(v, cond)
    m.style_gain.fill_(2.0)
    # generation reads g·z: the same frames as asking for 2z at g = 1
    got = m.generate(start, 5, gibbs_steps=2, style=sty, controls=ctl, seed=3)
    torch.testing.assert_close(got, doubled, rtol=0, atol=1e-12)
    assert not torch.allclose(got, m.generate(start, 5, 2, style=2 * sty, controls=ctl, seed=3))
    # training reads the style as given
    torch.testing.assert_close(m.free_energy(v, cond), before, rtol=0, atol=0)
    # the gain is saved with the model, and a checkpoint from before it loads with g = 1
    state = m.state_dict()
    assert float(state["style_gain"]) == 2.0
    fresh = _styled_model()
    fresh.load_state_dict({k: t for k, t in state.items() if k != "style_gain"})
    assert float(fresh.style_gain) == 1.0
    fresh.load_state_dict(state)
    assert float(fresh.style_gain) == 2.0
    assert "style_gain" not in ResidualCRBM(3, 4, order=2).state_dict()


def test_a_calibration_curve_maps_the_requested_speed_and_travels_with_the_model() -> None:
    """With :attr:`style_curve` set, generation reads the first style column through the curve
    (here bent: 0.5 → 0.8) instead of ``g·z``; the curve is saved with its own number of knots,
    and a checkpoint from before curves loads with none."""
    m = _styled_model()
    rng = np.random.default_rng(9)
    start = torch.from_numpy(rng.normal(size=(2, 2, 3)))
    ctl = torch.from_numpy(rng.normal(size=(2, 1)))
    half = torch.full((2, 5, 1), 0.5, dtype=torch.float64)
    want = m.generate(
        start, 5, gibbs_steps=2, style=torch.full_like(half, 0.8), controls=ctl, seed=4
    )
    m.style_gain.fill_(3.0)  # the curve, not the gain, reads the first column
    m.style_curve = torch.tensor(
        [[-1.0, 0.0, 0.5, 2.0], [-2.0, 0.2, 0.8, 1.0]], dtype=torch.float64
    )
    got = m.generate(start, 5, gibbs_steps=2, style=half, controls=ctl, seed=4)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    torch.testing.assert_close(
        m.requested_style(torch.tensor([[-1.5], [3.0]], dtype=torch.float64)),
        torch.tensor([[-3.1], [1.0 + 0.2 / 1.5]], dtype=torch.float64),  # the end segments
    )
    state = m.state_dict()
    fresh = _styled_model()
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.style_curve, m.style_curve)
    old = _styled_model()
    old.load_state_dict({k: t for k, t in state.items() if k != "style_curve"})
    assert old.style_curve.shape == (2, 0)


def test_free_energy_with_a_style_against_enumeration() -> None:
    """Energy, free energy and both conditionals in the scaled residual r = (Mv - â) / σ(z)."""
    m = _styled_model()
    rng = np.random.default_rng(6)
    history, sty, ctl = rng.normal(size=(5, 2, 3)), rng.normal(size=(5, 1)), rng.normal(size=(5, 1))
    v = rng.normal(size=(5, 3))
    cond = {
        k: torch.from_numpy(a) for k, a in (("history", history), ("style", sty), ("controls", ctl))
    }
    x = history.reshape(5, -1)
    a_hat = (
        _np(m.visible_bias)
        + x @ _np(m.autoregressive)
        + ctl @ _np(m.control_to_visible)
        + sty @ _np(m.style_to_visible)
    )
    b_hat = (
        _np(m.hidden_bias)
        + x @ _np(m.past_to_hidden)
        + ctl @ _np(m.control_to_hidden)
        + sty @ _np(m.style_to_hidden)
    )
    sigma = np.exp(_np(m.log_scale_bias) + sty @ _np(m.style_to_log_scale)[:, None])  # (5, 1)
    r = (v @ _np(m.whiten).T - a_hat) / sigma
    w = _np(m.weight)
    hs = binary_states(4)
    energies = 0.5 * (r**2).sum(1)[:, None] - b_hat @ hs.T - (r @ w) @ hs.T
    vt = torch.from_numpy(v)
    np.testing.assert_allclose(_np(m.free_energy(vt, cond)), -logsumexp(-energies, 1), rtol=1e-10)
    np.testing.assert_allclose(
        _np(m.energy(vt, torch.from_numpy(hs[[6] * 5]), cond)), energies[:, 6], rtol=1e-10
    )
    np.testing.assert_allclose(_np(m.hidden_probs(vt, cond)), expit(b_hat + r @ w), rtol=1e-10)
    h = hs[[1, 4, 8, 11, 14]]
    np.testing.assert_allclose(
        _np(m.visible_params(torch.from_numpy(h), cond)),
        (a_hat + sigma * (h @ w.T)) @ _np(m.unwhiten).T,
        rtol=1e-10,
    )


def test_the_styled_sampler_scales_its_residual() -> None:
    """A generated frame is L(â + σ(z)(r + ε)): the model's sampler with the style's scale."""
    m = _styled_model()
    rng = np.random.default_rng(8)
    history, sty, ctl = rng.normal(size=(4, 2, 3)), rng.normal(size=(4, 1)), rng.normal(size=(4, 1))
    cond = {
        k: torch.from_numpy(a) for k, a in (("history", history), ("style", sty), ("controls", ctl))
    }
    noise = torch.rand((4, 3, m.noise_width), generator=torch.Generator().manual_seed(2)).double()
    with torch.no_grad():
        got = _np(m.next_frame(cond, noise))
        params = m.frame_params(cond)
    w = _np(m.weight)
    a_hat = _np(params.visible_bias)
    b_hat = _np(params.hidden_bias)
    u = noise.numpy()
    r = np.zeros((4, 3))
    for s in range(3):
        r = (u[:, s, :4] < expit(b_hat + r @ w)).astype(float) @ w.T
    r = expit(b_hat + r @ w) @ w.T + _np(box_muller(noise[:, -1, 4:], 3))
    assert params.gate is not None
    sigma = _np(params.gate)
    np.testing.assert_allclose(got, (a_hat + sigma * r) @ _np(m.unwhiten).T, rtol=1e-9, atol=1e-12)


@pytest.mark.slow  # an export takes seconds (torch.export + ONNX translation)
def test_a_styled_model_exports_and_the_runtime_steers_it_the_same(tmp_path) -> None:  # type: ignore[no-untyped-def]

    clips, styles, _ = _styled_clips()
    m = ResidualCRBM(3, 4, order=2, n_style=1, init_std=0.3).double()
    m.init_from_sequences(clips, styles=styles)
    m.style_gain.fill_(1.7)  # a calibrated control travels in the graph
    m, art = _exported(m, tmp_path)
    seed_frames = np.stack([clips[0][:2], clips[1][:2]])
    sty = np.repeat([[[-2.0]], [[2.0]]], 6, axis=1)  # per frame (B, T, S): slow and fast
    got = art.generate(6, seed=4, seed_frames=seed_frames, style=sty)
    with torch.no_grad():
        expected = m.generate(
            torch.from_numpy(seed_frames), 6, gibbs_steps=3, seed=4, style=torch.from_numpy(sty)
        ).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-8)
    assert art.card["conditioning"]["style"]["size"] == 1


# -- the conditional mean (hybrid training's objective) ----------------------------------------
def test_conditional_mean_is_the_mean_field_passes_from_the_linear_prediction() -> None:
    m, cond, (_, a_hat, b_hat, v) = _random_controlled(5, 6)
    w, big_l, big_m = _np(m.weight), _np(m.unwhiten), _np(m.whiten)
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    r1 = sig(b_hat) @ w.T  # one pass from r = 0: the linear model plus a network of the inputs
    r2 = sig(b_hat + r1 @ w) @ w.T
    with torch.no_grad():
        np.testing.assert_allclose(
            _np(m.conditional_mean(cond)), (a_hat + r1) @ big_l.T, rtol=1e-10
        )
        np.testing.assert_allclose(
            _np(m.conditional_mean(cond, passes=2)), (a_hat + r2) @ big_l.T, rtol=1e-10
        )
        err = _np(m.conditional_mean_error(torch.from_numpy(v), cond))
    np.testing.assert_allclose(err, 0.5 * ((v @ big_m.T - a_hat - r1) ** 2).sum(1), rtol=1e-10)
    with pytest.raises(ValueError, match="passes"):
        m.conditional_mean(cond, passes=0)


@pytest.mark.slow  # an export takes seconds
def test_mean_generation_emits_the_one_pass_conditional_mean_everywhere(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``generation="mean"``: every frame is :meth:`conditional_mean` of its window, whatever
    the seed, visible noise and k; the exported artifact generates the same frames."""
    clips, controls = _controlled_clips()
    m = ResidualCRBM(3, 4, order=2, n_controls=2, init_std=0.3, visible_noise=1.0)
    m = m.double()
    m.init_from_sequences(clips, controls=controls)
    with pytest.raises(ValueError, match="generation must be"):
        ResidualCRBM(3, 4, order=2, generation="mode")
    m.generation = "mean"
    seed_frames = np.stack([clips[0][:2], clips[1][:2]])
    ctl = np.stack([controls[0][2:8], controls[1][2:8]])
    with torch.no_grad():
        window = torch.from_numpy(seed_frames[:, ::-1].copy())
        expected = []
        for t in range(6):
            v = m.conditional_mean({"history": window, "controls": torch.from_numpy(ctl[:, t])})
            expected.append(v)
            window = torch.cat([v[:, None], window[:, :-1]], dim=1)
        want = torch.stack(expected, 1).numpy()
        for seed, k in ((0, 1), (9, 3)):
            got = m.generate(
                torch.from_numpy(seed_frames), 6, k, seed=seed, controls=torch.from_numpy(ctl)
            )
            np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)
    m, art = _exported(m, tmp_path)
    assert art.card["model"]["generation"] == "mean"
    got = art.generate(6, seed=4, seed_frames=seed_frames, controls=ctl)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)  # the float32 round trip


def test_speed_bands_give_each_speed_its_own_linear_dynamics() -> None:
    """Clips whose dynamics depend on the style (slow: a frame mostly forgets its past; fast:
    it keeps it): a model with style bands starts at each band's own least-squares fit, its
    torch weights equal the numpy ones, and it round-trips through its state."""
    from seqboltz.models._residual import _band_weights_np

    rng = np.random.default_rng(0)
    clips, styles = [], []
    for i in range(6):
        z = -1.0 if i % 2 else 1.0
        a = 0.3 if z < 0 else 0.9
        x = np.zeros((400, 2))
        for t in range(1, 400):
            x[t] = a * x[t - 1] + rng.normal(size=2)
        clips.append(x)
        styles.append(np.full((400, 1), z))
    pooled = ResidualCRBM(2, 3, order=1, n_style=1, train_linear=False).double()
    banded = ResidualCRBM(
        2, 3, order=1, n_style=1, train_linear=False, style_bands=[-1.0, 1.0]
    ).double()
    pooled.init_from_sequences(clips, styles=styles)
    banded.init_from_sequences(clips, styles=styles)
    hist = torch.ones(1, 1, 2, dtype=torch.float64)
    for z, a in ((-1.0, 0.3), (1.0, 0.9)):
        cond = {"history": hist, "style": torch.full((1, 1), z, dtype=torch.float64)}
        mean = banded.frame_params(cond).visible_bias @ banded.unwhiten.T  # L â
        np.testing.assert_allclose(mean.numpy()[0], [a, a], atol=0.08)
        lumped = pooled.frame_params(cond).visible_bias @ pooled.unwhiten.T
        assert abs(float(lumped[0, 0]) - a) > 0.1  # one AR for both speeds fits neither
    z = np.linspace(-2.0, 2.0, 41)
    w = _band_weights_np(z, [-1.0, 0.0, 1.5])
    np.testing.assert_allclose(w.sum(1), 1.0)
    assert (w >= 0).all() and w[0, 0] == 1.0 and w[-1, -1] == 1.0
    three = ResidualCRBM(2, 3, order=1, n_style=1, style_bands=[-1.0, 0.0, 1.5]).double()
    torch_w = three.band_weights(torch.from_numpy(z[:, None]))
    np.testing.assert_allclose(torch_w.numpy(), w, atol=1e-12)
    again = ResidualCRBM(**banded.init_args()).double()
    again.load_state_dict(banded.state_dict())
    cond = {"history": hist, "style": torch.full((1, 1), 0.3, dtype=torch.float64)}
    torch.testing.assert_close(
        again.frame_params(cond).visible_bias, banded.frame_params(cond).visible_bias
    )
    for bad, match in (
        ({"n_style": 0, "style_bands": [-1.0, 1.0]}, "needs a style"),
        ({"n_style": 1, "style_bands": [1.0, -1.0]}, "increasing"),
    ):
        with pytest.raises(ValueError, match=match):
            ResidualCRBM(2, 3, order=1, **bad)  # type: ignore[arg-type]
