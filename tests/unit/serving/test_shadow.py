"""Shadow scoring (`serving.shadow`): the candidate's rows are logged under the production
request's id and row, production's answers never change, wait or fail because of it, the
sample rate holds, an alias move is followed, and the agreement shows in metrics and readers."""

from __future__ import annotations

import random
import sqlite3
import threading
import time

import numpy as np
import pytest

from mlcycle.core import shadowlog
from serving.metrics import get_metrics
from serving.model import ModelService
from serving.shadow import ShadowLog, ShadowScorer
from tests.helpers import wait_until
from tests.unit.serving.stub import ROW, StubModel, make_service

ROWS = [ROW, {**ROW, "age": 61, "home": "OWN"}, {**ROW, "income": 90000.0}]


class Candidates:
    """A registry stand-in: `version` is what the alias names; `loads` counts loads."""

    def __init__(self, version: str | None = "2", model=None) -> None:
        self.version = version
        self.model = model
        self.loads: list[str] = []

    def resolve(self, seen):
        return self.version, seen

    def load(self, version: str) -> ModelService:
        self.loads.append(version)
        model = self.model or StubModel(bias=0.3 * int(version))
        return ModelService(model, "credit-risk", version, "run-" + version)


class Failing(StubModel):
    """Loads and warms up fine, then fails every shadow call."""

    def predict_columns(self, columns):
        if threading.current_thread().name == "shadow-scorer":
            raise RuntimeError("the candidate is broken")
        return super().predict_columns(columns)


class Slow(StubModel):
    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def predict_columns(self, columns):
        if threading.current_thread().name == "shadow-scorer":
            time.sleep(self.seconds)
        return super().predict_columns(columns)


@pytest.fixture
def shadowed(app_with, settings):
    """`shadowed(candidates, **scorer_kwargs) -> (app, scorer)`: the stub app (production
    v1) with a shadow scorer following `candidates`, writing to the app's prediction log."""
    scorers = []

    def build(candidates: Candidates, **kwargs):
        app = app_with(shadow=True)
        writer = ShadowLog(settings.prediction_log_url)
        scorer = ShadowScorer(
            settings.model_copy(update={"poll_interval": 0.05}),
            app.extensions["mlcycle"].metrics,
            candidates.load,
            candidates.resolve,
            writer,
            **kwargs,
        ).start()
        scorers.append((scorer, writer))
        app.extensions["mlcycle"].shadow = scorer
        wait_until(lambda: scorer.candidate is not None, 10, "the candidate loaded")
        return app, scorer

    yield build
    for scorer, writer in scorers:
        scorer.close()
        writer.close()


def _shadow_rows(settings) -> list[tuple]:
    path = settings.prediction_log_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        return conn.execute(
            'SELECT request_id, "row", shadow_version, production_version, shadow_prediction, '
            "production_prediction FROM shadow_predictions ORDER BY id"
        ).fetchall()


def test_shadow_rows_share_the_request_id_and_production_answers_are_unchanged(
    shadowed, app_with, settings
):
    plain = app_with().test_client().post("/predict", json=ROWS).get_json()
    app, scorer = shadowed(Candidates("2"))
    answer = app.test_client().post("/predict", json=ROWS)
    assert answer.get_json() == plain  # same numbers, same version, no shadow field
    rid = answer.headers["X-Request-ID"]
    rows = wait_until(lambda: _shadow_rows(settings), 10, "shadow rows written")
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [(rid, i, "2", "1") for i in range(3)]
    served = [p["probability"] for p in plain["predictions"]]
    np.testing.assert_allclose([r[5] for r in rows], served)
    assert all(abs(r[4] - r[5]) > 1e-6 for r in rows)  # the candidate's own numbers


def test_a_failing_candidate_never_fails_an_answer_and_is_counted(shadowed, settings):
    app, scorer = shadowed(Candidates("2", Failing()))
    client = app.test_client()
    errors = scorer.metrics.shadow_errors.labels("score")
    before = errors._value.get()
    statuses = [client.post("/predict", json=ROWS).status_code for _ in range(20)]
    assert statuses == [200] * 20
    wait_until(lambda: errors._value.get() - before >= 20, 10, "20 shadow errors counted")
    assert _shadow_rows(settings) == []


