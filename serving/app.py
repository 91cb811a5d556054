"""The Flask app: MLflow scoring protocol, `/predict`, Open Inference Protocol v2, ops routes.

In: HTTP requests; the served `ModelService` (from the watcher, or passed in by tests).
Out: JSON responses naming the model version (header `X-Model-Version`), one prediction-log
row per scored row (committed before the response), Prometheus metrics. Rows outside the
version's training reference are flagged (`out_of_range`, header `X-Out-Of-Range`) or, with
`MLCYCLE_OUT_OF_RANGE=reject`, refused with a 422 (`serving.guard`).
`create_app()` builds everything lazily: no model loading, DB connection or tracking URI at
import. The serving state lives in `app.extensions["mlcycle"]` (a `Serving`), so a web
blueprint (`serving.web.blueprint`, registered when that module exists) can reach it.
Under the launcher, readiness also reads the run folder (`serving.rundir`: 503 while draining)
and each worker closes its prediction log when it exits (`Serving.close_at_exit`).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
import time
from pathlib import Path

import numpy as np
import orjson
from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from mlcycle.core.prediction_log import LogPrivacy, build_batch, build_rows
from mlcycle.core.signing import SignatureError
from serving import feedback, protocols, rundir
from serving.admission import Admission, ServerSlots, drain
from serving.auth import require_admin, require_api_key, require_ui
from serving.errors import (
    ERROR_CODES,
    RequestError,
    Unavailable,
    internal_error_body,
    request_id,
)
from serving.explain import Explainers, attach_explanations, explain_asked
from serving.guard import OutOfRange
from serving.metrics import get_metrics, render
from serving.model import ModelService
from serving.predlog import LogHooks, PredictionLog, open_store
from serving.settings import Launched, Settings, get_settings, launched
from serving.shadow import ShadowLog, ShadowScorer, candidate_resolver
from serving.watcher import ModelWatcher, ServingState, mlflow_loader, registry_resolver

log = logging.getLogger(__name__)
JSON = "application/json"


class Serving:
    """Per-worker serving state: settings, current model, watcher, prediction log, metrics."""

    def __init__(
        self,
        settings: Settings,
        model_service: ModelService | None = None,
        launch: Launched | None = None,
    ) -> None:
        launch = launch or launched()  # a launcher's worker: its run folder, sibling workers
        self.settings = settings
        self.state = ServingState()
        self.metrics = get_metrics()
        self.metrics.model_ready.set(0)
        self.watcher: ModelWatcher | None = None
        self.predlog: PredictionLog | None = None
        self.grpc = None  # the OIP v2 gRPC service beside HTTP (`serving.oip.service`), if on
        self.shadow = None  # the shadow scorer (`serving.shadow`), with MLCYCLE_SHADOW
        self.explainers = Explainers()  # per version, built on the first explained request
        self.closed = False
        self.run_dir = launch.run_dir
        self._expected_workers = launch.workers
        self.log_privacy = LogPrivacy.from_settings(settings)
        if settings.log_predictions:
            self.predlog = _prediction_log(settings, self.metrics)
        if settings.shadow and settings.start_watcher:
            self.shadow = _shadow(settings, self.metrics)
        if model_service is not None:
            self.on_swap(model_service, None)
            self.state.swap(model_service)
        elif settings.start_watcher:
            self.watcher = ModelWatcher(
                self.state,
                settings,
                _lazy(mlflow_loader, settings),
                _lazy(registry_resolver, settings),
                self.on_swap,
                self._on_load_failure,
                run_dir=self.run_dir,
            ).start()

    def on_swap(self, new: ModelService, old: ModelService | None) -> None:
        """Metrics and the shared readiness marker after a model swap."""
        prev = (old.name, old.version, old.run_id) if old else None
        self.metrics.set_model(new.name, new.version, new.run_id, prev)
        if self.run_dir:
            rundir.mark_ready(self.run_dir, new.version)

    def _on_load_failure(self, version: str, exc: Exception) -> None:
        self.metrics.load_failures.labels(version).inc()
        if isinstance(exc, SignatureError):
            self.metrics.model_refused.labels(version, exc.reason).inc()

    def all_workers_ready(self) -> bool:
        """True when this worker and (under the launcher) every sibling worker has a model."""
        if self.state.service is None:
            return False
        if not self.run_dir or self._expected_workers <= 1:
            return True
        return rundir.ready_workers(self.run_dir) >= self._expected_workers

    def ready(self) -> bool:
        """Readiness, the same for HTTP and gRPC: not draining, every worker has a model and
        the prediction log takes writes."""
        return self.draining() is None and self.all_workers_ready() and self.log_ok()

    def log_ok(self) -> bool:
        """Whether the prediction log takes writes (always, when logging is off)."""
        return self.predlog is None or self.predlog.available

    def live(self) -> tuple[bool, str | None]:
        """(live, why not): false once requests have waited `liveness_stall_s` with no
        prediction-log commit finishing (a stuck writer: let the orchestrator restart us)."""
        if self.predlog is None:
            return True, None
        stalled = self.predlog.stalled_for()
        if stalled > self.settings.liveness_stall_s:
            return False, f"prediction log writer made no progress for {stalled:.0f} s"
        return True, None

    def draining(self) -> str | None:
        """Why this server is shutting down (readiness is then 503), or None."""
        return rundir.draining_reason(self.run_dir)

    def model(self, name: str, version: str | None = None) -> ModelService:
        """The loaded model when it is `name` (and `version`, if given), for metadata and
        readiness routes: else a 404 naming what is unknown, or a 503 before the first load."""
        if name != self.settings.model_name:
            raise RequestError(f"unknown model '{name}'", 404, "name")
        svc = self.state.service
        if svc is None:
            raise RequestError("no model loaded yet", 503)
        if version is not None and version != svc.version:
            raise RequestError(
                f"version {version} is not loaded (serving {svc.version})", 404, "version"
            )
        return svc

    def current(self) -> ModelService:
        """The model to score with; waits for the first load, then 503."""
        svc = self.state.service
        if svc is None:
            self.state.ready.wait(30.0)
            svc = self.state.service
            if svc is None:
                raise RequestError("no model loaded yet", status=503)
        return svc

    def close(self) -> None:
        """Stop the gRPC service (its calls in flight finish) and the watcher, then flush the
        prediction log (again: does nothing)."""
        if self.closed:
            return
        self.closed = True
        if self.grpc:
            self.grpc.stop()
        if self.watcher:
            self.watcher.stop()
        if self.shadow:
            self.shadow.close()
        if self.predlog:
            self.predlog.close()

    def close_at_exit(self) -> None:
        """Call `close()` once this process's main thread has finished, before it exits.

        Granian's workers end by returning from their main thread once every accepted request
        is answered, then exit without running `atexit` (multiprocessing's `os._exit`); but
        the interpreter still waits for non-daemon threads, in gunicorn's workers too. So a
        non-daemon thread waiting for the main thread closes the log at the right time.
        """

        def close_after_main() -> None:
            threading.main_thread().join()
            if self.closed:
                return
            started = time.perf_counter()
            self.close()
            log.info("worker stopping: log closed in %.3fs", time.perf_counter() - started)

        threading.Thread(target=close_after_main, name="close-at-exit").start()


def _prediction_log(settings: Settings, metrics) -> PredictionLog:
    """The worker's prediction-log writer, its metrics wired to `metrics`."""
    url, sync, every = settings.prediction_log_url, settings.log_sync, settings.log_checkpoint_s
    timeout = settings.log_timeout_s

    def committed(rows: int, seconds: float) -> None:
        metrics.log_rows.inc(rows)
        metrics.log_commit_seconds.observe(seconds)

    metrics.log_unavailable.set(0)
    return PredictionLog(
        lambda: open_store(url, sync, every, timeout),
        settings.log_flush_rows,
        group_wait_us=settings.log_group_wait_us,
        wait_s=settings.log_wait_s,
        hooks=LogHooks(
            committed=committed,
            failed=metrics.log_failures.inc,
            withdrawn=metrics.log_withdrawn.inc,
            availability=lambda ok: metrics.log_unavailable.set(0 if ok else 1),
        ),
    )


def _shadow(settings: Settings, metrics) -> ShadowScorer | None:
    """The worker's shadow scorer, started; None when it cannot run (it follows the registry
    and writes to the prediction log)."""
    if settings.model_uri or not settings.log_predictions:
        log.warning("MLCYCLE_SHADOW needs the registry and the prediction log: shadow is off")
        return None
    # The candidate scores whole queued requests: no cache, no micro-batching for it.
    plain = settings.model_copy(update={"batching": False, "cache": False})
    return ShadowScorer(
        settings,
        metrics,
        _lazy(mlflow_loader, plain),
        _lazy(candidate_resolver, settings),
        ShadowLog(settings.prediction_log_url, settings.log_timeout_s, settings.log_sync),
    ).start()


def _configure_logging() -> None:
    """A worker of the launcher is a fresh process: show serving's INFO lines (swaps)."""
    logger = logging.getLogger("serving")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(process)d]: %(message)s")
        )
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


