"""Image grids and PNG writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seqboltz.viz import filter_grid, image_grid, save_png


def test_image_grid_places_each_image() -> None:
    images = np.stack([np.full((3, 2), i / 4) for i in range(5)])
    grid = image_grid(images, ncols=3, pad=1, scale=1)
    assert grid.shape == (2 * 4 + 1, 3 * 3 + 1) and grid.dtype == np.uint8
    # image 4 sits in row 1, column 1; its pixels are round(255 * 4/4)
    assert (grid[5:8, 4:6] == 255).all()
    assert (grid[1:4, 1:3] == 0).all()  # image 0
    assert grid[0, 0] == 128  # padding is mid-gray


def test_filter_grid_scales_each_filter_to_full_range() -> None:
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(16, 7)) * np.arange(1, 8)
    grid = filter_grid(weight, (4, 4), n=7, ncols=7)
    for j in range(7):
        tile = grid[2 : 2 + 8, 2 + j * 10 : 2 + j * 10 + 8]
        assert tile.min() == 0 and tile.max() == 255
    with pytest.raises(ValueError, match="weight must be"):
        filter_grid(weight, (3, 3))


def test_save_png_round_trips(tmp_path: Path) -> None:
    picture = (np.arange(12, dtype=np.uint8) * 20).reshape(3, 4)
    path = save_png(tmp_path / "sub" / "p.png", picture)
    assert np.array_equal(np.asarray(Image.open(path)), picture)
    assert not list(tmp_path.rglob("*.tmp"))


def test_image_grid_rejects_wrong_rank() -> None:
    with pytest.raises(ValueError, match=r"\(N, h, w\)"):
        image_grid(np.zeros((4, 4)))
