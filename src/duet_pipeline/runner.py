"""The project's default runner: independent nodes at once, one worker process per core.

``kedro run`` without ``--runner`` uses :class:`CoreRunner` (cli.py makes it the default);
``--runner=SequentialRunner`` runs one node at a time in the ``kedro`` process, as Kedro
does by default. In the default pipeline the base model and DUET+SWA train at once, then
fine-tuning runs beside DUET's personalisation.

**Same numbers whatever runs beside a node.** PyTorch's thread count changes how float sums
are split, so a node's thread count is fixed by the pipeline's shape, never by timing: a
node that can overlap another (neither depends on the other) runs with ``cores // workers``
threads (one on two cores); a node that nothing can overlap (ingestion, reports) keeps every
core. A pipeline without two independent nodes runs in the ``kedro`` process with every
core, as ``SequentialRunner`` would. So the default run's metrics are bit-identical to
``OMP_NUM_THREADS=1 kedro run --runner=SequentialRunner`` (``make benchmark-kedro-run``
checks it). ``DUET_THREADS=N`` or ``OMP_NUM_THREADS=N`` fixes every node's thread count.

**Kedro's guarantees kept across processes.** Workers are forked from the ``kedro``
process, so they hold the run's hooks and its active MLflow run; node and dataset hooks run
in the worker, where the node runs. The parent keeps what it needs without them: the nodes
in flight (for the tag of an interrupted run), a failed node's name (carried on its error),
and the run's versions (found by the run's save version, :mod:`duet_pipeline.versions`).
Workers ignore SIGINT and die with the ``kedro`` process (``PR_SET_PDEATHSIG``); when a node
fails or the run is stopped, the other workers are killed at once, so nothing saves after
the run has ended (a save they were in leaves a partial that the next run removes).
Progress bars of concurrent nodes take one terminal line each.

Datasets that must stay in one process (Kedro's ``_SINGLE_PROCESS``: the Spark engine's)
make the run sequential, and so does a multi-node training (``training.distributed.nodes``
> 1): each training is one rendezvous, which every node must reach in the same order.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Callable

import torch
from kedro.pipeline import Pipeline
from kedro.pipeline.node import Node
from kedro.runner import AbstractRunner, ParallelRunner, SequentialRunner
from kedro.runner.parallel_runner import ParallelRunnerManager
from tqdm import tqdm

from duet_pipeline.console import PROGRESS_LINE
from duet_pipeline.mlflow_runs import CURRENT_RUN
from duet_pipeline.pipelines.selection import current
from duet_pipeline.processes import die_with_parent
from duet_pipeline.training.cores import available_cores, fixed_threads

class CoreRunner(ParallelRunner):
    """Kedro's ``ParallelRunner`` with one worker per core and fixed thread counts per node."""

    def __init__(self, max_workers: int | None = None, is_async: bool = False) -> None:
        # ParallelRunner.__init__, except that Kedro's manager process (it serves the
        # MemoryDatasets shared between workers) dies with the run as the workers do: left
        # behind a killed run, it would hold the run's stdout open.
        AbstractRunner.__init__(self, is_async=is_async)
        self._manager = ParallelRunnerManager()
        self._manager.start(initializer=_die_with_parent)
        self._max_workers = self._validate_max_workers(max_workers or available_cores())
        self._threads: dict[str, int] = {}

    def _run(self, pipeline: Pipeline, catalog: Any, hook_manager: Any = None, run_id: str | None = None) -> None:
        workers = self._get_required_workers_count(pipeline)
        one_at_a_time = ("no two of its nodes are independent" if workers <= 1
                         else "workers are forked, which needs Linux" if sys.platform != "linux"
                         else "a dataset must stay in one process (Spark)"
                         if _single_process_datasets(pipeline, catalog)
                         else "every node of a multi-node training runs its trainings in the same order"
                         if current().distributed.nodes > 1 else None)
        if one_at_a_time:
            self._logger.info("Running the nodes one after the other in this process: %s", one_at_a_time)
            SequentialRunner(is_async=self._is_async)._run(pipeline, catalog, hook_manager, run_id)
            return
        self._threads = thread_plan(pipeline, available_cores(), workers)
        super()._run(pipeline, catalog, hook_manager, run_id)

    def _get_executor(self, max_workers: int) -> ProcessPoolExecutor:
        return NodeExecutor(max_workers, self._threads)


def thread_plan(pipeline: Pipeline, cores: int, workers: int) -> dict[str, int]:
    """Each node's thread count: every core for a node that no other node can overlap,
    ``cores // workers`` for the others; the user's fixed count for all when one is set."""
    fixed = fixed_threads()
    parents = pipeline.node_dependencies
    children: dict[Node, set[Node]] = {node: set() for node in parents}
    for node, ups in parents.items():
        for up in ups:
            children[up].add(node)
    plan = {}
    for node in parents:
        related = _reachable(node, parents) | _reachable(node, children) | {node}
        alone = len(related) == len(parents)
        plan[node.name] = fixed or (cores if alone else max(1, cores // workers))
    return plan


def _reachable(start: Node, edges: dict[Node, set[Node]]) -> set[Node]:
    seen, todo = set(), list(edges[start])
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(edges[node])
    return seen


def _single_process_datasets(pipeline: Pipeline, catalog: Any) -> bool:
    return any(getattr(catalog.get(name), "_SINGLE_PROCESS", False) for name in pipeline.datasets()
               if name in catalog)


class NodeExecutor(ProcessPoolExecutor):
    """Forked workers that run each node with its planned thread count; the nodes in flight
    are recorded in the parent, and an error or a stop kills the workers at once."""

    def __init__(self, max_workers: int, threads: dict[str, int]) -> None:
        context = multiprocessing.get_context("fork")
        tqdm.set_lock(context.RLock())  # bars of concurrent nodes do not write over each other
        slots = context.Value("i", 0)
        super().__init__(max_workers=max_workers, mp_context=context, initializer=_start_worker,
                         initargs=(slots,))
        self._threads = threads
        self._running: set[str] = set()
        self._stopping = False

    def submit(self, task: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        name = task.node.name
        future = super().submit(_run_with_threads, task, self._threads.get(name, 1))
        self._running.add(name)
        self._show_running()
        future.add_done_callback(lambda _: self._finished(name))
        return future

    def _finished(self, name: str) -> None:
        if not self._stopping:  # a stopped run's tag names the nodes it was in
            self._running.discard(name)
            self._show_running()

    def _show_running(self) -> None:
        CURRENT_RUN["node"] = ", ".join(sorted(self._running)) or None

    def __exit__(self, kind: Any, error: Any, trace: Any) -> bool | None:
        if kind is not None:  # a node failed or the run was stopped: the others stop now
            self._stopping = True
            for process in list((self._processes or {}).values()):
                process.kill()
            self.shutdown(wait=True, cancel_futures=True)
            return None
        return super().__exit__(kind, error, trace)


def _die_with_parent() -> None:
    """This process gets SIGKILL when the ``kedro`` process ends, however it ends; SIGINT
    (Ctrl-C reaches the whole process group) is the ``kedro`` process's to handle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    die_with_parent()


def _start_worker(slots: Any) -> None:
    """In each worker: it dies with the parent, and its progress bars take their own line."""
    _die_with_parent()
    with slots.get_lock():
        os.environ[PROGRESS_LINE] = str(slots.value)
        slots.value += 1


def _run_with_threads(task: Any, threads: int) -> Node:
    os.environ["DUET_THREADS"] = str(threads)  # fixed: training/cores.py does not share
    torch.set_num_threads(threads)
    return task.execute()
