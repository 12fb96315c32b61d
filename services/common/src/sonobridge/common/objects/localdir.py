"""Local-directory adapter of the object store, for the single-node edition."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from sonobridge.common.objects.ports import (
    CHUNK_SIZE,
    MAX_SEGMENT,
    ObjectInfo,
    ObjectNotFound,
    validate_key,
)

_META_SUFFIX = ".meta.json"
# An object whose type its key's suffix implies, with no user metadata, gets no metadata file:
# one file fewer to create and rename for each stored DICOM instance.
_IMPLIED_TYPES = {".dcm": "application/dicom"}
_DEFAULT_TYPE = "application/octet-stream"


def _implied_type(key: str) -> str:
    return _IMPLIED_TYPES.get(PurePosixPath(key).suffix, _DEFAULT_TYPE)


def _fsync(path: Path | str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class FolderSync:
    """fsync one folder: makes the names linked into it durable (equal for equal folders)."""

    folder: Path

    def __call__(self) -> None:
        """Make the folder's entries durable."""
        _fsync(self.folder)


class LocalStagedObject:
    """A file made durable in the store's staging folder, published by one link."""

    def __init__(self, key: str, staged: Path, target: Path, size: int, content_type: str) -> None:
        self.key = key
        self.staged = staged
        self.target = target
        self.size = size
        self.content_type = content_type
        self.published = False

    def publish(self) -> ObjectInfo:
        """Link the staged file into place: no data is written or synced here.

        The staged name stays until discard(): if the process dies before its transaction
        commits, start-up finds the key there and drops the object unless the index has it.
        The link is durable only once durable_publish has run.
        """
        try:
            os.link(self.staged, self.target)
        except FileExistsError:
            # Replacing an object a dead writer left: rename a second link over it.
            spare = self.staged.with_name(uuid.uuid4().hex)
            os.link(self.staged, spare)
            os.replace(spare, self.target)
        self.published = True
        return ObjectInfo(self.key, self.size, self.content_type, {})

    @property
    def durable_publish(self) -> FolderSync:
        """Return the fsync of the object's folder, which makes its new name durable."""
        return FolderSync(self.target.parent)

    def discard(self) -> None:
        """Drop the staged name (a crash before this leaves it for start-up to check)."""
        self.staged.unlink(missing_ok=True)


_STAGED_SEPARATOR = "~"  # in no key, so a staged name splits back into its key


def _staged_name(key: str) -> str:
    return key.replace("/", "%") + _STAGED_SEPARATOR + uuid.uuid4().hex[:12]


