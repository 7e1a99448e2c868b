"""``training.distributed.processes: N``: one training as N DistributedDataParallel replicas.

torch.distributed's elastic launcher (what ``torchrun`` runs) starts N processes on
this machine; each runs :func:`~duet_pipeline.training.loop.fit_replica` on its slice
of every global batch, DDP averages the gradients (gloo on the CPU, nccl on CUDA), and
rank 0's result comes back. Every replica reads the same batches in the same order and
evaluates the same validation rows (rank 0's figure decides, so epoch selection and early
stopping agree), and without dropout the loss of each step is the single-process one to
float rounding (tests/training/test_distributed.py). Only the calling process logs (to
MLflow), after the replicas finish.
"""
from __future__ import annotations

import copy
import os
import socket

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .loop import FitResult, Replica, RowLoss, TrainingConfig, TrainSource, fit_replica, resolve_device
from duet_pipeline.samples import SampleTensors

from .tensors import CompactSamples


def fit_distributed(model: nn.Module, train: TrainSource, validation: SampleTensors | CompactSamples, config: TrainingConfig,
                    description: str, loss_fn: RowLoss) -> FitResult:
    """:func:`~duet_pipeline.training.loop.fit` over ``config.distributed.processes`` processes."""
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    launch = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=config.distributed.processes,
                          run_id=f"duet-{os.getpid()}", rdzv_backend="c10d",
                          rdzv_endpoint=f"127.0.0.1:{_free_port()}", max_restarts=0, start_method="spawn")
    results = elastic_launch(launch, _replica)(model.cpu(), train, validation, config, description, loss_fn)
    return results[0]


def _replica(model: nn.Module, train: TrainSource, validation: SampleTensors | CompactSamples, config: TrainingConfig,
             description: str, loss_fn: RowLoss) -> FitResult | None:
    """One process of the launch: join the group, train its share, return (rank 0) the result."""
    rank, world, local_rank = (int(os.environ[name]) for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    cuda = resolve_device(config.device).type == "cuda"
    if cuda:
        torch.cuda.set_device(local_rank)
    # On CUDA, nccl for the gradients and gloo for the CPU scalars rank 0 broadcasts
    # (the kept epoch's validation figure): an nccl-only group has no CPU backend.
    torch.distributed.init_process_group("cpu:gloo,cuda:nccl" if cuda else "gloo")
    try:
        # The launcher hands every replica the same shared-memory tensors: each must
        # own its parameters, or every optimiser step would land N times on one copy.
        model = copy.deepcopy(model).to(torch.device("cuda", local_rank) if cuda else torch.device("cpu"))
        # Dropout masks: seeded by the run and the rank (a spawned process starts from
        # torch's default seed). They differ from one process's masks, which cover the whole
        # batch at once; without dropout the steps are the single-process ones.
        torch.manual_seed(config.seed * 1_000 + rank)
        # Some models hold parameters a forward pass does not use (e.g. the base model's
        # unused heads of a method bundle): DDP must not wait for their gradients.
        replicated = DistributedDataParallel(model, device_ids=[local_rank] if cuda else None,
                                             find_unused_parameters=True)
        result = fit_replica(model, train, validation, config, description, None, loss_fn, Replica(rank, world),
                             replicated)
    finally:
        torch.distributed.destroy_process_group()
    return result if rank == 0 else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
