"""Every speed figure of issue 10 in one table, beside the previous run's figures.

    python benchmarks/bench_speed.py            # everything but the full grid (~15 min)
    python benchmarks/bench_speed.py --grid     # also time `make benchmark DATASET=ml-100k` from scratch

1. training-step rows/s, base and DUET+SWA, every backbone, ml-100k, batch 1024, the
   cores' default share (benchmarks/bench_training_step.py's loop);
2. the ml-100k test set scored and every metric computed, seconds;
3. `kedro run --pipelines=duet` on the shipped default: wall and peak RSS;
4. the same on ml-100k (`--params=dataset=ml-100k`): peak RSS and wall;
5. fine-tuning, ms per device, batched and plain loop (from run 3's finetune report);
6. with --grid, the full ml-100k grid's wall time (in a scratch MLflow store);
7. two trainings side by side (DIN base and SASRec DUET+SWA, the library's training
   loop with its default core sharing): each one's rows/s as a share of its solo speed.

Writes the `speed` section of docs/benchmarks.md with the command, machine and date.
Run it on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO_ROOT, data_dir, machine, previous_figures, project_copy, timed_kedro_run, today, write_section

SECTION = "speed"
TARGETS = {  # measure -> issue 10's target, as text
    "base training": ">= 150,000 rows/s", "duet+swa training": ">= 60,000 rows/s",
    "test evaluation": "< 0.2 s", "kedro run (default)": "< 90 s", "kedro run ml-100k RSS": "< 1.5 GiB",
    "fine-tune": "batched < loop", "grid ml-100k": "< 75 min", "side by side": ">= 40% each",
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grid", action="store_true", help="also time the full ml-100k grid (over an hour)")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--worker", nargs=3, metavar=("BACKBONE", "METHOD", "STEPS"), help=argparse.SUPPRESS)
    return parser.parse_args()


def ml100k_setup():
    """(train, test, num_items, params, training config, grouped order) on ml-100k."""
    import torch

    from duet_pipeline.data.events import read_interactions
    from duet_pipeline.features.samples import build_item_index
    from duet_pipeline.features.samples import FeatureParams, make_samples
    from duet_pipeline.project import load_parameters
    from duet_pipeline.training.loop import TrainingConfig, history_groups, shuffled_order
    from duet_pipeline.training.tensors import to_tensors

    params = load_parameters()
    interactions = read_interactions(data_dir() / "ml-100k" / "u.data", "ml-100k", load_parameters()["datasets"])
    item_index = build_item_index(interactions)
    samples = make_samples(interactions, item_index, **FeatureParams.from_params(params["features"]).sample_options())
    train, test = to_tensors(samples["train"]), to_tensors(samples["test"])
    config = TrainingConfig.from_params(params["training"])
    order = shuffled_order(history_groups(train), torch.Generator().manual_seed(config.seed))
    return train, test, int(item_index["item_index"].max()), params, config, order


def build_model(backbone: str, method_name: str, train, num_items: int, params, config):
    import torch

    from duet_pipeline.methods import get_method
    from duet_pipeline.models.recommender import Recommender, base_model_config
    from duet_pipeline.training.models import CloudData

    torch.manual_seed(config.seed)
    method = get_method(method_name)
    if method.spec.cloud_model == "base":
        return Recommender(base_model_config(num_items, train.history.shape[1], backbone, params["model"],
                                             params["backbones"]))
    data = CloudData(train, train, num_items, backbone, params["model"], params["backbones"], config)
    return method.module.build_model(data, method.parse_options(params["personalization"].get(method.spec.block)),
                                     method.variant)


def training_rows_per_second(model, train, order, config, steps: int) -> float:
    """Rows/s of ``steps`` batches (after 10 warm-up batches) of the grouped order through
    the library's own `train_epoch` and core sharing."""
    import torch

    from duet_pipeline.training.cores import CoreShare
    from duet_pipeline.training.loop import make_optimizer, train_epoch

    optimizer = make_optimizer(model, config)
    warm_up, timed = (train.rows(order[i * config.batch_size: j * config.batch_size]) for i, j in
                      ((0, 10), (10, 10 + steps)))
    def batches(rows):
        return ((rows.rows(index), index) for index in torch.arange(len(rows)).split(config.batch_size))

    with CoreShare() as cores:
        train_epoch(model, optimizer, batches(warm_up), None, cores)
        started = time.perf_counter()
        train_epoch(model, optimizer, batches(timed), None, cores)
    return steps * config.batch_size / (time.perf_counter() - started)


def worker(backbone: str, method: str, steps: int) -> None:
    """One training for the side-by-side measure: prints its rows/s."""
    train, _, num_items, params, config, order = ml100k_setup()
    model = build_model(backbone, method, train, num_items, params, config)
    print(json.dumps({"rows_per_second": training_rows_per_second(model, train, order, config, steps)}), flush=True)