def test_a_slow_candidate_never_slows_an_answer(shadowed):
    app, scorer = shadowed(Candidates("2", Slow(0.5)), queue_size=2)
    client = app.test_client()
    dropped = scorer.metrics.shadow_dropped._value.get()
    started = time.perf_counter()
    statuses = [client.post("/predict", json=ROW).status_code for _ in range(30)]
    took = time.perf_counter() - started
    assert statuses == [200] * 30
    # 30 answers in well under one shadow call each (0.5 s): the shadow waits, they do not.
    assert took < 3.0, f"30 answers took {took:.2f} s beside a 0.5 s shadow"
    assert scorer.metrics.shadow_dropped._value.get() - dropped >= 20  # the queue held 2


def test_the_sample_rate_bounds_what_is_scored(settings):
    draw = random.Random(7).random
    scorer = ShadowScorer(
        settings.model_copy(update={"shadow_sample": 0.25}),
        get_metrics(),
        Candidates().load,
        Candidates().resolve,
        lambda rows: None,
        queue_size=10_000,
        sample=draw,
    )
    scorer.watcher.check()
    production = make_service("1")
    queued = sum(scorer.offer("r", production, {}, np.zeros(1)) for _ in range(2000))
    assert 400 < queued < 600  # 25 % of 2000, give or take sampling noise
    scorer.close()


def test_an_alias_move_is_followed_and_production_itself_is_skipped(shadowed, settings):
    candidates = Candidates("2")
    app, scorer = shadowed(candidates)
    client = app.test_client()
    client.post("/predict", json=ROW)
    wait_until(lambda: len(_shadow_rows(settings)) == 1, 10, "v2's shadow row")
    candidates.version = "3"
    wait_until(lambda: scorer.candidate.version == "3", 10, "the candidate moved to v3")
    client.post("/predict", json=ROW)
    wait_until(lambda: len(_shadow_rows(settings)) == 2, 10, "v3's shadow row")
    assert [r[2] for r in _shadow_rows(settings)] == ["2", "3"]
    candidates.version = "1"  # the candidate is what production serves: nothing to compare
    wait_until(lambda: scorer.candidate.version == "1", 10, "the candidate moved to v1")
    assert not scorer.offer("r", make_service("1"), {}, np.zeros(1))
    candidates.version = None  # alias removed, nothing in Staging: shadow pauses
    wait_until(lambda: scorer.candidate is None, 10, "no candidate")
    assert candidates.loads == ["2", "3", "1"]


def test_agreement_shows_in_metrics_and_in_the_readers(shadowed, settings):
    from serving.predlog.labels import store_labels

    app, scorer = shadowed(Candidates("2"))
    client = app.test_client()
    ids = [client.post("/predict", json=ROWS).headers["X-Request-ID"] for _ in range(4)]
    wait_until(lambda: len(_shadow_rows(settings)) == 12, 10, "12 shadow rows")
    text = client.get("/metrics").get_data(as_text=True)
    for name in ("mlcycle_shadow_rows_total", "mlcycle_shadow_abs_delta_count"):
        assert name + '{shadow_version="2"' in text, name
    url = settings.prediction_log_url
    agreement = shadowlog.read_agreement(url, "credit-risk", 0, time.time() + 1)
    rows = _shadow_rows(settings)
    deltas = np.abs(np.array([r[4] - r[5] for r in rows]))
    flips = np.mean([(r[4] >= 0.5) != (r[5] >= 0.5) for r in rows])
    assert agreement.n == 12 and agreement.shadow_versions == ["2"]
    assert agreement.flip_rate == pytest.approx(flips)
    assert agreement.mean_abs_delta == pytest.approx(deltas.mean())
    assert agreement.p95_abs_delta == pytest.approx(np.percentile(deltas, 95))
    labels = [{"request_id": rid, "row": i, "label": i % 2} for rid in ids for i in range(3)]
    store_labels(url, labels)
    pairs = shadowlog.read_labelled_pairs(url, "credit-risk", 0, time.time() + 1)
    assert len(pairs) == 12 and set(pairs["label"]) == {0, 1}
    live = shadowlog.live_auc(pairs)
    assert live["n"] == 12 and 0 <= live["shadow_auc"] <= 1 and 0 <= live["production_auc"] <= 1


def test_auc_counts_ties_half_and_needs_both_classes():
    assert shadowlog.auc([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8]) == 1.0
    assert shadowlog.auc([0, 1], [0.5, 0.5]) == 0.5
    assert shadowlog.auc([1, 1], [0.1, 0.2]) is None
