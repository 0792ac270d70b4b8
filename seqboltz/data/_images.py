"""Your own images as a DataModule: a ``.npy``/``.npz`` array file or a folder of PNG/JPEG files.

:func:`read_images` turns a file or folder into float32 images ``(N, C, H, W)`` (or rows
``(N, D)``) with intensities in [0, 1] for integer pixels; :class:`ImageDataModule` splits them
into train/val/test and presents them in one of two modes:

* ``"binary"``: intensities used as Bernoulli probabilities (Hinton 2010, §3), the test split
  binarised stochastically once with a fixed seed (Salakhutdinov & Murray 2008), as
  :class:`~seqboltz.data.MNIST5kDataModule` does;
* ``"gaussian"``: every split standardised per pixel with the training split's mean and
  standard deviation (Hinton 2010, §13.2), or ZCA-whitened (``whiten=True``), as
  :class:`~seqboltz.data.ImagePatchesDataModule` does.

Every problem with the data is a :class:`~seqboltz.data.DataError` whose message names the file
(and the rows or images) and says what is wrong.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from seqboltz.data._datamodule import ArrayDataModule, DataError
from seqboltz.data._mnist import binarize, stratified_split
from seqboltz.data._patches import zca_whitening

__all__ = ["IMAGE_SUFFIXES", "ImageDataModule", "ImageSet", "read_images"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
"""File name endings (any case) read from an image folder."""

_TRAIN_KEYS = ("train", "x_train", "X_train")
_VAL_KEYS = ("val", "x_val", "X_val", "valid", "x_valid", "validation")
_TEST_KEYS = ("test", "x_test", "X_test")
_LABEL_KEYS = {"y", "labels", "label", "targets", "target"}
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


@dataclass(frozen=True)
class ImageSet:
    """Images read by :func:`read_images`.

    Attributes:
        source: the file or folder, for messages.
        splits: ``{"all": x}``, or the splits the file names (``"train"`` and optionally
            ``"val"``/``"test"``); each ``(N, C, H, W)`` or ``(N, D)`` float32.
        labels: ``(N,)`` integer labels per split where the file has them (used to stratify).
        names: per split, each row's file (folders only; see :meth:`row`).
        where: per split, the file and array it was read from (``x.npz['x_train']``).
    """

    source: str
    splits: dict[str, np.ndarray]
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    names: dict[str, list[str]] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)

    def row(self, split: str, i: int) -> str:
        """Where row ``i`` of ``split`` comes from: its file, or ``x.npz['x_train'] row 7``."""
        names = self.names.get(split)
        if names is not None:
            return names[i]
        return f"{self.where.get(split, self.source)} row {i}"

    @property
    def image_shape(self) -> tuple[int, ...]:
        """``(C, H, W)`` of one image, or ``(D,)`` for rows."""
        return tuple(int(s) for s in next(iter(self.splits.values())).shape[1:])


def read_images(path: str | Path, key: str | None = None, grayscale: bool = False) -> ImageSet:
    """Read images from a ``.npy``/``.npz`` file or a folder of PNG/JPEG files.

    Arrays may be ``(N, D)`` rows, ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)``
    images (``C`` in 1, 3, 4); images become ``(N, C, H, W)``. Integer pixels are scaled to
    [0, 1] (``uint8`` by 255, ``uint16`` by 65535, other integers by 255 unless they are 0/1),
    booleans become 0/1, floats are kept as they are. An ``.npz`` holds one data array (and
    optionally labels ``y``/``labels``), or named splits: ``train``/``x_train`` with optional
    ``val``/``x_val`` and ``test``/``x_test`` (labels ``y_train`` …); ``key`` picks one array.
    A folder's images are read in sorted order, also from subfolders (whose names then serve
    as labels for stratified splits); all must have one size. Colour images are RGB unless
    ``grayscale`` (ITU-R BT.601 luma); a folder of grayscale images stays one channel.

    Args:
        path: the file or folder.
        key: the array of an ``.npz`` to use (default: see above).
        grayscale: convert colour images to one channel.

    Returns:
        An :class:`ImageSet`.

    Raises:
        DataError: the path is missing or unreadable, holds no images, images of different
            sizes, object arrays, or arrays of an unusable shape (the message names the file).
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{p}: no such file or folder")
    if p.is_dir():
        return _read_folder(p, grayscale)
    suffix = p.suffix.lower()
    if suffix == ".npy":
        return _read_npy(p, key, grayscale)
    if suffix == ".npz":
        return _read_npz(p, key, grayscale)
    raise DataError(
        f"{p}: not an image array or folder (expected a .npy or .npz file, or a folder of "
        f"{', '.join(IMAGE_SUFFIXES)} files)"
    )


