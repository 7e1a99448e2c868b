"""Project hooks: parameters checked before anything runs, and MLflow artifacts.

``ParameterCheckHook`` parses every parameter block when Kedro creates the context,
so a wrong key, type or range fails before any data stage runs (and before an MLflow
run is opened), and records the run's selection of methods for the pipelines.

kedro-mlflow's ``MlflowArtifactDataset`` gives its wrapped dataset a save version of
its own, which Kedro 1.x rejects for versioned datasets ("All datasets in the catalog
must have the same save version"). So outputs stay ordinary versioned datasets, and a
catalog entry opts in to MLflow logging with ``metadata: {mlflow_artifact_path: DIR}``;
``MlflowArtifactHook`` then logs the exact file version just written.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import mlflow
from kedro.framework.hooks import hook_impl

logger = logging.getLogger(__name__)

ARTIFACT_KEY = "mlflow_artifact_path"


class ParameterCheckHook:
    # tryfirst: before kedro-mlflow's hook sets up its tracking store.
    @hook_impl(tryfirst=True)
    def after_context_created(self, context: Any) -> None:
        # Imported here: settings.py imports this module for every kedro command (`kedro -h`).
        from duet_pipeline.pipelines import selection
        from duet_pipeline.run_parameters import check_parameters

        if selection.record(check_parameters(context.config_loader["parameters"])):
            # Pipelines built for other parameters earlier in this process are stale.
            from kedro.framework.project import PACKAGE_NAME, pipelines

            pipelines.configure(f"{PACKAGE_NAME}.pipeline_registry")


class MlflowArtifactHook:
    def __init__(self) -> None:
        self._catalog = None

    @hook_impl
    def after_catalog_created(self, catalog: Any) -> None:
        self._catalog = catalog

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node: Any) -> None:
        if self._catalog is None or mlflow.active_run() is None:
            return
        dataset = self._catalog.get(dataset_name)
        artifact_path = (getattr(dataset, "metadata", None) or {}).get(ARTIFACT_KEY)
        if artifact_path is None:
            return
        # After a save, the load path of a versioned dataset is the version just written.
        local_path = Path(str(dataset._get_load_path()))
        mlflow.log_artifact(str(local_path), artifact_path)
        logger.info("Logged %s to MLflow artifacts/%s", local_path, artifact_path)
