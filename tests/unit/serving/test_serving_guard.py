"""The range guard on its own: margins, missing values, unseen categories, and the vectorised
path (large batches, `pandas.Categorical`) agreeing with the per-row Python path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serving.guard import SMALL_ROWS, RangeGuard
from serving.schema import Schema

SPEC = {
    "numeric": [
        {"name": "age", "min": 20.0, "max": 60.0, "allow_missing": True},
        {"name": "income", "min": 0.0, "max": 1000.0},
        {"name": "score"},  # no training range: not guarded
    ],
    "categorical": [{"name": "home", "categories": ["OWN", "RENT"]}],
}


def _arrays(rows: list[dict], spec: dict = SPEC) -> dict:
    names = [c["name"] for c in spec["numeric"] + spec["categorical"]]
    raw = {name: [r.get(name) for r in rows] for name in names}
    return Schema.from_spec(spec).validate(raw, len(rows))


def _row(**changes) -> dict:
    return {"age": 30, "income": 500.0, "score": 1.0, "home": "OWN", **changes}


def test_numbers_inside_the_margin_pass_and_beyond_it_are_flagged():
    guard = RangeGuard.from_spec(SPEC, margin=0.25)  # age: span 40, allowed [10, 70]
    inside = [_row(age=10), _row(age=70), _row(income=-250.0), _row(income=1250.0)]
    assert guard.check(_arrays(inside), 4) is None
    flags = guard.check(_arrays([_row(age=9.99), _row(), _row(age=70.01, income=1250.5)]), 3)
    assert flags.rows == [0, 2]
    assert flags.columns == [("age",), ("age", "income")]
    assert flags.counts == {"age": 2, "income": 1}
    assert flags.unseen is None
    assert flags.by_row(3) == [("age",), (), ("age", "income")]
    assert flags.listing() == [
        {"row": 0, "columns": ("age",)},
        {"row": 2, "columns": ("age", "income")},
    ]


def test_margin_zero_is_the_training_range_itself():
    guard = RangeGuard.from_spec(SPEC, margin=0.0)
    assert guard.check(_arrays([_row(age=20), _row(age=60)]), 2) is None
    assert guard.check(_arrays([_row(age=60.5)]), 1).columns == [("age",)]
    assert RangeGuard.from_spec(SPEC, margin=1.0).check(_arrays([_row(age=100)]), 1) is None


def test_missing_values_are_never_out_of_range():
    guard = RangeGuard.from_spec(SPEC)
    assert guard.check(_arrays([_row(age=None, home=None)]), 1) is None
    rows = [_row(age=None, home=None)] * (SMALL_ROWS + 1)
    assert guard.check(_arrays(rows), len(rows)) is None


def test_unseen_categories_are_flagged_and_marked_unscorable():
    guard = RangeGuard.from_spec(SPEC)
    flags = guard.check(_arrays([_row(), _row(home="CASTLE", age=500)]), 2)
    assert flags.rows == [1] and flags.columns == [("age", "home")]
    assert flags.unseen == ("home", 1)


def test_columns_without_a_range_and_specless_models_are_not_checked():
    guard = RangeGuard.from_spec(SPEC)
    assert guard.check(_arrays([_row(score=1e300)]), 1) is None
    assert set(guard.numeric) == {"age", "income"}
    nothing = RangeGuard.from_spec(None)
    assert nothing.check({"age": np.array([1e300])}, 1) is None


def test_refusals_name_the_column_with_its_range_or_categories():
    guard = RangeGuard.from_spec(SPEC)
    arrays = _arrays([_row(), _row(income=5000.0)])
    error = guard.refusal(guard.check(arrays, 2), arrays)
    assert (error.status, error.field) == (422, "income")
    assert error.detail == {
        "column": "income",
        "row": 1,
        "value": 5000.0,
        "range": [0.0, 1000.0],
        "allowed": [-250.0, 1250.0],
    }
    assert "[0, 1000]" in error.message and "row 1" in error.message
    arrays = _arrays([_row(age=500), _row(home="CASTLE")])
    error = guard.refusal(guard.check(arrays, 2), arrays)  # the unseen category comes first
    assert (error.status, error.field) == (422, "home")
    assert error.detail["categories"] == ["OWN", "RENT"] and error.detail["row"] == 1


def _random_rows(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        rows.append(
            _row(
                age=None if i % 13 == 0 else float(rng.uniform(0, 80)),
                income=float(rng.normal(500, 500)),
                home=[None, "OWN", "RENT", "CASTLE", "HUT"][int(rng.integers(0, 5))]
                if i % 7 == 0
                else "RENT",
            )
        )
    return rows


@pytest.mark.parametrize("n", [SMALL_ROWS + 1, 300, 2000])  # object arrays, then Categorical
def test_the_vectorised_path_flags_the_same_rows_as_the_per_row_path(n):
    guard = RangeGuard.from_spec(SPEC)
    rows = _random_rows(n, seed=n)
    arrays = _arrays(rows)
    assert isinstance(arrays["home"], pd.Categorical) == (n >= 512)
    whole = guard.check(arrays, n)
    expected_rows, expected_columns = [], []
    for start in range(0, n, SMALL_ROWS):
        part = rows[start : start + SMALL_ROWS]
        flags = guard.check(_arrays(part), len(part))
        if flags is not None:
            expected_rows += [start + r for r in flags.rows]
            expected_columns += flags.columns
    assert len(expected_rows) > n // 10  # the comparison covers many flagged rows
    assert whole.rows == expected_rows and whole.columns == expected_columns
    assert sum(whole.counts.values()) == sum(len(c) for c in expected_columns)
    assert whole.unseen == (
        "home",
        next(i for i, r in enumerate(rows) if r["home"] in ("CASTLE", "HUT")),
    )


def test_many_flagged_columns_at_once_are_named_per_row():
    spec = {"numeric": [{"name": f"x{i}", "min": 0.0, "max": 1.0} for i in range(70)]}
    guard = RangeGuard.from_spec(spec)
    n = SMALL_ROWS + 6
    values = {f"x{i}": np.where(np.arange(n) % (i + 2) == 0, 9.0, 0.5) for i in range(70)}
    flags = guard.check(values, n)
    for row, columns in zip(flags.rows, flags.columns, strict=True):
        assert columns == tuple(f"x{i}" for i in range(70) if row % (i + 2) == 0)
    assert flags.rows == [r for r in range(n) if any(r % (i + 2) == 0 for i in range(70))]


def test_one_row_check_costs_microseconds():
    import timeit

    spec = {
        "numeric": [{"name": f"x{i}", "min": 0.0, "max": 1.0} for i in range(10)],
        "categorical": [{"name": f"c{i}", "categories": ["a", "b"]} for i in range(3)],
    }
    raw = {**{f"x{i}": [0.5] for i in range(10)}, **{f"c{i}": ["a"] for i in range(3)}}
    arrays = Schema.from_spec(spec).validate(raw, 1)
    guard = RangeGuard.from_spec(spec)
    best = min(timeit.repeat(lambda: guard.check(arrays, 1), number=2000, repeat=5)) / 2000
    assert best < 50e-6, f"{best * 1e6:.1f} µs per one-row check"  # ~3 µs measured, 2 cores