# ---- arrays ---------------------------------------------------------------------------------
def _scale(a: np.ndarray, where: str) -> np.ndarray:
    """Pixels as float32: integers scaled to [0, 1], booleans 0/1, floats unchanged."""
    if a.dtype == np.bool_:
        return a.astype(np.float32)
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 65535.0
    if np.issubdtype(a.dtype, np.integer):
        lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
        if lo < 0 or hi > 255:
            raise DataError(
                f"{where}: integer pixels from {lo} to {hi}; save them as uint8 (0..255), "
                "uint16 or as floats"
            )
        return a.astype(np.float32) / (1.0 if hi <= 1 else 255.0)
    if np.issubdtype(a.dtype, np.floating):
        return a.astype(np.float32)
    raise DataError(f"{where}: pixels must be numbers, got dtype {a.dtype}")


def _layout(a: np.ndarray, where: str, grayscale: bool) -> np.ndarray:
    """``(N, D)`` rows stay; images become ``(N, C, H, W)``."""
    if a.ndim == 2:
        return a
    if a.ndim == 3:
        return a[:, None]
    if a.ndim == 4:
        channels_last = a.shape[3] in (1, 3, 4) and a.shape[1] not in (1, 3, 4)
        x = np.moveaxis(a, 3, 1) if channels_last else a
        if x.shape[1] not in (1, 3, 4):
            raise DataError(
                f"{where}: shape {a.shape} has no channel axis of size 1, 3 or 4 "
                "(expected (N, H, W, C) or (N, C, H, W))"
            )
        if grayscale and x.shape[1] >= 3:
            x = np.tensordot(x[:, :3], np.array([0.299, 0.587, 0.114], np.float32), ([1], [0]))
            x = x[:, None]
        return np.ascontiguousarray(x)
    raise DataError(
        f"{where}: shape {a.shape}; expected rows (N, D) or images (N, H, W), (N, H, W, C) "
        "or (N, C, H, W)"
    )


def _array(a: np.ndarray, where: str, grayscale: bool) -> np.ndarray:
    if a.dtype == object:
        raise DataError(f"{where}: holds Python objects; save plain numeric arrays")
    if a.shape[0] == 0 if a.ndim else True:
        raise DataError(f"{where}: holds no examples (shape {a.shape})")
    return _layout(_scale(a, where), where, grayscale)


def _labels(y: np.ndarray | None, n: int, where: str) -> np.ndarray | None:
    if y is None:
        return None
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n or not np.issubdtype(y.dtype, np.integer):
        raise DataError(
            f"{where}: labels must be {n} integers (one per example), got shape {y.shape} "
            f"and dtype {y.dtype}"
        )
    return y.astype(np.int64)


def _read_npy(p: Path, key: str | None, grayscale: bool) -> ImageSet:
    if key is not None:
        raise DataError(f"{p}: key={key!r} applies to .npz files; a .npy holds one array")
    try:
        a = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        if "allow_pickle" in str(exc):  # object arrays need pickle, which is refused
            raise DataError(f"{p}: holds Python objects; save plain numeric arrays") from exc
        raise DataError(f"{p}: not a readable .npy file ({exc})") from exc
    return ImageSet(str(p), {"all": _array(a, str(p), grayscale)})


