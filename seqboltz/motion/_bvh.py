"""BVH (Biovision Hierarchy) reading and writing.

Why a small parser of our own: the BVH libraries on PyPI were checked (``pip download`` and
read) before writing this one. ``bvh`` 0.3 (2017) only reads. ``bvhio`` 1.5.4 (2025) reads and
writes, but it goes through float32 ``glm`` quaternions and re-derives Euler angles on write, so
channel values do not survive a round trip (170° may come back as -10° + flips, positions lose
~1e-5 relative), it drops End Site offsets of the original file, silently skips unknown channel
names, writes non-atomically, and pins ``pyglm==2.8.2`` and ``spatial-transform==1.3.3``.
``pymo`` on PyPI is an unrelated MongoDB package (the mocap "PyMO" is not published there), and
``bvhtoolbox`` needs ``transforms3d``/``pandas`` and is not maintained since 2020. The format
is small, so this module reads and writes it directly, with numpy only, keeping every channel
value, every channel order, non-root position channels, offsets and End Sites.

Errors in a file raise :class:`MotionFileError` (a ``ValueError``) with the file name, line
number and what was expected. :func:`write_bvh` checks the clip first and writes to a temporary
file in the target directory that replaces the target only when complete, so a failed write
leaves nothing behind.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import IO

import numpy as np

from seqboltz._io import atomic_write
from seqboltz.motion._skeleton import (
    POSITION_CHANNELS,
    ROTATION_CHANNELS,
    Joint,
    MotionClip,
    Skeleton,
)

__all__ = ["MotionFileError", "read_bvh", "write_bvh"]

_VALID = POSITION_CHANNELS + ROTATION_CHANNELS


class MotionFileError(ValueError):
    """A malformed motion file: ``str(err)`` is ``"PATH:LINE: message"``."""

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class _Lines:
    """Non-empty lines of a file with 1-based line numbers and a cursor."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.lstrip("\ufeff").splitlines()
        self.pos = 0

    def next(self, expected: str) -> tuple[int, str]:
        while self.pos < len(self.lines):
            line = self.lines[self.pos].strip()
            self.pos += 1
            if line:
                return self.pos, line
        raise MotionFileError(
            self.path, len(self.lines), f"unexpected end of file, expected {expected}"
        )

    def error(self, lineno: int, message: str) -> MotionFileError:
        return MotionFileError(self.path, lineno, message)


