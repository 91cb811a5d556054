"""Routes of the web pages (Predict, Models, Monitoring, Live) and their small JSON helpers.

In: the serving app's state (`app.extensions["mlcycle"]`: settings, the `ModelService` this
worker serves, the registry watcher), the MLflow registry, the reports folder and the
prediction log. Out: HTML pages (Jinja, autoescaped; scripts only from /ui/static, enforced by
a Content-Security-Policy), report files by id, and JSON under /ui/api/. Predictions themselves
go from the browser to the public API (`POST /predict`, `POST /invocations`) on the same origin.
Drift reports (Evidently HTML, which carries its own scripts) are served with
`Content-Security-Policy: sandbox allow-scripts`: they run in an opaque origin, with no access
to the pages' cookies, storage or API. With `MLCYCLE_UI_AUTH` every page needs a login
(`/ui/login`, the admin token; `serving.auth.require_ui`).
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import quote

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
)

from serving.auth import UI_COOKIE, UI_SESSION_S, require_admin, require_ui, ui_session
from serving.errors import RequestError, request_id
from serving.web import charts, forms, models, performance, reports
from serving.web.live import LiveSampler
from serving.web.settings import get_settings as web_settings
from serving.web.shadow import shadow_view

log = logging.getLogger(__name__)

blueprint = Blueprint(
    "web",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/ui/static",
)
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'self'"
)
REPORT_CSP = "sandbox allow-scripts"
_OPEN = frozenset({"web.static", "web.login_page", "web.login"})
_started = time.time()
_samplers: dict[int, LiveSampler] = {}


def _serving() -> Any:
    return current_app.extensions.get("mlcycle")


def _settings() -> Any:
    serving = _serving()
    if serving is not None:
        return serving.settings
    from serving.settings import get_settings

    return get_settings()


def _service() -> Any:
    serving = _serving()
    return serving.state.service if serving is not None else None


def _page(template: str, **context: Any) -> Response:
    svc = _service()
    html = render_template(
        f"web/{template}",
        model_name=_settings().model_name,
        serving_version=svc.version if svc else None,
        **context,
    )
    resp = Response(html, mimetype="text/html")
    resp.headers["Content-Security-Policy"] = PAGE_CSP
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


def _json_error(exc: RequestError) -> Response:
    """The API's JSON error body (with the request id) for a refused web action."""
    rid = request_id(request.environ)
    resp = jsonify(exc.to_dict(rid))
    resp.status_code = exc.status
    resp.headers.update({**exc.headers, "X-Request-ID": rid})
    return resp


def form_fields(svc: Any) -> list[forms.Field]:
    """The predict form for a served model: from its spec, else from its validation schema."""
    if svc is None:
        return []
    if getattr(svc, "spec", None):
        return forms.fields_from_spec(svc.spec)
    return forms.fields_from_signature(
        [(c.name, c.dtype if c.numeric else "string") for c in svc.schema.columns]
    )


@blueprint.before_request
def _logged_in() -> Response | None:
    """With `MLCYCLE_UI_AUTH`: pages without a session go to the login form, API calls get
    the JSON 401/403."""
    settings = _settings()
    if not settings.ui_auth or request.endpoint in _OPEN:
        return None
    try:
        require_ui(request.environ, settings.admin_token)
    except RequestError as exc:
        if request.method == "GET" and not request.path.startswith("/ui/api/"):
            return redirect(f"/ui/login?next={quote(request.full_path.rstrip('?'))}", 303)
        return _json_error(exc)
    return None


@blueprint.get("/ui/login")
def login_page(error: str | None = None, status: int = 200) -> Response:
    """The login form of `MLCYCLE_UI_AUTH` (the admin token)."""
    resp = _page("login.html", next=_next_path(request.values.get("next")), error=error)
    resp.status_code = status
    return resp


