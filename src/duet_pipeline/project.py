"""The Kedro project's parameters, read outside a Kedro run (tests, benchmarks, the grid)."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from kedro.config import OmegaConfigLoader

REPO_ROOT = Path(__file__).resolve().parents[2]


def split_folder(dataset: str, split: str) -> str:
    """The folder of a split's samples, models and reports: the dataset's own for
    leave-one-out (where they always were), ``<dataset>/<split>`` for another split."""
    return dataset if split == "leave_one_out" else f"{dataset}/{split}"


# settings.py's config loader, here so that reading the parameters outside a run sees what a
# run sees. The declared datasets (datasets.yml, datasets/**) are parameters (`datasets`),
# merged softly across environments, so conf/local/datasets.yml adds a private log to the
# shipped ones instead of replacing them all.
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "config_patterns": {
        "parameters": ["parameters*", "parameters*/**", "**/parameters*", "datasets.yml", "datasets/**"],
        # features.engine=spark (hooks.SparkHook): the session (spark.yml) and the
        # feature stage's datasets as Spark DataFrames (datasets_spark.yml).
        "spark": ["spark*", "spark*/**"], "spark_catalog": ["datasets_spark*"],
    },
    "merge_strategy": {"parameters": "soft"},
    "custom_resolvers": {"split_folder": split_folder},
}


def load_parameters(project: Path = REPO_ROOT, runtime_params: dict[str, Any] | None = None,
                    env: str = "local") -> dict[str, Any]:
    """conf/base (+ ``env``) parameters of ``project`` as `kedro run --params` would resolve them."""
    with warnings.catch_warnings():  # OmegaConf's resolver-API deprecation, not ours
        warnings.simplefilter("ignore", UserWarning)
        loader = OmegaConfigLoader(str(Path(project) / "conf"), **{**CONFIG_LOADER_ARGS, "default_run_env": env},
                                   runtime_params=runtime_params or {})
        return loader["parameters"]