def _read_npz(p: Path, key: str | None, grayscale: bool) -> ImageSet:
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        if "allow_pickle" in str(exc):
            raise DataError(f"{p}: holds Python objects; save plain numeric arrays") from exc
        raise DataError(f"{p}: not a readable .npz file ({exc})") from exc
    keys = sorted(arrays)
    if key is not None:
        if key not in arrays:
            raise DataError(f"{p}: has no array {key!r} (it has {keys})")
        where = f"{p}[{key!r}]"
        return ImageSet(
            str(p), {"all": _array(arrays[key], where, grayscale)}, where={"all": where}
        )
    train_key = next((k for k in _TRAIN_KEYS if k in arrays), None)
    if train_key is not None:
        splits: dict[str, np.ndarray] = {}
        labels: dict[str, np.ndarray] = {}
        wheres: dict[str, str] = {}
        for split, names in (("train", _TRAIN_KEYS), ("val", _VAL_KEYS), ("test", _TEST_KEYS)):
            k = next((n for n in names if n in arrays), None)
            if k is None:
                continue
            where = wheres[split] = f"{p}[{k!r}]"
            splits[split] = _array(arrays[k], where, grayscale)
            y_key = next(
                (n for n in (f"y_{split}", f"{split}_labels", f"labels_{split}") if n in arrays),
                None,
            )
            y = _labels(arrays.get(y_key) if y_key else None, splits[split].shape[0], where)
            if y is not None:
                labels[split] = y
        shapes = {s: a.shape[1:] for s, a in splits.items()}
        if len(set(shapes.values())) != 1:
            raise DataError(f"{p}: the splits have different image shapes {shapes}")
        return ImageSet(str(p), splits, labels, where=wheres)
    data_keys = [k for k in keys if k.lower() not in _LABEL_KEYS]
    if len(data_keys) != 1:
        raise DataError(
            f"{p}: holds arrays {keys}; name the data with key=NAME (--data.init_args.key), "
            "or store the splits as train/val/test (or x_train/x_test)"
        )
    where = f"{p}[{data_keys[0]!r}]"
    x = _array(arrays[data_keys[0]], where, grayscale)
    label_key = next((k for k in keys if k.lower() in _LABEL_KEYS), None)
    y = _labels(arrays[label_key] if label_key else None, x.shape[0], f"{p}[{label_key!r}]")
    return ImageSet(str(p), {"all": x}, {} if y is None else {"all": y}, where={"all": where})


# ---- folders --------------------------------------------------------------------------------
def _read_folder(folder: Path, grayscale: bool) -> ImageSet:
    from PIL import Image, UnidentifiedImageError

    files = sorted(
        f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise DataError(
            f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)} files, also in subfolders)"
        )
    opened = []
    try:
        for f in files:
            try:
                im = Image.open(f)
            except (OSError, UnidentifiedImageError) as exc:
                raise DataError(f"{f}: not a readable image ({exc})") from exc
            opened.append(im)
        colour = not grayscale and any(im.mode not in _GRAY_MODES for im in opened)
        first = opened[0].size
        pixels = []
        for f, im in zip(files, opened, strict=True):
            if im.size != first:
                raise DataError(
                    f"{f}: {im.size[0]}×{im.size[1]} pixels, but {files[0].name} is "
                    f"{first[0]}×{first[1]}: all images must have one size (resize them first)"
                )
            try:
                pixels.append(_pixels(im, colour))
            except (OSError, ValueError, SyntaxError) as exc:  # truncated or corrupt data
                raise DataError(f"{f}: cannot decode the image ({exc})") from exc
    finally:
        for im in opened:
            im.close()
    x = np.stack(pixels)  # (N, C, H, W) float32 in [0, 1]
    parents = [str(f.parent.relative_to(folder)) for f in files]
    labels: dict[str, np.ndarray] = {}
    if len(set(parents)) > 1:  # class subfolders
        _, codes = np.unique(np.array(parents), return_inverse=True)
        labels["all"] = codes.astype(np.int64)
    return ImageSet(str(folder), {"all": x}, labels, {"all": [str(f) for f in files]})


def _pixels(im: object, colour: bool) -> np.ndarray:
    """One PIL image as ``(C, H, W)`` float32 in [0, 1]."""
    from PIL import Image

    assert isinstance(im, Image.Image)
    if im.mode.startswith("I;16") or im.mode == "I":
        wide = (np.asarray(im, dtype=np.float64) / 65535.0).astype(np.float32)
        return wide[None] if not colour else np.repeat(wide[None], 3, axis=0)
    if im.mode == "F":
        real = np.asarray(im, dtype=np.float32)
        return real[None] if not colour else np.repeat(real[None], 3, axis=0)
    a = np.asarray(im.convert("RGB" if colour else "L"), dtype=np.float32) / 255.0
    return np.moveaxis(a, 2, 0) if colour else a[None]


