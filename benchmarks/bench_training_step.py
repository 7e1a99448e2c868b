"""Training-step throughput: rows per second of forward + backward + Adam on ml-100k.

    python benchmarks/bench_training_step.py                       # every backbone, base and duet+swa
    python benchmarks/bench_training_step.py --backbones din --methods base --steps 100
    python benchmarks/bench_training_step.py --src /path/to/other/checkout/src --section ...

One process, the ml-100k train rows in the training loop's grouped order, batch 1024, the
models and parameters of conf/base. After 10 warm-up steps it times `--repeats` blocks of
`--steps` steps and reports the best block (this machine's timings vary by +-20% between
blocks; the best is the most repeatable figure) and all blocks. `--src` measures another
checkout's library, for before/after tables. No evaluation, no data loading in the timing.
A method with its own cloud recipe is measured through its module's `build_model(data,
options, variant)` (DUET has one); methods without a PyTorch model have no training step.
"""
from __future__ import annotations

import argparse
import sys
import time

from common import data_dir, machine, today, write_section


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbones", default="din,gru4rec,sasrec")
    parser.add_argument("--methods", default="base,duet+swa", help="base and/or own-recipe methods")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--src", default=None, help="import duet_pipeline from this src/ instead")
    parser.add_argument("--section", default=None, help="write the table into docs/benchmarks.md")
    return parser.parse_args()


def throughput(model, train, order, config, steps: int, repeats: int) -> list[float]:
    """Rows per second of each of ``repeats`` blocks of ``steps`` training steps (the
    training loop's optimiser and loss), after 10 warm-up steps."""
    from torch import nn

    from duet_pipeline.training.loop import make_optimizer

    optimizer = make_optimizer(model, config)
    loss_fn = nn.BCEWithLogitsLoss()
    batches = len(train) // config.batch_size
    model.train()

    def step(index: int) -> None:
        batch = train.rows(order[(index % batches) * config.batch_size:][: config.batch_size])
        loss = loss_fn(model(batch.history, batch.target), batch.label)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for index in range(10):
        step(index)
    rates = []
    for repeat in range(repeats):
        started = time.perf_counter()
        for index in range(10 + repeat * steps, 10 + (repeat + 1) * steps):
            step(index)
        rates.append(steps * config.batch_size / (time.perf_counter() - started))
    return rates


def main() -> None:
    args = parse_args()
    if args.src:
        sys.path.insert(0, args.src)
    import torch

    from duet_pipeline.data.events import read_interactions
    from duet_pipeline.features.samples import build_item_index
    from duet_pipeline.features.samples import FeatureParams, make_samples
    from duet_pipeline.methods import get_method
    from duet_pipeline.models.recommender import Recommender, base_model_config
    from duet_pipeline.project import load_parameters
    from duet_pipeline.training.loop import TrainingConfig, history_groups, shuffled_order
    from duet_pipeline.training.models import CloudData
    from duet_pipeline.training.tensors import to_tensors

    params = load_parameters()
    interactions = read_interactions(data_dir() / "ml-100k" / "u.data", "ml-100k", load_parameters()["datasets"])
    item_index = build_item_index(interactions)
    samples = make_samples(interactions, item_index, **FeatureParams.from_params(params["features"]).sample_options())
    train = to_tensors(samples["train"])
    num_items = int(item_index["item_index"].max())
    config = TrainingConfig.from_params(params["training"])
    order = shuffled_order(history_groups(train), torch.Generator().manual_seed(config.seed))
    rows = []
    for backbone in args.backbones.split(","):
        for name in args.methods.split(","):
            torch.manual_seed(config.seed)
            shape = base_model_config(num_items, train.history.shape[1], backbone, params["model"], params["backbones"])
            method = get_method(name)
            if method.spec.cloud_model == "base":
                model = Recommender(shape)
            else:  # a method with its own recipe builds its model with `build_model`
                data = CloudData(train, train, num_items, backbone, params["model"], params["backbones"], config)
                if not hasattr(method.module, "build_model"):
                    raise SystemExit(f"method {name}: its module has no build_model(data, options, variant), "
                                     "so it has no training step to measure")
                options = method.parse_options(params["personalization"].get(method.spec.block))
                model = method.module.build_model(data, options, method.variant)
            rates = throughput(model, train, order, config, args.steps, args.repeats)
            rows.append(f"| {backbone} | {name} | {max(rates):,.0f} | {', '.join(f'{r / 1000:.1f}k' for r in rates)} |")
            print(rows[-1], flush=True)
    table = "\n".join(["| backbone | model | rows/s (best block) | every block |", "|---|---|---:|---|", *rows])
    if args.section:
        command = " ".join(["python benchmarks/bench_training_step.py", *sys.argv[1:]])
        write_section(args.section, f"## Training-step throughput ({args.section})\n\nCommand: `{command}`.\n"
                      f"Machine: {machine()}. Date: {today()}.\n\n{table}\n")


if __name__ == "__main__":
    main()
