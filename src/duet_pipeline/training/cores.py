"""Sharing the CPU cores between this project's concurrent PyTorch processes.

PyTorch's OpenMP threads spin while they wait for each other. Two processes that each
run one thread per core (PyTorch's default) on the same cores therefore stall each
other: on the 2-core development machine two trainings side by side kept 13% of their
solo speed each, while with one thread each they kept 75-80% (docs/benchmarks.md).

So every training registers itself in a folder shared by the machine's users of this
library (one empty file per process, named by its pid) and, every few batches, sets its
thread count to ``cores // active trainings``: alone it uses every core, beside another
it uses its share, and when the other finishes it takes the cores back. Files of
processes that died are ignored (their pid is gone) and removed.

Override: ``DUET_THREADS=N`` (or ``OMP_NUM_THREADS=N``) fixes the thread count and turns
the sharing off; ``DUET_CORES_DIR`` moves the registry folder.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from types import TracebackType

import torch

from duet_pipeline.processes import alive


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, not the machine's total)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def fixed_threads() -> int | None:
    """The thread count the user fixed by environment, if any (DUET_THREADS first)."""
    for variable in ("DUET_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(variable, "").strip()
        if value:
            if not value.isdigit() or int(value) < 1:
                raise ValueError(f"environment variable {variable} = {value!r}: must be a whole number >= 1")
            return int(value)
    return None


def registry_folder() -> Path:
    default = Path(tempfile.gettempdir()) / f"duet-pipeline-cores-{os.getuid()}"
    return Path(os.environ.get("DUET_CORES_DIR", default))


class CoreShare:
    """Context manager: while inside, this process counts as one active training and
    :meth:`adjust` keeps its thread count at its share of the cores."""

    def __init__(self, folder: Path | None = None, cores: int | None = None) -> None:
        self.folder = folder or registry_folder()
        self.cores = cores or available_cores()
        self.fixed = fixed_threads()
        self._entry: Path | None = None
        self._threads_before = torch.get_num_threads()

    def __enter__(self) -> "CoreShare":
        self._threads_before = torch.get_num_threads()
        if self.fixed is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._entry = self.folder / str(os.getpid())
            self._entry.touch()
        self.adjust()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._entry is not None:
            self._entry.unlink(missing_ok=True)
            self._entry = None
        torch.set_num_threads(self._threads_before)

    def active(self) -> int:
        """Live registered trainings, this one included; removes entries of dead processes."""
        count = 0
        for entry in self.folder.iterdir():
            if not entry.name.isdigit():
                continue
            if alive(int(entry.name)):
                count += 1
            else:
                entry.unlink(missing_ok=True)
        return max(count, 1)

    def share(self) -> int:
        """The thread count this process should use now."""
        if self.fixed is not None:
            return self.fixed
        return max(1, self.cores // self.active())

    def adjust(self) -> int:
        """Set and return this process's thread count (cheap: one directory listing)."""
        threads = self.share()
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)
        return threads
