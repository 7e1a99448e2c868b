"""Kedro project settings. kedro-mlflow registers its hooks through its plugin entry point."""
from kedro.config import OmegaConfigLoader

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
}

from duet_pipeline.hooks import MlflowArtifactHook, ParameterCheckHook  # noqa: E402

HOOKS = (ParameterCheckHook(), MlflowArtifactHook())
