"""Which versions of the catalog's datasets later runs load.

Kedro loads a versioned dataset's newest version folder (``<file>/<version>/<file>``).
A run that fails has already saved the outputs of the nodes before the failing one under
its own version; left there, they would be what ``--from-nodes`` or the next partial run
loads (the samples of a run whose parameters broke training, say). So a failed run's
version folders are set aside under ``data/09_failed_runs/<version>/`` (same relative
paths, kept for inspection, outside every glob Kedro reads), and the previous complete
versions are the newest again. Runs stopped by a signal keep their versions: every file
they finished is complete, and resuming from them is the point.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

FAILED_RUNS = Path("data") / "09_failed_runs"


def saved_version_folder(dataset: Any) -> Path | None:
    """The version folder a versioned dataset has just written, or None if unversioned."""
    if getattr(dataset, "_version", None) is None:
        return None
    return Path(str(dataset._get_load_path())).parent


def set_aside(folders: list[Path], project: Path, failed_runs: Path = FAILED_RUNS) -> list[Path]:
    """Move each version folder under ``failed_runs/<version>/<its path in project>``."""
    moved = []
    for folder in folders:
        if not folder.is_dir():
            continue
        relative = folder.resolve().relative_to(project.resolve())
        target = project / failed_runs / folder.name / relative.parent
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(folder), str(target))
        moved.append(target)
    if moved:
        logger.warning("The run failed: its %d saved version(s) were set aside under %s; the previous "
                       "versions are the newest again.", len(moved), project / failed_runs / folders[0].name)
    return moved
