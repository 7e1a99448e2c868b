"""What a run shows on a terminal and what it writes when piped.

- :func:`progress`: tqdm bars only on a terminal (``disable=None``), and never when the
  run's ``progress`` parameter is off; piped output gets no bar (a bar written to a
  file is one line of carriage returns). A process that runs beside others (a worker of
  the project's runner, runner.py) draws its bars on its own line (``DUET_PROGRESS_LINE``).
- :func:`configure_console` (called from settings.py, so once per Kedro command):
  Kedro's rich log handler stays on a terminal; when stderr is not one, it is replaced
  by a plain one line per record handler, so piped logs are not wrapped at 80 columns.
  Every record also goes to ``logs/kedro.log``, where a failed run's traceback is written.
- :data:`KNOWN_WARNINGS`: third-party warnings a plain ``kedro run`` would print that the
  project cannot fix at their source (each names where it comes from), filtered by
  message so that any other warning still shows. :func:`silence_known_warnings` runs as
  a ``kedro.init`` entry point (pyproject.toml), before Kedro imports its plugins. It
  also filters Kedro's ``py.warnings`` log records, because MLflow re-enables its own
  warnings inside ``warnings.catch_warnings()``, past any warnings filter.
"""
from __future__ import annotations

import logging
import logging.handlers
import os
import re
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

LOG_FILE = Path("logs") / "kedro.log"
PLAIN_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# The terminal line (0, 1, ...) on which this process draws its progress bars.
PROGRESS_LINE = "DUET_PROGRESS_LINE"

KNOWN_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    # Kedro's and kedro-mlflow's own calls to OmegaConf (kedro 1.7, kedro-mlflow 2.0.3).
    (r"register_new_resolver\(\) is deprecated", UserWarning),
    # MLflow, on kedro-mlflow's KedroPipelineModel class (imported by the plugin).
    (r".*Add type hints to the `predict` method", UserWarning),
    # MLflow's SQLAlchemy store (mlflow 3.17).
    (r"The ``noload`` loader strategy is deprecated", Warning),
    # torch.onnx's exporter, on torch's own pytree (torch 2.13).
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning),
    # pyspark 4.3 on pandas 3, on its own version check: the spark engine converts nothing
    # to or from pandas (features/spark_samples.py).
    (r"PySpark does not yet fully support pandas >= 3", FutureWarning),
)


def progress(iterable: Iterable | None = None, enabled: bool = True, **options: Any) -> tqdm:
    """A tqdm bar, shown only on a terminal and only when ``enabled``."""
    line = os.environ.get(PROGRESS_LINE, "")
    if line.isdigit():
        options.setdefault("position", int(line))
    return tqdm(iterable, disable=None if enabled else True, **options)


# Third-party log records about a choice the project made on purpose: (logger, message).
KNOWN_RECORDS: tuple[tuple[str, str], ...] = (
    # kedro-viz 12.5's run-status tracking, on every run of the project's parallel runner
    # (runner.py); `kedro run --runner=SequentialRunner` records the status for `kedro viz`.
    ("kedro_viz.integrations.kedro.run_hooks", r"Workflow tracking is disabled for non-sequential runners"),
)


class KnownWarningsFilter(logging.Filter):
    """Drops the records of ``patterns`` (by default the ``py.warnings`` records of
    :data:`KNOWN_WARNINGS`)."""

    def __init__(self, patterns: list[str] | None = None) -> None:
        super().__init__()
        self.patterns = [re.compile(p) for p in (patterns or [message for message, _ in KNOWN_WARNINGS])]

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not any(pattern.search(text) for pattern in self.patterns)


def silence_known_warnings() -> None:
    for message, category in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    captured = logging.getLogger("py.warnings")
    if not any(isinstance(f, KnownWarningsFilter) for f in captured.filters):
        captured.addFilter(KnownWarningsFilter())
    for name, message in KNOWN_RECORDS:
        source = logging.getLogger(name)
        if not any(isinstance(f, KnownWarningsFilter) for f in source.filters):
            source.addFilter(KnownWarningsFilter([message]))


def configure_console(log_file: Path = LOG_FILE) -> None:
    silence_known_warnings()
    root = logging.getLogger()
    if not sys.stderr.isatty():
        for handler in [h for h in root.handlers if type(h).__module__.startswith(("rich", "kedro.logging"))]:
            root.removeHandler(handler)
            plain = logging.StreamHandler(sys.stderr)
            plain.setFormatter(logging.Formatter(PLAIN_FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
            plain.setLevel(handler.level)
            root.addHandler(plain)
    if not any(isinstance(h, logging.FileHandler) and Path(h.baseFilename) == log_file.resolve() for h in root.handlers):
        log_file.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.handlers.RotatingFileHandler(log_file, maxBytes=10_000_000, backupCount=5,
                                                       encoding="utf-8", delay=True)
        to_file.setFormatter(logging.Formatter(PLAIN_FORMAT))
        to_file.setLevel(logging.INFO)
        root.addHandler(to_file)
