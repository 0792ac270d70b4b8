"""Speech: WORLD vocoder features (mel-cepstrum, log F0 + voicing, coded aperiodicity),
resynthesis, audio I/O and mel-cepstral distortion.

Everything here is torch-free (the ``speech`` extra: numpy, pyworld, pysptk, soundfile and
soxr): WORLD analysis and synthesis, resampling (libsoxr), log-mel pictures and the log-mel
feature option with its Griffin-Lim inversion (numpy, in torchaudio's conventions).

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
from seqboltz.speech._base import SpeechFeatureError, SpeechFeatures, speech_features_from_dict
from seqboltz.speech._logmel import LogMelFeatures, log_spectral_distance
from seqboltz.speech._world import WorldFeatures, mel_cepstral_distortion

__all__ = [
    "AudioFileError",
    "LogMelFeatures",
    "SpeechFeatureError",
    "SpeechFeatures",
    "WorldFeatures",
    "log_mel_spectrogram",
    "log_spectral_distance",
    "mel_cepstral_distortion",
    "read_audio",
    "resample",
    "speech_features_from_dict",
    "write_wav",
]