class _lazy:  # noqa: N801 - used like a function
    """Defer building the loader/resolver (imports mlflow) to the watcher thread.

    Calls and attribute reads (e.g. a resolver's `invalidate`) go to the built object.
    """

    def __init__(self, factory, settings) -> None:
        self._factory = factory
        self._settings = settings
        self._built = None

    def _get(self):
        if self._built is None:
            self._built = self._factory(self._settings)
        return self._built

    def __call__(self, arg):
        return self._get()(arg)

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._get(), name)


def _json(payload, status: int = 200, headers: dict | None = None) -> Response:
    return Response(
        orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY),
        status,
        headers=headers,
        mimetype=JSON,
    )


def _error(exc: RequestError, headers: dict | None = None) -> Response:
    rid = request_id(request.environ)
    return _json(
        exc.to_dict(rid), exc.status, {**(headers or {}), **exc.headers, "X-Request-ID": rid}
    )


def create_app(
    settings: Settings | None = None, model_service: ModelService | None = None
) -> Flask:
    """Build the serving app.

    Args:
        settings: serving settings (default: `get_settings()`: in a worker of the launcher
            the launcher's, else from the environment).
        model_service: a model to serve as-is (tests); without it a watcher thread follows
            the registry.

    Returns:
        The Flask app; its serving state is `app.extensions["mlcycle"]`.
    """
    settings = settings or get_settings()
    launch = launched()
    if launch.run_dir:
        _configure_logging()
    app = Flask(__name__)
    app.json.sort_keys = False
    serving = Serving(settings, model_service, launch)
    if serving.run_dir:  # a worker of the launcher: flush the log on exit
        serving.close_at_exit()
    app.extensions["mlcycle"] = serving
    predictor = Predictor(serving)
    if settings.grpc_port:
        from serving.oip.service import start

        serving.grpc = start(serving, predictor)
    _register_prediction_routes(app, predictor)
    _register_ops_routes(app, serving)
    labels = None
    if settings.log_predictions:
        labels = feedback.Labels(settings.prediction_log_url, settings.log_wait_s)
    feedback.register(app, settings, labels)
    _register_error_handlers(app)
    if importlib.util.find_spec("serving.web") is not None:
        try:
            from serving.web import blueprint

            app.register_blueprint(blueprint)
        except Exception:  # the API must come up even if the optional web UI is broken
            log.exception("could not register the web blueprint (serving.web)")
    if settings.fast_path:
        app.wsgi_app = FastPath(app.wsgi_app, predictor)
    return app


