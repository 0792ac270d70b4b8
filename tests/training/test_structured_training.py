"""RBMSystem's structured-output paths: the cost-augmented CD-PercLoss negative and the
``val/output_error`` metric (Mnih, Larochelle & Hinton 2011), on hand-sized models."""

from __future__ import annotations

import pytest
import torch
from _trainer import quiet_trainer

from seqboltz.models import BernoulliRBM, StructuredOutputCRBM
from seqboltz.training import RBMSystem

DTYPE = torch.float64


def _hand_model() -> StructuredOutputCRBM:
    """D=2 outputs, H=1 hidden, C=1 input; â = (-1, 0.5), b̂ = 0.3 for x = 0."""
    model = StructuredOutputCRBM(2, 1, n_cond=1, init_std=0.0).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[2.0], [-3.0]]))
        model.visible_bias.copy_(torch.tensor([-1.0, 0.5]))
        model.hidden_bias.copy_(torch.tensor([0.3], dtype=DTYPE))
    return model


def test_margin_negative_is_the_cost_augmented_prediction() -> None:
    """From y = 0, h = 1[0.3 > 0] = 1; y* = 1[â + W h + m(1 - 2t) > 0] with â + W h = (1, -2.5).
    Target t = (1, 0): m = 0.5 keeps y* = (1, 0) = t (loss 0); m = 2 flips unit 0,
    1 - 2 < 0, and unit 1, -2.5 + 2 < 0 stays: y* = (0, 0), h then 1[0.3] = 1: a fixed point."""
    y = torch.tensor([[1.0, 0.0]], dtype=DTYPE)
    x = torch.zeros(1, 1, dtype=DTYPE)
    plain = RBMSystem(_hand_model(), k=3, negative="perceptron", init_from_data=False)
    assert torch.equal(plain._negative_particles(y, x)[0], y)
    assert float(plain.training_step((y, x), 0)) == 0.0
    small = RBMSystem(
        _hand_model(), k=3, negative="perceptron", perceptron_margin=0.5, init_from_data=False
    )
    assert torch.equal(small._negative_particles(y, x)[0], y)
    big = RBMSystem(
        _hand_model(), k=3, negative="perceptron", perceptron_margin=2.0, init_from_data=False
    )
    neg = big._negative_particles(y, x)[0]
    assert torch.equal(neg, torch.zeros(1, 2, dtype=DTYPE))
    model = big.energy_model
    expected = model.free_energy(y, x) - model.free_energy(neg, x)  # plain F: no margin term
    assert float(big.training_step((y, x), 0)) == pytest.approx(float(expected), abs=1e-12)
    assert float(expected) != 0.0


def test_margin_needs_percloss_and_a_structured_model() -> None:
    with pytest.raises(ValueError, match="perceptron_margin"):
        RBMSystem(_hand_model(), negative="sample", perceptron_margin=1.0)
    with pytest.raises(ValueError, match="perceptron_margin"):
        RBMSystem(BernoulliRBM(3, 2), negative="perceptron", perceptron_margin=1.0)
    with pytest.raises(ValueError, match="perceptron_margin"):
        RBMSystem(_hand_model(), negative="perceptron", perceptron_margin=-0.1)


def test_validation_logs_output_and_subset_error() -> None:
    """val/output_error and val/subset_error equal the model's own prediction errors on the
    validation pairs (two batches of unequal size, averaged per example)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.bernoulli(torch.full((120, 5), 0.5), generator=gen)
    y = x[:, [1, 0, 3, 2]]
    data = torch.utils.data.TensorDataset(y, x)
    train = torch.utils.data.DataLoader(data, batch_size=40)
    val = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(y[:70], x[:70]), batch_size=50)
    torch.manual_seed(0)
    model = StructuredOutputCRBM(4, 3, n_cond=5, inference="exact_map")
    system = RBMSystem(model, k=1, lr=0.1, weight_decay=0.0)
    trainer = quiet_trainer(max_epochs=2)
    trainer.fit(system, train_dataloaders=train, val_dataloaders=val)
    expected = model.prediction_errors(y[:70], x[:70])
    metrics = trainer.callback_metrics
    for name in ("output_error", "subset_error"):
        assert float(metrics[f"val/{name}"]) == pytest.approx(float(expected[name]), abs=1e-6)


def test_exact_negative_is_the_exact_conditional_likelihood_gradient() -> None:
    """negative='exact': loss = -mean log p(y | x); its gradient = ∇F(y) - E_p(y'|x)[∇F(y')]
    (the CD gradient with the exact negative expectation), checked on every parameter."""
    torch.manual_seed(0)
    model = StructuredOutputCRBM(3, 2, n_cond=2, init_std=1.0).double()
    y = torch.tensor([[1.0, 0, 1], [0, 0, 1]], dtype=DTYPE)
    x = torch.randn(2, 2, dtype=DTYPE)
    system = RBMSystem(model, negative="exact", init_from_data=False)
    loss = system.training_step((y, x), 0)
    loss.backward()
    got = {n: p.grad.clone() for n, p in model.named_parameters()}  # type: ignore[union-attr]
    model.zero_grad()
    ys = torch.tensor([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)], dtype=DTYPE)
    with torch.no_grad():
        f_all = torch.stack([model.free_energy(ys, x[i].expand(8, 2)) for i in range(2)])
        p = torch.softmax(-f_all, dim=1)  # exact p(y' | x), (2, 8)
    expected_loss = (model.free_energy(y, x) + torch.logsumexp(-f_all, dim=1)).mean()
    assert float(loss) == pytest.approx(float(expected_loss), abs=1e-12)
    surrogate = (
        model.free_energy(y, x).mean()
        - sum((p[i] * model.free_energy(ys, x[i].expand(8, 2))).sum() for i in range(2)) / 2
    )
    surrogate.backward()
    for name, param in model.named_parameters():
        torch.testing.assert_close(got[name], param.grad, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="negative='exact'"):
        RBMSystem(BernoulliRBM(3, 2), negative="exact")
