"""Out-of-range rows, non-finite inputs and non-finite outputs through the app (Flask test
client, both request paths): flagged answers and their header and metric, 422 refusals with
nothing logged, and a 400 naming the column for every way a request can carry an infinity."""

from __future__ import annotations

import copy
import sqlite3

import numpy as np
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from serving.app import create_app
from serving.model import ModelService
from tests.unit.serving.stub import ROW, SPEC, StubModel

RANGED = copy.deepcopy(SPEC)  # age: training [18, 80], allowed [2.5, 95.5] with margin 0.25
RANGED["numeric"][0].update(min=18.0, max=80.0)
RANGED["numeric"][1].update(min=1e4, max=1.5e5)  # income: allowed [-25000, 185000]


class RangedStub(StubModel):
    """The stub model with training ranges in its spec."""

    spec = RANGED


class NonFiniteStub(RangedStub):
    """Answers NaN for incomes above 1e5 and inf for incomes below 2e4: a broken forward pass."""

    def predict_columns(self, columns):
        p = super().predict_columns(columns)
        income = columns["income"]
        return np.where(income > 1e5, np.nan, np.where(income < 2e4, np.inf, p))


def _app(settings, model=None, **changes):
    svc = ModelService(model or RangedStub(), "credit-risk", "1", "run-1")
    return create_app(settings.model_copy(update=changes), svc)


@pytest.fixture(params=[True, False], ids=["fast-path", "flask"])
def fast_path(request):
    return request.param


@pytest.fixture
def flag_client(settings, fast_path):
    app = _app(settings, fast_path=fast_path)
    yield app.test_client()
    app.extensions["mlcycle"].close()


@pytest.fixture
def reject_client(settings, fast_path):
    app = _app(settings, out_of_range="reject", fast_path=fast_path)
    yield app.test_client()
    app.extensions["mlcycle"].close()


def _metric(client, name: str, **labels) -> float:
    text = client.get("/metrics").get_data(as_text=True)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def _out_of_range(client, column: str) -> float:
    return _metric(client, "mlcycle_out_of_range_rows_total", column=column)


def _logged(settings, rid: str) -> int:
    conn = sqlite3.connect(settings.prediction_log_url[len("sqlite:///") :])
    rows = conn.execute("SELECT COUNT(*) FROM predictions WHERE request_id=?", (rid,)).fetchone()
    batches = conn.execute(
        "SELECT COALESCE(SUM(n_rows), 0) FROM prediction_batches WHERE request_id=?", (rid,)
    ).fetchone()
    return rows[0] + batches[0]


def _post(client, path, body, rid, ctype="application/json"):
    data = body if isinstance(body, bytes | str) else orjson.dumps(body)
    return client.post(path, data=data, content_type=ctype, headers={"X-Request-ID": rid})


def test_predict_flags_a_row_outside_the_training_range(flag_client, settings):
    before = _out_of_range(flag_client, "age")
    resp = _post(flag_client, "/predict", {**ROW, "age": 200}, "r-flag")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["out_of_range"] == ["age"] and 0 <= body["probability"] <= 1
    assert resp.headers["X-Out-Of-Range"] == "age"
    assert _out_of_range(flag_client, "age") == before + 1
    assert _logged(settings, "r-flag") == 1  # flagged rows are scored and logged

    inside = _post(flag_client, "/predict", ROW, "r-in")
    assert inside.get_json()["out_of_range"] == [] and "X-Out-Of-Range" not in inside.headers
    assert _out_of_range(flag_client, "age") == before + 1


def test_every_protocol_names_the_flagged_rows(flag_client):
    rows = [ROW, {**ROW, "age": -40, "income": 9e5}, ROW]
    many = _post(flag_client, "/predict", rows, "r-many")
    assert [p["out_of_range"] for p in many.get_json()["predictions"]] == [
        [],
        ["age", "income"],
        [],
    ]
    assert many.headers["X-Out-Of-Range"] == "age,income"

    inv = _post(flag_client, "/invocations", {"dataframe_records": rows}, "r-inv").get_json()
    assert inv["out_of_range"] == [{"row": 1, "columns": ["age", "income"]}]
    assert len(inv["predictions"]) == 3
    plain = _post(flag_client, "/invocations", {"instances": [ROW]}, "r-plain").get_json()
    assert plain == {"predictions": plain["predictions"]}  # MLflow's shape when nothing flagged

    inputs = [
        {"name": c, "shape": [3], "datatype": "FP64" if c in ("age", "income") else "BYTES"}
        | {"data": [r[c] for r in rows]}
        for c in ROW
    ]
    v2 = _post(flag_client, "/v2/models/credit-risk/infer", {"inputs": inputs}, "r-v2")
    assert v2.get_json()["parameters"] == {
        "out_of_range": [{"row": 1, "columns": ["age", "income"]}]
    }
    one = [{**i, "shape": [1], "data": i["data"][:1]} for i in inputs]
    clean = _post(flag_client, "/v2/models/credit-risk/infer", {"inputs": one}, "r-v2c")
    assert "parameters" not in clean.get_json()


