"""Motion capture: BVH and ASF/AMC reading, BVH writing, and invertible motion features.

numpy only: no torch, no Lightning, no scipy, so the torch-free runtime can turn generated
features back into a BVH file (:meth:`MotionFeatures.inverse_transform` then :func:`write_bvh`).

>>> from seqboltz.motion import MotionFeatures, read_bvh, resample_phases, write_bvh
>>> clip = read_bvh("walk.bvh")  # doctest: +SKIP
>>> parts = resample_phases(clip, 30.0)  # 120 fps -> 4 clips at 30 fps  # doctest: +SKIP
>>> mf = MotionFeatures().fit(parts)  # doctest: +SKIP
>>> x = mf.transform(parts[0])  # (T-1, F) standardised  # doctest: +SKIP
>>> write_bvh("out.bvh", mf.inverse_transform(x, mf.initial_state(parts[0])))  # doctest: +SKIP
"""

from seqboltz.motion._asf_amc import (
    AsfBone,
    AsfSkeleton,
    acclaim_forward_kinematics,
    amc_to_clip,
    read_amc,
    read_amc_values,
    read_asf,
)
from seqboltz.motion._bvh import MotionFileError, read_bvh, write_bvh
from seqboltz.motion._contact import (
    PlantReport,
    check_plantable,
    contact_floor,
    foot_contacts,
    foot_joints,
    plant_feet,
)
from seqboltz.motion._folder import find_motion_files, read_motion_folder
from seqboltz.motion._preprocess import MotionFeatures, RootState, resample, resample_factor
from seqboltz.motion._resample import effective_fps, resample_clip, resample_phases
from seqboltz.motion._rotations import (
    axis_rotation,
    complete_order,
    euler_to_matrix,
    matrix_to_euler,
    matrix_to_quaternion,
    matrix_to_rot6d,
    matrix_to_rotvec,
    mean_rotation,
    quaternion_slerp,
    quaternion_to_matrix,
    rot6d_to_matrix,
    rotvec_to_matrix,
    unwrap_degrees,
    unwrap_expmap,
    wrap_angle,
)
from seqboltz.motion._skeleton import (
    POSITION_CHANNELS,
    ROTATION_CHANNELS,
    Joint,
    MotionClip,
    Skeleton,
    forward_kinematics,
    local_rotations,
    local_translations,
)

__all__ = [
    "POSITION_CHANNELS",
    "ROTATION_CHANNELS",
    "AsfBone",
    "AsfSkeleton",
    "Joint",
    "MotionClip",
    "MotionFeatures",
    "MotionFileError",
    "PlantReport",
    "RootState",
    "Skeleton",
    "acclaim_forward_kinematics",
    "amc_to_clip",
    "axis_rotation",
    "check_plantable",
    "complete_order",
    "contact_floor",
    "effective_fps",
    "euler_to_matrix",
    "find_motion_files",
    "foot_contacts",
    "foot_joints",
    "forward_kinematics",
    "local_rotations",
    "local_translations",
    "matrix_to_euler",
    "matrix_to_quaternion",
    "matrix_to_rot6d",
    "matrix_to_rotvec",
    "mean_rotation",
    "plant_feet",
    "quaternion_slerp",
    "quaternion_to_matrix",
    "read_amc",
    "read_amc_values",
    "read_asf",
    "read_bvh",
    "read_motion_folder",
    "resample",
    "resample_clip",
    "resample_factor",
    "resample_phases",
    "rot6d_to_matrix",
    "rotvec_to_matrix",
    "unwrap_degrees",
    "unwrap_expmap",
    "wrap_angle",
    "write_bvh",
]
