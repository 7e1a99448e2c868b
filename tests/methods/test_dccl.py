"""DCCL (methods/dccl.py, models/metapatch.py): MetaPatch on the device, MoMoDistill in the cloud.

Tiny models on every backbone: a zero meta-patch is the cloud model exactly; device
training changes nothing but the meta-patches; all devices trained at once equal one
device at a time with torch.optim.Adam; the KL term is zero where device and cloud
agree and its gradient reaches only the cloud model; the loop's rounds and report.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import PARAMETERS, backbone_options, training_config

from duet_pipeline.methods import get_method
from duet_pipeline.methods import dccl
from duet_pipeline.methods.common import Devices
from duet_pipeline.models.backbones import BACKBONES
from duet_pipeline.models.metapatch import MetaPatch, bernoulli_kl, patched_logits
from duet_pipeline.models.recommender import ModelConfig, Recommender, model_bundle
from duet_pipeline.parameters import ParameterError
from duet_pipeline.training.loop import predict
from duet_pipeline.training.models import CloudData
from duet_pipeline.samples import SampleTensors

DIM = 8
SEQ_LEN = 4
NUM_ITEMS = 25

pytestmark = pytest.mark.usefixtures("light_torch")


def options(device: dict | None = None, **overrides) -> dccl.DcclOptions:
    block = {**PARAMETERS["personalization"]["dccl"], **overrides}
    block["device"] = {**block["device"], "progress": False, **(device or {})}
    return get_method("metapatch").parse_options(block)


def rows(n_users: int = 6, seed: int = 0) -> SampleTensors:
    """Each user a different number of rows (3..), in groups of 1 positive + 2 negatives."""
    rng = np.random.default_rng(seed)
    users, histories = [], []
    for user in range(1, n_users + 1):
        for _ in range(1 + user % 3):
            row = np.zeros(SEQ_LEN, dtype=np.int64)
            length = int(rng.integers(1, SEQ_LEN + 1))
            row[SEQ_LEN - length:] = rng.choice(np.arange(1, NUM_ITEMS + 1), size=length, replace=False)
            histories += [row] * 3
            users += [user] * 3
    n = len(users)
    return SampleTensors(torch.tensor(users), torch.from_numpy(np.stack(histories)),
                         torch.from_numpy(rng.integers(1, NUM_ITEMS + 1, size=n)),
                         torch.from_numpy((np.arange(n) % 3 == 0).astype(np.float32)))


def first_group_per_user(data: SampleTensors) -> SampleTensors:
    """Each user's first 1 positive + 2 negatives: validation or test rows, as a device's candidates."""
    first = torch.ones(len(data), dtype=torch.bool)
    first[1:] = data.user[1:] != data.user[:-1]
    starts = torch.nonzero(first).squeeze(1)
    return data.rows(torch.cat([starts + k for k in range(3)]).sort().values)


def cloud(backbone: str, positions=("user", "hidden"), seed: int = 1) -> dict:
    torch.manual_seed(seed)
    model = Recommender(ModelConfig(NUM_ITEMS, SEQ_LEN, backbone, dim=DIM, backbone_options=backbone_options(
        backbone, **({"num_heads": 2} if backbone == "sasrec" else {}))))
    base = model_bundle(model, "base")
    return dccl.start_round(base, options(patch_positions=list(positions), meta_dim=3, theta_init_std=0.5))


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_a_zero_metapatch_is_exactly_the_cloud_model(backbone: str):
    start = cloud(backbone)
    model, patch = dccl.load_cloud(start)
    data = rows()
    zero = torch.zeros(int(data.user.max()) + 1, patch.meta_dim)
    assert np.array_equal(dccl.device_scores(model, patch, zero, data), predict(model, data))
    # A non-zero one does change the scores (the patch is wired in).
    assert not np.allclose(dccl.device_scores(model, patch, torch.ones_like(zero), data), predict(model, data))


@pytest.mark.parametrize("positions", [("user",), ("hidden",), ("user", "hidden")])
def test_patches_have_the_shapes_of_their_positions(positions):
    patch = MetaPatch(DIM, positions, meta_dim=3, init_std=0.1)
    assert patch.theta.shape == (len(positions) * (DIM * DIM + DIM), 3)
    weights = patch.patches(torch.randn(5, 3))
    assert sorted(weights) == sorted(positions)
    for w, b in weights.values():
        assert w.shape == (5, DIM, DIM) and b.shape == (5, DIM)


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_device_training_changes_only_the_metapatches(backbone: str):
    start = cloud(backbone)
    frozen = {k: v.clone() for k, v in start["state_dict"].items()}
    theta = start["theta"].clone()
    result = dccl.device_round(start, rows(), options(meta_dim=3, device={"learning_rate": 0.1, "epochs": 2,
                                                                            "batch_size": 4, "loop_devices": 2}))
    assert all(torch.equal(frozen[k], v) for k, v in start["state_dict"].items())
    assert torch.equal(theta, start["theta"])
    trained = result["metapatches"]
    assert trained.shape == (7, 3)
    assert torch.count_nonzero(trained[0]) == 0  # user 0 has no rows: its meta-patch stays zero
    assert (trained[1:].abs() > 0).all()
    assert result["report"]["loop_seconds_per_device"] > 0


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_all_devices_at_once_equal_one_device_at_a_time(backbone: str):
    """The two differ only in summation order (all devices' rows in one batch, or one
    device's), so they run in float64. Over a device's up to 9 Adam steps a rounding
    difference grows (Adam divides each gradient by its running scale): in float32 the
    meta-patches came 1.5e-7 apart on one AMD EPYC CPU, against rtol 1e-5 and atol 1e-6
    before. In float64, 2**29 times finer, they agree to 3e-16; 1e-12 leaves a margin of
    more than 1,000 on any CPU, while training moves every meta-patch by more than 5e-2."""
    start = cloud(backbone)
    model, patch = dccl.load_cloud(start)
    model, patch = model.double(), patch.double()
    data = rows()
    chosen = options(meta_dim=3, device={"learning_rate": 0.05, "epochs": 3, "batch_size": 4, "loop_devices": 0})
    initial = torch.randn(int(data.user.max()) + 1, 3, dtype=torch.float64) * 0.1  # a previous round's meta-patches
    batched = dccl.train_metapatches(model, patch, data, initial, chosen)
    assert batched.dtype == torch.float64
    for user in torch.unique(data.user).tolist():
        alone = dccl.train_metapatch_alone(model, patch, data, user, initial[user], chosen)
        assert (alone - initial[user]).abs().max() > 5e-2  # the device trained
        torch.testing.assert_close(batched[user], alone, rtol=0, atol=1e-12)


def test_the_kl_term_is_zero_where_device_and_cloud_agree_and_trains_only_the_cloud():
    logits = torch.tensor([-30.0, -2.0, 0.0, 1.5, 30.0])
    assert torch.allclose(bernoulli_kl(logits, logits), torch.zeros(5), atol=1e-6)
    assert (bernoulli_kl(logits[1:4], logits[1:4] + 0.5) > 1e-3).all()
    # Against the definition sum_y p_t(y) log(p_t(y) / p_s(y)).
    teacher, student = torch.tensor([0.3, -1.0]), torch.tensor([-0.4, 2.0])
    pt, ps = torch.sigmoid(teacher), torch.sigmoid(student)
    expected = pt * torch.log(pt / ps) + (1 - pt) * torch.log((1 - pt) / (1 - ps))
    torch.testing.assert_close(bernoulli_kl(teacher, student), expected)
    # Gradient: through the cloud's logits only, never into the device model.
    start = cloud("gru4rec")
    model, patch = dccl.load_cloud(start)
    patch.theta.requires_grad_(True)
    device_model = Recommender(model.config)
    device_model.load_state_dict(model.state_dict())
    student = Recommender(model.config)
    student.load_state_dict(model.state_dict())
    data = rows()
    user_vector, target_vector = device_model.head_inputs(data.history, data.target)
    phi = torch.randn(int(data.user.max()) + 1, 3, requires_grad=True)
    users, row_of = torch.unique_consecutive(data.user, return_inverse=True)
    teacher = patched_logits(device_model.head, user_vector, target_vector, patch.patches(phi[users]), row_of)
    bernoulli_kl(teacher, student(data.history, data.target)).mean().backward()
    assert phi.grad is None and patch.theta.grad is None
    assert all(p.grad is None for p in device_model.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())


def test_theta_update_changes_only_theta_and_fits_the_devices():
    start = cloud("din")
    data = rows()
    devices = dccl.device_round(start, data, options(meta_dim=3, device={"learning_rate": 0.5, "epochs": 3,
                                                                           "batch_size": 4, "loop_devices": 0}))
    chosen = options(meta_dim=3, theta_epochs=30, theta_learning_rate=0.01)
    before = dccl.load_cloud(start)
    updated, report = dccl.theta_round(start, devices, data, training_config(batch_size=8), chosen)
    assert all(torch.equal(start["state_dict"][k], v) for k, v in updated["state_dict"].items())
    assert not torch.equal(updated["theta"], start["theta"])
    after = dccl.load_cloud(updated)
    loss = lambda model, patch: torch.nn.functional.binary_cross_entropy_with_logits(  # noqa: E731
        torch.from_numpy(dccl.device_scores(model, patch, devices["metapatches"], data)), data.label)
    assert loss(*after) < loss(*before)
    assert report["theta_loss"] > 0


def test_the_loop_runs_its_rounds_and_reports_each(tmp_path):
    data = rows()
    held_out = first_group_per_user(rows(seed=4))
    base = cloud("sasrec")
    cloud_data = CloudData(data, held_out, NUM_ITEMS, "sasrec", PARAMETERS["model"], PARAMETERS["backbones"],
                           training_config(max_epochs=2, progress=False, batch_size=8))
    chosen = options(rounds=2, meta_dim=3, distill_max_epochs=2)
    trained = get_method("metapatch").train(cloud_data, chosen, base)
    bundle = trained.bundle
    assert [r["cloud"]["round"] for r in bundle["rounds"]] == [0, 1, 2]
    assert trained.history["round"].tolist() == sorted(trained.history["round"].tolist())
    assert set(trained.history["round"]) == {1, 2}
    assert 1 <= trained.best_epoch <= len(trained.history)
    devices = Devices(candidates=held_out)
    for method, key in (("metapatch", "devices"), ("momodistill", "cloud")):
        result = get_method(method).personalize(bundle, devices, chosen)
        final = dccl.round_scores(bundle["rounds"][-1]["cloud"], bundle["rounds"][-1]["devices"], held_out)[key]
        assert np.array_equal(result.scores, final)
        assert {f"round{r}_auc" for r in range(3)} <= set(result.report)
        assert result.report["payload_bytes"] == 0
    assert result.report["device_extra_bytes"] == 0  # momodistill: the cloud model alone


def test_one_training_serves_both_variants():
    assert get_method("metapatch").model_name == get_method("momodistill").model_name == "dccl"
    assert get_method("metapatch").on_device == "trains" and get_method("momodistill").on_device == "nothing"


def test_parameters_are_checked_on_entry():
    with pytest.raises(ParameterError, match=r"personalization\.dccl\.patch_positions"):
        options(patch_positions=["head"])
    with pytest.raises(ParameterError, match=r"personalization\.dccl\.patch_positions"):
        options(patch_positions=["user", "user"])
    with pytest.raises(ParameterError, match=r"personalization\.dccl\.device\.learning_rate"):
        options(device={"learning_rate": 0})