class _Req:
    """The parts of a request the prediction core needs, from Flask or from raw WSGI."""

    __slots__ = ("environ",)

    def __init__(self, environ: dict) -> None:
        self.environ = environ

    def header(self, name: str) -> str | None:
        return self.environ.get("HTTP_" + name.upper().replace("-", "_"))

    @property
    def content_type(self) -> str | None:
        return self.environ.get("CONTENT_TYPE")

    @property
    def length(self) -> int | None:
        """The body's announced length (None when not announced), or a 400."""
        raw = self.environ.get("CONTENT_LENGTH")
        try:
            length = int(raw) if raw else None
        except ValueError:
            length = -1
        if length is not None and length < 0:
            raise RequestError("invalid Content-Length header")
        return length

    def body(self, limit: int) -> bytes:
        """The body, or a 413 past `limit` bytes (the caller drains what is left)."""
        length = self.length
        if length is not None and length > limit:
            raise RequestError(
                f"body of {length} bytes exceeds the limit of {limit} bytes "
                "(MLCYCLE_MAX_BODY_BYTES)",
                status=413,
            )
        body = self.environ["wsgi.input"].read(limit + 1 if length is None else length)
        if len(body) > limit:
            raise RequestError(
                f"body exceeds the limit of {limit} bytes (MLCYCLE_MAX_BODY_BYTES)", status=413
            )
        self.environ["mlcycle.body_read"] = True
        return body

    def drain(self, cap: int) -> bool:
        """Drop an unread body (up to `cap` bytes); False when the connection must close
        (also when its length cannot be read: the request was answered 400 for it)."""
        if self.environ.get("mlcycle.body_read"):
            return True
        self.environ["mlcycle.body_read"] = True
        try:
            length = self.length
        except RequestError:
            return False
        return drain(self.environ["wsgi.input"], length, cap)


