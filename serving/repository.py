"""The model repository: a folder of artifacts (or the embedded default), reloaded on change.

A changed file is loaded and validated before it replaces the old version; a bad file is
rejected (logged) and the old version keeps serving. Streams hold the :class:`Model` they
started with, so a reload never changes a running stream.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from seqboltz.runtime import Artifact, ArtifactError, load_artifact

__all__ = ["DEFAULT_MODEL", "Model", "ModelRepository"]

DEFAULT_MODEL = Path(__file__).resolve().parent / "models" / "motion_crbm.onnx"
log = logging.getLogger("seqboltz.serving")


@dataclass
class Model:
    """One loaded version of an artifact."""

    name: str
    path: Path
    artifact: Artifact
    sha256: str
    mtime_ns: int


def _load(path: Path, threads: int) -> Model:
    data = path.read_bytes()
    art = load_artifact(path, threads=threads)
    if art.family != "sequence":
        raise ArtifactError(f"{path}: the service streams sequence models; this is an RBM")
    return Model(
        name=path.stem,
        path=path,
        artifact=art,
        sha256=hashlib.sha256(data).hexdigest(),
        mtime_ns=path.stat().st_mtime_ns,
    )


class ModelRepository:
    """Artifacts of ``folder`` by name (file stem), or the embedded default model.

    Args:
        folder: a folder of ``*.onnx`` artifacts; ``None``: :data:`DEFAULT_MODEL`.
        threads: onnxruntime intra-op threads per model.
    """

    def __init__(self, folder: str | Path | None = None, threads: int = 1) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.threads = threads
        self.models: dict[str, Model] = {}
        self.rejected: dict[str, str] = {}
        self._seen: dict[Path, int] = {}
        if self.folder is not None and not self.folder.is_dir():
            raise FileNotFoundError(f"model folder {self.folder} does not exist")
        self.scan()
        if not self.models:
            where = self.folder or DEFAULT_MODEL
            raise ArtifactError(f"no loadable model in {where}: {self.rejected}")

    def _paths(self) -> list[Path]:
        if self.folder is None:
            return [DEFAULT_MODEL]
        return sorted(self.folder.glob("*.onnx"))

    def scan(self) -> list[str]:
        """(Re)load new or changed files; returns the names that changed."""
        changed = []
        for path in self._paths():
            try:
                mtime = path.stat().st_mtime_ns
            except FileNotFoundError:
                continue
            if self._seen.get(path) == mtime:
                continue
            self._seen[path] = mtime
            try:
                model = _load(path, self.threads)
            except (ArtifactError, OSError) as exc:
                self.rejected[path.stem] = str(exc)
                log.warning("rejected model file %s: %s", path, exc)
                continue
            self.rejected.pop(path.stem, None)
            self.models[model.name] = model
            changed.append(model.name)
            log.info("loaded model %s (%s, sha256 %s)", model.name, path, model.sha256[:12])
        return changed

    @property
    def default_name(self) -> str:
        return sorted(self.models)[0] if self.folder is not None else DEFAULT_MODEL.stem

    def get(self, name: str) -> Model:
        """The current version of ``name`` (empty: the default model)."""
        key = name or self.default_name
        if key not in self.models:
            raise KeyError(f"unknown model {key!r}; this server has {sorted(self.models)}")
        return self.models[key]

    async def watch(self, interval: float = 1.0) -> None:
        """Rescan every ``interval`` seconds (a background task)."""
        while True:
            await asyncio.sleep(interval)
            self.scan()
