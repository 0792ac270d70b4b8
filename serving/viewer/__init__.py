"""``seqboltz view``: watch and steer generated motion in a web browser.

:mod:`serving.viewer.bridge` serves a page (three.js, pinned copy in ``static/vendor/three``)
and bridges it to a running generation service over gRPC; :mod:`serving.viewer.pose` turns
standardised motion frames into joint rotations and positions, the one code path that the
bridge and the tests share. No torch.
"""

from serving.viewer.bridge import ViewerConfig, create_app, main
from serving.viewer.pose import Poses, PoseStream, motion_features

__all__ = ["PoseStream", "Poses", "ViewerConfig", "create_app", "main", "motion_features"]