def _floats(lines: _Lines, lineno: int, tokens: list[str], n: int, what: str) -> list[float]:
    if len(tokens) != n:
        raise lines.error(lineno, f"{what}: expected {n} numbers, found {len(tokens)}: {tokens}")
    try:
        values = [float(t) for t in tokens]
    except ValueError:
        bad = next(t for t in tokens if not _is_float(t))
        raise lines.error(lineno, f"{what}: {bad!r} is not a number") from None
    if not all(np.isfinite(values)):
        raise lines.error(lineno, f"{what}: non-finite value in {tokens}")
    return values


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _parse_joint(
    lines: _Lines, name: str, parent: int, joints: list[Joint], brace_seen: bool, header_line: int
) -> None:
    """Parse one ``ROOT``/``JOINT`` block (after its header line) into ``joints``."""
    if not brace_seen:
        lineno, line = lines.next(f"'{{' opening joint {name!r}")
        if line != "{":
            raise lines.error(lineno, f"expected '{{' to open joint {name!r}, found {line!r}")
    index = len(joints)
    offset: list[float] | None = None
    channels: tuple[str, ...] | None = None
    end_site: list[float] | None = None
    joints.append(Joint(name, parent, (0.0, 0.0, 0.0)))  # placeholder keeps file order
    while True:
        lineno, line = lines.next(f"'}}' closing joint {name!r}")
        tokens = line.split()
        key = tokens[0]
        if key == "OFFSET":
            if offset is not None:
                raise lines.error(lineno, f"joint {name!r} has a second OFFSET")
            offset = _floats(lines, lineno, tokens[1:], 3, f"OFFSET of joint {name!r}")
        elif key == "CHANNELS":
            if channels is not None:
                raise lines.error(lineno, f"joint {name!r} has a second CHANNELS line")
            if len(tokens) < 2 or not tokens[1].isdigit():
                raise lines.error(
                    lineno, f"CHANNELS of joint {name!r}: expected a channel count, found {line!r}"
                )
            count = int(tokens[1])
            names = tokens[2:]
            if len(names) != count:
                raise lines.error(
                    lineno,
                    f"CHANNELS of joint {name!r} says {count} channels but lists {len(names)}: "
                    f"{names}",
                )
            unknown = [c for c in names if c not in _VALID]
            if unknown:
                raise lines.error(
                    lineno,
                    f"joint {name!r}: unknown channel name(s) {unknown}; expected some of "
                    f"{list(_VALID)}",
                )
            if len(set(names)) != len(names):
                raise lines.error(lineno, f"joint {name!r}: repeated channel names {names}")
            channels = tuple(names)
        elif key == "JOINT":
            child, brace = _joint_header(lines, lineno, line, "JOINT")
            _parse_joint(lines, child, index, joints, brace, lineno)
        elif key == "End":
            if len(tokens) < 2 or tokens[1] != "Site" or len(tokens) > 3:
                raise lines.error(lineno, f"expected 'End Site', found {line!r}")
            if end_site is not None:
                raise lines.error(lineno, f"joint {name!r} has a second End Site")
            if len(tokens) == 2:
                ln, brace_line = lines.next("'{' opening End Site")
                if brace_line != "{":
                    raise lines.error(ln, f"expected '{{' to open End Site, found {brace_line!r}")
            elif tokens[2] != "{":
                raise lines.error(lineno, f"expected 'End Site', found {line!r}")
            ln, off_line = lines.next("OFFSET of End Site")
            off_tokens = off_line.split()
            if off_tokens[0] != "OFFSET":
                raise lines.error(
                    ln, f"expected OFFSET in End Site of {name!r}, found {off_line!r}"
                )
            end_site = _floats(lines, ln, off_tokens[1:], 3, f"End Site OFFSET of joint {name!r}")
            ln, close = lines.next("'}' closing End Site")
            if close != "}":
                raise lines.error(ln, f"expected '}}' closing End Site, found {close!r}")
        elif key == "}":
            if len(tokens) != 1:
                raise lines.error(lineno, f"unexpected text after '}}': {line!r}")
            break
        elif key in ("ROOT", "MOTION", "HIERARCHY"):
            raise lines.error(lineno, f"joint {name!r} is not closed before {key}")
        else:
            raise lines.error(
                lineno,
                f"unknown keyword {key!r} in joint {name!r}; expected OFFSET, CHANNELS, JOINT, "
                "End Site or '}'",
            )
    if offset is None:
        raise lines.error(header_line, f"joint {name!r} has no OFFSET")
    try:
        joints[index] = Joint(name, parent, tuple(offset), channels or (), end_site)  # type: ignore[arg-type]
    except ValueError as exc:
        raise lines.error(header_line, str(exc)) from None


def _joint_header(lines: _Lines, lineno: int, line: str, keyword: str) -> tuple[str, bool]:
    """Joint name of a ``ROOT name`` / ``JOINT name`` line and whether it ends with '{'."""
    rest = line[len(keyword) :].strip()
    brace = rest.endswith("{")
    if brace:
        rest = rest[:-1].strip()
    if not rest or any(c in rest for c in "{}"):
        raise lines.error(lineno, f"expected '{keyword} <name>', found {line!r}")
    return rest, brace


_FRAMES_RE = re.compile(r"^Frames:\s*(\S+)$")
_FRAME_TIME_RE = re.compile(r"^Frame\s+Time:\s*(\S+)$")


