"""Datasets are declared, not coded: one block in ``conf/*/datasets.yml`` per log.

A declaration says where the log is (a file or a folder of parts), how it is written
(csv/tsv, parquet or JSON lines), which columns hold the user, the item, the time and
optionally the rating, the time's unit, which ratings count as interactions and what to do
with exact duplicate events. The MovieLens releases carry their download (URL and sha256);
``synthetic-<N>`` names a family of generated logs. Everything that reads a log takes its
declaration from here (:func:`declaration_of`), so a new dataset needs no code.

Kedro-free: the declarations arrive as the ``datasets`` parameter, a plain dict.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from duet_pipeline.parameters import Block, ParameterError, parse_block

#: Environment variable that overrides where raw datasets are looked for.
DATA_DIR_ENV_VAR = "DUET_DATA_DIR"
# A dataset's name is a folder name and a parameter path (params:datasets.<name>).
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+-]*")
# A family of names declared by one block, ``synthetic-<N>``: the block's key ends in <N>.
FAMILY_SUFFIX = "-<N>"
SYNTHETIC_PATTERN = re.compile(r"synthetic-(\d+(?:\.\d+)?)([km]?)")


class Columns(Block):
    """Which column of the file holds what; ``rating: null`` for implicit feedback."""

    user: str = Field(min_length=1)
    item: str = Field(min_length=1)
    time: str = Field(min_length=1)
    rating: str | None = Field(default=None, min_length=1)


class Download(Block):
    """Where an official archive lives, and the sha256 it must have."""

    url: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    archive_root: str  # the folder inside the zip whose files become the dataset's folder


class DatasetDeclaration(Block):
    """One log, as ``datasets.<name>`` declares it (conf/base/datasets.yml says each key)."""

    path: str = Field(min_length=1)  # under the raw-data root unless absolute; "{name}": the dataset's name
    format: Literal["csv", "tsv", "parquet", "jsonl"]
    separator: str | None = Field(default=None, min_length=1)  # csv only: default ","
    header: bool = True  # csv/tsv: the first line names the columns
    names: list[str] | None = None  # csv/tsv without a header: the fields of a line, in order
    encoding: str = "utf-8"  # csv/tsv/jsonl
    columns: Columns
    ids: Literal["integer", "string"]  # how user and item ids are typed
    time_unit: Literal["s", "ms", "iso8601"]  # epoch seconds, epoch milliseconds, ISO 8601 (no zone: UTC)
    min_rating: float | None = None  # events rated below are not interactions (dropped, counted); None: all
    rating_range: tuple[float, float] | None = None  # a rating outside is an error in the file
    duplicates: Literal["keep", "drop"] = "keep"  # exact duplicate events: kept, or dropped and counted
    download: Download | None = None
    generated: Literal["synthetic"] | None = None  # written by the ingestion's generator (params:synthetic)

    @model_validator(mode="after")
    def _consistent(self) -> "DatasetDeclaration":
        text = self.format in ("csv", "tsv")
        if self.separator is not None and self.format != "csv":
            raise ValueError(f"separator applies to format csv only (tsv is tab-separated), not {self.format}")
        if not text and (self.names is not None or not self.header):
            raise ValueError(f"header and names apply to csv/tsv only, not {self.format}")
        if text and not self.header and not self.names:
            raise ValueError("a csv/tsv without a header needs names: the fields of a line, in order")
        if text and self.header and self.names:
            raise ValueError("names are for a csv/tsv without a header (header: false); this one has a header")
        if self.names is not None:
            absent = [c for c in self.mapped_columns().values() if c not in self.names]
            if absent:
                raise ValueError(f"columns names {absent}, which are not among names {self.names}")
        if self.min_rating is not None and self.columns.rating is None:
            raise ValueError("min_rating needs a rating column (columns.rating)")
        if self.rating_range is not None and not self.rating_range[0] <= self.rating_range[1]:
            raise ValueError(f"rating_range {list(self.rating_range)} must be [low, high] with low <= high")
        try:
            "".encode(self.encoding)
        except LookupError:
            raise ValueError(f"unknown encoding {self.encoding!r}") from None
        return self

    @property
    def delimiter(self) -> str:
        return "\t" if self.format == "tsv" else (self.separator or ",")

    def mapped_columns(self) -> dict[str, str]:
        """role (user, item, time, rating) -> the file's column name, for the roles mapped."""
        return {role: column for role, column in self.columns.model_dump().items() if column is not None}


class RawDataParams(Block):
    """The ``raw_data`` parameters: the root under which declared paths are found."""

    data_dir: str | None  # None: $DUET_DATA_DIR, else fallback_root
    fallback_root: str
    download: bool  # fetch a declared download (sha256-checked) when the files are absent

    @classmethod
    def from_params(cls, params: dict) -> "RawDataParams":
        return parse_block(cls, params, "raw_data")

    def root(self) -> Path:
        """The raw-data root: ``data_dir``, else ``$DUET_DATA_DIR``, else ``fallback_root``."""
        if self.data_dir:
            return Path(self.data_dir).expanduser()
        return Path(os.environ.get(DATA_DIR_ENV_VAR) or self.fallback_root).expanduser()


def parse_declarations(datasets: Any) -> dict[str, DatasetDeclaration]:
    """The ``datasets`` parameter -> name -> declaration, each block checked."""
    if not isinstance(datasets, dict) or not datasets:
        raise ParameterError(f"parameter datasets = {datasets!r}: must map dataset names to their declarations "
                             "(conf/base/datasets.yml)")
    parsed = {}
    for name, block in datasets.items():
        stem = name[: -len(FAMILY_SUFFIX)] if isinstance(name, str) and name.endswith(FAMILY_SUFFIX) else name
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(stem):
            raise ParameterError(f"dataset name {name!r} in parameter datasets: must match {NAME_PATTERN.pattern} "
                                 f"(it becomes a folder name), optionally ending in {FAMILY_SUFFIX}")
        parsed[name] = parse_block(DatasetDeclaration, block, f"datasets.{name}")
    return parsed


def declaration_key(name: Any, datasets: dict[str, Any]) -> str:
    """The key under ``datasets`` that declares dataset ``name``: its own, or its family's."""
    if isinstance(name, str) and name in datasets and not name.endswith(FAMILY_SUFFIX):
        return name
    if isinstance(name, str) and SYNTHETIC_PATTERN.fullmatch(name) and "synthetic-<N>" in datasets:
        return "synthetic-<N>"
    raise ParameterError(f"parameter dataset = {name!r}: not declared; declared datasets: {sorted(datasets)} "
                         "(declare yours as one block in conf/local/datasets.yml)")


def declaration_of(name: Any, datasets: Any) -> DatasetDeclaration:
    """The declaration of dataset ``name`` (every declaration checked on the way)."""
    return parse_declarations(datasets)[declaration_key(name, datasets)]


def resolve_path(name: str, declaration: DatasetDeclaration, raw_data: RawDataParams) -> Path:
    """Where the log of ``name`` is: an absolute path as declared, else under the raw-data
    root (generated logs: under ``fallback_root``, where the generator writes them)."""
    path = Path(declaration.path.replace("{name}", name)).expanduser()
    if path.is_absolute():
        return path
    root = Path(raw_data.fallback_root) if declaration.generated else raw_data.root()
    return root / path
