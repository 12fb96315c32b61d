"""MinIO (S3) adapter of the object store: multipart streaming uploads, chunked downloads."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

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
        result = self.client.put_object(
            self.bucket,
            validate_key(key),
            stream,
            length=-1 if length is None else length,
            part_size=self.part_size if length is None else 0,
            content_type=content_type,
            metadata=metadata or None,  # type: ignore[arg-type]
            num_parallel_uploads=1,
        )
        info = self.stat(result.object_name)
        if info is None:
            raise RuntimeError(f"object {key} vanished right after upload")
        return info

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
