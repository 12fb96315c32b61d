"""The pydicom-backed DICOM codec: parse, hash, frame, render and slice stored instances."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from sonobridge.ingest.adapters import dataset_hash
from sonobridge.ingest.domain.media import BulkKey
from sonobridge.ingest.domain.validation import InstanceDescription, PixelLayout


class PydicomCodec:
    """DicomCodec over this package's pydicom readers.

    Each reader is imported on its first call: pydicom, numpy and Pillow are ~35 MB and a third
    of a CPU second that an idle ingest (and its start-up) does without.
    """

    def read_instance(
        self, path: Path
    ) -> tuple[InstanceDescription, PixelLayout | None, dict[str, Any]]:
        """Parse and describe a spooled instance."""
        from sonobridge.ingest.adapters import dicomfile

        return dicomfile.read_instance(path)

    def peek_uids(self, path: Path) -> tuple[str, str]:
        """Return the SOP class and instance UIDs a file names, or empty strings."""
        from sonobridge.ingest.adapters import dicomfile

        return dicomfile.peek_uids(path)

    def dataset_sha256(self, chunks: Iterable[bytes]) -> str:
        """Hash the dataset of a Part 10 file, File Meta excluded."""
        return dataset_hash.dataset_sha256(chunks)

    def check_frames(self, path: Path, numbers: Sequence[int]) -> int:
        """Check the frames exist; return how many the instance has."""
        from sonobridge.ingest.adapters import frames

        return frames.check_frames(path, numbers)

    def read_frames(self, path: Path, numbers: Sequence[int]) -> Iterator[bytes]:
        """Yield each numbered frame's bytes."""
        from sonobridge.ingest.adapters import frames

        return frames.read_frames(path, numbers)

    def render_frame(self, path: Path, frame: int, media_type: str) -> bytes:
        """Render one frame as JPEG or PNG."""
        from sonobridge.ingest.adapters import rendering

        return rendering.render_frame(path, frame, media_type)

    def open_element(
        self, chunks: Iterator[bytes], key: BulkKey, transfer_syntax: str
    ) -> tuple[int, Iterator[bytes]]:
        """Return the length and value chunks of the element a bulk key names."""
        from sonobridge.ingest.adapters import bulkdata

        return bulkdata.open_element(chunks, key, transfer_syntax)
