"""CUDA checks: Gibbs steps, CD training and the torch sampler on a GPU agree with the CPU.

Marked ``gpu`` and skipped without CUDA (``pytest -m gpu`` selects them on a GPU machine).
Everything is compared in float64, where the CPU and the GPU differ by rounding only; noise is
drawn on the CPU and moved, so both devices see the same numbers.
"""

from __future__ import annotations

import lightning as L
import pytest
import torch

from seqboltz.models import (
    BernoulliRBM,
    ConditionalRBM,
    EnergyModel,
    FactoredConditionalRBM,
    GaussianBernoulliRBM,
)
from seqboltz.training import RBMSystem

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
CUDA = torch.device("cuda")
F64 = torch.float64


def _models() -> dict[str, EnergyModel]:
    torch.manual_seed(0)
    return {
        "bernoulli": BernoulliRBM(12, 7, init_std=0.5),
        "gaussian": GaussianBernoulliRBM(12, 7, init_std=0.5, sigma_init=0.8),
        "crbm": ConditionalRBM(12, 7, order=2, n_controls=2, init_std=0.3),
        "fcrbm": FactoredConditionalRBM(12, 7, order=2, n_style=3, n_factors=5, init_std=0.3),
    }


def _cond(name: str, n: int, device: torch.device) -> dict[str, torch.Tensor] | None:
    g = torch.Generator().manual_seed(1)
    if name in ("bernoulli", "gaussian"):
        return None
    cond = {"history": torch.randn(n, 2, 12, generator=g, dtype=F64)}
    if name == "crbm":
        cond["controls"] = torch.randn(n, 2, generator=g, dtype=F64)
    else:
        cond["style"] = torch.randn(n, 3, generator=g, dtype=F64)
    return {k: v.to(device) for k, v in cond.items()}


@pytest.mark.parametrize("name", ["bernoulli", "gaussian", "crbm", "fcrbm"])
def test_gibbs_step_on_cuda_equals_cpu(name: str) -> None:
    model = _models()[name].to(F64)
    n = 64
    g = torch.Generator().manual_seed(2)
    v = torch.rand(n, 12, generator=g, dtype=F64)
    noise = model.sample_noise(n, g, device="cpu", dtype=F64)
    cpu = model.gibbs_step(v, noise, _cond(name, n, torch.device("cpu")))
    gpu_model = model.to(CUDA)
    gpu = gpu_model.gibbs_step(
        v.to(CUDA), {k: x.to(CUDA) for k, x in noise.items()}, _cond(name, n, CUDA)
    )
    for a, b in zip(cpu, gpu, strict=True):
        assert b.device.type == "cuda"
        torch.testing.assert_close(b.cpu(), a, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["bernoulli", "gaussian", "crbm"])
def test_closed_form_cd_on_cuda_equals_cpu(name: str) -> None:
    """The closed-form CD-3 gradient written into ``.grad`` on the GPU equals the CPU's,
    and equals autograd's through the free energy on the GPU."""
    model = _models()[name].to(F64)
    n, k = 32, 3
    g = torch.Generator().manual_seed(3)
    v = torch.rand(n, 12, generator=g, dtype=F64)
    spec = model.noise_spec()
    draw = {"uniform": torch.rand, "normal": torch.randn}
    u_h = draw[spec["hidden"].kind]((k, n, 7), generator=g, dtype=F64)
    z_v = draw[spec["visible"].kind]((k, n, 12), generator=g, dtype=F64)
    grads = []
    for device in (torch.device("cpu"), CUDA):
        m = model.to(device)
        for p in m.parameters():
            p.grad = None
        step = m.cd_gradients(v.to(device), u_h.to(device), z_v.to(device), _cond(name, n, device))
        grads.append({nm: p.grad.detach().cpu().clone() for nm, p in m.named_parameters()})
        assert step.negative.device.type == device.type
    for nm, g_cpu in grads[0].items():
        torch.testing.assert_close(grads[1][nm], g_cpu, rtol=1e-9, atol=1e-11, msg=nm)
    # against autograd on the GPU, through the system (same noise stream on both paths)
    results = {}
    for closed_form in (True, False):
        m = _models()[name].to(F64).to(CUDA)
        system = RBMSystem(m, k=2, init_from_data=False, closed_form=closed_form)
        system.generator = torch.Generator(device="cuda").manual_seed(4)
        cond = _cond(name, n, CUDA)
        loss = system.training_step(v.to(CUDA) if cond is None else (v.to(CUDA), cond), 0)
        system.optimizer_zero_grad(0, 0, torch.optim.SGD(m.parameters(), lr=0.1))
        system.backward(loss)
        results[closed_form] = {nm: p.grad.detach().cpu() for nm, p in m.named_parameters()}
    for nm, want in results[False].items():
        rel = float((results[True][nm] - want).norm() / want.norm())
        assert rel < 1e-10, (nm, rel)


