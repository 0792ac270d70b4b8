"""Tests of :class:`StructuredOutputCRBM` against brute-force enumeration (float64, tiny models).

The reference is independent numpy: ``E(y, h | x) = -yᵀWh - (a + xA)ᵀy - (b + xB)ᵀh``
(Mnih, Larochelle & Hinton 2011), summed over every ``y`` and ``h``.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from seqboltz import functional as Fn
from seqboltz.models import (
    StructuredOutputCRBM,
    load_model,
    model_from_spec,
    model_spec,
    save_model,
)

DTYPE = torch.float64
D, H, C = 4, 3, 5


def states(n: int) -> np.ndarray:
    """All ``2**n`` binary vectors ``(2**n, n)``."""
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def make(seed: int = 0, scale: float = 1.0) -> StructuredOutputCRBM:
    torch.manual_seed(seed)
    model = StructuredOutputCRBM(D, H, C, init_std=scale).to(DTYPE).requires_grad_(False)
    with torch.no_grad():
        model.visible_bias.normal_(0, scale)
        model.hidden_bias.normal_(0, scale)
    return model


def params(model: StructuredOutputCRBM) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def ref_energy(p: dict[str, np.ndarray], y: np.ndarray, h: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``E(y_n, h_m | x)`` for one input ``x (C,)``: ``(N, M)``."""
    a = p["visible_bias"] + x @ p["cond_to_visible"]
    b = p["hidden_bias"] + x @ p["cond_to_hidden"]
    return -(y @ p["weight"] @ h.T) - (y @ a)[:, None] - (h @ b)[None, :]


@pytest.fixture
def model() -> StructuredOutputCRBM:
    return make()


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(3, C, dtype=DTYPE, generator=torch.Generator().manual_seed(5))


def test_energy_and_free_energy_match_enumeration(model: StructuredOutputCRBM, x) -> None:
    p = params(model)
    ys, hs = states(D), states(H)
    for xi in x:
        e = ref_energy(p, ys, hs, xi.numpy())  # (2^D, 2^H)
        cond = xi.expand(len(ys), C)
        f = model.free_energy(torch.from_numpy(ys), cond).numpy()
        np.testing.assert_allclose(f, -logsumexp(-e, axis=1), rtol=0, atol=1e-10)
        fh = model.hidden_free_energy(torch.from_numpy(hs), xi.expand(len(hs), C)).numpy()
        np.testing.assert_allclose(fh, -logsumexp(-e, axis=0), rtol=0, atol=1e-10)
        for j in (0, 5, 11):
            y_b = torch.from_numpy(ys[[j]]).expand(len(hs), D)
            got = model.energy(y_b, torch.from_numpy(hs), xi.expand(len(hs), C)).numpy()
            np.testing.assert_allclose(got, e[j], rtol=0, atol=1e-12)


def test_conditionals_match_enumeration(model: StructuredOutputCRBM, x) -> None:
    """p(h | y, x), p(y | h, x) and p(y | x) (from F) against the enumerated joint."""
    p = params(model)
    ys, hs = states(D), states(H)
    for xi in x:
        e = ref_energy(p, ys, hs, xi.numpy())
        joint = np.exp(-e - logsumexp(-e))  # p(y, h | x)
        # p(h_j = 1 | y, x) for every y
        p_h = (joint @ hs) / joint.sum(1, keepdims=True)
        got_h = model.hidden_probs(torch.from_numpy(ys), xi.expand(len(ys), C)).numpy()
        np.testing.assert_allclose(got_h, p_h, rtol=0, atol=1e-12)
        # p(y_i = 1 | h, x) for every h
        p_y = (joint.T @ ys) / joint.sum(0)[:, None]
        got_y = model.visible_params(torch.from_numpy(hs), xi.expand(len(hs), C)).numpy()
        np.testing.assert_allclose(got_y, p_y, rtol=0, atol=1e-12)
        # p(y | x) ∝ exp(-F(y | x)) is the joint's marginal
        f = model.free_energy(torch.from_numpy(ys), xi.expand(len(ys), C)).numpy()
        np.testing.assert_allclose(np.exp(-f - logsumexp(-f)), joint.sum(1), atol=1e-12)


