"""Fine-tune baseline: each device trains its own copy of the base model on its own rows.

PROTOCOL section 3: per user, copy the base model, train it on that user's train rows
(default: all parameters, 1 epoch, batch 1024, Adam lr 1e-3), then score that user's
candidates. Users are fine-tuned many at a time: their parameters are stacked along a
new leading dimension and ``torch.func.vmap`` runs every user's forward, backward and
Adam step at once. :func:`finetune_scores_loop` is the plain per-user reference
(deep copy + ``torch.optim.Adam``); both follow the same row order and give the same
scores. Fine-tuning runs in eval mode (no dropout) so a device's result is
deterministic.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch.func import functional_call, grad, vmap

from duet_pipeline.console import progress
from duet_pipeline.models.recommender import Recommender, consecutive_runs, load_model
from duet_pipeline.parameters import Block
from duet_pipeline.training.cores import CoreShare
from duet_pipeline.training.loop import cross_entropy
from duet_pipeline.samples import SampleTensors
from duet_pipeline.training.on_device import ADAM_BETAS, ADAM_EPS, device_adam, user_steps
from duet_pipeline.training.tensors import RowsByUser

from .common import Devices, MethodSpec, Personalization, spread_evenly



class FinetuneConfig(Block):
    """The ``personalization.finetune`` parameters."""

    learning_rate: float = Field(gt=0)
    batch_size: int = Field(ge=1)
    epochs: int = Field(ge=1)
    trainable: Literal["all", "head"]
    seed: int = Field(ge=0)
    users_per_chunk: int = Field(ge=1)  # devices fine-tuned together (vmap over stacked parameters)
    loop_devices: int = Field(ge=0)  # devices (spread evenly over all) timed with the plain per-device loop
    progress: bool


SPEC = MethodSpec(
    variants={"finetune": {}},
    cloud_model="base",
    on_device="trains",
    description="each device fine-tunes its copy of the base model on its own rows",
    block="finetune",
    options=FinetuneConfig,
    reads_own_rows=True,
    order=10,
    paper_auc={"finetune": {"ml-1m": {"din": .9080, "sasrec": .9279, "gru4rec": .9286},
                            "ml-100k": {"din": .8429, "sasrec": .8719, "gru4rec": .8711}}},
    reproduction_auc={"finetune": {"ml-1m": {"din": .9286, "sasrec": .9393, "gru4rec": .9388},
                                   "ml-100k": {"din": .8917, "sasrec": .9070, "gru4rec": .9066}}},
)


def schedule(config: FinetuneConfig) -> tuple[int, int, int]:
    """(epochs, batch size, seed) of :func:`user_steps`."""
    return config.epochs, config.batch_size, config.seed


def is_trainable(name: str, config: FinetuneConfig) -> bool:
    return config.trainable == "all" or name.startswith("head.")


def finetune_user(model: Recommender, own_rows: SampleTensors, user: int, config: FinetuneConfig) -> Recommender:
    """A deep copy of ``model`` trained on ``user``'s own rows with ``torch.optim.Adam`` (eval mode)."""
    local = copy.deepcopy(model).eval()
    trainable = [p for n, p in local.named_parameters() if is_trainable(n, config)]
    optimizer = torch.optim.Adam(trainable, lr=config.learning_rate, betas=ADAM_BETAS, eps=ADAM_EPS)
    for step in user_steps(torch.nonzero(own_rows.user == user).squeeze(1), user, *schedule(config)):
        loss = cross_entropy(
            local(own_rows.history[step], own_rows.target[step]), own_rows.label[step]
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return local


def finetune_scores_loop(model: Recommender, devices: Devices, config: FinetuneConfig) -> np.ndarray:
    """Reference: a deep copy and a ``torch.optim.Adam`` per user, one user at a time."""
    candidates = devices.candidates
    scores = np.zeros(len(candidates), dtype=np.float32)
    for user in devices.users().tolist():
        local = finetune_user(model, devices.own_rows, user, config)
        rows = torch.nonzero(candidates.user == user).squeeze(1)
        with torch.no_grad():
            scores[rows.numpy()] = local(candidates.history[rows], candidates.target[rows]).numpy()
    return scores


def _padded(indices: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ragged index lists into (U, R) indices (padded with row 0) and a 0/1 weight."""
    width = max(1, max(len(i) for i in indices))
    index = torch.zeros(len(indices), width, dtype=torch.long)
    weight = torch.zeros(len(indices), width)
    for k, rows in enumerate(indices):
        index[k, : len(rows)] = rows
        weight[k, : len(rows)] = 1.0
    return index, weight


@dataclass(frozen=True)
class StackedRows:
    """One batch per device, stacked for vmap: each device's distinct histories
    (U, H, L), which of them each row reads (U, R), its targets and labels (U, R), and
    a 0/1 weight (U, R) that is 0 on padding.

    Rows sharing a history (a positive and its negatives, a device's candidates) sit
    next to each other; finding those runs here, outside vmap, lets the model encode
    each history once per device, as the plain loop's model does.
    """

    history: torch.Tensor
    row_of: torch.Tensor
    target: torch.Tensor
    label: torch.Tensor
    weight: torch.Tensor

    @classmethod
    def gather(cls, data: SampleTensors, indices: list[torch.Tensor]) -> "StackedRows":
        index, weight = _padded(indices)
        # A device without rows this step reads row 0, weighted 0: a real history, so
        # no fully masked attention (NaN) enters the batch.
        runs = [consecutive_runs(data.history[rows if len(rows) else index[k, :1]]) for k, rows in enumerate(indices)]
        width = max(len(distinct) for distinct, _ in runs)
        # Pad each device's histories with its own last one: real, and never read.
        history = torch.stack([torch.cat([d, d[-1:].expand(width - len(d), -1)]) for d, _ in runs])
        row_of = torch.zeros_like(index)
        for k, (_, rows) in enumerate(runs):
            row_of[k, : len(rows)] = rows
        return cls(history, row_of, data.target[index], data.label[index], weight)

    def with_local_items(self, local: "LocalItems | None") -> "StackedRows":
        """The same rows with item ids mapped to each device's local table (if any)."""
        if local is None:
            return self
        return StackedRows(local(self.history), self.row_of, local(self.target), self.label, self.weight)


class BatchedFinetuner:
    """Fine-tunes a chunk of users at once with vmap over stacked parameters."""

    def __init__(self, model: Recommender, config: FinetuneConfig) -> None:
        self.model = copy.deepcopy(model).eval()
        # Per-row heads gathered per row, never regrouped by runs (data-dependent shapes).
        self.model.dedupe_histories = False
        self.config = config
        params = dict(self.model.named_parameters())
        self.trainable = {n: p.detach() for n, p in params.items() if is_trainable(n, config)}
        self.frozen = {n: p.detach() for n, p in params.items() if not is_trainable(n, config)}
        self._grad = vmap(grad(self._loss))
        self._score = vmap(self._logits)

    def _logits(self, trainable: dict, history: torch.Tensor, row_of: torch.Tensor,
                target: torch.Tensor) -> torch.Tensor:
        return functional_call(self.model, {**trainable, **self.frozen}, (history, target), {"row_of": row_of})

    def _loss(self, trainable, history, row_of, target, label, weight) -> torch.Tensor:
        losses = cross_entropy(
            self._logits(trainable, history, row_of, target), label, reduction="none"
        )
        # Mean over the real rows of the batch, as the per-user loop's loss.
        return (losses * weight).sum() / weight.sum().clamp(min=1.0)

    def run(self, devices: Devices, users: list[int], own_rows_of: RowsByUser,
            candidate_rows_of: RowsByUser) -> dict[int, np.ndarray]:
        own, candidates = devices.own_rows, devices.candidates
        count = len(users)
        rows = [candidate_rows_of(user) for user in users]
        mine = [own_rows_of(user) for user in users]
        steps = [user_steps(user_rows, user, *schedule(self.config)) for user_rows, user in zip(mine, users)]
        local = self._local_item_ids(own, candidates, mine, rows)
        params = {n: p.unsqueeze(0).repeat(count, *([1] * p.dim())) for n, p in self.trainable.items()}
        if local is not None:
            params[ITEM_TABLE] = self.trainable[ITEM_TABLE][local.items]  # (U, M, d): each device's own rows
        first_moment = {n: torch.zeros_like(p) for n, p in params.items()}
        second_moment = {n: torch.zeros_like(p) for n, p in params.items()}
        empty = torch.zeros(0, dtype=torch.long)
        for step in range(max((len(s) for s in steps), default=0)):
            active = torch.tensor([len(s) > step for s in steps])
            batch = StackedRows.gather(own, [s[step] if len(s) > step else empty for s in steps])
            batch = batch.with_local_items(local)
            grads = self._grad(params, batch.history, batch.row_of, batch.target, batch.label, batch.weight)
            # Adam exactly as torch.optim.Adam; every active user is at the same step count.
            for name, value in params.items():
                keep = active.view(-1, *([1] * (value.dim() - 1)))
                updated, m, v = device_adam(value, grads[name], first_moment[name], second_moment[name], step,
                                            self.config.learning_rate)
                params[name] = torch.where(keep, updated, value)
                first_moment[name] = torch.where(keep, m, first_moment[name])
                second_moment[name] = torch.where(keep, v, second_moment[name])
        batch = StackedRows.gather(candidates, rows).with_local_items(local)
        with torch.no_grad():
            logits = self._score(params, batch.history, batch.row_of, batch.target)
        return {user: logits[k, : len(rows[k])].numpy() for k, user in enumerate(users)}

    def _local_item_ids(self, own: SampleTensors, candidates: SampleTensors, own_rows: list[torch.Tensor],
                        candidate_rows: list[torch.Tensor]) -> "LocalItems | None":
        """Per-device item tables when the item table is fine-tuned (else None).

        Each device's table holds only the items its own rows and candidates read, item 0
        (padding) first: the rows it never reads get no gradient, so Adam, whose moments
        start at zero, would leave them exactly as they are. Updating ~1k rows per device
        instead of the whole table is the same result at a fraction of the cost.
        """
        if ITEM_TABLE not in self.trainable:
            return None
        padding = torch.zeros(1, dtype=torch.long)
        per_device = [
            torch.unique(torch.cat([padding, own.history[mine].flatten(), own.target[mine],
                                    candidates.history[candidate].flatten(), candidates.target[candidate]]))
            for mine, candidate in zip(own_rows, candidate_rows)
        ]
        width = max(len(items) for items in per_device)
        # Pad each sorted list with its own last item: still sorted, and never looked up.
        items = torch.stack([torch.cat([i, i[-1:].expand(width - len(i))]) for i in per_device])
        return LocalItems(items)


ITEM_TABLE = "items.weight"


@dataclass(frozen=True)
class LocalItems:
    """Sorted item ids of each device's local table, (U, M); calling maps global ids
    (U, ...) to local row numbers (the ids' positions in their device's list)."""

    items: torch.Tensor

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        flat = ids.reshape(len(self.items), -1)
        return torch.searchsorted(self.items, flat).view(ids.shape)


def finetune_scores_batched(model: Recommender, devices: Devices, config: FinetuneConfig) -> np.ndarray:
    """Fine-tune every device, ``users_per_chunk`` at a time; scores in candidate-row order."""
    candidates, own = devices.candidates, devices.own_rows
    users = devices.users().numpy()
    # Users of similar size share a chunk, so little of a chunk's work is padding.
    sizes = np.bincount(own.user.numpy(), minlength=int(users.max()) + 1)[users]
    users = users[np.argsort(sizes, kind="stable")].tolist()
    tuner = BatchedFinetuner(model, config)
    own_rows_of, candidate_rows_of = RowsByUser(own.user), RowsByUser(candidates.user)
    scores = np.zeros(len(candidates), dtype=np.float32)
    chunk = config.users_per_chunk
    with progress(total=len(users), enabled=config.progress, desc="finetune devices", unit="device") as bar, \
            CoreShare() as cores:
        for start in range(0, len(users), chunk):
            cores.adjust()
            chunk_users = users[start : start + chunk]
            for user, user_scores in tuner.run(devices, chunk_users, own_rows_of, candidate_rows_of).items():
                scores[candidate_rows_of(user).numpy()] = user_scores
            bar.update(len(chunk_users))
    return scores


def personalize(bundle: dict[str, Any], devices: Devices, config: FinetuneConfig,
                variant: dict[str, Any]) -> Personalization:
    if devices.own_rows is None:
        raise ValueError("fine-tuning needs the devices' own rows (train_samples)")
    model = load_model(bundle)
    started = time.perf_counter()
    scores = finetune_scores_batched(model, devices, config)
    seconds = time.perf_counter() - started
    users = devices.users()
    # The plain loop's cost per device, on devices spread evenly over all of them (a
    # device's cost grows with its rows): an estimate of its mean over all devices, to
    # set beside the batched mean over all devices.
    probe_users = users[spread_evenly(config.loop_devices, len(users))]
    probe = Devices(devices.candidates.for_users(probe_users), devices.own_rows)
    started = time.perf_counter()
    if len(probe_users):
        finetune_scores_loop(model, probe, config)
    loop_seconds = (time.perf_counter() - started) / len(probe_users) if len(probe_users) else float("nan")
    return Personalization(
        scores,
        {
            "devices": float(len(users)),
            "seconds_per_device": seconds / len(users),
            "devices_per_second": len(users) / seconds,
            "loop_seconds_per_device": loop_seconds,
            # Nothing is sent per request: the device trains the model it already holds.
            "payload_bytes": 0.0,
            # While it trains, the device holds a gradient and Adam's two moments for
            # every trainable parameter, beyond the model itself.
            "device_extra_bytes": float(3 * sum(p.numel() * p.element_size() for n, p in model.named_parameters()
                                                if is_trainable(n, config))),
        },
    )
