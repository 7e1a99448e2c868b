"""Tests for duet_pipeline.data.readers and .events: declared logs -> checked interactions.

Every bad-input case checks that the message is one line naming the file, the line (or the
parquet row group) and the column, and that the first bad row in file order is reported.
"""
from __future__ import annotations

import csv
import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import PARAMETERS, REPO_ROOT

from duet_pipeline.data.declarations import DatasetDeclaration, parse_declarations
from duet_pipeline.data.events import (
    MAX_TIME_MS,
    Events,
    read_events,
    read_interactions,
)
from duet_pipeline.data.readers import RawDataError, part_files
from duet_pipeline.features.samples import build_item_index

SHIPPED_RATINGS = REPO_ROOT / "data" / "01_raw" / "ml-latest-small" / "ratings.csv"
SHIPPED = PARAMETERS["datasets"]  # conf/base/datasets.yml
DECLARED = parse_declarations(SHIPPED)
COLUMNS = ["user_id", "item_id", "rating", "timestamp", "row_order"]
# 2024-03-01T12:30:00Z, computed independently of the module under test.
INSTANT_S = int(datetime(2024, 3, 1, 12, 30, tzinfo=timezone.utc).timestamp())


def declare(**overrides) -> DatasetDeclaration:
    """A csv with a header ``user,item,rating,time``, integer ids, epoch seconds, ratings
    in [1, 5]; keys replaced by ``overrides`` (None removes one)."""
    block = {"path": "x", "format": "csv", "columns": {"user": "user", "item": "item", "time": "time",
                                                       "rating": "rating"},
             "ids": "integer", "time_unit": "s", "rating_range": [1, 5]}
    block.update(overrides)
    return parse_declarations({"test": {k: v for k, v in block.items() if v is not None}})["test"]


JSONL = {"format": "jsonl"}
PARQUET = {"format": "parquet"}
UNRATED = {"columns": {"user": "user", "item": "item", "time": "time"}, "rating_range": None}


def write(path: Path, content: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def csv_file(tmp_path: Path, *rows: str, name: str = "events.csv") -> Path:
    return write(tmp_path / name, "user,item,rating,time\n" + "".join(f"{row}\n" for row in rows))


def parquet_file(path: Path, columns: dict, row_group_size: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path, row_group_size=row_group_size)
    return path


def fails(path: Path, declaration: DatasetDeclaration, *, line: int | None = None, row_group: int | None = None,
          column: str | None = None, match: str | None = None) -> str:
    """Reading ``path`` fails with one line naming ``path`` (the file), the line or row group and the column."""
    with pytest.raises(RawDataError) as exc:
        read_events(path.parent if path.parent.name == "folder" else path, declaration)
    message = str(exc.value)
    assert "\n" not in message, message
    assert message.startswith(f"{path}: "), message
    assert exc.value.path == path
    if line is not None:
        assert re.search(rf"\bline {line}\b", message), message
        assert exc.value.line == line
    if row_group is not None:
        assert re.search(rf"\brow group {row_group}\b", message), message
    if column is not None:
        assert f"'{column}'" in message, message
    if match is not None:
        assert re.search(match, message), message
    return message


def assert_schema(frame: pd.DataFrame, item_dtype=np.int64) -> None:
    assert list(frame.columns) == COLUMNS
    for column, dtype in zip(COLUMNS, [np.int64, item_dtype, np.float64, np.int64, np.int64]):
        assert frame[column].dtype == dtype, column
    np.testing.assert_array_equal(frame["row_order"].to_numpy(), np.arange(len(frame)))
    assert isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0


# --------------------------------------------------------------------------- #
# MovieLens: the shipped declarations against an independent parse
# --------------------------------------------------------------------------- #


def test_shipped_ml_latest_small_matches_a_plain_csv_parse() -> None:
    with SHIPPED_RATINGS.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        assert next(reader) == ["userId", "movieId", "rating", "timestamp"]
        reference = [(int(u), int(i), float(r), int(t) * 1000) for u, i, r, t in reader]
    events = read_events(SHIPPED_RATINGS, DECLARED["ml-latest-small"])
    frame = events.interactions
    assert_schema(frame)
    assert len(frame) == len(reference) == 100_836
    assert frame["user_id"].nunique() == 610 and frame["item_id"].nunique() == 9_724
    expected = pd.DataFrame(reference, columns=["user_id", "item_id", "rating", "timestamp"])
    pd.testing.assert_frame_equal(frame[expected.columns], expected)
    assert frame.iloc[0][["user_id", "item_id", "rating", "timestamp"]].tolist() == [1, 1, 4.0, 964_982_703_000]
    assert [(f.path, f.read, f.kept) for f in events.files] == [(str(SHIPPED_RATINGS), 100_836, 100_836)]


def test_read_interactions_by_name() -> None:
    frame = read_interactions(SHIPPED_RATINGS, "ml-latest-small", SHIPPED)
    assert len(frame) == 100_836 and list(frame.columns) == COLUMNS


@pytest.mark.parametrize(
    ("name", "filename", "content"),
    [
        ("ml-latest-small", "ratings.csv",
         b"userId,movieId,rating,timestamp\r\n7,31,2.5,1260759144\r\n3,1029,0.5,1260759179\r\n7,2,5.0,1\r\n"),
        ("ml-100k", "u.data", b"7\t31\t2\t1260759144\n3\t1029\t1\t1260759179\n7\t2\t5\t1\n"),
        ("ml-1m", "ratings.dat", b"7::31::2::1260759144\n3::1029::1::1260759179\n7::2::5::1"),  # no final newline
    ],
)
def test_movielens_formats(tmp_path: Path, name: str, filename: str, content: bytes) -> None:
    path = write(tmp_path / filename, content)
    frame = read_events(path, DECLARED[name]).interactions
    assert_schema(frame)
    low = name == "ml-latest-small"
    expected = pd.DataFrame({
        "user_id": np.array([7, 3, 7], dtype=np.int64),
        "item_id": np.array([31, 1029, 2], dtype=np.int64),
        "rating": [2.5 if low else 2.0, 0.5 if low else 1.0, 5.0],
        "timestamp": np.array([1_260_759_144_000, 1_260_759_179_000, 1_000], dtype=np.int64),
        "row_order": np.array([0, 1, 2], dtype=np.int64),
    })
    pd.testing.assert_frame_equal(frame, expected)


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = write(tmp_path / "u.data", b"1\t2\t3\t4\n\n5\t6\t4\t8\n\n")
    frame = read_events(path, DECLARED["ml-100k"]).interactions
    assert frame["user_id"].tolist() == [1, 5] and frame["row_order"].tolist() == [0, 1]


def test_blank_lines_count_in_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path / "u.data", b"\n1\t2\t3\t4\n\n\n5\t6\t9\t8\n")
    fails(path, DECLARED["ml-100k"], line=5, column="rating", match="out of range")


