"""How cost grows past MovieLens (`make benchmark-scale`): the data stages on pandas and
Spark at synthetic-1m, -5m and -25m; streaming training rows/s with 1 and 2 DDP
processes; peak memory of streaming training at synthetic-25m; samples on disk before
and after the one-row-per-positive layout.

Every measurement is a `kedro run` in a project copy under --work, watched from outside:
wall time, and the peak resident memory of the Python driver, the JVM (Spark's driver,
which in local mode also runs the executors) and the whole process tree, sampled every
0.2 s from /proc. Each finished measurement is a row of docs/results/scale.csv, so the
script resumes where it stopped; --fresh starts over and keeps the old rows as
docs/results/scale-previous.csv. The tables (each figure beside the previous run's) and
the plot in docs/benchmarks.md are written from those CSVs.
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO_ROOT, machine, project_copy, today, write_section  # noqa: E402

from duet_pipeline.datasets import parquet_files  # noqa: E402

RESULTS = REPO_ROOT / "docs" / "results" / "scale.csv"
PREVIOUS = RESULTS.with_name("scale-previous.csv")
PLOT = REPO_ROOT / "docs" / "benchmarks" / "scale.png"
FIELDS = ["measurement", "dataset", "engine", "processes", "status", "wall_s", "peak_python_gib", "peak_jvm_gib",
          "peak_tree_gib", "rows_per_s", "train_positives", "train_bytes", "expanded_bytes", "train_raw_bytes", "expanded_raw_bytes", "note", "date",
          "machine"]
KEY = ["measurement", "dataset", "engine", "processes"]
SIZES = ("synthetic-1m", "synthetic-5m", "synthetic-25m")
TRAINING = "methods=base,training.streaming=true,training.max_epochs=1,training.progress=false"
INTERACTIONS = {"synthetic-1m": 1e6, "synthetic-5m": 5e6, "synthetic-25m": 25e6}
SPEED_BATCHES = 1500  # batches of 1024 rows per speed measurement
# The whole job on a cluster whose every node is this machine: the spark engine on a
# standalone master plus one 2-core worker, and DDP as 2 nodes x 1 process on loopback.
CLUSTER = "spark-cluster"
CLUSTER_MEMORY, CLUSTER_EXECUTOR_MEMORY = "8g", "6g"
TWO_NODES = "2 nodes x 1"
MEMORY_BATCHES = 3000


class TreeMemory:
    """Peak RSS of a process and its descendants, by kind, sampled from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peaks, self._stop = pid, {"python": 0, "jvm": 0, "tree": 0}, threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return {kind: peak / 2**30 for kind, peak in self.peaks.items()}

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            sizes = {"python": 0, "jvm": 0, "tree": 0}
            for pid, name in _descendants(self.pid):
                rss = _rss(pid)
                sizes["tree"] += rss
                kind = "jvm" if name == "java" else "python" if pid == self.pid else None
                if kind:
                    sizes[kind] = max(sizes[kind], rss)
            self.peaks = {kind: max(self.peaks[kind], sizes[kind]) for kind in sizes}