class Predictor:
    """The prediction routes' core, shared by the Flask views and the raw-WSGI fast path."""

    def __init__(self, serving: Serving) -> None:
        self.serving = serving
        self.settings = serving.settings
        self.metrics = serving.metrics
        self.threshold = serving.settings.threshold
        s = serving.settings
        run_dir = serving.run_dir
        slots = ServerSlots(Path(run_dir) / "slots", s.large_body_slots) if run_dir else None
        self.admission = Admission(s.max_in_flight, s.large_body_queue, s.large_body_wait_s, slots)

    def handle(
        self, req: _Req, route: str, protocol: str, version: str | None = None
    ) -> tuple[int, dict, bytes]:
        """Authorise, read, parse, validate, score, log and answer one request.

        Returns:
            (status, headers, JSON body).
        """
        status, headers, payload = self.outcome(req, route, protocol, version)
        return status, headers, orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)

    def outcome(
        self, req, route: str, protocol: str, version: str | None = None
    ) -> tuple[int, dict, dict]:
        """`handle` before the answer is encoded: the gRPC service encodes it as protobuf.

        Args:
            req: a `_Req`, or any object with its `environ`, `content_type`, `body(limit)` and
                `drain(cap)` (and, for a protocol `handle` does not parse, `parse(body,
                schema)`: the gRPC request, `serving.oip.service`).
            route, protocol, version: as `route` gives them.

        Returns:
            (HTTP status, headers, answer or error body with numpy arrays unencoded).
        """
        started = time.perf_counter()
        rid = request_id(req.environ)
        headers = {"X-Request-ID": rid}
        svc = self.serving.state.service
        try:
            with self.admission.enter():
                svc, payload = self._admitted(req, rid, headers, protocol, version)
            status = 200
        except RequestError as exc:
            status, payload = exc.status, exc.to_dict(rid)
            headers.update(exc.headers)
        except Exception:  # a bug or a broken dependency, never the client's fault
            log.exception("request %s on %s failed", rid, route)
            status, payload = 500, internal_error_body(rid)
        if not req.drain(self.settings.drain_bytes):
            headers["Connection"] = "close"
        self.metrics.observe_request(
            route, "POST", status, svc.version if svc else "none", time.perf_counter() - started
        )
        return status, headers, payload

    def _admitted(
        self, req: _Req, rid: str, headers: dict, protocol: str, version: str | None
    ) -> tuple[ModelService, dict]:
        """The admitted request: read, check, score, log; (the model used, the answer)."""
        serving = self.serving
        require_api_key(req.environ, self.settings.api_keys)
        if not serving.log_ok():
            raise Unavailable("prediction log unavailable; nothing can be recorded, retry")
        body = req.body(self.settings.max_body_bytes)
        svc = serving.current()
        headers["X-Model-Version"] = svc.version
        headers["X-Model-Name"] = svc.name
        if version is not None and version != svc.version:
            raise RequestError(
                f"version {version} is not loaded (serving {svc.version})",
                status=404,
                field="version",
            )
        if len(body) < self.settings.large_body_bytes:
            return svc, self._score(req, rid, svc, body, protocol, headers)
        with self.admission.large():
            return svc, self._score(req, rid, svc, body, protocol, headers)

    def _score(
        self, req: _Req, rid: str, svc: ModelService, body: bytes, protocol: str, headers: dict
    ) -> dict:
        """Score, log and answer; `X-Out-Of-Range` goes into `headers` when rows are flagged.

        Nothing is logged for a request refused on the way (out of range in reject mode, an
        unseen category, a non-finite model output).
        """
        predlog = self.serving.predlog
        explain = explain_asked(req, protocol, body)
        # Announced early, so a commit (or micro-batch) leader may wait briefly for these rows.
        log_turn = predlog.expect() if predlog is not None else None
        microbatch_turn = svc.batcher.expect() if svc.batcher is not None else None
        try:
            columns, arrays, preds, extra, flags = self._predict(
                req, svc, body, protocol, microbatch_turn
            )
            # Before the log write: a request whose explanation fails is answered as refused.
            explained = (
                self.serving.explainers.explain(svc, arrays, len(preds)) if explain else None
            )
            rows, batches = self._log_entries(rid, svc, columns, arrays, preds)
            if predlog is not None:
                predlog.write(rows, batches, expected=log_turn)
        finally:
            for turn in (log_turn, microbatch_turn):
                if turn is not None:
                    turn.cancel()  # a no-op once the rows were handed over
        if flags is not None:
            headers["X-Out-Of-Range"] = ",".join(flags.counts)
        answer = self._answer(rid, svc, protocol, preds, extra, flags)
        if self.serving.shadow is not None:  # after the answer is built; never blocks
            self.serving.shadow.offer(rid, svc, arrays, preds)
        if explained is not None:
            attach_explanations(protocol, answer, extra, explained)
        return answer

    def _predict(
        self,
        req: _Req,
        svc: ModelService,
        body: bytes,
        protocol: str,
        microbatch_turn=None,
    ) -> tuple[dict, dict, np.ndarray, object, OutOfRange | None]:
        """Parse, validate, guard and score.

        The parsers and the validator raise `RequestError` for every input problem; anything
        else they raise is a bug and becomes a 500 in `handle`.

        Returns:
            (raw columns, validated arrays, predictions, extra, out-of-range flags or None).
        """
        if protocol == "invocations":
            columns, n = protocols.parse_invocations(body, req.content_type, svc.schema)
            extra = None
        elif protocol == "predict":
            columns, n, extra = protocols.parse_predict(body, req.content_type, svc.schema)
        elif protocol == "v2":
            columns, n, extra = protocols.parse_v2(body, req.content_type, svc.schema)
        else:  # a request that parses itself: OIP v2 over gRPC (`serving.oip.service`)
            columns, n, extra = req.parse(body, svc.schema)
        if n > self.settings.max_rows:
            raise RequestError(
                f"{n} rows exceed the limit of {self.settings.max_rows} rows per request "
                "(MLCYCLE_MAX_ROWS)",
                status=413,
            )
        arrays = svc.schema.validate(columns, n)
        flags = self._check_range(svc, arrays, n)
        return columns, arrays, svc.score(arrays, columns, n, microbatch_turn), extra, flags

    def _check_range(self, svc: ModelService, arrays: dict, n: int) -> OutOfRange | None:
        """Count rows outside the training reference; refuse them (422) in reject mode, and
        always for unseen categories, which the model cannot score."""
        flags = svc.check_range(arrays, n)
        if flags is None:
            return None
        self.metrics.observe_out_of_range(flags.counts)
        if flags.unseen is not None or self.settings.out_of_range == "reject":
            raise svc.guard.refusal(flags, arrays)
        return flags

    def _log_entries(
        self, rid: str, svc: ModelService, columns: dict, arrays: dict, preds: np.ndarray
    ) -> tuple[list[tuple], list[tuple]]:
        """The scored rows as prediction-log entries: one row each, or one columnar batch for
        requests of `log_batch_rows` rows or more. Empty when the log is off."""
        if self.serving.predlog is None:
            return [], []
        names = svc.schema.names
        big = self.settings.log_batch_rows
        batch = big > 0 and len(preds) >= big
        values = arrays if batch else columns
        if self.serving.log_privacy is not None:  # hashed columns replaced, dropped left out
            names, values = self.serving.log_privacy.protect(names, values, arrays)
        if batch:
            return [], [build_batch(rid, svc.name, svc.version, svc.run_id, names, values, preds)]
        return build_rows(rid, svc.name, svc.version, svc.run_id, names, values, preds), []

    def _answer(
        self,
        rid: str,
        svc: ModelService,
        protocol: str,
        preds: np.ndarray,
        extra,
        flags: OutOfRange | None,
    ) -> dict:
        """The response body; flagged rows are named only where each protocol has room:
        `/invocations` top-level `out_of_range` and v2 `parameters.out_of_range` (both only
        when some row is flagged), `/predict` an `out_of_range` list per row, always."""
        self.metrics.observe_scores(svc.version, preds)
        if protocol == "invocations":
            if flags is None:
                return {"predictions": preds}
            return {"predictions": preds, "out_of_range": flags.listing()}
        if protocol == "predict":
            return self._predict_body(svc, preds, extra, flags)
        body = {
            "model_name": svc.name,
            "model_version": svc.version,
            "id": extra or rid,
            "outputs": [
                {"name": "probability", "datatype": "FP64", "shape": [len(preds)], "data": preds}
            ],
        }
        if flags is not None:
            body["parameters"] = {"out_of_range": flags.listing()}
        return body

    def _predict_body(
        self, svc: ModelService, preds: np.ndarray, single: bool, flags: OutOfRange | None
    ) -> dict:
        threshold = self.threshold
        decisions = (preds >= threshold).astype(np.int8)
        common = {"threshold": threshold, "model_name": svc.name, "model_version": svc.version}
        if single:
            return {
                "probability": float(preds[0]),
                "decision": int(decisions[0]),
                "out_of_range": flags.columns[0] if flags is not None else (),
                **common,
            }
        ranges = flags.by_row(len(preds)) if flags is not None else [()] * len(preds)
        return {
            "predictions": [
                {"probability": p, "decision": d, "out_of_range": r}
                for p, d, r in zip(preds.tolist(), decisions.tolist(), ranges, strict=True)
            ],
            **common,
        }

    def route(self, method: str, path: str) -> tuple[str, str, str | None] | None:
        """(metrics route, protocol, version) for a prediction path, else None."""
        if method != "POST":
            return None
        if path == "/invocations":
            return "/invocations", "invocations", None
        if path == "/predict":
            return "/predict", "predict", None
        if path.startswith("/v2/models/") and path.endswith("/infer"):
            parts = path.split("/")
            if len(parts) == 5 and parts[3] == self.settings.model_name:
                return "/v2/infer", "v2", None
            if len(parts) == 7 and parts[3] == self.settings.model_name and parts[4] == "versions":
                return "/v2/infer", "v2", parts[5]
        return None


