"""Tests for the dynamic-weight family (methods/dynamic.py and its seven members).

Tiny models on every backbone: shapes, the exact neutral start (an untrained member
with the base model's weights scores as the base model), gradients reaching every
trained parameter once nothing sits at its zero initialisation, PPNet's and PEPNet's
stop-gradient, the device half fed with what the cloud sent equal to the in-cloud
computation, and the cost report.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import PARAMETERS, backbone_options

from duet_pipeline.methods import get_method
from duet_pipeline.methods.common import Devices
from duet_pipeline.methods.dynamic import DynamicOptions
from duet_pipeline.models.backbones import BACKBONES
from duet_pipeline.models.heads import PERSONAL_HEADS
from duet_pipeline.models.heads.base import RowInputs
from duet_pipeline.models.recommender import (
    ModelConfig,
    Recommender,
    consecutive_runs,
    model_bundle,
)
from duet_pipeline.samples import SampleTensors

DIM = 8
SEQ_LEN = 4
NUM_ITEMS = 25
FAMILY = ["lhuc", "ppnet", "poso", "pepnet", "m2m", "can", "apg"]
BACKBONE_OPTIONS = {name: backbone_options(name, **({"num_heads": 2} if name == "sasrec" else {}))
                    for name in BACKBONES}

pytestmark = pytest.mark.usefixtures("light_torch")


def options(method: str) -> DynamicOptions:
    block = dict(PARAMETERS["personalization"][method])
    block["serving"] = {"batch_devices": 3, "latency_devices": 2, "latency_batches": 2}
    return get_method(method).parse_options(block)


def rows(n_users: int = 5, per_user: int = 4, seed: int = 0) -> SampleTensors:
    """Rows in groups sharing a history (as training groups and devices' candidates)."""
    rng = np.random.default_rng(seed)
    histories = []
    for _ in range(n_users):
        row = np.zeros(SEQ_LEN, dtype=np.int64)
        length = int(rng.integers(1, SEQ_LEN + 1))
        row[SEQ_LEN - length:] = rng.choice(np.arange(1, NUM_ITEMS + 1), size=length, replace=False)
        histories += [row] * per_user
    n = n_users * per_user
    return SampleTensors(torch.arange(n) // per_user, torch.from_numpy(np.stack(histories)),
                         torch.from_numpy(rng.integers(1, NUM_ITEMS + 1, size=n)),
                         torch.from_numpy((np.arange(n) % per_user == 0).astype(np.float32)))


def base_config(backbone: str) -> ModelConfig:
    return ModelConfig(NUM_ITEMS, SEQ_LEN, backbone, dim=DIM, backbone_options=BACKBONE_OPTIONS[backbone])


def family_model(method: str, backbone: str, train: SampleTensors | None = None) -> Recommender:
    config = base_config(backbone)
    config.personal_head = {"name": get_method(method).variant["head"], **options(method).head_options()}
    model = Recommender(config)
    model.head.prepare(rows(seed=9) if train is None else train)
    return model


def perturb(model: Recommender, scale: float = 0.3) -> None:
    """Move every parameter off its initial value (zero-initialised layers included)."""
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * scale)


