"""``make serve``: the latest registered cloud half of ``serving.method``, served as
``mlflow models serve`` serves a model (MLflow's scoring app under uvicorn), behind the
request limits of :mod:`.app`.

Reads ``serving`` from conf/ (registry name, host, port) and the project's tracking
store (``sqlite:///mlflow.db``); serves in the local environment (no conda), on
loopback by default. Stop it with Ctrl-C (or by its process group: it forks workers).
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from duet_pipeline.project import load_parameters

from .config import ServingParams

TRACKING_URI = "sqlite:///mlflow.db"


def serve_command(host: str, port: int, workers: int = 1) -> list[str]:
    uvicorn = shutil.which("uvicorn", path=str(Path(sys.executable).parent)) or "uvicorn"
    return [uvicorn, "--factory", "duet_pipeline.serving.app:create_app", "--host", host, "--port", str(port),
            "--workers", str(workers)]


def serve_env(env: dict[str, str], model_uri: str) -> dict[str, str]:
    """``env`` with the model's local copy where MLflow's scoring app looks for it (fetched
    from the registry or run first), and this interpreter's bin folder first on PATH."""
    import mlflow
    from mlflow.pyfunc import scoring_server

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(env.get("MLFLOW_TRACKING_URI", previous))  # models:/ URIs resolve through the store
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri)
    finally:
        mlflow.set_tracking_uri(previous)
    return {**env, scoring_server._SERVER_MODEL_PATH: local,
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])}


def latest_model_uri(registered_model: str) -> str:
    return f"models:/{registered_model}/latest"


def main() -> None:
    params = ServingParams.from_params(load_parameters(Path.cwd())["serving"])
    if not params.has_cloud_half:
        raise SystemExit(f"serving.method = {params.method!r}: its cloud sends the device nothing per request, so "
                         "there is no server to start; its device model is `kedro run --pipelines=serving`'s "
                         "<method>_device_onnx")
    env = serve_env({"MLFLOW_TRACKING_URI": TRACKING_URI, **os.environ}, latest_model_uri(params.registered_name))
    command = serve_command(params.host, params.port, params.workers)
    print(" ".join(command), flush=True)
    os.execve(command[0], command, env)


if __name__ == "__main__":
    main()
