"""Per-prediction explanations (`serving.explain`): exact Shapley values that add up, agree with
the `shap` package on the same model and background, the linear closed form, and every route."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcycle.core.synthetic import generate
from pipelines.data import column_roles
from pipelines.model_code import TabularNetModel
from pipelines.preprocess import fit_spec
from serving.explain import Explainer, Explainers, shapley_from_values
from serving.model import ModelService
from tests.unit.serving.stub import ROW, StubModel

BACKGROUND = pd.DataFrame(
    {
        "age": [25.0, 61.0, 44.0, np.nan, 33.0, 52.0, 29.0, 38.0],
        "income": [21e3, 83e3, 47e3, 55e3, 39e3, 61e3, 30e3, 45e3],
        "home": ["OWN", "RENT", None, "RENT", "OWN", "OWN", "RENT", "RENT"],
        "purpose": ["car", "edu", "car", "car", "edu", "edu", "car", "edu"],
    }
)


def _net(hidden: int | None, seed: int = 0):
    """A real `TabularNetModel` over the synthetic data's columns (`hidden` None: linear)."""
    df = generate(600, seed=seed)
    spec = fit_spec(df, column_roles(df, "default"))
    rng = np.random.default_rng(seed)
    n = len(spec["feature_order"])
    if hidden is None:
        layers = [(rng.normal(size=(n, 1)), rng.normal(size=1))]
    else:
        layers = [
            (rng.normal(size=(n, hidden)), rng.normal(size=hidden)),
            (rng.normal(size=(hidden, 1)), rng.normal(size=1)),
        ]
    model = TabularNetModel().setup(spec, layers)
    return ModelService(model, "credit-risk", "3", "run-3"), df.drop(columns="default")


def _validated(service, frame):
    names = list(service.schema.names)
    return service.schema.validate({c: frame[c].tolist() for c in names}, len(frame))


def _explainer(service, frame) -> Explainer:
    return Explainer(service, _validated(service, frame))


def test_shapley_of_an_additive_game_is_each_players_own_value():
    own = np.array([0.5, -2.0, 3.0])
    v = np.array([sum(own[i] for i in range(3) if m >> i & 1) for m in range(8)])
    np.testing.assert_allclose(shapley_from_values(v, 3), own, atol=1e-12)


def test_network_attributions_add_up_and_match_shap_exact():
    import shap

    service, rows = _net(hidden=8)
    background, explained = rows.iloc[:32], rows.iloc[100:103]
    ours = _explainer(service, background).explain(_validated(service, explained), 3)
    preds = service.predict_arrays(_validated(service, explained))
    names = list(service.schema.names)
    for row, p in zip(ours, preds, strict=True):
        assert row["space"] == "probability"
        assert abs(sum(row["attributions"].values()) + row["base_value"] - p) < 1e-6

    # shap sees numbers only: categories as codes, decoded again inside the model function.
    categorical = [c.name for c in service.schema.columns if not c.numeric]
    levels = {c: sorted(set(rows[c].dropna())) for c in categorical}

    def encode(frame):
        out = frame[names].copy()
        for c in categorical:
            out[c] = [levels[c].index(v) if v in levels[c] else -1 for v in frame[c]]
        return out.to_numpy(dtype=np.float64)

    def model(matrix):
        columns = {}
        for j, c in enumerate(names):
            if c in categorical:
                columns[c] = np.array(
                    [levels[c][int(v)] if v >= 0 else None for v in matrix[:, j]], dtype=object
                )
            else:
                columns[c] = matrix[:, j].astype(np.float64)
        return service.predict_arrays(columns)

    masker = shap.maskers.Independent(encode(background), max_samples=len(background))
    theirs = shap.explainers.Exact(model, masker)(encode(explained))
    for row, values, base in zip(ours, theirs.values, theirs.base_values, strict=True):
        np.testing.assert_allclose([row["attributions"][c] for c in names], values, atol=1e-6)
        assert abs(row["base_value"] - float(base)) < 1e-6


def test_the_additive_pass_equals_scoring_every_composite_row():
    """The first-layer pass (used for a network that shows its features) gives the values that
    scoring all 2^k x B composite rows through the model gives."""
    service, rows = _net(hidden=16, seed=3)
    explainer = _explainer(service, rows.iloc[:16])
    assert explainer.additive is not None
    explained = _validated(service, rows.iloc[300:304])
    fast = explainer.explain(explained, 4)
    explainer.additive = None  # through the model
    slow = explainer.explain(explained, 4)
    for a, b in zip(fast, slow, strict=True):
        np.testing.assert_allclose(
            list(a["attributions"].values()), list(b["attributions"].values()), atol=1e-9
        )


