"""The Spark session of ``features.engine: spark``: what it needs, checked first.

pyspark is an optional dependency (``pip install -e ".[spark]"``) and Spark 4 needs a
Java 17 or 21 runtime. Both are checked before the session starts, so a machine
without them fails in one line that says what to install, and the default pandas
engine never imports any of it.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from duet_pipeline.processes import free_port

SUPPORTED_JAVA = (17, 21)
INSTALL_JAVA = "install Java 17 or 21 (Debian/Ubuntu: apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
INSTALL_PYSPARK = 'install it with the project\'s spark extra: pip install -e ".[spark]"'


class SparkUnavailable(RuntimeError):
    """The spark engine was chosen but cannot start here; the message says what to install."""


def java_executable() -> str | None:
    """``$JAVA_HOME/bin/java`` if set, else ``java`` on the PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def java_major_version(java: str) -> int | None:
    """The major version ``java -version`` reports (17 for "17.0.15", 8 for "1.8.0")."""
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if not found:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


def check_spark_available() -> None:
    """Raise :class:`SparkUnavailable` unless pyspark imports and a supported Java runs."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise SparkUnavailable(f"features.engine=spark needs pyspark, which is not installed: {INSTALL_PYSPARK}") from None
    java = java_executable()
    if java is None:
        raise SparkUnavailable(f"features.engine=spark needs Java, and none was found: {INSTALL_JAVA}")
    major = java_major_version(java)
    if major not in SUPPORTED_JAVA:
        raise SparkUnavailable(f"features.engine=spark needs Java 17 or 21, and {java} is Java {major}: {INSTALL_JAVA}")


def start_spark(conf: dict[str, Any]) -> Any:
    """The Spark session configured by ``conf`` (conf/base/spark.yml), after the checks."""
    check_spark_available()
    # Spark's Python workers run this interpreter, which has duet_pipeline installed.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    spark_conf = SparkConf().setAll([(key, str(value)) for key, value in conf.items()])
    session = SparkSession.builder.config(conf=spark_conf).getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session


@contextmanager
def standalone_cluster(work_dir: Path, cores: int = 2, memory: str = "2g",
                       env: dict[str, str] | None = None) -> Iterator[str]:
    """A Spark standalone master and one worker with ``cores`` and ``memory`` on 127.0.0.1,
    started with pyspark's own ``spark-class`` for as long as the block runs; yields the
    master URL (``spark.master`` in conf/local/spark.yml). ``env``: the worker's extra
    environment (its executors' Python workers must import duet_pipeline). Their logs and
    the executors' folders go to ``work_dir``."""
    check_spark_available()
    from pyspark.find_spark_home import _find_spark_home

    spark_class = str(Path(_find_spark_home()) / "bin" / "spark-class")
    work_dir.mkdir(parents=True, exist_ok=True)
    port, master_ui, worker_ui = (free_port() for _ in range(3))
    url = f"spark://127.0.0.1:{port}"
    started = []
    try:
        started.append(_daemon([spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                "--port", str(port), "--webui-port", str(master_ui)], work_dir / "master.log", {}))
        _wait_for(work_dir / "master.log", "I have been elected leader", started[-1])
        started.append(_daemon([spark_class, "org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1",
                                "--cores", str(cores), "--memory", memory, "--webui-port", str(worker_ui),
                                "--work-dir", str(work_dir / "worker")], work_dir / "worker.log", env or {}))
        _wait_for(work_dir / "worker.log", "Successfully registered with master", started[-1])
        yield url
    finally:
        for process in reversed(started):
            _stop(process)


def _daemon(command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    """A JVM in its own process group (spark-class execs java; its children go with it)."""
    with log.open("w") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, **env})


def _wait_for(log: Path, line: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while line not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SparkUnavailable(f"the standalone cluster did not start ({log}): {log.read_text()[-500:]}")
        time.sleep(0.2)


def _stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass
