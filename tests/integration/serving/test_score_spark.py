"""`mlcycle score --engine spark` on a real local Spark (`local[2]`) against the trained store.

In: the session's trained store, synthetic rows (with missing values and the bundled data's
categories) as CSV and as Parquet. Out: pass/fail of
- the Spark engine giving, row for row, the local engine's probabilities on the same CSV, one
  output row per input row, and the Parquet input (a given `--version`, `--keep-inputs`)
  giving the same with the inputs beside them;
- a clear CLI error, not a traceback, where PySpark is not installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers import sample_csv

pytestmark = pytest.mark.slow
pytest.importorskip("pyspark", reason="the `spark` extra is not installed")


def _score(store, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    base = dict(os.environ, MLFLOW_TRACKING_URI=store.tracking_uri)
    return subprocess.run([sys.executable, "-m", "mlcycle", "score", *args],
                          env=base | (env or {}), capture_output=True, text=True,
                          timeout=600)  # fmt: skip


def test_spark_engine_matches_the_local_engine(trained_store, tmp_path: Path) -> None:
    csv = tmp_path / "in.csv"
    csv.write_text(sample_csv(3_000, seed=11))
    local = _score(trained_store, str(csv), "-o", str(tmp_path / "local.parquet"))
    assert local.returncode == 0, local.stderr[-1500:]
    spark = _score(trained_store, str(csv), "-o", str(tmp_path / "spark.parquet"),
                   "--engine", "spark", "--master", "local[2]")  # fmt: skip
    assert spark.returncode == 0, spark.stderr[-3000:]
    assert "scored 3,000 rows" in spark.stdout
    expected = pd.read_parquet(tmp_path / "local.parquet")["probability"].to_numpy()
    got = pd.read_parquet(tmp_path / "spark.parquet")["probability"].to_numpy()
    assert len(got) == len(expected) == 3_000
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)  # same rows, same order

    frame = pd.read_csv(csv)
    frame.to_parquet(tmp_path / "in.parquet")
    out = tmp_path / "spark-kept.parquet"
    kept = _score(trained_store, str(tmp_path / "in.parquet"), "-o", str(out), "--engine",
                  "spark", "--master", "local[2]", "--version", trained_store.version,
                  "--keep-inputs")  # fmt: skip
    assert kept.returncode == 0, kept.stderr[-3000:]
    both = pd.read_parquet(out)
    assert len(both) == 3_000 and "probability" in both.columns
    pd.testing.assert_frame_equal(both[list(frame.columns)], frame, check_dtype=False)
    np.testing.assert_allclose(both["probability"], expected, rtol=0, atol=1e-12)


def test_without_pyspark_the_cli_says_what_to_install(trained_store, tmp_path: Path) -> None:
    blocker = tmp_path / "no-spark"
    (blocker / "pyspark").mkdir(parents=True)
    (blocker / "pyspark" / "__init__.py").write_text("raise ImportError('no pyspark here')\n")
    csv = tmp_path / "in.csv"
    csv.write_text(sample_csv(10, seed=1))
    path = os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")])
    out = _score(trained_store, str(csv), "-o", str(tmp_path / "o.parquet"), "--engine", "spark",
                 env={"PYTHONPATH": path})  # fmt: skip
    assert out.returncode == 2, out.stderr[-1500:]
    assert "pip install 'mlcycle[spark]'" in out.stderr and "Traceback" not in out.stderr