def test_multi_character_separator_refuses_the_unit_separator(tmp_path: Path) -> None:
    path = write(tmp_path / "ratings.dat", b"1::2::3::4\n1\x1f::2::3::4\n")
    with pytest.raises(RawDataError, match="U\\+001F") as exc:
        read_events(path, DECLARED["ml-1m"])
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_quoted_csv_fields(tmp_path: Path) -> None:
    path = csv_file(tmp_path, '"1","2","3.5","4"', '2,"a,b",4,5')
    frame = read_events(path, declare(ids="string")).interactions
    assert frame["item_id"].tolist() == ["2", "a,b"] and frame["rating"].tolist() == [3.5, 4.0]


def test_extra_columns_and_column_order_do_not_matter(tmp_path: Path) -> None:
    path = write(tmp_path / "e.csv", "time,junk,rating,item,user\n100,x,2,20,10\n")
    frame = read_events(path, declare()).interactions
    assert frame.iloc[0][["user_id", "item_id", "rating", "timestamp"]].tolist() == [10, 20, 2.0, 100_000]


def test_no_rating_column_gives_nan(tmp_path: Path) -> None:
    path = write(tmp_path / "e.csv", "user,item,time\n1,2,3\n")
    frame = read_events(path, declare(**UNRATED)).interactions
    assert frame["rating"].isna().all() and frame["rating"].dtype == np.float64


# --------------------------------------------------------------------------- #
# The other shipped declarations, on small files
# --------------------------------------------------------------------------- #


def test_amazon_ratings(tmp_path: Path) -> None:
    path = write(tmp_path / "amazon-ratings" / "ratings_Books.csv",
                 "AX1,0001,5.0,1400000000\nAB2,0002,3.0,1400000001\nAX1,0001,5.0,1400000000\n")
    events = read_events(path.parent, DECLARED["amazon-ratings"])
    frame = events.interactions
    assert frame["raw_user_id"].tolist() == ["AX1", "AB2"] and frame["user_id"].tolist() == [2, 1]
    assert frame["item_id"].tolist() == ["0001", "0002"]
    assert events.files[0].dropped["duplicate"] == 1


def test_amazon_reviews_2023(tmp_path: Path) -> None:
    path = write(tmp_path / "Books.jsonl",
                 '{"user_id": "U1", "parent_asin": "B01", "rating": 4.0, "timestamp": 1588687728923, "text": "ok"}\n'
                 '{"user_id": "U0", "parent_asin": "B02", "rating": 1, "timestamp": 1588687728924}\n')
    frame = read_events(path, DECLARED["amazon-reviews-2023"]).interactions
    assert frame["timestamp"].tolist() == [1_588_687_728_923, 1_588_687_728_924]
    assert frame["user_id"].tolist() == [2, 1] and frame["rating"].tolist() == [4.0, 1.0]


def test_clickstream(tmp_path: Path) -> None:
    path = write(tmp_path / "clicks.csv", "visitor_id,product_id,event_time\n"
                 "v-1,SKU-9,2024-03-01T12:30:00Z\nv-1,SKU-9,2024-03-01T12:30:00Z\nv-2,SKU-1,2024-03-01T12:30:01Z\n")
    events = read_events(path, DECLARED["clickstream"])
    frame = events.interactions
    assert frame["timestamp"].tolist() == [INSTANT_S * 1000, INSTANT_S * 1000 + 1000]
    assert frame["rating"].isna().all()
    assert events.files[0].dropped == {"below_min_rating": 0, "duplicate": 1}  # NaN ratings compare equal


