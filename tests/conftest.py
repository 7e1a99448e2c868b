"""Shared fixtures: a throw-away copy of the Kedro project with tiny generated data."""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# Under pytest-xdist every worker and the runs it starts get an equal share of the cores,
# set before torch is imported: two workers each running two spinning OpenMP threads on two
# cores slow each other several times over. A thread count the user set stays.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _cores // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

import mlflow  # noqa: E402 - after the thread count above
import nbformat  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from nbclient import NotebookClient  # noqa: E402

from duet_pipeline.data.synthetic import generate_ratings, write_ratings  # noqa: E402
from duet_pipeline.methods.finetune import FinetuneConfig  # noqa: E402
from duet_pipeline.project import load_parameters  # noqa: E402
from duet_pipeline.training.loop import TrainingConfig  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
KEDRO = str(Path(sys.executable).with_name("kedro"))
# conf/base's parameters: the one place defaults live.
PARAMETERS = load_parameters(REPO_ROOT)


def backbone_options(name: str, **overrides) -> dict:
    """The backbone's options from conf/base/parameters_backbones.yml, some overridden."""
    return {**PARAMETERS["backbones"][name], **overrides}


def training_config(**overrides) -> TrainingConfig:
    """The shipped training parameters with ``overrides``; ``distributed`` overrides only
    the keys it names."""
    if "distributed" in overrides:
        overrides["distributed"] = {**PARAMETERS["training"]["distributed"], **overrides["distributed"]}
    return TrainingConfig.from_params({**PARAMETERS["training"], **overrides})


def finetune_config(**overrides) -> FinetuneConfig:
    return FinetuneConfig(**{**PARAMETERS["personalization"]["finetune"], **overrides})


@pytest.fixture
def light_torch():
    """One thread and a fixed seed for a tiny-tensor test; the thread count is restored.

    Tiny models gain nothing from a second thread, and a single thread keeps tests
    from spinning against other PyTorch processes on a two-core machine.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """The project's conf/, src/ and pyproject.toml in a temp dir, data layers empty.

    Runs there write their versioned datasets and mlflow.db into tmp_path, never
    into the developer's checkout.
    """
    return make_project_copy(tmp_path / "project")


def make_project_copy(root: Path) -> Path:
    """Copy conf/, src/ and pyproject.toml into ``root`` with empty data layers, and an
    empty MLflow store (its tables made once per test process: 1.7 s a store otherwise)."""
    root.mkdir(parents=True)
    shutil.copy(REPO_ROOT / "pyproject.toml", root)
    shutil.copytree(REPO_ROOT / "conf", root / "conf")
    shutil.copytree(REPO_ROOT / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    for layer in sorted(p.name for p in (REPO_ROOT / "data").iterdir() if p.is_dir()):
        (root / "data" / layer).mkdir(parents=True)
    (root / "mlflow.db").write_bytes(empty_mlflow_store())
    return root


@functools.cache
def empty_mlflow_store() -> bytes:
    """The bytes of a SQLite MLflow store with its tables and no experiment or run."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "mlflow.db"
        mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()
        return path.read_bytes()


@pytest.fixture
def tiny_ml100k(project_copy: Path) -> Path:
    """A small generated ratings file in the ml-100k layout inside ``project_copy``."""
    ratings = generate_ratings(num_users=40, num_items=300, num_rows=1_200, seed=3)
    write_ratings(ratings, project_copy / "data" / "01_raw", "ml-100k", PARAMETERS["datasets"])
    return project_copy


TOY_METHOD = REPO_ROOT / "tests" / "toy_methods" / "popularity.py"
TOY_METHOD_BLOCK = """  popularity:                   # tests/toy_methods/popularity.py
    smoothing: 1.0
"""


def add_toy_method(project: Path) -> None:
    """Register the "popularity" method in a project copy exactly as the README's
    "Add a method" says: its module into methods/, its block into the parameters."""
    shutil.copy(TOY_METHOD, project / "src" / "duet_pipeline" / "methods" / "popularity.py")
    parameters = project / "conf" / "base" / "parameters_personalization.yml"
    text = parameters.read_text()
    assert text.rstrip().splitlines()[-1].startswith("    "), "personalization must be the file's last block"
    parameters.write_text(text + TOY_METHOD_BLOCK)


def project_env(project: Path) -> dict[str, str]:
    """The environment of a command run in ``project``: its own src/ is the package."""
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "PYTHONPATH": str(project / "src")}
    env.pop("DUET_DATA_DIR", None)
    return env


def latest_version(path: Path) -> Path:
    """The newest version file of a versioned dataset folder."""
    versions = sorted(path.iterdir())
    assert versions, f"no versions under {path}"
    return versions[-1] / path.name


def execute_compare_runs(tracking_uri: str, monkeypatch: pytest.MonkeyPatch) -> tuple[list[dict], str]:
    """Execute notebooks/compare_runs.ipynb on ``tracking_uri``: its outputs and their text."""
    monkeypatch.setenv("DUET_TRACKING_URI", tracking_uri)
    notebook = nbformat.read(REPO_ROOT / "notebooks" / "compare_runs.ipynb", as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO_ROOT / "notebooks")}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    return outputs, "\n".join(o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in outputs)


def kedro(project: Path, *args: str, check: bool = True, env: dict[str, str] | None = None
          ) -> subprocess.CompletedProcess:
    """Run the ``kedro`` CLI in ``project`` as a user would (``env``: extra variables)."""
    result = subprocess.run(
        [KEDRO, *args], cwd=project, env={**project_env(project), **(env or {})}, capture_output=True, text=True,
        timeout=600,
    )
    if check and result.returncode != 0:
        log = project / "logs" / "kedro.log"  # where the CLI writes a failed run's traceback
        raise AssertionError(
            f"kedro {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
            f"\n{log.read_text()[-4000:] if log.exists() else ''}"
        )
    return result


def generated_heads(model, history):
    """A DUET model's generated heads for ``history`` (B, L), from its message."""
    from duet_pipeline.models.layers import HEAD_TENSORS, HeadWeights

    sent = model.message(history)
    return HeadWeights(*(sent[name] for name in HEAD_TENSORS))


def row_user_vectors(model, history_emb, mask, target):
    """The backbone's user vector of each row (one history per row; ``target`` ids or None)."""
    import torch

    target_emb = None if target is None else model.items(target)
    return model.user_vectors(history_emb, mask, torch.arange(len(history_emb)), target_emb)
