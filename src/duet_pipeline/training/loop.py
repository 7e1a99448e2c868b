"""Training with validation-based epoch selection and early stopping (PROTOCOL section 4)."""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from collections.abc import Iterator
from typing import Any, Callable, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import Field, ValidationInfo, field_validator
from torch import nn
from tqdm import tqdm

from duet_pipeline.console import progress
from duet_pipeline.evaluation.metrics import compute_metrics, is_improvement, metric_names
from duet_pipeline.parameters import Block, parse_block

from .cores import CoreShare
from .streaming import StreamedSamples
from duet_pipeline.samples import SampleTensors

from .tensors import CompactSamples

# Batches between two checks of the cores' share (a directory listing, ~50 us).
SHARE_CHECK_BATCHES = 32

# A batch's training loss: (logits, the batch's rows, their row numbers in the table).
RowLoss = Callable[[torch.Tensor, SampleTensors, torch.Tensor], torch.Tensor]


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Binary cross-entropy of logits, computed in the logits' dtype (labels are stored as
    float32; a float64 model, as the equivalence tests use, would otherwise get a float32 loss)."""
    return nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), reduction=reduction)


def label_loss(logits: torch.Tensor, batch: SampleTensors, rows: torch.Tensor) -> torch.Tensor:
    """Every cloud training's loss unless it says otherwise: mean binary cross-entropy."""
    return cross_entropy(logits, batch.label)


class DistributedParams(Block):
    """``training.distributed``: DistributedDataParallel over ``nodes`` machines with
    ``processes`` replicas each (torch.distributed's elastic launcher, as torchrun)."""

    # Replicas on this machine; each of the nodes x processes replicas trains on its
    # share of every global batch of batch_size rows.
    processes: int = Field(ge=1)
    # Machines in the training; every one runs the same `kedro run` with its own node_rank.
    nodes: int = Field(ge=1)
    # This machine's place, 0 to nodes - 1. Node 0 writes the catalog's outputs and the
    # MLflow run; the others train their share and write nothing.
    node_rank: int = Field(ge=0)
    # host:port of the c10d rendezvous every node joins (nodes > 1; e.g. node 0's address
    # and a free port). null: a free port on 127.0.0.1, which only one node can reach.
    rendezvous: str | None
    # Seconds a node waits for the others: to join a training's rendezvous (nodes run the
    # data stages at their own pace) and at each step; past it the training fails.
    timeout_s: int = Field(ge=10)

    @field_validator("rendezvous")
    @classmethod
    def _host_and_port(cls, rendezvous: str | None, info: ValidationInfo) -> str | None:
        nodes = info.data.get("nodes") or 1
        if rendezvous is None and nodes > 1:
            raise ValueError(f"nodes = {nodes} needs rendezvous: host:port that every node reaches "
                             "(e.g. node 0's address and a free port)")
        if rendezvous is not None:
            host, _, port = rendezvous.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError("must be host:port with a port from 1 to 65535, e.g. 10.0.0.1:29400")
        return rendezvous

    @field_validator("node_rank")
    @classmethod
    def _rank_within_nodes(cls, node_rank: int, info: ValidationInfo) -> int:
        nodes = info.data.get("nodes")
        if nodes is not None and node_rank >= nodes:
            raise ValueError(f"node_rank = {node_rank} with nodes = {nodes}: allowed 0 to {nodes - 1}")
        return node_rank

    @property
    def replicas(self) -> int:
        """Processes in the whole training."""
        return self.nodes * self.processes

    @property
    def writes(self) -> bool:
        """Whether this node writes the run's outputs (node 0, or the only node)."""
        return self.node_rank == 0


