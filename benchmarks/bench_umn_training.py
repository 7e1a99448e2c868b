"""Base-model (UMN) quality and training speed per backbone on ml-100k.

Trains each backbone exactly as the `umn_training` node does (PROTOCOL section 4: Adam
1e-3, batch 1024, up to 20 epochs, best validation AUC, patience 3, seed 0) and reports
test metrics at the kept epoch plus seconds per epoch and training rows per second.

    python benchmarks/bench_umn_training.py [--backbones din gru4rec sasrec] [--seed 0]
    python benchmarks/bench_umn_training.py --speed-only     # 3 epochs each, speed table only
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from common import data_dir, machine, today, write_section

from duet_pipeline.data.movielens import build_item_index, read_ratings
from duet_pipeline.features.samples import make_samples
from duet_pipeline.models.backbones import BACKBONES
from duet_pipeline.models.recommender import ModelConfig, Recommender
from duet_pipeline.training.loop import TrainingConfig, evaluate, fit
from duet_pipeline.training.tensors import to_tensors

# The reproduction's base AUC on ml-100k (PROTOCOL section 6); the bar is this - 0.01.
REPRODUCTION_BASE_AUC = {"din": 0.8845, "sasrec": 0.9079, "gru4rec": 0.9060}
BACKBONE_OPTIONS = {"din": {"attention_units": (32, 16)}, "gru4rec": {"num_layers": 2},
                    "sasrec": {"num_blocks": 2, "num_heads": 1, "dropout": 0.2}}


def load_ml100k():
    interactions = read_ratings(data_dir() / "ml-100k" / "u.data", "ml-100k")
    item_index = build_item_index(interactions)
    samples = make_samples(interactions, item_index, max_seq_len=10, min_user_interactions=3,
                           min_rating=None, negatives={"train": 4, "validation": 99, "test": 99}, seed=61)
    return item_index, {split: to_tensors(frame) for split, frame in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speed-only", action="store_true", help="3 epochs per backbone; speed table only")
    args = parser.parse_args()
    training = TrainingConfig(seed=args.seed, max_epochs=3 if args.speed_only else 20)
    item_index, data = load_ml100k()
    quality, speed = [], []
    started = time.perf_counter()
    for backbone in args.backbones:
        torch.manual_seed(args.seed)
        config = ModelConfig(int(item_index["item_index"].max()), 10, backbone,
                             backbone_options=BACKBONE_OPTIONS[backbone])
        model = Recommender(config)
        result = fit(model, data["train"], data["validation"], training,
                     description=f"base/{backbone}")
        test = evaluate(model, data["test"])
        bar = REPRODUCTION_BASE_AUC[backbone] - 0.01
        quality.append(
            f"| {backbone} | {result.best_epoch} / {len(result.history)} | {test['auc']:.4f} | {bar:.4f} "
            f"| {'yes' if test['auc'] >= bar else 'no'} | {test['uauc']:.4f} | {test['ndcg@10']:.4f} "
            f"| {test['hr@10']:.4f} | {test['logloss']:.4f} |"
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

| backbone | kept / run epochs | test AUC | bar | AUC >= bar | UAUC | NDCG@10 | HR@10 | logloss |
|---|---:|---:|---:|---|---:|---:|---:|---:|
{chr(10).join(quality)}

{speed_table}""",
    )


if __name__ == "__main__":
    main()
