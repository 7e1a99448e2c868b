"""One reader per format: a declared file -> its mapped columns, untouched, with a way to
name where each row came from.

The readers check the file's shape (encoding, empty files, the header naming the mapped
columns, every line holding every field); the values are checked by :mod:`.events`, which
names a bad row through :attr:`RawTable.where`. csv/tsv and JSON lines give text columns;
parquet gives its own types, so a typed column is never turned into text and back.
"""
from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from .declarations import DatasetDeclaration

_UTF8_BOM = b"\xef\xbb\xbf"
# Where a line ends, as Arrow's csv reader sees it (str.splitlines also splits at \x1c-\x1e, \x85, ...).
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# Stands in for a multi-character separator (ml-1m's "::"), which Arrow's reader cannot
# split on; a file holding this byte already is refused rather than mis-split.
_UNIT_SEPARATOR = "\x1f"
# The file name endings a folder of parts is read for, by format.
PART_SUFFIXES = {"csv": (".csv", ".txt", ".dat", ".data"), "tsv": (".tsv", ".txt", ".data"),
                 "parquet": (".parquet",), "jsonl": (".jsonl", ".json", ".ndjson")}


class RawDataError(ValueError):
    """A problem with raw input that the user has to fix: the message names the file and,
    for a problem inside it, the line (or parquet row group) and the column."""

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.path = Path(path) if path is not None else None
        self.line = line


@dataclass
class RawTable:
    """A file's mapped columns (role -> Arrow array, one row per event) and where row i is."""

    path: Path
    columns: dict[str, pa.Array]
    where: Callable[[int], str]  # row -> "line 17" / "row group 2, row 5"
    line_of: Callable[[int], int | None]  # row -> its line, where the format has lines
    # A problem with the file's shape just after the last row (a missing field, a line that is
    # no JSON object, a byte invalid in the encoding): the rows before it are still checked
    # (:func:`.events.typed_events`), so the first bad row in file order is the one reported.
    pending: RawDataError | None = None

    @property
    def rows(self) -> int:
        return len(next(iter(self.columns.values())))


