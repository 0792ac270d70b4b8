"""FitConditionalMean: hybrid training of a residual CRBM's conditional mean beside CD."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _trainer import quiet_trainer
from torch.utils.data import DataLoader

from seqboltz.models import ConditionalRBM, ResidualCRBM
from seqboltz.training import FitConditionalMean, RBMSystem


def _xor_clips(seed: int, n: int = 4, t: int = 300) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """AR clips whose mean moves with the XOR of two binary controls: no linear function of
    [history, controls] holds it, one layer of hidden units does."""
    rng = np.random.default_rng(seed)
    drive = np.array([1.5, -1.0, 0.5])
    clips, controls = [], []
    for _ in range(n):
        c = rng.integers(0, 2, size=(t, 2)).astype(np.float64)
        x = np.zeros((t, 3))
        for i in range(2, t):
            xor = float(c[i, 0] != c[i, 1])
            x[i] = 0.5 * x[i - 1] + drive * xor + 0.1 * rng.normal(size=3)
        clips.append(x)
        controls.append(c)
    return clips, controls


def _loader(clips: list[np.ndarray], controls: list[np.ndarray], shuffle: bool) -> DataLoader:
    v, hist, ctl = [], [], []
    for x, c in zip(clips, controls, strict=True):
        for i in range(2, len(x)):
            v.append(x[i])
            hist.append(x[i - 2 : i][::-1])  # most recent first
            ctl.append(c[i])
    rows = [
        {
            "v": torch.tensor(a),
            "cond": {"history": torch.tensor(h.copy()), "controls": torch.tensor(b)},
        }
        for a, h, b in zip(v, hist, ctl, strict=True)
    ]
    return DataLoader(rows, batch_size=64, shuffle=shuffle)  # type: ignore[arg-type]


def _model(clips: list[np.ndarray], controls: list[np.ndarray]) -> ResidualCRBM:
    torch.manual_seed(0)
    m = ResidualCRBM(3, 8, order=2, n_controls=2, train_linear=False, history_to_hidden=False)
    m = m.double()
    m.init_from_sequences(clips, controls=controls)
    return m


def _oracle_error(m: ResidualCRBM, train: tuple, val: tuple) -> float:  # type: ignore[type-arg]
    """The whitened error of least squares on [history, controls, c₁c₂, 1]: the true mean's
    form (XOR = c₁ + c₂ − 2c₁c₂), the floor any conditional mean can reach."""

    def rows(clips: list[np.ndarray], controls: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        x, y = [], []
        for v, c in zip(clips, controls, strict=True):
            for i in range(2, len(v)):
                x.append(np.concatenate([v[i - 1], v[i - 2], c[i], [c[i, 0] * c[i, 1], 1.0]]))
                y.append(v[i])
        return np.array(x), np.array(y)

    x, y = rows(*train)
    xv, yv = rows(*val)
    sol = np.linalg.lstsq(x, y, rcond=None)[0]
    r = (yv - xv @ sol) @ m.whiten.numpy().T
    return float(0.5 * (r**2).sum(1).mean())


def _mean_error(m: ResidualCRBM, loader: DataLoader) -> float:
    with torch.no_grad():
        errs = [m.conditional_mean_error(b["v"], b["cond"]) for b in loader]
    return float(torch.cat(errs).mean())


def test_the_conditional_mean_learns_what_the_linear_start_cannot() -> None:
    clips, controls = _xor_clips(0)
    val_clips = _xor_clips(1, n=2)
    val = _loader(*val_clips, shuffle=False)
    m = _model(clips, controls)
    start = _mean_error(m, val)
    floor = _oracle_error(m, (clips, controls), val_clips)
    assert floor < 0.75 * start  # the XOR is a large share of what the linear start leaves
    linear = {k: v.clone() for k, v in m.state_dict().items() if "hidden" not in k}
    linear.pop("weight", None)
    cb = FitConditionalMean(lr=0.05)
    trainer = quiet_trainer(max_epochs=8, callbacks=[cb])
    system = RBMSystem(m, k=1, lr=1e-3, eval_log_z="none", mean_field_negative=True)
    trainer.fit(system, _loader(clips, controls, shuffle=True), val)
    end = _mean_error(m, val)
    # most of the way from the linear start to the true mean's error (measured: 73 %)
    assert end < start - 0.5 * (start - floor), (start, end, floor)
    assert float(trainer.callback_metrics["val_mean_error"]) == pytest.approx(end, rel=1e-6)
    # the linear start (frozen) is untouched; the hidden part moved
    for k, v in linear.items():
        torch.testing.assert_close(m.state_dict()[k], v)
    # its Adam state travels with a checkpoint
    state = cb.state_dict()
    assert state["adam"] is not None and state["adam"]["state"]
    fresh = FitConditionalMean(lr=0.05)
    fresh.load_state_dict(state)
    fresh.on_fit_start(trainer, system)
    assert fresh._optimizer is not None
    assert fresh._optimizer.state_dict()["state"].keys() == state["adam"]["state"].keys()


def test_the_cd_step_keeps_its_own_gradients() -> None:
    """The mean's Adam step reads its own gradients and puts the CD step's back."""
    clips, controls = _xor_clips(0, n=1, t=80)
    m = _model(clips, controls)
    system = RBMSystem(m, k=1, lr=1e-3, eval_log_z="none")
    cb = FitConditionalMean(lr=0.01)

    class _T:  # the few trainer fields the hook reads
        current_epoch, global_step, log_every_n_steps = 0, 1, 10**9

    cb.on_fit_start(_T(), system)  # type: ignore[arg-type]
    marker = [torch.full_like(p, 7.0) for p in cb._params]
    for p, g in zip(cb._params, marker, strict=True):
        p.grad = g
    before = [p.detach().clone() for p in cb._params]
    batch = next(iter(_loader(clips, controls, shuffle=False)))
    cb.on_train_batch_end(_T(), system, None, batch, 0)  # type: ignore[arg-type]
    assert all(p.grad is g for p, g in zip(cb._params, marker, strict=True))
    assert any(not torch.equal(p, b) for p, b in zip(cb._params, before, strict=True))


def test_bad_settings_and_models_are_refused() -> None:
    for kwargs in ({"lr": 0.0}, {"passes": 0}, {"weight_decay": -1.0}, {"start_epoch": -1}):
        with pytest.raises(ValueError, match="FitConditionalMean needs"):
            FitConditionalMean(**kwargs)  # type: ignore[arg-type]
    system = RBMSystem(ConditionalRBM(3, 4, order=2), k=1, eval_log_z="none")
    with pytest.raises(ValueError, match="needs a ResidualCRBM; got ConditionalRBM"):
        FitConditionalMean().on_fit_start(None, system)  # type: ignore[arg-type]


def test_a_resumed_run_continues_adam_where_it_stopped(tmp_path) -> None:  # type: ignore[no-untyped-def]
    clips, controls = _xor_clips(0, n=1, t=200)
    loader = _loader(clips, controls, shuffle=False)
    steps = len(loader)
    m = _model(clips, controls)
    first = quiet_trainer(tmp_path, max_epochs=1, callbacks=[FitConditionalMean(lr=0.01)])
    first.fit(RBMSystem(m, k=1, lr=1e-3, eval_log_z="none"), loader)
    ckpt = tmp_path / "one.ckpt"
    first.save_checkpoint(ckpt)
    cb = FitConditionalMean(lr=0.01)
    second = quiet_trainer(tmp_path, max_epochs=2, callbacks=[cb])
    second.fit(
        RBMSystem(_model(clips, controls), k=1, lr=1e-3, eval_log_z="none"), loader, ckpt_path=ckpt
    )
    assert cb._optimizer is not None
    adam_steps = {float(s["step"]) for s in cb._optimizer.state_dict()["state"].values()}
    assert adam_steps == {float(2 * steps)}  # one epoch before the checkpoint, one after