_REASONS = {
    200: "200 OK",
    400: "400 Bad Request",
    401: "401 Unauthorized",
    403: "403 Forbidden",
    404: "404 Not Found",
    413: "413 Content Too Large",
    415: "415 Unsupported Media Type",
    422: "422 Unprocessable Content",
    500: "500 Internal Server Error",
    503: "503 Service Unavailable",
}


class FastPath:
    """WSGI middleware answering the prediction routes without Flask's per-request machinery.

    Same core (`Predictor.handle`) and same responses as the Flask views; every other path
    goes to Flask. Measured in docs/serving.md; off with `MLCYCLE_FAST_PATH=false`.
    """

    def __init__(self, flask_wsgi, predictor: Predictor) -> None:
        self._next = flask_wsgi
        self._predictor = predictor

    def __call__(self, environ, start_response):
        match = self._predictor.route(environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""))
        if match is None:
            return self._next(environ, start_response)
        status, headers, body = self._predictor.handle(_Req(environ), *match)
        start_response(
            _REASONS.get(status, f"{status} Error"),
            [("Content-Type", JSON), ("Content-Length", str(len(body))), *headers.items()],
        )
        return [body]


def _register_prediction_routes(app: Flask, predictor: Predictor) -> None:
    def respond(route: str, protocol: str, version: str | None = None) -> Response:
        status, headers, body = predictor.handle(_Req(request.environ), route, protocol, version)
        return Response(body, status, headers=headers, mimetype=JSON)

    @app.post("/invocations")
    def invocations():
        return respond("/invocations", "invocations")

    @app.post("/predict")
    def predict():
        return respond("/predict", "predict")

    @app.post("/v2/models/<name>/infer")
    def v2_infer(name: str):
        if name != predictor.settings.model_name:
            return _error(RequestError(f"unknown model '{name}'", 404, "name"))
        return respond("/v2/infer", "v2")

    @app.post("/v2/models/<name>/versions/<version>/infer")
    def v2_infer_version(name: str, version: str):
        if name != predictor.settings.model_name:
            return _error(RequestError(f"unknown model '{name}'", 404, "name"))
        return respond("/v2/infer", "v2", version)


