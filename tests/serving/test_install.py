"""A serving-only install (`pip install seqboltz[serve]`) in its own environment brings no
torch and no Lightning, and serves the embedded model."""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_serve_extra_installs_without_torch(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    install = subprocess.run(
        [str(py), "-m", "pip", "install", "--quiet", f"{REPO}[serve]"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    listed = subprocess.run(
        [str(py), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True
    ).stdout.lower()
    for heavy in ("torch", "lightning", "torchaudio"):
        assert f"\n{heavy}==" not in f"\n{listed}", f"{heavy} came with the serving install"
    # the installed server (not the checkout) serves its embedded model; the demo exercises
    # serve + health + generate + SIGTERM end to end
    out = subprocess.run(
        [str(py), "-m", "seqboltz.cli", "demo", "--frames", "30", "--out", str(tmp_path / "d")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "30 frames of motion_crbm" in out.stdout
    assert (tmp_path / "d" / "generated.bvh").is_file()
