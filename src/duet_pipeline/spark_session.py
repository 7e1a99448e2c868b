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
import subprocess
import sys
from pathlib import Path
from typing import Any

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
