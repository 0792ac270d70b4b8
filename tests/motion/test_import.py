from __future__ import annotations

import subprocess
import sys


def test_motion_imports_without_torch_lightning_or_scipy() -> None:
    """The torch-free runtime turns generated features into BVH with numpy alone."""
    code = (
        "import sys\n"
        "for m in ('torch', 'lightning', 'scipy'):\n"
        "    sys.modules[m] = None\n"
        "import numpy as np\n"
        "import seqboltz.motion as M\n"
        "sk = M.Skeleton((M.Joint('r', -1, (0, 0, 0), ('Yposition', 'Yrotation')),))\n"
        "clip = M.MotionClip(sk, np.c_[np.linspace(0, 1, 5), np.linspace(0, 90, 5)], 0.1)\n"
        "mf = M.MotionFeatures().fit([clip])\n"
        "out = mf.inverse_transform(mf.transform(clip), mf.initial_state(clip))\n"
        "assert np.allclose(out.frames, clip.frames[1:])\n"
        "print(sorted(k for k in sys.modules if k.split('.')[0] == 'seqboltz'))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "seqboltz.data" not in proc.stdout
