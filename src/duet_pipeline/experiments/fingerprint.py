"""Whether a recorded cell is still what the code computes.

A cell's numbers follow from its data, its parameters and the code. The data is
identified by a hash of the sample tensors the grid trains on (integers, exact on every
machine), the parameters by ``params_hash`` (experiments/grid.py). For the code, a hash
of the source files would call every refactor a change and mark the whole record stale.
Instead, every (backbone, method) runs its whole cell -- one epoch of its cloud
training, its personalisation and scoring -- on a tiny fixed dataset, and the numbers
that run computes (training losses, validation log loss, the test scores) are its
*numerics fingerprint*. A recorded cell is current when today's code reproduces the
fingerprint recorded beside it.

The tiny run computes in float64 and the fingerprints are compared with a tolerance,
not hashed. The same computation sums in a different order on different CPUs (an AMD
and an Intel core take different kernels): in float32 the tiny run's numbers then
differ by up to about 1e-6 relative, as much as a real change such as DUET's position
weights moves them; in float64 the drift is about 1e-13, and a rounded hash would still
flip wherever a number lands on a rounding boundary. ``RTOL`` sits far above that drift
and below the smallest change between two registered variants
(tests/experiments/test_fingerprint.py measures both).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

import numpy as np
import pandas as pd
import torch

from duet_pipeline.features.samples import build_item_index, make_samples

from .grid import plan_units
from .runner import CellResult, GridData, run_unit

# Relative (and, near zero, absolute) tolerance when comparing two fingerprints.
RTOL, ATOL = 1e-6, 1e-9
# Scores of this many leading test rows enter the fingerprint beside the scores' moments.
LEADING_SCORES = 8
# The tiny run: one epoch in small batches, so that a fingerprint costs about a second.
TINY_TRAINING = {"max_epochs": 1, "batch_size": 64, "patience": 1, "limit_train_batches": None}


def tiny_ratings(users: int = 40, items: int = 160, seed: int = 7) -> pd.DataFrame:
    """A fixed ratings log from integer draws only (no float maths that could differ
    between CPUs): each user clicks 8-20 distinct items at distinct times."""
    rng = np.random.default_rng(seed)
    frames = []
    for user in range(1, users + 1):
        count = int(rng.integers(8, 21))
        frames.append(pd.DataFrame({
            "user_id": user,
            "item_id": rng.permutation(items)[:count] + 1,
            "rating": rng.integers(1, 6, size=count).astype(float),
            "timestamp": 1_000_000 + user * 1_000 + np.arange(count) * 7,
        }))
    ratings = pd.concat(frames, ignore_index=True)
    ratings["row_order"] = np.arange(len(ratings), dtype=np.int64)
    return ratings


def tiny_data(features: dict) -> GridData:
    """The tiny dataset through the real feature stage, with the run's feature parameters
    (test and validation negatives capped by the tiny catalogue)."""
    interactions = tiny_ratings()
    index = build_item_index(interactions)
    negatives = {split: min(int(count), 20) for split, count in features["negatives"].items()}
    samples = make_samples(interactions, index, int(features["max_seq_len"]), int(features["min_user_interactions"]),
                           negatives, int(features["seed"]))
    return GridData.from_frames(samples["train"], samples["validation"], samples["test"], int(index["item_index"].max()))


def fingerprint_of(result: CellResult) -> list[float]:
    """The numbers a tiny cell computed: per epoch its training and validation losses,
    then the test log loss, the scores' mean and spread, and the leading scores."""
    history = result.history
    scores = result.predictions["score"].to_numpy(np.float64)
    values = [*history["train_loss"], *history["val_logloss"], result.metrics["logloss"],
              float(scores.mean()), float(scores.std()), *scores[:LEADING_SCORES]]
    return [float(f"{value:.12g}") for value in values]


def compute_fingerprints(params: dict, dataset: str, backbones: Iterable[str], methods: Iterable[str]
                         ) -> dict[tuple[str, str], list[float]]:
    """(backbone, method) -> its fingerprint under ``params`` (the grid's resolved
    parameters), each unit run once, in this process, in float64."""
    tiny = {**params, "training": {**params["training"], **TINY_TRAINING}}
    data = tiny_data(params["features"])
    units = plan_units(tiny, dataset, list(backbones), list(methods), [0], data_version="tiny", code="")
    found = {}
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        for unit in units:
            for result in run_unit(unit, data):
                found[(result.cell.backbone, result.cell.method)] = fingerprint_of(result)
    finally:
        torch.set_default_dtype(default)
    return found


def same_numerics(recorded: str | list[float], current: list[float]) -> bool:
    """Whether a recorded fingerprint (as stored, JSON) is the current one, to the
    tolerance above."""
    values = json.loads(recorded) if isinstance(recorded, str) else recorded
    return len(values) == len(current) and bool(np.allclose(values, current, rtol=RTOL, atol=ATOL))


def encode(fingerprint: list[float]) -> str:
    return json.dumps(fingerprint)


def samples_hash(data: GridData) -> str:
    """A hash of the exact model rows every split holds (ids, histories, targets, labels)."""
    digest = hashlib.sha256()
    for split in (data.train, data.validation, data.test):
        for tensor in (split.user, split.history, split.target, split.label):
            digest.update(tensor.numpy().tobytes())
    digest.update(str(data.num_items).encode())
    return digest.hexdigest()[:16]
