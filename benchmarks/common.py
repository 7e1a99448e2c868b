"""Helpers shared by the benchmark scripts: machine description, result sections, kedro runs."""
from __future__ import annotations

import datetime as dt
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from duet_pipeline.experiments.report import write_section as replace_section

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_DOC = REPO_ROOT / "docs" / "benchmarks.md"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def data_dir() -> Path:
    """Where real MovieLens copies are: $DUET_DATA_DIR, else ../shared/data."""
    return Path(os.environ.get("DUET_DATA_DIR") or SHARED_DATA)


def machine(threads: bool = True) -> str:
    """CPU, memory, Python and torch; with this process's torch thread count if ``threads``."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB RAM, Python {platform.python_version()}, "
        f"torch {torch.__version__}" + (f" ({torch.get_num_threads()} threads)" if threads else "")
    )


def today() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def write_section(name: str, markdown: str, doc: Path = BENCHMARKS_DOC) -> None:
    """Replace (or append) the section between this benchmark's markers in ``doc``."""
    replace_section(doc, name, markdown, header="# Benchmarks\n")


def previous_figures(section: str, doc: Path = BENCHMARKS_DOC) -> dict[str, str]:
    """measure -> its "this run" figure in ``section``'s table (columns: measure | target |
    this run | previous run), so a new run can show the previous figures beside its own."""
    text = doc.read_text() if doc.exists() else ""
    match = re.search(rf"<!-- BEGIN {section} -->(.*?)<!-- END {section} -->", text, re.S)
    figures = {}
    for line in (match.group(1) if match else "").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] not in ("measure", "---"):
            figures[cells[0]] = cells[2]
    return figures


def project_copy(root: Path) -> Path:
    """conf/, src/ and pyproject.toml in ``root``, with empty data layers."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    shutil.copy(REPO_ROOT / "pyproject.toml", root)
    shutil.copytree(REPO_ROOT / "conf", root / "conf")
    shutil.copytree(REPO_ROOT / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    for layer in (REPO_ROOT / "data").iterdir():
        if layer.is_dir():
            (root / "data" / layer.name).mkdir(parents=True)
    return root


@dataclass
class RunMeasurement:
    wall_seconds: float
    peak_rss_mib: float
    log: str


def timed_kedro_run(project: Path, args: list[str], env: dict[str, str] | None = None) -> RunMeasurement:
    """Run the kedro CLI in ``project``; wall time and the process's peak resident memory."""
    kedro = str(Path(sys.executable).with_name("kedro"))
    full_env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", **(env or {})}
    started = time.perf_counter()
    process = subprocess.Popen(
        [kedro, *args], cwd=project, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"kedro {' '.join(args)} failed:\n{output[-5000:]}")
    return RunMeasurement(wall, usage.ru_maxrss / 1024, output)
