"""The shared-history shortcut of ``Recommender.score`` on real sample batches.

``make_samples`` puts each positive and its negatives in consecutive rows with one
history, so the rows of a split form runs of identical histories. With
``dedupe_histories = True`` the recommender encodes each run's history once (user vector
of target-free backbones, generated head) and gathers it back to the rows
(``consecutive_runs``, ``apply_head_to_runs``). That must give the logits, and the
gradients of the loss, of the plain per-row computation (``dedupe_histories = False``).

The two differ in summation order only (a gradient is summed over runs, then rows, or
over rows), so the models run in float64. In float32 the gradients, sums over every row
of the split, came up to 3e-8 apart on one AMD EPYC CPU, a fortieth of the tolerance
(rtol 1e-4, atol 1e-7) used before. In float64, 2**29 times finer, logits and gradients
agree to 2.2e-16 and 7.6e-17 (the largest are 1.2 and 0.23): TOLERANCE, 1e-12, leaves a
margin of more than 1,000 on any CPU, while a run gathered from the wrong history moves
a logit by more than 1e-2 (the positive control below).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from duet_pipeline.models.heads.generator import ParameterGenerator
from duet_pipeline.features.samples import build_item_index
from duet_pipeline.data.synthetic import generate_ratings
from duet_pipeline.features.samples import make_samples
from duet_pipeline.models.backbones import BACKBONES
from duet_pipeline.models.layers import HeadWeights, apply_head
from duet_pipeline.models.recommender import ModelConfig, Recommender, consecutive_runs
from duet_pipeline.training.tensors import to_tensors

from conftest import backbone_options, generated_heads

DIM = 8
MAX_SEQ_LEN = 5
NEGATIVES = {"train": 4, "validation": 9, "test": 9}
SPLITS = ("train", "test")
# conf/base's options (backbones and the generator have no defaults); SASRec with two heads.
BACKBONE_OPTIONS = {name: backbone_options(name, **({"num_heads": 2} if name == "sasrec" else {}))
                    for name in BACKBONES}
GENERATOR = {"generator_hidden": 16, "num_generators": 2, "temperature": 1.0, "deviation_init_scale": 0.5}
# (generator, position weights, position weights on the backbone too)
HEADS = {
    "static": (None, "none", False),
    "duet": (GENERATOR, "none", False),
    "duet-pa-gaussian": (GENERATOR, "gaussian", True),
}
# Train mode is deterministic (no dropout) for these option sets; SASRec's is not.
DETERMINISTIC_IN_TRAIN_MODE = {"din", "gru4rec"}

TOLERANCE = 1e-12  # absolute, on logits and gradients in float64: see the module docstring

pytestmark = pytest.mark.usefixtures("light_torch")


@pytest.fixture(scope="module")
def data():
    """(num_items, {split: SampleTensors}) from a small generated ratings table."""
    ratings = generate_ratings(num_users=8, num_items=100, num_rows=200, seed=3)
    ratings["row_order"] = np.arange(len(ratings), dtype=np.int64)
    item_index = build_item_index(ratings)
    samples = make_samples(ratings, item_index, MAX_SEQ_LEN, 3, NEGATIVES, seed=0)
    return int(item_index["item_index"].max()), {split: to_tensors(samples[split]) for split in SPLITS}


def make_model(backbone: str, heads: str, num_items: int) -> Recommender:
    generator, position, on_backbone = HEADS[heads]
    model = Recommender(ModelConfig(
        num_items=num_items, max_seq_len=MAX_SEQ_LEN, backbone=backbone, dim=DIM,
        backbone_options=dict(BACKBONE_OPTIONS[backbone]),
        generator=None if generator is None else dict(generator),
        position_weights=position, position_weights_on_backbone=on_backbone,
    ))
    # Larger item vectors than the N(0, 0.1) init, so that histories (and with them
    # generated heads and user vectors) differ clearly between runs.
    with torch.no_grad():
        model.items.weight.normal_(std=1.0)
        model.items.weight[0].zero_()
    return model.double()


def logits_and_grads(model: Recommender, rows, dedupe: bool):
    model.dedupe_histories = dedupe
    model.zero_grad(set_to_none=True)
    logits = model(rows.history, rows.target)
    # Labels in the logits' dtype: with float32 labels PyTorch computes the loss in float32.
    nn.functional.binary_cross_entropy_with_logits(logits, rows.label.to(logits.dtype)).backward()
    grads = {name: None if p.grad is None else p.grad.clone() for name, p in model.named_parameters()}
    return logits.detach(), grads


def runs_of(history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(first row of each run of identical consecutive histories, run of each row),
    by a plain loop: the test's own account, independent of ``consecutive_runs``."""
    rows = history.tolist()
    first, row_of = [], []
    for i, row in enumerate(rows):
        if i == 0 or row != rows[i - 1]:
            first.append(i)
        row_of.append(len(first) - 1)
    return torch.tensor(first), torch.tensor(row_of)