def read_bvh(path: str | Path, name: str | None = None) -> MotionClip:
    """Read a BVH file.

    Args:
        path: the ``.bvh`` file.
        name: clip name (default: the file stem).

    Returns:
        A :class:`MotionClip` with the full hierarchy (offsets, per-joint channel orders,
        End Sites) and ``frames`` of shape ``(Frames, n_channels)`` as written in the file.

    Raises:
        MotionFileError: (a ``ValueError``) the file is malformed: a missing or unknown keyword,
            an unknown channel name, a CHANNELS count that does not match its names, a
            non-numeric or non-finite value, a frame line with the wrong number of values,
            fewer (truncated) or more frame lines than ``Frames:``, a duplicate joint name.
        FileNotFoundError: no such file.
    """
    p = Path(path)
    lines = _Lines(p, p.read_text(encoding="utf-8-sig", errors="strict"))
    lineno, line = lines.next("HIERARCHY")
    if line != "HIERARCHY":
        raise lines.error(lineno, f"expected HIERARCHY, found {line!r}")
    lineno, line = lines.next("ROOT")
    if line.split()[0] != "ROOT":
        raise lines.error(lineno, f"expected ROOT, found {line!r}")
    joints: list[Joint] = []
    root_name, brace = _joint_header(lines, lineno, line, "ROOT")
    _parse_joint(lines, root_name, -1, joints, brace, lineno)
    lineno, line = lines.next("MOTION")
    if line.split()[0] == "ROOT":
        raise lines.error(lineno, "more than one ROOT is not supported")
    if line != "MOTION":
        raise lines.error(lineno, f"expected MOTION after the hierarchy, found {line!r}")
    try:
        skeleton = Skeleton(tuple(joints))
    except ValueError as exc:  # e.g. a duplicate joint name
        raise MotionFileError(p, None, str(exc)) from None

    lineno, line = lines.next("'Frames: N'")
    m = _FRAMES_RE.match(line)
    if m is None or not m.group(1).isdigit():
        raise lines.error(lineno, f"expected 'Frames: N' with N a whole number, found {line!r}")
    n_frames = int(m.group(1))
    frames_line = lineno
    lineno, line = lines.next("'Frame Time: seconds'")
    m = _FRAME_TIME_RE.match(line)
    if m is None or not _is_float(m.group(1)) or not float(m.group(1)) > 0:
        raise lines.error(lineno, f"expected 'Frame Time: t' with t > 0, found {line!r}")
    frame_time = float(m.group(1))

    n_ch = skeleton.n_channels
    rows: list[list[str]] = []
    linenos: list[int] = []
    while lines.pos < len(lines.lines):
        raw = lines.lines[lines.pos].strip()
        lines.pos += 1
        if not raw:
            continue
        tokens = raw.split()
        if len(rows) == n_frames:
            raise lines.error(
                lines.pos,
                f"more frame lines than 'Frames: {n_frames}' (line {frames_line}) announces",
            )
        if len(tokens) != n_ch:
            raise lines.error(
                lines.pos,
                f"frame {len(rows)} has {len(tokens)} values, expected {n_ch} (one per channel "
                "of the hierarchy)",
            )
        rows.append(tokens)
        linenos.append(lines.pos)
    if len(rows) < n_frames:
        raise lines.error(
            len(lines.lines),
            f"truncated file: 'Frames: {n_frames}' (line {frames_line}) but only {len(rows)} "
            "frame lines",
        )
    try:
        data = np.array(rows, dtype=np.float64).reshape(n_frames, n_ch)
    except ValueError:
        for k, tokens in enumerate(rows):
            for t in tokens:
                if not _is_float(t):
                    raise lines.error(linenos[k], f"frame {k}: {t!r} is not a number") from None
        raise  # pragma: no cover - np.array failed for another reason
    bad = np.flatnonzero(~np.isfinite(data).all(axis=1))
    if bad.size:
        raise lines.error(linenos[bad[0]], f"frame {bad[0]} has a non-finite value (NaN or inf)")
    return MotionClip(skeleton, data, frame_time, name if name is not None else p.stem)


