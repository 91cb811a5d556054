"""The lifecycle benchmark's pure pieces: the fit clock, the ratios, the verdicts, the tables."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import lifecycle
from benchmarks.lifecycle import CbpeRow, Lap, ShiftResult, Trained
from pipelines import train


def _fake_fit(x_train, y_train, x_val, y_val, **kwargs):
    return train.Fitted(layers=[], history={}, best_epoch=4, epochs_run=9)


def test_the_fit_clock_times_each_fit_with_its_rows_and_epochs_then_restores_it(monkeypatch):
    monkeypatch.setattr(train, "fit_network", _fake_fit)
    x, y = np.zeros((30, 2)), np.zeros(30)
    with lifecycle.fit_clock() as laps:
        assert train.fit_network is not _fake_fit  # looked up on the module, as pipelines does
        train.fit_network(x, y, x[:7], y[:7], epochs=3)
    assert train.fit_network is _fake_fit
    assert len(laps) == 1
    lap = laps[0]
    assert (lap.epochs_run, lap.best_epoch, lap.train_rows, lap.val_rows) == (9, 5, 30, 7)
    assert lap.wall_s >= 0 and lap.cpu_s >= 0


def test_the_fit_clock_restores_the_fit_when_the_block_fails(monkeypatch):
    monkeypatch.setattr(train, "fit_network", _fake_fit)
    with pytest.raises(RuntimeError), lifecycle.fit_clock():
        raise RuntimeError("training failed")
    assert train.fit_network is _fake_fit


def _trained(label: str, wall_s: float, auc: float, call_s: float = 10.0) -> Trained:
    return Trained(label, "1", call_s, Lap(wall_s, 2 * wall_s, 12, 7, 4_000, 700), auc)


def _shift(ft_auc=0.72, ft_s=3.0, scratch_auc=0.80, scratch_s=20.0, before=0.56) -> ShiftResult:
    return ShiftResult(
        "concept shift",
        0.0,
        1.0,
        _trained("v1", 60.0, before),
        _trained("fine-tuned", ft_s, ft_auc, call_s=8.0),
        _trained("scratch", scratch_s, scratch_auc, call_s=32.0),
    )


def test_ratios_compare_fine_tuning_with_training_from_scratch_on_the_same_rows():
    q = lifecycle.ratios(_shift())
    assert q["recovered"] == pytest.approx(0.72 / 0.80)
    assert q["fit_time"] == pytest.approx(3.0 / 20.0)
    assert q["fit_cpu"] == pytest.approx(6.0 / 40.0)
    assert q["call_time"] == pytest.approx(8.0 / 32.0)
    assert q["gap_closed"] == pytest.approx((0.72 - 0.56) / (0.80 - 0.56))


def test_nothing_won_back_is_undefined_when_v1_was_not_worse_than_from_scratch():
    assert np.isnan(lifecycle.ratios(_shift(before=0.85))["gap_closed"])


@pytest.mark.parametrize(
    ("value", "target", "at_least", "met"),
    [
        (0.90, 0.90, True, True),
        (0.899, 0.90, True, False),
        (0.30, 0.30, False, True),
        (0.31, 0.30, False, False),
        (0.72 / 0.80, 0.90, True, True),  # 0.8999999999999999
    ],
)
def test_a_verdict_says_met_or_missed_at_the_target_boundary(value, target, at_least, met):
    text = lifecycle.verdict(value, target, at_least)
    assert text.startswith("met") == met
    assert ("**missed**" in text) == (not met)
    assert (">=" if at_least else "<=") in text


def test_the_finetune_table_lists_every_version_and_both_verdicts():
    slow = _shift(ft_auc=0.79, ft_s=10.0)  # recovered, but too slow
    text = lifecycle.finetune_table([slow])
    assert text.count("| concept shift |") == 4  # three versions, one ratio row
    ratio_row = text.splitlines()[-1]
    assert "0.988: met (>= 0.90)" in ratio_row
    assert "| 0.50: **missed** (<= 0.30) | 0.50 | 1.00 | 0.25 | 96% |" in ratio_row
    assert ratio_row.endswith("| - |")  # no larger from-scratch anchor


def test_cbpe_errors_are_judged_under_covariate_shift_only():
    covariate = CbpeRow("covariate shift 0.3", 0.3, 0.0, 0.79, 0.835, 0.80)
    concept = CbpeRow("concept shift 1.0", 0.0, 1.0, 0.52, 0.85, 0.80)
    assert covariate.error == pytest.approx(0.045)
    assert covariate.error_holdout == pytest.approx(0.01)
    assert covariate.target_applies and not concept.target_applies
    lines = lifecycle.cbpe_table([covariate, concept]).splitlines()
    assert "+0.0450 | **missed** (<= 0.03)" in lines[2]
    assert "none (concept drift)" in lines[3] and "missed" not in lines[3]


def test_tuned_options_are_read_as_typed_finetune_arguments():
    assert lifecycle.parse_overrides(" learning_rate=0.003, patience=2,epochs=8 ") == {
        "learning_rate": 0.003,
        "patience": 2,
        "epochs": 8,
    }
    assert lifecycle.parse_overrides("") == {}
    assert isinstance(lifecycle.parse_overrides("patience=2")["patience"], int)


@pytest.mark.parametrize("text", ["seed=1", "patience", "patience=two", "model_name=x"])
def test_a_tuned_option_outside_the_training_options_or_not_a_number_is_refused(text):
    with pytest.raises(ValueError):
        lifecycle.parse_overrides(text)


def test_the_default_tuned_options_parse():
    assert set(lifecycle.parse_overrides(lifecycle.TUNED)) <= set(lifecycle.TUNABLE)


def test_a_tuned_version_gets_its_own_ratio_row_against_the_same_from_scratch_version():
    r = _shift()
    tuned = ShiftResult(**{**r.__dict__, "tuned": _trained("tuned", 4.0, 0.79)})
    rows = lifecycle.finetune_table([tuned], "patience=2").splitlines()
    assert "| concept shift | defaults | 0.900: met (>= 0.90)" in rows[-2]
    assert "| concept shift | tuned: `patience=2` | 0.988: met (>= 0.90) | 0.20: met" in rows[-1]
    assert lifecycle.ratios(tuned, tuned.tuned)["epochs"] == pytest.approx(1.0)


def test_the_summaries_say_which_targets_were_met_from_the_figures():
    text = lifecycle.finetune_summary([_shift()])
    assert "90.0% of the from-scratch AUC" in text and "target met, in 15%" in text
    rows = [
        CbpeRow("no shift", 0.0, 0.0, 0.82, 0.83, 0.84),
        CbpeRow("covariate shift 0.6", 0.6, 0.0, 0.83, 0.875, 0.85),
        CbpeRow("concept shift 1.0", 0.0, 1.0, 0.55, 0.84, 0.84),
    ]
    cbpe = lifecycle.cbpe_summary(rows)
    assert "largest error is 0.0450 (covariate shift 0.6), target missed" in cbpe
    assert "realised AUC is 0.5500 while the estimate says 0.8400" in cbpe


def test_the_command_line_in_the_docs_reproduces_the_run():
    from argparse import Namespace

    args = Namespace(
        quick=False, rows=20_000, labelled=6_000, holdout=5_000, window=5_000, seed=42,
        no_large=True, tuned_text="patience=2",
    )  # fmt: skip
    assert lifecycle.command(args) == (
        "python -m benchmarks.lifecycle --rows 20000 --labelled 6000 --holdout 5000 "
        "--window 5000 --seed 42 --no-large --tuned 'patience=2'"
    )
    assert lifecycle.command(Namespace(**{**vars(args), "quick": True})).endswith("--quick")
