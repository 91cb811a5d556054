"""`serving.sparkscore.check_paths`: what `--engine spark` refuses before Spark's overwrite
could delete data, and the cause it quotes from a Spark error (no Spark needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.scoring import ScoringError
from serving.sparkscore import _first_line, check_paths


def test_a_new_output_or_an_earlier_spark_output_is_fine(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("a\n1\n")
    check_paths(str(tmp_path / "in.csv"), str(tmp_path / "new.parquet"))
    earlier = tmp_path / "out.parquet"
    earlier.mkdir()
    for name in ("_SUCCESS", "part-00000-x.snappy.parquet", ".part-00000-x.snappy.parquet.crc"):
        (earlier / name).write_text("")
    check_paths(str(tmp_path / "in.csv"), str(earlier))
    check_paths(str(tmp_path / "*.csv"), "s3a://bucket/out")


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("data", "overlaps the input"),  # the input folder itself
        ("data/in.csv", "overlaps the input"),
        ("data/sub", "overlaps the input"),  # inside the input
        (".", "overlaps the input"),  # holds the input
        ("home", "a folder with other files (notes.txt"),
    ],
)
def test_outputs_that_would_delete_data_are_refused(
    tmp_path: Path, output: str, message: str
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "in.csv").write_text("a\n1\n")
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "notes.txt").write_text("keep me")
    with pytest.raises(ScoringError, match=message.replace("(", r"\(")):
        check_paths(str(tmp_path / "data"), str(tmp_path / output))
    assert (tmp_path / "home" / "notes.txt").read_text() == "keep me"


def test_a_missing_input_is_named(tmp_path: Path) -> None:
    with pytest.raises(ScoringError, match="no such file"):
        check_paths(str(tmp_path / "nope*.csv"), str(tmp_path / "o"))


def test_the_python_cause_of_a_spark_error_is_quoted() -> None:
    jvm = Exception(
        "An exception was thrown from the Python worker. Please see the stack trace below.\n"
        'Traceback (most recent call last):\n  File "x.py", line 1, in predict\n'
        "ValueError: inner\ncode_model_3a43.InputError: column 'home_ownership': unknown category\n"
        "\tat org.apache.spark.api.python.BasePythonRunner.handlePythonException(x.scala:1)\n"
        "JVM stacktrace:\norg.apache.spark.SparkException: Job aborted due to stage failure"
    )
    cause = "code_model_3a43.InputError: column 'home_ownership': unknown category"
    assert _first_line(jvm) == cause
    assert _first_line(Exception("\n  [PATH_NOT_FOUND] no such path\nmore")) == (
        "[PATH_NOT_FOUND] no such path"
    )