def part_files(path: Path, declaration: DatasetDeclaration) -> list[Path]:
    """The file itself, or a folder's parts of the declared format in name order."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise RawDataError(f"{path}: no such file or folder (the declared path of the dataset)", path=path)
    parts = sorted(p for p in path.rglob("*") if p.is_file() and p.name.lower().endswith(PART_SUFFIXES[declaration.format])
                   and not p.name.startswith((".", "_")))
    if not parts:
        raise RawDataError(f"{path}: the folder holds no {declaration.format} parts "
                           f"(files ending in {', '.join(PART_SUFFIXES[declaration.format])})", path=path)
    return parts


def read_table(path: Path, declaration: DatasetDeclaration) -> RawTable:
    """The mapped columns of one file in the declared format."""
    readers = {"csv": _read_delimited, "tsv": _read_delimited, "parquet": _read_parquet, "jsonl": _read_jsonl}
    return readers[declaration.format](path, declaration)


def _decoded(path: Path, declaration: DatasetDeclaration) -> tuple[str, RawDataError | None]:
    """The file's text in its declared encoding; where a byte is not valid: the whole lines
    before its line, and the error naming that line (for the caller to raise once the lines
    before are checked)."""
    raw = path.read_bytes()
    if declaration.encoding.lower().replace("_", "-") in ("utf-8", "utf8") and raw.startswith(_UTF8_BOM):
        raw = raw[len(_UTF8_BOM):]  # e.g. re-saved by a spreadsheet program
    try:
        return codecs.decode(raw, declaration.encoding), None
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        invalid = RawDataError(f"{path}: line {line}: byte {raw[error.start:error.start + 1]!r} at offset "
                               f"{error.start} is not valid {declaration.encoding} ({error.reason}); re-encode the "
                               "file or declare its encoding", path=path, line=line)
        try:
            before = codecs.decode(raw[: error.start], declaration.encoding)
        except UnicodeDecodeError:
            raise invalid from None
        return before[: before.rfind("\n") + 1], invalid


def _line_numbers(text: str) -> Callable[[int], int]:
    """Row (0-based, blank lines skipped, the header not a row) -> 1-based line in the file.
    Computed only for a row that is reported: a bad file's error, not every good file's cost."""
    def line_of(row: int) -> int:
        seen = -1
        for number, line in enumerate(_LINE_BREAK.split(text), start=1):
            if line.strip():
                seen += 1
                if seen == row:
                    return number
        return number + 1
    return line_of


def _read_delimited(path: Path, declaration: DatasetDeclaration) -> RawTable:
    text, pending = _decoded(path, declaration)
    data_start = 1 if declaration.header else 0
    lines = _line_numbers(text)
    if not text.strip():
        raise pending or RawDataError(f"{path}: line 1: the file is empty: no events", path=path, line=1)
    if not text.endswith(("\n", "\r")):
        text += "\n"  # Arrow cannot read a header without a line break after it
    delimiter = declaration.delimiter
    if len(delimiter) > 1:
        if _UNIT_SEPARATOR in text:
            raise RawDataError(f"{path}: holds the control character U+001F, which the multi-character separator "
                               f"{delimiter!r} is read through; remove it", path=path)
        text = text.replace(delimiter, _UNIT_SEPARATOR)
        delimiter = _UNIT_SEPARATOR
    mapped = declaration.mapped_columns()
    header = _header(text, delimiter) if declaration.header else list(declaration.names)
    absent = {role: column for role, column in mapped.items() if column not in header}
    if absent:
        role, column = next(iter(absent.items()))
        raise RawDataError(f"{path}: line 1: column {column!r} (columns.{role} of the declaration) is not in the "
                           f"header, which has {header}", path=path, line=1)
    bad_rows: list[tuple[int, int, int]] = []

    def invalid_row(row: pa_csv.InvalidRow) -> str:
        bad_rows.append((row.number, row.expected_columns, row.actual_columns))
        return "skip"

    wanted = list(dict.fromkeys(mapped.values()))
    try:
        table = pa_csv.read_csv(
            io.BytesIO(text.encode("utf-8")),
            read_options=pa_csv.ReadOptions(column_names=None if declaration.header else header, use_threads=False,
                                            block_size=1 << 24),
            parse_options=pa_csv.ParseOptions(delimiter=delimiter, invalid_row_handler=invalid_row,
                                              ignore_empty_lines=True),
            # Text, as written: ids stay ids ("007" is not 7); events.py checks the values.
            convert_options=pa_csv.ConvertOptions(column_types={c: pa.string() for c in wanted}, include_columns=wanted,
                                                  strings_can_be_null=False, null_values=[]),
        )
    except pa.ArrowInvalid as error:
        raise RawDataError(f"{path}: cannot be read as {declaration.format} ({error})", path=path) from None
    if bad_rows:
        number, expected, actual = bad_rows[0]  # Arrow numbers rows from 1, the header included
        line = lines(number - 1)
        what = (f"column {header[actual]!r} is missing" if actual == expected - 1 else
                f"columns {header[actual:]} are missing" if actual < expected else
                f"{actual - expected} field(s) more than the columns {header}")
        pending = RawDataError(f"{path}: line {line}: expected {expected} fields separated by "
                               f"{declaration.delimiter!r}, got {actual}: {what}", path=path, line=line)
        table = table.slice(0, number - 1 - data_start)  # the rows before it, all good in shape
        if table.num_rows == 0:
            raise pending
    if table.num_rows == 0:
        raise pending or RawDataError(f"{path}: line {data_start + 1}: the file holds only its header: no events",
                                      path=path, line=data_start + 1)
    columns = {role: table.column(column).combine_chunks() for role, column in mapped.items()}
    return RawTable(path, columns, lambda row: f"line {lines(row + data_start)}", lambda row: lines(row + data_start),
                    pending)


def _header(text: str, delimiter: str) -> list[str]:
    """The column names on the first non-blank line (quotes as a csv writes them)."""
    first = next(line for line in _LINE_BREAK.split(text) if line.strip())
    return next(csv.reader([first], delimiter=delimiter))


def _read_parquet(path: Path, declaration: DatasetDeclaration) -> RawTable:
    try:
        file = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise RawDataError(f"{path}: not a readable parquet file ({error})", path=path) from None
    schema = file.schema_arrow.names
    absent = {role: column for role, column in declaration.mapped_columns().items() if column not in schema}
    if absent:
        role, column = next(iter(absent.items()))
        raise RawDataError(f"{path}: column {column!r} (columns.{role} of the declaration) is not in the file, "
                           f"which has {schema}", path=path)
    mapped = declaration.mapped_columns()
    table = file.read(columns=list(dict.fromkeys(mapped.values())))
    if table.num_rows == 0:
        raise RawDataError(f"{path}: row group 0: the file holds no rows: no events", path=path)
    groups = [file.metadata.row_group(g).num_rows for g in range(file.num_row_groups)]

    def where(row: int) -> str:
        for group, size in enumerate(groups):
            if row < size:
                return f"row group {group}, row {row}"
            row -= size
        return f"row {row}"

    columns = {role: table.column(column).combine_chunks() for role, column in mapped.items()}
    return RawTable(path, columns, where, lambda row: None)


def _read_jsonl(path: Path, declaration: DatasetDeclaration) -> RawTable:
    text, pending = _decoded(path, declaration)
    mapped = declaration.mapped_columns()
    values: dict[str, list] = {role: [] for role in mapped}
    line_numbers: list[int] = []
    for number, line in enumerate(_LINE_BREAK.split(text), start=1):
        if not line.strip():
            continue
        try:
            record = _json_record(path, number, line, mapped)
        except RawDataError as error:  # raised once the lines before are checked
            pending = error
            break
        for role, value in record.items():
            values[role].append(value)
        line_numbers.append(number)
    if not line_numbers:
        raise pending or RawDataError(f"{path}: line 1: the file is empty: no events", path=path, line=1)
    columns = {role: pa.array(column, type=pa.string()) for role, column in values.items()}
    return RawTable(path, columns, lambda row: f"line {line_numbers[row]}", lambda row: line_numbers[row], pending)


def _json_record(path: Path, number: int, line: str, mapped: dict[str, str]) -> dict[str, str]:
    """One JSON line's mapped values (role -> text), or the error that names the line."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise RawDataError(f"{path}: line {number}: not a JSON object ({error.msg} at column {error.colno})",
                           path=path, line=number) from None
    if not isinstance(record, dict):
        raise RawDataError(f"{path}: line {number}: expected a JSON object, got {type(record).__name__}",
                           path=path, line=number)
    values = {}
    for role, column in mapped.items():
        if column not in record:
            raise RawDataError(f"{path}: line {number}: column {column!r} (columns.{role} of the declaration) "
                               f"is missing; the object has {sorted(record)[:12]}", path=path, line=number)
        value = record[column]
        if isinstance(value, (dict, list)):
            raise RawDataError(f"{path}: line {number}: column {column!r}: expected a number or a string, got "
                               f"{json.dumps(value)[:60]}", path=path, line=number)
        # Text, as a csv gives it: one checker for both; JSON's true/false/null stay recognisable.
        values[role] = json.dumps(value) if isinstance(value, bool) or value is None else str(value)
    return values