def test_large_batches_flag_the_same_rows(flag_client):
    rng = np.random.default_rng(3)
    n = 3000
    ages = rng.uniform(0, 100, n).round(1)  # outside [2.5, 95.5] about 7% of the time
    rows = [{**ROW, "age": float(a)} for a in ages]
    expected = [i for i, a in enumerate(ages) if a < 2.5 or a > 95.5]
    split = {"columns": list(ROW), "data": [[r[c] for c in ROW] for r in rows]}
    csv = "\n".join(["age,income,home,purpose"] + [f"{a},42000.5,RENT,car" for a in ages])
    for body, ctype in (
        (orjson.dumps({"dataframe_split": split}), "application/json"),
        (csv, "text/csv"),
    ):
        resp = _post(flag_client, "/invocations", body, "r-large", ctype)
        assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
        flagged = resp.get_json()["out_of_range"]
        assert [f["row"] for f in flagged] == expected and expected
        assert all(f["columns"] == ["age"] for f in flagged)


def test_reject_mode_refuses_before_scoring_and_logs_nothing(reject_client, settings):
    assert _post(reject_client, "/predict", ROW, "r-ok").status_code == 200
    before = _out_of_range(reject_client, "income")
    rows = [ROW, ROW, {**ROW, "income": 5e5}, {**ROW, "income": 6e5}]
    resp = _post(reject_client, "/invocations", {"dataframe_records": rows}, "r-reject")
    assert resp.status_code == 422
    error = resp.get_json()
    assert error["field"] == "income" and "training range" in error["message"]
    assert error["detail"] == {
        "column": "income",
        "row": 2,
        "value": 5e5,
        "range": [1e4, 1.5e5],
        "allowed": [-25000.0, 185000.0],
    }
    assert _logged(settings, "r-reject") == 0
    assert _out_of_range(reject_client, "income") == before + 2  # refused rows count too
    assert reject_client.application.extensions["mlcycle"].predlog.expected == 0


def test_unseen_categories_are_refused_in_flag_mode_too(flag_client, settings):
    assert _post(flag_client, "/predict", ROW, "r-ok").status_code == 200
    before = _out_of_range(flag_client, "home")
    resp = _post(flag_client, "/predict", {**ROW, "home": "CASTLE"}, "r-castle")
    assert resp.status_code == 422
    error = resp.get_json()
    assert error["field"] == "home"
    assert error["detail"]["categories"] == ["OWN", "RENT"] and error["detail"]["row"] == 0
    assert _logged(settings, "r-castle") == 0
    assert _out_of_range(flag_client, "home") == before + 1


def test_a_non_finite_model_output_is_a_422_never_a_null(settings, fast_path):
    app = _app(settings, NonFiniteStub(), fast_path=fast_path)
    client = app.test_client()
    assert _post(client, "/predict", ROW, "r-ok").status_code == 200
    rows = [ROW, {**ROW, "income": 1.2e5}, ROW, {**ROW, "income": 1.5e4}]
    for path, body in (
        ("/invocations", {"dataframe_records": rows}),
        ("/predict", rows),
        ("/predict", rows[1]),
    ):
        resp = _post(client, path, body, "r-nan")
        assert resp.status_code == 422, resp.get_data(as_text=True)
        rows_named = resp.get_json()["detail"]["rows"]
        assert rows_named == ([0] if isinstance(body, dict) and path == "/predict" else [1, 3])
    assert _logged(settings, "r-nan") == 0
    assert app.extensions["mlcycle"].predlog.expected == 0
    app.extensions["mlcycle"].close()


def test_the_real_forward_pass_at_extreme_inputs_never_answers_null(settings, recwarn):
    """The registered model's own code: an extreme-but-finite income is flagged, and whatever
    the network makes of it is a finite probability or a 422, with no numpy warning."""
    from pipelines.model_code import TabularNetModel

    rng = np.random.default_rng(0)
    layers = [(rng.normal(size=(6, 8)) * 50, np.zeros(8)), (rng.normal(size=(8, 1)), np.zeros(1))]
    model = TabularNetModel().setup(RANGED, layers)
    app = create_app(settings, ModelService(model, "credit-risk", "1", "run-1"))
    client = app.test_client()
    statuses = set()
    for income in (1e308, -1e308, 1.7e308):
        for age in (1e308, -1e308, 35):
            resp = _post(client, "/predict", {**ROW, "income": income, "age": age}, "r-x")
            body = resp.get_json()
            statuses.add(resp.status_code)
            if resp.status_code == 200:
                assert np.isfinite(body["probability"]) and "income" in body["out_of_range"]
            else:
                assert resp.status_code == 422 and body["detail"]["rows"] == [0], body
    assert 422 in statuses  # inf - inf inside the network did happen
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
    app.extensions["mlcycle"].close()


