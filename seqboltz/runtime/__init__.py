"""The torch-free sampler of exported models (numpy, onnx and onnxruntime only).

:class:`FrameStream` is the one frame loop (history window, per-frame conditioning, noise
cursor, steering); :class:`Artifact` supplies its step.

>>> from seqboltz.runtime import load_artifact
>>> art = load_artifact("motion.onnx", threads=2)  # doctest: +SKIP
>>> frames = art.generate(300, seed=7, count=64, data_units=True)  # (64, 300, D)  # doctest: +SKIP
>>> for frame in art.stream(300, seed=7):  # one (1, D) frame at a time  # doctest: +SKIP
...     pass
>>> s = art.frame_stream(seed=7)  # doctest: +SKIP
>>> s.advance(art.step); s.change(style=[1.5]); s.advance(art.step)  # doctest: +SKIP
>>> load_voice("tts.onnx").speak("Please hold.").write("out")  # text-to-speech  # doctest: +SKIP
"""

from seqboltz.errors import (
    BadRequest,
    LimitExceeded,
    ModelDiverged,
    ModelLoading,
    ModelNotFound,
    SeqboltzError,
    Unavailable,
)
from seqboltz.runtime._artifact import Artifact, ArtifactError, load_artifact
from seqboltz.runtime._stream import (
    Change,
    FrameStream,
    Generated,
    StepFn,
    StepInputs,
    StepsFn,
    StreamSpec,
    StreamState,
    step_frames,
)
from seqboltz.runtime._tts import Speech, TextToSpeech, load_voice

__all__ = [
    "Artifact",
    "ArtifactError",
    "BadRequest",
    "Change",
    "FrameStream",
    "Generated",
    "LimitExceeded",
    "ModelDiverged",
    "ModelLoading",
    "ModelNotFound",
    "SeqboltzError",
    "Speech",
    "StepFn",
    "StepInputs",
    "StepsFn",
    "StreamSpec",
    "StreamState",
    "TextToSpeech",
    "Unavailable",
    "load_artifact",
    "load_voice",
    "step_frames",
]