def logits_with_runs_shifted(model: Recommender, rows) -> torch.Tensor:
    """Positive control: each row scored with the NEXT run's history (user vector, head)
    and its own target, i.e. what a shortcut that gathers from the wrong run computes."""
    first, row_of = runs_of(rows.history)
    distinct = rows.history[first]
    wrong = (row_of + 1) % len(distinct)
    emb, mask = model.embed_history(distinct)
    target_emb = model.items(rows.target)
    user = model.user_vectors(emb, mask, wrong, target_emb)
    heads = generated_heads(model, distinct) if model.message(distinct) else model.head.weights()
    if heads.per_row:
        heads = HeadWeights(*(t[wrong] for t in heads.tensors()))
    return (apply_head(user, heads) * model.target_tower(target_emb)).sum(dim=-1)


def batch_sizes_seen(module: nn.Module, call):
    """Batch sizes of every forward call of ``module`` while ``call()`` runs."""
    sizes = []
    handle = module.register_forward_hook(lambda m, args, out: sizes.append(out.shape[0]))
    try:
        call()
    finally:
        handle.remove()
    return sizes


def test_samples_hold_runs_of_identical_consecutive_histories(data):
    """Without such runs the comparison below would not exercise the shortcut."""
    _, splits = data
    for split in SPLITS:
        rows = splits[split]
        group = NEGATIVES[split] + 1
        history = rows.history.numpy()
        assert len(history) % group == 0 and len(history) >= 5 * group
        # Each positive is followed by its negatives, all with the positive's history ...
        blocks = history.reshape(-1, group, MAX_SEQ_LEN)
        assert (blocks == blocks[:, :1]).all()
        assert (rows.label.numpy().reshape(-1, group) == np.eye(1, group)).all()
        # ... and neighbouring positives have different histories: runs are exactly the groups.
        assert (blocks[1:, 0] != blocks[:-1, 0]).any(axis=1).all()
        first, row_of = runs_of(rows.history)
        assert torch.equal(first, torch.arange(0, len(history), group))
        assert torch.equal(row_of, torch.arange(len(blocks)).repeat_interleave(group))
        # The library's run detection agrees.
        distinct, library_row_of = consecutive_runs(rows.history)
        assert torch.equal(distinct, rows.history[first]) and torch.equal(library_row_of, row_of)
    # Train rows hold every amount of padding (a user's first targets have short
    # histories); test windows are full (every user has at least 20 ratings).
    lengths = set((splits["train"].history > 0).sum(dim=1).tolist())
    assert lengths == set(range(1, MAX_SEQ_LEN + 1)), lengths


@pytest.mark.parametrize("heads", sorted(HEADS))
@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_shared_history_shortcut_matches_per_row_scores_and_gradients(data, backbone, heads):
    num_items, splits = data
    model = make_model(backbone, heads, num_items)
    modes = ["eval", "train"] if backbone in DETERMINISTIC_IN_TRAIN_MODE else ["eval"]
    for split in SPLITS:
        rows = splits[split]
        runs = len(runs_of(rows.history)[0])
        assert runs < len(rows)
        model.eval()
        model.dedupe_histories = False
        with torch.no_grad():  # rows given another run's history would score clearly differently
            control = (logits_with_runs_shifted(model, rows) - model(rows.history, rows.target)).abs()
        assert control.max() > 1e-2, f"{backbone}/{heads}/{split}: runs are indistinguishable"
        for mode in modes:
            model.train(mode == "train")
            where = f"{backbone}/{heads}/{split}/{mode}"
            # The shortcut really encodes each run once (and DIN, target-aware, every row).
            encoded = batch_sizes_seen(model.backbone, lambda: logits_and_grads(model, rows, True))
            assert encoded == [len(rows) if model.backbone.uses_target else runs], where
            if isinstance(model.head, ParameterGenerator):
                heads_made = batch_sizes_seen(model.head.encoder_mlp, lambda: logits_and_grads(model, rows, True))
                assert heads_made == [runs], where

            shared, shared_grads = logits_and_grads(model, rows, dedupe=True)
            plain, plain_grads = logits_and_grads(model, rows, dedupe=False)
            assert shared.shape == (len(rows),) and torch.isfinite(plain).all()
            assert shared.dtype == plain.dtype == torch.float64, where
            assert plain.std() > 1e-3, where  # scores really differ between rows
            torch.testing.assert_close(shared, plain, rtol=0, atol=TOLERANCE, msg=lambda m: f"{where}: {m}")
            assert shared_grads.keys() == plain_grads.keys()
            for name, grad in plain_grads.items():
                other = shared_grads[name]
                assert (grad is None) == (other is None), f"{where}: {name}"
                if grad is not None:
                    torch.testing.assert_close(other, grad, rtol=0, atol=TOLERANCE,
                                               msg=lambda m: f"{where}: gradient of {name}: {m}")
            assert plain_grads["items.weight"].abs().sum() > 0
