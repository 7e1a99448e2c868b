"""The checked parameters of the current run, from which the pipelines are built.

Which nodes exist depends on parameters (``methods``, ``personalization.duet.warm_start``),
so the project hook records the run's :class:`Selection` when Kedro creates the context,
before Kedro builds the pipelines; outside a session the project's conf/ is read.
"""
from __future__ import annotations

from pathlib import Path

from duet_pipeline.project import load_parameters
from duet_pipeline.run_parameters import Selection, check_parameters

__all__ = ["Selection", "current", "record"]

_recorded: list[Selection] = []


def record(selection: Selection) -> bool:
    """Make ``selection`` the current one; True if it replaces a different one (pipelines
    built from that one are stale)."""
    changed = bool(_recorded) and _recorded[-1] != selection
    _recorded[:] = [selection]
    return changed


def current() -> Selection:
    if not _recorded:
        _recorded.append(check_parameters(load_parameters(Path.cwd())))
    return _recorded[-1]
