"""Object store port with MinIO and local-directory adapters."""

from sonobridge.common.objects.ports import (
    InvalidObjectKey,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    StagedObject,
    key_segment,
    validate_key,
)

__all__ = [
    "InvalidObjectKey",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "StagedObject",
    "key_segment",
    "validate_key",
]
