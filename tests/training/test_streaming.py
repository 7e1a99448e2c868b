"""training.streaming: every stored positive exactly once per epoch, expanded as in memory."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from duet_pipeline.features.samples import samples_frame
from duet_pipeline.training.loop import fit
from duet_pipeline.training.streaming import StreamedSamples
from duet_pipeline.samples import SampleTensors
from duet_pipeline.training.tensors import to_tensors

from conftest import training_config
from training.test_loop import ITEMS, learnable_samples, tiny_model


def stored_samples(positives: int, negatives: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    return samples_frame(rng.integers(1, 50, positives), rng.integers(0, ITEMS + 1, (positives, 5)),
                         rng.integers(1, ITEMS + 1, positives), rng.integers(1, ITEMS + 1, (positives, negatives)))


def as_rows(tensors) -> np.ndarray:
    rows = np.column_stack([tensors.user.numpy(), tensors.history.numpy(), tensors.target.numpy(),
                            tensors.label.numpy()])
    return rows[np.lexsort(rows.T[::-1])]


@pytest.fixture
def shards(tmp_path: Path) -> tuple[list[str], object]:
    """Stored samples in two files of small row groups, as Spark's part files."""
    frame = stored_samples(1_000)
    files = [str(tmp_path / "part-0.parquet"), str(tmp_path / "part-1.parquet")]
    frame.iloc[:600].to_parquet(files[0], row_group_size=64)
    frame.iloc[600:].to_parquet(files[1], row_group_size=64)
    return files, frame


def test_an_epoch_streams_every_positive_once_with_its_negatives(shards) -> None:
    files, frame = shards
    streamed = StreamedSamples.open(files, shuffle_buffer=200)
    assert (streamed.positives, streamed.group, len(streamed)) == (1_000, 5, 5_000)
    batches = list(streamed.batches(batch_size=48, seed=3))  # not a multiple of 5 rows
    assert [len(batch) for batch in batches] == [48] * 104 + [8]  # batch_size rows, as in memory
    stream = SampleTensors.concat(batches)
    # The stream is whole positives, each followed by its 4 negatives (with its user and history),
    # though a positive's rows may straddle two batches.
    assert (stream.label.view(-1, 5)[:, 0] == 1).all() and (stream.label.view(-1, 5)[:, 1:] == 0).all()
    assert (stream.user.view(-1, 5) == stream.user.view(-1, 5)[:, :1]).all()
    assert (stream.history.view(-1, 5, 5) == stream.history.view(-1, 5, 5)[:, :1]).all()
    np.testing.assert_array_equal(as_rows(stream), as_rows(to_tensors(frame)))


def test_the_order_depends_on_the_seed_only(shards) -> None:
    files, _ = shards
    streamed = StreamedSamples.open(files, shuffle_buffer=200)
    first = [b.target for b in streamed.batches(50, seed=1)]
    again = [b.target for b in streamed.batches(50, seed=1)]
    other = [b.target for b in streamed.batches(50, seed=2)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


@pytest.mark.usefixtures("light_torch")
def test_fit_trains_from_streamed_files_as_from_memory(tmp_path: Path) -> None:
    """The same stored samples, streamed or in memory: the model learns as much."""
    rows = learnable_samples(200, 5, 0)
    positives = rows.label > 0
    frame = samples_frame(rows.user[positives].numpy(), rows.history[positives].numpy(),
                          rows.target[positives].numpy(), rows.target[~positives].view(-1, 4).numpy())
    path = tmp_path / "train.parquet"
    frame.to_parquet(path, row_group_size=100)
    validation = learnable_samples(40, 5, 1)
    config = training_config(batch_size=100, max_epochs=6, learning_rate=0.01, progress=False)
    streamed = fit(tiny_model(), StreamedSamples.open([str(path)]), validation, config).history["val_auc"]
    in_memory = fit(tiny_model(), to_tensors(frame), validation, config).history["val_auc"]
    assert streamed.max() > streamed.iloc[0] + 0.03  # it learns
    assert abs(streamed.max() - in_memory.max()) < 0.02


def test_compact_validation_scores_as_the_expanded_rows() -> None:
    """A streamed training's compact validation gives the metrics of the expanded rows."""
    from duet_pipeline.training.loop import evaluate
    from duet_pipeline.training.tensors import to_compact

    frame = stored_samples(300, negatives=9).assign(user_id=np.arange(1, 301))  # one positive per user
    model = tiny_model()
    assert evaluate(model, to_compact(frame), batch_size=64) == pytest.approx(evaluate(model, to_tensors(frame)))
