"""Property: any body posted to any prediction route is answered 2xx or 4xx, never 5xx, and
as `/openapi.json` says.

A 5xx here means a parser or the validator raised something other than `RequestError` on some
input, i.e. a client's mistake would be reported as a server fault (and logged as one). Each
answer is also held to the served OpenAPI document: its status is listed for the route, its
body matches that status' schema, and a body answered 2xx matches the request schema (the
document is never stricter than the validator). The
bodies are any JSON value (huge integers and 1e308 included, serialised by the stdlib since
orjson cannot write them), near-valid requests of every protocol whose cells, keys and shapes
are mutated, and CSV text; each is sent once, and at 1, 70 and 520 rows so the plain-Python,
numpy and columnar (factorised) validation paths all see it. Derandomised, so a failure
repeats; the example counts keep the module under a minute on 2 cores.
"""

from __future__ import annotations

import json

import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.app import create_app
from serving.protocols import V2_NUMERIC
from serving.settings import Settings
from tests.unit.serving.stub import SPEC, make_service

# "One draw in n": a mutation applied to about 1/n of the examples. (`st.integers(0, n-1) == 0`
# fires far more often: Hypothesis favours the bounds of a range.)
ONE_IN = {n: st.sampled_from([True] + [False] * (n - 1)) for n in (4, 5, 6, 10)}

