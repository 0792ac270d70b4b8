"""Acclaim ASF/AMC (the CMU motion-capture format) reading and conversion to a BVH-style skeleton.

Acclaim conventions used (the Acclaim spec as implemented by CMU's own viewer, J. Barbič's
``amc`` player, and the ``pyacclaim``/``AMCParser`` readers):

* an ASF bone ``b`` has a unit ``direction`` d_b and a ``length`` l_b, both in the world frame of
  the rest pose, and an ``axis`` (three angles + an order such as ``XYZ``) giving the bone's
  local frame C_b. Rotations listed in an order string are applied in that order about fixed
  axes: ``axis a1 a2 a3 XYZ`` is ``C = Rz(a3) @ Ry(a2) @ Rx(a1)``; likewise the AMC values of
  ``dof rx ry rz`` give ``M = Rz @ Ry @ Rx`` (each rotation about the bone's C frame).
* global rotation ``R_b = R_parent @ C_b @ M_b @ C_b⁻¹``; the bone's end is
  ``start_b + l_b · R_b @ d_b`` and its children start there. The root has no length; its AMC
  values follow the root ``order`` (translations ``TX TY TZ``, rotations ``RX RY RZ``), its frame
  is given by ``orientation`` in the order ``axis``. Its AMC translation is its position.
* lengths and root translations are divided by the ``:units length`` value (CMU: 0.45, so the
  results are in inches, as in CMU's own conversions); angles are degrees unless ``:units angle
  rad`` or the AMC says ``:RADIANS``.

:meth:`AsfSkeleton.to_skeleton` turns this into a BVH-style :class:`Skeleton` whose rest frames
are world-aligned: joint ``b`` sits at the start of bone ``b`` (offset ``l_p d_p`` of its
parent bone ``p``, zero for children of the root), a leaf bone gets an End Site ``l_b d_b``, and
its local rotation is ``C_b M_b C_b⁻¹`` written as Euler angles. Because ``C_b M_b C_b⁻¹`` is a
rotation about tilted axes whenever ``axis`` is not zero, every bone with rotational dof gets
all three rotation channels: the dof axes in reverse (so ``Zrotation Yrotation Xrotation`` for
``dof rx ry rz``, which reproduces the AMC values exactly when ``axis`` is zero, as CMU's BVH
conversions do), then the missing axes. Bones without dof get no channels. The conversion is
exact up to floating point (tested by forward kinematics against the direct Acclaim FK).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqboltz.motion._bvh import MotionFileError
from seqboltz.motion._rotations import complete_order, euler_to_matrix, matrix_to_euler
from seqboltz.motion._skeleton import Joint, MotionClip, Skeleton

__all__ = [
    "AsfBone",
    "AsfSkeleton",
    "acclaim_forward_kinematics",
    "amc_to_clip",
    "read_amc",
    "read_amc_values",
    "read_asf",
]

Vec3 = tuple[float, float, float]
_ROT_DOF = ("rx", "ry", "rz")
_ROOT_TOKENS = ("TX", "TY", "TZ", "RX", "RY", "RZ")


@dataclass(frozen=True)
class AsfBone:
    """One ASF bone.

    Args:
        name: bone name.
        parent: parent bone name (``"root"`` for the root's children).
        direction: ``(3,)`` unit direction in the rest pose (world frame).
        length: length in file units (not yet divided by ``units length``).
        axis: ``(3,)`` angles of the bone frame in degrees, in the order of ``axis_order``.
        axis_order: e.g. ``"XYZ"``: the axes of ``axis``, applied in this order.
        dof: rotational degrees of freedom in AMC value order, e.g. ``("rx", "ry", "rz")``.
    """

    name: str
    parent: str
    direction: Vec3
    length: float
    axis: Vec3
    axis_order: str
    dof: tuple[str, ...]

    def frame(self) -> np.ndarray:
        """``C_b`` ``(3, 3)``."""
        return _fixed_axes(np.deg2rad(np.asarray(self.axis)), self.axis_order)

    @property
    def dof_order(self) -> str:
        """The dof axes as an order string, e.g. ``"XYZ"`` for ``rx ry rz``."""
        return "".join(d[1].upper() for d in self.dof)


@dataclass(frozen=True)
class AsfSkeleton:
    """An ASF file.

    Args:
        path: the file read.
        name: the ``:name`` value.
        length_unit: ``:units length`` (lengths and translations are divided by it).
        angle_unit: ``"deg"`` or ``"rad"`` from ``:units angle``.
        root_order: AMC value order of the root, e.g. ``("TX", "TY", "TZ", "RX", "RY", "RZ")``.
        root_axis: order of the root ``orientation`` angles, e.g. ``"XYZ"``.
        root_position: ``(3,)`` root ``position`` in file units.
        root_orientation: ``(3,)`` root ``orientation`` in degrees.
        bones: the bones in depth-first order of the hierarchy (parents first).
    """

    path: str
    name: str
    length_unit: float
    angle_unit: str
    root_order: tuple[str, ...]
    root_axis: str
    root_position: Vec3
    root_orientation: Vec3
    bones: tuple[AsfBone, ...]

    @property
    def length_scale(self) -> float:
        """Multiplier from file lengths to output lengths (``1 / units length``)."""
        return 1.0 / self.length_unit

    def bone(self, name: str) -> AsfBone:
        for b in self.bones:
            if b.name == name:
                return b
        raise KeyError(f"no bone {name!r} in {self.path}")

    def root_frame(self) -> np.ndarray:
        """``C_root`` ``(3, 3)``."""
        return _fixed_axes(np.deg2rad(np.asarray(self.root_orientation)), self.root_axis)

    @property
    def root_rotation_order(self) -> str:
        """The root's rotation tokens as an order string (``"XYZ"`` for ``RX RY RZ``)."""
        return "".join(t[1] for t in self.root_order if t.startswith("R"))

    def to_skeleton(self) -> Skeleton:
        """The equivalent BVH-style skeleton (see the module docstring)."""
        scale = self.length_scale
        names = ["root"] + [b.name for b in self.bones]
        index = {n: i for i, n in enumerate(names)}
        root_channels = [f"{t[1]}position" for t in self.root_order if t.startswith("T")]
        rot = self.root_rotation_order
        if rot:
            root_channels += [f"{c}rotation" for c in complete_order(rot[::-1])]
        has_children = {b.parent for b in self.bones}
        joints = [
            Joint(
                "root",
                -1,
                tuple(np.asarray(self.root_position) * scale),
                tuple(root_channels),
                None if "root" in has_children else (0.0, 0.0, 0.0),
            )
        ]
        for b in self.bones:
            if b.parent == "root":
                offset = np.zeros(3)
            else:
                p = self.bone(b.parent)
                offset = np.asarray(p.direction) * p.length * scale
            channels = (
                tuple(f"{c}rotation" for c in complete_order(b.dof_order[::-1])) if b.dof else ()
            )
            end = None
            if b.name not in has_children:
                end = tuple(np.asarray(b.direction) * b.length * scale)
            joints.append(Joint(b.name, index[b.parent], tuple(offset), channels, end))  # type: ignore[arg-type]
        return Skeleton(tuple(joints))


def _fixed_axes(angles: np.ndarray, order: str) -> np.ndarray:
    """Rotations about fixed axes applied in ``order``: ``"XYZ"`` → ``Rz(a2) Ry(a1) Rx(a0)``.

    ``angles`` is ``(..., len(order))`` radians, one column per letter of ``order``."""
    # Fixed-axis (extrinsic) order abc equals intrinsic order cba with the angles reversed.
    return euler_to_matrix(np.asarray(angles)[..., ::-1], order[::-1])


class _AsfLines:
    def __init__(self, path: Path) -> None:
        self.path = path
        text = path.read_text(encoding="utf-8-sig")
        self.items: list[tuple[int, list[str]]] = []
        for n, raw in enumerate(text.splitlines(), start=1):
            line = raw.split("#", 1)[0].strip()
            if line:
                self.items.append((n, line.split()))

    def error(self, line: int | None, message: str) -> MotionFileError:
        return MotionFileError(self.path, line, message)


def _num(lines: _AsfLines, line: int, tokens: list[str], n: int, what: str) -> list[float]:
    if len(tokens) != n:
        raise lines.error(line, f"{what}: expected {n} numbers, found {len(tokens)}: {tokens}")
    out = []
    for t in tokens:
        try:
            v = float(t)
        except ValueError:
            raise lines.error(line, f"{what}: {t!r} is not a number") from None
        if not np.isfinite(v):
            raise lines.error(line, f"{what}: non-finite value {t!r}")
        out.append(v)
    return out


def _order_string(lines: _AsfLines, line: int, token: str) -> str:
    order = token.upper()
    if len(order) != 3 or sorted(order) != ["X", "Y", "Z"]:
        raise lines.error(line, f"expected an axis order such as XYZ, found {token!r}")
    return order


def read_asf(path: str | Path) -> AsfSkeleton:
    """Read an Acclaim ASF skeleton file.

    Args:
        path: the ``.asf`` file.

    Returns:
        The parsed :class:`AsfSkeleton`; :meth:`AsfSkeleton.to_skeleton` converts it.

    Raises:
        MotionFileError: (a ``ValueError``) with file name and line: a missing section, an
            unknown keyword in ``:root`` or a bone, non-numeric values, an unsupported dof
            (translation or length dof), a bone named in ``:hierarchy`` that was not defined,
            a bone defined but unreachable from the root, a duplicate bone.
        FileNotFoundError: no such file.
    """
    p = Path(path)
    lines = _AsfLines(p)
    sections: dict[str, list[tuple[int, list[str]]]] = {}
    section_line: dict[str, int] = {}
    current: str | None = None
    for n, tokens in lines.items:
        if tokens[0].startswith(":"):
            current = tokens[0][1:].lower()
            if current in sections:
                raise lines.error(n, f"duplicate section :{current}")
            sections[current] = [(n, tokens[1:])] if len(tokens) > 1 else []
            section_line[current] = n
        elif current is None:
            raise lines.error(n, f"expected a ':section' keyword, found {tokens[0]!r}")
        else:
            sections[current].append((n, tokens))
    for required in ("root", "bonedata", "hierarchy"):
        if required not in sections:
            raise lines.error(None, f"missing section :{required}")

    length_unit, angle_unit = 1.0, "deg"
    for n, tokens in sections.get("units", []):
        key = tokens[0].lower()
        if key == "length":
            length_unit = _num(lines, n, tokens[1:], 1, "units length")[0]
            if length_unit <= 0:
                raise lines.error(n, f"units length must be > 0, got {length_unit}")
        elif key == "angle":
            if len(tokens) != 2 or tokens[1].lower() not in ("deg", "degree", "degrees", "rad"):
                raise lines.error(n, f"units angle must be 'deg' or 'rad', found {tokens[1:]}")
            angle_unit = "rad" if tokens[1].lower() == "rad" else "deg"
    to_deg = 180.0 / np.pi if angle_unit == "rad" else 1.0
    name_tokens = sections.get("name", [])
    skel_name = " ".join(name_tokens[0][1]) if name_tokens else p.stem

    root_order: tuple[str, ...] | None = None
    root_axis, root_pos, root_ori = "XYZ", [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
    for n, tokens in sections["root"]:
        key = tokens[0].lower()
        if key == "order":
            order = tuple(t.upper() for t in tokens[1:])
            bad = [t for t in order if t not in _ROOT_TOKENS]
            if bad or len(set(order)) != len(order):
                raise lines.error(n, f"root order: expected distinct tokens of {_ROOT_TOKENS}")
            root_order = order
        elif key == "axis":
            if len(tokens) != 2:
                raise lines.error(n, f"root axis: expected one order such as XYZ, found {tokens}")
            root_axis = _order_string(lines, n, tokens[1])
        elif key == "position":
            root_pos = _num(lines, n, tokens[1:], 3, "root position")
        elif key == "orientation":
            root_ori = [v * to_deg for v in _num(lines, n, tokens[1:], 3, "root orientation")]
        else:
            raise lines.error(n, f"unknown keyword {tokens[0]!r} in :root")
    if root_order is None:
        raise lines.error(section_line["root"], ":root has no 'order'")

    raw_bones: dict[str, dict[str, object]] = {}
    bone_lines: dict[str, int] = {}
    block: dict[str, object] | None = None
    block_line = 0
    last_key = ""
    for n, tokens in sections["bonedata"]:
        key = tokens[0].lower()
        if key == "begin":
            if block is not None:
                raise lines.error(n, "'begin' inside a bone; expected 'end' first")
            block, block_line, last_key = {}, n, ""
            continue
        if block is None:
            raise lines.error(n, f"expected 'begin' in :bonedata, found {tokens[0]!r}")
        if key == "end":
            for needed in ("name", "direction", "length"):
                if needed not in block:
                    raise lines.error(block_line, f"bone without '{needed}'")
            bname = str(block["name"])
            if bname in raw_bones or bname == "root":
                raise lines.error(block_line, f"duplicate bone name {bname!r}")
            if "dof" in block and len(block.get("limits_rows", [])) not in (  # type: ignore[arg-type]
                0,
                len(block["dof"]),  # type: ignore[arg-type]
            ):
                raise lines.error(block_line, f"bone {bname!r}: one limits row per dof expected")
            raw_bones[bname] = block
            bone_lines[bname] = block_line
            block = None
            continue
        if key == "id":
            last_key = key
        elif key == "name":
            if len(tokens) != 2:
                raise lines.error(n, f"bone name: expected one name, found {tokens[1:]}")
            block["name"] = tokens[1]
            last_key = key
        elif key == "direction":
            d = np.array(_num(lines, n, tokens[1:], 3, "bone direction"))
            norm = float(np.linalg.norm(d))
            block["direction"] = tuple(d / norm) if norm > 0 else (0.0, 0.0, 0.0)
            last_key = key
        elif key == "length":
            block["length"] = _num(lines, n, tokens[1:], 1, "bone length")[0]
            last_key = key
        elif key == "axis":
            if len(tokens) != 5:
                raise lines.error(n, f"bone axis: expected 3 angles and an order, found {tokens}")
            vals = _num(lines, n, tokens[1:4], 3, "bone axis")
            block["axis"] = tuple(v * to_deg for v in vals)
            block["axis_order"] = _order_string(lines, n, tokens[4])
            last_key = key
        elif key == "dof":
            dof = tuple(t.lower() for t in tokens[1:])
            bad = [d for d in dof if d not in _ROT_DOF]
            if bad:
                raise lines.error(
                    n, f"unsupported dof {bad} (only rotational dof rx, ry, rz are supported)"
                )
            if len(set(dof)) != len(dof):
                raise lines.error(n, f"repeated dof {list(dof)}")
            block["dof"] = dof
            last_key = key
        elif key in ("limits",) or (key.startswith("(") and last_key == "limits"):
            rows = block.setdefault("limits_rows", [])
            assert isinstance(rows, list)
            rows.append(tokens if key != "limits" else tokens[1:])
            last_key = "limits"
        elif key in ("bodymass", "cofmass"):
            last_key = key
        else:
            raise lines.error(n, f"unknown keyword {tokens[0]!r} in a bone")
    if block is not None:
        raise lines.error(block_line, "bone not closed with 'end'")

    children: dict[str, list[str]] = {}
    parent_of: dict[str, str] = {}
    for n, tokens in sections["hierarchy"]:
        if tokens[0].lower() in ("begin", "end") and len(tokens) == 1:
            continue
        parent = tokens[0]
        if parent != "root" and parent not in raw_bones:
            raise lines.error(n, f"hierarchy names an undefined bone {parent!r}")
        for child in tokens[1:]:
            if child not in raw_bones:
                raise lines.error(n, f"hierarchy names an undefined bone {child!r}")
            if child in parent_of:
                raise lines.error(n, f"bone {child!r} has two parents")
            parent_of[child] = parent
            children.setdefault(parent, []).append(child)
    order_names: list[str] = []

    def walk(b: str) -> None:
        for c in children.get(b, []):
            if c in order_names:
                raise lines.error(section_line["hierarchy"], f"cycle in the hierarchy at {c!r}")
            order_names.append(c)
            walk(c)

    walk("root")
    missing = [b for b in raw_bones if b not in order_names]
    if missing:
        raise lines.error(
            bone_lines[missing[0]], f"bone(s) {missing} are not connected to the root"
        )
    bones = []
    for bname in order_names:
        raw = raw_bones[bname]
        bones.append(
            AsfBone(
                name=bname,
                parent=parent_of[bname],
                direction=raw["direction"],  # type: ignore[arg-type]
                length=float(raw["length"]),  # type: ignore[arg-type]
                axis=raw.get("axis", (0.0, 0.0, 0.0)),  # type: ignore[arg-type]
                axis_order=str(raw.get("axis_order", "XYZ")),
                dof=tuple(raw.get("dof", ())),  # type: ignore[arg-type]
            )
        )
    return AsfSkeleton(
        path=str(p),
        name=skel_name,
        length_unit=length_unit,
        angle_unit=angle_unit,
        root_order=root_order,
        root_axis=root_axis,
        root_position=tuple(root_pos),  # type: ignore[arg-type]
        root_orientation=tuple(root_ori),  # type: ignore[arg-type]
        bones=tuple(bones),
    )


def read_amc_values(path: str | Path, asf: AsfSkeleton) -> dict[str, np.ndarray]:
    """Read an AMC file's values as they are written.

    Args:
        path: the ``.amc`` file.
        asf: its skeleton.

    Returns:
        ``{"root": (T, len(root_order)), bone: (T, len(dof)), ...}`` for the root and every bone
        with dof, angles in **degrees** (converted if the file says ``:RADIANS`` or the ASF
        says ``angle rad``), translations in file units.

    Raises:
        MotionFileError: (a ``ValueError``) with file name and line: an unknown bone name, a
            bone listed twice in a frame, the wrong number of values for a bone, a non-numeric
            or non-finite value, frame numbers out of sequence, a frame missing bones
            (truncated), values before the first frame number, no frames.
    """
    p = Path(path)
    expected = {"root": len(asf.root_order)}
    expected.update({b.name: len(b.dof) for b in asf.bones if b.dof})
    no_dof = {b.name for b in asf.bones if not b.dof}
    radians = asf.angle_unit == "rad"
    rows: dict[str, list[list[float]]] = {k: [] for k in expected}
    frame_no: int | None = None
    frame_line = 0
    seen: set[str] = set()
    n_frames = 0

    def close_frame(line: int) -> None:
        missing = [k for k in expected if k not in seen]
        if missing:
            raise MotionFileError(
                p,
                line,
                f"frame {frame_no} (line {frame_line}) is incomplete (truncated?): no values "
                f"for {missing[:5]}{' ...' if len(missing) > 5 else ''}",
            )

    with open(p, encoding="utf-8-sig") as fh:
        n = 0
        for n, raw in enumerate(fh, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith(":"):
                key = line.upper()
                if frame_no is not None:
                    raise MotionFileError(p, n, f"header line {line!r} after the first frame")
                if key == ":RADIANS":
                    radians = True
                elif key == ":DEGREES":
                    radians = False
                continue
            tokens = line.split()
            if len(tokens) == 1 and tokens[0].isdigit():
                if frame_no is not None:
                    close_frame(n)
                    if int(tokens[0]) != frame_no + 1:
                        raise MotionFileError(
                            p, n, f"frame number {tokens[0]} follows frame {frame_no}"
                        )
                frame_no, frame_line = int(tokens[0]), n
                seen = set()
                n_frames += 1
                continue
            bone = tokens[0]
            if frame_no is None:
                raise MotionFileError(p, n, f"expected a frame number, found {line!r}")
            if bone not in expected:
                what = "has no dof" if bone in no_dof else "is not in the skeleton"
                raise MotionFileError(
                    p, n, f"unknown bone {bone!r}: it {what} ({Path(asf.path).name})"
                )
            if bone in seen:
                raise MotionFileError(p, n, f"bone {bone!r} appears twice in frame {frame_no}")
            values = tokens[1:]
            if len(values) != expected[bone]:
                raise MotionFileError(
                    p,
                    n,
                    f"bone {bone!r} has {len(values)} values, expected {expected[bone]} "
                    f"(its dof in {Path(asf.path).name})",
                )
            try:
                nums = [float(v) for v in values]
            except ValueError:
                bad = next(v for v in values if not _is_float(v))
                raise MotionFileError(p, n, f"bone {bone!r}: {bad!r} is not a number") from None
            if not all(np.isfinite(nums)):
                raise MotionFileError(p, n, f"bone {bone!r}: non-finite value in {values}")
            rows[bone].append(nums)
            seen.add(bone)
    if frame_no is None:
        raise MotionFileError(p, None, "no frames")
    close_frame(n)
    out = {
        k: np.asarray(v, dtype=np.float64).reshape(n_frames, expected[k]) for k, v in rows.items()
    }
    if radians:
        to_deg = 180.0 / np.pi
        for k, v in out.items():
            if k == "root":
                for c, t in enumerate(asf.root_order):
                    if t.startswith("R"):
                        v[:, c] *= to_deg
            else:
                v *= to_deg
    return out


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _root_parts(asf: AsfSkeleton, root: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(T, 3)`` root translation (scaled; missing axes from ``position``) and ``(T, 3, 3)``
    root rotation ``C M C⁻¹`` from the AMC root values."""
    t = np.broadcast_to(np.asarray(asf.root_position) * asf.length_scale, (root.shape[0], 3)).copy()
    rot_cols, rot_order = [], ""
    for c, tok in enumerate(asf.root_order):
        if tok.startswith("T"):
            t[:, "XYZ".index(tok[1])] = root[:, c] * asf.length_scale
        else:
            rot_cols.append(c)
            rot_order += tok[1]
    if rot_order:
        m = _fixed_axes(np.deg2rad(root[:, rot_cols]), rot_order)
        c_root = asf.root_frame()
        rot = c_root @ m @ c_root.T
    else:
        rot = np.broadcast_to(np.eye(3), (root.shape[0], 3, 3)).copy()
    return t, rot


def _bone_local(b: AsfBone, values: np.ndarray) -> np.ndarray:
    """``(T, 3, 3)`` local rotation ``C_b M_b C_b⁻¹`` of bone ``b``."""
    c = b.frame()
    m = _fixed_axes(np.deg2rad(values), b.dof_order)
    return c @ m @ c.T


def amc_to_clip(
    asf: AsfSkeleton,
    values: Mapping[str, np.ndarray],
    fps: float = 120.0,
    name: str = "",
    skeleton: Skeleton | None = None,
) -> MotionClip:
    """Convert AMC values (from :func:`read_amc_values`) to a clip of
    :meth:`AsfSkeleton.to_skeleton`.

    Args:
        asf: the skeleton.
        values: ``{"root": (T, ...), bone: (T, len(dof))}`` in degrees / file units.
        fps: frames per second (AMC files do not store it; CMU captures at 120).
        name: clip name.
        skeleton: ``asf.to_skeleton()`` if already computed.

    Returns:
        A :class:`MotionClip` with ``(T, n_channels)`` frames.
    """
    sk = skeleton if skeleton is not None else asf.to_skeleton()
    root = np.asarray(values["root"], dtype=np.float64)
    n_frames = root.shape[0]
    frames = np.zeros((n_frames, sk.n_channels))
    t, rot = _root_parts(asf, root)
    root_joint = sk.joints[0]
    sl = sk.channel_slice(0)
    for k, ch in enumerate(root_joint.channels):
        if ch.endswith("position"):
            frames[:, sl.start + k] = t[:, "XYZ".index(ch[0])]
    if root_joint.rotation_order:
        cols = [sl.start + k for k, ch in enumerate(root_joint.channels) if ch.endswith("rotation")]
        frames[:, cols] = np.rad2deg(matrix_to_euler(rot, root_joint.rotation_order))
    for b in asf.bones:
        if not b.dof:
            continue
        i = sk.index(b.name)
        local = _bone_local(b, np.asarray(values[b.name], dtype=np.float64))
        frames[:, sk.channel_slice(i)] = np.rad2deg(
            matrix_to_euler(local, sk.joints[i].rotation_order)
        )
    return MotionClip(sk, frames, 1.0 / fps, name)


def read_amc(path: str | Path, asf: AsfSkeleton, fps: float = 120.0) -> MotionClip:
    """Read an AMC motion of ``asf`` as a BVH-style clip of ``asf.to_skeleton()``.

    Args:
        path: the ``.amc`` file.
        asf: its skeleton (:func:`read_asf`).
        fps: frames per second (AMC does not store it; CMU captures at 120).

    Returns:
        A :class:`MotionClip` named after the file stem.

    Raises:
        MotionFileError: see :func:`read_amc_values`.
    """
    return amc_to_clip(asf, read_amc_values(path, asf), fps=fps, name=Path(path).stem)


def acclaim_forward_kinematics(
    asf: AsfSkeleton, values: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The direct Acclaim forward kinematics of AMC values (a reference for the conversion).

    Args:
        asf: the skeleton.
        values: from :func:`read_amc_values`.

    Returns:
        ``{"root": (T, 3), bone: (T, 3), ...}``: the root position and the *end* point of each
        bone, in scaled units.
    """
    root = np.asarray(values["root"], dtype=np.float64)
    t, rot_root = _root_parts(asf, root)
    pos: dict[str, np.ndarray] = {"root": t}
    rot: dict[str, np.ndarray] = {"root": rot_root}
    for b in asf.bones:
        r = rot[b.parent]
        if b.dof:
            c = b.frame()
            m = _fixed_axes(np.deg2rad(np.asarray(values[b.name], dtype=np.float64)), b.dof_order)
            r = r @ c @ m @ c.T
        rot[b.name] = r
        d = np.asarray(b.direction) * b.length * asf.length_scale
        pos[b.name] = pos[b.parent] + r @ d
    return pos
