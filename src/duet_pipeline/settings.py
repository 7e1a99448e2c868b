"""Kedro project settings. kedro-mlflow registers its hooks through its plugin entry point."""
import kedro.framework.session.session as kedro_session
from kedro.config import OmegaConfigLoader

from duet_pipeline import project
from duet_pipeline.console import configure_console
from duet_pipeline.versions import unique_session_timestamp

# Once per Kedro command, before any run logs: plain logs when piped, logs/kedro.log,
# and the known third-party warnings filtered (duet_pipeline/console.py says which).
configure_console()
# A session's id is its runs' save version. Kedro takes it from the clock with no hook to
# choose it; two runs started in one millisecond would share version folders and the
# second save would fail. KedroSession.create imports these settings just before it asks.
kedro_session.generate_timestamp = unique_session_timestamp

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = project.CONFIG_LOADER_ARGS

from duet_pipeline.hooks import (  # noqa: E402
    MlflowArtifactHook, ParameterCheckHook, RunRecordHook, SparkHook, VersionsHook, WorkerNodeHook)

HOOKS = (ParameterCheckHook(), WorkerNodeHook(), SparkHook(), VersionsHook(), MlflowArtifactHook(), RunRecordHook())