def test_gibbs_step_is_a_function_of_its_noise(model: StructuredOutputCRBM, x) -> None:
    y = torch.bernoulli(torch.full((3, D), 0.5, dtype=DTYPE))
    noise = model.sample_noise(3, torch.Generator().manual_seed(2))
    a, b = model.gibbs_step(y, noise, x), model.gibbs_step(y, noise, x)
    assert torch.equal(a.v, b.v) and torch.equal(a.h, b.h)
    h = (noise["hidden"] < model.hidden_probs(y, x)).to(DTYPE)
    assert torch.equal(a.h, h)
    torch.testing.assert_close(a.v_mean, model.visible_params(h, x), rtol=0, atol=0)
    assert torch.equal(a.v, (noise["visible"] < a.v_mean).to(DTYPE))
    other = model.sample_noise(3, torch.Generator().manual_seed(3))
    assert not torch.equal(model.gibbs_step(y, other, x).h, a.h)  # the noise matters


def test_mean_field_fixed_point_and_monotone_variational_free_energy(
    model: StructuredOutputCRBM, x
) -> None:
    a_hat, b_hat = model.dynamic_biases(x)
    w = model.weight

    def variational_free_energy(q_y: torch.Tensor, q_h: torch.Tensor) -> torch.Tensor:
        def entropy(q: torch.Tensor) -> torch.Tensor:
            q = q.clamp(1e-300, 1 - 1e-16)
            return -(q * q.log() + (1 - q) * (1 - q).log()).sum(-1)

        energy = -((q_y @ w) * q_h).sum(-1) - (q_y * a_hat).sum(-1) - (q_h * b_hat).sum(-1)
        return energy - entropy(q_y) - entropy(q_h)

    with torch.no_grad():
        q_y = torch.sigmoid(a_hat)
        q_h = torch.sigmoid(b_hat + q_y @ w)
        previous = variational_free_energy(q_y, q_h)
        for _ in range(20):
            q_y, q_h = Fn.bernoulli_mean_field(q_y, w, a_hat, b_hat, n_steps=1)
            now = variational_free_energy(q_y, q_h)
            assert torch.all(now <= previous + 1e-12)
            previous = now
        result = model.infer(x, "mean_field", n_steps=500)
    # the result satisfies both mean-field equations
    torch.testing.assert_close(result.h, torch.sigmoid(b_hat + result.y @ w), rtol=0, atol=1e-12)
    torch.testing.assert_close(result.y, torch.sigmoid(a_hat + result.h @ w.T), rtol=0, atol=1e-5)
    # and mean field is a good approximation of the exact marginals on this tiny model
    p = params(model)
    ys, hs = states(D), states(H)
    for i, xi in enumerate(x):
        e = ref_energy(p, ys, hs, xi.numpy())
        exact = np.exp(-e - logsumexp(-e)).sum(1) @ ys
        assert np.abs(result.y[i].numpy() - exact).max() < 0.25


