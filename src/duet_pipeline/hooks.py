"""Project hooks: parameters checked before anything runs, and MLflow artifacts.

``ParameterCheckHook`` parses every parameter block when Kedro creates the context,
so a wrong key, type or range fails before any data stage runs (and before an MLflow
run is opened), and records the run's selection of methods for the pipelines. ``SparkHook`` starts the
Spark session when the run chose the spark engine.

kedro-mlflow's ``MlflowArtifactDataset`` gives its wrapped dataset a save version of
its own, which Kedro 1.x rejects for versioned datasets ("All datasets in the catalog
must have the same save version"). So outputs stay ordinary versioned datasets, and a
catalog entry opts in to MLflow logging with ``metadata: {mlflow_artifact_path: DIR}``;
``MlflowArtifactHook`` then logs the exact file version just written.

``WorkerNodeHook`` keeps a multi-node training's other nodes (``node_rank`` > 0) from
writing anything: node 0 writes the outputs and the MLflow run.

``RunRecordHook`` makes each run findable and readable: the MLflow run is named
``<dataset>/<backbone>/<methods>``, the experiment opens on its runs in the MLflow UI, a
failed run is tagged ``outcome = failed`` with the node and the error (and its saved
versions are set aside, :mod:`duet_pipeline.versions`), and a run that produced a
comparison prints it at the end.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import mlflow
from kedro.framework.hooks import hook_impl

from duet_pipeline.mlflow_runs import CURRENT_RUN, close_orphaned_runs, process_tags
from duet_pipeline.training.tracking import RUNS_EXPERIMENT_TAGS
from duet_pipeline.versions import make_atomic, remove_partials, saved_versions, set_aside

logger = logging.getLogger(__name__)

ARTIFACT_KEY = "mlflow_artifact_path"


class ParameterCheckHook:
    # tryfirst: before kedro-mlflow's hook sets up its tracking store.
    @hook_impl(tryfirst=True)
    def after_context_created(self, context: Any) -> None:
        # Imported here: settings.py imports this module for every kedro command (`kedro -h`).
        from duet_pipeline.pipelines import selection
        from duet_pipeline.run_parameters import check_parameters

        chosen = check_parameters(context.config_loader["parameters"])
        check_split_folder(chosen.split, context.config_loader["catalog"]["train_samples"]["filepath"])
        if selection.record(chosen):
            # Pipelines built for other parameters earlier in this process are stale.
            from kedro.framework.project import PACKAGE_NAME, pipelines

            pipelines.configure(f"{PACKAGE_NAME}.pipeline_registry")

    # tryfirst: before kedro-mlflow's hook opens a run, so a refused run leaves nothing.
    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any]) -> None:
        from duet_pipeline.pipelines import selection
        from duet_pipeline.run_parameters import check_split

        check_split(selection.current(), list(run_params.get("pipeline_names") or ["__default__"]))


def check_split_folder(split: str, samples_path: str) -> None:
    """The catalog keeps the split's outputs apart only when it reads the split where the
    parameter is set (--params or globals.yml): a split set in a parameters file alone would
    write replay samples over leave-one-out's folder."""
    from duet_pipeline.parameters import ParameterError

    if ("/replay/" in samples_path) != (split == "replay"):
        raise ParameterError(f"parameter features.split = {split!r} is not the split the catalog's paths use "
                             f"({samples_path}); set it with --params=features.split={split} or as `split` in "
                             "conf/<env>/globals.yml, not in a parameters file")


