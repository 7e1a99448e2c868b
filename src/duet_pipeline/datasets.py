"""Catalog datasets the project needs beyond kedro-datasets."""
from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import AbstractVersionedDataset, DatasetError, Version


class _VersionedFile(AbstractVersionedDataset):
    """A versioned local file (or folder) under ``filepath``: what both datasets share."""

    def __init__(self, filepath: str, version: Version | None = None, metadata: dict[str, Any] | None = None) -> None:
        super().__init__(PurePosixPath(filepath), version)
        self.metadata = metadata

    def _exists(self) -> bool:
        try:
            return Path(str(self._get_load_path())).exists()
        except DatasetError:  # no version yet
            return False

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version": self._version}


class BinaryFileDataset(_VersionedFile):
    """A file's bytes, versioned like every output (e.g. the ONNX device model)."""

    def load(self) -> bytes:
        return Path(str(self._get_load_path())).read_bytes()

    def save(self, data: bytes) -> None:
        path = Path(str(self._get_save_path()))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def parquet_files(path: Path) -> list[Path]:
    """The data files of a parquet dataset: the file itself, or a folder's part files
    (Spark's; its _SUCCESS and .crc files are not data)."""
    if path.is_dir():
        return sorted(part for part in path.glob("*.parquet") if not part.name.startswith((".", "_")))
    return [path]


class ParquetFilesDataset(_VersionedFile):
    """The parquet files of a version of a samples dataset, for training that streams
    them (``training.streaming: true``): one file from the pandas engine, the part files
    of a folder from the spark engine. Loading reads no rows; it is read-only (the
    samples are written by their pandas or Spark dataset, under the same path)."""

    def load(self) -> list[str]:
        return [str(part) for part in parquet_files(Path(str(self._get_load_path())))]

    def save(self, data: None) -> None:
        raise DatasetError(f"{self._filepath} @files is read-only: the samples are written by the feature stage")
