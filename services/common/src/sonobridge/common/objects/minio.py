"""MinIO (S3) adapter of the object store: multipart streaming uploads, chunked downloads."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, cast

from minio import Minio
from minio.error import S3Error

from sonobridge.common.objects.ports import CHUNK_SIZE, ObjectInfo, ObjectNotFound, validate_key

_MISSING = {"NoSuchKey", "NoSuchObject", "NoSuchBucket"}


class MinioObjectStore:
    """One bucket in MinIO or any S3-compatible store."""

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        *,
        secure: bool = False,
        region: str | None = None,
        part_size: int = 16 * 1024 * 1024,
    ) -> None:
        self.client = Minio(
            endpoint, access_key=access_key, secret_key=secret_key, secure=secure, region=region
        )
        self.bucket = bucket
        self.part_size = part_size

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist."""
        if not self.client.bucket_exists(self.bucket):
            try:
                self.client.make_bucket(self.bucket)
            except S3Error as exc:
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    def put(
        self,
        key: str,
        stream: BinaryIO,
        *,
        length: int | None = None,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> ObjectInfo:
        """Upload; an unknown length goes multipart in `part_size` pieces, held one at a time."""
        counted = _Counted(stream)
        self.client.put_object(
            self.bucket,
            validate_key(key),
            cast(BinaryIO, counted),
            length=-1 if length is None else length,
            part_size=self.part_size if length is None else 0,
            content_type=content_type,
            metadata=metadata or None,  # type: ignore[arg-type]
            num_parallel_uploads=1,
        )
        # The PUT's answer is the acknowledgement: no HEAD request after it.
        return ObjectInfo(key, counted.size, content_type, dict(metadata or {}))

    def stage(
        self, key: str, source: Path, *, content_type: str = "application/octet-stream"
    ) -> MinioStagedObject:
        """Nothing to prepare: S3 has no rename, so publish() uploads the file."""
        return MinioStagedObject(self, validate_key(key), source, content_type)

    @contextmanager
    def open(self, key: str) -> Iterator[Iterator[bytes]]:
        """Stream the object in chunks, releasing the connection afterwards."""
        try:
            response = self.client.get_object(self.bucket, validate_key(key))
        except S3Error as exc:
            if exc.code in _MISSING:
                raise ObjectNotFound(f"no object {key}") from exc
            raise
        try:
            yield response.stream(CHUNK_SIZE)
        finally:
            response.close()
            response.release_conn()

    def stat(self, key: str) -> ObjectInfo | None:
        """Return size, type and user metadata, or None."""
        try:
            obj = self.client.stat_object(self.bucket, validate_key(key))
        except S3Error as exc:
            if exc.code in _MISSING:
                return None
            raise
        user_meta = {
            k[len("x-amz-meta-") :].lower(): v
            for k, v in (obj.metadata or {}).items()
            if k.lower().startswith("x-amz-meta-")
        }
        return ObjectInfo(key, obj.size or 0, obj.content_type or "", user_meta)

    def delete(self, key: str) -> None:
        """Remove the object if present."""
        self.client.remove_object(self.bucket, validate_key(key))

    def list(self, prefix: str) -> Iterator[str]:
        """Yield keys under `prefix`, sorted."""
        names = [
            obj.object_name
            for obj in self.client.list_objects(self.bucket, prefix=prefix, recursive=True)
            if obj.object_name is not None
        ]
        yield from sorted(names)

    def check(self) -> None:
        """Raise unless the bucket answers."""
        self.client.bucket_exists(self.bucket)


class _Counted:
    """A readable stream that counts the bytes read from it."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        """Read and count."""
        chunk = self.stream.read(size)
        self.size += len(chunk)
        return chunk


class MinioStagedObject:
    """A put deferred to publish(): one PUT request, no staging copy."""

    def __init__(self, store: MinioObjectStore, key: str, source: Path, content_type: str) -> None:
        self.store = store
        self.key = key
        self.source = source
        self.content_type = content_type

    def publish(self) -> ObjectInfo:
        """Upload the file under the key."""
        size = self.source.stat().st_size
        with self.source.open("rb") as handle:
            return self.store.put(self.key, handle, length=size, content_type=self.content_type)

    @property
    def durable_publish(self) -> Callable[[], None]:
        """Return a call with nothing to do: S3 acknowledges a PUT once it is durable."""
        return _durable_already

    def discard(self) -> None:
        """Nothing was staged."""


def _durable_already() -> None:
    """Nothing to sync: one function object, so a transaction of many puts calls it once."""
