"""Catalog datasets the project needs beyond kedro-datasets."""
from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import AbstractVersionedDataset, Version


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
