"""Pictures people would rather look at: image grids of samples and filters, as PNG.

Pillow is imported lazily (it comes with the ``train`` extra), so nothing here is a hard
runtime dependency of the library.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from seqboltz._io import atomic_path

__all__ = [
    "filter_grid",
    "image_grid",
    "normalized_grid",
    "plot_curves",
    "plot_spectrograms",
    "plot_trajectories",
    "save_png",
]


def image_grid(images: np.ndarray, ncols: int = 10, pad: int = 1, scale: int = 2) -> np.ndarray:
    """Tile images ``(N, h, w)`` with values in [0, 1] into one uint8 picture.

    Args:
        images: ``(N, h, w)`` array in [0, 1] (values outside are clipped).
        ncols: images per row.
        pad: pixels of mid-gray padding between images.
        scale: integer upscaling factor (nearest neighbour) so small images stay visible.

    Returns:
        ``(rows·(h+pad)+pad)·scale × (ncols·(w+pad)+pad)·scale`` uint8 array.
    """
    if images.ndim != 3:
        raise ValueError(f"images must have shape (N, h, w); got {images.shape}")
    n, h, w = images.shape
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad), 0.5)
    for i, img in enumerate(np.clip(images, 0.0, 1.0)):
        r, c = divmod(i, ncols)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        grid[top : top + h, left : left + w] = img
    grid = np.kron(grid, np.ones((scale, scale)))
    return (grid * 255.0 + 0.5).astype(np.uint8)


def filter_grid(
    weight: np.ndarray, shape: tuple[int, int], n: int = 100, ncols: int = 10
) -> np.ndarray:
    """Picture of the first ``n`` filters (columns of ``weight (D, H)``), each scaled to [0, 1]."""
    if weight.ndim != 2 or weight.shape[0] != shape[0] * shape[1]:
        raise ValueError(
            f"weight must be (h*w, H) with h*w = {shape[0] * shape[1]}; got {weight.shape}"
        )
    return normalized_grid(weight[:, :n].T.reshape(-1, *shape), ncols=ncols)


def normalized_grid(images: np.ndarray, ncols: int = 10, scale: int = 2) -> np.ndarray:
    """:func:`image_grid` of ``(N, h, w)`` arrays, each scaled on its own to [0, 1] (filters)."""
    if images.ndim != 3:
        raise ValueError(f"images must have shape (N, h, w); got {images.shape}")
    lo = images.min(axis=(1, 2), keepdims=True)
    hi = images.max(axis=(1, 2), keepdims=True)
    return image_grid((images - lo) / np.maximum(hi - lo, 1e-12), ncols=ncols, scale=scale)


def save_png(path: str | Path, picture: np.ndarray) -> Path:
    """Write a uint8 grayscale ``(H, W)`` array as PNG (atomically); returns the path."""
    from PIL import Image

    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(picture, mode="L").save(tmp, format="PNG")
    return path


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(
    path: str | Path,
    real: np.ndarray,
    generated: np.ndarray,
    names: list[str],
    fps: float,
    title: str = "",
) -> Path:
    """Generated against real curves, one panel per dimension (e.g. joint angles).

    Args:
        path: PNG to write.
        real: ``(T_r, K)`` real values of the ``K`` dimensions to show.
        generated: ``(T_g, K)`` generated values.
        names: ``K`` panel titles.
        fps: frame rate, for a time axis in seconds.
        title: figure title.
    """
    plt = _pyplot()
    k = real.shape[1]
    fig, axes = plt.subplots(k, 1, figsize=(10, 1.6 * k + 0.6), sharex=True, squeeze=False)
    for i, ax in enumerate(axes[:, 0]):
        ax.plot(np.arange(generated.shape[0]) / fps, generated[:, i], lw=0.8, label="generated")
        ax.plot(np.arange(real.shape[0]) / fps, real[:, i], lw=0.8, label="real")
        ax.set_ylabel(names[i], fontsize=7)
    axes[0, 0].legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("seconds")
    fig.suptitle(title)
    fig.tight_layout()
    return _save_figure(fig, path)


def plot_trajectories(
    path: str | Path, trajectories: dict[str, np.ndarray], title: str = ""
) -> Path:
    """Ground-plane root trajectories ``{label: (T, 2)}`` on equal axes."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 6))
    for label, xy in trajectories.items():
        ax.plot(xy[:, 0], xy[:, 1], lw=1.0, label=label)
        ax.plot(xy[:1, 0], xy[:1, 1], "ko", ms=3)
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(fontsize=7)
    ax.set_title(title)
    fig.tight_layout()
    return _save_figure(fig, path)


def plot_spectrograms(
    path: str | Path, panels: dict[str, np.ndarray], seconds_per_column: float, title: str = ""
) -> Path:
    """Log-mel spectrograms ``{label: (n_mels, T)}`` stacked, on one colour scale."""
    plt = _pyplot()
    k = len(panels)
    fig, axes = plt.subplots(k, 1, figsize=(10, 2.2 * k + 0.6), squeeze=False)
    lo = min(float(np.percentile(x, 5)) for x in panels.values())
    hi = max(float(x.max()) for x in panels.values())
    for ax, (label, spec) in zip(axes[:, 0], panels.items(), strict=True):
        extent = (0.0, spec.shape[1] * seconds_per_column, 0.0, float(spec.shape[0]))
        ax.imshow(spec, origin="lower", aspect="auto", extent=extent, vmin=lo, vmax=hi)
        ax.set_ylabel(f"{label}\nmel band", fontsize=7)
    axes[-1, 0].set_xlabel("seconds")
    fig.suptitle(title)
    fig.tight_layout()
    return _save_figure(fig, path)


def _save_figure(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=110)
    finally:
        _pyplot().close(fig)
    return path
