"""features.engine=spark: the same samples as the pandas engine, through a real kedro run;
and a clear one-line failure where Spark cannot run, which the default path never needs."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import REPO_ROOT, kedro, latest_version
from duet_pipeline.data.events import read_interactions
from duet_pipeline.features.samples import build_item_index
from duet_pipeline.features.samples import FeatureParams, list_matrix, make_samples
from duet_pipeline.project import load_parameters
from duet_pipeline.spark_session import SparkUnavailable, check_spark_available, java_executable

SHIPPED = REPO_ROOT / "data" / "01_raw" / "ml-latest-small"
TINY = "training.max_epochs=1,training.limit_train_batches=2,training.progress=false"


def with_shipped_data(project: Path) -> Path:
    shutil.copytree(SHIPPED, project / "data" / "01_raw" / "ml-latest-small")
    return project


def sorted_samples(samples: pd.DataFrame) -> np.ndarray:
    """Every stored value of every row, rows in sorted order: equal arrays, equal samples."""
    rows = np.column_stack([samples["user_id"].to_numpy(np.int64), list_matrix(samples, "history"),
                            samples["target_item"].to_numpy(np.int64), list_matrix(samples, "negatives")])
    return rows[np.lexsort(rows.T[::-1])]


@pytest.mark.skipif(java_executable() is None, reason="the spark engine needs Java 17 or 21")
def test_spark_run_on_the_shipped_data_gives_the_pandas_samples(project_copy: Path) -> None:
    """`kedro run --pipelines=duet --params=features.engine=spark` completes, and its
    samples (a Spark folder of part files) equal the pandas engine's, row for row."""
    project = with_shipped_data(project_copy)
    result = kedro(project, "run", "--pipelines=duet", f"--params=features.engine=spark,methods=base,{TINY}")
    assert "| base     |" in result.stdout
    model_input = project / "data" / "05_model_input" / "ml-latest-small"
    assert latest_version(model_input / "train_samples.parquet").is_dir()  # written by Spark
    ratings = read_interactions(SHIPPED / "ratings.csv", "ml-latest-small", load_parameters()["datasets"])
    features = FeatureParams.from_params(load_parameters(REPO_ROOT)["features"])
    expected = make_samples(ratings, build_item_index(ratings), **features.sample_options())
    for split, samples in expected.items():
        written = pd.read_parquet(latest_version(model_input / f"{split}_samples.parquet"), dtype_backend="pyarrow")
        assert len(written) == len(samples)
        np.testing.assert_array_equal(sorted_samples(written), sorted_samples(samples), err_msg=split)


def test_spark_engine_without_java_fails_in_one_line_before_any_stage(project_copy: Path) -> None:
    project = with_shipped_data(project_copy)
    no_java = {"PATH": str(Path(sys.executable).parent), "JAVA_HOME": ""}  # the venv's bin: no java there
    result = kedro(project, "run", "--pipelines=feature_engineering", "--params=features.engine=spark",
                   check=False, env=no_java)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "openjdk-17-jre-headless" in errors[0], result.stderr
    assert not list((project / "data" / "05_model_input").iterdir())  # nothing written


def test_spark_engine_without_pyspark_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark -> ImportError
    with pytest.raises(SparkUnavailable, match=r'pip install -e "\.\[spark\]"'):
        check_spark_available()


def test_default_engine_never_imports_pyspark(project_copy: Path) -> None:
    """With pyspark unimportable, the default (pandas) data stages still run."""
    project = with_shipped_data(project_copy)
    blocker = project / "no_pyspark"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['pyspark'] = None\n")
    env = {"PYTHONPATH": f"{blocker}:{project / 'src'}"}
    kedro(project, "run", "--pipelines=ingestion,feature_engineering", env=env)
    assert latest_version(project / "data" / "05_model_input" / "ml-latest-small" / "test_samples.parquet").is_file()
