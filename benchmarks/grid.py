"""The paper's comparison as one resumable grid: backbone x method x seed.

    python benchmarks/grid.py --dataset ml-100k                 # the record (make benchmark)
    python benchmarks/grid.py --dataset ml-100k --seeds 0 --backbones din --methods base,duet+swa
    python benchmarks/grid.py --dataset ml-100k --report-only   # re-write docs/RESULTS.md from the record

Steps: `kedro run` of the data pipelines for the dataset; parameters resolved from conf/
exactly as `kedro run --params=dataset=...` resolves them (plus --params); the numerics
fingerprint of every (backbone, method) (experiments/fingerprint.py); cells of the record
(docs/results/<dataset>.csv) computed from other samples, parameters or numerics are set
aside; every unit (a training and the cells read from it) with a cell missing from the
record runs, `--jobs` at a time, each finished cell recorded at once and logged to MLflow
under one parent run per invocation; finally the dataset's section of docs/RESULTS.md is
re-written from the record.
"""
from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import queue
import subprocess
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

from tqdm.auto import tqdm

from common import REPO_ROOT, SHARED_DATA, machine, today

from duet_pipeline.data.declarations import RawDataParams, declaration_of, resolve_path
from duet_pipeline.data.readers import part_files
from duet_pipeline.experiments.fingerprint import compute_fingerprints, encode, samples_hash
from duet_pipeline.experiments.grid import apply_overrides, code_version, plan_units
from duet_pipeline.experiments.record import Provenance, Record, cell_row
from duet_pipeline.experiments.report import dataset_report, write_section
from duet_pipeline.experiments.runner import GridData, init_worker, run_unit_from_file, save_grid_data
from duet_pipeline.experiments.tracking import GridTracker
from duet_pipeline.methods import method_names
from duet_pipeline.models.backbones import BACKBONES
from duet_pipeline.project import load_parameters
from duet_pipeline.training.cores import fixed_threads


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="ml-100k", help="ml-latest-small | ml-100k | ml-1m")
    parser.add_argument("--backbones", default=",".join(BACKBONES), help=f"comma-separated, of {sorted(BACKBONES)}")
    parser.add_argument("--methods", default=",".join(method_names()), help=f"comma-separated, of {method_names()}")
    parser.add_argument("--seeds", default=None,
                        help="comma-separated training seeds (default: 0-4 on ml-100k, 0-2 elsewhere; PROTOCOL.md)")
    parser.add_argument("--params", default="", help="parameter overrides, e.g. training.max_epochs=5,personalization.duet.temperature=2")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="units trained at once, each with cores/jobs threads (default: one per core)")
    parser.add_argument("--force", action="store_true", help="re-run cells the record holds from the current code")
    parser.add_argument("--report-only", action="store_true",
                        help="only re-write the dataset's section of RESULTS.md from the record (no data, no training)")
    parser.add_argument("--show-stale", action="store_true",
                        help="add the cells set aside as stale to the report, in a separate, labelled table")
    parser.add_argument("--project", type=Path, default=REPO_ROOT, help="the Kedro project (default: this one)")
    parser.add_argument("--results", type=Path, default=None, help="default: <project>/docs/RESULTS.md")
    parser.add_argument("--experiment", default="duet_grid", help="MLflow experiment of the cells")
    args = parser.parse_args(argv)
    args.seeds = args.seeds or ",".join(map(str, range(SEEDS.get(args.dataset, 3))))
    return args


# Seeds per cell of the record (PROTOCOL.md): ml-100k is small enough for five.
SEEDS = {"ml-100k": 5}


