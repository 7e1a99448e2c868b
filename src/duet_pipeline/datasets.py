"""Catalog datasets the project needs beyond kedro-datasets."""
from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import AbstractVersionedDataset, DatasetError, Version


class BinaryFileDataset(AbstractVersionedDataset[bytes, bytes]):
    """A file's bytes, versioned like every output (e.g. the ONNX device model)."""

    def __init__(self, filepath: str, version: Version | None = None, metadata: dict[str, Any] | None = None) -> None:
        super().__init__(PurePosixPath(filepath), version)
        self.metadata = metadata

    def load(self) -> bytes:
        return Path(str(self._get_load_path())).read_bytes()

    def save(self, data: bytes) -> None:
        path = Path(str(self._get_save_path()))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def _exists(self) -> bool:
        try:
            return Path(str(self._get_load_path())).exists()
        except Exception:  # no version yet
            return False

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version": self._version}


class ParquetFilesDataset(AbstractVersionedDataset[list[str], None]):
    """The parquet files of a version of a samples dataset, for training that streams
    them (``training.streaming: true``): one file from the pandas engine, the part files
    of a folder from the spark engine. Loading reads no rows; it is read-only (the
    samples are written by their pandas or Spark dataset, under the same path)."""

    def __init__(self, filepath: str, version: Version | None = None, metadata: dict[str, Any] | None = None) -> None:
        super().__init__(PurePosixPath(filepath), version)
        self.metadata = metadata

    def load(self) -> list[str]:
        path = Path(str(self._get_load_path()))
        if path.is_dir():  # Spark's part files; _SUCCESS and .crc files are not data
            return sorted(str(part) for part in path.glob("*.parquet") if not part.name.startswith((".", "_")))
        return [str(path)]

    def save(self, data: None) -> None:
        raise DatasetError(f"{self._filepath} @files is read-only: the samples are written by the feature stage")

    def _exists(self) -> bool:
        try:
            return Path(str(self._get_load_path())).exists()
        except DatasetError:  # no version yet
            return False

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version": self._version}