@blueprint.post("/ui/login")
def login() -> Response:
    """Check the admin token from the form; set the session cookie and go to `next`."""
    settings = _settings()
    try:
        require_admin({"HTTP_X_ADMIN_TOKEN": request.form.get("token", "")}, settings.admin_token)
    except RequestError as exc:
        return login_page(exc.message, exc.status)
    resp = redirect(_next_path(request.form.get("next")), 303)
    resp.set_cookie(
        UI_COOKIE,
        ui_session(settings.admin_token),
        max_age=UI_SESSION_S,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.is_secure,
    )
    return resp


def _next_path(value: str | None) -> str:
    """A local path to go to after the login (anything else: the Predict page)."""
    value = value or ""
    return value if value.startswith("/") and not value.startswith(("//", "/\\")) else "/ui/"


@blueprint.get("/")
@blueprint.get("/ui/")
@blueprint.get("/ui/predict")
def predict_page() -> Response:
    """The predict form (single row) and the CSV batch upload."""
    return _page("predict.html", fields=form_fields(_service()), threshold=_settings().threshold)


@blueprint.get("/ui/models")
def models_page() -> Response:
    """Versions of the registered model with stage, aliases, AUC, promotion info and actions."""
    from mlcycle.core.config import configure_mlflow
    from mlcycle.core.registry import RegistryError, history

    configure_mlflow()
    import mlflow

    settings, ui = _settings(), web_settings().mlflow_ui_url
    svc = _service()
    client = mlflow.MlflowClient()
    error, rows, events = None, [], []
    try:
        serving_version = svc.version if svc else None
        rows = models.version_rows(client, settings.model_name, serving_version, ui, _refused())
        events = list(reversed(history(settings.model_name, client)))[:20]
    except RegistryError as exc:
        error = str(exc)
    except Exception as exc:  # registry down: say so instead of a 500
        log.warning("registry unreadable for the models page: %s", exc)
        error = f"the model registry cannot be read: {type(exc).__name__}"
    return _page(
        "models.html",
        rows=rows,
        events=events,
        error=error,
        admin_enabled=bool(settings.admin_token),
        mlflow_ui_url=ui,
        shadow=shadow_view(settings),
    )


def _refused() -> dict[str, str]:
    """The version this worker refused to load (bad signature) and why, or nothing."""
    serving = _serving()
    error = serving.state.load_error if serving is not None else None
    if error and error.get("refused"):
        return {str(error["version"]): str(error["refused"])}
    return {}


@blueprint.get("/ui/monitoring")
def monitoring_page() -> Response:
    """Drift runs (newest first) with links to their reports, the drift/volume chart, and live
    AUC per model version from the performance job's reports (a note when there are none)."""
    settings = _settings()
    runs = reports.list_runs(settings.reports_dir)
    now = time.time()
    oldest = min((r.ts for r in runs if r.ts), default=now)
    since = max(min(oldest, now - 48 * 3600), now - 14 * 86400)
    volume = charts.hourly_volume(settings.prediction_log_url, since)
    drift = [
        (r.ts, r.drift_share, r.drift)
        for r in runs
        if r.ts and r.drift_share is not None and r.ts >= since
    ]
    perf, perf_chart = _live_performance(settings, now)
    return _page(
        "monitoring.html",
        runs=runs,
        chart=charts.drift_volume_svg(drift, volume, now),
        perf=perf,
        perf_chart=perf_chart,
    )


def _live_performance(settings: Any, now: float) -> tuple[Any, str | None]:
    """The latest live-performance figures and their chart; (None, None) when there are none
    or they cannot be shown (logged), so the page renders whatever the reports folder holds."""
    try:
        perf = performance.read_live_performance(settings.reports_dir, settings.model_name, now)
        if perf is None:
            return None, None
        return perf, charts.live_auc_svg(perf.series, perf.margin)
    except Exception:
        log.warning("live performance cannot be shown", exc_info=True)
        return None, None


