"""DCCL (Yao et al., KDD 2021): devices train tiny meta-patches, the cloud learns back
from the personalised device models ("model over models").

The loop, over R rounds (``rounds``), every cloud training under PROTOCOL section 4:

- round 0 starts from the base model f_0 and a random ``Theta_0`` (seeded by ``seed``);
- round r: **devices** train their meta-patches ``phi_n`` on their own train rows, with
  f_r and ``Theta_r`` frozen (models/metapatch.py; all devices at once, equal to one
  device at a time). If r < R: the cloud **distils** (MoMoDistill), training f_r further
  on every train row with ``BCE + lambda * KL(device model || cloud model)`` into
  f_{r+1}, the device models as teachers; then **Theta** is fitted in its own step, with
  f_{r+1} and every ``phi_n`` frozen, so that the patched models fit the devices' rows
  (the note: training ``Theta`` together with the cloud model falls into a poor optimum).

Methods: ``momodistill`` is f_R alone on every device (nothing trains there);
``metapatch`` is every device's model after the last round (f_R patched by
``Theta_R phi_n``). The round stages are public so that the ``dccl`` pipeline runs them
one node each; :func:`train` runs them in a loop for ``kedro run --pipelines=duet`` and
the grid.

Choices where the note and the paper are silent: the patch is linear (``h(z) = W z + b``);
one meta-patch per device generates the patches of every chosen position; a device keeps
its meta-patch from round to round (round 0 starts from zero: the device starts exactly
at the cloud model), so ``Theta_{r+1}``, fitted to the round-r meta-patches, meets them
again; each round's distillation starts from f_r and keeps its best validation epoch.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import Field, field_validator

from duet_pipeline.console import progress
from duet_pipeline.evaluation.metrics import compute_metrics
from duet_pipeline.models.metapatch import MetaPatch, bernoulli_kl, patched_logits
from duet_pipeline.models.recommender import Recommender, load_model, model_bundle
from duet_pipeline.parameters import Block
from duet_pipeline.training.loop import TrainingConfig, cross_entropy, fit, predict
from duet_pipeline.training.on_device import ADAM_BETAS, ADAM_EPS, device_adam, user_steps
from duet_pipeline.training.models import CloudData, EpochCallback, Trained
from duet_pipeline.samples import SampleTensors
from duet_pipeline.training.tensors import RowsByUser

from .common import Devices, MethodSpec, Personalization, device_ms_per_candidate, spread_evenly

# Rows whose user vectors are computed, or devices scored, in one call (bounds memory).
CHUNK_ROWS = 65536


class DeviceTraining(Block):
    """``personalization.dccl.device``: how each device trains its meta-patch."""

    learning_rate: float = Field(gt=0)
    batch_size: int = Field(ge=1)
    epochs: int = Field(ge=1)
    loop_devices: int = Field(ge=0)  # devices (spread evenly over all) also timed one at a time
    progress: bool


class DcclOptions(Block):
    """The ``personalization.dccl`` parameters."""

    rounds: int = Field(ge=0)  # R: rounds of devices -> distil -> Theta before the last device round
    meta_dim: int = Field(ge=1)  # k: values in each device's meta-patch
    patch_positions: list[Literal["user", "hidden"]] = Field(min_length=1)
    theta_init_std: float = Field(gt=0)
    distill_weight: float = Field(ge=0)  # lambda on the KL term
    distill_max_epochs: int = Field(ge=1)  # each round's distillation, early-stopped as training
    theta_learning_rate: float = Field(gt=0)
    theta_epochs: int = Field(ge=1)
    seed: int = Field(ge=0)  # Theta_0 and the devices' shuffles
    device: DeviceTraining

    @field_validator("patch_positions")
    @classmethod
    def _distinct(cls, positions: list[str]) -> list[str]:
        if len(set(positions)) != len(positions):
            raise ValueError("each position at most once")
        return positions


SPEC = MethodSpec(
    variants={
        "metapatch": {"model": "dccl", "on_device": "trains", "scores": "devices"},
        "momodistill": {"model": "dccl", "on_device": "nothing", "scores": "cloud"},
    },
    cloud_model="own",
    on_device="trains",
    description="DCCL: devices train meta-patches of a frozen cloud model; the cloud distils them back",
    block="dccl",
    options=DcclOptions,
    order=60,
)


def needs_base_model(options: DcclOptions, variant: dict[str, Any]) -> bool:
    return True  # round 0 is the base model


def device_bundle(bundle: dict[str, Any], variant: dict[str, Any]) -> dict[str, Any]:
    """The model every device runs, from the last round: MoMoDistill's, the cloud model as is;
    MetaPatch's, that model with ``Theta``'s patches of the device's own meta-patch (its input;
    the device trains it on its rows with Adam, which an exported scorer does not do)."""
    cloud = bundle["rounds"][-1]["cloud"]
    if variant["scores"] == "cloud":
        return cloud
    config = {**cloud["config"], "personal_head": {"name": "metapatch", "positions": cloud["patch"]["positions"],
                                                   "meta_dim": cloud["patch"]["meta_dim"]}}
    state = {**cloud["state_dict"], "head.patch.theta": cloud["theta"]}
    return {"method": "metapatch", "config": config, "state_dict": state}


# ---- the round stages --------------------------------------------------------------


def start_round(base_bundle: dict[str, Any], options: DcclOptions) -> dict[str, Any]:
    """Round 0's cloud: the base model and a random ``Theta_0``."""
    model = load_model(base_bundle)
    torch.manual_seed(options.seed)
    patch = MetaPatch(model.config.dim, tuple(options.patch_positions), options.meta_dim, options.theta_init_std)
    return cloud_bundle(model, patch, 0)


