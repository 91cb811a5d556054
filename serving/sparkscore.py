"""Batch scoring on a Spark cluster: `mlcycle score --engine spark`.

In: a CSV (header row) or Parquet dataset of any size (a file, a folder of part files or a glob;
local paths or any URI the cluster reads), the registered model (production version unless one
is given), a Spark master (`local[*]`, `spark://host:7077`, `yarn`, ...). Out: a Parquet dataset
(a folder of part files, replaced if present) with column `probability` (and the inputs with
`keep_inputs`), one row per input row, scored by `mlflow.pyfunc.spark_udf` with
`env_manager="local"`: the executors use the Python environment they run in (mlcycle's), no
conda or virtualenv is built. The model's pyfunc is the same numpy forward pass as the local
engine, so both give the same probabilities for the same rows.

PySpark (extra `[spark]`) and a Java runtime are needed only here; pyspark is imported when
this runs, and its absence is a `ScoringError` saying what to install. The session is quiet and
bounded: no web UI, no console progress bars, log level ERROR, a set driver memory and
shuffle-partition count.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from serving.scoring import ScoringError, resolve_version

log = logging.getLogger(__name__)

# The driver JVM's log: errors only, on stderr (Spark's default profile logs WARN and a banner);
# a failed task's stack traces not at all: its cause is in the error this module reports.
LOG4J2 = """rootLogger.level = error
logger.task.name = org.apache.spark.executor.Executor
logger.task.level = off
logger.taskset.name = org.apache.spark.scheduler.TaskSetManager
logger.taskset.level = off
logger.writer.name = org.apache.spark.sql.execution.datasources
logger.writer.level = off
logger.abort.name = org.apache.spark.util.Utils
logger.abort.level = off
rootLogger.appenderRef.stderr.ref = stderr
appender.console.type = Console
appender.console.name = stderr
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n
"""
_SPARK_OUTPUT = re.compile(r"part-.*|_SUCCESS|_committed.*|_started.*|\..*\.crc")
_CAUSE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception): ")
_JVM = ("org.", "java.", "scala.", "py4j.")
SPARK_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.session.timeZone": "UTC",
}


def _pyspark():
    try:
        import pyspark
        from pyspark.sql import SparkSession, functions, types
    except ImportError:
        raise ScoringError(
            "--engine spark needs PySpark and a Java runtime: pip install 'mlcycle[spark]' "
            "(and e.g. the Debian package openjdk-17-jre-headless)"
        ) from None
    return pyspark, SparkSession, functions, types


def session(
    master: str, driver_memory: str = "1g", shuffle_partitions: int = 8, batch_rows: int = 10_000
):
    """A SparkSession on `master`, quiet and bounded (see the module docstring).

    Args:
        master: the Spark master URL.
        driver_memory: the driver JVM's heap (`spark.driver.memory`).
        shuffle_partitions: `spark.sql.shuffle.partitions`.
        batch_rows: rows per Arrow batch handed to the model (`maxRecordsPerBatch`).

    Raises:
        ScoringError: PySpark is missing or the session cannot start (no Java, bad master).
    """
    _, spark_session, _, _ = _pyspark()
    # Local executors run this interpreter, so the UDF finds mlflow and the model's deps.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    builder = spark_session.builder.master(master).appName("mlcycle-score")
    conf = SPARK_CONF | {
        "spark.driver.memory": driver_memory,
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(batch_rows),
    }
    with tempfile.TemporaryDirectory(prefix="mlcycle-spark-") as folder:
        config = Path(folder) / "log4j2.properties"
        config.write_text(LOG4J2)
        conf["spark.driver.extraJavaOptions"] = f"-Dlog4j2.configurationFile={config.as_uri()}"
        for key, value in conf.items():
            builder = builder.config(key, value)
        try:
            spark = builder.getOrCreate()  # the JVM has read the config once this returns
        except Exception as exc:  # Java missing, master unreachable: the JVM's own message
            raise ScoringError(f"cannot start Spark on {master}: {_first_line(exc)}") from None
    spark.sparkContext.setLogLevel("ERROR")
    logging.getLogger("py4j").setLevel(logging.WARNING)  # one INFO line per connection
    return spark


def _input_columns(model_uri: str) -> list[tuple[str, object]]:
    """(name, Spark type) of each input column of the model's signature."""
    import mlflow

    try:
        signature = mlflow.models.get_model_info(model_uri).signature
    except Exception as exc:
        raise ScoringError(f"cannot read {model_uri}: {exc}") from None
    if signature is None or signature.inputs is None or not signature.inputs.has_input_names():
        raise ScoringError(f"{model_uri} has no named input signature to read columns by")
    return [(spec.name, spec.type.to_spark()) for spec in signature.inputs.inputs]