def side_by_side(steps: int) -> list[tuple[str, float, float]]:
    """(training, solo rows/s, side-by-side rows/s) for DIN base beside SASRec DUET+SWA."""
    pairs = [("din", "base", steps * 2), ("sasrec", "duet+swa", steps)]

    def start(backbone: str, method: str, n: int) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, __file__, "--worker", backbone, method, str(n)],
                                stdout=subprocess.PIPE, text=True)

    def rate(process: subprocess.Popen) -> float:
        output, _ = process.communicate()
        return json.loads(output.strip().splitlines()[-1])["rows_per_second"]

    solo = [rate(start(*pair)) for pair in pairs]
    together = [start(*pair) for pair in pairs]
    return [(f"{b} {m}", s, rate(p)) for (b, m, _), s, p in zip(pairs, solo, together)]


def kedro_runs() -> dict[str, tuple[str, str]]:
    """The two `kedro run` measures and the fine-tune figures of the default run."""
    rows = {}
    project = project_copy(Path(tempfile.mkdtemp(prefix="duet-speed-")) / "project")
    shipped = REPO_ROOT / "data" / "01_raw" / "ml-latest-small"
    (project / "data" / "01_raw" / "ml-latest-small").mkdir(parents=True, exist_ok=True)
    for path in shipped.glob("*"):
        (project / "data" / "01_raw" / "ml-latest-small" / path.name).write_bytes(path.read_bytes())
    run = timed_kedro_run(project, ["run", "--pipelines=duet"], env={"DUET_DATA_DIR": ""})
    rows["kedro run (default)"] = (f"{run.wall_seconds:.0f} s", f"peak RSS {run.peak_rss_mib / 1024:.2f} GiB")
    report = json.loads(next((project / "data" / "08_reporting").rglob("finetune_report.json/*/*.json")).read_text())
    rows["fine-tune"] = (f"{report['seconds_per_device'] * 1000:.1f} ms / device batched, "
                         f"{report['loop_seconds_per_device'] * 1000:.1f} loop",
                         f"ml-latest-small, din: batched over all {int(report['devices'])} devices, the loop "
                         "over finetune.loop_devices devices spread evenly over them")
    run = timed_kedro_run(project, ["run", "--pipelines=duet", "--params=dataset=ml-100k"],
                          env={"DUET_DATA_DIR": str(data_dir())})
    rows["kedro run ml-100k RSS"] = (f"{run.peak_rss_mib / 1024:.2f} GiB", f"wall {run.wall_seconds:.0f} s")
    return rows


def grid_wall() -> tuple[str, str]:
    """Wall time of the full ml-100k grid in a scratch copy of the project (its own MLflow store)."""
    project = project_copy(Path(tempfile.mkdtemp(prefix="duet-speed-grid-")) / "project")
    started = time.perf_counter()
    subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "grid.py"), "--dataset", "ml-100k",
                    "--project", str(project), "--results", str(project / "RESULTS.md")],
                   check=True, env={**os.environ, "DUET_DATA_DIR": str(data_dir())})
    import csv

    with open(project / "docs" / "results" / "ml-100k.csv") as file:
        cells = list(csv.DictReader(file))
    return (f"{(time.perf_counter() - started) / 60:.0f} min",
            f"{len(cells)} cells, {len({c['seed'] for c in cells})} seeds, from scratch")


def main() -> None:
    args = parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1], int(args.worker[2]))
        return
    import torch

    from duet_pipeline.evaluation.metrics import compute_metrics
    from duet_pipeline.training.loop import predict

    train, test, num_items, params, config, order = ml100k_setup()
    rows: list[tuple[str, str, str]] = []  # (measure, figure, detail)
    evaluation = []
    for backbone in ("din", "gru4rec", "sasrec"):
        for method in ("base", "duet+swa"):
            model = build_model(backbone, method, train, num_items, params, config).train()
            rate = training_rows_per_second(model, train, order, config, args.steps)
            rows.append((f"{method} training, {backbone}", f"{rate:,.0f} rows/s", f"{torch.get_num_threads()} threads"))
            print(rows[-1], flush=True)
            started = time.perf_counter()
            compute_metrics(test.user.numpy(), test.label.numpy(), predict(model, test, config.eval_batch_size))
            evaluation.append(time.perf_counter() - started)
    rows.append(("test evaluation", f"{max(evaluation):.2f} s", f"{len(test):,} rows, slowest of 6 models"))
    for measure, (figure, detail) in kedro_runs().items():
        rows.append((measure, figure, detail))
        print(rows[-1], flush=True)
    if args.grid:
        rows.append(("grid ml-100k", *grid_wall()))
    for name, solo, together in side_by_side(args.steps):
        rows.append((f"side by side, {name}", f"{together / solo:.0%} of solo",
                     f"{together:,.0f} vs {solo:,.0f} rows/s solo"))
        print(rows[-1], flush=True)
    previous = previous_figures(SECTION)

    def target(measure: str) -> str:
        return next((t for key, t in TARGETS.items() if measure.startswith(key)), "")

    table = ["| measure | target | this run | previous run |", "|---|---|---|---|"]
    table += [f"| {m} | {target(m)} | {f} ({d}) | {previous.get(m, '-')} |" for m, f, d in rows]
    command = " ".join(["python benchmarks/bench_speed.py", *sys.argv[1:]])
    write_section(SECTION, f"## Speed (issue 10)\n\nCommand: `{command}` (`make benchmark-speed`). "
                  f"Machine: {machine(threads=False)}. Date: {today()}.\n\n" + "\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
