"""The torch-free sampler of exported models (numpy, onnx and onnxruntime only).

>>> from seqboltz.runtime import load_artifact
>>> art = load_artifact("motion.onnx", threads=2)  # doctest: +SKIP
>>> frames = art.generate(300, seed=7, count=64, data_units=True)  # (64, 300, D)  # doctest: +SKIP
>>> for frame in art.stream(300, seed=7):  # one (1, D) frame at a time  # doctest: +SKIP
...     pass
"""

from seqboltz.runtime._artifact import Artifact, ArtifactError, load_artifact

__all__ = ["Artifact", "ArtifactError", "load_artifact"]