def resolve_parameters(project: Path, dataset: str, overrides: list[str]) -> tuple[dict, GridData, str]:
    """conf/ parameters for ``dataset``, the sample tables of the latest data run, and the
    data version (sha256 of the raw ratings file)."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project)
    with KedroSession.create(project_path=project, runtime_params={"dataset": dataset}) as session:
        context = session.load_context()
        params = apply_overrides(context.params, overrides)
        catalog = context.catalog
        data = GridData.from_frames(
            catalog.load("train_samples"), catalog.load("validation_samples"), catalog.load("test_samples"),
            int(catalog.load("item_index")["item_index"].max()),
        )
    raw = params["raw_data"]
    raw = RawDataParams.from_params({**raw, "fallback_root": str(project / raw["fallback_root"])})
    declaration = declaration_of(dataset, params["datasets"])
    digest = hashlib.sha256()
    for part in part_files(resolve_path(dataset, declaration, raw), declaration):
        digest.update(part.read_bytes())
    return params, data, digest.hexdigest()[:16]


def use_shared_data_if_present(project: Path, dataset: str) -> None:
    """Without $DUET_DATA_DIR, read ../shared/data where it holds the dataset (as on the
    team's machines and CI); otherwise the project's data/01_raw (downloading if allowed)."""
    if os.environ.get("DUET_DATA_DIR"):
        return
    declaration = declaration_of(dataset, load_parameters(project)["datasets"])
    if (SHARED_DATA / declaration.path.replace("{name}", dataset)).exists():
        os.environ["DUET_DATA_DIR"] = str(SHARED_DATA)


def run_data_pipelines(project: Path, dataset: str, overrides: list[str]) -> None:
    kedro = str(Path(sys.executable).with_name("kedro"))
    data_params = [o for o in overrides if o.startswith(("features.", "raw_data."))]
    command = [kedro, "run", "--pipelines=ingestion,feature_engineering",
               f"--params={','.join([f'dataset={dataset}', *data_params])}"]
    print(f"$ {' '.join(command[1:])}", flush=True)
    done = subprocess.run(command, cwd=project, env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"},
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the data pipelines failed for {dataset}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def reproduce_command(args: argparse.Namespace) -> str:
    """The command that computes these cells (not how this report was written)."""
    defaults = parse_args(["--dataset", args.dataset])
    options = [f"--{name} {getattr(args, name)}" for name in ("backbones", "methods", "seeds", "params")
               if getattr(args, name) != getattr(defaults, name)]
    grid = " ".join(["python benchmarks/grid.py", f"--dataset {args.dataset}", *options])
    return f"`{grid}` (= `make benchmark DATASET={args.dataset}`)" if not options else f"`{grid}`"


def show_epochs(progress, running: dict[str, str], bar: tqdm) -> None:
    """Drain the workers' epoch reports into the bar's postfix: what runs, at which epoch."""
    before = dict(running)
    while True:
        try:
            label, record = progress.get_nowait()
        except queue.Empty:
            break
        running[label] = f"{label} epoch {record['epoch']} val AUC {record['val_auc']:.4f}"
    if running != before:
        bar.set_postfix_str(" | ".join(running.values()), refresh=True)


def summary_line(result) -> str:
    m, t = result.metrics, result.training
    return (f"{result.cell.label:<42} AUC {m['auc']:.4f}  UAUC {m['uauc']:.4f}  NDCG@10 {m['ndcg@10']:.4f}  "
            f"HR@10 {m['hr@10']:.4f}  best epoch {t['best_epoch']:.0f}/{t['epochs']:.0f}  {result.wall_seconds / 60:.1f} min")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.chdir(args.project)  # relative paths in conf/ (data/, sqlite:///mlflow.db) are the project's
    folder = args.project / "docs" / "results"
    tracker = GridTracker("sqlite:///mlflow.db", args.experiment)
    parent = None
    if not args.report_only:
        parent = compute(args, folder, tracker)
    results = args.results or args.project / "docs" / "RESULTS.md"
    report = dataset_report(folder, results.parent, args.dataset, show_stale=args.show_stale)
    figures = report.draw()
    write_section(results, args.dataset, report.markdown)
    tracker.log_report(parent or tracker.start_invocation(args.dataset, {"report_only": "true"}),
                       report.markdown, figures)
    print(report.markdown.split("### Test quality")[0].rstrip())
    print(f"results: {results}")


def compute(args: argparse.Namespace, folder: Path, tracker: GridTracker) -> str | None:
    """Bring the record up to date; the invocation's MLflow parent run (None if nothing ran)."""
    started = time.perf_counter()
    use_shared_data_if_present(args.project, args.dataset)
    overrides = [o for o in args.params.split(",") if o]
    run_data_pipelines(args.project, args.dataset, overrides)
    params, data, data_version = resolve_parameters(args.project, args.dataset, overrides)
    backbones, methods, seeds = args.backbones.split(","), args.methods.split(","), [int(s) for s in args.seeds.split(",")]
    units = plan_units(params, args.dataset, backbones, methods, seeds, data_version)
    record = Record(folder, args.dataset)
    # Every recorded cell is judged, not only the planned ones: a record holds one truth.
    # (A cell of a backbone or method no longer registered has no plan: it is set aside.)
    held = record.cells
    judged_backbones = _union(backbones, [b for b in held["backbone"].tolist() if b in BACKBONES])
    judged_methods = _union(methods, [m for m in held["method"].tolist() if m in method_names()])
    judged = plan_units(params, args.dataset, judged_backbones, judged_methods,
                        _union(seeds, held["seed"].astype(int).tolist()), data_version)
    clock = time.perf_counter()
    fingerprints = compute_fingerprints(params, args.dataset, judged_backbones, judged_methods)
    print(f"numerics fingerprints of {len(fingerprints)} (backbone, method) pairs: "
          f"{time.perf_counter() - clock:.0f} s", flush=True)
    provenance = Provenance(samples_hash(data), code_version(), machine(threads=False), worker_threads(args.jobs))
    hashes = {(c.backbone, c.method, c.seed): u.cell_hash(c, with_code=False) for u in judged for c in u.cells}
    reasons = record.staleness(hashes, fingerprints, provenance.samples_hash)
    for why, count in reasons[reasons != ""].value_counts().items():
        print(f"{count} recorded cells set aside to {record.stale_path.name}: {why}", flush=True)
    record.set_aside(reasons)
    parent, cells_run, failed = run_grid(units, data, tracker, record, fingerprints, provenance, args)
    if cells_run:
        record.log_invocation(time.perf_counter() - started, cells_run, args.jobs, provenance,
                              complete=not any(record.missing(u.cells) for u in units))
    if failed:
        tracker.end_invocation(parent, "FAILED")
        raise SystemExit(f"{len(failed)} training(s) failed (their cells are not recorded): {failed}")
    return parent


def _union(first, second) -> list:
    """``first``, then what ``second`` adds, each once, in order."""
    return list(dict.fromkeys([*first, *second]))


def worker_threads(jobs: int) -> int:
    """Each job's PyTorch threads: the count the user fixed (DUET_THREADS or OMP_NUM_THREADS,
    as for a kedro run), else an equal share of the cores."""
    return fixed_threads() or max(1, (os.cpu_count() or 1) // jobs)


def run_grid(units, data: GridData, tracker: GridTracker, record: Record, fingerprints: dict,
             provenance: Provenance, args: argparse.Namespace) -> tuple[str | None, int, list[str]]:
    """Run every unit with a cell the record lacks (stale cells were set aside); record
    each cell as it finishes and log it to MLflow as a child of this invocation's run.
    Returns that run's id, the number of cells recorded and the units that failed."""
    pending = [u for u in units if args.force or record.missing(u.cells)]
    cells = sum(len(u.cells) for u in units)
    print(f"{args.dataset}: {cells} cells in {len(units)} trainings; {len(units) - len(pending)} trainings current in "
          f"{record.cells_path.name}, {len(pending)} to run with {args.jobs} job(s)", flush=True)
    if not pending:
        return None, 0, []
    jobs = max(1, min(args.jobs, len(pending)))
    failed: list[str] = []
    recorded = 0
    tags = {"data_version": units[0].data_version, "code_version": provenance.code_version,
            "samples_hash": provenance.samples_hash, "grid_command": " ".join(sys.argv)}
    parent = tracker.start_invocation(args.dataset, tags)
    with tempfile.TemporaryDirectory() as folder, tqdm(total=sum(len(u.cells) for u in pending), unit="cell",
                                                        desc=f"grid {args.dataset}") as bar:
        data_path = str(Path(folder) / "grid_data.pkl")
        save_grid_data(data, data_path)
        threads = worker_threads(jobs)
        context = multiprocessing.get_context("spawn")
        progress = context.Queue()
        with ProcessPoolExecutor(jobs, mp_context=context, initializer=init_worker,
                                 initargs=(threads, progress)) as pool:
            futures = {pool.submit(run_unit_from_file, unit, data_path): unit for unit in pending}
            running: dict[str, str] = {}  # unit label -> its latest epoch, shown beside the bar
            while futures:
                finished, _ = wait(futures, timeout=1.0, return_when=FIRST_COMPLETED)
                show_epochs(progress, running, bar)
                for future in finished:
                    unit = futures.pop(future)
                    running.pop(unit.label, None)
                    try:
                        results = future.result()
                    except Exception as error:  # one failed training must not lose the others' hours
                        failed.append(unit.label)
                        bar.write(f"{unit.label}: FAILED: {type(error).__name__}: {error}")
                        bar.update(len(unit.cells))
                        continue
                    when = today()
                    record.add([cell_row(r, encode(fingerprints[(r.cell.backbone, r.cell.method)]), provenance, when)
                                for r in results], [r.history for r in results])
                    recorded += len(results)
                    for result in results:
                        tracker.log_cell(result, tags, parent)
                        bar.write(summary_line(result))
                        bar.update(1)
    return parent, recorded, failed


if __name__ == "__main__":
    main()