def _descendants(root: int) -> list[tuple[int, str]]:
    children: dict[int, list[int]] = {}
    names = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            names[int(entry.name)] = stat[stat.index("(") + 1 : stat.rindex(")")]
            children.setdefault(int(stat[stat.rindex(")") + 2 :].split()[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append((pid, names.get(pid, "")))
        todo.extend(children.get(pid, []))
    return found


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def watched_run(project: Path, params: str, pipelines: str) -> dict:
    """One `kedro run`: status (ok, or its one-line error), wall time and peak memories."""
    kedro = str(Path(sys.executable).with_name("kedro"))
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"}
    started = time.perf_counter()
    process = subprocess.Popen([kedro, "run", f"--pipelines={pipelines}", f"--params={params}"], cwd=project,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    memory = TreeMemory(process.pid)
    output = process.communicate()[0]
    peaks = memory.stop()
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    status = "ok" if process.returncode == 0 else (errors[-1] if errors else f"exit {process.returncode}")
    return {"status": status, "wall_s": round(time.perf_counter() - started, 1),
            **{f"peak_{kind}_gib": round(peak, 2) for kind, peak in peaks.items()}, "log": output}


def latest(path: Path) -> Path:
    return sorted(path.iterdir())[-1] / path.name


def size_on_disk(path: Path) -> int:
    return sum(part.stat().st_size for part in parquet_files(path))


def layout_sizes(samples: Path, scratch: Path) -> dict[str, int]:
    """The same train samples in the earlier layout (a row per positive and per negative,
    each with its own history and a label) and in the stored one, by the same pandas
    writer: on disk as the catalog writes them (snappy), and uncompressed and without
    dictionary encoding (the bytes of the values)."""
    from duet_pipeline.features.samples import samples_frame
    from duet_pipeline.features.samples import list_matrix
    from duet_pipeline.training.tensors import to_tensors

    stored = pd.read_parquet(samples, dtype_backend="pyarrow")
    rows = to_tensors(stored)
    expanded = pd.DataFrame({"user_id": rows.user.numpy(), "history": list(rows.history.numpy()),
                             "target_item": rows.target.numpy(), "label": rows.label.numpy().astype("int8")})
    stored = samples_frame(stored["user_id"].to_numpy("int64"), list_matrix(stored, "history"),
                           stored["target_item"].to_numpy("int64"), list_matrix(stored, "negatives"))
    # Each layout as its catalog entry wrote it: the earlier one with pyarrow's default row
    # groups, the stored one with 64Ki-positive row groups (conf/base/catalog.yml).
    written = {"expanded": {}, "train": {"row_group_size": 65536}}
    sizes = {}
    for name, frame in (("expanded", expanded), ("train", stored)):
        for key, options in (("bytes", written[name]),
                             ("raw_bytes", {**written[name], "compression": None, "use_dictionary": False})):
            frame.to_parquet(scratch, **options)
            sizes[f"{name}_{key}"] = scratch.stat().st_size
    return sizes


def stored_rows(samples: pd.DataFrame, in_order: bool) -> np.ndarray:
    """Every stored value of every row; rows sorted unless ``in_order``."""

    from duet_pipeline.features.samples import list_matrix

    rows = np.column_stack([samples["user_id"].to_numpy(np.int64), list_matrix(samples, "history"),
                            samples["target_item"].to_numpy(np.int64), list_matrix(samples, "negatives")])
    return rows if in_order else rows[np.lexsort(rows.T[::-1])]


def parity(project: Path, dataset: str) -> dict:
    """Both engines on ``dataset``: are the samples identical, split by split, after
    sorting (the protocol's test), and also in the order they are stored?"""
    import numpy as np

    model_input = project / "data" / "05_model_input" / dataset
    outcome = {}
    for engine in ("pandas", "spark"):
        run = watched_run(project, f"dataset={dataset},features.engine={engine}", "ingestion,feature_engineering")
        if run["status"] != "ok":
            return {k: v for k, v in run.items() if k != "log"} | {"status": f"{engine}: {run['status']}"}
        outcome[engine] = {split: pd.read_parquet(latest(model_input / f"{split}_samples.parquet"),
                                                  dtype_backend="pyarrow")
                           for split in ("train", "validation", "test")}

    def equal(in_order: bool) -> bool:
        return all(np.array_equal(stored_rows(outcome["pandas"][split], in_order),
                                  stored_rows(outcome["spark"][split], in_order)) for split in outcome["pandas"])

    rows = sum(len(frame) for frame in outcome["pandas"].values())
    return {"status": "identical" if equal(in_order=False) else "DIFFERENT",
            "train_positives": len(outcome["pandas"]["train"]), "wall_s": run["wall_s"],
            "note": f"{rows:,} stored rows in 3 splits; also in the same stored order: {equal(in_order=True)}"}


def measure(project: Path, name: str, dataset: str, engine: str, processes: int | str) -> dict:
    row = {"measurement": name, "dataset": dataset, "engine": engine, "processes": processes}
    model_input = project / "data" / "05_model_input" / dataset
    if name == "parity":
        return row | parity(project, dataset)
    if name == "data stages":
        if engine == CLUSTER:
            run = on_standalone_cluster(project, f"dataset={dataset}")
        else:
            run = watched_run(project, f"dataset={dataset},features.engine={engine}", "ingestion,feature_engineering")
        if run["status"] == "ok":
            train = latest(model_input / "train_samples.parquet")
            row |= {"train_bytes": size_on_disk(train),
                    "train_positives": sum(pq.ParquetFile(f).metadata.num_rows for f in parquet_files(train))}
    else:
        batches = MEMORY_BATCHES if name == "streaming memory" else SPEED_BATCHES
        params = f"dataset={dataset},{TRAINING},training.limit_train_batches={batches}"
        if processes == TWO_NODES:
            run = two_nodes_on_loopback(project, params)
        else:
            run = watched_run(project, f"{params},training.distributed.processes={processes}", "umn_training")
        if run["status"] == "ok":
            history = pd.read_csv(latest(project / "data" / "08_reporting" / dataset / "din" /
                                         "base_training_history.csv"))
            row["rows_per_s"] = round(float(history["train_rows_per_second"].iloc[0]))
    if run["status"] != "ok":
        print(run["log"][-3000:], file=sys.stderr)
    return row | {k: v for k, v in run.items() if k != "log"}


def on_standalone_cluster(project: Path, params: str) -> dict:
    """The data stages with the spark engine on a standalone master and one 2-core worker,
    all on this machine (conf/local/spark.yml points the run at the master)."""
    from duet_pipeline.spark_session import standalone_cluster

    local = project / "conf" / "local" / "spark.yml"
    with standalone_cluster(project.parent / "cluster", cores=2, memory=CLUSTER_MEMORY) as url:
        local.write_text(f"spark.master: {url}\nspark.executor.memory: {CLUSTER_EXECUTOR_MEMORY}\n")
        try:
            return watched_run(project, f"{params},features.engine=spark", "ingestion,feature_engineering")
        finally:
            local.unlink()


def two_nodes_on_loopback(project: Path, params: str) -> dict:
    """Base-model training as two nodes of one process each, joined on 127.0.0.1; node 0's
    run is watched (node 1 writes nothing, so both run in the same project copy)."""
    from duet_pipeline.processes import free_port

    spread = f"training.distributed.nodes=2,training.distributed.rendezvous=127.0.0.1:{free_port()}"
    kedro = str(Path(sys.executable).with_name("kedro"))
    node_1 = subprocess.Popen([kedro, "run", "--pipelines=umn_training",
                               f"--params={params},{spread},training.distributed.node_rank=1"], cwd=project,
                              env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        return watched_run(project, f"{params},{spread},training.distributed.node_rank=0", "umn_training")
    finally:
        node_1.wait(timeout=600)


def plan() -> list[tuple[str, str, str, int | str]]:
    checks = [("parity", dataset, "both", 1) for dataset in ("ml-latest-small", "ml-100k")]
    data = [("data stages", size, engine, 1) for size in SIZES for engine in ("pandas", "spark")]
    data.insert(data.index(("data stages", "synthetic-5m", "spark", 1)) + 1, ("data stages", "synthetic-5m", CLUSTER, 1))
    speed = [("training speed", "synthetic-5m", "-", processes) for processes in (1, 2, TWO_NODES)]
    return checks + data + speed + [("streaming memory", "synthetic-25m", "-", 1)]


def load_rows(path: Path = RESULTS) -> list[dict]:
    return list(csv.DictReader(path.open())) if path.exists() else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "duet-scale")
    parser.add_argument("--fresh", action="store_true", help="forget docs/results/scale.csv and start over")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    if args.fresh and RESULTS.exists():
        RESULTS.replace(PREVIOUS)
    project = args.work / "project"
    if not args.report_only:
        done = {_key(r) for r in load_rows()}
        if not project.exists():
            project_copy(project)
        for name, dataset, engine, processes in plan():
            if tuple(map(str, (name, dataset, engine, processes))) in done:
                continue
            print(f"{today()}: {name} {dataset} {engine} x{processes}", flush=True)
            row = measure(project, name, dataset, engine, processes) | {"date": today(), "machine": machine(threads=False)}
            if name == "data stages" and row["status"] == "ok" and dataset == "synthetic-1m" and engine == "pandas":
                train = latest(project / "data" / "05_model_input" / dataset / "train_samples.parquet")
                row |= layout_sizes(train, args.work / "layout.parquet")
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            new = not RESULTS.exists()
            with RESULTS.open("a", newline="") as out:
                writer = csv.DictWriter(out, FIELDS, extrasaction="ignore")
                if new:
                    writer.writeheader()
                writer.writerow(row)
            print(f"  {row['status']}: {row.get('wall_s')} s, tree peak {row.get('peak_tree_gib')} GiB", flush=True)
    report(_numeric(pd.DataFrame(load_rows())), {_key(r): r for r in load_rows(PREVIOUS)})


def _key(row: dict | pd.Series) -> tuple[str, ...]:
    """A measurement's identity: its (measurement, dataset, engine, processes), as text."""
    return tuple(str(row[name]) for name in KEY)


def _numeric(rows: pd.DataFrame) -> pd.DataFrame:
    for column in ("wall_s", "peak_python_gib", "peak_jvm_gib", "peak_tree_gib", "rows_per_s", "train_positives",
                   "train_bytes", "expanded_bytes", "train_raw_bytes", "expanded_raw_bytes"):
        if column in rows:
            rows[column] = pd.to_numeric(rows[column], errors="coerce")
    return rows


def _previous(previous: dict[tuple[str, ...], dict], row: pd.Series, figure: str) -> str:
    """The previous run's ``figure`` ("wall" or "rows", each with the tree peak) for
    ``row``'s measurement, with its date; "-" if it has none that succeeded."""
    old = previous.get(_key(row))
    if old is None or old["status"] != "ok":
        return "-"
    number = f"{_f(float(old['wall_s']), 0)} s" if figure == "wall" else f"{_f(float(old['rows_per_s']), 0, ',')} rows/s"
    return f"{number}, {_f(float(old['peak_tree_gib']), 2)} GiB ({old.get('date') or '?'})"


def report(rows: pd.DataFrame, previous: dict[tuple[str, ...], dict]) -> None:
    """The section of docs/benchmarks.md and its plot, from the CSV and the previous run's rows."""
    if rows.empty:
        return
    order = {tuple(map(str, key)): number for number, key in enumerate(plan())}
    rows = rows.assign(order=[order.get(_key(r), len(order)) for _, r in rows.iterrows()]).sort_values("order")
    data = rows[rows["measurement"] == "data stages"].copy()
    data["interactions"] = data["dataset"].map(INTERACTIONS)
    data = data.sort_values(["interactions", "engine"])
    checks = rows[rows["measurement"] == "parity"]
    lines = ["## How cost grows: Spark, streaming and DDP at synthetic-1m / 5m / 25m", "",
             "Command: `make benchmark-scale` (`python benchmarks/bench_scale.py`; per-measurement record "
             "`docs/results/scale.csv`, one run each; the previous run's rows: `docs/results/scale-previous.csv`).",
             *measured_on(rows), "",
             "Data stages (`kedro run --pipelines=ingestion,feature_engineering --params=dataset=<N>,"
             "features.engine=<engine>`), whole CLI run:", "",
             "| dataset | engine | outcome | wall (s) | Python driver peak (GiB) | JVM peak (GiB) | "
             "process tree peak (GiB) | train positives | train samples on disk (MB) | previous run: wall, tree peak |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for _, r in data.iterrows():
        outcome = "ok" if r["status"] == "ok" else r["status"].replace("|", "/")
        lines.append(f"| {r['dataset']} | {r['engine']} | {outcome} | {_f(r['wall_s'], 0)} | "
                     f"{_f(r['peak_python_gib'], 2)} | {_f(r['peak_jvm_gib'], 2)} | {_f(r['peak_tree_gib'], 2)} | "
                     f"{_f(r['train_positives'], 0, ',')} | {_f(r['train_bytes'] / 1e6, 0)} | "
                     f"{_previous(previous, r, 'wall')} |")
    expanded = data.dropna(subset=["expanded_bytes"])
    if not expanded.empty:
        r = expanded.iloc[0]
        lines += ["", f"Train samples of {r['dataset']} ({_f(r['train_positives'], 0, ',')} positives), same content, "
                  "same pandas writer, earlier layout (a row per positive and per negative, each with its history "
                  "and label) vs stored once per positive with its negatives as an array:", "",
                  "| parquet | earlier layout (MB) | one row per positive (MB) | smaller by |", "|---|---:|---:|---:|",
                  f"| as each layout's catalog entry writes it (snappy, dictionary) | {r['expanded_bytes'] / 1e6:.1f} | "
                  f"{r['train_bytes'] / 1e6:.1f} | {r['expanded_bytes'] / r['train_bytes']:.1f}x |",
                  f"| the values' bytes (no compression, no dictionary) | {r['expanded_raw_bytes'] / 1e6:.1f} | "
                  f"{r['train_raw_bytes'] / 1e6:.1f} | {r['expanded_raw_bytes'] / r['train_raw_bytes']:.1f}x |"]
    if not checks.empty:
        lines += ["", "Parity (both engines' `kedro run`, samples compared split by split after sorting):", ""]
        lines += [f"- {r['dataset']}: {r['status']} ({r['note']})" for _, r in checks.iterrows()]
    training = rows[rows["measurement"].isin(["training speed", "streaming memory"])]
    if not training.empty:
        lines += ["", "Streaming base-model training (`kedro run --pipelines=umn_training --params=..."
                  "training.streaming=true,training.limit_train_batches=<B>,training.distributed.processes=<P>`; "
                  "DIN, batch 1024, one epoch of B batches plus validation):", "",
                  "| measurement | dataset | processes | outcome | rows / s | wall (s) | process tree peak (GiB) "
                  "| previous run: rows / s, tree peak |",
                  "|---|---|---:|---|---:|---:|---:|---|"]
        for _, r in training.iterrows():
            lines.append(f"| {r['measurement']} | {r['dataset']} | {r['processes']} | {r['status']} | "
                         f"{_f(r['rows_per_s'], 0, ',')} | {_f(r['wall_s'], 0)} | {_f(r['peak_tree_gib'], 2)} | "
                         f"{_previous(previous, r, 'rows')} |")
    if previous:
        lines += ["", "One run per figure: on this 2-core machine a rerun can differ from the previous "
                  "column by tens of percent in wall time, rows/s and JVM memory (the JVM sizes its heap as it goes)."]
    lines += ["", "![wall time and peak memory of the data stages by engine and size](benchmarks/scale.png)"]
    lines += ["", *reading(data, training)]
    write_section("scale", "\n".join(lines))
    _plot(data)


def measured_on(rows: pd.DataFrame) -> list[str]:
    """Which machine measured which rows, and when (a row is compared only with its own
    previous run; rows of two machines side by side differ by the machine too)."""
    lines = []
    for name, part in rows.groupby("machine", sort=False):
        dates = sorted(part["date"].dropna())
        when = f"{dates[0]} to {dates[-1]}" if dates else "-"
        lines.append(f"Machine: {name}; measured {when} ({len(part)} of the {len(rows)} rows).")
    return lines


def reading(data: pd.DataFrame, training: pd.DataFrame) -> list[str]:
    """What the figures say, and what K machines would change, from the per-core rates."""
    ok = data[data["status"] == "ok"].set_index(["dataset", "engine"])
    if ("synthetic-25m", "spark") not in ok.index or ("synthetic-5m", "pandas") not in ok.index:
        return []
    cores = os.cpu_count() or 1
    big = ok.loc[("synthetic-25m", "spark")]
    per_core = 25e6 / big["wall_s"] / cores
    streamed = training.set_index(["measurement", "processes"])
    lines = ["Reading:", "",
             f"- Spark completes synthetic-25m in {big['wall_s']:.0f} s with a driver JVM peak of "
             f"{big['peak_jvm_gib']:.2f} GiB and {big['peak_tree_gib']:.2f} GiB for the whole tree (Python driver, JVM, "
             "Python workers); pandas refuses it in one line, before generating anything, because its measured "
             f"per-interaction cost ({ok.loc[('synthetic-5m', 'pandas')]['peak_tree_gib']:.2f} GiB at 5M) would not fit.",
             "- pandas stays the faster engine while the data fit: "
             + ", ".join(f"{d}: {ok.loc[(d, 'pandas')]['wall_s']:.0f} s vs {ok.loc[(d, 'spark')]['wall_s']:.0f} s"
                         for d in ("synthetic-1m", "synthetic-5m") if (d, "pandas") in ok.index and (d, "spark") in ok.index)
             + "; Spark pays about 25 s of JVM start-up and planning, and is never started by a pandas run.",
             f"- Per core, the spark engine turned {per_core:,.0f} interactions a second into samples at 25M. A "
             "cluster of K machines of c cores runs the same plan on K x c cores: the windows, the draw and the "
             "writes are per user and split by user, so they scale with the cores (about "
             f"{25e6 / per_core / 16 / 60:.1f} min on 16 cores, {25e6 / per_core / 64 / 60:.1f} min on 64, for 25M), "
             "while the shuffles (grouping by user, the final sort) add network traffic of about the samples' size "
             "(0.6 GB at 25M) and the driver only collects the candidate items (59k ids)."]
    lines += cluster_reading(ok, streamed)
    if ("training speed", "1") in streamed.index and ("training speed", "2") in streamed.index:
        one, two = streamed.loc[("training speed", "1")], streamed.loc[("training speed", "2")]
        lines.append(f"- DDP on this 2-core machine: {two['rows_per_s']:,.0f} rows/s with 2 processes of 1 thread vs "
                     f"{one['rows_per_s']:,.0f} with 1 process of 2 threads: on one machine the replicas only split the "
                     "same cores and add an all-reduce per step, and every replica holds its own copy of the data. "
                     "DDP pays off across machines (or GPUs), where each replica brings its own cores: K machines "
                     f"would train at up to about K x {one['rows_per_s']:,.0f} rows/s, less the all-reduce of the "
                     "gradients each step (mostly the item embeddings: 4 bytes x d x items, 1.5 MB at synthetic-5m).")
    sizes = data.dropna(subset=["expanded_bytes"])
    if not sizes.empty:
        r = sizes.iloc[0]
        values, files = r["expanded_raw_bytes"] / r["train_raw_bytes"], r["expanded_bytes"] / r["train_bytes"]
        lines.append(f"- Samples on disk: the values shrink {values:.2f}x, as in memory, but the parquet files only "
                     f"{files:.2f}x: snappy and the dictionary encoding already stored the earlier layout's repeated "
                     "histories as back-references, so what remains in both is mostly the random negatives, which do "
                     f"not compress. The 4x target is {'met' if values >= 4 else 'not met'} by the values and "
                     f"{'met' if files >= 4 else 'not met'} by the compressed files.")
    if ("streaming memory", "1") in streamed.index:
        lines.append(f"- Streaming training at synthetic-25m peaks at {streamed.loc[('streaming memory', '1')]['peak_tree_gib']:.2f} "
                     "GiB: the shuffle buffer, the compact validation (162,540 users x 100 candidates, expanded a chunk "
                     "at a time) and its metrics, not the 24.5M train positives.")
    return lines


def cluster_reading(ok: pd.DataFrame, streamed: pd.DataFrame) -> list[str]:
    """The whole job on a cluster of this one machine, each figure beside its single-machine one."""
    lines = []
    if ("synthetic-5m", CLUSTER) in ok.index and ("synthetic-5m", "spark") in ok.index:
        cluster, local = ok.loc[("synthetic-5m", CLUSTER)], ok.loc[("synthetic-5m", "spark")]
        lines.append(f"- On a standalone cluster (a master and one worker of 2 cores, started with pyspark's "
                     f"`spark-class` on this machine; `spark.master` in conf/local/spark.yml), synthetic-5m's data "
                     f"stages took {cluster['wall_s']:.0f} s against {local['wall_s']:.0f} s in local mode "
                     f"({cluster['wall_s'] / local['wall_s']:.2f}x): the overhead of a driver, an executor JVM and "
                     "their RPC when both are this machine (the tree peak leaves out the master and worker JVMs).")
    if ("training speed", TWO_NODES) in streamed.index and ("training speed", "2") in streamed.index:
        nodes, one_node = streamed.loc[("training speed", TWO_NODES)], streamed.loc[("training speed", "2")]
        lines.append(f"- DDP as 2 nodes x 1 process (two `kedro run`s joined by a c10d rendezvous on 127.0.0.1): "
                     f"{nodes['rows_per_s']:,.0f} rows/s against {one_node['rows_per_s']:,.0f} with 2 processes on "
                     f"one node ({nodes['rows_per_s'] / one_node['rows_per_s']:.2f}x), {nodes['wall_s']:.0f} s against "
                     f"{one_node['wall_s']:.0f} s of wall time. Both all-reduce through gloo over TCP on loopback; "
                     "what 2 nodes add is a second `kedro` process with its own data stages' inputs and rendezvous "
                     "store traffic. On real machines the all-reduce crosses the network instead, and each node "
                     "brings its own cores.")
    return lines


def _f(value: float, digits: int, thousands: str = "") -> str:
    return "-" if pd.isna(value) else format(value, f"{thousands}.{digits}f")


def _plot(data: pd.DataFrame) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = data[data["status"] == "ok"].copy()
    figure, (wall, memory) = plt.subplots(1, 2, figsize=(10, 4))
    for engine, part in done.groupby("engine"):
        part = part.sort_values("interactions")
        wall.plot(part["interactions"], part["wall_s"], marker="o", label=engine)
        memory.plot(part["interactions"], part["peak_tree_gib"], marker="o", label=engine)
    for axis, label in ((wall, "wall time (s)"), (memory, "peak memory, process tree (GiB)")):
        axis.set_xscale("log")
        axis.set_xlabel("interactions")
        axis.set_ylabel(label)
        axis.legend()
        axis.grid(alpha=0.3)
    figure.suptitle("Data stages on 2 cores: pandas vs Spark (local mode)")
    figure.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(PLOT, dpi=110)


if __name__ == "__main__":
    main()