# ---- the DataModule ---------------------------------------------------------------------------
def _count(size: int | float, n: int, what: str) -> int:
    """A split size given as a count (int) or a fraction of ``n`` (float in [0, 1))."""
    if isinstance(size, bool):
        raise ValueError(f"{what} must be a count or a fraction, got {size!r}")
    if isinstance(size, float):
        if not 0.0 <= size < 1.0:
            raise ValueError(f"{what} as a fraction must be in [0, 1), got {size}")
        return max(1, round(size * n)) if size > 0 else 0
    if size < 0:
        raise ValueError(f"{what} must be >= 0, got {size}")
    return int(size)


class ImageDataModule(ArrayDataModule):
    """Your images (a ``.npy``/``.npz`` file or a folder of PNG/JPEG files) as a DataModule.

    Splits: the file's own ``val``/``test`` splits when it has them (see :func:`read_images`);
    otherwise ``test_size`` test and then ``val_size`` validation examples are drawn from the
    rest (stratified by label when the file has labels or the folder has class subfolders;
    seeded by ``split_seed``). ``val_size=0`` makes val the test set. Each image is flattened
    to ``D = C·H·W`` values (channel-first, the order of
    :class:`~seqboltz.models.ConvolutionalRBM`'s ``image_shape``).

    Modes:
        ``"binary"``: intensities in [0, 1] as Bernoulli probabilities; the test split (the
        log-likelihood one, :meth:`eval_tensor`) binarised once with ``binarize_seed``.
        ``"gaussian"``: standardised per pixel with the training split's mean and std (stds
        below 1% of the largest are raised to it, so a pixel that never varies in training
        stays near 0 elsewhere), or ZCA-whitened with ``whiten=True``; the statistics travel
        with the model (:meth:`stats`).

    Args:
        path: a ``.npy``/``.npz`` file or a folder of images (recorded as an absolute path,
            so ``seqboltz evaluate`` finds it from anywhere).
        mode: ``"binary"`` or ``"gaussian"``.
        val_size: validation examples, a count or a fraction (of what is left after test).
        test_size: test examples, a count or a fraction (ignored if the file has a test split).
        key: the ``.npz`` array to use (default: the only one, or named splits).
        grayscale: convert colour images to one channel (luma).
        split_seed: seed of the splits.
        binarize_seed: seed of the one-off binarisation of the test split (``"binary"``).
        whiten: ``"gaussian"`` mode: ZCA-whiten instead of standardising per pixel.
        whiten_epsilon: whitening regulariser, relative to the mean per-pixel variance.
        batch_size: rows per batch.
        shuffle_seed: seed of the training order.
        num_workers: DataLoader workers.

    >>> dm = ImageDataModule("fashion.npz", mode="binary", val_size=500)  # doctest: +SKIP
    >>> dm.setup("fit"); dm.train_tensor.shape  # doctest: +SKIP
    torch.Size([59500, 784])
    """

    def __init__(
        self,
        path: str,
        mode: Literal["binary", "gaussian"] = "binary",
        val_size: int | float = 0.1,
        test_size: int | float = 0.1,
        key: str | None = None,
        grayscale: bool = False,
        split_seed: int = 0,
        binarize_seed: int = 1234,
        whiten: bool = False,
        whiten_epsilon: float = 1e-4,
        batch_size: int = 100,
        shuffle_seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, shuffle_seed=shuffle_seed, num_workers=num_workers)
        if mode not in ("binary", "gaussian"):
            raise ValueError(f"mode must be 'binary' or 'gaussian', got {mode!r}")
        if whiten and mode != "gaussian":
            raise ValueError("whiten=True needs mode='gaussian'")
        if not whiten_epsilon > 0:
            raise ValueError(f"whiten_epsilon must be > 0, got {whiten_epsilon}")
        _count(val_size, 1, "val_size")
        _count(test_size, 1, "test_size")
        self.path = str(Path(path).expanduser().absolute())  # evaluate may run elsewhere
        self.mode = mode
        self.val_size = val_size
        self.test_size = test_size
        self.key = key
        self.grayscale = grayscale
        self.split_seed = split_seed
        self.binarize_seed = binarize_seed
        self.whiten = whiten
        self.whiten_epsilon = whiten_epsilon
        self._visible_kind = "bernoulli" if mode == "binary" else "gaussian"
        self._stats: dict[str, list[float]] = {}
        self.image_shape: tuple[int, ...] | None = None
        self.save_hyperparameters()
        self.hparams["path"] = self.path  # what checkpoints record

    @property
    def source(self) -> str:
        return self.path

    def _load(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        images = read_images(self.path, self.key, self.grayscale)
        for split, x in images.splits.items():
            self._check_values(images, split, x)
        self.image_shape = images.image_shape
        train, val, test = self._split(images)
        flat = [a.reshape(a.shape[0], -1) for a in (train, val, test)]
        if self.mode == "binary":
            return flat[0], flat[1], binarize(flat[2], self.binarize_seed)
        return self._standardise(*flat)

    def _check_values(self, images: ImageSet, split: str, x: np.ndarray) -> None:
        flat = x.reshape(x.shape[0], -1)
        bad = np.flatnonzero(~np.isfinite(flat).all(axis=1))
        if bad.size:
            raise DataError(
                f"{images.row(split, int(bad[0]))}: NaN or infinite values"
                + (f" (and {bad.size - 1} more examples)" if bad.size > 1 else "")
            )
        if self.mode == "binary":
            bad = np.flatnonzero(((flat < 0) | (flat > 1)).any(axis=1))
            if bad.size:
                raise DataError(
                    f"{images.row(split, int(bad[0]))}: values from {flat[bad].min():g} to "
                    f"{flat[bad].max():g}, but binary mode needs probabilities in [0, 1] "
                    f"({bad.size} examples out of range): scale them, save uint8 pixels, or "
                    "use mode=gaussian"
                )

    def _split(self, images: ImageSet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        splits, labels = images.splits, images.labels
        rest_key = "train" if "train" in splits else "all"
        rest, rest_y = splits[rest_key], labels.get(rest_key)
        if "test" in splits:
            test = splits["test"]
        else:
            n_test = _count(self.test_size, rest.shape[0], "test_size")
            if n_test < 1:
                raise DataError(f"{images.source}: has no test split and test_size is 0")
            rest, test, rest_y = self._carve(images.source, rest, rest_y, n_test, "test_size")
        if "val" in splits:
            val = splits["val"]
        else:
            n_val = _count(self.val_size, rest.shape[0], "val_size")
            if n_val == 0:
                val = test
            else:
                rest, val, _ = self._carve(images.source, rest, rest_y, n_val, "val_size")
        return rest, val, test

    def _carve(
        self, source: str, x: np.ndarray, y: np.ndarray | None, n: int, what: str
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Split ``n`` examples off ``x`` (stratified by ``y`` when given): (rest, part, rest_y)."""
        if n >= x.shape[0]:
            raise DataError(
                f"{source}: {what} asks for {n} of its {x.shape[0]} examples, leaving none to "
                "train on"
            )
        if y is not None:
            keep, part = stratified_split(y, n, self.split_seed)
        else:
            order = np.random.default_rng(self.split_seed).permutation(x.shape[0])
            keep, part = order[n:], order[:n]
        return x[keep], x[part], None if y is None else y[keep]

    def _standardise(
        self, train: np.ndarray, val: np.ndarray, test: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        t = train.astype(np.float64)
        mean = t.mean(axis=0)
        if self.whiten:
            if t.shape[0] < 2:
                raise DataError(f"{self.path}: whitening needs at least 2 training examples")
            zca, inverse = zca_whitening(t - mean, self.whiten_epsilon)
            self._stats = {
                "mean": mean.tolist(),
                "whitening": zca.ravel().tolist(),
                "dewhitening": inverse.ravel().tolist(),
            }
            w = [((a - mean) @ zca).astype(np.float32) for a in (train, val, test)]
            return w[0], w[1], w[2]
        std = t.std(axis=0)
        floor = 0.01 * float(std.max()) if std.size and std.max() > 0 else 1.0
        std = np.maximum(std, floor)
        self._stats = {"mean": mean.tolist(), "std": std.tolist()}
        z = [((a - mean) / std).astype(np.float32) for a in (train, val, test)]
        return z[0], z[1], z[2]

    def stats(self) -> dict[str, list[float]]:
        """``"gaussian"``: ``{"mean": [D], "std": [D]}`` (a raw image ``x`` is fed to the model
        as ``(x - mean) / std``), or whitened ``{"mean", "whitening", "dewhitening"}`` as
        :meth:`~seqboltz.data.ImagePatchesDataModule.stats`; ``"binary"``: ``{}``."""
        return dict(self._stats)