NUMERIC = [c["name"] for c in SPEC["numeric"]]
CATEGORIES = {c["name"]: c["categories"] for c in SPEC["categorical"]}
NAMES = NUMERIC + list(CATEGORIES)
ROUTES = {
    "/invocations": "/invocations",
    "/predict": "/predict",
    "/v2/models/credit-risk/infer": "/v2/models/{name}/infer",
    "/v2/models/credit-risk/versions/1/infer": "/v2/models/{name}/versions/{version}/infer",
}
V2_ROUTES = [path for path in ROUTES if path.startswith("/v2/")]
PROPERTY = settings(
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e308, -1e308, 5e-324, -0.0, 2**63, 2**64, -(2**63) - 1]),
    st.text(max_size=6),
    st.sampled_from(NAMES + ["OWN", "RENT", "car", "edu", "", "FP64", "BYTES"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(NAMES) | st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=16,
)


def cell(name: str) -> st.SearchStrategy:
    """A value for column `name`: nine times in ten a valid one, else any JSON value."""
    spec = next(c for c in SPEC["numeric"] + SPEC["categorical"] if c["name"] == name)
    missing = st.none() if spec.get("allow_missing", True) else st.nothing()
    if name in CATEGORIES:
        valid = st.sampled_from(CATEGORIES[name]) | missing
    else:
        valid = st.integers(-100, 10**6) | st.floats(-1e308, 1e308) | missing
    return ONE_IN[10].flatmap(lambda garbage: json_values if garbage else valid)


@st.composite
def rows(draw) -> list[dict]:
    """1-3 rows of every column with mutated cells, sometimes a column dropped or added."""
    template = []
    for _ in range(draw(st.integers(1, 3))):
        row = {name: draw(cell(name)) for name in NAMES}
        if draw(ONE_IN[10]):
            row.pop(draw(st.sampled_from(NAMES)))
        if draw(ONE_IN[10]):
            row[draw(st.text(max_size=4))] = draw(json_values)
        template.append(row)
    return template


def repeated(items: list) -> st.SearchStrategy:
    """`items` repeated to about 1, 70 or 520 rows (the validator's three paths)."""
    return st.sampled_from([1, 70 // len(items) + 1, 520 // len(items) + 1]).map(
        lambda k: items * k
    )


@st.composite
def invocation(draw) -> dict:
    """A near-valid MLflow scoring request in one of its formats."""
    fmt = draw(st.sampled_from(["split", "dataframe_records", "instances", "inputs", "columns"]))
    batch = draw(rows().flatmap(repeated))
    if fmt == "split":
        columns = draw(st.permutations(NAMES))
        if draw(ONE_IN[10]):
            columns = draw(st.lists(st.sampled_from(NAMES) | st.text(max_size=3), max_size=5))
        data = [[row.get(c) for c in columns] for row in batch]
        split: dict = {"columns": columns, "data": data}
        if draw(st.booleans()):
            split["index"] = draw(st.just(list(range(len(data)))) | json_values)
        body: dict = {"dataframe_split": split}
    elif fmt == "columns":  # one length for every column, unless mutated
        length = draw(st.integers(1, 3))
        body = {"inputs": {}}
        for name in NAMES:
            size = draw(st.integers(0, 3)) if draw(ONE_IN[10]) else length
            values = draw(st.lists(cell(name), min_size=size, max_size=size))
            body["inputs"][name] = values[0] if size == 1 and draw(st.booleans()) else values
    else:
        body = {fmt: batch}
    if draw(ONE_IN[5]):
        params = st.dictionaries(st.text(max_size=4), json_values, max_size=3)
        body["params"] = draw(json_values if draw(ONE_IN[4]) else params)
    if draw(ONE_IN[10]):
        body[draw(st.sampled_from(["instances", "inputs", "x"]))] = draw(json_values)
    return body


@st.composite
def v2_request(draw) -> dict:
    """A near-valid Open Inference Protocol v2 request: one tensor per column, mutated."""
    n = draw(st.sampled_from([1, 2, 70, 520]))
    inputs = []
    for name in draw(st.permutations(NAMES)):
        values = draw(st.lists(cell(name), min_size=1, max_size=2))
        data = (values * n)[:n]
        shape = [n]
        if draw(st.booleans()):
            data, shape = [[v] for v in data], [n, 1]
        tensor = {
            "name": name,
            "datatype": "BYTES"
            if name in CATEGORIES
            else draw(st.sampled_from(sorted(V2_NUMERIC))),
            "shape": shape,
            "data": data,
        }
        if draw(ONE_IN[10]):
            key = draw(st.sampled_from(["name", "datatype", "shape", "data", "parameters", "x"]))
            tensor[key] = draw(json_values)
        inputs.append(tensor)
    body: dict = {"inputs": inputs}
    if draw(ONE_IN[6]):
        body[draw(st.sampled_from(["id", "parameters", "outputs", "inputs", "x"]))] = draw(
            json_values
        )
    return body


@st.composite
def csv_body(draw) -> bytes:
    """CSV: the header (or a mutated one), then rows of numbers, text, quotes, NULs."""
    header = list(draw(st.permutations(NAMES)))
    if draw(ONE_IN[6]):
        header = draw(st.lists(st.sampled_from(NAMES) | st.text(max_size=4), max_size=5))
    field = st.one_of(
        st.sampled_from(["", "1", "2.5", "-1e308", "1e400", "nan", "OWN", "car", '"', "\x00"]),
        st.text(max_size=5),
    )
    lines = [",".join(header)]
    for _ in range(draw(st.integers(0, 3))):
        lines.append(",".join(draw(st.lists(field, min_size=max(len(header) - 1, 0), max_size=5))))
    return "\n".join(lines).encode("utf-8", "surrogatepass")


class Contract:
    """The served OpenAPI document as validators of requests and responses."""

    def __init__(self, doc: dict) -> None:
        self.doc = doc

    def _schema(self, schema: dict):
        return jsonschema_rs.validator_for({**schema, "components": self.doc["components"]})

    def check(self, path: str, body: bytes, content_type: str, resp) -> None:
        """Assert `resp` to a POST of `body` on `path` is what the document says."""
        op = self.doc["paths"][ROUTES[path]]["post"]
        status = str(resp.status_code)
        assert status in op["responses"], f"{status} not documented for {path}"
        answer = op["responses"][status]
        if "$ref" in answer:
            answer = self.doc["components"]["responses"][answer["$ref"].rsplit("/", 1)[1]]
        assert resp.mimetype in answer["content"]
        schema = answer["content"][resp.mimetype]["schema"]
        self._schema(schema).validate(json.loads(resp.get_data()))
        if resp.status_code < 300 and content_type == "application/json":
            request_schema = op["requestBody"]["content"][content_type]["schema"]
            self._schema(request_schema).validate(json.loads(body))


@pytest.fixture(scope="module", params=[True, False], ids=["fast-path", "flask"])
def post(request, tmp_path_factory):
    """`post(path, body, content_type) -> response` on one app for the module's examples;
    each answer is checked against the app's OpenAPI document."""
    tmp = tmp_path_factory.mktemp("properties")
    settings = Settings(
        prediction_log_url=f"sqlite:///{tmp / 'predictions.db'}",
        reports_dir=str(tmp / "reports"),
        start_watcher=False,
        fast_path=request.param,
    )
    app = create_app(settings, make_service())
    client = app.test_client()
    contract = Contract(client.get("/openapi.json").get_json())

    def send(path: str, body: bytes, content_type: str = "application/json"):
        resp = client.post(path, data=body, headers={"Content-Type": content_type})
        assert_answered(resp)
        contract.check(path, body, content_type, resp)
        return resp

    yield send
    app.extensions["mlcycle"].close()


def encode(value) -> bytes:
    return json.dumps(value).encode()


def assert_answered(resp) -> None:
    """2xx or 4xx, and every 4xx a JSON error body naming the request."""
    body = resp.get_data(as_text=True)
    assert resp.status_code < 500, body
    if resp.status_code >= 400:
        err = resp.get_json()
        assert err["error_code"] and err["message"], body
        assert err["request_id"] == resp.headers["X-Request-ID"], body


@PROPERTY
@given(value=json_values, route=st.sampled_from(sorted(ROUTES)))
def test_any_json_value_is_answered_2xx_or_4xx(post, value, route):
    post(route, encode(value))


@PROPERTY
@given(body=invocation())
def test_near_valid_invocations_are_answered_2xx_or_4xx(post, body):
    post("/invocations", encode(body))


@PROPERTY
@given(batch=rows().flatmap(repeated), single=st.booleans())
def test_near_valid_predict_bodies_are_answered_2xx_or_4xx(post, batch, single):
    post("/predict", encode(batch[0] if single else batch))


@PROPERTY
@given(body=v2_request(), route=st.sampled_from(V2_ROUTES))
def test_near_valid_v2_requests_are_answered_2xx_or_4xx(post, body, route):
    post(route, encode(body))


@PROPERTY
@given(body=csv_body() | st.binary(max_size=40))
def test_any_csv_is_answered_2xx_or_4xx(post, body):
    post("/invocations", body, "text/csv")


@pytest.mark.parametrize(
    "route,strategy",
    [
        ("/invocations", invocation()),
        ("/predict", rows()),
        ("/v2/models/credit-risk/infer", v2_request()),
    ],
    ids=["invocations", "predict", "v2"],
)
def test_near_valid_requests_often_reach_the_model(post, route, strategy):
    """The strategies are near-valid, not noise: a good share of what they draw scores."""
    statuses = []

    @settings(PROPERTY, max_examples=60)
    @given(body=strategy)
    def send(body):
        statuses.append(post(route, encode(body)).status_code)

    send()
    assert statuses.count(200) >= len(statuses) // 6, sorted(statuses)
