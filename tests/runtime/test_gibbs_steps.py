"""A requested number of Gibbs steps per frame, ``k``, from 1 to the card's maximum: the card's
``k`` gives the frames of the graphs that had ``k`` unrolled (bit for bit, fixtures made by
``data/make_fixed_k.py`` before the change), another ``k`` gives torch's frames at that ``k``,
a stream's state records its ``k``, and a ``k`` out of range is one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from seqboltz.errors import BadRequest
from seqboltz.export import build_card, export_onnx
from seqboltz.models import SequenceRBM
from seqboltz.models._registry import model_from_spec
from seqboltz.runtime import Artifact, ArtifactError, FrameStream, load_artifact
from seqboltz.runtime._cli import synthesize_main

DATA = Path(__file__).parent / "data"
#: as data/make_fixed_k.py: the fixtures' k, frames, sequences and seed
K, N_FRAMES, COUNT, SEED = 5, 12, 3, 7
MAX_K = 9


def conditioning(model: SequenceRBM) -> dict[str, np.ndarray]:
    """The style/controls the fixtures were generated with (data/make_fixed_k.py)."""
    rng = np.random.default_rng(3)
    extra = {}
    if model.n_style:
        extra["style"] = rng.normal(size=(COUNT, N_FRAMES, model.n_style))
    if getattr(model, "n_controls", 0):
        extra["controls"] = rng.normal(size=(COUNT, N_FRAMES, model.n_controls))
    return extra


@pytest.fixture(scope="module")
def fixtures() -> dict[str, np.ndarray]:
    with np.load(DATA / "fixed_k.npz") as z:
        return {k: z[k] for k in z.files}


def _model(fixtures: dict[str, np.ndarray], name: str) -> SequenceRBM:
    model = model_from_spec(json.loads(str(fixtures[f"{name}/spec"]))).double()
    prefix = f"{name}/state/"
    state = {
        k[len(prefix) :]: torch.from_numpy(v) for k, v in fixtures.items() if k.startswith(prefix)
    }
    model.load_state_dict(state)
    assert isinstance(model, SequenceRBM)
    return model


@pytest.fixture(scope="module")
def exported(
    fixtures: dict[str, np.ndarray], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[SequenceRBM, Artifact]]:
    """The fixtures' models exported now, card k = 5 and max_gibbs_steps = 9."""
    out = {}
    folder = tmp_path_factory.mktemp("k")
    for name in ("crbm", "rcrbm", "two_layer"):
        model = _model(fixtures, name)
        seed = np.random.default_rng(1).normal(size=(model.order, model.n_visible))
        card = build_card(
            model, name=name, gibbs_steps=K, max_gibbs_steps=MAX_K, default_seed_frames=seed
        )
        out[name] = (model, load_artifact(export_onnx(model, folder / f"{name}.onnx", card)))
    return out


@pytest.mark.parametrize("name", ["crbm", "rcrbm", "two_layer"])
def test_the_cards_k_gives_the_unrolled_graphs_frames(name, fixtures, exported) -> None:
    model, art = exported[name]
    assert (art.gibbs_steps, art.max_gibbs_steps) == (K, MAX_K)
    frames = art.generate(N_FRAMES, seed=SEED, count=COUNT, **conditioning(model))
    np.testing.assert_array_equal(frames, fixtures[f"{name}/frames"])
    named = art.generate(N_FRAMES, seed=SEED, count=COUNT, gibbs_steps=K, **conditioning(model))
    np.testing.assert_array_equal(named, frames)


def test_an_artifact_from_before_max_gibbs_steps_runs_its_k_only(fixtures) -> None:
    art = load_artifact(DATA / "fixed_k_crbm.onnx")
    assert "max_gibbs_steps" not in art.card
    assert (art.gibbs_steps, art.max_gibbs_steps) == (K, K)
    frames = art.generate(N_FRAMES, seed=SEED, count=COUNT)
    np.testing.assert_array_equal(frames, fixtures["crbm/frames"])
    with pytest.raises(ArtifactError, match=r"k = 5 Gibbs steps per frame, fixed in its artifact"):
        art.generate(2, gibbs_steps=3)


