"""Export trained models to self-describing ONNX files (needs torch and onnxscript).

Which models export, and as which graph, each model declares itself
(:meth:`seqboltz.models.EnergyModel.export_support`); the others are refused with
:class:`ExportError` and the reason.

>>> from seqboltz.export import export_checkpoint
>>> export_checkpoint("last.ckpt", "motion.onnx", gibbs_steps=30)  # doctest: +SKIP
"""

from seqboltz.export._onnx import (
    CARD_KEY,
    CARD_SCHEMA_VERSION,
    OPSET,
    ExportError,
    build_card,
    build_rbm_card,
    export_checkpoint,
    export_onnx,
)

__all__ = [
    "CARD_KEY",
    "CARD_SCHEMA_VERSION",
    "OPSET",
    "ExportError",
    "build_card",
    "build_rbm_card",
    "export_checkpoint",
    "export_onnx",
]
