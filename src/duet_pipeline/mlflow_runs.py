"""A ``kedro run``'s MLflow run ends as what happened to the process.

- Finished or failed: kedro-mlflow ends it FINISHED or FAILED (the hooks tag ``outcome``).
- Stopped by SIGINT (Ctrl-C) or SIGTERM: the CLI (cli.py) ends it KILLED with the signal
  and the node it was running (:func:`end_interrupted_run`), then exits 130 or 143. Without
  this, MLflow's exit handler would end an interrupted run FINISHED.
- Killed by SIGKILL (nothing can run): every run records its ``host`` and ``pid``
  (:func:`process_tags`), and the next run on the same host ends KILLED every run still
  RUNNING whose process is gone (:func:`close_orphaned_runs`).
"""
from __future__ import annotations

import logging
import os
import signal
from typing import Any

import mlflow
from mlflow.entities import RunStatus

from duet_pipeline.processes import gone, this_host

logger = logging.getLogger(__name__)

# The node the run is in (set by the hooks); read when a signal ends the run.
CURRENT_RUN: dict[str, str | None] = {"node": None}
KILLED = RunStatus.to_string(RunStatus.KILLED)


def process_tags() -> dict[str, str]:
    return {"host": this_host(), "pid": str(os.getpid())}


def close_orphaned_runs(client: mlflow.MlflowClient, experiment_id: str) -> list[str]:
    """End KILLED the RUNNING runs of this host whose process no longer exists."""
    closed = []
    for run in client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000):
        pid = run.data.tags.get("pid", "")
        if not pid.isdigit() or not gone(int(pid), run.data.tags.get("host", "")):
            continue
        client.set_tag(run.info.run_id, "outcome", "killed: its process ended without closing the run")
        client.set_terminated(run.info.run_id, KILLED)
        closed.append(run.info.run_id)
    if closed:
        logger.warning("Marked %d MLflow run(s) KILLED: their processes on %s are gone", len(closed), this_host())
    return closed


def end_interrupted_run(signum: int) -> None:
    """End the active run (and any nested ones) KILLED, tagged with the signal and node."""
    while (run := mlflow.active_run()) is not None:
        mlflow.set_tags({"outcome": f"killed by {signal.Signals(signum).name}",
                         "interrupted_at_node": CURRENT_RUN["node"] or "-"})
        mlflow.end_run(KILLED)
        logger.warning("MLflow run %s ended KILLED (%s)", run.info.run_id, signal.Signals(signum).name)


def terminate_on_signal(signum: int, frame: Any) -> None:
    """SIGTERM handler: unwind like Ctrl-C does, so the CLI can end the run KILLED."""
    raise Terminated(signum)


class Terminated(BaseException):
    """Raised by the SIGTERM handler (a BaseException, as KeyboardInterrupt: not a failure
    of the run's code, so its versions are kept and a rerun can resume from them)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
