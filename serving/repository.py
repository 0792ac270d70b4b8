"""The model repository: a folder of artifacts (or the embedded models), reloaded on change.

A changed file is loaded and validated before it replaces the old version; a bad file is
rejected (logged) and the old version keeps serving; a removed file removes its model (logged).
Streams hold the :class:`Model` they started with, so a reload or a removal never changes a
running stream.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from seqboltz.errors import ModelLoading, ModelNotFound
from seqboltz.runtime import Artifact, ArtifactError, load_artifact

__all__ = ["DEFAULT_MODEL", "EMBEDDED_MODELS", "Model", "ModelRepository"]

#: the models that ship inside the package (``serving/models/*.onnx``, see its README)
EMBEDDED_MODELS = Path(__file__).resolve().parent / "models"
#: the embedded model a request without a model name gets
DEFAULT_MODEL = EMBEDDED_MODELS / "motion_crbm.onnx"
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
    """Artifacts of ``folder`` by name (file stem), or the embedded models.

    A file that disappears takes its model with it (new streams get NOT_FOUND; running streams
    hold their :class:`Model` and finish). :meth:`watch` loads files in a worker thread, so a
    large model never blocks the event loop; while a new name is loading it is
    :class:`~seqboltz.errors.ModelLoading` (UNAVAILABLE), not unknown.

    Args:
        folder: a folder of ``*.onnx`` artifacts (the default model: the first name in
            sorted order); ``None``: the embedded models (:data:`EMBEDDED_MODELS`), with
            :data:`DEFAULT_MODEL` the default.
        threads: onnxruntime intra-op threads per model.
    """

    def __init__(self, folder: str | Path | None = None, threads: int = 1) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.threads = threads
        self.models: dict[str, Model] = {}
        self.rejected: dict[str, str] = {}
        self.loading: set[str] = set()
        self._seen: dict[Path, int] = {}
        if self.folder is not None and not self.folder.is_dir():
            raise FileNotFoundError(f"model folder {self.folder} does not exist")
        self.scan()
        if not self.models:
            where = self.folder or EMBEDDED_MODELS
            raise ArtifactError(f"no loadable model in {where}: {self.rejected}")

    def _paths(self) -> list[Path]:
        return sorted((self.folder or EMBEDDED_MODELS).glob("*.onnx"))

    def _plan(self) -> tuple[list[Path], list[str]]:
        """Files to (re)load (new or changed mtime) and model names whose file is gone."""
        present: set[Path] = set()
        todo = []
        for path in self._paths():
            try:
                mtime = path.stat().st_mtime_ns
            except FileNotFoundError:
                continue
            present.add(path)
            if self._seen.get(path) != mtime:
                self._seen[path] = mtime
                todo.append(path)
        gone = [p for p in self._seen if p not in present]
        for path in gone:
            del self._seen[path]
            self.rejected.pop(path.stem, None)
        names = {p.stem for p in present}
        return todo, [n for n in self.models if n not in names]

    def _remove(self, names: list[str]) -> None:
        for name in names:
            model = self.models.pop(name)
            log.info(
                "removed model %s: its file %s is gone (running streams finish on it)",
                name,
                model.path,
            )

    def _loaded(self, path: Path, result: Model | BaseException) -> str | None:
        if isinstance(result, BaseException):
            self.rejected[path.stem] = str(result)
            log.warning("rejected model file %s: %s", path, result)
            return None
        self.rejected.pop(path.stem, None)
        self.models[result.name] = result
        log.info("loaded model %s (%s, sha256 %s)", result.name, path, result.sha256[:12])
        return result.name

    def scan(self) -> list[str]:
        """(Re)load new or changed files and drop models whose file is gone, here and now;
        returns the names that were loaded or removed."""
        todo, gone = self._plan()
        self._remove(gone)
        changed = list(gone)
        for path in todo:
            result: Model | BaseException
            try:
                result = _load(path, self.threads)
            except (ArtifactError, OSError) as exc:
                result = exc
            name = self._loaded(path, result)
            changed += [name] if name else []
        return changed

    async def scan_async(self) -> list[str]:
        """:meth:`scan` with each file read and loaded in a worker thread (the event loop
        keeps serving); the repository changes only on the loop."""
        todo, gone = self._plan()
        self._remove(gone)
        changed = list(gone)
        for path in todo:
            new = path.stem not in self.models
            if new:
                self.loading.add(path.stem)
            result: Model | BaseException
            try:
                result = await asyncio.to_thread(_load, path, self.threads)
            except (ArtifactError, OSError) as exc:
                result = exc
            finally:
                self.loading.discard(path.stem)
            name = self._loaded(path, result)
            changed += [name] if name else []
        return changed

    @property
    def default_name(self) -> str:
        return sorted(self.models)[0] if self.folder is not None else DEFAULT_MODEL.stem

    def get(self, name: str) -> Model:
        """The current version of ``name`` (empty: the default model).

        Raises:
            ModelNotFound: no such model (any more).
            ModelLoading: its file is being loaded for the first time.
        """
        key = name or (self.default_name if self.models else "")
        if key in self.models:
            return self.models[key]
        if key in self.loading:
            raise ModelLoading(f"model {key!r} is loading; try again shortly")
        raise ModelNotFound(f"unknown model {key!r}; this server has {sorted(self.models)}")

    async def watch(self, interval: float = 1.0) -> None:
        """Rescan every ``interval`` seconds (a background task)."""
        while True:
            await asyncio.sleep(interval)
            await self.scan_async()
