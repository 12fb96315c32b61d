"""The model registry in the object store: models/{name}/{version}/model.onnx + card.json."""

from __future__ import annotations

import io
import logging

from sonobridge.common.objects.ports import ObjectNotFound, ObjectStore, read_all
from sonobridge.inference.runtime.registry import ModelSource

log = logging.getLogger(__name__)

# The card is written last, so a half-published model (no card yet) is never listed.
_CARD = "card.json"


class ObjectStoreModelSource:
    """Read registry keys from the deployment's object store (MinIO or a local directory)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def get_bytes(self, key: str) -> bytes:
        """Return the object's bytes; raise KeyError when it does not exist."""
        try:
            return read_all(self.store, key)
        except ObjectNotFound:
            raise KeyError(key) from None

    def list(self, prefix: str) -> list[str]:
        """Return all keys starting with prefix."""
        return list(self.store.list(prefix))


def publish_missing_models(source: ModelSource, store: ObjectStore) -> list[str]:
    """Copy every model version of `source` the store lacks; return the keys written."""
    written: list[str] = []
    files: dict[str, list[str]] = {}
    for key in source.list("models/"):
        if key.count("/") == 3:
            files.setdefault(key.rsplit("/", 1)[0], []).append(key.rsplit("/", 1)[1])
    for prefix, names in sorted(files.items()):
        if _CARD not in names or store.stat(f"{prefix}/{_CARD}") is not None:
            continue
        # Measurement modules have a card and no network, so copy whatever the version holds.
        for name in sorted(names, key=lambda n: (n == _CARD, n)):
            key = f"{prefix}/{name}"
            data = source.get_bytes(key)
            content_type = "application/json" if name.endswith(".json") else "application/onnx"
            store.put(key, io.BytesIO(data), length=len(data), content_type=content_type)
            written.append(key)
        log.info("published reference model %s to the object store", prefix)
    return written
