"""Read shadow scoring's evidence: how a candidate agrees with production on the same rows.

In: the prediction log's URL, a model name, a time window `[start, end)` (Contract 2's
`shadow_predictions` table, joined to `labels` by `(request_id, row)`).
Out: `read_agreement` -> an `Agreement` (rows, decision-flip rate, mean and p95 |Δp|, the
versions seen); `read_labelled_pairs` -> a DataFrame of both versions' predictions with the
label of each labelled row; `live_auc` -> both versions' AUC on those same rows. Used by the
web app's Models page and by the registration gate (`pipelines.register`); a log without the
table (written before shadow scoring existed) reads as having no shadow rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlcycle.core.logdb import open_log
from mlcycle.core.prediction_log import LABELS, SHADOW


@dataclass(frozen=True)
class Agreement:
    """Shadow against production over one window.

    Attributes:
        n: rows scored by both.
        flip_rate: share of rows whose decision (probability >= threshold) differs.
        mean_abs_delta: mean |shadow - production| probability.
        p95_abs_delta: 95th percentile of that difference.
        shadow_versions: candidate versions seen, ascending.
        production_versions: production versions seen, ascending.
    """

    n: int
    flip_rate: float | None = None
    mean_abs_delta: float | None = None
    p95_abs_delta: float | None = None
    shadow_versions: list[str] = field(default_factory=list)
    production_versions: list[str] = field(default_factory=list)


def _versions(values: Any) -> list[str]:
    return sorted({str(v) for v in values}, key=lambda v: (len(v), v))


def _read(url: str, sql: str, params: dict) -> list[tuple]:
    import sqlalchemy as sa

    engine = open_log(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(SHADOW):
                return []
            return list(conn.execute(sa.text(sql), params))
    finally:
        engine.dispose()


def read_agreement(
    url: str,
    model_name: str,
    start: float,
    end: float,
    threshold: float = 0.5,
    shadow_version: str | None = None,
) -> Agreement:
    """Agreement of the shadow rows of `model_name` with `start <= ts < end`.

    Args:
        url: SQLAlchemy URL of the prediction log.
        model_name: registered model name.
        start: window start (Unix time, inclusive).
        end: window end (Unix time, exclusive).
        threshold: the decision threshold (`MLCYCLE_THRESHOLD`).
        shadow_version: keep only this candidate's rows (None: all).

    Returns:
        The agreement; only `n` = 0 when the window holds no shadow row.

    Raises:
        mlcycle.core.logdb.LogError: the log is missing or cannot be read.
    """
    import numpy as np

    where, params = _where(model_name, start, end, shadow_version)
    rows = _read(
        url,
        "SELECT s.shadow_prediction, s.production_prediction, s.shadow_version, "
        f"s.production_version FROM {SHADOW} AS s WHERE {where}",
        params,
    )
    if not rows:
        return Agreement(0)
    shadow, production, shadow_v, production_v = zip(*rows, strict=True)
    s = np.asarray(shadow, dtype=np.float64)
    p = np.asarray(production, dtype=np.float64)
    delta = np.abs(s - p)
    flips = (s >= threshold) != (p >= threshold)
    return Agreement(
        n=len(s),
        flip_rate=float(flips.mean()),
        mean_abs_delta=float(delta.mean()),
        p95_abs_delta=float(np.percentile(delta, 95)),
        shadow_versions=_versions(shadow_v),
        production_versions=_versions(production_v),
    )


def _where(
    model_name: str, start: float, end: float, shadow_version: str | None
) -> tuple[str, dict]:
    where = "s.model_name = :m AND s.ts >= :a AND s.ts < :b"
    params: dict[str, Any] = {"m": model_name, "a": float(start), "b": float(end)}
    if shadow_version is not None:
        where += " AND s.shadow_version = :v"
        params["v"] = str(shadow_version)
    return where, params


PAIR_COLUMNS = (
    "ts",
    "request_id",
    "row",
    "shadow_version",
    "production_version",
    "shadow_prediction",
    "production_prediction",
    "label",
)


def read_labelled_pairs(
    url: str,
    model_name: str,
    start: float,
    end: float,
    shadow_version: str | None = None,
) -> Any:
    """The labelled shadow rows of the window: both predictions and the observed label.

    Args:
        url, model_name, start, end, shadow_version: as for `read_agreement`.

    Returns:
        A DataFrame with `PAIR_COLUMNS` (label 0/1 int), ordered by `ts`; empty when no
        shadow row of the window is labelled yet.

    Raises:
        mlcycle.core.logdb.LogError: the log is missing or cannot be read.
    """
    import pandas as pd
    import sqlalchemy as sa

    where, params = _where(model_name, start, end, shadow_version)
    sql = (
        'SELECT s.ts, s.request_id, s."row", s.shadow_version, s.production_version, '
        f"s.shadow_prediction, s.production_prediction, l.label FROM {SHADOW} AS s "
        f'JOIN {LABELS} AS l ON l.request_id = s.request_id AND l."row" = s."row" '
        f"WHERE {where} ORDER BY s.ts, s.id"
    )
    engine = open_log(url)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            ok = inspector.has_table(SHADOW) and inspector.has_table(LABELS)
            rows = list(conn.execute(sa.text(sql), params)) if ok else []
    finally:
        engine.dispose()
    frame = pd.DataFrame(rows, columns=list(PAIR_COLUMNS))
    return frame.astype({"label": "int64", "row": "int64"}) if len(frame) else frame


def auc(labels: Any, scores: Any) -> float | None:
    """ROC AUC (Mann-Whitney, ties counted half); None unless both classes are present."""
    import numpy as np
    import pandas as pd

    y = np.asarray(labels, dtype=np.int64)
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return None
    ranks = pd.Series(np.asarray(scores, dtype=np.float64)).rank(method="average").to_numpy()
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def live_auc(pairs: Any) -> dict:
    """Both versions' AUC on the same labelled rows (`read_labelled_pairs`' frame).

    Returns:
        `{"n": rows, "shadow_auc": float | None, "production_auc": float | None}`.
    """
    return {
        "n": len(pairs),
        "shadow_auc": auc(pairs["label"], pairs["shadow_prediction"]) if len(pairs) else None,
        "production_auc": (
            auc(pairs["label"], pairs["production_prediction"]) if len(pairs) else None
        ),
    }