class TrainingConfig(Block):
    """The ``training`` parameters (PROTOCOL section 4), checked on entry; their
    values live in conf/base/parameters_umn_training.yml."""

    learning_rate: float = Field(gt=0)
    batch_size: int = Field(ge=1)
    max_epochs: int = Field(ge=1)
    patience: int = Field(ge=1)  # stop after this many epochs without improvement
    seed: int = Field(ge=0)
    weight_decay: float = Field(ge=0)
    eval_batch_size: int = Field(ge=1)
    selection_metric: str  # any declared metric; its direction decides "better"
    # "groups": shuffle whole groups of rows sharing a user and history (a positive and
    # its negatives), so a batch holds each history ~5 times and the model computes
    # history-only parts once per group; "rows": shuffle single rows.
    shuffle: Literal["groups", "rows"]
    progress: bool
    # auto: CUDA when present, else the CPU.
    device: Literal["auto", "cpu", "cuda"]
    # The base model's training reads the train samples from their parquet files a row
    # group at a time (training/streaming.py) instead of holding them in memory.
    streaming: bool
    distributed: DistributedParams
    # At most this many batches per epoch (null: every batch), e.g. to measure speed or
    # memory on a slice of a large dataset (`make benchmark-scale`).
    limit_train_batches: int | None = Field(ge=1)

    @field_validator("device")
    @classmethod
    def _device_present(cls, device: str) -> str:
        if device == "cuda" and not torch.cuda.is_available():
            raise ValueError("no CUDA device is available here; use auto or cpu")
        return device

    @field_validator("streaming")
    @classmethod
    def _streams_whole_positives(cls, streaming: bool, info: ValidationInfo) -> bool:
        if streaming and info.data.get("shuffle") == "rows":
            raise ValueError("streaming = true shuffles row groups and then positives (each with its negatives); "
                             "use training.shuffle: groups, or streaming: false for shuffle: rows")
        return streaming

    @field_validator("distributed")
    @classmethod
    def _processes_fit(cls, distributed: DistributedParams, info: ValidationInfo) -> DistributedParams:
        batch_size = info.data.get("batch_size")
        if batch_size is not None and distributed.replicas > batch_size:
            raise ValueError(f"nodes x processes = {distributed.replicas} is more than training.batch_size = "
                             f"{batch_size}: each process trains on its share of every batch")
        if info.data.get("device") != "cpu" and torch.cuda.is_available():
            gpus = torch.cuda.device_count()
            if distributed.processes > gpus:
                raise ValueError(f"processes = {distributed.processes} on {gpus} CUDA device(s): at most one "
                                 "process per device, or training.device: cpu")
        return distributed

    @field_validator("selection_metric")
    @classmethod
    def _declared_metric(cls, name: str) -> str:
        if name not in metric_names():
            raise ValueError(f"must be a declared metric, one of {metric_names()}")
        return name

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "TrainingConfig":
        return parse_block(cls, params, "training")


@dataclass
class FitResult:
    best_state: dict[str, torch.Tensor]
    best_epoch: int
    history: pd.DataFrame = field(repr=False)
    step_losses: list[float] = field(default_factory=list, repr=False)  # each step's global-batch loss


@torch.inference_mode()
def predict(model: nn.Module, data: SampleTensors | CompactSamples, batch_size: int = 16384) -> np.ndarray:
    """Logits for every row of ``data``, in row order."""
    model.eval()
    device = next(model.parameters()).device
    # One array filled in place: small per-chunk results kept between the chunks' large
    # temporaries would fragment the heap (1.4 GB of RSS on synthetic-25m's validation).
    scores, start = np.empty(len(data), dtype=np.float32), 0
    for chunk in data.chunks(batch_size):
        logits = model(chunk.history.to(device), chunk.target.to(device))
        scores[start : start + len(logits)] = logits.cpu().numpy()
        start += len(logits)
    return scores


def evaluate(model: nn.Module, data: SampleTensors | CompactSamples, batch_size: int = 16384) -> dict[str, float]:
    scores = predict(model, data, batch_size)
    return compute_metrics(data.user.numpy(), data.label.numpy(), scores)


def history_groups(data: SampleTensors) -> tuple[torch.Tensor, torch.Tensor]:
    """(start, length) of each run of consecutive rows with the same user and history."""
    changed = torch.ones(len(data), dtype=torch.bool)
    changed[1:] = (data.user[1:] != data.user[:-1]) | (data.history[1:] != data.history[:-1]).any(dim=1)
    starts = torch.nonzero(changed).squeeze(1)
    lengths = torch.diff(starts, append=torch.tensor([len(data)]))
    return starts, lengths