@pytest.mark.parametrize(
    ("name", "atol"),
    # the residual CRBM's visible normals (Box–Muller: log1p, cos, sin) differ by ~3e-8
    # between torch and onnxruntime in float64; the rest of the step agrees to rounding
    [("crbm", 1e-9), ("rcrbm", 1e-6)],
)
def test_another_k_is_torch_generate_at_that_k(name, atol, exported) -> None:
    model, art = exported[name]
    seed_frames = art.default_seed_frames[None].repeat(2, axis=0)
    cond = {k: v[:2] for k, v in conditioning(model).items()}
    at_card_k = art.generate(N_FRAMES, seed=SEED, count=2, **cond)
    for k in (1, 3, MAX_K):
        got = art.generate(N_FRAMES, seed=SEED, count=2, gibbs_steps=k, **cond)
        want = model.generate(
            torch.from_numpy(seed_frames),
            N_FRAMES,
            gibbs_steps=k,
            seed=SEED,
            **{n: torch.from_numpy(v) for n, v in cond.items()},
        ).numpy()
        np.testing.assert_allclose(got, want, rtol=0, atol=atol)
        assert np.abs(got - at_card_k).max() > 1e-3  # a different k samples differently


def test_a_streams_state_records_its_k_and_resumes_only_at_it(exported) -> None:
    _, art = exported["crbm"]
    whole = art.generate(10, seed=4, count=1, gibbs_steps=2)
    stream = art.frame_stream(seed=4, count=1, gibbs_steps=2)
    stream.run(art.step, 6)
    state = stream.state()
    assert state.gibbs_steps == 2
    resumed = FrameStream.resume(art.stream_spec(2), state)  # the noise jumps at k = 2
    np.testing.assert_array_equal(resumed.run(art.step, 4).frames[0], whole[0, 6:])
    with pytest.raises(BadRequest, match=r"ran at k = 2 .* cannot continue at k = 5"):
        FrameStream.resume(art.spec, state)
    # a state without a recorded k (from before k could vary) resumes at the spec's k
    FrameStream.resume(art.spec, state._replace(gibbs_steps=0))


@pytest.mark.parametrize("bad", [0, -1, MAX_K + 1, 2.5, True])
def test_a_k_out_of_range_is_one_clear_line(exported, bad) -> None:
    _, art = exported["crbm"]
    with pytest.raises(ArtifactError, match=r"1 to 9 Gibbs steps per frame \(default 5\)") as e:
        art.generate(2, gibbs_steps=bad)
    assert "\n" not in str(e.value)
    with pytest.raises(ArtifactError, match=r"noise must have shape \(1, k, 10\) with 1 <= k <= 9"):
        art.step(np.zeros((1, 3, 6)), np.zeros((1, MAX_K + 1, 10)))


def test_synthesize_gibbs_steps(exported, tmp_path: Path, capsys) -> None:
    _, art = exported["crbm"]
    common = ["--model", str(art.path), "--count", "2", "--frames", "4", "--seed", "3"]
    assert (
        synthesize_main([*common, "--gibbs-steps", "2", "--out", str(tmp_path), "--no-progress"])
        == 0
    )
    manifest = json.loads((tmp_path / "manifest.shard-0-of-1.json").read_text())
    assert manifest["gibbs_steps"] == 2
    want = art.generate(4, seed=3, count=2, gibbs_steps=2, data_units=True)
    np.testing.assert_array_equal(np.load(tmp_path / "seq_000001.npy"), want[1])
    capsys.readouterr()
    for bad in ("0", "10"):
        with pytest.raises(SystemExit) as exit_:
            synthesize_main([*common, "--gibbs-steps", bad, "--out", str(tmp_path / bad)])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and len(err.strip().splitlines()) == 1
        assert f"1 to 9 Gibbs steps per frame (default 5); got gibbs_steps={bad}" in err
        assert not (tmp_path / bad).exists()


def test_the_cards_k_runs_the_loop_written_out(exported) -> None:
    """The card's k runs through the loop written out k times (for speed), any other k
    through the loop; at the card's k both give the same frame bit for bit."""
    import onnx

    from seqboltz.runtime._unroll import find_gibbs_loop, unroll_gibbs_loop

    _, art = exported["crbm"]
    assert art.loop_graph is not None
    rng = np.random.default_rng(5)
    feeds = {"history": rng.normal(size=(4, 3, 6)), "noise": rng.random((4, K, 10))}
    unrolled = art.session.run(["frame"], feeds)[0]
    np.testing.assert_array_equal(unrolled, art._loop().run(["frame"], feeds)[0])
    proto = onnx.load(str(art.path))
    written_out = unroll_gibbs_loop(proto, 3)
    assert find_gibbs_loop(written_out) is None and find_gibbs_loop(proto) is not None
    with pytest.raises(ValueError, match="k must be >= 1"):
        unroll_gibbs_loop(proto, 0)
    with pytest.raises(ValueError, match="no Gibbs-step Loop"):
        unroll_gibbs_loop(written_out, 3)
