"""The Lightning training system (CD-k / PCD) and the LightningCLI entry for recipes."""

from seqboltz.training._calibrate import CalibrateStyleGain
from seqboltz.training._conditional_mean import FitConditionalMean
from seqboltz.training._generation import GenerationMetric, SpeechGenerationMetric
from seqboltz.training._pictures import SavePictures
from seqboltz.training._recentre import RecentreIntercept
from seqboltz.training._system import RBMSystem
from seqboltz.training._warm_start import WarmStartHidden

__all__ = [
    "CalibrateStyleGain",
    "FitConditionalMean",
    "GenerationMetric",
    "RBMSystem",
    "RecentreIntercept",
    "SavePictures",
    "SpeechGenerationMetric",
    "WarmStartHidden",
]