def test_synthetic_parquet_folder(tmp_path: Path) -> None:
    shards = tmp_path / "synthetic-1k" / "shards"
    parquet_file(shards / "part-00001.parquet", {"user_id": pa.array([3], pa.int32()), "item_id": [30],
                                                  "timestamp": [300], "rating": pa.array([1.0], pa.float32())})
    parquet_file(shards / "part-00000.parquet", {"user_id": pa.array([1, 2], pa.int32()), "item_id": [10, 20],
                                                  "timestamp": [100, 200], "rating": [5.0, 4.5]})
    frame = read_events(shards, DECLARED["synthetic-<N>"]).interactions
    assert_schema(frame)
    assert frame["user_id"].tolist() == [1, 2, 3] and frame["timestamp"].tolist() == [100_000, 200_000, 300_000]


# --------------------------------------------------------------------------- #
# 1. A row missing a column
# --------------------------------------------------------------------------- #


def test_csv_row_with_too_few_fields(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "1,2,3,4", "1,2,3,4", "1,2,3")
    fails(path, declare(), line=4, column="time", match="expected 4 fields.*got 3")


def test_csv_row_with_two_fields_missing(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "1,2,3,4", "1,2")
    message = fails(path, declare(), line=3, column="rating", match="got 2")
    assert "'time'" in message


def test_ml_1m_row_with_too_few_fields(tmp_path: Path) -> None:
    path = write(tmp_path / "ratings.dat", b"1::2::3::4\n1::2::3::4\n1::2::3\n")
    fails(path, DECLARED["ml-1m"], line=3, column="timestamp", match="expected 4 fields separated by '::', got 3")


@pytest.mark.parametrize(("content", "line"), [(b"1\t2\t3\t4\n1\t2\t3\t4\t5\n", 2),
                                               (b"1\t2\t3\t4\t5\n1\t2\t3\t4\n", 1)])
def test_row_with_too_many_fields(tmp_path: Path, content: bytes, line: int) -> None:
    path = write(tmp_path / "u.data", content)
    fails(path, DECLARED["ml-100k"], line=line, column="timestamp", match="expected 4 fields.*got 5")


def test_jsonl_object_lacking_a_key(tmp_path: Path) -> None:
    path = write(tmp_path / "e.jsonl", '{"user": 1, "item": 2, "rating": 3, "time": 4}\n\n'
                 '{"user": 1, "rating": 3, "time": 4}\n')
    fails(path, declare(**JSONL), line=3, column="item", match="missing")


@pytest.mark.parametrize(("line_text", "match"), [("[1, 2, 3, 4]", "expected a JSON object"),
                                                  ('{"user": 1, "item": 2,', "not a JSON object"),
                                                  ('{"user": 1, "item": [2], "rating": 3, "time": 4}',
                                                   "expected a number or a string")])
def test_jsonl_line_that_is_not_a_flat_object(tmp_path: Path, line_text: str, match: str) -> None:
    path = write(tmp_path / "e.jsonl", '{"user": 1, "item": 2, "rating": 3, "time": 4}\n' + line_text + "\n")
    fails(path, declare(**JSONL), line=2, match=match)


# --------------------------------------------------------------------------- #
# 2. An empty id
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("ids", ["integer", "string"])
def test_csv_empty_id(tmp_path: Path, ids: str) -> None:
    path = csv_file(tmp_path, "1,2,3,4", "1,,3,4")
    fails(path, declare(ids=ids), line=3, column="item", match="empty item id")


def test_csv_blank_user_id(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "1,2,3,4", "  ,2,3,4")
    fails(path, declare(ids="string"), line=3, column="user", match="empty user id")


@pytest.mark.parametrize("ids", ["integer", "string"])
def test_jsonl_empty_id(tmp_path: Path, ids: str) -> None:
    path = write(tmp_path / "e.jsonl", '{"user": "1", "item": "2", "rating": 3, "time": 4}\n'
                 '{"user": "", "item": "2", "rating": 3, "time": 4}\n')
    fails(path, declare(ids=ids, **JSONL), line=2, column="user", match="empty user id")


def test_parquet_null_id(tmp_path: Path) -> None:
    path = parquet_file(tmp_path / "e.parquet", {"user": [1, None, 3], "item": [1, 2, 3], "rating": [1.0] * 3,
                                                 "time": [1, 2, 3]}, row_group_size=2)
    fails(path, declare(**PARQUET), row_group=0, column="user", match="empty user id")


# --------------------------------------------------------------------------- #
# 3. Times that are not times, or out of range
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(("unit", "value", "match"), [
    ("s", "yesterday", "'yesterday' is not a number"),
    ("s", "", "'' is not a number"),
    ("s", str(INSTANT_S * 1000), "out of range: as epoch seconds"),  # milliseconds declared as seconds
    ("ms", str(MAX_TIME_MS), "out of range: as epoch milliseconds"),
    ("s", "-5", "out of range"),
    ("ms", "-1", "out of range"),
    ("s", "inf", "is not a number"),
    ("iso8601", "2024-13-45T00:00:00", "not an ISO 8601 time"),
    ("iso8601", "yesterday", "not an ISO 8601 time"),
    ("iso8601", "1700000000", "not an ISO 8601 time"),
])
def test_bad_time(tmp_path: Path, unit: str, value: str, match: str) -> None:
    good = {"s": str(INSTANT_S), "ms": str(INSTANT_S * 1000), "iso8601": "2024-03-01T12:30:00Z"}[unit]
    path = csv_file(tmp_path, f"1,2,3,{good}", f"1,2,3,{good}", f"1,2,3,{value}")
    fails(path, declare(time_unit=unit), line=4, column="time", match=match)


