"""ONNX export: the graph's step equals torch's, the card describes the model, bad models
are refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from seqboltz.export import CARD_KEY, build_card, export_checkpoint, export_onnx
from seqboltz.export._onnx import input_names
from seqboltz.models import BernoulliRBM, ConditionalRBM, FactoredConditionalRBM, SequenceRBM

D, H, ORDER, K = 6, 9, 2, 4


def make(kind: str) -> SequenceRBM:
    torch.manual_seed(0)
    if kind == "crbm":
        model: SequenceRBM = ConditionalRBM(D, H, ORDER, init_std=0.3)
    else:
        model = FactoredConditionalRBM(
            D, H, ORDER, n_style=1, n_factors=5, init_std=0.3, gated_autoregressive=False
        )
    return model


def export(model: SequenceRBM, path: Path, k: int = K) -> Path:
    return export_onnx(model, path, build_card(model, name="tiny", gibbs_steps=k), gibbs_steps=k)


# A CRBM with controls and a gated FCRBM with style export and round-trip in test_capability.py
# (each export takes seconds, so the graphs are not exported twice).
@pytest.fixture(scope="module", params=["crbm", "fcrbm_ungated"])
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    model = make(request.param)
    path = export(model, tmp_path_factory.mktemp("onnx") / f"{request.param}.onnx")
    return model, path


def test_step_equals_torch_step(exported) -> None:
    model, path = exported
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(1)
    for batch in (1, 5):
        feeds = {
            "history": torch.randn(batch, ORDER, D, generator=g, dtype=torch.float64),
            "noise": torch.rand(batch, K, H, generator=g, dtype=torch.float64),
        }
        cond = {"history": feeds["history"]}
        if model.n_style:
            feeds["style"] = cond["style"] = torch.randn(
                batch, model.n_style, generator=g, dtype=torch.float64
            )
        if getattr(model, "n_controls", 0):
            feeds["controls"] = cond["controls"] = torch.randn(
                batch, 2, generator=g, dtype=torch.float64
            )
        got = session.run(None, {k: v.numpy() for k, v in feeds.items()})[0]
        with torch.no_grad():
            expected = model.double().next_frame(cond, feeds["noise"]).numpy()
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)
        assert [i.name for i in session.get_inputs()] == input_names(model)


def test_one_self_contained_checked_file(exported) -> None:
    _, path = exported
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no external data
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == 18
    card = json.loads({p.key: p.value for p in proto.metadata_props}[CARD_KEY])
    assert card["schema_version"] == 1 and card["name"] == "tiny"
    assert card["frame_size"] == D and card["order"] == ORDER and card["gibbs_steps"] == K
    assert card["default_seed_frames"] == np.zeros((ORDER, D)).tolist()


def test_build_card_checks_statistics() -> None:
    model = make("crbm")
    with pytest.raises(ValueError, match="describe 3 values per frame"):
        build_card(
            model, name="x", gibbs_steps=2, data={"stats": {"mean": [0] * 3, "std": [1] * 3}}
        )
    with pytest.raises(ValueError, match="default seed frames must be"):
        build_card(model, name="x", gibbs_steps=2, default_seed_frames=np.zeros((1, D)))


def test_only_samplers_export(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="only seqboltz energy models export"):
        export_onnx(torch.nn.Linear(2, 2), tmp_path / "x.onnx", {}, gibbs_steps=2)  # type: ignore[arg-type]
    assert not (tmp_path / "x.onnx").exists()
    with pytest.raises(ValueError, match="gibbs_steps"):
        export_onnx(make("crbm"), tmp_path / "y.onnx", {}, gibbs_steps=0)


@pytest.mark.realdata
def test_export_checkpoint_card(tmp_path: Path) -> None:
    """A motion checkpoint exports with its statistics, frame rate and a held-out seed."""
    import lightning as L

    from seqboltz.data import MotionDataModule
    from seqboltz.training import RBMSystem

    dm = MotionDataModule(order=3, batch_size=100)
    dm.prepare_data()
    dm.setup("fit")
    d = dm.n_features  # the frame size follows the motion features' settings
    model = ConditionalRBM(d, 8, 3)
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=0,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        log_every_n_steps=1,
    )
    trainer.fit(RBMSystem(model, eval_log_z="none", mean_field_negative=True), datamodule=dm)
    ckpt = tmp_path / "m.ckpt"
    trainer.save_checkpoint(ckpt)
    path = export_checkpoint(ckpt, tmp_path / "motion.onnx", gibbs_steps=3)
    card = json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}[CARD_KEY])
    assert card["domain"] == "motion" and card["frame_rate"] == 30.0
    assert card["kind"] == "ConditionalRBM" and card["model"]["n_hidden"] == 8
    assert len(card["features"]["mean"]) == d and "skeleton" in card["features"]
    np.testing.assert_allclose(card["default_seed_frames"], dm.clips("test")[0][:3])
    assert len(card["training"]["checkpoint_sha256"]) == 64
    assert card["training"]["data"]["class_path"].endswith("MotionDataModule")
    raw = dm.train_tensor.numpy().tobytes()
    assert card["training"]["data"]["train_sha256"] == hashlib.sha256(raw).hexdigest()
    assert np.isfinite(card["training"]["metrics"]["train/free_energy_diff"])
    # the artifact writes BVH files through the card's preprocessing inverse, without torch
    from seqboltz.motion import read_bvh
    from seqboltz.runtime._synthesize import SynthesisJob, run_synthesis

    job = SynthesisJob(model=str(path), out=str(tmp_path / "bvh"), count=2, frames=45, fmt="bvh")
    run_synthesis(job, progress=False)
    clip = read_bvh(tmp_path / "bvh" / "seq_000001.bvh")
    assert clip.frames.shape[0] == 45 and np.isfinite(clip.frames).all()
    assert clip.frame_time == pytest.approx(1 / 30)


@pytest.mark.realdata
def test_speech_checkpoint_synthesizes_wav(tmp_path: Path) -> None:
    import lightning as L
    import soundfile as sf

    from seqboltz.data import SpeechDataModule
    from seqboltz.runtime._synthesize import SynthesisJob, run_synthesis
    from seqboltz.training import RBMSystem

    dm = SpeechDataModule(order=2, max_utterances=12)
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=3,
        limit_val_batches=0,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
    )
    model = ConditionalRBM(30, 8, 2)
    trainer.fit(RBMSystem(model, eval_log_z="none", mean_field_negative=True), datamodule=dm)
    ckpt = tmp_path / "s.ckpt"
    trainer.save_checkpoint(ckpt)
    path = export_checkpoint(ckpt, tmp_path / "speech.onnx", gibbs_steps=2)
    card = json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}[CARD_KEY])
    assert card["domain"] == "speech" and card["frame_rate"] == 200.0
    job = SynthesisJob(model=str(path), out=str(tmp_path / "wav"), count=2, frames=200, fmt="wav")
    run_synthesis(job, progress=False)
    info = sf.info(str(tmp_path / "wav" / "seq_000000.wav"))
    assert info.samplerate == 8000 and abs(info.duration - 1.0) < 0.01


@pytest.mark.parametrize("kind", ["bernoulli"])  # Gaussian: chains in test_capability.py
def test_rbm_gibbs_step_export_and_chains(kind: str, tmp_path: Path) -> None:
    """An RBM's Gibbs step in ONNX equals torch's; runtime chains equal torch chains driven by
    the same per-chain noise, alone or batched."""
    from seqboltz.export import build_rbm_card
    from seqboltz.models import GaussianBernoulliRBM
    from seqboltz.noise import sequence_rng
    from seqboltz.runtime import load_artifact

    torch.manual_seed(0)
    model = BernoulliRBM(7, 5) if kind == "bernoulli" else GaussianBernoulliRBM(7, 5)
    with torch.no_grad():
        model.weight.mul_(30)  # a non-trivial sampler
    model = model.double()
    path = export_onnx(model, tmp_path / "rbm.onnx", build_rbm_card(model, name="rbm"))
    art = load_artifact(path)
    assert art.family == "rbm" and art.card["noise"]["visible"]["kind"] == (
        "uniform" if kind == "bernoulli" else "normal"
    )
    # one step
    g = torch.Generator().manual_seed(1)
    v = torch.rand(4, 7, generator=g, dtype=torch.float64)
    noise = model.sample_noise(4, g)
    got = art.session.run(
        ["v_next", "v_mean"], {"v": v.numpy(), **{k: x.numpy() for k, x in noise.items()}}
    )
    with torch.no_grad():
        expected = model.gibbs_step(v, noise)
    np.testing.assert_allclose(got[0], expected.v.numpy(), atol=1e-10)
    np.testing.assert_allclose(got[1], expected.v_mean.numpy(), atol=1e-10)
    # chains: runtime against a torch loop with the same noise rule
    v_rt, mean_rt = art.gibbs_chains(25, seed=3, count=6)
    state = torch.as_tensor(art.card["initial_state"], dtype=torch.float64).expand(6, -1)
    rngs = [sequence_rng(3, i) for i in range(6)]
    for _ in range(25):
        draws = {}
        for name, spec in model.noise_spec().items():
            fn = (
                (lambda r, s=spec.shape: r.random(s))
                if spec.kind == "uniform"
                else (lambda r, s=spec.shape: r.standard_normal(s))
            )
            draws[name] = torch.from_numpy(np.stack([fn(r) for r in rngs]))
        with torch.no_grad():
            step = model.gibbs_step(state, draws)
        state = step.v
    np.testing.assert_allclose(v_rt, state.numpy(), atol=1e-8)
    np.testing.assert_allclose(mean_rt, step.v_mean.numpy(), atol=1e-8)
    alone = art.gibbs_chains(25, seed=3, count=1, sequence_indices=[4])
    np.testing.assert_array_equal(alone[0][0], v_rt[4])
    with pytest.raises(Exception, match="sequence model"):
        art.generate(3)
    # offline synthesis writes each chain's final sample mean
    from seqboltz.runtime._synthesize import SynthesisJob, run_synthesis

    job = SynthesisJob(model=str(path), out=str(tmp_path / "npy"), count=6, frames=25, seed=3)
    run_synthesis(job, progress=False)
    np.testing.assert_array_equal(np.load(tmp_path / "npy" / "seq_000002.npy"), mean_rt[2])
    with pytest.raises(Exception, match="writes NPY samples"):
        run_synthesis(SynthesisJob(**{**job.__dict__, "fmt": "bvh"}), progress=False)


def test_the_frame_graph_loops_over_any_k(exported) -> None:
    """One traced Gibbs step in an ONNX Loop: the graph runs any k (the card's
    max_gibbs_steps is the runtime's bound, not the graph's), each equal to torch's."""
    model, path = exported
    proto = onnx.load(str(path))
    assert [n.op_type for n in proto.graph.node].count("Loop") == 1
    noise = proto.graph.input[1]
    assert noise.name == "noise"
    assert [d.dim_param or d.dim_value for d in noise.type.tensor_type.shape.dim][1:] == [
        "gibbs_steps",
        H,
    ]
    card = json.loads({p.key: p.value for p in proto.metadata_props}[CARD_KEY])
    assert (card["gibbs_steps"], card["max_gibbs_steps"]) == (K, K)
    assert "1 <= k <= 4" in card["inputs"]["noise"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(2)
    history = torch.randn(3, ORDER, D, generator=g, dtype=torch.float64)
    cond = {"history": history}
    if model.n_style:
        cond["style"] = torch.randn(3, model.n_style, generator=g, dtype=torch.float64)
    for k in (1, 2, 7):
        noise_k = torch.rand(3, k, H, generator=g, dtype=torch.float64)
        feeds = {"noise": noise_k.numpy(), **{n: x.numpy() for n, x in cond.items()}}
        got = session.run(None, feeds)[0]
        with torch.no_grad():
            expected = model.double().next_frame(cond, noise_k).numpy()
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)


