"""Two epochs of base and DUET+SWA on ml-100k (seed 0) with the library under SRC, as JSON.

The registry change (issue 9) checked that it moves no number: run with the src/ of the
commit before it (bddb0a9, in a `git worktree`) and of the commit after, then compare:

    git worktree add /tmp/oldtree bddb0a9
    OMP_NUM_THREADS=1 python docs/diagnostics/compare_training.py /tmp/oldtree/src sasrec > old.json
    OMP_NUM_THREADS=1 python docs/diagnostics/compare_training.py src sasrec > new.json
    cmp old.json new.json

It speaks both APIs (before and after the registry), so it is a record, not a tool to extend.
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, sys.argv[1])  # before the installed package: the tree under test
from duet_pipeline.data.events import read_interactions
from duet_pipeline.features.samples import build_item_index, make_samples
from duet_pipeline.project import load_parameters
from duet_pipeline.training.tensors import to_tensors
inter = read_interactions(Path(__file__).resolve().parents[3] / "shared" / "data" / "ml-100k" / "u.data", "ml-100k", load_parameters()["datasets"])
index = build_item_index(inter)
s = make_samples(inter, index, max_seq_len=10, min_user_interactions=3,
                 negatives={"train": 4, "validation": 99, "test": 99}, seed=61)
t = {k: to_tensors(v) for k, v in s.items()}
n = int(index["item_index"].max())
out = {}
backbone = sys.argv[2]
opts = {"din": {"attention_units": [32, 16]}, "gru4rec": {"num_layers": 2, "dropout": 0.0},
        "sasrec": {"num_blocks": 2, "num_heads": 1, "dropout": 0.2}}[backbone]
try:  # the registry's API (after issue 9) or the one before it
    from duet_pipeline.project import load_parameters
except ImportError:
    load_parameters = None
if load_parameters is None:
    from duet_pipeline.training.loop import TrainingConfig, evaluate
    from duet_pipeline.training.models import train_base, train_duet
    from duet_pipeline.models.recommender import model_bundle
    cfg = TrainingConfig(max_epochs=2, progress=False)
    m, r = train_base(t["train"], t["validation"], n, backbone, {"dim": 32, "backbone_options": {backbone: opts}}, cfg)
    out["base"] = r.history.drop(columns=["train_seconds", "train_rows_per_second"]).to_dict("list")
    out["base_test"] = evaluate(m, t["test"])
    ppg = {"generator_hidden": 64, "num_generators": 4, "temperature": 1.0, "deviation_init_scale": 0.1,
           "position_weights": "none", "position_weights_on_backbone": False, "warm_start": False}
    d, r = train_duet(t["train"], t["validation"], model_bundle(m, "base"), ppg, cfg)
    out["duet"] = r.history.drop(columns=["train_seconds", "train_rows_per_second"]).to_dict("list")
    out["duet_test"] = evaluate(d, t["test"])
else:
    from duet_pipeline.training.loop import TrainingConfig, evaluate
    from duet_pipeline.training.models import CloudData, train_base
    from duet_pipeline.methods import get_method
    from duet_pipeline.models.recommender import load_model
    p = load_parameters(Path(__file__).resolve().parents[2])
    cfg = TrainingConfig.from_params({**p["training"], "max_epochs": 2, "progress": False})
    data = CloudData(t["train"], t["validation"], n, backbone, p["model"], p["backbones"], cfg)
    r = train_base(data)
    out["base"] = r.history.drop(columns=["train_seconds", "train_rows_per_second"]).to_dict("list")
    out["base_test"] = evaluate(load_model(r.bundle), t["test"])
    m = get_method("duet+swa")
    r = m.train(data, m.parse_options(p["personalization"]["duet"]))
    out["duet"] = r.history.drop(columns=["train_seconds", "train_rows_per_second"]).to_dict("list")
    out["duet_test"] = evaluate(load_model(r.bundle), t["test"])
print(json.dumps(out, sort_keys=True))
