"""In-process A/B of Adam's step: per-tensor loop, foreach, fused (issue 10).

    python docs/diagnostics/ab_adam.py

The DUET+SWA model's parameters (SASRec and DIN) with fixed random gradients; 60 steps of
each optimizer, interleaved; median step time and whether the parameters stay
bit-identical to the loop's. Then whole training steps (base DIN and SASRec on the ml-100k
train rows, batch 1024) with the loop and with foreach, interleaved, 110 timed steps each.
"""
import copy
import statistics
import time

from pathlib import Path

import torch
from torch import nn

from duet_pipeline.project import load_parameters
from duet_pipeline.methods import get_method
from duet_pipeline.methods.duet import DuetOptions, duet_config
from duet_pipeline.models.recommender import Recommender, base_model_config
p = load_parameters()
torch.manual_seed(0)
for backbone in ["sasrec", "din"]:
    shape = base_model_config(1682, 10, backbone, p["model"], p["backbones"])
    base = Recommender(duet_config(shape, DuetOptions(**p["personalization"]["duet"]), get_method("duet+swa").variant))
    grads = [torch.randn_like(q) * 1e-2 for q in base.parameters()]
    models = {k: copy.deepcopy(base) for k in ("loop", "foreach", "fused")}
    opts = {"loop": torch.optim.Adam(models["loop"].parameters(), lr=1e-3, foreach=False),
            "foreach": torch.optim.Adam(models["foreach"].parameters(), lr=1e-3, foreach=True),
            "fused": torch.optim.Adam(models["fused"].parameters(), lr=1e-3, fused=True)}
    times = {k: [] for k in opts}
    for rep in range(60):
        for k, o in opts.items():
            for q, g in zip(models[k].parameters(), grads): q.grad = g.clone()
            s = time.perf_counter(); o.step(); times[k].append((time.perf_counter() - s) * 1000)
    same = {k: all(torch.equal(a, b) for a, b in zip(models["loop"].parameters(), models[k].parameters())) for k in opts}
    print(backbone, {k: f"{statistics.median(v):.2f} ms" for k, v in times.items()}, "bit-identical to loop:", same,
          "tensors", len(grads))

from duet_pipeline.data.events import read_interactions
from duet_pipeline.features.samples import build_item_index  # noqa: E402
from duet_pipeline.features.samples import FeatureParams, make_samples  # noqa: E402
from duet_pipeline.training.loop import history_groups, shuffled_order  # noqa: E402
from duet_pipeline.training.tensors import to_tensors  # noqa: E402

ratings = read_interactions(Path(__file__).resolve().parents[3] / "shared" / "data" / "ml-100k" / "u.data", "ml-100k", load_parameters()["datasets"])
index = build_item_index(ratings)
train = to_tensors(make_samples(ratings, index, **FeatureParams.from_params(p["features"]).sample_options())["train"])
order = shuffled_order(history_groups(train), torch.Generator().manual_seed(0))
for backbone in ["din", "sasrec"]:
    torch.manual_seed(0)
    base = Recommender(base_model_config(int(index["item_index"].max()), 10, backbone, p["model"], p["backbones"])).train()
    runs = {}
    for name, foreach in (("loop", False), ("foreach", True)):
        model = copy.deepcopy(base)
        runs[name] = (model, torch.optim.Adam(model.parameters(), lr=1e-3, foreach=foreach))
    loss_fn = nn.BCEWithLogitsLoss()
    times = {name: [] for name in runs}
    for step in range(120):
        for name, (model, optimizer) in runs.items():
            batch = train.rows(order[(step % 470) * 1024:][:1024])
            started = time.perf_counter()
            loss = loss_fn(model(batch.history, batch.target), batch.label)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            times[name].append(time.perf_counter() - started)
    print(backbone, "whole step:", {k: f"{1024 / statistics.median(v[10:]):,.0f} rows/s" for k, v in times.items()})
