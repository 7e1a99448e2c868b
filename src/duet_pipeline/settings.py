"""Kedro project settings. kedro-mlflow registers its hooks through its plugin entry point."""
from kedro.config import OmegaConfigLoader

from duet_pipeline.console import configure_console

# Once per Kedro command, before any run logs: plain logs when piped, logs/kedro.log,
# and the known third-party warnings filtered (duet_pipeline/console.py says which).
configure_console()

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # features.engine=spark (hooks.SparkHook): the session (spark.yml) and the
    # feature stage's datasets as Spark DataFrames (datasets_spark.yml).
    "config_patterns": {"spark": ["spark*", "spark*/**"], "spark_catalog": ["datasets_spark*"]},
}

from duet_pipeline.hooks import (  # noqa: E402
    MlflowArtifactHook, ParameterCheckHook, RunRecordHook, SparkHook, VersionsHook)

HOOKS = (ParameterCheckHook(), SparkHook(), VersionsHook(), MlflowArtifactHook(), RunRecordHook())