def test_time_range_edges(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "1,2,3,0", f"1,2,3,{MAX_TIME_MS // 1000 - 1}")
    assert read_events(path, declare()).interactions["timestamp"].tolist() == [0, MAX_TIME_MS - 1000]
    path = csv_file(tmp_path, f"1,2,3,{MAX_TIME_MS // 1000}")
    fails(path, declare(), line=2, column="time", match="out of range")


def test_parquet_time_out_of_range_names_the_row_group(tmp_path: Path) -> None:
    path = parquet_file(tmp_path / "e.parquet", {"user": [1, 2, 3, 4], "item": [1, 2, 3, 4], "rating": [1.0] * 4,
                                                 "time": [1, 2, 3, INSTANT_S * 1000]}, row_group_size=2)
    fails(path, declare(**PARQUET), row_group=1, column="time", match="row 1: .*out of range")


def test_jsonl_time_out_of_range(tmp_path: Path) -> None:
    path = write(tmp_path / "e.jsonl", f'{{"user": 1, "item": 2, "rating": 3, "time": {INSTANT_S * 1000}}}\n')
    fails(path, declare(**JSONL), line=1, column="time", match="as epoch seconds")


# --------------------------------------------------------------------------- #
# 4. Ratings
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(("value", "match"), [("good", "'good' is not a number"), ("nan", "is not a number"),
                                              ("", "is not a number"), ("5.5", r"out of range.*\[1, 5\]"),
                                              ("0", r"out of range.*\[1, 5\]"), ("-1", "out of range")])
def test_bad_rating(tmp_path: Path, value: str, match: str) -> None:
    path = csv_file(tmp_path, "1,2,3,4", f"1,2,{value},4", "1,2,3,4")
    fails(path, declare(), line=3, column="rating", match=match)


def test_rating_range_is_inclusive_and_optional(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "1,2,1,4", "1,2,5.0,4", "1,2,+3e0,4")
    assert read_events(path, declare()).interactions["rating"].tolist() == [1.0, 5.0, 3.0]
    path = csv_file(tmp_path, "1,2,-7.5,4", "1,2,100,4")
    assert read_events(path, declare(rating_range=None)).interactions["rating"].tolist() == [-7.5, 100.0]


def test_shipped_ml_latest_small_range(tmp_path: Path) -> None:
    path = write(tmp_path / "ratings.csv", b"userId,movieId,rating,timestamp\r\n1,2,3.0,4\r\n1,2,5.5,4\r\n")
    fails(path, DECLARED["ml-latest-small"], line=3, column="rating", match=r"out of range.*\[0.5, 5\]")


def test_jsonl_non_numeric_rating(tmp_path: Path) -> None:
    path = write(tmp_path / "e.jsonl", '{"user": 1, "item": 2, "rating": "four", "time": 4}\n')
    fails(path, declare(**JSONL), line=1, column="rating", match="'four' is not a number")


def test_jsonl_null_and_boolean_are_not_ratings(tmp_path: Path) -> None:
    path = write(tmp_path / "e.jsonl", '{"user": 1, "item": 2, "rating": 3, "time": 4}\n'
                 '{"user": 1, "item": 2, "rating": null, "time": 4}\n')
    fails(path, declare(**JSONL), line=2, column="rating", match="'null' is not a number")
    write(tmp_path / "e.jsonl", '{"user": 1, "item": 2, "rating": true, "time": 4}\n')
    fails(tmp_path / "e.jsonl", declare(**JSONL), line=1, column="rating", match="'true' is not a number")


def test_parquet_rating_out_of_range(tmp_path: Path) -> None:
    path = parquet_file(tmp_path / "e.parquet", {"user": [1, 2, 3], "item": [1, 2, 3], "rating": [1.0, 2.0, 9.0],
                                                 "time": [1, 2, 3]}, row_group_size=2)
    fails(path, declare(**PARQUET), row_group=1, column="rating", match=r"row 0: .*out of range")


# --------------------------------------------------------------------------- #
# 5. Empty files
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(("overrides", "name", "content"), [
    ({}, "e.csv", b""),
    ({}, "e.csv", b"\n  \r\n\n"),
    ({"format": "tsv", "header": False, "names": ["user", "item", "rating", "time"]}, "e.tsv", b""),
    (JSONL, "e.jsonl", b""),
    (JSONL, "e.jsonl", b"\n\n"),
])
def test_empty_file(tmp_path: Path, overrides: dict, name: str, content: bytes) -> None:
    fails(write(tmp_path / name, content), declare(**overrides), line=1, match="the file is empty")


