"""The grid's plan, configuration hashes, overrides and summaries (no training here)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from duet_pipeline.experiments.grid import (
    BASE_METHODS, DUET_VARIANTS, METHODS, apply_overrides, config_hash, plan_units,
)
from duet_pipeline.experiments.results import losing_cells, mean_std, quality_table
from duet_pipeline.models.variants import duet_variant_name

PARAMS = {
    "features": {"max_seq_len": 10, "seed": 61},
    "model": {"dim": 32, "backbone_options": {"din": {"attention_units": [32, 16]}}},
    "training": {"seed": 0, "max_epochs": 20, "progress": True},
    "backbone": "din",
    "ppg": {"num_generators": 4, "position_weights": "none", "temperature": 1.0, "warm_start": False},
    "personalization": {"finetune": {"epochs": 1, "progress": True}, "duet": {"batch_devices": 256}},
}


def plan(params=PARAMS, methods=METHODS, seeds=(0, 1), version="v1"):
    return plan_units(params, "ml-100k", ["din", "sasrec"], list(methods), list(seeds), version)


def test_base_and_finetune_share_one_training_and_every_duet_variant_has_its_own() -> None:
    units = plan()
    base_units = [u for u in units if u.model == "base"]
    assert len(base_units) == 2 * 2 and all([c.method for c in u.cells] == list(BASE_METHODS) for u in base_units)
    duet_units = [u for u in units if u.model != "base"]
    assert len(duet_units) == len(DUET_VARIANTS) * 2 * 2
    assert units[: len(base_units)] == base_units  # base units first
    cells = [(c.backbone, c.method, c.seed) for u in units for c in u.cells]
    assert len(cells) == len(set(cells)) == len(METHODS) * 2 * 2


def test_duet_units_are_built_with_the_parameters_their_label_names() -> None:
    for unit in plan():
        if unit.model != "base":
            assert duet_variant_name(unit.params["ppg"]) == unit.model
            assert unit.params["training"]["seed"] == unit.seed
            assert unit.params["backbone"] == unit.backbone
    assert PARAMS["training"]["seed"] == 0 and PARAMS["ppg"]["num_generators"] == 4  # input untouched


def test_seed_major_order_of_duet_units() -> None:
    seeds = [u.seed for u in plan() if u.model != "base"]
    assert seeds == sorted(seeds)


def hashes(units):
    return {(c.backbone, c.method, c.seed): u.cell_hash(c) for u in units for c in u.cells}


def test_cell_hash_follows_the_parameters_the_cell_depends_on() -> None:
    before = hashes(plan())
    assert before == hashes(plan())  # stable
    assert len(set(before.values())) == len(before)  # distinct per cell
    temperature = hashes(plan(apply_overrides(PARAMS, ["ppg.temperature=2.0"])))
    changed = {key for key in before if before[key] != temperature[key]}
    assert changed == {key for key in before if key[1] in DUET_VARIANTS}
    finetune = hashes(plan(apply_overrides(PARAMS, ["personalization.finetune.epochs=2"])))
    assert {key for key in before if before[key] != finetune[key]} == {key for key in before if key[1] == "finetune"}
    assert hashes(plan(apply_overrides(PARAMS, ["training.max_epochs=3"]))).keys() == before.keys()
    assert all(before[k] != v for k, v in hashes(plan(apply_overrides(PARAMS, ["training.max_epochs=3"]))).items())
    assert all(before[k] != v for k, v in hashes(plan(version="v2")).items())  # data version


def test_display_settings_do_not_change_the_hash() -> None:
    quiet = apply_overrides(PARAMS, ["training.progress=false", "personalization.finetune.progress=false"])
    assert hashes(plan(quiet)) == hashes(plan())
    assert config_hash({"a": 1, "progress": True}) == config_hash({"a": 1, "progress": False})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_overrides_parse_values_and_reject_unknown_keys() -> None:
    changed = apply_overrides(PARAMS, ["training.max_epochs=5", "ppg.position_weights=exp", "training.progress=false"])
    assert changed["training"]["max_epochs"] == 5 and changed["ppg"]["position_weights"] == "exp"
    assert changed["training"]["progress"] is False
    with pytest.raises(ValueError, match="no parameter 'training.epochs'"):
        apply_overrides(PARAMS, ["training.epochs=5"])
    with pytest.raises(ValueError, match="key.path=value"):
        apply_overrides(PARAMS, ["training.max_epochs"])


def test_unknown_backbone_or_method_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown backbone.*valid choices.*gru4rec"):
        plan_units(PARAMS, "ml-100k", ["bert4rec"], ["base"], [0], "v")
    with pytest.raises(ValueError, match="unknown method.*duet-pa-gaussian"):
        plan_units(PARAMS, "ml-100k", ["din"], ["duet-pa-cosine"], [0], "v")


def runs_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(3):
        for method, offset in (("base", 0.0), ("duet", 0.01), ("duet+swa", -0.002)):
            rows.append({"backbone": "din", "method": method, "seed": seed,
                         "test.auc": 0.88 + offset + rng.normal(0, 0.001), "test.uauc": 0.85,
                         "test.ndcg_at_10": 0.3, "test.hr_at_10": 0.6})
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
    groups = user_groups(GridData(train, train, test, None, 10), bins=2).set_index("user_id")
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