def shuffled_order(groups: tuple[torch.Tensor, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
    """Row order with the groups in random order and each group's rows kept together."""
    starts, lengths = groups
    permutation = torch.randperm(len(starts), generator=generator)
    starts, lengths = starts[permutation], lengths[permutation]
    offsets = torch.arange(int(lengths.sum())) - torch.repeat_interleave(torch.cumsum(lengths, 0) - lengths, lengths)
    return torch.repeat_interleave(starts, lengths) + offsets


def make_optimizer(model: nn.Module, config: TrainingConfig) -> torch.optim.Optimizer:
    """Adam over every parameter, as every cloud training uses it (and the step benchmark).

    ``fused=True``: one kernel for all parameters instead of ~10 small kernels per
    parameter tensor; 3x faster per optimiser step and 5-12% per DUET training step on
    the 2-core machine (docs/benchmarks.md). It equals the per-tensor loop to float
    rounding (tests/training/test_fast_step.py)."""
    return torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay,
                            fused=True)


# A train source: rows held in memory (shuffled by group or row with the run's
# generator) or StreamedSamples (shuffled by row group and buffer with the epoch's seed).
TrainSource = SampleTensors | StreamedSamples


@dataclass(frozen=True)
class Replica:
    """This process's place in a distributed training: rank ``rank`` of ``world``."""

    rank: int = 0
    world: int = 1

    def share(self, rows: int) -> slice:
        """This process's contiguous slice of a global batch of ``rows`` rows."""
        return slice(rows * self.rank // self.world, rows * (self.rank + 1) // self.world)


def resolve_device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("parameter training.device = 'cuda': no CUDA device is available here; use auto or cpu")
    return torch.device("cuda" if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()) else "cpu")


def epoch_batches(train: TrainSource, config: TrainingConfig, groups: tuple[torch.Tensor, torch.Tensor] | None,
                  generator: torch.Generator, epoch: int) -> Iterator[tuple[SampleTensors, torch.Tensor | None]]:
    """The epoch's global batches and, for rows held in memory, their row numbers."""
    limit = config.limit_train_batches
    if isinstance(train, StreamedSamples):
        batches = train.batches(config.batch_size, seed=config.seed * 1_000_003 + epoch)
        yield from ((batch, None) for batch in itertools.islice(batches, limit))
        return
    order = shuffled_order(groups, generator)
    for start in itertools.islice(range(0, len(train), config.batch_size), limit):
        index = order[start : start + config.batch_size]
        yield train.rows(index), index


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterator[tuple[SampleTensors, torch.Tensor | None]],
    bar: tqdm | None = None,
    cores: CoreShare | None = None,
    loss_fn: RowLoss = label_loss,
    replica: Replica = Replica(),
    device: torch.device = torch.device("cpu"),
) -> list[tuple[float, int]]:
    """One pass over ``batches``; returns each step's (loss, rows): the mean loss over its
    global batch and that batch's number of rows.

    In a distributed training this process trains on its slice of each global batch;
    its loss is scaled by its share of the rows, so that the gradients DDP averages are
    those of the global batch's mean loss. ``cores``: re-check this process's share of
    the cores every few batches."""
    model.train()
    losses = []
    for number, (batch, index) in enumerate(batches):
        if cores is not None and number % SHARE_CHECK_BATCHES == 0:
            cores.adjust()
        share = replica.share(len(batch))
        weight = (share.stop - share.start) * replica.world / len(batch)
        if weight == 0:
            # A last batch smaller than the world: this replica adds nothing, but DDP's
            # gradient all-reduce happens only after a forward through the wrapper, so
            # it scores one row with weight 0 and joins it (all replicas then step alike).
            share = slice(0, 1)
        local = batch.rows(share).to(device)
        rows = index[share] if index is not None else None
        loss = loss_fn(model(local.history, local.target), local, rows) * weight
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append((_global_mean(loss.detach(), replica), len(batch)))
        if bar is not None:
            bar.update(len(batch))
            bar.set_postfix(loss=f"{mean_loss(losses):.4f}", refresh=False)
    return losses


def mean_loss(losses: list[tuple[float, int]]) -> float:
    """The mean training loss per row of an epoch's steps."""
    rows = sum(size for _, size in losses)
    return sum(loss * size for loss, size in losses) / rows if rows else float("nan")


def _agreed(value: float, replica: Replica) -> float:
    """Rank 0's validation figure on every replica, so that all keep the same epoch and
    stop together (their own figures can differ in the last bits)."""
    if replica.world == 1:
        return value
    shared = torch.tensor([value], dtype=torch.float64)
    torch.distributed.broadcast(shared, src=0)
    return float(shared.item())


def _global_mean(scaled_loss: torch.Tensor, replica: Replica) -> float:
    """The global batch's mean loss from each process's scaled share of it."""
    if replica.world > 1:
        torch.distributed.all_reduce(scaled_loss)
        return scaled_loss.item() / replica.world
    return scaled_loss.item()


