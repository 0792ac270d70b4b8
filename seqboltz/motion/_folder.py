"""Reading a user's folder of motion clips (BVH and/or ASF+AMC), one skeleton per folder."""

from __future__ import annotations

import warnings
from pathlib import Path

from seqboltz.motion._asf_amc import AsfSkeleton, read_amc, read_asf
from seqboltz.motion._bvh import read_bvh
from seqboltz.motion._skeleton import MotionClip

__all__ = ["find_motion_files", "read_motion_folder"]


def find_motion_files(folder: str | Path) -> list[tuple[Path, Path | None]]:
    """The clips of a folder (not recursive), sorted by file name.

    ``.bvh`` files stand alone. Each ``.amc`` file pairs with the ``.asf`` of the same stem if
    there is one, else with the ``.asf`` named by its stem up to the last ``_`` (CMU's
    ``SS_TT.amc`` with ``SS.asf``), else with the only ``.asf`` in the folder.

    Returns:
        ``[(motion_file, asf_file or None), ...]``.

    Raises:
        FileNotFoundError: the folder does not exist.
        ValueError: no ``.bvh``/``.amc`` files, or an ``.amc`` without an unambiguous ``.asf``.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"motion folder {root} does not exist or is not a directory")
    files = sorted(p for p in root.iterdir() if p.is_file())
    asfs = {p.stem: p for p in files if p.suffix.lower() == ".asf"}
    out: list[tuple[Path, Path | None]] = []
    for p in files:
        suffix = p.suffix.lower()
        if suffix == ".bvh":
            out.append((p, None))
        elif suffix == ".amc":
            subject = p.stem.rsplit("_", 1)[0]
            if p.stem in asfs:
                out.append((p, asfs[p.stem]))
            elif "_" in p.stem and subject in asfs:
                out.append((p, asfs[subject]))
            elif len(asfs) == 1:
                out.append((p, next(iter(asfs.values()))))
            else:
                raise ValueError(
                    f"{p}: no {p.stem}.asf{f' or {subject}.asf' if '_' in p.stem else ''} and "
                    f"{len(asfs)} .asf files in {root} "
                    f"({sorted(a.name for a in asfs.values())}); give each .amc a same-stem .asf "
                    "(or SS.asf for SS_TT.amc) or keep a single .asf in the folder"
                )
    if not out:
        raise ValueError(f"no .bvh or .amc files in {root}")
    return out


def read_motion_folder(folder: str | Path, amc_fps: float = 120.0) -> list[MotionClip]:
    """Read every clip of a folder (see :func:`find_motion_files`) and check they share a skeleton.

    Args:
        folder: the folder.
        amc_fps: frame rate of AMC files (AMC does not store one; CMU captures at 120 fps).

    Returns:
        Clips named by file name, in file-name order.

    Raises:
        ValueError: a malformed file (:class:`~seqboltz.motion.MotionFileError`), or two files
            whose skeletons differ in joint names, hierarchy or channels (the message names
            both files and the first difference). Skeletons that differ only in bone lengths
            are accepted with a warning: joint rotations are shared, and the first file's
            offsets are used to turn features back into motion.
    """
    clips: list[MotionClip] = []
    sources: list[Path] = []
    asf_cache: dict[Path, AsfSkeleton] = {}
    for path, asf_path in find_motion_files(folder):
        if asf_path is None:
            clip = read_bvh(path, name=path.name)
        else:
            if asf_path not in asf_cache:
                asf_cache[asf_path] = read_asf(asf_path)
            clip = read_amc(path, asf_cache[asf_path], fps=amc_fps)
            clip.name = path.name
        if clips:
            first = clips[0].skeleton
            if not clip.skeleton.same_as(first):
                raise ValueError(
                    f"{sources[0]} and {path} have different skeletons "
                    f"({first.describe_difference(clip.skeleton)}); a model is trained on one "
                    "skeleton: put clips of other skeletons in another folder"
                )
            if not clip.skeleton.same_as(first, offset_atol=1e-6):
                warnings.warn(
                    f"{path} has the skeleton of {sources[0]} with other bone lengths; the "
                    f"offsets of {sources[0].name} are used when features become motion again",
                    stacklevel=2,
                )
        clips.append(clip)
        sources.append(path)
    return clips
