"""Live performance: realised metrics agree with scikit-learn, the CBPE estimate tracks the
realised AUC when the probabilities are calibrated (also under covariate shift) and does not
under concept drift (its documented failure), windows and alerts."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.calibration import calibration_curve
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.metrics import log_loss as sk_log_loss
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlcycle.core.synthetic import TARGET, generate
from monitoring.performance import (
    Calibrator,
    evaluate,
    fit_calibrator,
    live_auc_alert,
    pair_auc,
    reliability_curve,
    window_metrics,
)

NUMERIC = [
    "age",
    "income",
    "employment_years",
    "loan_amount",
    "credit_utilization",
    "debt_to_income",
    "num_late_payments_12m",
    "num_open_accounts",
    "credit_history_years",
]


def test_realised_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(5_000)
    y = (rng.random(5_000) < p).astype(float)
    tied = np.round(p, 1)  # many ties: AUC counts them one half, as sklearn does
    got = window_metrics(0, 1, p, y)
    assert got.auc == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert pair_auc(tied, y) == pytest.approx(roc_auc_score(y, tied), abs=1e-12)
    assert got.log_loss == pytest.approx(sk_log_loss(y, p), rel=1e-9)
    assert got.brier == pytest.approx(brier_score_loss(y, p), rel=1e-12)
    assert got.positive_rate == pytest.approx(y.mean())
    prob_true, prob_pred = calibration_curve(y, p, n_bins=10, strategy="uniform")
    bins = [b for b in got.reliability if b.count]
    np.testing.assert_allclose([b.observed_rate for b in bins], prob_true, rtol=1e-12)
    np.testing.assert_allclose([b.mean_predicted for b in bins], prob_pred, rtol=1e-12)
    assert sum(b.count for b in got.reliability) == 5_000


@settings(max_examples=100, derandomize=True, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([0.0, 0.2, 0.5, 0.7, 1.0]), st.floats(0, 1)),
        min_size=2,
        max_size=30,
    )
)
def test_pair_auc_is_the_pairwise_definition(pairs) -> None:
    s = np.array([a for a, _ in pairs])
    w = np.array([b for _, b in pairs])
    num = den = 0.0
    for i in range(len(s)):
        for j in range(len(s)):
            if i != j:
                weight = w[i] * (1 - w[j])
                den += weight
                num += weight * (1.0 if s[i] > s[j] else 0.5 if s[i] == s[j] else 0.0)
    got = pair_auc(s, w)
    if den <= 1e-12:
        assert got is None
    else:
        assert got == pytest.approx(num / den, abs=1e-9)


def test_undefined_figures_are_none_not_errors() -> None:
    one_class = window_metrics(0, 1, [0.2, 0.8], [1.0, 1.0])
    assert one_class.auc is None and one_class.log_loss is not None
    unlabelled = window_metrics(0, 1, [0.2, 0.8, 0.5], [np.nan] * 3)
    assert (unlabelled.n_labelled, unlabelled.label_coverage) == (0, 0.0)
    assert unlabelled.auc is None and unlabelled.log_loss is None and unlabelled.brier is None
    assert unlabelled.estimated_auc is not None  # CBPE needs no labels
    assert all(b.count == 0 and b.observed_rate is None for b in unlabelled.reliability)
    assert len(reliability_curve([1.0], [1.0])) == 10  # p = 1 falls in the last bin


def test_cbpe_needs_the_holdout_calibration_and_then_tracks_the_auc() -> None:
    rng = np.random.default_rng(1)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        scores = rng.random(n)
        return scores, (rng.random(n) < scores**3).astype(float)  # scores are miscalibrated

    hold_s, hold_y = draw(20_000)
    live_s, live_y = draw(20_000)
    realised = roc_auc_score(live_y, live_s)
    calibrator = fit_calibrator(hold_s, hold_y)
    assert calibrator.method == "isotonic" and calibrator.n_holdout == 20_000
    assert abs(pair_auc(live_s, calibrator(live_s)) - realised) < 0.03
    assert abs(pair_auc(live_s, live_s) - realised) > 0.05  # uncalibrated: off


@pytest.fixture(scope="module")
def credit_model() -> tuple[Callable, Calibrator]:
    """A logistic model of the bundled generator (`score(frame) -> probabilities`) and its
    calibration on a holdout drawn like the training data."""

    def features(frame):
        x = frame[NUMERIC].to_numpy(dtype=float)
        return np.column_stack([x, np.log(frame["income"]), np.log(frame["loan_amount"])])

    train, holdout = generate(20_000, seed=1), generate(20_000, seed=2)
    model = make_pipeline(StandardScaler(), LogisticRegression())
    model.fit(features(train), train[TARGET])

    def score(frame):
        return model.predict_proba(features(frame))[:, 1]

    return score, fit_calibrator(score(holdout), holdout[TARGET])


@pytest.mark.parametrize("drift", [0.0, 0.3, 0.5])
def test_cbpe_estimates_the_live_auc_of_the_generator(credit_model, drift: float) -> None:
    score, calibrator = credit_model
    live = generate(10_000, seed=3, drift=drift)  # labels drawn by the generator's own rule
    scores = score(live)
    realised = roc_auc_score(live[TARGET], scores)
    estimated = window_metrics(0, 1, scores, np.full(len(scores), np.nan), calibrator)
    assert abs(estimated.estimated_auc - realised) < 0.03, (estimated.estimated_auc, realised)


def test_cbpe_misses_concept_drift(credit_model) -> None:
    score, calibrator = credit_model
    live = generate(10_000, seed=4)
    scores = score(live)
    rng = np.random.default_rng(4)
    # The rule changes: half the outcomes no longer follow the inputs (same base rate).
    changed = rng.random(len(live)) < 0.5
    labels = np.where(changed, rng.random(len(live)) < live[TARGET].mean(), live[TARGET])
    result = window_metrics(0, 1, scores, labels.astype(float), calibrator)
    assert result.auc < result.estimated_auc - 0.1  # the estimate still says "as before"
    assert abs(result.estimated_auc - roc_auc_score(live[TARGET], scores)) < 0.03


def test_small_or_one_class_holdouts_fall_back_to_identity() -> None:
    small = fit_calibrator([0.1, 0.9, 0.4], [0, 1, 0])
    assert small.method.startswith("identity: 3 holdout rows")
    np.testing.assert_array_equal(small([0.3, 1.5]), [0.3, 1.0])
    one_class = fit_calibrator(np.linspace(0, 1, 500), np.zeros(500))
    assert "one class" in one_class.method


def test_evaluate_groups_versions_and_aligned_windows() -> None:
    rng = np.random.default_rng(2)
    n = 4_000
    ts = 7_200 + rng.random(n) * 3 * 3_600  # three hours, starting at 02:00 UTC
    versions = np.where(rng.random(n) < 0.5, "2", "10")
    p = rng.random(n)
    labels = np.where(rng.random(n) < 0.6, (rng.random(n) < p).astype(float), np.nan)
    results = evaluate(ts, versions, p, labels, window_s=3_600, validation_auc={"2": 0.99})
    assert [r.version for r in results] == ["2", "10"]  # numeric order
    two = results[0]
    assert [w.start for w in two.windows] == [7_200.0, 10_800.0, 14_400.0]
    assert all(w.end - w.start == 3_600 for w in two.windows)
    assert sum(w.n_predictions for w in two.windows) == two.overall.n_predictions
    assert two.overall.n_predictions == int((versions == "2").sum())
    assert two.overall.label_coverage == pytest.approx(0.6, abs=0.05)
    assert two.alert  # live AUC ~0.83 < 0.99 - 0.05
    assert not results[1].alert  # no validation AUC: never an alert
    assert two.calibration == "identity"
    few = evaluate(ts[:50], versions[:50], p[:50], labels[:50], 3_600, validation_auc={"2": 0.99})
    assert not few[0].alert  # fewer than min_labelled labels


def test_live_auc_alert() -> None:
    assert live_auc_alert(0.70, 0.80, 0.05)
    assert not live_auc_alert(0.76, 0.80, 0.05)
    assert not live_auc_alert(None, 0.80, 0.05)
    assert not live_auc_alert(0.5, None, 0.05)
    assert not live_auc_alert(float("nan"), 0.8, 0.05)
