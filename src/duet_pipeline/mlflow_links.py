"""Links that land on each experiment's runs table in the MLflow UI.

MLflow 3.17 opens an experiment picked from its list on a GenAI "Overview" page (traces,
"No data" for this project); ``#/experiments/<id>/runs`` opens its runs table.

    python -m duet_pipeline.mlflow_links sqlite:///mlflow.db http://127.0.0.1:5000
"""
from __future__ import annotations

import sys

from mlflow.tracking import MlflowClient


def runs_links(tracking_uri: str, ui: str) -> dict[str, str]:
    """Experiment name -> the URL of its runs table (the Default experiment left out)."""
    client = MlflowClient(tracking_uri)
    return {e.name: f"{ui.rstrip('/')}/#/experiments/{e.experiment_id}/runs"
            for e in client.search_experiments() if e.name != "Default"}


def main(argv: list[str]) -> None:
    tracking_uri, ui = argv
    links = runs_links(tracking_uri, ui)
    if not links:
        print(f"no experiments in {tracking_uri} yet: `make run` or `make benchmark` first")
    for name, link in links.items():
        print(f"{name}: {link}")


if __name__ == "__main__":
    main(sys.argv[1:])
