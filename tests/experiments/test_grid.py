"""The grid's plan, configuration hashes, overrides and summaries (no training here)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from duet_pipeline.experiments.grid import apply_overrides, code_version, config_hash, plan_units
from duet_pipeline.experiments.results import losing_cells, mean_std, per_seed_table, quality_table, recorded_runs
from duet_pipeline.methods import get_method, method_names
from duet_pipeline.parameters import ParameterError

from conftest import PARAMETERS

METHODS = method_names()
SHARED = [m for m in METHODS if get_method(m).spec.cloud_model == "base"]
OWN = [m for m in METHODS if m not in SHARED]


def plan(params=PARAMETERS, methods=METHODS, seeds=(0, 1), version="v1", code="c1"):
    return plan_units(params, "ml-100k", ["din", "sasrec"], list(methods), list(seeds), version, code)


def test_methods_sharing_the_base_model_share_one_training_and_the_others_have_their_own() -> None:
    assert SHARED == ["base", "finetune"] and "duet+swa" in OWN
    units = plan()
    base_units = [u for u in units if u.model == "base"]
    assert len(base_units) == 2 * 2 and all([c.method for c in u.cells] == SHARED for u in base_units)
    own_units = [u for u in units if u.model != "base"]
    # One unit per cloud model: DCCL's two variants read one loop, every other method its own.
    assert len(own_units) == len({get_method(m).model_name for m in OWN}) * 2 * 2
    assert all(len(u.cells) == 1 for u in own_units if u.model != "dccl")
    assert [[c.method for c in u.cells] for u in own_units if u.model == "dccl"] == [["metapatch", "momodistill"]] * 4
    assert units[: len(base_units)] == base_units  # base units first
    cells = [(c.backbone, c.method, c.seed) for u in units for c in u.cells]
    assert len(cells) == len(set(cells)) == len(METHODS) * 2 * 2


def test_units_carry_their_seed_backbone_and_methods_and_leave_the_input_alone() -> None:
    for unit in plan():
        assert unit.params["training"]["seed"] == unit.seed
        assert unit.params["backbone"] == unit.backbone
        assert unit.params["methods"] == [c.method for c in unit.cells]
        assert unit.params["training"]["progress"] is False
    assert PARAMETERS["training"]["seed"] == 0 and PARAMETERS["training"]["progress"] is True


def test_seed_major_order_of_own_units() -> None:
    seeds = [u.seed for u in plan() if u.model != "base"]
    assert seeds == sorted(seeds)


def hashes(units, with_code=True):
    return {(c.backbone, c.method, c.seed): u.cell_hash(c, with_code) for u in units for c in u.cells}


def test_cell_hash_follows_the_parameters_the_cell_depends_on() -> None:
    before = hashes(plan())
    assert before == hashes(plan())  # stable
    assert len(set(before.values())) == len(before)  # distinct per cell
    duet_block = {k for k in before if get_method(k[1]).spec.block == "duet"}
    temperature = hashes(plan(apply_overrides(PARAMETERS, ["personalization.duet.temperature=2.0"])))
    assert {key for key in before if before[key] != temperature[key]} == duet_block
    finetune = hashes(plan(apply_overrides(PARAMETERS, ["personalization.finetune.epochs=2"])))
    assert {key for key in before if before[key] != finetune[key]} == {key for key in before if key[1] == "finetune"}
    epochs = hashes(plan(apply_overrides(PARAMETERS, ["training.max_epochs=3"])))
    assert epochs.keys() == before.keys() and all(before[k] != v for k, v in epochs.items())
    sasrec = hashes(plan(apply_overrides(PARAMETERS, ["backbones.sasrec.num_blocks=3"])))
    assert {key for key in before if before[key] != sasrec[key]} == {key for key in before if key[0] == "sasrec"}
    assert all(before[k] != v for k, v in hashes(plan(version="v2")).items())  # data version


def test_cell_hash_includes_the_code_version_unless_reusing_stale_cells() -> None:
    assert all(hashes(plan(code="c1"))[k] != v for k, v in hashes(plan(code="c2")).items())
    assert hashes(plan(code="c1"), with_code=False) == hashes(plan(code="c2"), with_code=False)
    version = code_version()
    assert version.startswith("0.") and version == code_version()


def test_display_settings_do_not_change_the_hash() -> None:
    quiet = apply_overrides(PARAMETERS, ["training.progress=false", "personalization.finetune.progress=false"])
    assert hashes(plan(quiet)) == hashes(plan())
    assert config_hash({"a": 1, "progress": True}) == config_hash({"a": 1, "progress": False})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_overrides_parse_values_and_reject_unknown_keys() -> None:
    changed = apply_overrides(PARAMETERS, ["training.max_epochs=5", "personalization.duet.temperature=2",
                                           "training.progress=false"])
    assert changed["training"]["max_epochs"] == 5 and changed["personalization"]["duet"]["temperature"] == 2
    assert changed["training"]["progress"] is False
    with pytest.raises(ValueError, match="no parameter 'training.epochs'"):
        apply_overrides(PARAMETERS, ["training.epochs=5"])
    with pytest.raises(ValueError, match="key.path=value"):
        apply_overrides(PARAMETERS, ["training.max_epochs"])


def test_unknown_backbone_method_or_bad_value_fails_before_planning() -> None:
    with pytest.raises(ParameterError, match="backbone = 'bert4rec': must be one of.*gru4rec"):
        plan_units(PARAMETERS, "ml-100k", ["bert4rec"], ["base"], [0], "v")
    with pytest.raises(ParameterError, match="unknown method 'duet-pa-cosine'.*duet-pa-gaussian"):
        plan_units(PARAMETERS, "ml-100k", ["din"], ["duet-pa-cosine"], [0], "v")
    with pytest.raises(ParameterError, match="training.patience = 0"):
        plan_units(apply_overrides(PARAMETERS, ["training.patience=0"]), "ml-100k", ["din"], ["base"], [0], "v")


def runs_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(3):
        for method, offset in (("base", 0.0), ("duet", 0.01), ("duet+swa", -0.002)):
            rows.append({"backbone": "din", "method": method, "seed": seed,
                         "test.auc": 0.88 + offset + rng.normal(0, 0.001), "test.uauc": 0.85,
                         "test.ndcg_at_10": 0.3, "test.hr_at_10": 0.6, "test.logloss": 0.2})
    return pd.DataFrame(rows)


def test_quality_table_mean_std_paired_gain_and_references() -> None:
    runs = runs_frame()
    table = quality_table(runs, "ml-100k").set_index("method")
    duet = runs[runs["method"] == "duet"]["test.auc"]
    assert table.loc["duet", "auc"] == f"{duet.mean():.4f} ± {duet.std(ddof=1):.4f}"
    gain = duet.to_numpy() - runs[runs["method"] == "base"]["test.auc"].to_numpy()
    assert table.loc["duet", "AUC - base (paired)"] == f"{gain.mean():+.4f}"
    assert table.loc["base", "reproduction AUC"] == "0.8845" and table.loc["duet+swa", "paper AUC"] == "0.8581"
    assert table.loc["duet", "seeds"] == 3
    assert mean_std(pd.Series([0.5])) == "0.5000"


def test_losing_cells_are_the_duet_variants_below_base() -> None:
    assert losing_cells(runs_frame()) == [("din", "duet+swa")]


def test_user_groups_count_train_positives_and_test_window_length() -> None:
    import torch

    from duet_pipeline.experiments.results import user_groups
    from duet_pipeline.experiments.runner import GridData
    from duet_pipeline.training.tensors import SampleTensors

    # Users 1..4 with 1, 2, 3, 8 train positives (each positive followed by a negative).
    positives = {1: 1, 2: 2, 3: 3, 4: 8}
    users = torch.tensor([u for u, n in positives.items() for _ in range(2 * n)])
    labels = torch.tensor([1.0, 0.0] * sum(positives.values()))
    train = SampleTensors(users, torch.ones(len(users), 4, dtype=torch.long), torch.ones(len(users), dtype=torch.long), labels)
    # Test windows: user u's history has u real items (left-padded with 0).
    history = torch.tensor([[0] * (4 - u) + [5] * u for u in (1, 2, 3, 4) for _ in range(3)])
    test_users = torch.tensor([u for u in (1, 2, 3, 4) for _ in range(3)])
    test = SampleTensors(test_users, history, torch.ones(12, dtype=torch.long), torch.tensor([1.0, 0.0, 0.0] * 4))
    groups = user_groups(GridData(train, train, test, 10), bins=2).set_index("user_id")
    assert groups["train_positives"].to_dict() == positives
    assert groups["history_length"].to_dict() == {1: 1, 2: 2, 3: 3, 4: 4}
    assert groups.loc[1, "activity"] == groups.loc[2, "activity"] != groups.loc[4, "activity"]


def test_paired_user_differences_match_a_direct_computation() -> None:
    from sklearn.metrics import roc_auc_score

    from duet_pipeline.experiments.results import paired_user_differences

    rng = np.random.default_rng(1)
    users = np.repeat(np.arange(50), 10)
    labels = np.tile([1] + [0] * 9, 50)
    base_scores = rng.normal(size=500) + labels
    duet_scores = base_scores + rng.normal(scale=0.5, size=500)
    frames = {name: pd.DataFrame({"user_id": users, "label": labels, "score": s})
              for name, s in (("b", base_scores), ("d", duet_scores))}

    class FakeTracker:
        def predictions(self, run_id: str) -> pd.DataFrame:
            return frames[run_id]

    runs = pd.DataFrame({"backbone": ["din", "din"], "method": ["base", "duet"], "seed": [0, 0], "run_id": ["b", "d"]})
    row = paired_user_differences(FakeTracker(), runs, [("din", "duet")]).iloc[0]
    per_user = np.array([roc_auc_score(labels[users == u], duet_scores[users == u])
                         - roc_auc_score(labels[users == u], base_scores[users == u]) for u in range(50)])
    assert row["UAUC - base"] == f"{per_user.mean():+.4f}"
    half = 1.96 * per_user.std(ddof=1) / np.sqrt(50)
    assert row["95% interval"] == f"[{per_user.mean() - half:+.4f}, {per_user.mean() + half:+.4f}]"
    assert row["users helped / hurt"] == f"{(per_user > 0).mean():.0%} / {(per_user < 0).mean():.0%}"


def test_group_differences_are_paired_by_seed() -> None:
    from duet_pipeline.experiments.results import relative_to_base

    # base has seeds 0-2, duet only seed 0: the difference must use base's seed 0 alone.
    table = pd.DataFrame([
        {"activity": "Q1", "method": "base", "seed": 0, "users": 5, "auc": 0.80},
        {"activity": "Q1", "method": "base", "seed": 1, "users": 5, "auc": 0.90},
        {"activity": "Q1", "method": "base", "seed": 2, "users": 5, "auc": 0.94},
        {"activity": "Q1", "method": "duet", "seed": 0, "users": 5, "auc": 0.81},
    ])
    row = relative_to_base(table, "activity", "auc").iloc[0]
    assert row["duet - base"] == "+0.0100"
    assert row["base auc"] == "0.8800" and row["users"] == 5


def test_the_per_seed_record_keeps_the_cells_a_run_did_not_redo(tmp_path):
    """A fresh machine has no MLflow store: a grid over some cells must keep the record's others."""
    def cell(method, seed, auc):
        return {"backbone": "din", "method": method, "seed": seed, "test.auc": auc, "config_hash": f"{method}{seed}",
                "run_id": f"r-{method}{seed}"}
    record = pd.DataFrame([cell("base", 0, 0.80), cell("duet", 0, 0.81), cell("duet", 1, 0.82),
                           cell("no-longer-registered", 0, 0.5)])
    path = tmp_path / "ml-100k.csv"
    per_seed_table(record).to_csv(path, index=False)
    tracked = pd.DataFrame([cell("base", 0, 0.79)])
    kept = recorded_runs(path, tracked)
    assert kept[["method", "seed"]].values.tolist() == [["duet", 0], ["duet", 1]]
    assert kept["test.auc"].tolist() == [0.81, 0.82] and kept["recorded"].all()
    assert recorded_runs(tmp_path / "absent.csv", tracked).empty
    assert len(recorded_runs(path, pd.DataFrame())) == 3
