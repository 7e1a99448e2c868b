"""The runs-table links `make mlflow-ui` prints."""
from __future__ import annotations

from mlflow.tracking import MlflowClient

from duet_pipeline.mlflow_links import runs_links


def test_each_experiment_links_to_its_runs_table(tmp_path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    grid = client.create_experiment("duet_grid")
    links = runs_links(uri, "http://127.0.0.1:5000/")
    assert links == {"duet_grid": f"http://127.0.0.1:5000/#/experiments/{grid}/runs"}
