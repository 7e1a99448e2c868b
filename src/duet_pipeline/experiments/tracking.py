"""Grid invocations and their cells as MLflow runs: one parent run per invocation, one nested run per cell."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from duet_pipeline.training.tracking import RUNS_EXPERIMENT_TAGS, mlflow_metric_name

from .runner import CellResult

# MLflow caps a parameter value's length; longer values are cut, never rejected.
_MAX_PARAM_LENGTH = 6000
_BATCH = 900  # MLflow accepts at most 1000 metrics per log_batch call


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, str]:
    flat = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)[:_MAX_PARAM_LENGTH]
    return flat


class GridTracker:
    """Writes the grid's runs in one MLflow experiment (the record, not MLflow, says
    which cells are done)."""

    def __init__(self, tracking_uri: str, experiment: str) -> None:
        self.client = MlflowClient(tracking_uri)
        found = self.client.get_experiment_by_name(experiment)
        self.experiment_id = found.experiment_id if found else self.client.create_experiment(experiment, tags=RUNS_EXPERIMENT_TAGS)

    def start_invocation(self, dataset: str, tags: dict[str, str]) -> str:
        """The parent run of one grid invocation; its cells are nested under it."""
        run = self.client.create_run(self.experiment_id, run_name=f"grid {dataset}",
                                     tags={"dataset": dataset, "grid_invocation": "true", **tags})
        return run.info.run_id

    def end_invocation(self, run_id: str, status: str) -> None:
        self.client.set_terminated(run_id, status)

    def log_report(self, run_id: str, markdown: str, figures: list[Path]) -> None:
        """The dataset's report and figures on the invocation's run, which it then ends."""
        self.client.log_text(run_id, markdown, "RESULTS.md")
        for figure in figures:
            self.client.log_artifact(run_id, str(figure), "figures")
        self.end_invocation(run_id, "FINISHED")

    def log_cell(self, result: CellResult, tags: dict[str, str], parent: str | None = None) -> str:
        """One finished MLflow run holding the cell's metrics, curve and predictions,
        nested under the invocation's run ``parent``."""
        cell = result.cell
        run_tags = {"dataset": cell.dataset, "backbone": cell.backbone, "method": cell.method,
                    "seed": str(cell.seed), "config_hash": result.config_hash,
                    "params_hash": result.params_hash, **tags,
                    **({"mlflow.parentRunId": parent} if parent else {})}
        run = self.client.create_run(
            self.experiment_id, run_name=f"{cell.dataset}/{cell.backbone}/{cell.method}/seed{cell.seed}",
            tags=run_tags,
        )
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        metrics = [Metric(mlflow_metric_name(f"test.{k}"), v, now, 0) for k, v in result.metrics.items()]
        metrics += [Metric(f"training.{k}", v, now, 0) for k, v in result.training.items()]
        metrics += [Metric(mlflow_metric_name(f"personalization.{k}"), float(v), now, 0)
                    for k, v in result.personalization.items()]
        metrics += [Metric(mlflow_metric_name(f"test.activity.{k}"), v, now, 0)
                    for k, v in result.activity.items() if isinstance(v, float)]
        metrics.append(Metric("wall_seconds", result.wall_seconds, now, 0))
        for column in result.history.columns.drop("epoch"):
            metrics += [Metric(f"epoch.{mlflow_metric_name(column)}", float(value), now, int(epoch))
                        for epoch, value in zip(result.history["epoch"], result.history[column])]
        params = [Param(k, v) for k, v in flatten(result.params).items()]
        for start in range(0, max(len(metrics), len(params)), _BATCH):
            self.client.log_batch(run_id, metrics=metrics[start:start + _BATCH], params=params[start:start + _BATCH])
        with tempfile.TemporaryDirectory() as folder:
            result.predictions.to_parquet(Path(folder) / "predictions.parquet", index=False)
            result.history.to_csv(Path(folder) / "training_history.csv", index=False)
            self.client.log_artifacts(run_id, folder)
        self.client.set_terminated(run_id, "FINISHED")
        return run_id
