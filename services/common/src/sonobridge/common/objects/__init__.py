"""Object store port with MinIO and local-directory adapters."""

from sonobridge.common.objects.ports import ObjectInfo, ObjectNotFound, ObjectStore, validate_key

__all__ = ["ObjectInfo", "ObjectNotFound", "ObjectStore", "validate_key"]