def _fmt(values: tuple[float, ...] | list[float]) -> str:
    return " ".join(f"{v:.6f}" for v in values)


def _hierarchy_text(skeleton: Skeleton) -> str:
    out = ["HIERARCHY"]

    def emit(i: int, depth: int) -> None:
        j = skeleton.joints[i]
        pad = "\t" * depth
        out.append(f"{pad}{'ROOT' if j.parent < 0 else 'JOINT'} {j.name}")
        out.append(f"{pad}{{")
        out.append(f"{pad}\tOFFSET {_fmt(j.offset)}")
        out.append(f"{pad}\tCHANNELS {len(j.channels)}" + "".join(f" {c}" for c in j.channels))
        for k in skeleton.children(i):
            emit(k, depth + 1)
        if j.end_site is not None:
            out.append(f"{pad}\tEnd Site")
            out.append(f"{pad}\t{{")
            out.append(f"{pad}\t\tOFFSET {_fmt(j.end_site)}")
            out.append(f"{pad}\t}}")
        out.append(f"{pad}}}")

    emit(0, 0)
    return "\n".join(out) + "\n"


def write_bvh(path: str | Path, clip: MotionClip) -> Path:
    """Write a clip as a BVH file, atomically.

    Values are written with 6 decimals (``%.6f``), so a read-write-read round trip keeps every
    channel to 5e-7 (degrees or length units). Joints are written in depth-first order, so the
    written file lists them in ``clip.skeleton`` order as long as that order is depth-first
    (it is for anything :func:`read_bvh` returns).

    Args:
        path: target file (its directory must exist); replaced if present.
        clip: the motion.

    Returns:
        The path written.

    Raises:
        ValueError: ``clip`` has non-finite values, a frame width other than
            ``skeleton.n_channels``, a non-positive frame time, or a joint order that is not
            depth-first. Nothing is written then, and a failure during writing removes the
            temporary file, leaving any previous file at ``path`` untouched.
    """
    p = Path(path)
    if not isinstance(clip, MotionClip):
        raise TypeError(f"clip must be a MotionClip, got {type(clip).__name__}")
    skeleton = clip.skeleton
    frames = np.asarray(clip.frames, dtype=np.float64)
    if frames.ndim != 2 or frames.shape[1] != skeleton.n_channels:
        raise ValueError(
            f"cannot write {p}: frames must have shape (T, {skeleton.n_channels}), got "
            f"{frames.shape}"
        )
    bad = np.flatnonzero(~np.isfinite(frames).all(axis=1))
    if bad.size:
        raise ValueError(f"cannot write {p}: frame {bad[0]} has a non-finite value (NaN or inf)")
    if not (np.isfinite(clip.frame_time) and clip.frame_time > 0):
        raise ValueError(f"cannot write {p}: frame_time must be > 0, got {clip.frame_time}")
    if skeleton.n_channels == 0:
        raise ValueError(f"cannot write {p}: the skeleton has no channels")
    order: list[int] = []

    def walk(i: int) -> None:
        order.append(i)
        for k in skeleton.children(i):
            walk(k)

    walk(0)
    if order != list(range(len(skeleton))):
        raise ValueError(f"cannot write {p}: the skeleton's joints are not in depth-first order")

    header = _hierarchy_text(skeleton)
    header += f"MOTION\nFrames: {frames.shape[0]}\nFrame Time: {clip.frame_time:.10g}\n"

    def write(fh: IO[str]) -> None:
        fh.write(header)
        if frames.shape[0]:
            np.savetxt(fh, frames, fmt="%.6f", delimiter=" ")

    return atomic_write(p, write, text=True, fsync=True)