def test_the_family_is_registered_with_one_head_each():
    # Beside the family: MetaPatch's device model (DCCL), a personal head around the static layers too.
    assert sorted(PERSONAL_HEADS) == sorted([*FAMILY, "metapatch"])
    for method in FAMILY:
        assert get_method(method).spec.cloud_model == "own"
        assert get_method(method).variant["head"] == method


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
@pytest.mark.parametrize("method", FAMILY)
def test_shapes_and_the_exact_neutral_start(method: str, backbone: str):
    torch.manual_seed(1)
    base = Recommender(base_config(backbone))
    perturb(base)  # a "trained" base model, far from initialisation
    model = family_model(method, backbone)
    missing, unexpected = model.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and all(name.startswith("head.") for name in missing)
    data = rows()
    model.eval(), base.eval()
    with torch.no_grad():
        sent = model.message(data.history)
        scores = model(data.history, data.target)
        expected = base(data.history, data.target)
    assert scores.shape == (len(data),)
    assert all(value.shape[0] == len(data) for value in sent.values())
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
@pytest.mark.parametrize("method", FAMILY)
def test_gradients_reach_every_trained_parameter(method: str, backbone: str):
    model = family_model(method, backbone)
    perturb(model)
    data = rows()
    model.train()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(data.history, data.target), data.label)
    loss.backward()
    # position_weights: DUET-PA's, unused (kind "none") by every other model. DIN's last
    # attention bias shifts every score of a window alike, which the softmax ignores:
    # its gradient is zero up to rounding in every model, the base model's too.
    exempt = ("position_weights.", "backbone.activation_unit.4.bias")
    dead = [name for name, p in model.named_parameters()
            if not name.startswith(exempt) and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert not dead, f"{method}/{backbone}: no gradient reaches {dead}"


@pytest.mark.parametrize("method", FAMILY)
def test_the_device_half_with_what_the_cloud_sent_equals_the_cloud_computation(method: str):
    model = family_model(method, "sasrec").eval()
    perturb(model)
    data = rows()
    distinct, row_of = consecutive_runs(data.history)
    with torch.no_grad():
        sent = model.message(distinct)
        received = model.score(distinct, data.target, row_of, sent)
        in_cloud = model(data.history, data.target)
    torch.testing.assert_close(received, in_cloud)


@pytest.mark.parametrize("method", ["ppnet", "pepnet"])
def test_the_gates_do_not_train_the_shared_features(method: str):
    """PPNet's gate input [c; sg(u); sg(e_t)]: the head's gradient with respect to u and
    e_t is the one with the gate values held fixed; c is trained through the gate."""
    head = family_model(method, "gru4rec").head
    perturb(head)
    user, prior, target_emb = (torch.randn(6, DIM, requires_grad=True) for _ in range(3))
    gates = head.gates
    out = gates(head.layer1, head.layer2, user, prior, target_emb)
    grads = torch.autograd.grad(out.sum(), [user, prior, target_emb], allow_unused=True)
    gate_input = torch.cat([prior, user, target_emb], dim=-1).detach()
    fixed1, fixed2 = gates.gate1(gate_input), gates.gate2(gate_input)
    reference = head.layer2(torch.tanh(head.layer1(user)) * fixed1) * fixed2
    (reference_user,) = torch.autograd.grad(reference.sum(), [user])
    torch.testing.assert_close(grads[0], reference_user)
    assert grads[1].abs().sum() > 0  # the prior is trained through the gate
    assert grads[2] is None  # the target embedding enters through the gate's input only


def test_pepnet_embedding_gate_does_not_train_the_embeddings_through_its_input():
    head = family_model("pepnet", "gru4rec").head
    perturb(head)
    history_emb = torch.randn(3, SEQ_LEN, DIM, requires_grad=True)
    target_emb = torch.randn(3, DIM, requires_grad=True)
    prior = torch.randn(3, DIM)
    inputs = RowInputs({"prior": prior}, torch.arange(3), torch.ones(3, SEQ_LEN, dtype=torch.long),
                       torch.ones(3, SEQ_LEN, dtype=torch.bool), torch.arange(1, 4), target_emb)
    gated_history, gated_target = head.gate_embeddings(history_emb, inputs.mask, inputs)
    upstream = torch.randn_like(gated_history)
    (grad_history,) = torch.autograd.grad((gated_history * upstream).sum(), [history_emb])
    gate = head.embedding_gate(torch.cat([prior.unsqueeze(1).expand_as(history_emb), history_emb.detach()], -1))
    torch.testing.assert_close(grad_history, upstream * gate)  # d(e * g)/de with g held fixed
    (grad_target,) = torch.autograd.grad(gated_target.sum(), [target_emb])
    torch.testing.assert_close(grad_target, head.embedding_gate(torch.cat([prior, target_emb.detach()], -1)))


def test_poso_code_reads_window_fill_and_popularity_buckets():
    train = rows(n_users=20, per_user=5, seed=4)
    head = family_model("poso", "din", train).head
    positives = train.target[train.label > 0]
    assert head.log_popularity[positives[0]] == torch.log1p((positives == positives[0]).sum().float())
    assert head.log_popularity[0] == 0
    assert torch.all(head.popularity_edges[1:] >= head.popularity_edges[:-1])
    history = train.history[:: 5]
    code = head.code(history, history > 0)
    assert code.shape == (len(history), 2 * options("poso").code_dim)
    torch.testing.assert_close(code[:, : options("poso").code_dim], head.fill_code((history > 0).sum(1)))


@pytest.mark.parametrize("method", FAMILY)
def test_personalize_scores_every_candidate_and_reports_costs(method: str):
    model = family_model(method, "din").eval()
    perturb(model)
    devices = Devices(rows(n_users=4, per_user=3, seed=2))
    out = get_method(method).personalize(model_bundle(model, method), devices, options(method))
    with torch.no_grad():
        expected = model(devices.candidates.history, devices.candidates.target).numpy()
    # Two float32 forward passes, batched differently (requests for 3 devices at a time, then
    # the device half; the whole model at once). Their rounding is a few float32 steps of
    # the largest terms summed, not of the score, which can be a near-cancellation: M2M's
    # -0.04 came 4.8e-7 apart, a third of the old tolerance there, on one AMD EPYC CPU. So the
    # bound scales with the largest score (the terms' size): 1e-5 of it is ~80 float32
    # steps of it, 30 times the largest difference measured, while scoring with another
    # device's payload moves some score by 3e-2 or more (measured, every member but CAN,
    # which sends nothing).
    np.testing.assert_allclose(out.scores, expected, rtol=0, atol=1e-5 * np.abs(expected).max())
    report = out.report
    assert report["devices"] == 4
    sent = model.message(devices.candidates.history[:1])
    assert report["payload_bytes"] == sum(v[0].numel() * 4 for v in sent.values())
    assert report["device_ms_per_candidate"] > 0 and report["generation_ms_p50_single"] > 0
    assert report["head_reads_candidate"] == float(method in ("ppnet", "pepnet", "can"))
    if method == "can":
        assert report["payload_bytes"] == 0 and report["device_extra_bytes"] > 0
    if method == "lhuc":
        assert report["device_extra_bytes"] == 0  # the scales are computed in the cloud