def test_map_inference_descends_to_a_blockwise_minimum(model: StructuredOutputCRBM, x) -> None:
    """Each step lowers E(y, h | x); the result is optimal in y given h and in h given y."""
    p = params(model)
    ys, hs = states(D), states(H)
    y_start = torch.zeros(3, D, dtype=DTYPE)  # the default start
    result = model.infer(x, "map", n_steps=50)
    assert torch.equal(model.infer(x, "map", 50, y_init=y_start).y, result.y)
    # the "input" start is y = [â > 0] (MAP) or sigm(â) (mean field), â = a + xA
    a_hat, _ = model.dynamic_biases(x)
    from_input = model.infer(x, "map", 50, y_init=(a_hat > 0).to(DTYPE)).y
    assert torch.equal(model.infer(x, "map", 50, y_init="input").y, from_input)
    mf = model.infer(x, "mean_field", 1, y_init=torch.sigmoid(a_hat)).y
    torch.testing.assert_close(model.predict(x, "mean_field", 1, start="input"), mf)
    with pytest.raises(ValueError, match="y_init must be a tensor, 'zeros' or 'input'"):
        model.infer(x, "map", 5, y_init="data")  # type: ignore[arg-type]
    for i, xi in enumerate(x):
        e = ref_energy(p, ys, hs, xi.numpy())
        y_idx = int(result.y[i].numpy() @ (2 ** np.arange(D)[::-1]))
        h_idx = int(result.h[i].numpy() @ (2 ** np.arange(H)[::-1]))
        assert e[y_idx, h_idx] <= e[:, h_idx].min() + 1e-12  # best y given h
        assert e[y_idx, h_idx] <= e[y_idx].min() + 1e-12  # best h given y
        start_idx = int(y_start[i].numpy() @ (2 ** np.arange(D)[::-1]))
        assert e[y_idx, h_idx] <= e[start_idx].min() + 1e-12  # no worse than where it began
    # a fixed point of the deterministic (noise ½) Gibbs step
    half = {k: torch.full_like(v, 0.5) for k, v in model.sample_noise(3).items()}
    step = model.gibbs_step(result.y, half, x)
    assert torch.equal(step.v, result.y) and torch.equal(step.h, result.h)


def test_map_finds_the_exact_mode_of_a_peaked_model() -> None:
    """When x dominates (large A, weak W), p(y | x) is nearly factorised: MAP = brute force."""
    model = make(seed=1)
    with torch.no_grad():
        model.cond_to_visible.mul_(8.0)
        model.weight.mul_(0.1)
    x = torch.randn(6, C, dtype=DTYPE, generator=torch.Generator().manual_seed(0))
    ys = torch.from_numpy(states(D))
    pred = model.predict(x, "map")
    mf = model.predict(x, "mean_field")
    for i in range(6):
        f = model.free_energy(ys, x[i].expand(len(ys), C))
        best = ys[int(f.argmin())]
        assert torch.equal(pred[i], best)
        assert torch.equal((mf[i] > 0.5).to(DTYPE), best)


def test_bad_input(model: StructuredOutputCRBM, x) -> None:
    y = torch.zeros(3, D, dtype=DTYPE)
    with pytest.raises(ValueError, match="is conditional"):
        model.free_energy(y)
    with pytest.raises(ValueError, match=r"shape \(batch, 5\)"):
        model.free_energy(y, x[:, :4])
    with pytest.raises(ValueError, match="has 2 rows but the states have 3"):
        model.hidden_probs(y, x[:2])
    bad = x.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or infinite values \(rows \[1\]\)"):
        model.free_energy(y, bad)
    with pytest.raises(ValueError, match="floating point"):
        model.free_energy(y, torch.ones(3, C, dtype=torch.long))
    with pytest.raises(ValueError, match="got keys"):
        model.free_energy(y, {"history": x})
    torch.testing.assert_close(model.free_energy(y, {"x": x}), model.free_energy(y, x))
    with pytest.raises(ValueError, match=r"expects y of shape \(batch, 4\)"):
        model.free_energy(torch.zeros(3, D + 1, dtype=DTYPE), x)
    with pytest.raises(ValueError, match="method must be"):
        model.predict(x, "gibbs")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_cond must be >= 1"):
        StructuredOutputCRBM(4, 3, 0)
    with pytest.raises(NotImplementedError, match="depends on the input x"):
        model.annealing_path()


def test_registry_round_trip_and_pictures(model: StructuredOutputCRBM, x, tmp_path: Path) -> None:
    again = model_from_spec(model_spec(model))
    assert isinstance(again, StructuredOutputCRBM) and again.init_args() == model.init_args()
    path = tmp_path / "m.ckpt"
    save_model(model, path)
    loaded = load_model(path).to(DTYPE)
    y = torch.bernoulli(torch.full((3, D), 0.5, dtype=DTYPE))
    torch.testing.assert_close(loaded.free_energy(y, x), model.free_energy(y, x))
    assert set(model.pictures()) == {"filters"}  # 4 = 2² outputs; 5 inputs is not a square
    square = StructuredOutputCRBM(16, 12, n_cond=9)
    pics = square.pictures()
    assert set(pics) == {"filters", "input_filters", "dynamic_bias"}
    assert all(p.dtype == np.uint8 and p.ndim == 2 for p in pics.values())


