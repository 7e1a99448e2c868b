"""The Kedro project's parameters, read outside a Kedro run (tests, benchmarks, the grid)."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from kedro.config import OmegaConfigLoader

REPO_ROOT = Path(__file__).resolve().parents[2]


def load_parameters(project: Path = REPO_ROOT, runtime_params: dict[str, Any] | None = None,
                    env: str = "local") -> dict[str, Any]:
    """conf/base (+ ``env``) parameters of ``project`` as `kedro run --params` would resolve them."""
    with warnings.catch_warnings():  # OmegaConf's resolver-API deprecation, not ours
        warnings.simplefilter("ignore", UserWarning)
        loader = OmegaConfigLoader(str(Path(project) / "conf"), base_env="base", default_run_env=env,
                                   runtime_params=runtime_params or {})
        return loader["parameters"]
