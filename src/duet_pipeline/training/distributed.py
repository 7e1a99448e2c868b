"""``training.distributed``: one training as nodes x processes DistributedDataParallel replicas.

torch.distributed's elastic launcher (what ``torchrun`` runs) starts ``processes``
replicas on this machine and has them join a c10d rendezvous: a free port on 127.0.0.1
when this machine is the only node, else ``rendezvous`` (host:port), which every node's
``kedro run`` joins with the same run id. Each replica runs
:func:`~duet_pipeline.training.loop.fit_replica` on its slice of every global batch, DDP
averages the gradients (gloo on the CPU, nccl on CUDA), and this node's first replica
returns the result. Every replica reads the same batches in the same order and evaluates
the same validation rows (rank 0's figure decides, so epoch selection and early stopping
agree), and without dropout the loss of each step is the single-process one to float
rounding (tests/training/test_distributed.py, tests/pipelines/test_multi_node.py).

A training is one rendezvous: the nodes must run their trainings in the same order, so a
multi-node ``kedro run`` runs its nodes one after the other (runner.py). When a node is
lost, the others' next collective fails (at once when its processes died, after
``timeout_s`` when its machine went silent) and each raises :class:`NodeLost`, one line
naming the rendezvous and the lost node.
"""
from __future__ import annotations

import copy
import os
import re
import socket
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from duet_pipeline.processes import die_with_parent, free_port
from duet_pipeline.samples import SampleTensors

from .loop import DistributedParams, FitResult, Replica, RowLoss, TrainingConfig, TrainSource, fit_replica, resolve_device
from .tensors import CompactSamples


class NodeLost(RuntimeError):
    """A multi-node training lost a node (or its rendezvous): the message says which."""


def fit_distributed(model: nn.Module, train: TrainSource, validation: SampleTensors | CompactSamples, config: TrainingConfig,
                    description: str, loss_fn: RowLoss) -> FitResult:
    """:func:`~duet_pipeline.training.loop.fit` over ``config.distributed``'s replicas;
    every node gets the same result (the replicas' models are kept identical by DDP)."""
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    spread = config.distributed
    endpoint = spread.rendezvous or f"127.0.0.1:{free_port()}"
    launch = LaunchConfig(min_nodes=spread.nodes, max_nodes=spread.nodes, nproc_per_node=spread.processes,
                          run_id=run_id(description, spread), rdzv_backend="c10d", rdzv_endpoint=endpoint,
                          # Node 0 hosts the rendezvous store (at its address: `rendezvous`), so a
                          # lost store means a lost node 0; the others wait for it as for a join.
                          rdzv_configs={"join_timeout": spread.timeout_s, "read_timeout": spread.timeout_s,
                                        "is_host": spread.node_rank == 0},
                          max_restarts=0, start_method="spawn")
    with tempfile.TemporaryDirectory(prefix="duet-ddp-") as reports:
        try:
            results = elastic_launch(launch, _replica)(model.cpu(), train, validation, config, description, loss_fn,
                                                       endpoint, reports)
        except Exception as error:
            # A lost peer, as a replica saw it, or a rendezvous (node 0's store) that broke
            # off; any other error is the training's own and goes on as it is.
            if spread.nodes == 1 or not (any(Path(reports).iterdir()) or _rendezvous_failed(error, spread)):
                raise
            raise NodeLost(_failure_line(Path(reports), error, spread, endpoint, description)) from None
    return next(result for result in results.values() if result is not None)


def run_id(description: str, spread: DistributedParams) -> str:
    """The rendezvous id of one training: the same on every node (named by the training),
    unique to this process on a machine alone (two runs there never meet)."""
    if spread.nodes == 1:
        return f"duet-{os.getpid()}-{re.sub(r'[^A-Za-z0-9]+', '-', description)}"
    return f"duet-{re.sub(r'[^A-Za-z0-9]+', '-', description)}"