def _read(spark, path: str, columns: list[tuple[str, object]]):
    """The dataset at `path` (Parquet when its name or its part files say so, else CSV with a
    header row, read as text), the model's columns cast to the signature's types."""
    _, _, functions, _ = _pyspark()
    names = [name for name, _ in columns]
    local = Path(path)
    is_parquet = path.rstrip("/").endswith(".parquet") or (
        local.is_dir() and any(local.glob("*.parquet"))
    )
    try:
        reader = spark.read
        frame = reader.parquet(path) if is_parquet else reader.option("header", "true").csv(path)
    except Exception as exc:
        raise ScoringError(f"cannot read {path}: {_first_line(exc)}") from None
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise ScoringError(f"{path}: missing column '{missing[0]}'")
    return frame.select(
        *[functions.col(n).cast(t).alias(n) for n, t in columns],
        *[c for c in frame.columns if c not in names],
    )


def score_dataset(
    input_path: str,
    output: str,
    model_name: str | None = None,
    version: str | None = None,
    master: str = "local[*]",
    keep_inputs: bool = False,
    driver_memory: str = "1g",
    batch_rows: int = 10_000,
) -> tuple[int, float, str]:
    """Score `input_path` on Spark into the Parquet dataset `output`.

    Args:
        input_path: CSV or Parquet file, folder or glob.
        output: Parquet folder to write (replaced).
        model_name: registered model (default from settings).
        version: version (default: production).
        master: Spark master URL.
        keep_inputs: also write the input columns.
        driver_memory: the driver JVM's heap.
        batch_rows: rows per Arrow batch handed to the model.

    Returns:
        (rows scored, seconds, "name/version").

    Raises:
        ScoringError: for anything the user can fix.
    """
    _pyspark()  # before the registry: say what to install first
    check_paths(input_path, output)
    name, version, _ = resolve_version(model_name, version)
    model_uri = f"models:/{name}/{version}"
    columns = _input_columns(model_uri)
    started = time.perf_counter()
    spark = session(master, driver_memory, batch_rows=batch_rows)
    try:
        return _run(spark, input_path, output, model_uri, columns, keep_inputs, started)
    finally:
        spark.stop()


def check_paths(input_path: str, output: str) -> None:
    """Refuse what would lose data before Spark's overwrite deletes `output`: an input that is
    not there, an output that is or holds the input or lies inside it, an existing folder
    that is not a Parquet output (local paths; URIs are the cluster's to check).

    Raises:
        ScoringError: naming the path.
    """
    if "://" in input_path:
        return
    inputs = [Path(p).resolve() for p in glob.glob(input_path)]
    if not inputs:
        raise ScoringError(f"no such file: {input_path}")
    if "://" in output:
        return
    out = Path(output).resolve()
    for path in inputs:
        if path == out or out in path.parents or path in out.parents:
            raise ScoringError(f"output {output} overlaps the input {path}: choose another")
    if out.is_dir():
        other = [p.name for p in out.iterdir() if not _SPARK_OUTPUT.fullmatch(p.name)]
        if other:
            raise ScoringError(
                f"output {output} is a folder with other files ({other[0]}, ...): "
                "give a new path or an earlier Parquet output"
            )


def _run(spark, input_path, output, model_uri, columns, keep_inputs, started):
    import mlflow

    _, _, functions, _ = _pyspark()
    frame = _read(spark, input_path, columns)
    try:
        udf = mlflow.pyfunc.spark_udf(spark, model_uri, result_type="double", env_manager="local")
    except Exception as exc:
        raise ScoringError(f"cannot load {model_uri} on Spark: {_first_line(exc)}") from None
    names = [n for n, _ in columns]
    scored = frame.withColumn("probability", udf(functions.struct(*names)))
    if not keep_inputs:
        scored = scored.select("probability")
    try:
        scored.write.mode("overwrite").parquet(output)
        rows = spark.read.parquet(output).count()
    except Exception as exc:
        raise ScoringError(f"scoring failed: {_first_line(exc)}") from None
    label = model_uri.removeprefix("models:/")
    return rows, time.perf_counter() - started, label


def _first_line(exc: Exception) -> str:
    """The cause in a (often JVM-sized) Spark error: the last `SomeError: message` line of a
    Python worker's traceback (e.g. the model's `InputError`), else the first line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    causes = [line for line in lines if _CAUSE.match(line) and not line.startswith(_JVM)]
    if causes:
        return causes[-1][:500]
    return lines[0][:500] if lines else exc.__class__.__name__
