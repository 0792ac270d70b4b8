"""Energy models: thin ``nn.Module``s over :mod:`seqboltz.functional`.

Every model implements :class:`EnergyModel`; see :mod:`seqboltz.models._base` for the
interface and :func:`load_model` for rebuilding a model from a checkpoint safely.
"""

from seqboltz.models._base import AnnealingPath, Conditioning, EnergyModel, GibbsStep, NoiseSpec
from seqboltz.models._conv import ConvolutionalDBN, ConvolutionalRBM
from seqboltz.models._crbm import (
    ConditionalRBM,
    FactoredConditionalRBM,
    FrameParams,
    SequenceRBM,
)
from seqboltz.models._crbm2 import BinaryConditionalRBM, TwoLayerCRBM
from seqboltz.models._mc import MeanCovarianceRBM
from seqboltz.models._rbm import BernoulliRBM, GaussianBernoulliRBM
from seqboltz.models._registry import (
    DEFAULT_GIBBS_STEPS,
    default_gibbs_steps,
    load_model,
    model_from_spec,
    model_spec,
    recentred_gibbs_steps,
    register_model,
    save_model,
)
from seqboltz.models._residual import ResidualCRBM
from seqboltz.models._structured import StructuredInference, StructuredOutputCRBM

__all__ = [
    "DEFAULT_GIBBS_STEPS",
    "AnnealingPath",
    "BernoulliRBM",
    "BinaryConditionalRBM",
    "ConditionalRBM",
    "Conditioning",
    "ConvolutionalDBN",
    "ConvolutionalRBM",
    "EnergyModel",
    "FactoredConditionalRBM",
    "FrameParams",
    "GaussianBernoulliRBM",
    "GibbsStep",
    "MeanCovarianceRBM",
    "NoiseSpec",
    "ResidualCRBM",
    "SequenceRBM",
    "StructuredInference",
    "StructuredOutputCRBM",
    "TwoLayerCRBM",
    "default_gibbs_steps",
    "load_model",
    "model_from_spec",
    "model_spec",
    "recentred_gibbs_steps",
    "register_model",
    "save_model",
]
