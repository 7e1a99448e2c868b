"""The grid's plan, configuration hashes, overrides and summaries (no training here)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from duet_pipeline.experiments.grid import apply_overrides, code_version, config_hash, plan_units
from duet_pipeline.evaluation.statistics import holm
from duet_pipeline.experiments.tables import activity_table, comparisons, leader, losing_cells, mean_std, quality_table
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


def test_where_a_training_runs_does_not_change_the_hash_and_the_grid_stays_on_one_machine() -> None:
    """The record was hashed when training.distributed held only `processes`: the keys that
    place a training on machines came later and change no number, so they stay out."""
    timeout = apply_overrides(PARAMETERS, ["training.distributed.timeout_s=60",
                                           "training.distributed.rendezvous=10.0.0.1:29400"])
    assert hashes(plan(timeout)) == hashes(plan())
    processes = apply_overrides(PARAMETERS, ["training.distributed.processes=2"])
    assert all(hashes(plan())[k] != v for k, v in hashes(plan(processes)).items())  # as recorded
    two_nodes = apply_overrides(PARAMETERS, ["training.distributed.nodes=2",
                                             "training.distributed.rendezvous=10.0.0.1:29400"])
    with pytest.raises(ValueError, match=r"training\.distributed\.nodes = 2: the grid trains every unit on this machine"):
        plan(two_nodes)


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


def cells_frame() -> pd.DataFrame:
    """Record rows of one backbone: base, duet (+0.01) and duet+swa (-0.002), 3 seeds."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(3):
        for method, offset in (("base", 0.0), ("duet", 0.01), ("duet+swa", -0.002)):
            rows.append({"backbone": "din", "method": method, "seed": seed,
                         "auc": 0.88 + offset + rng.normal(0, 0.001), "uauc": 0.85,
                         "ndcg@10": 0.3, "hr@10": 0.6, "logloss": 0.2})
    return pd.DataFrame(rows)


def test_quality_table_mean_std_paired_interval_verdict_and_references() -> None:
    cells = cells_frame()
    table = quality_table(cells, "ml-100k").set_index("method")
    duet = cells[cells["method"] == "duet"]["auc"]
    assert table.loc["duet", "auc"] == f"{duet.mean():.4f} ± {duet.std(ddof=1):.4f}"
    gain = duet.to_numpy() - cells[cells["method"] == "base"]["auc"].to_numpy()
    assert table.loc["duet", "AUC − base [95% CI]"].startswith(f"{gain.mean():+.4f} [")
    assert table.loc["duet", "vs base"] == "better"  # +0.01 against a 0.001 spread
    assert table.loc["base", "AUC − base [95% CI]"] == "" and table.loc["base", "vs duet+swa"] == "not separable at n=3"
    assert table.loc["base", "reproduction AUC"] == "0.8845" and table.loc["duet+swa", "paper AUC"] == "0.8581"
    assert table.loc["duet", "seeds"] == 3
    assert mean_std(pd.Series([0.5])) == "0.5000"


def test_comparisons_pair_by_seed_and_correct_over_a_backbones_methods() -> None:
    cells = cells_frame()
    cells = cells[~((cells["method"] == "duet") & (cells["seed"] == 2))]  # duet lacks seed 2
    table = comparisons(cells, "base").set_index("method")
    assert table.loc["duet", "difference"].seeds == 2
    raw = [table.loc[m, "difference"].p_value for m in table.index]
    assert table["adjusted_p"].tolist() == holm(raw)


def test_losing_cells_are_the_duet_variants_below_base() -> None:
    assert losing_cells(cells_frame()) == [("din", "duet+swa")]


def test_activity_table_pairs_each_quartile_by_seed() -> None:
    # base has seeds 0-2, duet only seed 0: the difference must use base's seed 0 alone.
    rows = [{"backbone": "din", "method": "base", "seed": s, "activity_q1_auc": a, "activity_q1_users": 5.0,
             "activity_q1_positives": "3-17"} for s, a in ((0, 0.80), (1, 0.90), (2, 0.94))]
    rows.append({"backbone": "din", "method": "duet", "seed": 0, "activity_q1_auc": 0.81, "activity_q1_users": 5.0,
                 "activity_q1_positives": "3-17"})
    row = activity_table(pd.DataFrame(rows), "din").iloc[0]
    assert row["duet − base"] == "+0.0100"
    assert row["base auc"] == "0.8800" and row["users (train positives)"] == "Q1: 5 (3-17)"


def test_the_leader_is_chosen_among_the_methods_with_the_most_seeds() -> None:
    """A method with one lucky seed does not lead methods measured over three."""
    rows = [("din", "base", seed, 0.80) for seed in range(3)] + [("din", "ppnet", seed, 0.81) for seed in range(3)]
    rows += [("din", "poso", 0, 0.95)]
    cells = pd.DataFrame(rows, columns=["backbone", "method", "seed", "auc"])
    assert leader(cells, "din") == ("ppnet", pytest.approx(0.81), 3)
    assert leader(cells[cells["method"] != "ppnet"], "din") == ("base", pytest.approx(0.80), 3)