def _replica(model: nn.Module, train: TrainSource, validation: SampleTensors | CompactSamples, config: TrainingConfig,
             description: str, loss_fn: RowLoss, endpoint: str, reports: str) -> FitResult | None:
    """One process of the launch: join the group, train its share; this node's first
    replica returns the result."""
    die_with_parent()  # a killed node takes its replicas with it, as a lost machine would
    rank, world, local_rank = (int(os.environ[name]) for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    spread = config.distributed
    # New tensors in the model's dtype, as in the calling process (a spawned process starts
    # from float32; the equivalence tests train in float64).
    torch.set_default_dtype(next(t.dtype for t in model.parameters() if t.is_floating_point()))
    cuda = resolve_device(config.device).type == "cuda"
    if cuda:
        torch.cuda.set_device(local_rank)
    # On CUDA, nccl for the gradients and gloo for the CPU scalars rank 0 broadcasts
    # (the kept epoch's validation figure): an nccl-only group has no CPU backend.
    torch.distributed.init_process_group("cpu:gloo,cuda:nccl" if cuda else "gloo",
                                         timeout=timedelta(seconds=spread.timeout_s))
    try:
        places: list[tuple[int, str]] = [(0, "")] * world  # each rank's (node_rank, address)
        torch.distributed.all_gather_object(places, (spread.node_rank, _address()))
        if spread.nodes > 1 and local_rank == 0:  # the replicas' own output reaches the terminal
            print(f"{description}: node {spread.node_rank} of {spread.nodes} joined rendezvous {endpoint} "
                  f"(ranks {rank} to {rank + spread.processes - 1} of {world})", file=sys.stderr, flush=True)
        try:
            result = _train_share(model, train, validation, config, description, loss_fn, Replica(rank, world),
                                  local_rank if cuda else None)
        except Exception as error:
            if _lost_peer(error):
                (Path(reports) / f"rank-{rank}.txt").write_text(_lost_nodes(error, places, spread.node_rank))
            raise
    finally:
        torch.distributed.destroy_process_group()
    return result if local_rank == 0 else None


def _train_share(model: nn.Module, train: TrainSource, validation: SampleTensors | CompactSamples,
                 config: TrainingConfig, description: str, loss_fn: RowLoss, replica: Replica,
                 gpu: int | None) -> FitResult:
    """This replica's part of the training, in the joined process group."""
    # The launcher hands every replica the same shared-memory tensors: each must
    # own its parameters, or every optimiser step would land N times on one copy.
    model = copy.deepcopy(model).to(torch.device("cpu") if gpu is None else torch.device("cuda", gpu))
    # Dropout masks: seeded by the run and the rank (a spawned process starts from
    # torch's default seed). They differ from one process's masks, which cover the whole
    # batch at once; without dropout the steps are the single-process ones.
    torch.manual_seed(config.seed * 1_000 + replica.rank)
    # Some models hold parameters a forward pass does not use (e.g. the base model's
    # unused heads of a method bundle): DDP must not wait for their gradients.
    replicated = DistributedDataParallel(model, device_ids=None if gpu is None else [gpu],
                                         find_unused_parameters=True)
    return fit_replica(model, train, validation, config, description, None, loss_fn, replica, replicated)


def _lost_peer(error: Exception) -> bool:
    """Whether a replica's error is a collective that lost its peers (not a training error)."""
    return isinstance(error, torch.distributed.DistError) or "/gloo/transport/" in str(error)


def _lost_nodes(error: Exception, places: list[tuple[int, str]], this_node: int) -> str:
    """Which node(s) a failed collective lost: the others whose address the error names,
    or, where that does not tell them apart, every other node; and the error's gist."""
    others = sorted({node for node, _ in places if node != this_node})
    named = sorted({node for node, address in places if node != this_node and f"[{address}]" in str(error)})
    lost = named if named and len(named) < len(others) else others
    # "[.../gloo/transport/tcp/pair.cc:553] Connection closed by peer [ip]:port. This is ..."
    gist = re.sub(r"^\[[^\]]*\]\s*", "", str(error).strip().splitlines()[0]).split(". ")[0][:200]
    return f"lost node {', '.join(map(str, lost))} of {len(set(node for node, _ in places))} ({gist})"


def _failure_line(reports: Path, error: Exception, spread: DistributedParams, endpoint: str, description: str) -> str:
    """One line for a failed multi-node training: the rendezvous, the lost node, why."""
    found = sorted(reports.glob("rank-*.txt"))
    where = f"training {description} on rendezvous {endpoint} (this is node {spread.node_rank} of {spread.nodes})"
    if found:  # a replica's collective failed and said why
        return f"{where}: {found[0].read_text()}"
    cause = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:300] if str(error).strip() else '-'}"
    if "timeout" in type(error).__name__.lower():
        return f"{where}: not every node joined within training.distributed.timeout_s = {spread.timeout_s} s ({cause})"
    if spread.node_rank != 0:
        return f"{where}: lost node 0 of {spread.nodes}, which hosts the rendezvous ({cause})"
    return f"{where}: the rendezvous failed ({cause})"


def _rendezvous_failed(error: Exception, spread: DistributedParams) -> bool:
    """Whether the launcher itself failed on the rendezvous: a node did not join in time,
    or (on a node other than 0) node 0's store went away."""
    from torch.distributed.elastic.rendezvous import RendezvousError

    return isinstance(error, RendezvousError) or (spread.node_rank != 0 and "store" in str(error).lower())


def _address() -> str:
    """This machine's address as peers see it (what gloo names in a lost-peer error)."""
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return socket.gethostname()