def fit(
    model: nn.Module,
    train: TrainSource,
    validation: SampleTensors | CompactSamples,
    config: TrainingConfig,
    description: str = "train",
    on_epoch_end: Callable[[dict[str, float]], None] | None = None,
    loss_fn: RowLoss = label_loss,
) -> FitResult:
    """Train ``model`` and return the state of the epoch with the best validation
    ``config.selection_metric`` (highest, or lowest for a lower-is-better metric).

    ``on_epoch_end`` receives each epoch's history row (e.g. to report progress from a
    worker process, where a progress bar cannot be shown). ``loss_fn``: the training
    loss (default: binary cross-entropy with the labels; MoMoDistill adds a KL term).
    ``train``: rows in memory, or :class:`StreamedSamples`.

    Stops after ``patience`` epochs without improvement. The returned history has one
    row per epoch: train loss, every validation metric, seconds and rows per second.
    With ``training.distributed`` N = nodes x processes > 1 the epochs run in N processes
    (:mod:`duet_pipeline.training.distributed`); the result is the same.
    """
    if config.distributed.replicas > 1:
        from .distributed import fit_distributed

        result = fit_distributed(model, train, validation, config, description, loss_fn)
        if on_epoch_end is not None:
            for record in result.history.to_dict("records"):
                on_epoch_end(record)
        model.load_state_dict(result.best_state)
        return result
    return fit_replica(model, train, validation, config, description, on_epoch_end, loss_fn)


def fit_replica(model: nn.Module, train: TrainSource, validation: SampleTensors | CompactSamples, config: TrainingConfig,
                description: str, on_epoch_end: Callable[[dict[str, float]], None] | None, loss_fn: RowLoss,
                replica: Replica = Replica(), trained: nn.Module | None = None) -> FitResult:
    """:func:`fit` in one process: the whole training, or one replica of a distributed
    one (``trained``: the DDP wrapper of ``model`` that the steps go through)."""
    if loss_fn is not label_loss and isinstance(train, StreamedSamples):
        raise ValueError("this training's loss reads rows by number, which a streamed training does not have; "
                         "set training.streaming: false")
    device = resolve_device(config.device)
    model.to(device)
    trained = model if trained is None else trained
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = make_optimizer(model, config)
    groups = None
    if isinstance(train, SampleTensors):
        groups = history_groups(train) if config.shuffle == "groups" else (
            torch.arange(len(train)), torch.ones(len(train), dtype=torch.long))
    best_value, best_epoch, best_state, stale = None, 0, None, 0
    records, steps = [], []
    with CoreShare() as cores:
        for epoch in range(1, config.max_epochs + 1):
            bar = progress(total=len(train), enabled=config.progress and replica.rank == 0,
                           desc=f"{description} epoch {epoch}/{config.max_epochs}", unit="row", unit_scale=True,
                           leave=True)
            started = time.perf_counter()
            losses = train_epoch(trained, optimizer, epoch_batches(train, config, groups, generator, epoch), bar,
                                 cores, loss_fn, replica, device)
            record = _epoch_record(model, validation, config, losses, time.perf_counter() - started, bar)
            steps.extend(loss for loss, _ in losses)
            records.append({"epoch": epoch, **record})
            if on_epoch_end is not None:
                on_epoch_end(records[-1])
            value = _agreed(record[f"val_{config.selection_metric}"], replica)
            if is_improvement(config.selection_metric, value, best_value):
                best_value, best_epoch, stale = value, epoch, 0
                best_state = {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}
            else:
                stale += 1
                if stale >= config.patience:
                    break
    model.to("cpu")
    model.load_state_dict(best_state)
    return FitResult(best_state=best_state, best_epoch=best_epoch, history=pd.DataFrame(records), step_losses=steps)


def _epoch_record(model: nn.Module, validation: SampleTensors | CompactSamples, config: TrainingConfig, losses: list[tuple[float, int]],
                  seconds: float, bar: tqdm) -> dict[str, float]:
    """An epoch's history row (without ``epoch``): train loss, time, validation metrics."""
    metrics = evaluate(model, validation, config.eval_batch_size)
    train_loss = mean_loss(losses)
    bar.set_postfix(loss=f"{train_loss:.4f}", val_auc=f"{metrics['auc']:.4f}")
    bar.close()
    rows = sum(size for _, size in losses)
    return {"train_loss": train_loss, "train_seconds": seconds, "train_rows_per_second": rows / seconds,
            **{f"val_{name}": value for name, value in metrics.items()}}