def test_linear_model_gets_the_closed_form_in_log_odds():
    service, rows = _net(hidden=None)
    explainer = _explainer(service, rows.iloc[:32])
    assert explainer.space == "log_odds" and explainer.cost_rows == 0
    explained = rows.iloc[200:205]
    out = explainer.explain(_validated(service, explained), 5)
    preds = service.predict_arrays(_validated(service, explained))
    for row, p in zip(out, preds, strict=True):
        z = row["base_value"] + sum(row["attributions"].values())
        assert abs(1 / (1 + np.exp(-z)) - p) < 1e-9
    # A numeric column's attribution is its weight times its distance from the background mean.
    model = service.model
    age = model.spec["feature_order"].index("age")
    weight = model.layers[0][0][age, 0]
    numeric = {c["name"]: c for c in model.spec["numeric"]}["age"]
    scaled = (explained["age"].to_numpy() - numeric["mean"]) / numeric["std"]
    mean_bg = ((rows.iloc[:32]["age"].to_numpy() - numeric["mean"]) / numeric["std"]).mean()
    np.testing.assert_allclose(
        [r["attributions"]["age"] for r in out], weight * (scaled - mean_bg), atol=1e-9
    )


def test_network_cost_is_every_coalition_times_the_background():
    service, rows = _net(hidden=4)
    explainer = _explainer(service, rows.iloc[:8])
    assert explainer.cost_rows == 2 ** len(service.schema.names) * 8


@pytest.fixture
def explained_app(app_with):
    app = app_with()
    app.extensions["mlcycle"].explainers = Explainers(lambda service: BACKGROUND)
    return app


def _adds_up(explanation: dict, probability: float) -> None:
    assert set(explanation["attributions"]) == set(ROW)
    total = sum(explanation["attributions"].values()) + explanation["base_value"]
    assert abs(total - probability) < 1e-6


def test_every_route_explains_on_request(explained_app):
    client = explained_app.test_client()
    one = client.post("/predict?explain=true", json=ROW).get_json()
    _adds_up(one["explanation"], one["probability"])
    many = client.post("/predict?explain=true", json=[ROW, {**ROW, "age": 61}]).get_json()
    for row in many["predictions"]:
        _adds_up(row["explanation"], row["probability"])
    inv = client.post("/invocations?explain=true", json={"dataframe_records": [ROW]}).get_json()
    _adds_up(inv["explanations"][0], inv["predictions"][0])
    tensors = [
        {
            "name": k,
            "datatype": "BYTES" if isinstance(v, str) else "FP64",
            "shape": [1],
            "data": [v],
        }
        for k, v in ROW.items()
    ]
    body = {"inputs": tensors, "parameters": {"explain": True}}
    v2 = client.post("/v2/models/credit-risk/infer", json=body).get_json()
    _adds_up(v2["parameters"]["explanations"][0], v2["outputs"][0]["data"][0])


def test_unexplained_requests_are_unchanged_and_build_nothing(app_with, explained_app):
    plain = app_with().test_client().post("/predict", json=ROW).get_json()
    client = explained_app.test_client()
    assert client.post("/predict", json=ROW).get_json() == plain
    assert client.post("/predict?explain=false", json=ROW).get_json() == plain
    assert explained_app.extensions["mlcycle"].explainers._by_version == {}


def test_bad_explain_values_and_too_many_rows_are_refused(explained_app):
    client = explained_app.test_client()
    for value in ("maybe", "1", ""):
        bad = client.post(f"/predict?explain={value}", json=ROW)
        assert bad.status_code == 400 and bad.get_json()["field"] == "explain", value
    many = client.post("/predict?explain=true", json=[ROW] * 17)
    assert many.status_code == 413


def test_no_reference_sample_is_a_503_naming_it(settings):
    from serving.app import create_app

    app = create_app(settings, ModelService(StubModel(), "credit-risk", "1"))  # no run
    try:
        refused = app.test_client().post("/predict?explain=true", json=ROW)
        assert refused.status_code == 503 and "reference" in refused.get_json()["message"]
    finally:
        app.extensions["mlcycle"].close()


def test_attributions_that_overflow_are_a_422_never_null(monkeypatch):
    """Inputs far outside the training range can overflow the network's sums (schemathesis
    found rows of +-1e16..1e88 whose attributions were NaN): the answer is then a 422 naming
    a column, as for a non-finite prediction, never a 200 with null attributions."""
    from serving.errors import RequestError

    service, rows = _net(hidden=8)
    explainers = Explainers(lambda svc: rows.iloc[:16].reset_index(drop=True))
    validated = _validated(service, rows.iloc[:1])
    explainer = explainers.get(service)
    real = explainer.explain(validated, 1)
    overflowed = [dict(real[0], attributions=dict(real[0]["attributions"], income=float("nan")))]
    monkeypatch.setattr(explainer, "explain", lambda arrays, n: overflowed)
    with pytest.raises(RequestError) as caught:
        explainers.explain(service, validated, 1)
    assert caught.value.status == 422 and caught.value.field == "income"
