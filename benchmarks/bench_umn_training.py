"""Base-model (UMN) quality and training speed per backbone on ml-100k.

Trains each registered backbone exactly as the `umn_training` node does, with the
parameters of conf/base (PROTOCOL section 4) and reports test metrics at the kept epoch
plus seconds per epoch and training rows per second.

    python benchmarks/bench_umn_training.py [--backbones din gru4rec sasrec] [--seed 0]
    python benchmarks/bench_umn_training.py --speed-only     # 3 epochs each, speed table only
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from common import data_dir, machine, today, write_section

from duet_pipeline.data.events import read_interactions
from duet_pipeline.features.samples import build_item_index
from duet_pipeline.evaluation.metrics import headline_metrics
from duet_pipeline.features.samples import FeatureParams, make_samples
from duet_pipeline.methods import baseline
from duet_pipeline.models.backbones import BACKBONES
from duet_pipeline.models.recommender import load_model
from duet_pipeline.project import load_parameters
from duet_pipeline.training.loop import TrainingConfig, evaluate
from duet_pipeline.training.models import CloudData, train_base
from duet_pipeline.training.tensors import to_tensors


def load_ml100k(params: dict):
    interactions = read_interactions(data_dir() / "ml-100k" / "u.data", "ml-100k", load_parameters()["datasets"])
    item_index = build_item_index(interactions)
    samples = make_samples(interactions, item_index, **FeatureParams.from_params(params["features"]).sample_options())
    return item_index, {split: to_tensors(frame) for split, frame in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speed-only", action="store_true", help="3 epochs per backbone; speed table only")
    args = parser.parse_args()
    params = load_parameters()
    training = TrainingConfig.from_params({**params["training"], "seed": args.seed,
                                           "max_epochs": 3 if args.speed_only else params["training"]["max_epochs"]})
    item_index, data = load_ml100k(params)
    num_items = int(item_index["item_index"].max())
    quality, speed = [], []
    started = time.perf_counter()
    for backbone in args.backbones:
        cloud = CloudData(data["train"], data["validation"], num_items, backbone, params["model"],
                          params["backbones"], training)
        result = train_base(cloud)
        test = evaluate(load_model(result.bundle), data["test"])
        reference = baseline().reference_auc("reproduction", "ml-100k", backbone)
        bar = f"{reference - 0.01:.4f}" if reference is not None else ""
        met = "" if reference is None else ("yes" if test["auc"] >= reference - 0.01 else "no")
        quality.append(
            f"| {backbone} | {result.best_epoch} / {len(result.history)} | {bar} | {met} | "
            + " | ".join(f"{test[name]:.4f}" for name in headline_metrics()) + " |"
        )
        # Epoch 1 includes one-off warm-up (allocator, thread pools): report the median.
        seconds = float(np.median(result.history["train_seconds"]))
        speed.append(f"| {backbone} | {len(data['train']):,} | {seconds:.2f} | {len(data['train']) / seconds:,.0f} |")
        print(quality[-1], speed[-1], sep="\n", flush=True)
    total = time.perf_counter() - started
    speed_table = f"""Training speed (median over epochs; batch 1024, forward + backward + Adam step, no evaluation):

| backbone | train rows / epoch | seconds / epoch | rows / second |
|---|---:|---:|---:|
{chr(10).join(speed)}
"""
    if args.speed_only:
        write_section("umn_training_speed", f"""## Base-model (UMN) training speed on ml-100k

Command: `python benchmarks/bench_umn_training.py --speed-only` (3 epochs per backbone).
Machine: {machine()}. Date: {today()}.

{speed_table}""")
        return
    write_section(
        f"umn_training_seed{args.seed}",
        f"""## Base models (UMN) on ml-100k, seed {args.seed}

Command: `python benchmarks/bench_umn_training.py --seed {args.seed}` (or `make benchmark-training`).
Machine: {machine()}. Date: {today()}. Total wall time {total / 60:.1f} min.

Test metrics at the epoch with the best validation AUC (PROTOCOL sections 4-5).
"bar" is the public reproduction's base AUC minus 0.01.

| backbone | kept / run epochs | bar | AUC >= bar | {" | ".join(headline_metrics())} |
|---|---:|---:|---|{"---:|" * len(headline_metrics())}
{chr(10).join(quality)}

{speed_table}""",
    )


if __name__ == "__main__":
    main()
