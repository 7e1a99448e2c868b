"""Training on the device, as the methods that do it share it (per-device fine-tuning and
DCCL's MetaPatch): each device's optimiser steps over its own rows, and Adam applied to many
devices at once (each device's state a row of a stacked tensor, every device still training
at the same step count). What is trained, and how its gradient is batched over devices,
is the method's (a model's parameters under ``torch.func.vmap``; a patch).
"""
from __future__ import annotations

import numpy as np
import torch

# Adam as every device runs it (torch's defaults, spelled out for the hand-batched updates).
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def user_steps(user_rows: torch.Tensor, user: int, epochs: int, batch_size: int, seed: int) -> list[torch.Tensor]:
    """Row indices of each optimiser step of ``user``, whose own rows are ``user_rows``:
    shuffled per epoch, then batched (every method that trains on the device).

    The shuffle is seeded by (seed, user, epoch), so a device's training does not
    depend on which other devices share its chunk. Each step's rows are then put back
    in table order: the step's mean loss does not depend on the order, and a positive
    and its negatives, which share a history, sit together again, so the model encodes
    that history once (5x less backbone work for GRU4Rec and SASRec).
    """
    rows = user_rows.numpy()
    steps = []
    for epoch in range(epochs):
        order = rows[np.random.default_rng([seed, user, epoch]).permutation(len(rows))]
        steps += [torch.from_numpy(np.sort(order[i : i + batch_size])) for i in range(0, len(order), batch_size)]
    return steps


def device_adam(value: torch.Tensor, grad: torch.Tensor, first: torch.Tensor, second: torch.Tensor, step: int,
                learning_rate: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One ``torch.optim.Adam`` step (``step`` counts from 0), element by element, for devices'
    stacked values: the new values and first and second moments."""
    (beta1, beta2) = ADAM_BETAS
    correction1, correction2 = 1 - beta1 ** (step + 1), 1 - beta2 ** (step + 1)
    first = beta1 * first + (1 - beta1) * grad
    second = beta2 * second + (1 - beta2) * grad**2
    denom = (second.sqrt() / correction2**0.5) + ADAM_EPS
    return value - (learning_rate / correction1) * first / denom, first, second