def test_the_cards_k_and_its_maximum(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = make("crbm")
    card = build_card(model, name="x", gibbs_steps=3, max_gibbs_steps=12)
    assert (card["gibbs_steps"], card["max_gibbs_steps"]) == (3, 12)
    assert build_card(model, name="x", gibbs_steps=3)["max_gibbs_steps"] == 3
    for k, top in ((0, None), (5, 4), (0, 4)):
        with pytest.raises(ValueError, match="1 <= gibbs_steps <= max_gibbs_steps"):
            build_card(model, name="x", gibbs_steps=k, max_gibbs_steps=top)
    bad = {**card, "gibbs_steps": 13}
    with pytest.raises(ValueError, match=r"in 1..max_gibbs_steps \(12\); got 13"):
        export_onnx(model, tmp_path / "x.onnx", bad)
    assert not (tmp_path / "x.onnx").exists()
    # export_checkpoint (and `seqboltz export`): max_gibbs_steps defaults to max(k, 30)
    from seqboltz.export import _onnx
    from seqboltz.models import save_model

    cards: list[dict] = []
    monkeypatch.setattr(_onnx, "export_onnx", lambda m, out, c, **kw: cards.append(c) or out)
    ckpt = save_model(model, tmp_path / "m.ckpt")
    for k, top, want in ((3, None, 30), (40, None, 40), (3, 8, 8)):
        export_checkpoint(ckpt, tmp_path / "m.onnx", gibbs_steps=k, max_gibbs_steps=top)
        assert (cards[-1]["gibbs_steps"], cards[-1]["max_gibbs_steps"]) == (k, want)


def test_export_cli_refuses_a_k_above_its_maximum(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from seqboltz.cli import main
    from seqboltz.models import save_model

    ckpt = save_model(make("crbm"), tmp_path / "m.ckpt")
    argv = ["export", str(ckpt), "--out", str(tmp_path / "m.onnx"), "--no-data"]
    assert main([*argv, "--gibbs-steps", "8", "--max-gibbs-steps", "5"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "seqboltz export: error: need 1 <= gibbs_steps <= max_gibbs_steps; got 8 and 5\n"
    )
    assert not (tmp_path / "m.onnx").exists()


def test_sampler_parts_that_do_not_separate_are_refused() -> None:
    """A node that reads both a Gibbs step's and the emit's inputs cannot be looped."""
    from onnx import TensorProto, helper

    from seqboltz.export._loop import LoopGraphError, loop_frame_graph

    def value(name: str) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.DOUBLE, ["batch", 2])

    names = ["history", "state_in", "u_step", "state_emit", "u_emit"]
    nodes = [
        helper.make_node("Identity", ["history"], ["state0"]),
        helper.make_node("Add", ["state_in", "state_emit"], ["state_next"]),
        helper.make_node("Add", ["state_emit", "u_emit"], ["frame"]),
    ]
    graph = helper.make_graph(
        nodes,
        "parts",
        [value(n) for n in names],
        [value(n) for n in ("state0", "state_next", "frame")],
    )
    with pytest.raises(LoopGraphError, match="reads both a Gibbs step's and the emit's inputs"):
        loop_frame_graph(helper.make_model(graph), 2)


def _recentred_checkpoint(tmp_path: Path, k: int) -> Path:
    from seqboltz.models import save_model

    # as RecentreIntercept (and `seqboltz stack`) record it
    return save_model(make("crbm"), tmp_path / "m.ckpt", recentred_gibbs_steps=k)


def test_export_takes_the_k_the_intercept_was_recentred_at(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from seqboltz.export import _onnx

    cards: list[dict] = []
    monkeypatch.setattr(_onnx, "export_onnx", lambda m, out, c, **kw: cards.append(c) or out)
    ckpt = _recentred_checkpoint(tmp_path, 2)
    export_checkpoint(ckpt, tmp_path / "m.onnx")
    assert cards[-1]["gibbs_steps"] == 2
    assert cards[-1]["training"]["recentred_gibbs_steps"] == 2
    with pytest.warns(UserWarning, match="re-centred for k = 2 .* exported with k = 30"):
        export_checkpoint(ckpt, tmp_path / "m.onnx", gibbs_steps=30)
    assert cards[-1]["gibbs_steps"] == 30  # exported as asked
    from seqboltz.models import save_model

    plain = save_model(make("crbm"), tmp_path / "plain.ckpt")  # never re-centred: k = 30
    export_checkpoint(plain, tmp_path / "p.onnx")
    assert cards[-1]["gibbs_steps"] == 30 and "recentred_gibbs_steps" not in cards[-1]["training"]
    from seqboltz.models import ResidualCRBM

    # a conditional-mean speaker's frames do not depend on k: one step, not 30 rows of noise
    speaker = ResidualCRBM(4, 3, order=2, visible_noise=0.0, generation="mean")
    export_checkpoint(save_model(speaker, tmp_path / "speaker.ckpt"), tmp_path / "s.onnx")
    assert cards[-1]["gibbs_steps"] == 1 and cards[-1]["max_gibbs_steps"] == 30


def test_export_cli_warns_in_one_line_when_k_is_not_the_recentred_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from seqboltz.cli import main

    ckpt = _recentred_checkpoint(tmp_path, 1)
    out = tmp_path / "m.onnx"
    assert main(["export", str(ckpt), "--out", str(out), "--no-data", "--gibbs-steps", "3"]) == 0
    captured = capsys.readouterr()
    # (torch's exporter logs lines of its own to stderr)
    lines = [line for line in captured.err.splitlines() if line.startswith("seqboltz export:")]
    assert len(lines) == 1 and lines[0].startswith("seqboltz export: warning: ")
    assert "re-centred for k = 1" in lines[0] and "--gibbs-steps 1" in lines[0]
    assert captured.out.strip() == str(out) and out.exists()


def test_card_records_the_styles_a_request_can_be_trusted_with() -> None:
    """A styled model's card gets ``conditioning.style.range``: the training styles' range
    (``low``/``high`` in the data statistics) over the model's generation gain; statistics
    without it (older checkpoints) give no range."""
    from seqboltz.models import ResidualCRBM

    model = ResidualCRBM(4, 6, order=2, n_style=2).double()
    model.style_gain.fill_(2.0)  # type: ignore[operator]
    style = {"kind": "root_speed+kind", "window": 30, "mean": 10.0, "std": 5.0}
    data = {"stats": {"style": {**style, "low": [-1.5, 0.0], "high": [2.5, 1.0]}}}
    card = build_card(model, name="styled", gibbs_steps=1, data=data)
    trusted = card["conditioning"]["style"]["range"]
    assert trusted["min"] == [-0.75, 0.0] and trusted["max"] == [1.25, 0.5]
    assert trusted["gain"] == 2.0
    older = build_card(model, name="styled", gibbs_steps=1, data={"stats": {"style": style}})
    assert "range" not in older["conditioning"]["style"]
    # a calibration curve: the first column's range is the speeds the curve's inputs made
    model.style_curve = torch.tensor([[-0.7, 0.0, 1.4], [-1.5, 0.2, 2.5]], dtype=torch.float64)
    curved = build_card(model, name="styled", gibbs_steps=1, data=data)["conditioning"]["style"]
    assert curved["range"]["min"] == [-0.7, 0.0] and curved["range"]["max"] == [1.4, 0.5]
    assert curved["range"]["curve"] == {"requests": [-0.7, 0.0, 1.4], "inputs": [-1.5, 0.2, 2.5]}
