"""The value of real time on one dataset (PROTOCOL section 10), over seeds.

    python benchmarks/replay.py --dataset ml-100k          # make benchmark-replay DATASET=ml-100k
    python benchmarks/replay.py --dataset synthetic-100k --seeds 0,1,2 --methods duet+swa,pepnet,ppnet
    python benchmarks/replay.py --dataset ml-100k --report-only

For each seed, `kedro run --pipelines=replay` on DIN (training.seed = the seed) trains the
methods on the replay split and replays every device under every policy. Default methods:
DUET+SWA and the two dynamic-weight methods with the best seed-mean test AUC on DIN in the
record (docs/results/ml-100k.csv). Each finished seed is appended to
docs/results/replay-<dataset>.csv (resumable: a seed already there is skipped); the report
then rewrites the `replay-<dataset>` section of docs/RESULTS.md and
docs/results/replay-<dataset>.png from that file: `always - never` with its 95% interval
over seeds, and the share of it the best policy keeps at 10% and 20% requests.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO_ROOT, data_dir, machine, timed_kedro_run, today  # noqa: E402

from duet_pipeline.experiments.grid import code_version  # noqa: E402
from duet_pipeline.experiments.report import write_section  # noqa: E402
from duet_pipeline.methods import METHODS, dynamic  # noqa: E402
from duet_pipeline.project import load_parameters  # noqa: E402
from duet_pipeline.replay.report import real_time_markdown, replay_chart  # noqa: E402

RESULTS = REPO_ROOT / "docs" / "RESULTS.md"
FOLDER = REPO_ROOT / "docs" / "results"
BACKBONE = "din"
RECORD = FOLDER / "ml-100k.csv"


def dynamic_weight_methods() -> list[str]:
    """The dynamic-weight family: the methods trained by its shared recipe (methods/dynamic.py)."""
    return [m.name for m in METHODS.values() if getattr(m.module, "train", None) is dynamic.train]


def default_methods() -> list[str]:
    """DUET+SWA and the two best dynamic-weight methods on DIN in the record."""
    record = pd.read_csv(RECORD)
    din = record[(record["backbone"] == BACKBONE) & record["method"].isin(dynamic_weight_methods())]
    best = din.groupby("method")["auc"].mean().sort_values(ascending=False).index[:2].tolist()
    return ["duet+swa", *best]


def latest_table(dataset: str) -> pd.DataFrame:
    folder = REPO_ROOT / "data" / "08_reporting" / dataset / "replay" / BACKBONE / "replay_table.csv"
    newest = max(folder.iterdir(), key=lambda p: p.name)
    return pd.read_csv(newest / "replay_table.csv")


def run_seed(dataset: str, seed: int, methods: list[str]) -> pd.DataFrame:
    params = f"dataset={dataset},backbone={BACKBONE},methods={' '.join(methods)},training.seed={seed}," \
             "training.progress=false"
    measured = timed_kedro_run(REPO_ROOT, ["run", "--pipelines=replay", f"--params={params}"],
                               env={"DUET_DATA_DIR": str(data_dir())})
    table = latest_table(dataset)
    return table.assign(dataset=dataset, seed=seed, wall_seconds=measured.wall_seconds, code_version=code_version(),
                        machine=machine(threads=False), finished=today())


def report(dataset: str) -> str:
    """RESULTS.md's `replay-<dataset>` section and its plot, from the committed per-seed rows."""
    runs = pd.read_csv(FOLDER / f"replay-{dataset}.csv")
    stay = load_parameters()["synthetic"]["stay_probability"] if dataset.startswith("synthetic-") else None
    markdown = real_time_markdown(runs, dataset, BACKBONE, stay)
    means = runs.groupby(["method", "policy", "budget"], dropna=False)[["auc", "request_rate"]].mean().reset_index()
    replay_chart(means, f"{dataset} / {BACKBONE}: AUC against request rate (mean over seeds)").savefig(
        FOLDER / f"replay-{dataset}.png", dpi=110)
    write_section(RESULTS, f"replay-{dataset}", markdown)
    return markdown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--methods", default=None, help="comma-separated (default: duet+swa and the two best "
                                                        "dynamic-weight methods on DIN in the record)")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
    path = FOLDER / f"replay-{args.dataset}.csv"
    if not args.report_only:
        methods = args.methods.split(",") if args.methods else default_methods()
        for seed in (int(s) for s in args.seeds.split(",")):
            done = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=["seed", "method"])
            if set(methods) <= set(done.loc[done["seed"] == seed, "method"]):
                print(f"seed {seed}: in {path.name}, skipped", flush=True)
                continue
            print(f"seed {seed}: kedro run --pipelines=replay ({', '.join(methods)}) ...", flush=True)
            rows = run_seed(args.dataset, seed, methods)
            kept = done[~((done["seed"] == seed) & done["method"].isin(methods))] if len(done) else done
            pd.concat([kept, rows], ignore_index=True).to_csv(path, index=False)
    print(report(args.dataset))


if __name__ == "__main__":
    main()
