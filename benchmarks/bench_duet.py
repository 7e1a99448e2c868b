"""The methods selected in conf/ (`methods`) on ml-100k, every backbone, via `kedro run`.

Runs `kedro run --pipelines=duet_all --params=dataset=ml-100k,...` in a scratch copy of
the project (data from $DUET_DATA_DIR or ../shared/data), then collects each
backbone's metrics and device-cost tables into docs/benchmarks.md.

    python benchmarks/bench_duet.py                                 # defaults
    python benchmarks/bench_duet.py --backbone din --params personalization.duet.warm_start=true --section duet_din_warm_start
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import pandas as pd

from common import data_dir, machine, project_copy, timed_kedro_run, today, write_section

from duet_pipeline.evaluation.metrics import headline_metrics
from duet_pipeline.methods import baseline, get_method, parameter_blocks
from duet_pipeline.models.backbones import BACKBONES

# Progress bars off in every block that has them: the run's output is captured.
QUIET = ["training.progress=false", *(f"personalization.{block}.progress=false"
                                      for block, options in parameter_blocks().items() if "progress" in options.model_fields)]


def check(dataset: str, backbone: str, method: str, auc: float, base_auc: float | None) -> str:
    """Against the base model, and against the public reproduction's AUC of the same
    method (PROTOCOL section 6) minus 0.01."""
    parts = [] if method == baseline().name or base_auc is None else [f"{'>=' if auc >= base_auc else '<'} base"]
    reference = get_method(method).reference_auc("reproduction", dataset, backbone)
    if reference is not None:
        parts.append(f"{'>=' if auc >= reference - 0.01 else '<'} bar {reference - 0.01:.4f}")
    return "; ".join(parts)


def latest(path: Path) -> Path:
    return sorted(path.iterdir())[-1] / path.name


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--params", default="", help="extra kedro --params, comma-separated")
    parser.add_argument("--section", default="duet_ml100k")
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--collect-from", type=Path, default=None,
                        help="re-write the section from a finished run's project folder, without running")
    parser.add_argument("--backbone", choices=sorted(BACKBONES), default=None,
                        help="one backbone through the `duet` pipeline instead of all through `duet_all`")
    args = parser.parse_args()
    backbones = [args.backbone] if args.backbone else list(BACKBONES)
    pipeline = "duet" if args.backbone else "duet_all"
    params = ",".join(p for p in (f"dataset={args.dataset}", f"backbone={args.backbone}" if args.backbone else "",
                                  *QUIET, args.params) if p)
    if args.collect_from is None:
        project = project_copy(Path(tempfile.mkdtemp(prefix="duet-bench-")) / "project")
        print(f"running in {project}", flush=True)
        run = timed_kedro_run(project, ["run", f"--pipelines={pipeline}", f"--params={params}"],
                              env={"DUET_DATA_DIR": str(data_dir())})
        (project / "run.json").write_text(json.dumps({"wall_seconds": run.wall_seconds, "peak_rss_mib": run.peak_rss_mib}))
    project = args.collect_from or project
    run = json.loads((project / "run.json").read_text())
    quality, cost = [], []
    for backbone in backbones:
        reporting = project / "data" / "08_reporting" / args.dataset / backbone
        metrics = pd.read_csv(latest(reporting / "metrics_table.csv")).set_index("method")
        base_auc = metrics["auc"].get(baseline().name)  # None: base not among the methods
        for method, row in metrics.iterrows():
            verdict = check(args.dataset, backbone, method, row["auc"], base_auc)
            quality.append(f"| {backbone} | {method} | " + " | ".join(f"{row[m]:.4f}" for m in headline_metrics())
                           + f" | {verdict} |")
        devices = pd.read_csv(latest(reporting / "device_table.csv")).set_index("method")
        for method, row in devices.iterrows():
            cost.append(f"| {backbone} | {method} | {row['seconds_per_device'] * 1000:.3f} "
                        f"| {row.get('generation_ms_p50_single', float('nan')):.3f} "
                        f"| {row.get('generation_ms_p99_single', float('nan')):.3f} "
                        f"| {row['devices_per_second']:,.0f} | {row.get('payload_bytes', float('nan')):.0f} |")
        for name in sorted(p.name.removesuffix("_training_history.csv")
                           for p in reporting.glob("*_training_history.csv")):
            history = pd.read_csv(latest(reporting / f"{name}_training_history.csv"))
            best = int(history["val_auc"].idxmax())
            cost.append(f"| {backbone} | {name} training | epochs run {len(history)}, kept {best + 1}, "
                        f"median {history['train_seconds'].median():.1f} s/epoch, "
                        f"{history['train_rows_per_second'].median():,.0f} rows/s | | | | |")
    write_section(
        args.section,
        f"""## DUET vs base vs fine-tune on {args.dataset} ({args.section})

Command: `python benchmarks/bench_duet.py {('--backbone ' + args.backbone + ' ') if args.backbone else ''}{('--params ' + args.params + ' ') if args.params else ''}--section {args.section}`
(one `kedro run --pipelines={pipeline} --params={params}`).
Machine: {machine()}. Date: {today()}. Wall time of the run: {run["wall_seconds"] / 60:.1f} min,
peak memory {run["peak_rss_mib"] / 1024:.2f} GiB.

Test metrics at the best-validation epoch (seed 0). "bar": the public reproduction's AUC
of the same method minus 0.01 (PROTOCOL section 6).

| backbone | method | {" | ".join(headline_metrics())} | check |
|---|---|{"---:|" * len(headline_metrics())}---|
{chr(10).join(quality)}

Per-device cost (fine-tune: batched vmap fine-tuning of all devices / number of devices;
DUET: batched generation time per device, and single-request latency):

| backbone | method | ms / device | single p50 ms | single p99 ms | devices / s | payload bytes |
|---|---|---:|---:|---:|---:|---:|
{chr(10).join(cost)}
""",
    )
    print(f"wrote section {args.section} in docs/benchmarks.md")


if __name__ == "__main__":
    main()
