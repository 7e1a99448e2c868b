"""Every head is a deployable unit: its device half, fed the message its cloud half sent (as
a device receives it: one request's tensors, encoded and decoded), scores as the model does
in process; and its device half exported to ONNX scores as PyTorch."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import PARAMETERS, backbone_options
from serving.test_serving import candidates_table

from duet_pipeline.methods import get_method
from duet_pipeline.models.backbones import BACKBONES
from duet_pipeline.models.metapatch import patched_logits
from duet_pipeline.models.recommender import ModelConfig, Recommender, consecutive_runs, load_model, model_bundle
from duet_pipeline.serving.device import OnnxDevice, export_device_model
from duet_pipeline.serving.encodings import decode_message, encode_message

DIM, SEQ_LEN, NUM_ITEMS = 8, 5, 30  # as test_serving's, whose candidates these tests use
GENERATOR = {"generator_hidden": 16, "num_generators": 2, "temperature": 1.0, "deviation_init_scale": 0.5}
FAMILY = ["lhuc", "ppnet", "poso", "pepnet", "m2m", "can", "apg"]
HEADS = ["base", "duet+swa", "duet-pa-gaussian", *FAMILY]

pytestmark = pytest.mark.usefixtures("light_torch")


def model_with(head: str, backbone: str) -> Recommender:
    """An untrained model with ``head``, every parameter moved off its (neutral) start."""
    options = backbone_options(backbone, **({"num_heads": 2} if backbone == "sasrec" else {}))
    config = ModelConfig(NUM_ITEMS, SEQ_LEN, backbone, dim=DIM, backbone_options=options)
    if head.startswith("duet"):
        config.generator = GENERATOR
        config.position_weights = get_method(head).variant.get("position_weights", "none")
    elif head != "base":
        block = {k: v for k, v in PARAMETERS["personalization"][head].items() if k != "serving"}
        config.personal_head = {"name": get_method(head).variant["head"], **block}
    torch.manual_seed(3)
    model = Recommender(config)
    if head in FAMILY:
        model.head.prepare(candidates_table(users=8, seed=5))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.3)
    return model.eval()


def received(sent: dict[str, torch.Tensor], encoding: str = "float32") -> dict[str, torch.Tensor]:
    """What the devices hold: each device's own message, sent and decoded one request at a time."""
    per_device = [decode_message(encode_message({k: v[i].numpy() for k, v in sent.items()}, encoding), encoding)
                  for i in range(len(next(iter(sent.values()))))] if sent else []
    return {k: torch.from_numpy(np.stack([m[k] for m in per_device])) for k in sent}


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
@pytest.mark.parametrize("head", HEADS)
def test_the_device_half_fed_the_cloud_half_s_message_scores_as_the_model(head: str, backbone: str) -> None:
    model, data = model_with(head, backbone), candidates_table(users=5)
    distinct, row_of = consecutive_runs(data.history)
    with torch.no_grad():
        in_process = model(data.history, data.target)
        sent = model.message(distinct)
        on_device = model.score(distinct, data.target, row_of, received(sent))
        # Positive control: every device scoring with the next device's message.
        shifted = {k: v.roll(1, dims=0) for k, v in received(sent).items()}
        wrong = model.score(distinct, data.target, row_of, shifted)
    torch.testing.assert_close(on_device, in_process, rtol=1e-6, atol=1e-6)
    if sent and head != "can":
        assert (wrong - in_process).abs().max() > 1e-3, f"{head}: the message does not enter the score"
    assert (head in ("base", "can")) == (sent == {})


@pytest.mark.parametrize("head", HEADS)
def test_the_exported_device_half_scores_as_pytorch(head: str, tmp_path) -> None:
    model, data = model_with(head, "gru4rec"), candidates_table(users=5)
    path = tmp_path / "device.onnx"
    export_device_model(model_bundle(model, head), path)
    device = OnnxDevice(path)
    distinct, row_of = consecutive_runs(data.history)
    with torch.no_grad():
        expected = model(data.history, data.target).numpy()
        sent = received(model.message(distinct))
    assert device.names == list(sent)
    for k in range(len(distinct)):
        rows = (row_of == k).numpy()
        scores = device.score(distinct[k].numpy(), data.target[rows].numpy(), {n: v[k].numpy() for n, v in sent.items()})
        np.testing.assert_allclose(scores, expected[rows], rtol=0, atol=1e-5)


def metapatched(backbone: str) -> tuple[Recommender, torch.Tensor]:
    """MetaPatch's device model (a DCCL cloud model with ``Theta``) and meta-patches for 5 devices."""
    model = model_with("base", backbone)
    config = {**model.config.to_dict(), "personal_head": {"name": "metapatch", "positions": ["user", "hidden"],
                                                          "meta_dim": 4}}
    torch.manual_seed(4)
    theta = torch.randn(2 * (DIM * DIM + DIM), 4) * 0.1
    bundle = {"method": "metapatch", "config": config, "state_dict": {**model.state_dict(), "head.patch.theta": theta}}
    return load_model(bundle), torch.randn(5, 4)


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_metapatch_s_device_model_scores_as_dccl_s_patched_model(backbone: str) -> None:
    """The head fed a device's meta-patch equals DCCL's in-process device scoring (the cloud
    model's head inputs, patched by Theta phi); exported, it takes the meta-patch as an input."""
    model, phi = metapatched(backbone)
    data = candidates_table(users=5)
    distinct, row_of = consecutive_runs(data.history)
    with torch.no_grad():
        on_device = model.score(distinct, data.target, row_of, {"metapatch": phi})
        user, target_vector = model.head_inputs(data.history, data.target)
        expected = patched_logits(model.head, user, target_vector, model.head.patch.patches(phi), row_of)
        unpatched = model.score(distinct, data.target, row_of, {"metapatch": torch.zeros_like(phi)})
    torch.testing.assert_close(on_device, expected, rtol=1e-6, atol=1e-6)
    assert (on_device - unpatched).abs().max() > 1e-3


def test_metapatch_s_exported_device_model_takes_the_meta_patch(tmp_path) -> None:
    model, phi = metapatched("gru4rec")
    path = tmp_path / "device.onnx"
    export_device_model({"method": "metapatch", "config": model.config.to_dict(),
                         "state_dict": model.state_dict()}, path)
    device, data = OnnxDevice(path), candidates_table(users=5)
    distinct, row_of = consecutive_runs(data.history)
    with torch.no_grad():
        expected = model.score(distinct, data.target, row_of, {"metapatch": phi}).numpy()
    assert device.names == ["metapatch"]
    for k in range(len(distinct)):
        rows = (row_of == k).numpy()
        scores = device.score(distinct[k].numpy(), data.target[rows].numpy(), {"metapatch": phi[k].numpy()})
        np.testing.assert_allclose(scores, expected[rows], rtol=0, atol=1e-5)
