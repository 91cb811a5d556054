"""The generator's concept knob: labels follow a new rule, the inputs stay exactly the same."""

from __future__ import annotations

import pandas as pd
import pytest

from mlcycle.core.synthetic import TARGET, generate


def test_concept_zero_is_the_table_of_before():
    # Figures of generate(2000, seed=3) and generate(1500, seed=8, drift=0.5) before the knob
    # existed: fixtures and tests elsewhere rely on these tables staying the same.
    df = generate(2000, seed=3, concept=0.0)
    assert int(df[TARGET].sum()) == 257
    assert float(df["income"].sum()) == 131_668_100.0
    assert int(df["num_late_payments_12m"].sum()) == 661
    assert df.iloc[0][["age", "loan_purpose", TARGET]].tolist() == [66, "medical", 0]
    drifted = generate(1500, seed=8, drift=0.5, concept=0.0)
    assert int(drifted[TARGET].sum()) == 574
    assert float(drifted["loan_amount"].sum()) == 21_607_800.0
    pd.testing.assert_frame_equal(generate(2000, seed=3), df)


@pytest.mark.parametrize("drift", [0.0, 0.6])
def test_concept_changes_the_labels_and_nothing_else(drift):
    before = generate(5000, seed=11, drift=drift)
    after = generate(5000, seed=11, drift=drift, concept=1.0)
    pd.testing.assert_frame_equal(before.drop(columns=TARGET), after.drop(columns=TARGET))
    assert (before[TARGET] != after[TARGET]).mean() > 0.15


def _rate(df: pd.DataFrame, rows) -> float:
    return float(df.loc[rows, TARGET].mean())


def test_the_shifted_rule_flips_late_payments_and_car_loans():
    old, new = generate(20_000, seed=5), generate(20_000, seed=5, concept=1.0)
    late = old["num_late_payments_12m"] > 0
    car = old["loan_purpose"] == "car"
    low_income = old["income"] < 45_000
    # Today: a late payment and a non-car loan raise the risk; under the new rule they lower it.
    assert _rate(old, late) > _rate(old, ~late) and _rate(new, late) < _rate(new, ~late)
    assert _rate(old, car) < _rate(old, ~car) and _rate(new, car) > _rate(new, ~car)
    assert _rate(new, low_income) > _rate(new, ~low_income) + 0.3


def test_half_a_shift_lies_between():
    rates = [generate(20_000, seed=5, concept=c)[TARGET].mean() for c in (0.0, 0.5, 1.0)]
    assert rates[0] < rates[1] < rates[2]


@pytest.mark.parametrize("concept", [-0.1, 1.5])
def test_concept_outside_zero_to_one_is_refused(concept):
    with pytest.raises(ValueError, match="concept must be between 0 and 1"):
        generate(10, concept=concept)