class SparkHook:
    """Kedro's PySpark integration, only for ``features.engine: spark``: the Spark datasets
    of conf/base/datasets_spark.yml in the catalog, and the session from
    conf/base/spark.yml before a pipeline that reads or writes them runs (checking Java
    and pyspark first); its cached DataFrames are released when the run ends or fails."""

    def __init__(self) -> None:
        self._datasets: dict[str, Any] = {}
        self._session_conf: dict[str, Any] = {}
        self._session: Any = None

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        from duet_pipeline.pipelines import selection

        self._datasets, self._session_conf = {}, {}
        if selection.current().engine == "spark":
            self._datasets = {name: entry for name, entry in context.config_loader["spark_catalog"].items()
                              if not name.startswith("_")}
            self._session_conf = context.config_loader["spark"]

    @hook_impl(tryfirst=True)
    def after_catalog_created(self, catalog: Any, conf_creds: dict[str, Any], save_version: str,
                              load_versions: dict[str, str]) -> None:
        if not self._datasets:
            return
        from kedro.io import DataCatalog

        versions = {name: version for name, version in load_versions.items() if name in self._datasets}
        added = DataCatalog.from_config(self._datasets, credentials=conf_creds, save_version=save_version,
                                        load_versions=versions)
        for name in self._datasets:
            catalog[name] = added.get(name)

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, pipeline: Any) -> None:
        if any(name in self._datasets for name in pipeline.datasets()):
            from duet_pipeline.spark_session import start_spark

            self._session = start_spark(self._session_conf)

    @hook_impl
    def after_pipeline_run(self) -> None:
        self._release()

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._release()  # a notebook's next run would otherwise find this one's cache

    def _release(self) -> None:
        if self._session is not None:
            self._session.catalog.clearCache()
            self._session = None


class WorkerNodeHook:
    """``training.distributed.node_rank`` > 0: this node trains its share of every training
    of a multi-node run and writes nothing. Every output of its run stays in memory, and
    no MLflow run is opened; node 0, running the same pipeline, writes both. tryfirst:
    before kedro-mlflow's hook opens a run and before the others see the catalog."""

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        from duet_pipeline.pipelines import selection

        spread = selection.current().distributed
        if spread.writes:
            return
        from kedro.io import MemoryDataset
        from kedro_mlflow.framework.hooks import mlflow_hook

        from duet_pipeline.parameters import ParameterError

        outputs = pipeline.all_outputs()
        reread = sorted(name for name in pipeline.all_inputs() - outputs
                        if name.split("@")[0] in {output.split("@")[0] for output in outputs})
        if reread:
            raise ParameterError(
                f"parameter training.distributed.node_rank = {spread.node_rank}: this node keeps its outputs in "
                f"memory, but the run reads {reread} back from files it would have written; on this machine run "
                "`kedro run --pipelines=ingestion,feature_engineering` first, without training.distributed, "
                "and then the training")
        mlflow_hook.mlflow_config.tracking.disable_tracking.pipelines = list(
            run_params.get("pipeline_names") or ["__default__"])
        for name in outputs:
            catalog[name] = MemoryDataset()
        logger.info("Node %d of %d: this node trains its share and writes nothing (node 0 writes the outputs "
                    "and the MLflow run)", spread.node_rank, spread.nodes)


# Outputs a run prints at its end (a namespaced pipeline has one per namespace).
SUMMARY_OUTPUTS = ("comparison_markdown", "replay_markdown")
# Pipelines named for their methods in a run's name; any other pipeline names itself.
METHOD_PIPELINES = {"__default__", "duet", "duet_all"}


def run_name(dataset: str, backbone: str, methods: list[str], pipeline_names: list[str]) -> str:
    """``<dataset>/<backbone>/<methods>``: what the run compared, so runs tell apart."""
    names = pipeline_names or ["__default__"]
    what = ",".join(methods) if set(names) <= METHOD_PIPELINES else "+".join(sorted(names))  # kedro: a set
    return f"{dataset}/{'all' if 'duet_all' in names else backbone}/{what}"


def comparison_summary(markdown: str, path: str) -> str:
    """The test-quality part of a comparison document (not the cost tables), and its file."""
    quality = markdown.split("\nPer-device cost", 1)[0].rstrip()
    return f"{quality}\n\nFull comparison: {path}"


