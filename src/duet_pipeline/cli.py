"""The project's ``kedro run``: Kedro's own command, with errors a user can read.

Kedro finds this module (``<package>.cli``) and its ``run`` replaces the built-in one.
It takes every option of Kedro's ``run`` and adds ``--verbose``. A run that fails prints
one line naming the error (a parameter, a file and line, a dataset), with the full
traceback written to logs/kedro.log; ``--verbose`` prints the traceback instead. A run
stopped by SIGINT or SIGTERM ends its MLflow run KILLED and exits 130 or 143
(:mod:`duet_pipeline.mlflow_runs`). Without ``--runner`` it uses the project's runner, which
runs independent nodes at once, one process per core (:mod:`duet_pipeline.runner`);
``--runner=SequentialRunner`` runs one node at a time.
"""
from __future__ import annotations

import signal
import sys
import traceback
from concurrent.futures.process import _RemoteTraceback
from typing import Any

import click
from kedro.framework.cli.project import run as kedro_run

from duet_pipeline.console import LOG_FILE
from duet_pipeline.mlflow_runs import Terminated, end_interrupted_run, terminate_on_signal


@click.group(name="duet-pipeline")
def cli() -> None:
    """Commands of the duet-pipeline project."""


def one_line(error: BaseException) -> str:
    """The error and its first cause, on one line: ``DatasetError: ... (cause: ...)``. The
    traceback a worker process attaches as the cause (runner.py) is the log file's to show."""
    text = f"{type(error).__name__}: {' '.join(str(error).split())}"
    cause = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    if isinstance(cause, _RemoteTraceback):
        cause = None
    if cause is not None and str(cause) and str(cause) not in str(error):
        text += f" (cause: {type(cause).__name__}: {' '.join(str(cause).split())})"
    return text


def write_traceback(error: BaseException) -> None:
    LOG_FILE.parent.mkdir(parents=True, exist_ok=True)
    with LOG_FILE.open("a", encoding="utf-8") as log:
        log.write("".join(traceback.format_exception(error)))


DEFAULT_RUNNER = "duet_pipeline.runner.CoreRunner"


def with_replay_split(options: dict[str, Any]) -> dict[str, Any]:
    """``--pipelines=replay`` evaluates the replay split: it sets ``features.split=replay``
    unless the command line sets the split itself."""
    pipelines = options.get("pipelines") or options.get("pipeline") or ()
    names = pipelines.split(",") if isinstance(pipelines, str) else list(pipelines)
    params = dict(options.get("params") or {})
    features = params.get("features")
    if "replay" in names and not (isinstance(features, dict) and "split" in features):
        params["features"] = {**(features if isinstance(features, dict) else {}), "split": "replay"}
    return {**options, "params": params}


def guarded_run(verbose: bool, **options: Any) -> Any:
    signal.signal(signal.SIGTERM, terminate_on_signal)
    options = with_replay_split(options)
    options["runner"] = options.get("runner") or DEFAULT_RUNNER
    try:
        return kedro_run.callback(**options)
    except (KeyboardInterrupt, Terminated) as stop:
        signum = stop.signum if isinstance(stop, Terminated) else signal.SIGINT
        end_interrupted_run(signum)
        click.secho(f"Stopped by {signal.Signals(signum).name}: every version saved so far is complete; "
                    "a rerun (or --from-nodes) continues from them.", fg="yellow", err=True)
        sys.exit(128 + signum)
    except click.exceptions.Exit:
        raise
    except Exception as error:  # noqa: BLE001 - every failure gets the same one-line report
        if verbose:
            raise
        write_traceback(error)
        click.secho(f"Error: {one_line(error)}", fg="red", err=True)
        click.echo(f"The full traceback is in {LOG_FILE}; `kedro run --verbose ...` prints it.", err=True)
        sys.exit(1)


run = click.Command(
    "run", callback=guarded_run, help=kedro_run.help, short_help=kedro_run.short_help,
    params=[*kedro_run.params, click.Option(["--verbose", "-v"], is_flag=True,
                                             help="On failure, print the full traceback.")],
)
cli.add_command(run)