def _records_body(value: bytes) -> bytes:
    return (
        b'{"dataframe_records": [{"age": 35, "income": %s, "home": "OWN", "purpose": "car"}]}'
        % (value)
    )


def _large_split(value: bytes) -> bytes:
    row = b'[35, 42000.5, "OWN", "car"]'
    data = b",".join([row] * 1000 + [b'[35, %s, "OWN", "car"]' % value])
    return (
        b'{"dataframe_split": {"columns": ["age", "income", "home", "purpose"], "data": [%s]}}'
        % (data)
    )


def _csv(value: str, n: int) -> str:
    lines = ["age,income,home,purpose"] + ["35,42000.5,OWN,car"] * n
    lines[n // 2] = f"35,{value},OWN,car"
    return "\n".join(lines)


V2_INF = (
    b'{"inputs": [{"name": "age", "shape": [1], "datatype": "INT64", "data": [35]},'
    b'{"name": "income", "shape": [1], "datatype": "FP64", "data": [-1e999]},'
    b'{"name": "home", "shape": [1], "datatype": "BYTES", "data": ["OWN"]},'
    b'{"name": "purpose", "shape": [1], "datatype": "BYTES", "data": ["car"]}]}'
)
NON_FINITE = [
    # (name, path, body, content type, words in the message)
    ("records 1e999", "/invocations", _records_body(b"1e999"), "application/json", "finite"),
    ("records -1e999", "/invocations", _records_body(b"-1e999"), "application/json", "finite"),
    ("large split 1e999", "/invocations", _large_split(b"1e999"), "application/json", "finite"),
    (
        "columnar inputs 1e400",
        "/invocations",
        b'{"inputs": {"age": [35], "income": [1e400], "home": ["OWN"], "purpose": ["car"]}}',
        "application/json",
        "finite",
    ),
    (
        "predict 1e999",
        "/predict",
        b'{"age": 35, "income": 1e999, "home": "OWN", "purpose": "car"}',
        "application/json",
        "finite",
    ),
    ("v2 -1e999", "/v2/models/credit-risk/infer", V2_INF, "application/json", "finite"),
    ("small csv inf", "/invocations", _csv("inf", 3), "text/csv", "finite"),
    ("small csv -Infinity", "/invocations", _csv("-Infinity", 3), "text/csv", "finite"),
    ("small csv 1e999", "/invocations", _csv("1e999", 3), "text/csv", "finite"),
    ("small csv nan not allowed", "/invocations", _csv("nan", 3), "text/csv", "missing"),
    ("large csv inf", "/invocations", _csv("inf", 4000), "text/csv", "finite"),
    ("large csv -inf", "/invocations", _csv("-inf", 4000), "text/csv", "finite"),
    ("large csv nan not allowed", "/invocations", _csv("NaN", 4000), "text/csv", "missing"),
]


@pytest.mark.parametrize("name,path,body,ctype,words", NON_FINITE, ids=[c[0] for c in NON_FINITE])
def test_non_finite_inputs_are_a_400_naming_the_column(flag_client, name, path, body, ctype, words):
    if "large csv" in name:
        assert len(body) > 64 * 1024  # parsed by pyarrow
    resp = _post(flag_client, path, body, "r-inf", ctype)
    assert resp.status_code == 400, resp.get_data(as_text=True)[:300]
    error = resp.get_json()
    assert error["field"] == "income" and words in error["message"], error


def test_nan_and_infinity_literals_stay_malformed_json(flag_client):
    for literal in (b"NaN", b"Infinity"):
        body = _records_body(b"1e999").replace(b'"age": 35', b'"age": ' + literal)
        resp = _post(flag_client, "/invocations", body, "r-lit")
        assert resp.status_code == 400 and "malformed JSON" in resp.get_json()["message"]


def test_guard_settings_come_from_the_environment_and_bad_values_name_the_variable(monkeypatch):
    from serving.settings import get_settings

    monkeypatch.delenv("MLCYCLE_OUT_OF_RANGE", raising=False)
    monkeypatch.delenv("MLCYCLE_OUT_OF_RANGE_MARGIN", raising=False)
    defaults = get_settings()
    assert (defaults.out_of_range, defaults.out_of_range_margin) == ("flag", 0.25)
    monkeypatch.setenv("MLCYCLE_OUT_OF_RANGE", "Reject")
    monkeypatch.setenv("MLCYCLE_OUT_OF_RANGE_MARGIN", "0")
    assert (get_settings().out_of_range, get_settings().out_of_range_margin) == ("reject", 0.0)
    for name, value in (
        ("MLCYCLE_OUT_OF_RANGE", "warn"),
        ("MLCYCLE_OUT_OF_RANGE_MARGIN", "-0.1"),
        ("MLCYCLE_OUT_OF_RANGE_MARGIN", "wide"),
        ("MLCYCLE_OUT_OF_RANGE_MARGIN", "inf"),
    ):
        with monkeypatch.context() as m:
            m.setenv(name, value)
            with pytest.raises(ValueError, match=name):
                get_settings()