@pytest.mark.parametrize("content", [b"user,item,rating,time\n", b"user,item,rating,time", b"user,item,rating,time\r\n\r\n"])
def test_csv_with_only_its_header(tmp_path: Path, content: bytes) -> None:
    fails(write(tmp_path / "e.csv", content), declare(), line=2, match="only its header")


def test_parquet_without_rows(tmp_path: Path) -> None:
    empty = pa.array([], pa.int64())
    path = parquet_file(tmp_path / "e.parquet", {"user": empty, "item": empty, "rating": pa.array([], pa.float64()),
                                                 "time": empty})
    fails(path, declare(**PARQUET), row_group=0, match="no rows")


def test_not_a_parquet_file(tmp_path: Path) -> None:
    fails(write(tmp_path / "e.parquet", b"user,item\n1,2\n"), declare(**PARQUET), match="not a readable parquet")


# --------------------------------------------------------------------------- #
# 6. Encodings
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(("overrides", "name", "rows"), [
    ({}, "e.csv", [b"user,item,rating,time", b"ann,2,3,4", b"jos\xe9,2,3,4", b"bob,2,3,4"]),
    (JSONL, "e.jsonl", [b'{"user": "ann", "item": 2, "rating": 3, "time": 4}', b"",
                        b'{"user": "jos\xe9", "item": 2, "rating": 3, "time": 4}']),
])
def test_byte_invalid_in_the_declared_encoding(tmp_path: Path, overrides: dict, name: str, rows: list) -> None:
    path = write(tmp_path / name, b"\n".join(rows) + b"\n")
    fails(path, declare(ids="string", **overrides), line=3, match=r"byte b'\\xe9'.*not valid utf-8")


def test_invalid_byte_on_the_header_line(tmp_path: Path) -> None:
    path = write(tmp_path / "e.csv", b"us\xe9r,item,rating,time\n1,2,3,4\n")
    fails(path, declare(), line=1, match="not valid utf-8")


@pytest.mark.parametrize("overrides", [{}, JSONL])
def test_latin_1_declared_file_reads(tmp_path: Path, overrides: dict) -> None:
    if overrides:
        content = b'{"user": "jos\xe9", "item": "caf\xe9", "rating": 3, "time": 4}\n'
    else:
        content = b"user,item,rating,time\njos\xe9,caf\xe9,3,4\n"
    path = write(tmp_path / ("e.jsonl" if overrides else "e.csv"), content)
    frame = read_events(path, declare(ids="string", encoding="latin-1", **overrides)).interactions
    assert frame["raw_user_id"].tolist() == ["jos\u00e9"] and frame["item_id"].tolist() == ["caf\u00e9"]


def test_utf8_byte_order_mark_is_skipped(tmp_path: Path) -> None:
    path = write(tmp_path / "e.csv", b"\xef\xbb\xbfuser,item,rating,time\n1,2,3,4\n")
    assert read_events(path, declare()).interactions["user_id"].tolist() == [1]


# --------------------------------------------------------------------------- #
# 7. A mapped column the file lacks
# --------------------------------------------------------------------------- #


def test_csv_header_lacks_a_mapped_column(tmp_path: Path) -> None:
    path = write(tmp_path / "e.csv", "user,item,score,time\n1,2,3,4\n")
    fails(path, declare(), line=1, column="rating", match=r"columns\.rating.*not in the header")


def test_csv_without_a_header_where_one_is_declared(tmp_path: Path) -> None:
    path = write(tmp_path / "e.csv", "1,2,3.0,4\n")
    fails(path, declare(), line=1, column="user", match="not in the header")


def test_parquet_schema_lacks_a_mapped_column(tmp_path: Path) -> None:
    # A file-level problem: no row group to name; the file and the column are named.
    path = parquet_file(tmp_path / "e.parquet", {"user": [1], "item": [2], "rating": [3.0], "when": [4]})
    fails(path, declare(**PARQUET), column="time", match=r"columns\.time.*not in the file.*'when'")


def test_jsonl_lacks_a_mapped_column(tmp_path: Path) -> None:
    path = write(tmp_path / "e.jsonl", '{"user": 1, "item": 2, "rating": 3, "when": 4}\n' * 2)
    fails(path, declare(**JSONL), line=1, column="time", match=r"columns\.time.*missing.*'when'")


# --------------------------------------------------------------------------- #
# 8. The first bad row in file order wins
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(("rows", "line", "column"), [
    # a value error before a missing field (Arrow skips the latter while parsing)
    (["1,2,3,4", "1,2,3,4", "1,2,7,4", "1,2,3,4", "1,2,3"], 4, "rating"),
    # a missing field before a value error
    (["1,2,3,4", "1,2,3", "1,2,7,4"], 3, "time"),
    # a missing field before a too-long row
    (["1,2,3,4", "1,2,3", "1,2,3,4,5"], 3, "time"),
    # two kinds of value errors, the user's later in the row order but earlier in the file
    (["1,2,3,4", "x,2,3,4", "1,2,3,soon"], 3, "user"),
    (["1,2,3,soon", "x,2,3,4"], 2, "time"),
    # bad item on line 2 and a bad rating on line 3
    (["1,,3,4", "1,2,9,4"], 2, "item"),
])
def test_first_bad_row_wins_in_csv(tmp_path: Path, rows: list[str], line: int, column: str) -> None:
    fails(csv_file(tmp_path, *rows), declare(), line=line, column=column)