def _cuda_trainer(**kwargs: object) -> L.Trainer:
    return L.Trainer(
        accelerator="cuda",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,  # type: ignore[arg-type]
    )


def test_cd_training_through_the_trainer_on_cuda() -> None:
    """CD-1 epochs with ``accelerator="cuda"`` learn four noisy prototypes (reconstruction
    error 4.0 → 0.7 on the CPU); PCD keeps its chains and noise generator on the device."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(5)
    prototypes = (torch.rand(4, 16, generator=g) < 0.5).float()
    data = prototypes[torch.randint(0, 4, (512,), generator=g)]
    data = torch.where(torch.rand(data.shape, generator=g) < 0.05, 1 - data, data)
    loader = torch.utils.data.DataLoader(data, batch_size=64, shuffle=True)
    model = BernoulliRBM(16, 8, init_std=0.1)
    before = float(((model.reconstruct(data) - data) ** 2).sum(1).mean())
    system = RBMSystem(model, k=1, lr=0.3, init_from_data=False)
    _cuda_trainer(max_epochs=20).fit(system, train_dataloaders=loader)
    model = system.energy_model.cpu()
    after = float(((model.reconstruct(data) - data) ** 2).sum(1).mean())
    assert after < 0.5 * before, (before, after)
    pcd = RBMSystem(BernoulliRBM(16, 8), persistent=True, n_chains=32, init_from_data=False)
    _cuda_trainer(max_steps=3).fit(pcd, train_dataloaders=loader)
    assert pcd.chains is not None and pcd.chains.shape == (32, 16)
    assert pcd.chains.device.type == "cuda"
    assert pcd.generator is not None and pcd.generator.device.type == "cuda"


@pytest.mark.parametrize("name", ["crbm", "fcrbm"])
def test_torch_sampler_on_cuda_equals_cpu(name: str) -> None:
    """``generate`` (float64, noise from ``sequence_rng``) gives the same frames on the GPU as on
    the CPU, alone or batched."""
    model = _models()[name]
    g = torch.Generator().manual_seed(6)
    seed_frames = torch.randn(3, 4, 12, generator=g)
    extra = {"controls": torch.randn(3, 2, generator=g)} if name == "crbm" else {}
    if name == "fcrbm":
        extra = {"style": torch.randn(3, 3, generator=g)}
    cpu = model.generate(seed_frames, 20, gibbs_steps=5, seed=7, **extra)
    gpu_model = model.to(CUDA)
    gpu = gpu_model.generate(
        seed_frames.to(CUDA), 20, gibbs_steps=5, seed=7, **{k: x.to(CUDA) for k, x in extra.items()}
    )
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-4)
    alone = gpu_model.generate(
        seed_frames[1:2].to(CUDA),
        20,
        gibbs_steps=5,
        seed=7,
        sequence_indices=[1],
        **{k: x[1:2].to(CUDA) for k, x in extra.items()},
    )
    torch.testing.assert_close(alone.cpu(), cpu[1:2], rtol=1e-4, atol=1e-4)
