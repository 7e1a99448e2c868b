"""Tests for duet_pipeline.data.declarations: the datasets.yml blocks, checked on entry."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from duet_pipeline.data.declarations import (
    DatasetDeclaration,
    RawDataParams,
    declaration_key,
    declaration_of,
    parse_declarations,
    resolve_path,
)
from duet_pipeline.parameters import ParameterError
from duet_pipeline.project import load_parameters

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED = yaml.safe_load((REPO_ROOT / "conf" / "base" / "datasets.yml").read_text())["datasets"]
MOVIELENS = ("ml-latest-small", "ml-100k", "ml-1m")


def _block(**overrides) -> dict:
    """A valid csv declaration, some keys replaced (None: the key removed)."""
    block = {"path": "mine/events.csv", "format": "csv",
             "columns": {"user": "u", "item": "i", "time": "t", "rating": "r"},
             "ids": "integer", "time_unit": "s"}
    block.update(overrides)
    return {key: value for key, value in block.items() if value is not None}


def _fails(block: dict, *fragments: str, name: str = "mine") -> str:
    with pytest.raises(ParameterError) as exc:
        parse_declarations({name: block})
    message = str(exc.value)
    assert "\n" not in message, message
    assert f"datasets.{name}" in message, message
    for fragment in fragments:
        assert re.search(fragment, message), (fragment, message)
    return message


# --------------------------------------------------------------------------- #
# The shipped declarations
# --------------------------------------------------------------------------- #


def test_every_shipped_block_parses() -> None:
    parsed = parse_declarations(SHIPPED)
    assert set(parsed) == set(SHIPPED)
    assert {"synthetic-<N>", "amazon-ratings", "amazon-reviews-2023", "clickstream", *MOVIELENS} <= set(parsed)
    assert all(isinstance(declaration, DatasetDeclaration) for declaration in parsed.values())


def test_shipped_blocks_reach_the_parameters() -> None:
    # datasets.yml is read as parameters (conf/local may add blocks, never drop shipped ones).
    datasets = load_parameters(REPO_ROOT)["datasets"]
    assert set(SHIPPED) <= set(datasets)
    for name in SHIPPED:
        assert declaration_of(name if name != "synthetic-<N>" else "synthetic-1m", datasets) == \
            parse_declarations(SHIPPED)[name]


def test_movielens_downloads() -> None:
    parsed = parse_declarations(SHIPPED)
    for name in MOVIELENS:
        download = parsed[name].download
        assert download is not None and download.archive_root == name
        assert download.url == f"https://files.grouplens.org/datasets/movielens/{name}.zip"
        assert re.fullmatch(r"[0-9a-f]{64}", download.sha256)
        assert parsed[name].path.startswith(f"{name}/")
    assert parsed["ml-1m"].delimiter == "::" and parsed["ml-100k"].delimiter == "\t"
    assert parsed["ml-latest-small"].delimiter == ","
    assert parsed["ml-latest-small"].rating_range == (0.5, 5.0)
    assert parsed["synthetic-<N>"].download is None and parsed["synthetic-<N>"].generated == "synthetic"


def test_mapped_columns_leave_out_an_absent_rating() -> None:
    parsed = parse_declarations(SHIPPED)
    assert parsed["clickstream"].mapped_columns() == {"user": "visitor_id", "item": "product_id",
                                                      "time": "event_time"}
    assert parsed["ml-100k"].mapped_columns() == {"user": "user", "item": "item", "time": "timestamp",
                                                  "rating": "rating"}


# --------------------------------------------------------------------------- #
# Bad declarations
# --------------------------------------------------------------------------- #


def test_unknown_key_names_its_path() -> None:
    _fails(_block(colour="blue"), r"datasets\.mine\.colour\b")


def test_unknown_nested_key_names_its_path() -> None:
    _fails(_block(columns={"user": "u", "item": "i", "time": "t", "score": "s"}), r"datasets\.mine\.columns\.score\b")


def test_missing_key_names_its_path() -> None:
    _fails(_block(ids=None), r"datasets\.mine\.ids\b")


@pytest.mark.parametrize(("key", "value"), [("format", "xlsx"), ("ids", "uuid"), ("time_unit", "us"),
                                            ("duplicates", "merge")])
def test_values_outside_their_choices_fail(key: str, value: str) -> None:
    _fails(_block(**{key: value}), rf"datasets\.mine\.{key}\b", repr(value))


def test_tsv_with_separator_fails() -> None:
    _fails(_block(format="tsv", separator=";"), "separator applies to format csv only")
    assert parse_declarations({"mine": _block(separator=";")})["mine"].delimiter == ";"


def test_headerless_csv_without_names_fails() -> None:
    _fails(_block(header=False), "without a header needs names")


def test_names_with_a_header_fail() -> None:
    _fails(_block(names=["u", "i", "r", "t"]), "names are for a csv/tsv without a header")


def test_names_not_covering_the_mapped_columns_fail() -> None:
    _fails(_block(header=False, names=["u", "i", "r", "time"]), r"\['t'\]", "not among names")
    ok = parse_declarations({"mine": _block(header=False, names=["u", "i", "r", "t", "extra"])})["mine"]
    assert ok.names == ["u", "i", "r", "t", "extra"]


def test_names_for_parquet_fail() -> None:
    _fails(_block(format="parquet", header=False, names=["u", "i", "r", "t"]), "csv/tsv only")


def test_min_rating_without_a_rating_column_fails() -> None:
    _fails(_block(columns={"user": "u", "item": "i", "time": "t"}, min_rating=3), "min_rating needs a rating column")
    rated = parse_declarations({"mine": _block(min_rating=3)})["mine"]
    assert rated.min_rating == 3.0


def test_reversed_rating_range_fails() -> None:
    _fails(_block(rating_range=[5, 1]), r"rating_range \[5\.0, 1\.0\]")


def test_unknown_encoding_fails() -> None:
    _fails(_block(encoding="klingon-8"), "unknown encoding 'klingon-8'")


def test_bad_sha256_fails() -> None:
    _fails(_block(download={"url": "http://x/y.zip", "sha256": "abc", "archive_root": "y"}),
           r"datasets\.mine\.download\.sha256\b")


@pytest.mark.parametrize("name", ["has space", "../up", "-lead", ""])
def test_bad_dataset_names_fail(name: str) -> None:
    with pytest.raises(ParameterError, match="must match"):
        parse_declarations({name: _block()})


@pytest.mark.parametrize("datasets", [None, {}, [1, 2], "ml-1m"])
def test_datasets_must_be_a_mapping(datasets: object) -> None:
    with pytest.raises(ParameterError, match="must map dataset names"):
        parse_declarations(datasets)


def test_a_bad_block_fails_even_when_another_is_asked_for() -> None:
    with pytest.raises(ParameterError, match=r"datasets\.broken\.colour"):
        declaration_of("mine", {"mine": _block(), "broken": _block(colour="red")})


# --------------------------------------------------------------------------- #
# Looking a dataset up
# --------------------------------------------------------------------------- #


def test_undeclared_dataset_lists_the_declared_ones() -> None:
    with pytest.raises(ParameterError) as exc:
        declaration_of("ml-20m", SHIPPED)
    message = str(exc.value)
    assert "'ml-20m'" in message and "not declared" in message
    for name in SHIPPED:
        assert name in message


@pytest.mark.parametrize("name", ["synthetic-250k", "synthetic-1m", "synthetic-25m", "synthetic-1000", "synthetic-2.5m"])
def test_synthetic_names_resolve_to_the_family(name: str) -> None:
    assert declaration_key(name, SHIPPED) == "synthetic-<N>"
    assert declaration_of(name, SHIPPED) == parse_declarations(SHIPPED)["synthetic-<N>"]


@pytest.mark.parametrize("name", ["synthetic-<N>", "synthetic-", "synthetic-abc", "synthetic-250g", None, 7])
def test_not_a_synthetic_name(name: object) -> None:
    with pytest.raises(ParameterError, match="not declared"):
        declaration_key(name, SHIPPED)


def test_own_block_wins_over_the_family() -> None:
    datasets = {**SHIPPED, "synthetic-250k": _block()}
    assert declaration_key("synthetic-250k", datasets) == "synthetic-250k"
    assert declaration_of("synthetic-250k", datasets).format == "csv"
    assert declaration_key("synthetic-1m", datasets) == "synthetic-<N>"


# --------------------------------------------------------------------------- #
# Where a log is
# --------------------------------------------------------------------------- #


def test_raw_data_root_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DUET_DATA_DIR", raising=False)
    params = {"data_dir": None, "fallback_root": str(tmp_path / "fb"), "download": False}
    assert RawDataParams.from_params(params).root() == tmp_path / "fb"
    monkeypatch.setenv("DUET_DATA_DIR", str(tmp_path / "env"))
    assert RawDataParams.from_params(params).root() == tmp_path / "env"
    explicit = {**params, "data_dir": str(tmp_path / "arg")}
    assert RawDataParams.from_params(explicit).root() == tmp_path / "arg"
    with pytest.raises(ParameterError, match=r"raw_data\.speed"):
        RawDataParams.from_params({**params, "speed": 1})


def test_resolve_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUET_DATA_DIR", str(tmp_path / "env"))
    raw = RawDataParams(data_dir=None, fallback_root=str(tmp_path / "fb"), download=True)
    parsed = parse_declarations(SHIPPED)
    assert resolve_path("ml-1m", parsed["ml-1m"], raw) == tmp_path / "env" / "ml-1m" / "ratings.dat"
    # Generated logs live where the generator writes them, whatever DUET_DATA_DIR says.
    assert resolve_path("synthetic-250k", parsed["synthetic-<N>"], raw) == \
        tmp_path / "fb" / "synthetic-250k" / "shards"
    absolute = parse_declarations({"mine": _block(path=str(tmp_path / "abs" / "{name}.csv"))})["mine"]
    assert resolve_path("mine", absolute, raw) == tmp_path / "abs" / "mine.csv"