def test_first_bad_row_wins_with_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "ratings.dat", b"1::2::3::4\n\n1::2::3::4\n\n1::2::7::4\n1::2::3::4\n1::2::3::4::5\n")
    fails(path, DECLARED["ml-1m"], line=5, column="rating", match="out of range")


@pytest.mark.parametrize(("lines", "line", "column"), [
    (['{"user": 1, "item": "", "rating": 3, "time": 4}', '{"user": 1, "rating": 3, "time": 4}'], 1, "item"),
    (['{"user": 1, "item": 2, "rating": 3, "time": 4}', '{"user": 1, "rating": 3, "time": 4}',
      '{"user": 1, "item": 2, "rating": 9, "time": 4}'], 2, "item"),
    (['{"user": 1, "item": 2, "rating": 9, "time": 4}', "not json"], 1, "rating"),
])
def test_first_bad_row_wins_in_jsonl(tmp_path: Path, lines: list[str], line: int, column: str) -> None:
    fails(write(tmp_path / "e.jsonl", "\n".join(lines) + "\n"), declare(**JSONL), line=line, column=column)


@pytest.mark.parametrize(("rows", "line", "match"), [
    ([b"1,2,3,4", b"1,2,9,4", b"1,2,3,4", b"1,\xe9,3,4"], 3, "out of range"),
    ([b"1,2,3,4", b"1,\xe9,3,4", b"1,2,9,4"], 3, "not valid utf-8"),
    ([b"1,2,3,4", b"1,2,3", b"1,\xe9,3,4"], 3, "got 3"),
])
def test_first_bad_row_wins_over_an_invalid_byte(tmp_path: Path, rows: list[bytes], line: int, match: str) -> None:
    path = write(tmp_path / "e.csv", b"user,item,rating,time\n" + b"\n".join(rows) + b"\n")
    fails(path, declare(), line=line, match=match)


def test_first_bad_row_wins_in_parquet(tmp_path: Path) -> None:
    path = parquet_file(tmp_path / "e.parquet", {"user": [1, 2, 3, 4], "item": [1, 2, 3, 4],
                                                 "rating": [1.0, 2.0, 3.0, 99.0], "time": [1, -2, 3, 4]},
                        row_group_size=2)
    fails(path, declare(**PARQUET), row_group=0, column="time", match="row 1: ")


def test_first_file_wins_in_a_folder(tmp_path: Path) -> None:
    csv_file(tmp_path / "folder", "1,2,3,4", "1,2,3,x", name="b.csv")
    first = csv_file(tmp_path / "folder", "1,2,3,4", "1,2,3,4", "1,2,3,4", "y,2,3,4", name="a.csv")
    fails(first, declare(), line=5, column="user")


# --------------------------------------------------------------------------- #
# 9. ids
# --------------------------------------------------------------------------- #


def test_string_ids_keep_leading_zeros(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "007,007,3,4", "7,7,3,5", "007,7,3,6")
    frame = read_events(path, declare(ids="string")).interactions
    assert frame["item_id"].tolist() == ["007", "7", "7"]
    assert frame["raw_user_id"].tolist() == ["007", "7", "007"]
    assert frame["user_id"].tolist() == [1, 2, 1]
    assert pd.api.types.is_string_dtype(frame["item_id"]) and pd.api.types.is_string_dtype(frame["raw_user_id"])
    assert build_item_index(frame)["raw_item_id"].tolist() == ["007", "7"]


def test_integer_ids_read_leading_zeros_as_numbers(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "007,007,3,4", "7,7,3,5", " 8 ,09,3,6")
    frame = read_events(path, declare()).interactions
    assert frame["user_id"].tolist() == [7, 7, 8] and frame["item_id"].tolist() == [7, 7, 9]


@pytest.mark.parametrize(("value", "column"), [("abc", "user"), ("-1", "user"), ("2.5", "user"),
                                               ("1e3", "user"), ("99999999999999999999", "user"),
                                               ("+9", "user"), ("1 2", "user")])
def test_integer_ids_reject_non_integers(tmp_path: Path, value: str, column: str) -> None:
    path = csv_file(tmp_path, "1,2,3,4", f"{value},2,3,4")
    fails(path, declare(), line=3, column=column, match=f"'{re.escape(value)}' is not a non-negative integer")


def test_ml_100k_non_numeric_ids(tmp_path: Path) -> None:
    path = write(tmp_path / "u.data", b"1\t2\t3\t4\n1\tx7\t3\t4\n")
    fails(path, DECLARED["ml-100k"], line=2, column="item", match="'x7' is not a non-negative integer")


def test_jsonl_integer_ids_reject_text(tmp_path: Path) -> None:
    path = write(tmp_path / "e.jsonl", '{"user": 1, "item": 2, "rating": 3, "time": 4}\n'
                 '{"user": "abc", "item": 2, "rating": 3, "time": 4}\n')
    fails(path, declare(**JSONL), line=2, column="user", match="'abc'")


