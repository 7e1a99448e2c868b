"""Speed of the replay: every ml-100k device (943 x 10 steps x 100 candidates), every policy,
one method, in process (PROTOCOL section 10; target: under 30 s).

    python benchmarks/bench_replay_speed.py [--method duet+swa]   # make benchmark-replay-speed

Reads the latest replay split and the method's replay model of ml-100k / DIN under data/;
where there is none, trains it first with `kedro run --pipelines=replay` (not timed). Times
`replay.evaluate.replay_method` (every policy at every budget of conf/base/parameters_replay.yml,
the learned policy trained on the train-period streams) and its parts, with the previous run's
figures beside them, into the `replay_speed` section of docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import os
import pickle
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO_ROOT, data_dir, machine, previous_figures, timed_kedro_run, today, write_section  # noqa: E402

from duet_pipeline.experiments.grid import code_version  # noqa: E402
from duet_pipeline.methods import get_method  # noqa: E402
from duet_pipeline.models.recommender import load_model  # noqa: E402
from duet_pipeline.project import load_parameters  # noqa: E402
from duet_pipeline.replay.evaluate import ReplayParams, replay_method  # noqa: E402
from duet_pipeline.replay.stale import stale_scores  # noqa: E402
from duet_pipeline.replay.streams import streams_from_samples  # noqa: E402

SECTION = "replay_speed"
DATASET, BACKBONE = "ml-100k", "din"


def latest(path: Path) -> Path | None:
    if not path.is_dir():
        return None
    versions = sorted(p for p in path.iterdir() if p.is_dir())
    return versions[-1] / path.name if versions else None


def inputs(method: str) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    key = get_method(method).key
    samples = REPO_ROOT / "data" / "05_model_input" / DATASET / "replay"
    model = REPO_ROOT / "data" / "06_models" / DATASET / "replay" / BACKBONE / f"{key}_model.pkl"
    if latest(model) is None or latest(samples / "test_samples.parquet") is None:
        print(f"no {method} replay model of {DATASET}: kedro run --pipelines=replay ...", flush=True)
        timed_kedro_run(REPO_ROOT, ["run", "--pipelines=replay", f"--params=dataset={DATASET},backbone={BACKBONE},"
                                    f"methods={method},training.progress=false"], env={"DUET_DATA_DIR": str(data_dir())})
    with latest(model).open("rb") as file:
        bundle = pickle.load(file)
    return (pd.read_parquet(latest(samples / "test_samples.parquet")),
            pd.read_parquet(latest(samples / "policy_samples.parquet")), get_method(method).device_bundle(bundle))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--method", default="duet+swa")
    args = parser.parse_args()
    os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
    test, policy, bundle = inputs(args.method)
    model = load_model(bundle)
    params = ReplayParams.from_params(load_parameters()["replay"])
    streams, policy_streams = streams_from_samples(test), streams_from_samples(policy)
    stale_scores(model, streams.device(0))  # warm-up: first-call allocations
    started = time.perf_counter()
    stale_scores(model, streams, params.batch_devices)
    stale_seconds = time.perf_counter() - started
    started = time.perf_counter()
    result = replay_method(model, args.method, streams, policy_streams, params)
    total = time.perf_counter() - started
    figures = {
        f"replay, every policy x {len(params.budgets)} budgets, {args.method} (s)": (f"{total:.1f}", "< 30"),
        "of which: every step with every held head, replayed devices (s)": (f"{stale_seconds:.1f}", ""),
        "(device, step) candidate sets": (f"{int(result.costs['steps']):,}", ""),
        "learned policy: bytes on the device": (f"{result.costs['policy_bytes']:.0f}", ""),
        "learned policy: ms per decision (in process)": (f"{result.costs['policy_ms_per_decision']:.3f}", ""),
    }
    previous = previous_figures(SECTION)
    lines = ["## Replay speed (PROTOCOL section 10)", "",
             f"Command: `make benchmark-replay-speed` (`python benchmarks/bench_replay_speed.py --method {args.method}`),"
             f" {today()}, code {code_version()}, {machine()}, run alone. {DATASET} / {BACKBONE}: "
             f"{streams.devices} devices x {streams.length} steps x {streams.candidates.shape[-1]} candidates.", "",
             "| measure | target | this run | previous run |", "|---|---|---|---|"]
    lines += [f"| {name} | {target} | {value} | {previous.get(name, '-')} |" for name, (value, target) in figures.items()]
    write_section(SECTION, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
