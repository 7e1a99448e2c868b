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
}

from duet_pipeline.hooks import MlflowArtifactHook, ParameterCheckHook, RunRecordHook, VersionsHook  # noqa: E402

HOOKS = (ParameterCheckHook(), VersionsHook(), MlflowArtifactHook(), RunRecordHook())
