"""The optimised training step and evaluation equal the plain computation (issue 10).

Optimised: fused Adam (``make_optimizer``), shared-history deduplication with heads
applied per run, the uniform-mask dropout. Plain: ``torch.optim.Adam``'s per-tensor
loop, every row scored on its own.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from duet_pipeline.methods import get_method
from duet_pipeline.methods.duet import DuetOptions, duet_config
from duet_pipeline.models.backbones import BACKBONES
from duet_pipeline.models.layers import Dropout
from duet_pipeline.models.recommender import ModelConfig, Recommender
from duet_pipeline.training.loop import make_optimizer, predict

from conftest import PARAMETERS, backbone_options, training_config

ITEMS, SEQ_LEN = 40, 6


def model(backbone: str, method: str) -> Recommender:
    torch.manual_seed(0)
    shape = ModelConfig(ITEMS, SEQ_LEN, backbone, dim=8, backbone_options=backbone_options(backbone))
    if method != "base":
        shape = duet_config(shape, DuetOptions(**PARAMETERS["personalization"]["duet"]), get_method(method).variant)
    return Recommender(shape)


def grouped_batch(groups: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows in groups of 5 sharing a history (as the training loop's grouped shuffle)."""
    generator = torch.Generator().manual_seed(seed)
    history = torch.randint(1, ITEMS + 1, (groups, SEQ_LEN), generator=generator)
    history[: groups // 2, : SEQ_LEN // 2] = 0  # left padding
    history = history.repeat_interleave(5, dim=0)
    target = torch.randint(1, ITEMS + 1, (5 * groups,), generator=generator)
    label = (torch.arange(5 * groups) % 5 == 0).float()
    return history, target, label


@pytest.mark.usefixtures("light_torch")
@pytest.mark.parametrize("method", ["base", "duet+swa"])
@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_the_optimised_step_gives_the_plain_steps_losses_and_gradients(backbone: str, method: str) -> None:
    fast = model(backbone, method).train()
    plain = copy.deepcopy(fast)
    config = training_config(learning_rate=1e-2)
    optimisers = (make_optimizer(fast, config),
                  torch.optim.Adam(plain.parameters(), lr=1e-2, foreach=False, fused=False))
    for step in range(4):
        # Each step starts both from the same state, so what is compared is one step.
        # (Left to run apart, Adam turns the rounding noise of gradients that are zero in
        # exact arithmetic, like a key bias's, into steps of +-lr: equal maths, diverging
        # trajectories.)
        plain.load_state_dict(fast.state_dict())
        for p_fast, p_plain in zip(fast.parameters(), plain.parameters()):
            if p_fast in optimisers[0].state:
                optimisers[1].state[p_plain] = {k: v.clone() for k, v in optimisers[0].state[p_fast].items()}
        history, target, label = grouped_batch(12, step)
        losses, gradients = [], []
        for net, optimiser in zip((fast, plain), optimisers):
            torch.manual_seed(100 + step)  # the same dropout masks for both
            loss = nn.functional.binary_cross_entropy_with_logits(net(history, target), label)
            optimiser.zero_grad()
            loss.backward()
            losses.append(loss.detach())
            gradients.append([torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in net.parameters()])
            optimiser.step()
        torch.testing.assert_close(losses[0], losses[1], rtol=1e-5, atol=1e-5)
        names = [name for name, _ in fast.named_parameters()]
        for name, a, b in zip(names, *gradients):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=f"step {step}: gradient of {name}")
        for name, a, b in zip(names, fast.parameters(), plain.parameters()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=f"step {step}: {name} after the update")


@pytest.mark.usefixtures("light_torch")
@pytest.mark.parametrize("method", ["base", "duet+swa"])
@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_batched_evaluation_scores_every_row_as_scoring_it_alone(backbone: str, method: str) -> None:
    from duet_pipeline.samples import SampleTensors

    net = model(backbone, method).eval()
    history, target, label = grouped_batch(30, 7)
    batched = predict(net, SampleTensors(torch.zeros(len(label), dtype=torch.long), history, target, label), 64)
    with torch.no_grad():
        alone = np.array([net(history[i : i + 1], target[i : i + 1]).item() for i in range(len(label))])
    np.testing.assert_allclose(batched, alone, rtol=1e-5, atol=1e-5)


def test_dropout_keeps_one_minus_p_of_the_values_scaled_and_is_the_identity_in_eval() -> None:
    torch.manual_seed(0)
    dropout = Dropout(0.2)
    out = dropout(torch.ones(200_000))
    kept = out != 0
    assert abs(kept.float().mean().item() - 0.8) < 0.005
    torch.testing.assert_close(out[kept], torch.full_like(out[kept], 1.25))
    x = torch.randn(50)
    assert torch.equal(dropout.eval()(x), x)
    with pytest.raises(ValueError, match=r"dropout probability must be in \[0, 1\), got 1.0"):
        Dropout(1.0)