def test_parquet_ids(tmp_path: Path) -> None:
    path = parquet_file(tmp_path / "e.parquet", {"user": [5, -1], "item": [1, 2], "rating": [1.0, 2.0],
                                                 "time": [1, 2]})
    fails(path, declare(**PARQUET), row_group=0, column="user", match="negative user id -1")
    path = parquet_file(tmp_path / "e.parquet", {"user": [5, 12], "item": ["a", "b"], "rating": [1.0, 2.0],
                                                 "time": [1, 2]})
    frame = read_events(path, declare(ids="string", **PARQUET)).interactions
    assert frame["raw_user_id"].tolist() == ["5", "12"] and frame["user_id"].tolist() == [2, 1]
    fails(path, declare(**PARQUET), row_group=0, column="item", match="'a' is not a non-negative integer")
    path = parquet_file(tmp_path / "e.parquet", {"user": [5, 12], "item": [1.0, 2.0], "rating": [1.0, 2.0],
                                                 "time": [1, 2]})
    fails(path, declare(**PARQUET), row_group=0, column="item", match="holds double, not ids")


def test_build_item_index() -> None:
    interactions = pd.DataFrame({"user_id": [1, 1, 2, 3], "item_id": [50, 7, 50, 1000]})
    index = build_item_index(interactions)
    assert index["raw_item_id"].tolist() == [7, 50, 1000]
    assert index["item_index"].tolist() == [1, 2, 3]
    assert index["raw_item_id"].dtype == np.int64 and index["item_index"].dtype == np.int64


def test_build_item_index_empty() -> None:
    index = build_item_index(pd.DataFrame({"item_id": pd.Series([], dtype=np.int64)}))
    assert len(index) == 0 and list(index.columns) == ["raw_item_id", "item_index"]


# --------------------------------------------------------------------------- #
# 10. Time units
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(("unit", "values"), [
    ("s", [str(INSTANT_S), f"{INSTANT_S}.25", f" {INSTANT_S} "]),
    ("ms", [str(INSTANT_S * 1000), str(INSTANT_S * 1000 + 250), f"{INSTANT_S * 1000}.0"]),
    ("iso8601", ["2024-03-01T12:30:00Z", "2024-03-01T14:30:00.250+02:00", "2024-03-01T12:30:00"]),
    ("iso8601", ["2024-03-01T07:30:00-05:00", "2024-03-01 12:30:00.250Z", "2024-03-01T12:30:00.000+00:00"]),
])
def test_time_units_agree(tmp_path: Path, unit: str, values: list[str]) -> None:
    path = csv_file(tmp_path, *(f"1,{i},3,{value}" for i, value in enumerate(values)))
    stamps = read_events(path, declare(time_unit=unit)).interactions["timestamp"]
    assert stamps.dtype == np.int64
    assert stamps.tolist() == [INSTANT_S * 1000, INSTANT_S * 1000 + 250, INSTANT_S * 1000]


def test_iso_times_in_jsonl(tmp_path: Path) -> None:
    path = write(tmp_path / "e.jsonl", '{"user": 1, "item": 2, "rating": 3, "time": "2024-03-01T13:30:00+01:00"}\n')
    assert read_events(path, declare(time_unit="iso8601", **JSONL)).interactions["timestamp"].tolist() == \
        [INSTANT_S * 1000]


def test_parquet_timestamp_columns(tmp_path: Path) -> None:
    naive = pa.array([datetime(2024, 3, 1, 12, 30)], pa.timestamp("us"))
    zoned = pa.array([datetime(2024, 3, 1, 12, 30, tzinfo=timezone.utc)], pa.timestamp("ms", tz="Europe/Berlin"))
    for column in (naive, zoned):
        path = parquet_file(tmp_path / "e.parquet", {"user": [1], "item": [2], "rating": [3.0], "time": column})
        assert read_events(path, declare(time_unit="iso8601", **PARQUET)).interactions["timestamp"].tolist() == \
            [INSTANT_S * 1000]
    for unit, value in (("s", INSTANT_S), ("ms", INSTANT_S * 1000), ("s", float(INSTANT_S))):
        path = parquet_file(tmp_path / "e.parquet", {"user": [1], "item": [2], "rating": [3.0], "time": [value]})
        assert read_events(path, declare(time_unit=unit, **PARQUET)).interactions["timestamp"].tolist() == \
            [INSTANT_S * 1000]


# --------------------------------------------------------------------------- #
# 11. Folders of parts, duplicates and min_rating, counted per file
# --------------------------------------------------------------------------- #


def _two_parts(tmp_path: Path) -> tuple[Path, Path, Path]:
    folder = tmp_path / "log"
    # Written in the opposite order: parts are read in name order, not creation order.
    second = csv_file(folder, "1,10,4,100", "1,10,5,100", "2,12,1,103", "2,12,1,103", "3,13,3,104",
                      name="part-1.csv")
    first = csv_file(folder, "1,10,4,100", "1,10,4,100", "1,11,2,101", "2,10,5,102", name="part-0.csv")
    write(folder / "README.md", "not a part\n")
    write(folder / "_SUCCESS", "")
    write(folder / ".part-2.csv.crc", "x")
    return folder, first, second


