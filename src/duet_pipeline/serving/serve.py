"""``make serve``: ``mlflow models serve`` for the latest registered head generator.

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


def serve_command(model_uri: str, host: str, port: int, workers: int = 1) -> list[str]:
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    return [mlflow, "models", "serve", "-m", model_uri, "--env-manager", "local", "-h", host, "-p", str(port),
            "--workers", str(workers)]


def serve_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` with this interpreter's bin folder first on PATH: ``mlflow models serve``
    starts ``uvicorn`` by name, which lives beside the venv's python."""
    return {**env, "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])}


def latest_model_uri(registered_model: str) -> str:
    return f"models:/{registered_model}/latest"


def main() -> None:
    params = ServingParams.from_params(load_parameters(Path.cwd())["serving"])
    env = serve_env({"MLFLOW_TRACKING_URI": TRACKING_URI, **os.environ})
    command = serve_command(latest_model_uri(params.registered_model), params.host, params.port, params.workers)
    print(" ".join(command), flush=True)
    os.execve(command[0], command, env)


if __name__ == "__main__":
    main()
