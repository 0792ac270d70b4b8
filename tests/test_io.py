"""The one atomic-write helper: whole files or nothing, and modes that follow the umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from seqboltz._io import atomic_path, atomic_write, current_umask, file_mode


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


def test_current_umask_reads_the_process_umask(umask_027) -> None:
    assert current_umask() == 0o027
    assert file_mode() == 0o640


def test_atomic_write_follows_the_umask_like_open(tmp_path: Path, umask_027) -> None:
    out = atomic_write(tmp_path / "a" / "b.bin", lambda f: f.write(b"xyz"))
    with open(tmp_path / "plain.bin", "wb") as f:
        f.write(b"xyz")
    assert out.read_bytes() == b"xyz"
    assert _mode(out) == _mode(tmp_path / "plain.bin") == 0o640


def test_text_mode_and_fsync(tmp_path: Path) -> None:
    out = atomic_write(tmp_path / "t.txt", lambda f: f.write("line\n"), text=True, fsync=True)
    assert out.read_bytes() == b"line\n"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "keep.txt"
    target.write_text("old")

    def boom(f) -> None:
        f.write(b"half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(target, boom)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_atomic_path_keeps_the_suffix_and_cleans_up(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "x.wav", suffix=".wav") as tmp:
        assert tmp.suffix == ".wav" and tmp.parent == tmp_path
        tmp.write_bytes(b"RIFF")
    assert (tmp_path / "x.wav").read_bytes() == b"RIFF"
    with pytest.raises(ValueError), atomic_path(tmp_path / "y.wav") as tmp:
        tmp.write_bytes(b"partial")
        raise ValueError("stop")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.wav"]