class VersionsHook:
    """Atomic saves for every versioned dataset, leftovers of gone writers removed at the
    start, a failed run's versions set aside (:mod:`duet_pipeline.versions`). The run's
    versions are found by its save version, so those its worker processes saved count too
    (runner.py)."""

    def __init__(self) -> None:
        self._save_version: str | None = None
        self._project = Path.cwd()

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._project = Path(context.project_path)

    @hook_impl
    def after_catalog_created(self, save_version: str) -> None:
        self._save_version = save_version

    @hook_impl
    def before_pipeline_run(self, pipeline: Any, catalog: Any) -> None:
        remove_partials(self._project / "data")
        # Every dataset of the run made atomic here, in the catalog the runner sends on:
        # a worker process saves through its own copy of it, not through this hook's.
        for name in pipeline.datasets():
            make_atomic(catalog.get(name, fallback_to_runtime_pattern=True), name)

    @hook_impl
    def on_pipeline_error(self) -> None:
        if self._save_version is not None:
            set_aside(saved_versions(self._project, self._save_version), self._project)


# The attribute on a node's error that names the node: set where the node ran (a worker
# process of the project's runner, or this one), read where the run ends.
FAILED_NODE = "duet_failed_node"


class RunRecordHook:
    # trylast: after kedro-mlflow's hook has started the run.
    @hook_impl(trylast=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        run = mlflow.active_run()
        if run is None:
            return
        from duet_pipeline.pipelines import selection  # recorded by ParameterCheckHook

        chosen = selection.current()
        name = run_name(catalog.load("params:dataset"), chosen.backbone, [m.name for m in chosen.methods],
                        run_params.get("pipeline_names") or [])
        mlflow.set_tags({"mlflow.runName": name, **process_tags()})
        client = mlflow.MlflowClient()
        for key, value in RUNS_EXPERIMENT_TAGS.items():
            client.set_experiment_tag(run.info.experiment_id, key, value)
        close_orphaned_runs(client, run.info.experiment_id)

    @hook_impl
    def before_node_run(self, node: Any) -> None:
        CURRENT_RUN["node"] = node.name

    @hook_impl
    def on_node_error(self, error: Exception, node: Any) -> None:
        try:  # pickled with the error when it crosses from a worker process
            setattr(error, FAILED_NODE, node.name)
        except AttributeError:  # an error type without attributes: the tag says "-"
            pass

    # tryfirst: before kedro-mlflow's hook ends the run as FAILED.
    @hook_impl(tryfirst=True)
    def on_pipeline_error(self, error: Exception) -> None:
        if mlflow.active_run() is not None:
            mlflow.set_tags({"outcome": "failed", "failed_node": getattr(error, FAILED_NODE, "-"),
                             "error": f"{type(error).__name__}: {error}"[:5000]})

    # tryfirst: before kedro-mlflow's hook ends the run (in a sequential run its node hooks
    # leave the run opened once more per node, which hid the order; workers' do not).
    @hook_impl(tryfirst=True)
    def after_pipeline_run(self, pipeline: Any, catalog: Any) -> None:
        CURRENT_RUN["node"] = None
        if mlflow.active_run() is not None:
            mlflow.set_tag("outcome", "finished")
        for name in sorted(pipeline.all_outputs()):
            if name.split(".")[-1] in SUMMARY_OUTPUTS:
                dataset = catalog.get(name)
                if hasattr(dataset, "_get_load_path"):  # not on a node that writes nothing
                    print(f"\n{comparison_summary(catalog.load(name), str(dataset._get_load_path()))}\n", flush=True)


class MlflowArtifactHook:
    def __init__(self) -> None:
        self._catalog = None
        self._save_version: str | None = None

    @hook_impl
    def after_catalog_created(self, catalog: Any, save_version: str) -> None:
        self._catalog, self._save_version = catalog, save_version

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node: Any) -> None:
        if self._catalog is None or mlflow.active_run() is None:
            return
        dataset = self._catalog.get(dataset_name)
        artifact_path = (getattr(dataset, "metadata", None) or {}).get(ARTIFACT_KEY)
        if artifact_path is None:
            return
        # The file this run wrote: its save version's, whatever another run saved since
        # (and in a worker process this hook's catalog is not the one that saved).
        versioned = getattr(dataset, "_version", None) is not None
        local_path = Path(str(dataset._get_versioned_path(self._save_version) if versioned
                              else dataset._get_load_path()))
        mlflow.log_artifact(str(local_path), artifact_path)
        logger.info("Logged %s to MLflow artifacts/%s", local_path, artifact_path)
