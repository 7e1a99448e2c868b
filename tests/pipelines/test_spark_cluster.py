"""features.engine=spark on a standalone cluster: a master and one worker on 127.0.0.1
(pyspark's own spark-class), reached through one setting in conf/local/spark.yml, give
the pandas engine's samples, and the work ran in an executor on the worker."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import kedro, latest_version, project_env
from duet_pipeline.spark_session import java_executable, standalone_cluster
from pipelines.test_spark_engine import sorted_samples

SPLITS = ("train", "validation", "test")


@pytest.mark.skipif(java_executable() is None, reason="a Spark standalone cluster needs Java 17 or 21")
def test_feature_stage_on_a_standalone_cluster_gives_the_pandas_samples(tiny_ml100k: Path, tmp_path: Path) -> None:
    project = tiny_ml100k
    cluster_dir = tmp_path / "cluster"
    # The executors' Python workers import duet_pipeline from the project copy, as the driver does.
    with standalone_cluster(cluster_dir, cores=2, memory="2g", env={"PYTHONPATH": project_env(project)["PYTHONPATH"]}) as url:
        (project / "conf" / "local" / "spark.yml").write_text(f"spark.master: {url}\nspark.executor.memory: 1g\n")
        kedro(project, "run", "--pipelines=ingestion,feature_engineering", "--params=dataset=ml-100k,features.engine=spark")
    executors = list((cluster_dir / "worker").glob("app-*/*/stderr"))
    assert executors, "no executor ran on the worker"
    assert any("Successfully registered with driver" in log.read_text() for log in executors)

    model_input = project / "data" / "05_model_input" / "ml-100k"
    by_spark = {split: latest_version(model_input / f"{split}_samples.parquet") for split in SPLITS}
    assert all(folder.is_dir() for folder in by_spark.values())  # part files, written by Spark
    kedro(project, "run", "--pipelines=feature_engineering", "--params=dataset=ml-100k,features.engine=pandas")
    for split in SPLITS:
        by_pandas = pd.read_parquet(latest_version(model_input / f"{split}_samples.parquet"), dtype_backend="pyarrow")
        written = pd.read_parquet(by_spark[split], dtype_backend="pyarrow")
        assert len(written) == len(by_pandas) > 0
        np.testing.assert_array_equal(sorted_samples(written), sorted_samples(by_pandas), err_msg=split)