def test_folder_parts_are_read_in_name_order(tmp_path: Path) -> None:
    folder, first, second = _two_parts(tmp_path)
    assert part_files(folder, declare()) == [first, second]
    events = read_events(folder, declare())
    frame = events.interactions
    assert_schema(frame)
    assert frame["user_id"].tolist() == [1, 1, 1, 2, 1, 1, 2, 2, 3]
    assert frame["timestamp"].tolist() == [t * 1000 for t in (100, 100, 101, 102, 100, 100, 103, 103, 104)]
    assert frame["row_order"].tolist() == list(range(9))  # continuing across parts
    assert [(f.path, f.read, f.kept) for f in events.files] == [(str(first), 4, 4), (str(second), 5, 5)]


def test_duplicates_dropped_and_below_min_rating_counted_per_file(tmp_path: Path) -> None:
    folder, first, second = _two_parts(tmp_path)
    events = read_events(folder, declare(duplicates="drop", min_rating=3))
    assert [f.path for f in events.files] == [str(first), str(second)]
    assert events.files[0].dropped == {"below_min_rating": 1, "duplicate": 1}
    assert events.files[1].dropped == {"below_min_rating": 2, "duplicate": 1}  # duplicate of a part-0 event
    assert [(f.read, f.kept) for f in events.files] == [(4, 2), (5, 2)]
    for f in events.files:
        assert f.read == f.kept + sum(f.dropped.values())
    frame = events.interactions
    assert sum(f.kept for f in events.files) == len(frame)
    assert frame[["user_id", "item_id", "rating", "timestamp"]].values.tolist() == [
        [1, 10, 4.0, 100_000], [2, 10, 5.0, 102_000],  # part-0's kept events, then part-1's
        [1, 10, 5.0, 100_000], [3, 13, 3.0, 104_000]]
    assert frame["row_order"].tolist() == [0, 1, 2, 3]


def test_duplicates_kept_or_dropped(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "1,2,3,4", "1,2,3,4", "1,2,3,4", "1,2,4,4", "1,3,3,4")
    kept = read_events(path, declare(duplicates="keep"))
    assert len(kept.interactions) == 5 and kept.files[0].dropped["duplicate"] == 0
    dropped = read_events(path, declare(duplicates="drop"))
    assert dropped.interactions["rating"].tolist() == [3.0, 4.0, 3.0]
    assert dropped.interactions["item_id"].tolist() == [2, 2, 3]
    assert (dropped.files[0].read, dropped.files[0].kept, dropped.files[0].dropped["duplicate"]) == (5, 3, 2)


def test_min_rating_alone(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "1,2,3.5,4", "1,2,3.49,4", "1,2,5,4")
    events = read_events(path, declare(min_rating=3.5))
    assert events.interactions["rating"].tolist() == [3.5, 5.0]
    assert events.files[0].dropped == {"below_min_rating": 1, "duplicate": 0}


def test_empty_folder_and_missing_path(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    write(tmp_path / "empty" / "notes.txt.bak", "x")
    with pytest.raises(RawDataError, match="holds no csv parts") as exc:
        read_events(tmp_path / "empty", declare())
    assert str(tmp_path / "empty") in str(exc.value)
    with pytest.raises(RawDataError, match="no such file or folder") as exc:
        read_events(tmp_path / "nothere" / "u.data", DECLARED["ml-100k"])
    assert str(tmp_path / "nothere" / "u.data") in str(exc.value)


# --------------------------------------------------------------------------- #
# 13. String-keyed users
# --------------------------------------------------------------------------- #


def test_string_users_numbered_in_sorted_raw_order(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "bob,i1,3,1", "alice,i2,3,2", "carol,i1,3,3", "alice,i3,3,4", "10,i1,3,5", "9,i1,3,6",
                    "zed,i1,1,7")
    events = read_events(path, declare(ids="string", min_rating=2))
    frame = events.interactions
    assert list(frame.columns) == ["user_id", "raw_user_id", *COLUMNS[1:]]
    raw = frame["raw_user_id"].tolist()
    assert raw == ["bob", "alice", "carol", "alice", "10", "9"]  # zed's one event is below min_rating
    order = {name: number for number, name in enumerate(sorted(set(raw)), start=1)}
    assert frame["user_id"].tolist() == [order[name] for name in raw]
    assert sorted(set(frame["user_id"])) == list(range(1, 6))  # 1..U, no gap for the dropped user
    assert order == {"10": 1, "9": 2, "alice": 3, "bob": 4, "carol": 5}
    assert frame["user_id"].dtype == np.int64 and frame["row_order"].tolist() == list(range(6))


def test_string_users_numbered_over_all_parts(tmp_path: Path) -> None:
    csv_file(tmp_path / "log", "b,x,3,1", name="1.csv")
    csv_file(tmp_path / "log", "c,x,3,1", "a,x,3,2", name="0.csv")
    frame = read_events(tmp_path / "log", declare(ids="string")).interactions
    assert frame["raw_user_id"].tolist() == ["c", "a", "b"] and frame["user_id"].tolist() == [3, 1, 2]


def test_events_dataclass() -> None:
    assert {"interactions", "files"} <= set(Events.__dataclass_fields__)
