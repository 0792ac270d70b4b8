"""ImageDataModule and read_images on small real images: scikit-learn's 8x8 digits saved as
``.npz``/``.npy`` and a folder of PNGs written from them; every bad input names its file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from seqboltz.data import DataError, ImageDataModule, binarize, read_images


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """``(1797, 8, 8)`` uint8 pixels (0..255) and ``(1797,)`` labels."""
    d = load_digits()
    return (d.images * 16).clip(0, 255).astype(np.uint8), d.target.astype(np.int64)


@pytest.fixture
def digits_npz(tmp_path: Path, digits: tuple[np.ndarray, np.ndarray]) -> Path:
    path = tmp_path / "digits.npz"
    np.savez(path, x=digits[0], y=digits[1])
    return path


def _png_folder(root: Path, digits: tuple[np.ndarray, np.ndarray], n: int = 12) -> Path:
    """``n`` digits as 8-bit grayscale PNGs in class subfolders ``root/<label>/i.png``."""
    for i in range(n):
        sub = root / str(int(digits[1][i]))
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(digits[0][i], mode="L").save(sub / f"{i:03d}.png")
    return root


# ---- reading --------------------------------------------------------------------------------


def test_npz_binary_splits_stratified_test_binarised(
    digits_npz: Path, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    dm = ImageDataModule(str(digits_npz), mode="binary", val_size=200, test_size=0.1)
    dm.setup("fit")
    train, val, test = dm.train_tensor, dm.val_tensor, dm.test_tensor
    assert (train.shape, val.shape, test.shape) == ((1417, 64), (200, 64), (180, 64))
    assert dm.n_features == 64 and dm.image_shape == (1, 8, 8) and dm.visible_kind == "bernoulli"
    # train and val are the pixels / 255; every example is used exactly once
    pixels = digits[0].reshape(-1, 64).astype(np.float32) / 255.0
    label = {r.tobytes(): int(c) for r, c in zip(pixels, digits[1], strict=True)}
    assert all(r.tobytes() in label for r in np.concatenate([train.numpy(), val.numpy()]))
    # stratified by the file's labels: each class's share of val is its share of the data
    val_counts = np.bincount([label[r.tobytes()] for r in val.numpy()], minlength=10)
    share = 200 * np.bincount(digits[1][:], minlength=10) / 1797
    assert np.all(np.abs(val_counts - share) <= 1.5), (val_counts, share)
    assert set(torch.unique(test).tolist()) == {0.0, 1.0}  # binarised once
    # the same seed gives the same data; stratified: every class has 18 test images
    again = ImageDataModule(str(digits_npz), val_size=200, test_size=0.1)
    again.setup("fit")
    assert torch.equal(again.test_tensor, test) and torch.equal(again.train_tensor, train)
    assert dm.stats() == {}


def test_npz_named_splits_keep_the_files_test_set(
    tmp_path: Path, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    path = tmp_path / "fashion_like.npz"
    np.savez(path, x_train=x[:1500], y_train=y[:1500], x_test=x[1500:])
    dm = ImageDataModule(str(path), val_size=100, binarize_seed=7)
    dm.setup("fit")
    assert dm.train_tensor.shape == (1400, 64) and dm.val_tensor.shape == (100, 64)
    expected = binarize(x[1500:].reshape(-1, 64).astype(np.float32) / 255.0, 7)
    assert np.array_equal(dm.test_tensor.numpy(), expected)


def test_gaussian_standardised_and_whitened(digits_npz: Path) -> None:
    dm = ImageDataModule(str(digits_npz), mode="gaussian", val_size=0.1)
    dm.setup("fit")
    t = dm.train_tensor.double()
    assert dm.visible_kind == "gaussian"
    assert torch.allclose(t.mean(0), torch.zeros(64, dtype=torch.float64), atol=1e-4)
    stats = dm.stats()
    assert set(stats) == {"mean", "std"} and len(stats["mean"]) == 64
    raw = torch.tensor(stats["std"], dtype=torch.float64)
    floored = raw <= 0.01 * raw.max() * (1 + 1e-6)  # e.g. corner pixels that hardly vary
    sd = t.std(0, unbiased=False)
    assert 0 < int(floored.sum()) < 10
    assert torch.allclose(sd[~floored], torch.ones_like(sd[~floored]), atol=1e-3)
    assert bool((sd[floored] < 1).all())  # not blown up: a constant pixel stays 0
    white = ImageDataModule(str(digits_npz), mode="gaussian", whiten=True)
    white.setup("fit")
    w = white.train_tensor.double()
    cov = (w - w.mean(0)).T @ (w - w.mean(0)) / w.shape[0]
    top = torch.linalg.eigvalsh(cov)[-40:]  # directions with variance are whitened to ~1
    assert torch.allclose(top, torch.ones_like(top), atol=0.05)
    assert set(white.stats()) == {"mean", "whitening", "dewhitening"}


def test_png_folder_with_class_subfolders(
    tmp_path: Path, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    folder = _png_folder(tmp_path / "pngs", digits, n=12)
    images = read_images(folder)
    assert images.splits["all"].shape == (12, 1, 8, 8)
    assert len(set(images.labels["all"].tolist())) == len({int(v) for v in digits[1][:12]})
    files = sorted(folder.rglob("*.png"))
    first = np.asarray(Image.open(files[0]), dtype=np.float32) / 255.0
    assert np.array_equal(images.splits["all"][0, 0], first)
    dm = ImageDataModule(str(folder), val_size=2, test_size=2)
    dm.setup("fit")
    assert [len(t) for t in (dm.train_tensor, dm.val_tensor, dm.test_tensor)] == [8, 2, 2]


def test_colour_images_and_channel_layouts(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(5, 6, 7, 3), dtype=np.uint8)  # (N, H, W, C)
    folder = tmp_path / "colour"
    folder.mkdir()
    for i, im in enumerate(rgb):
        Image.fromarray(im, mode="RGB").save(folder / f"{i}.png")
    x = read_images(folder).splits["all"]
    assert x.shape == (5, 3, 6, 7)  # channel-first, as ConvolutionalRBM's image_shape
    assert np.array_equal(x, np.moveaxis(rgb, 3, 1).astype(np.float32) / 255.0)
    gray = read_images(folder, grayscale=True).splits["all"]
    assert gray.shape == (5, 1, 6, 7)
    np.save(tmp_path / "rgb.npy", rgb)
    assert np.array_equal(read_images(tmp_path / "rgb.npy").splits["all"], x)


# ---- bad input: one line naming the file --------------------------------------------------


def test_nan_names_the_file_and_row(tmp_path: Path) -> None:
    x = np.random.default_rng(0).random((20, 4, 4)).astype(np.float32)
    x[13, 2, 1] = np.nan
    path = tmp_path / "nan.npy"
    np.save(path, x)
    with pytest.raises(DataError, match=r"nan\.npy.* row 13: NaN or infinite values"):
        ImageDataModule(str(path), mode="gaussian").setup("fit")


def test_binary_mode_out_of_range_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "raw.npy"
    np.save(path, np.full((10, 3, 3), 200.0, dtype=np.float32))
    with pytest.raises(DataError, match=r"raw\.npy.*values from 200 to 200.*\[0, 1\].*gaussian"):
        ImageDataModule(str(path)).setup("fit")
    ImageDataModule(str(path), mode="gaussian").setup("fit")  # fine as real values


def test_bad_files_are_named(tmp_path: Path, digits: tuple[np.ndarray, np.ndarray]) -> None:
    folder = _png_folder(tmp_path / "pngs", digits, n=4)
    big = folder / "9" / "big.png"
    big.parent.mkdir(exist_ok=True)
    Image.fromarray(np.zeros((9, 8), np.uint8), mode="L").save(big)
    with pytest.raises(DataError, match=r"big\.png: 8×9 pixels, but .* is 8×8"):
        read_images(folder)
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)  # a truncated PNG
    with pytest.raises(DataError, match=r"big\.png: (not a readable|cannot decode)"):
        read_images(folder)
    short = tmp_path / "short.npy"
    np.save(short, np.zeros((100, 64), np.uint8))
    short.write_bytes(short.read_bytes()[:90])  # cut off: too short for its header's shape
    with pytest.raises(DataError, match=r"short\.npy: not a"):
        read_images(short)
    several = tmp_path / "several.npz"
    np.savez(several, a=np.zeros((3, 4)), b=np.zeros((3, 4)))
    with pytest.raises(DataError, match=r"several\.npz: holds arrays \['a', 'b'\]; .*key="):
        read_images(several)
    assert read_images(several, key="b").splits["all"].shape == (3, 4)
    with pytest.raises(DataError, match=r"missing\.npz: no such file"):
        read_images(tmp_path / "missing.npz")
    with pytest.raises(DataError, match=r"empty: no images"):
        (tmp_path / "empty").mkdir()
        read_images(tmp_path / "empty")
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"objects\.npy: holds Python objects"):
        read_images(objects)
    flat = tmp_path / "flat.npy"
    np.save(flat, np.zeros(10))
    with pytest.raises(DataError, match=r"flat\.npy: shape \(10,\)"):
        read_images(flat)
    with pytest.raises(DataError, match=r"leaving none to train on"):
        ImageDataModule(str(folder / "1"), test_size=5).setup("fit")


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="mode"):
        ImageDataModule("x.npz", mode="poisson")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="whiten=True needs mode='gaussian'"):
        ImageDataModule("x.npz", whiten=True)
    with pytest.raises(ValueError, match="val_size as a fraction"):
        ImageDataModule("x.npz", val_size=1.5)