def cloud_bundle(model: Recommender, patch: MetaPatch, round_number: int) -> dict[str, Any]:
    """A round's cloud side: the cloud model's bundle, with ``Theta`` and how it was built."""
    return model_bundle(model, "dccl", {
        "round": round_number,
        "theta": patch.theta.detach().clone(),
        "patch": {"positions": list(patch.positions), "meta_dim": patch.meta_dim},
    })


def load_cloud(bundle: dict[str, Any]) -> tuple[Recommender, MetaPatch]:
    """(cloud model, Theta) of a round, frozen (eval mode, no gradients)."""
    model = load_model(bundle).requires_grad_(False)
    patch = MetaPatch(model.config.dim, tuple(bundle["patch"]["positions"]), bundle["patch"]["meta_dim"], 1.0)
    patch.theta.data.copy_(bundle["theta"])
    return model, patch.requires_grad_(False)


def device_round(cloud: dict[str, Any], own: SampleTensors, options: DcclOptions,
                 previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every device trains its meta-patch on its own rows (from ``previous`` round's, or
    zero); returns the meta-patches (one row per user id) and the devices' cost."""
    model, patch = load_cloud(cloud)
    users = torch.unique(own.user)
    table_size = int(own.user.max()) + 1 if len(own) else 1
    start = torch.zeros(table_size, options.meta_dim) if previous is None else previous["metapatches"]
    started = time.perf_counter()
    metapatches = train_metapatches(model, patch, own, start, options)
    seconds = time.perf_counter() - started
    probe = users[spread_evenly(options.device.loop_devices, len(users))]
    started = time.perf_counter()
    for user in probe.tolist():
        train_metapatch_alone(model, patch, own, user, start[user], options)
    alone = (time.perf_counter() - started) / len(probe) if len(probe) else float("nan")
    return {"round": cloud["round"], "metapatches": metapatches,
            "report": {"devices": float(len(users)), "seconds_per_device": seconds / max(len(users), 1),
                       "loop_seconds_per_device": alone}}


@dataclass(frozen=True)
class DistillLoss:
    """MoMoDistill's loss: the labels' cross-entropy plus ``weight`` x the KL divergence to
    the devices' scores of the same rows. A class, not a closure, so that a distributed
    training can hand it to its processes."""

    teacher: torch.Tensor  # (rows,) the devices' logits of every train row
    weight: float

    def __call__(self, logits: torch.Tensor, batch: SampleTensors, rows: torch.Tensor) -> torch.Tensor:
        data_loss = cross_entropy(logits, batch.label)
        return data_loss + self.weight * bernoulli_kl(self.teacher[rows], logits).mean()


def distill_round(cloud: dict[str, Any], devices: dict[str, Any], data: CloudData, options: DcclOptions,
                  on_epoch_end: EpochCallback | None = None) -> tuple[dict[str, Any], pd.DataFrame]:
    """MoMoDistill: f_r trained further on every train row with the devices' models as
    teachers; returns f_{r+1} (still with ``Theta_r``) and its per-epoch history."""
    teacher_model, patch = load_cloud(cloud)
    teacher = torch.from_numpy(device_scores(teacher_model, patch, devices["metapatches"], data.train))
    student = load_model(cloud)
    loss = DistillLoss(teacher, options.distill_weight)
    torch.manual_seed(data.training.seed + cloud["round"])  # dropout masks
    config = data.training.model_copy(update={"max_epochs": options.distill_max_epochs})
    result = fit(student, data.train, data.validation, config, f"dccl distil round {cloud['round'] + 1}/{data.backbone}",
                 on_epoch_end, loss_fn=loss)
    history = result.history.assign(round=cloud["round"] + 1, kept=result.history["epoch"] == result.best_epoch)
    return cloud_bundle(student, patch, cloud["round"] + 1), history


def theta_round(distilled: dict[str, Any], devices: dict[str, Any], train: SampleTensors, training: TrainingConfig,
                options: DcclOptions) -> tuple[dict[str, Any], dict[str, float]]:
    """``Theta`` fitted with the distilled cloud model and every meta-patch frozen, so the
    patched models fit the devices' rows; returns the next round's cloud and the fit's report."""
    model, patch = load_cloud(distilled)
    patch.theta.requires_grad_(True)
    optimizer = torch.optim.Adam([patch.theta], lr=options.theta_learning_rate)
    user_vector, target_vector = head_features(model, train)
    metapatches = devices["metapatches"]
    generator = torch.Generator().manual_seed(options.seed + distilled["round"])
    total, rows = 0.0, 0
    for _ in range(options.theta_epochs):
        total, rows = 0.0, 0
        order = torch.randperm(len(train), generator=generator)
        for start in range(0, len(train), training.batch_size):
            index = order[start : start + training.batch_size]
            index = index[torch.argsort(train.user[index], stable=True)]  # rows grouped by device
            users, row_of = torch.unique_consecutive(train.user[index], return_inverse=True)
            logits = patched_logits(model.head, user_vector[index], target_vector[index],
                                    patch.patches(metapatches[users]), row_of)
            loss = cross_entropy(logits, train.label[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, rows = total + loss.item() * len(index), rows + len(index)
    return cloud_bundle(model, patch, distilled["round"]), {"theta_loss": total / max(rows, 1)}


# ---- devices: batched and one at a time ---------------------------------------------


@torch.inference_mode()
def head_features(model: Recommender, data: SampleTensors) -> tuple[torch.Tensor, torch.Tensor]:
    """Every row's user vector and target vector under the frozen cloud model: the
    patches sit between them, so a device's training never runs the backbone again."""
    model.eval()
    parts = [model.head_inputs(data.history[s : s + CHUNK_ROWS], data.target[s : s + CHUNK_ROWS])
             for s in range(0, len(data), CHUNK_ROWS)]
    if not parts:
        return torch.zeros(0, model.config.dim), torch.zeros(0, model.config.dim)
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def train_metapatches(model: Recommender, patch: MetaPatch, own: SampleTensors, start: torch.Tensor,
                      options: DcclOptions) -> torch.Tensor:
    """Every device's meta-patch trained at once: one Adam per device, as
    :func:`train_metapatch_alone` does it, batched.

    Each device's loss depends only on its own meta-patch, so the gradient of the sum of
    the devices' mean losses gives each device its own gradient; Adam is element-wise,
    and every device still training is at the same step count. ``start``: meta-patches
    by user id; returns the trained table."""
    device = options.device
    users = torch.unique(own.user)
    rows_of = RowsByUser(own.user)
    steps = [user_steps(rows_of(u), u, device.epochs, device.batch_size, options.seed) for u in users.tolist()]
    user_vector, target_vector = head_features(model, own)
    phi = start[users].clone()
    first, second = torch.zeros_like(phi), torch.zeros_like(phi)
    total_steps = max((len(s) for s in steps), default=0)
    for step in progress(range(total_steps), enabled=device.progress, desc="dccl devices", unit="step"):
        active = torch.tensor([k for k, s in enumerate(steps) if len(s) > step])
        batches = [steps[k][step] for k in active.tolist()]
        rows = torch.cat(batches)
        lengths = torch.tensor([len(b) for b in batches])
        row_of = torch.repeat_interleave(torch.arange(len(batches)), lengths)
        mine = phi[active].requires_grad_(True)
        logits = patched_logits(model.head, user_vector[rows], target_vector[rows], patch.patches(mine), row_of)
        losses = cross_entropy(logits, own.label[rows], reduction="none")
        (grad,) = torch.autograd.grad((losses / lengths[row_of]).sum(), mine)
        # torch.optim.Adam's update, for the devices still training.
        phi[active], first[active], second[active] = device_adam(mine.detach(), grad, first[active], second[active],
                                                                 step, device.learning_rate)
    table = start.clone()
    table[users] = phi
    return table


def train_metapatch_alone(model: Recommender, patch: MetaPatch, own: SampleTensors, user: int,
                          start: torch.Tensor, options: DcclOptions) -> torch.Tensor:
    """Reference: one device's meta-patch trained with ``torch.optim.Adam`` on its rows,
    the cloud model run on each step's rows."""
    device = options.device
    phi = start.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([phi], lr=device.learning_rate, betas=ADAM_BETAS, eps=ADAM_EPS)
    rows = torch.nonzero(own.user == user).squeeze(1)
    model.eval()
    for step in user_steps(rows, user, device.epochs, device.batch_size, options.seed):
        user_vector, target_vector = model.head_inputs(own.history[step], own.target[step])
        logits = patched_logits(model.head, user_vector, target_vector, patch.patches(phi.unsqueeze(0)),
                                torch.zeros(len(step), dtype=torch.long))
        loss = cross_entropy(logits, own.label[step])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return phi.detach()


@torch.inference_mode()
def device_scores(model: Recommender, patch: MetaPatch, metapatches: torch.Tensor, data: SampleTensors) -> np.ndarray:
    """Each row scored by its device's patched model (its user's meta-patch), in row order."""
    model.eval()
    order = torch.argsort(data.user, stable=True)
    scores = torch.zeros(len(data))
    for start in range(0, len(data), CHUNK_ROWS):
        index = order[start : start + CHUNK_ROWS]
        users, row_of = torch.unique_consecutive(data.user[index], return_inverse=True)
        user_vector, target_vector = model.head_inputs(data.history[index], data.target[index])
        scores[index] = patched_logits(model.head, user_vector, target_vector, patch.patches(metapatches[users]), row_of)
    return scores.numpy()


def side_scores(cloud: dict[str, Any], devices: dict[str, Any], samples: SampleTensors, side: str) -> np.ndarray:
    """A round's scores of ``samples`` on one side: the cloud model alone ("cloud") or each
    row's device model ("devices")."""
    model, patch = load_cloud(cloud)
    return predict(model, samples) if side == "cloud" else device_scores(model, patch, devices["metapatches"], samples)


def round_scores(cloud: dict[str, Any], devices: dict[str, Any], samples: SampleTensors) -> dict[str, np.ndarray]:
    """A round's scores of ``samples`` on both sides."""
    return {side: side_scores(cloud, devices, samples, side) for side in ("cloud", "devices")}


def round_metrics(cloud: dict[str, Any], devices: dict[str, Any], samples: SampleTensors) -> dict[str, float]:
    """Every metric of a round's cloud model and device models on ``samples``:
    ``cloud_<metric>``, ``devices_<metric>``."""
    users, labels = samples.user.numpy(), samples.label.numpy()
    return {f"{side}_{name}": value for side, scores in round_scores(cloud, devices, samples).items()
            for name, value in compute_metrics(users, labels, scores).items()}


# ---- the method ---------------------------------------------------------------------


def run_loop(base_bundle: dict[str, Any], data: CloudData, options: DcclOptions,
             on_epoch_end: EpochCallback | None = None) -> dict[str, Any]:
    """Every round's stages in order; returns the rounds (cloud and devices of each) and
    the distillation histories (one row per epoch, numbered across rounds)."""
    cloud = start_round(base_bundle, options)
    rounds, histories, cloud_seconds = [], [], []
    previous = None
    for number in range(options.rounds + 1):
        devices = device_round(cloud, data.train, options, previous)
        rounds.append({"cloud": cloud, "devices": devices})
        if number == options.rounds:
            break
        started = time.perf_counter()
        distilled, history = distill_round(cloud, devices, data, options, on_epoch_end)
        cloud, fitted = theta_round(distilled, devices, data.train, data.training, options)
        cloud_seconds.append(time.perf_counter() - started)
        histories.append(history.assign(**fitted))
        previous = devices
    history = pd.concat(histories, ignore_index=True) if histories else pd.DataFrame({"epoch": []})
    history["epoch"] = np.arange(1, len(history) + 1)
    if "kept" in history:
        history["kept"] = history["kept"].astype(float)  # MLflow logs numbers
    return {"rounds": rounds, "history": history, "cloud_seconds": cloud_seconds}


def train(name: str, data: CloudData, options: DcclOptions, variant: dict[str, Any],
          base_bundle: dict[str, Any] | None, on_epoch_end: EpochCallback | None = None) -> Trained:
    """The whole loop; the bundle is the last round's cloud model (what ``load_model``
    reads), with every round's cloud, ``Theta`` and meta-patches beside it."""
    if base_bundle is None:
        raise ValueError("DCCL starts from the base model: pass base_bundle")
    loop = run_loop(base_bundle, data, options, on_epoch_end)
    final = loop["rounds"][-1]
    history = loop["history"]
    # The kept epoch of the last distillation, counted across rounds (0: no distillation).
    best_epoch = 0
    if len(history):
        best_epoch = int(history.index[(history["round"] == options.rounds) & history["kept"]][0]) + 1
    bundle = {**final["cloud"], "rounds": loop["rounds"], "best_epoch": best_epoch,
              "cloud_seconds_per_round": float(np.mean(loop["cloud_seconds"])) if loop["cloud_seconds"] else 0.0}
    return Trained(bundle, history, best_epoch)


def model_bytes(model: Recommender) -> int:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def personalize(bundle: dict[str, Any], devices: Devices, options: DcclOptions,
                variant: dict[str, Any]) -> Personalization:
    """Scores of the last round's models (variant ``scores``: the devices' patched models
    or the cloud model alone), with every round's test metrics and the loop's costs."""
    candidates = devices.candidates
    report: dict[str, float] = {}
    scores = np.zeros(len(candidates), dtype=np.float32)
    for stage in bundle["rounds"]:
        scores = side_scores(stage["cloud"], stage["devices"], candidates, variant["scores"])
        metrics = compute_metrics(candidates.user.numpy(), candidates.label.numpy(), scores)
        report.update({f"round{stage['cloud']['round']}_{k}": v for k, v in metrics.items()})
    final_model, final_patch = load_cloud(bundle["rounds"][-1]["cloud"])
    last_devices = bundle["rounds"][-1]["devices"]
    meta_bytes = options.meta_dim * 4
    report.update({
        "payload_bytes": 0.0,  # nothing per request: the device holds its model
        "cloud_seconds_per_round": bundle["cloud_seconds_per_round"],
        # Per device and round: the updated cloud model (and Theta) down, the meta-patch up.
        "download_bytes_per_round": float(model_bytes(final_model)
                                          + (final_patch.bytes() if variant["scores"] == "devices" else 0)),
    })
    if variant["scores"] == "devices":
        metapatches = last_devices["metapatches"]
        report.update({
            **last_devices["report"],
            "upload_bytes_per_round": float(meta_bytes),
            "device_extra_bytes": float(final_patch.bytes() + meta_bytes),
            "device_ms_per_candidate": _device_ms(candidates, lambda rows: device_scores(
                final_model, final_patch, metapatches, rows)),
        })
    else:
        report.update({"seconds_per_device": 0.0, "upload_bytes_per_round": 0.0, "device_extra_bytes": 0.0,
                       "device_ms_per_candidate": _device_ms(candidates, lambda rows: predict(final_model, rows))})
    return Personalization(scores, report)


def _device_ms(candidates: SampleTensors, score: Any, devices: int = 50) -> float:
    """Median ms per candidate of one device scoring its candidates with ``score``."""
    rows_of = RowsByUser(candidates.user)
    users = torch.unique(candidates.user)[:devices].tolist()

    def one(index: int) -> int:
        rows = candidates.rows(rows_of(users[index]))
        score(rows)
        return len(rows)

    return device_ms_per_candidate(one, len(users))