class LocalDirObjectStore:
    """Objects as files under one root; writes land via fsync + rename so a crash leaves no half."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._tmp = self.root / ".tmp"
        self._tmp.mkdir(exist_ok=True)
        # Staged puts, named after their key; unlike .tmp, kept across restarts until taken.
        self._staged = self.root / ".staged"
        self._staged.mkdir(exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / "data" / validate_key(key)

    def put(
        self,
        key: str,
        stream: BinaryIO,
        *,
        length: int | None = None,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> ObjectInfo:
        """Copy the stream to a temp file in chunks, fsync, rename into place, fsync the folder.

        Callers acknowledge what put() returned (a tus offset, a large instance): the folder's
        fsync makes the new name survive a power loss, not only the bytes behind it.
        """
        path = self._path(key)
        self._make_parents(path.parent)
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(CHUNK_SIZE):
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            if length is not None and size != length:
                raise ValueError(f"stream gave {size} bytes, expected {length}")
            self._describe(key, path, content_type, metadata, Path(tmp_name))
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        _fsync(path.parent)
        return ObjectInfo(key, size, content_type, dict(metadata or {}))

    def stage(
        self, key: str, source: Path, *, content_type: str = _DEFAULT_TYPE
    ) -> LocalStagedObject:
        """Link (or copy) `source` into the staging folder and fsync it; publish() links it in."""
        path = self._path(key)
        self._make_parents(path.parent)
        name = _staged_name(key)
        staged = self._staged / (name if len(name) <= MAX_SEGMENT else uuid.uuid4().hex)
        try:
            try:
                # The spool shares the data directory's file system: a link copies nothing.
                os.link(source, staged)
            except OSError:
                shutil.copyfile(source, staged)
            # Also journals the new name: link() changed the inode this syncs.
            _fsync(staged)
            self._describe(key, path, content_type, None, staged)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        return LocalStagedObject(key, staged, path, staged.stat().st_size, content_type)

    def _make_parents(self, folder: Path) -> None:
        """Create `folder` and make each new directory's entry durable in its parent."""
        if folder.is_dir():
            return
        self._make_parents(folder.parent)
        try:
            folder.mkdir()
        except FileExistsError:
            return
        _fsync(folder.parent)

    def _describe(
        self, key: str, path: Path, content_type: str, metadata: dict[str, str] | None, data: Path
    ) -> None:
        """Put the metadata file beside `path` before its data lands, or drop a stale one."""
        meta_path = Path(str(path) + _META_SUFFIX)
        if not metadata and content_type == _implied_type(key):
            meta_path.unlink(missing_ok=True)
            return
        meta = {"content_type": content_type, "metadata": metadata or {}}
        meta_tmp = Path(str(data) + _META_SUFFIX)
        with meta_tmp.open("w") as out:
            out.write(json.dumps(meta))
            out.flush()
            # Renamed over an older file unsynced, it could read back empty after a power loss.
            os.fsync(out.fileno())
        os.replace(meta_tmp, meta_path)

    @contextmanager
    def open(self, key: str) -> Iterator[Iterator[bytes]]:
        """Yield the file's bytes in chunks."""
        try:
            handle = self._path(key).open("rb")
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"no object {key}") from exc
        with handle:
            yield iter(lambda: handle.read(CHUNK_SIZE), b"")

    def stat(self, key: str) -> ObjectInfo | None:
        """Return size, type and metadata, or None."""
        path = self._path(key)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        meta_path = Path(str(path) + _META_SUFFIX)
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        return ObjectInfo(
            key,
            size,
            meta.get("content_type", _implied_type(key)),
            meta.get("metadata", {}),
        )

    def delete(self, key: str) -> None:
        """Remove the object and its metadata."""
        path = self._path(key)
        path.unlink(missing_ok=True)
        Path(str(path) + _META_SUFFIX).unlink(missing_ok=True)

    def list(self, prefix: str) -> Iterator[str]:
        """Yield keys under `prefix`, sorted; walks only the directories the prefix can name."""
        base = self.root / "data"
        # The prefix names a directory up to its last "/" and the start of a name after it,
        # so only that directory's matching entries are visited, not the whole store.
        folder, _, partial = prefix.rpartition("/")
        if folder and any(part in ("", ".", "..") for part in folder.split("/")):
            return  # no stored key has such a segment, so nothing can match
        parent = base / folder if folder else base
        keys: list[str] = []
        try:
            entries = list(os.scandir(parent))
        except (FileNotFoundError, NotADirectoryError):
            return
        head = f"{folder}/" if folder else ""
        for entry in entries:
            if not entry.name.startswith(partial):
                continue
            if entry.is_dir():
                if not entry.is_symlink():  # os.walk did not follow links either
                    keys.extend(_keys_below(Path(entry.path), base))
            elif not entry.name.endswith(_META_SUFFIX):
                keys.append(head + entry.name)
        yield from sorted(keys)

    def check(self) -> None:
        """Raise unless the root is a writable directory."""
        if not os.access(self.root, os.W_OK):
            raise OSError(f"{self.root} is not writable")

    def take_interrupted(self) -> tuple[str, ...]:
        """Return the keys of staged puts a dead process left (now forgotten), sorted."""
        keys: set[str] = set()
        for entry in os.scandir(self._staged):
            head, separator, _ = entry.name.rpartition(_STAGED_SEPARATOR)
            if separator:
                keys.add(head.replace("%", "/"))
            Path(entry.path).unlink(missing_ok=True)
        return tuple(sorted(keys))

    def purge_temp(self) -> None:
        """Remove temp files and orphaned metadata a crash left behind (called at start-up)."""
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._tmp.mkdir(exist_ok=True)
        # put() renames the metadata in before the data and delete() removes it after, so a
        # kill between the two leaves metadata of an object that is not there; list() hides it.
        for dirpath, _dirs, names in os.walk(self.root / "data"):
            files = set(names)
            for name in names:
                if name.endswith(_META_SUFFIX) and name[: -len(_META_SUFFIX)] not in files:
                    Path(dirpath, name).unlink(missing_ok=True)


def _keys_below(folder: Path, base: Path) -> Iterator[str]:
    """Yield the keys of every object in `folder`'s subtree, relative to `base`."""
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            if not name.endswith(_META_SUFFIX):
                yield Path(dirpath, name).relative_to(base).as_posix()
