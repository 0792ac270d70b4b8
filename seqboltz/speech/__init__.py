"""Speech: WORLD vocoder features (mel-cepstrum, log F0 + voicing, coded aperiodicity),
resynthesis, audio I/O and mel-cepstral distortion.

Analysis and synthesis need numpy, pyworld, pysptk and soundfile only (the ``speech`` extra);
resampling and log-mel pictures use torchaudio.

>>> from seqboltz.speech import WorldFeatures, read_audio, write_wav
>>> wf = WorldFeatures(sample_rate=8000)  # doctest: +SKIP
>>> frames = wf.analyze(read_audio("prompt.wav", 8000))  # (T, 30)  # doctest: +SKIP
>>> write_wav("copy.wav", wf.synthesize(frames), 8000)  # doctest: +SKIP
"""

from seqboltz.speech._audio import (
    AudioFileError,
    log_mel_spectrogram,
    read_audio,
    resample,
    write_wav,
)
from seqboltz.speech._world import SpeechFeatureError, WorldFeatures, mel_cepstral_distortion

__all__ = [
    "AudioFileError",
    "SpeechFeatureError",
    "WorldFeatures",
    "log_mel_spectrogram",
    "mel_cepstral_distortion",
    "read_audio",
    "resample",
    "write_wav",
]