@blueprint.get("/ui/reports/<report_id>")
def report(report_id: str) -> Response:
    """An Evidently HTML report (or `<id>.json` summary) by id, from the reports folder only."""
    suffix = ".json" if report_id.endswith(".json") else ".html"
    path = reports.report_file(_settings().reports_dir, report_id, suffix)
    if path is None:
        abort(404)
    resp = send_file(path, mimetype="application/json" if suffix == ".json" else "text/html")
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Content-Security-Policy"] = REPORT_CSP
    return resp


@blueprint.get("/ui/live")
def live_page() -> Response:
    """Request rate, error rate, latency and score distribution (filled by live.js)."""
    _sampler().start()
    return _page("live.html", interval=web_settings().live_interval)


def _sampler() -> LiveSampler:
    """This worker's sampler over the server-wide metrics (one per app)."""
    app = current_app._get_current_object()
    sampler = _samplers.get(id(app))
    if sampler is None:
        from serving.metrics import render

        reports_dir = _settings().reports_dir

        def source() -> str:
            return render(reports_dir)[0].decode("utf-8")

        sampler = LiveSampler(source, web_settings().live_interval, started=_started)
        _samplers[id(app)] = sampler
    return sampler


@blueprint.get("/ui/api/live")
def live_api() -> Response:
    """The live figures as JSON (see `serving.web.live`)."""
    sampler = _sampler()
    sampler.start()
    return jsonify(sampler.summary())


@blueprint.get("/ui/api/serving")
def serving_api() -> Response:
    """Which version this worker serves now (polled after a promotion)."""
    svc = _service()
    serving = _serving()
    target = serving.state.target_version if serving is not None else None
    return jsonify(
        {
            "model_name": _settings().model_name,
            "model_version": svc.version if svc else None,
            "target_version": target,
        }
    )


def _check_admin() -> None:
    """Pass when the request carries the admin token (`serving.auth`) on a JSON POST.

    Raises:
        RequestError: 401/403 from `require_admin`, 415 for a body other than JSON (an HTML
            form posted from another site cannot set a JSON content type).
    """
    require_admin(request.environ, _settings().admin_token)
    if not request.is_json:
        raise RequestError("send the action as JSON (Content-Type: application/json)", 415)


def _body() -> dict:
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else {}


def _registry_action(action: str) -> Response:
    try:
        _check_admin()
    except RequestError as exc:
        return _json_error(exc)
    from mlcycle.core.config import configure_mlflow
    from mlcycle.core.registry import RegistryError, promote, rollback

    configure_mlflow()
    data = _body()
    name = _settings().model_name
    reason = str(data.get("reason") or "")[:160]
    by = str(data.get("by") or "").strip()[:80] or "web"
    try:
        if action == "promote":
            version = str(data.get("version") or "").strip()
            if not version.isdigit():
                hint = 'give the version to promote, e.g. {"version": "2"}'
                return _json_error(RequestError(hint, field="version"))
            entry = promote(name, version, str(data.get("to") or "production"), reason, by)
        else:
            entry = rollback(name, reason, by)
    except RegistryError as exc:
        return _json_error(RequestError(str(exc)))
    except Exception as exc:
        if getattr(exc, "error_code", None) != "PERMISSION_DENIED":
            raise
        hint = (
            "MLflow refused the change: this server's MLflow user (MLFLOW_TRACKING_USERNAME) "
            "may only read the registry; promote as the promoter (`mlcycle promote`)"
        )
        return _json_error(RequestError(hint, 403))
    serving = _serving()
    if serving is not None and getattr(serving, "watcher", None) is not None:
        serving.watcher.trigger()
    log.info("web %s of %s by %s: %s", action, name, by, entry)
    return jsonify(entry)


@blueprint.post("/ui/api/promote")
def promote_api() -> Response:
    """Promote a version (JSON `{version, to, reason, by}`, header `X-Admin-Token`)."""
    return _registry_action("promote")


@blueprint.post("/ui/api/rollback")
def rollback_api() -> Response:
    """Roll production back to the previous version (JSON `{reason, by}`, admin token)."""
    return _registry_action("rollback")
