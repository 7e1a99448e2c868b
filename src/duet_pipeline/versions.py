"""Which versions of the catalog's datasets later runs load: a failed run's are set
aside, and no save that was cut short ever becomes one (atomic saves, below).

Kedro loads a versioned dataset's newest version folder (``<file>/<version>/<file>``).
A run that fails has already saved the outputs of the nodes before the failing one under
its own version; left there, they would be what ``--from-nodes`` or the next partial run
loads (the samples of a run whose parameters broke training, say). So a failed run's
version folders are set aside under ``data/09_failed_runs/<version>/`` (same relative
paths, kept for inspection, outside every glob Kedro reads), and the previous complete
versions are the newest again. Runs stopped by a signal keep their versions: every file
they finished is complete, and resuming from them is the point.

A run's save version is its Kedro session id, a millisecond timestamp; two runs started
in the same millisecond (a grid's two jobs, two terminals) would write into one version
folder and the second save would fail. :func:`unique_session_timestamp` replaces Kedro's
timestamp with one no other run of this user on this machine has taken.
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from kedro.io.core import VERSION_FORMAT, DatasetError, Version, generate_timestamp

from duet_pipeline.processes import owner_gone, owner_tag

logger = logging.getLogger(__name__)

FAILED_RUNS = Path("data") / "09_failed_runs"
# The newest session timestamp taken by any run of this user on this machine.
SESSION_CLAIMS = Path(tempfile.gettempdir()) / f"duet-pipeline-{os.getuid()}-last-session"


def unique_session_timestamp(claims: Path = SESSION_CLAIMS) -> str:
    """Kedro's version timestamp, later than every one taken before it (under a file lock).

    When the clock has not moved past the last one taken (same millisecond, or a clock set
    back), the answer is the last one plus a millisecond: strictly increasing, no waiting.
    """
    with claims.open("a+", encoding="ascii") as file:
        fcntl.flock(file, fcntl.LOCK_EX)  # released when the file closes
        file.seek(0)
        last = file.read().strip()
        stamp = generate_timestamp()
        if last and stamp <= last:  # fixed-width timestamps compare as strings
            stamp = _timestamp(_parse_timestamp(last) + timedelta(milliseconds=1))
        file.seek(0)
        file.truncate()
        file.write(stamp)
    return stamp


def _parse_timestamp(stamp: str) -> datetime:
    # Kedro's format keeps three of %f's six digits: "2026-12-02T06.18.04.452Z".
    return datetime.strptime(stamp[:-1] + "000Z", VERSION_FORMAT).replace(tzinfo=timezone.utc)


def _timestamp(moment: datetime) -> str:
    text = moment.strftime(VERSION_FORMAT)
    return text[:-4] + text[-1:]  # as kedro.io.core.generate_timestamp trims it


def saved_versions(project: Path, save_version: str, failed_runs: Path = FAILED_RUNS) -> list[Path]:
    """The version folders a run wrote: every folder under ``data/`` named its save version
    (its own, :func:`unique_session_timestamp`), whichever process saved them."""
    already_aside = (project / failed_runs).resolve()
    return sorted(folder for folder in (project / "data").rglob(save_version)
                  if folder.is_dir() and not folder.resolve().is_relative_to(already_aside))


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


# --------------------------------------------------------------------------- #
# Atomic saves
# --------------------------------------------------------------------------- #
# Kedro writes a version in place (<file>/<version>/<file>) and takes the newest folder
# holding <file> as the latest version. A save cut short (a crash, a kill, a full disk)
# would leave a truncated newest version. So every versioned save writes
# <file>/<version>/.<file>.partial (a file or a folder) and renames it to <file> once
# complete: until then the version does not exist for Kedro's glob, and the previous one
# stays the latest. Leftover partials are ignored on load and removed by a later run.
#
# A partial's name says who writes it (".<file>.pid<pid>@<host>.partial"): a run starting
# beside another must not delete the save the other is in the middle of (it did, and the
# other run's save failed). So a run removes only partials whose writer is gone
# (duet_pipeline.processes.owner_gone): on this host and no longer running.
PARTIAL_SUFFIX = ".partial"
_ATOMIC_TYPES: dict[type, type] = {}


def partial_path(final: Path, pid: int | None = None, host: str | None = None) -> Path:
    """Where ``final`` is written until it is complete, by this process unless named."""
    return final.with_name(f".{final.name}.{owner_tag(pid, host)}{PARTIAL_SUFFIX}")


def make_atomic(dataset: Any, name: str) -> None:
    """Give a versioned dataset the atomic save (once; unversioned ones are left alone)."""
    if getattr(dataset, "_version", None) is None or type(dataset) in _ATOMIC_TYPES.values():
        return
    dataset.__class__ = _atomic_type(type(dataset))
    dataset._atomic_name = name


def _atomic_type(base: type) -> type:
    if base not in _ATOMIC_TYPES:
        raw_save = base.save.__wrapped__  # the type's own save, inside Kedro's versioning wrapper

        def save(self: Any, data: Any) -> None:
            final = Path(str(self._get_save_path()))  # Kedro's check that the version is new
            partial = partial_path(final)
            self._get_save_path = lambda: type(self._filepath)(partial.as_posix())
            try:
                raw_save(self, data)
            except BaseException as error:
                _remove(partial)
                if _disk_full(error):  # one line naming the dataset and the space needed
                    raise DatasetError(disk_full_message(self._atomic_name, final)) from error
                raise
            finally:
                del self._get_save_path
            os.replace(partial, final)
            # This run reads back what it wrote, not a newer version another run saved since.
            self._version = Version(final.parent.name, final.parent.name)

        def __reduce__(self: Any) -> tuple:
            # A type made here cannot be found by name: a copy sent to a worker process
            # (runner.py) is rebuilt from its base type, and saves atomically there too.
            return _rebuild_atomic, (base, self.__dict__)

        # Kedro wraps a subclass's own save with its versioning (version resolution, checks).
        _ATOMIC_TYPES[base] = type(f"Atomic{base.__name__}", (base,),
                                   {"save": save, "__reduce__": __reduce__, "__module__": base.__module__})
    return _ATOMIC_TYPES[base]


def _rebuild_atomic(base: type, state: dict[str, Any]) -> Any:
    dataset = object.__new__(_atomic_type(base))
    dataset.__dict__.update(state)
    return dataset


def disk_full_message(name: str, final: Path) -> str:
    """``name`` could not be saved: the free space here, and about how much it needs (the
    size of its previous version, the best estimate before the save completes)."""
    folder = final.parent.parent
    previous = [v / final.name for v in folder.iterdir() if (v / final.name).exists()] if folder.exists() else []
    needed = max((_size(p) for p in previous), default=0)
    free = shutil.disk_usage(folder if folder.exists() else Path.cwd()).free
    need = f"about {_megabytes(needed)} (its previous version's size)" if needed else "more than is free"
    return (f"disk full while saving dataset '{name}' to {final} (No space left on device): {_megabytes(free)} free, "
            f"it needs {need}; free some space and run again (the previous version stays the latest)")


def remove_partials(data: Path) -> list[Path]:
    """Delete partial saves whose writer is gone (interrupted runs), and the version
    folders they leave empty; a live run's partials are left alone."""
    found = sorted(data.rglob(f".*{PARTIAL_SUFFIX}")) if data.exists() else []
    removed = [path for path in found if owner_gone(path.name)]
    for path in removed:
        _remove(path)
        if path.parent.is_dir() and not any(path.parent.iterdir()):
            path.parent.rmdir()
    if removed:
        logger.info("Removed %d partial save(s) left by an interrupted run", len(removed))
    return removed


def _disk_full(error: BaseException | None) -> bool:
    """ENOSPC anywhere in the chain (datasets wrap the writer's OSError in their own error)."""
    while error is not None:
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return True
        error = error.__cause__ or error.__context__
    return False


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"
