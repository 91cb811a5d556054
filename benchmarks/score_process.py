"""One `mlcycle score` run, measured from inside the fresh process that runs it.

In: an input CSV and an output path (the model from `MLFLOW_TRACKING_URI`). Out: one JSON line
on stdout: rows, the scoring seconds `serving.scoring.score_file` reports (model load
excluded), the wall seconds of the call and this process's peak RSS in MB. Started by
`benchmarks.scoring` as `python -m benchmarks.score_process IN OUT`; it imports nothing else,
so the peak is that of scoring alone.
"""

import argparse
import json
import time
from pathlib import Path

from benchmarks.harness.processes import own_peak_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path, help="input CSV of the model's raw columns")
    parser.add_argument("out", type=Path, help="output file (`mlcycle score -o`)")
    args = parser.parse_args()
    from serving.scoring import score_file

    started = time.perf_counter()
    rows, seconds, _ = score_file(args.csv, args.out)
    wall = time.perf_counter() - started
    print(json.dumps({"rows": rows, "seconds": seconds, "wall": wall, "peak_mb": own_peak_mb()}))


if __name__ == "__main__":
    main()