def _register_ops_routes(app: Flask, serving: Serving) -> None:
    settings = serving.settings

    def ready_response(payload_ok: dict | None = None) -> Response:
        detail = serving.state.detail()
        draining = serving.draining()
        ok = serving.ready()
        detail.update(ready=ok, draining=draining, worker_pid=os.getpid())
        if serving.predlog is not None:
            detail["prediction_log"] = serving.predlog.health()
        return _json({**detail, **(payload_ok or {})}, 200 if ok else 503, _version_header(serving))

    @app.get("/ping")
    def ping():
        draining = serving.draining()
        if draining is None and serving.state.service is not None:
            return Response("\n", 200, headers=_version_header(serving), mimetype="text/plain")
        why = f"draining: {draining}" if draining else "not ready"
        return Response(why + "\n", 503, headers=_version_header(serving), mimetype="text/plain")

    @app.get("/health")
    def health():
        return ready_response({"status": "ok" if serving.state.service else "loading"})

    @app.get("/v2/health/live")
    def v2_live():
        live, why = serving.live()
        return _json({"live": live, **({"reason": why} if why else {})}, 200 if live else 503)

    @app.get("/v2/health/ready")
    def v2_ready():
        return ready_response()

    @app.get("/v2")
    def v2_server():
        from mlcycle import __version__

        return _json(
            {"name": "mlcycle", "version": __version__, "extensions": ["model_repository_health"]}
        )

    @app.get("/v2/models/<name>")
    @app.get("/v2/models/<name>/versions/<version>")
    def v2_model(name: str, version: str | None = None):
        try:
            svc = serving.model(name, version)
        except RequestError as exc:
            return _error(exc)
        return _json(svc.metadata(), headers=_version_header(serving))

    @app.get("/v2/models/<name>/ready")
    @app.get("/v2/models/<name>/versions/<version>/ready")
    def v2_model_ready(name: str, version: str | None = None):
        try:
            svc = serving.model(name, version)
        except RequestError as exc:
            return _error(exc)
        return _json(
            {"name": svc.name, "version": svc.version, "ready": True},
            headers=_version_header(serving),
        )

    @app.get("/version")
    def version():
        from mlcycle import __version__

        svc = serving.state.service
        return _json(
            {
                "mlcycle": __version__,
                "model_name": settings.model_name,
                "model_version": svc.version if svc else None,
                "run_id": svc.run_id if svc else None,
            },
            headers=_version_header(serving),
        )

    @app.get("/metrics")
    def metrics():
        if settings.ui_auth:  # scrapers send the admin token as a bearer, browsers the cookie
            try:
                require_ui(request.environ, settings.admin_token)
            except RequestError as exc:
                return _error(exc)
        if serving.predlog is not None:
            serving.metrics.queue_depth.set(serving.predlog.depth())
        body, ctype = render(settings.reports_dir)
        return Response(body, 200, content_type=ctype)

    @app.get("/openapi.json")
    def openapi():
        from mlcycle import __version__
        from serving.openapi import build

        svc = serving.state.service
        doc = build(
            settings.model_name,
            svc.schema if svc else None,
            __version__,
            loaded=svc.version if svc else None,
            example=svc.example_columns()[1] if svc else None,
            api_keys=bool(settings.api_keys),
            admin=bool(settings.admin_token),
        )
        return _json(doc)

    @app.post("/admin/reload")
    def admin_reload():
        try:
            require_admin(request.environ, settings.admin_token)
        except RequestError as exc:
            return _error(exc)
        if serving.watcher is None:
            return _json({"reloaded": False, "reason": "this server serves a fixed model"})
        before = serving.state.service.version if serving.state.service else None
        version, signalled = serving.watcher.reload()
        return _json(
            {
                "reloaded": version != before,
                "previous_version": before,
                "model_version": version,
                "worker_pid": os.getpid(),
                "other_workers_signalled": signalled,
                "detail": serving.state.detail(),
            },
            headers=_version_header(serving),
        )


def _version_header(serving: Serving) -> dict:
    svc = serving.state.service
    return {"X-Model-Version": svc.version, "X-Model-Name": svc.name} if svc else {}


def _register_error_handlers(app: Flask) -> None:
    """JSON bodies with the request id for what Flask itself refuses (unknown path, wrong
    method) and for anything a view raises unexpectedly (a 500, logged with its traceback)."""

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        status = exc.code or 500
        code = ERROR_CODES.get(status) or exc.name.upper().replace(" ", "_")
        rid = request_id(request.environ)
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        body = {"error_code": code, "message": exc.description or exc.name, "request_id": rid}
        return _json(body, status, {**headers, "X-Request-ID": rid})

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        rid = request_id(request.environ)
        log.exception("request %s on %s %s failed", rid, request.method, request.path)
        return _json(internal_error_body(rid), 500, {"X-Request-ID": rid})