def test_init_from_data_sets_output_biases() -> None:
    model = StructuredOutputCRBM(3, 2, 2)
    data = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 1.0]])
    model.init_from_data(data)
    expected = torch.logit(torch.tensor([0.75, 1e-3, 0.75]))
    torch.testing.assert_close(model.visible_bias.detach(), expected)


# -- exact inference, defaults, errors, cost augmentation --------------------------------------
def test_exact_inference_matches_enumeration(model: StructuredOutputCRBM, x) -> None:
    p = params(model)
    ys, hs = states(D), states(H)
    marg = model.infer(x, "exact")
    mode = model.infer(x, "exact_map")
    for i, xi in enumerate(x):
        e = ref_energy(p, ys, hs, xi.numpy())
        joint = np.exp(-e - logsumexp(-e))  # p(y, h | x)
        np.testing.assert_allclose(marg.y[i].numpy(), joint.sum(1) @ ys, atol=1e-12)
        np.testing.assert_allclose(marg.h[i].numpy(), joint.sum(0) @ hs, atol=1e-12)
        np.testing.assert_array_equal(mode.y[i].numpy(), ys[joint.sum(1).argmax()])
    torch.testing.assert_close(mode.h, model.hidden_probs(mode.y, x))
    with pytest.raises(ValueError, match="exact inference enumerates 2\\^21"):
        StructuredOutputCRBM(21, 2, 2, inference="exact")


def test_default_inference_and_prediction_errors(model: StructuredOutputCRBM, x) -> None:
    crbm = StructuredOutputCRBM(D, H, C, inference="exact_map", damping=0.3).to(DTYPE)
    crbm.load_state_dict(model.state_dict())
    assert torch.equal(crbm.predict(x), model.predict(x, "exact_map"))
    assert crbm.init_args()["inference"] == "exact_map" and crbm.init_args()["damping"] == 0.3
    torch.testing.assert_close(
        model.predict(x, "mean_field", 3, "input", damping=0.3),
        crbm.predict(x, "mean_field", 3, "input"),
    )
    pred = (model.predict(x) > 0.5).to(DTYPE)
    y = pred.clone()
    y[0, 0] = 1 - y[0, 0]
    y[2, :2] = 1 - y[2, :2]
    errs = model.prediction_errors(y, x)
    assert float(errs["output_error"]) == pytest.approx(3 / (3 * D))
    assert float(errs["subset_error"]) == pytest.approx(2 / 3)
    for bad, match in (
        ({"inference": "gibbs"}, "inference method"),
        ({"inference_start": "data"}, "y_init must be"),
        ({"inference_steps": 0}, "n_steps"),
        ({"damping": 1.0}, "damping"),
    ):
        with pytest.raises(ValueError, match=match):
            StructuredOutputCRBM(D, H, C, **bad)  # type: ignore[arg-type]


def test_cost_augmented_cond_shifts_only_the_output_biases(model: StructuredOutputCRBM, x) -> None:
    t = torch.bernoulli(torch.full((3, D), 0.5, dtype=DTYPE), generator=torch.Generator())
    a_hat, b_hat = model.dynamic_biases(x)
    cond = model.cost_augmented_cond(x, t, 0.8)
    a_aug, b_aug = model.dynamic_biases(cond)
    torch.testing.assert_close(a_aug, a_hat + 0.8 * (1 - 2 * t), rtol=0, atol=1e-15)
    assert torch.equal(b_aug, b_hat)
    with pytest.raises(ValueError, match="got keys"):
        model.dynamic_biases({"x": x, "target": t})
    with pytest.raises(ValueError, match="cost-augmentation target"):
        model.dynamic_biases({"x": x, "target": t[:, :2], "margin": torch.tensor(1.0)})
