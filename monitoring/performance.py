"""Live performance of served model versions: realised metrics where labels exist, and a
confidence-based estimate of the AUC from the served probabilities alone.

In: per served row its time, model version, served probability and label (NaN until it
arrives; `mlcycle.core.labelled.read_labelled` gives them), a window length, and per version a
`Calibrator` fitted on a holdout with known labels and its validation AUC. Out:
`VersionPerformance` per version: metrics over the whole range and per time window (windows
aligned to multiples of the length since the Unix epoch, so runs agree). Pure computation:
no I/O (`monitoring.perfreport` writes the results).

Realised metrics (labelled rows only): ROC AUC (None while the labels hold one class only),
log loss, Brier score, positive rate, a reliability curve of 10 equal-width bins of the served
probability. Label coverage = labelled rows / served rows.

Estimated AUC: confidence-based performance estimation (CBPE), as NannyML describes it
("Estimation of Performance of the Monitored Model",
https://nannyml.readthedocs.io/en/stable/how_it_works/performance_estimation.html). When the
probabilities are calibrated, a row with probability p is a positive with chance p, so every
confusion matrix is known in expectation: at a threshold t the expected true positives are
the sum of p_i over rows with score >= t and the expected false positives the sum of
(1 - p_i), which gives the expected ROC curve and its area. Summed over all thresholds that
area is the expected number of correctly ordered (positive, negative) pairs over the expected
number of pairs, sum_{i!=j} p_i (1 - p_j) [s_i > s_j] / sum_{i!=j} p_i (1 - p_j) (ties count
one half), computed here in O(n log n) by sorting the scores (`pair_auc`). The served
probabilities are first calibrated on a holdout of the version with known labels (isotonic
regression; Niculescu-Mizil & Caruana, "Predicting good probabilities with supervised
learning", ICML 2005), since a model's scores are rarely calibrated as they are.

When it fails: the estimate assumes that P(y | x) is what it was on the holdout. It follows
covariate shift (P(x) changes: the probabilities move, stay calibrated, and the estimate
moves with them) but not concept drift: when the relationship between inputs and outcome
changes, the served probabilities are no longer calibrated and the estimate stays where the
old relationship would put it while the realised AUC falls. Nor does it hold for inputs far
outside the training data, or for a holdout that is the training data itself (in-sample
scores look better calibrated than they are). Only labels reveal those cases: compare the
estimate with the realised AUC once they arrive.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

N_BINS = 10
MIN_CALIBRATION_ROWS = 200  # fewer holdout rows: identity calibration (the scores as served)
_EPS = 1e-15  # probabilities are clipped to [eps, 1 - eps] for the log loss


@dataclass(frozen=True)
class Calibrator:
    """A monotone map from served probabilities to calibrated ones (piecewise linear).

    Attributes:
        x: increasing served probabilities (the isotonic fit's thresholds); empty: identity.
        y: calibrated probability at each of `x`.
        n_holdout: holdout rows the map was fitted on (0 for identity).
        method: `isotonic`, or `identity` with the reason.
    """

    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()
    n_holdout: int = 0
    method: str = "identity"

    def __call__(self, probabilities: Any) -> np.ndarray:
        """The calibrated probabilities of `probabilities` (clipped to [0, 1])."""
        p = np.clip(np.asarray(probabilities, dtype=np.float64), 0.0, 1.0)
        if not self.x:
            return p
        return np.interp(p, self.x, self.y)


def fit_calibrator(
    probabilities: Any, labels: Any, min_rows: int = MIN_CALIBRATION_ROWS
) -> Calibrator:
    """Fit an isotonic calibration of a version's probabilities on a holdout with labels.

    Args:
        probabilities: the version's probabilities on the holdout rows.
        labels: the holdout's 0/1 labels (rows with a missing label or probability are left
            out).
        min_rows: fewest usable rows for a fit; below it, or with one class only, the
            identity map is returned (the scores are taken as calibrated).

    Returns:
        The calibrator.
    """
    from sklearn.isotonic import IsotonicRegression

    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    keep = np.isfinite(p) & np.isfinite(y)
    p, y = p[keep], y[keep]
    if len(p) < max(min_rows, 2):
        return Calibrator(method=f"identity: {len(p)} holdout rows < {min_rows}")
    if y.min() == y.max():
        return Calibrator(method="identity: the holdout's labels hold one class")
    fit = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
    return Calibrator(
        x=tuple(float(v) for v in fit.X_thresholds_),
        y=tuple(float(v) for v in fit.y_thresholds_),
        n_holdout=int(len(p)),
        method="isotonic",
    )


def pair_auc(scores: Any, positive: Any) -> float | None:
    """The share of correctly ordered (positive, negative) pairs, each row being a positive
    with weight `positive` and a negative with weight `1 - positive` (ties count one half).

    With 0/1 labels as `positive` this is the ROC AUC (Mann-Whitney); with calibrated
    probabilities it is the CBPE estimate of the AUC (see the module docstring). A row is never
    paired with itself. O(n log n).

    Args:
        scores: the ranking scores (served probabilities).
        positive: per row, its label or its probability of being a positive.

    Returns:
        The AUC, or None when there is no (positive, negative) pair (one class only).
    """
    s = np.asarray(scores, dtype=np.float64)
    w = np.asarray(positive, dtype=np.float64)
    if len(s) < 2:
        return None
    order = np.argsort(s, kind="mergesort")
    s, w = s[order], w[order]
    v = 1.0 - w
    group = np.cumsum(np.r_[True, s[1:] != s[:-1]]) - 1
    pos = np.bincount(group, weights=w)
    neg = np.bincount(group, weights=v)
    own = np.bincount(group, weights=w * v)  # a row's pair with itself, never counted
    neg_below = np.cumsum(neg) - neg
    pairs = w.sum() * v.sum() - own.sum()
    if pairs <= 1e-12:
        return None
    ordered = float(np.sum(pos * neg_below) + 0.5 * np.sum(pos * neg - own))
    return ordered / float(pairs)


def log_loss(probabilities: Any, labels: Any) -> float | None:
    """Mean negative log-likelihood of 0/1 `labels` (probabilities clipped to 1e-15)."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), _EPS, 1 - _EPS)
    y = np.asarray(labels, dtype=np.float64)
    if not len(p):
        return None
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def brier_score(probabilities: Any, labels: Any) -> float | None:
    """Mean squared difference between probability and 0/1 label."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if not len(p):
        return None
    return float(np.mean((p - y) ** 2))


@dataclass(frozen=True)
class ReliabilityBin:
    """One bin of a reliability (calibration) curve.

    Attributes:
        lower: the bin's lowest probability (inclusive).
        upper: its highest (exclusive; the last bin includes 1).
        count: labelled rows in the bin.
        mean_predicted: their mean served probability (None when empty).
        observed_rate: their share of positive labels (None when empty).
    """

    lower: float
    upper: float
    count: int
    mean_predicted: float | None
    observed_rate: float | None


def reliability_curve(
    probabilities: Any, labels: Any, n_bins: int = N_BINS
) -> list[ReliabilityBin]:
    """Equal-width bins of the served probability with the observed positive rate in each.

    Args:
        probabilities: served probabilities of labelled rows.
        labels: their 0/1 labels.
        n_bins: number of bins over [0, 1].

    Returns:
        `n_bins` bins, lowest first (empty ones included, with None means).
    """
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 0.0, 1.0)
    y = np.asarray(labels, dtype=np.float64)
    index = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    sum_p = np.bincount(index, weights=p, minlength=n_bins)
    sum_y = np.bincount(index, weights=y, minlength=n_bins)
    out = []
    for b in range(n_bins):
        n = int(counts[b])
        out.append(
            ReliabilityBin(
                lower=b / n_bins,
                upper=(b + 1) / n_bins,
                count=n,
                mean_predicted=float(sum_p[b] / n) if n else None,
                observed_rate=float(sum_y[b] / n) if n else None,
            )
        )
    return out


@dataclass
class WindowMetrics:
    """Metrics of one version over one time window `[start, end)`.

    Attributes:
        start: window start (Unix time).
        end: window end (Unix time).
        n_predictions: served rows.
        n_labelled: of them, rows with a label.
        label_coverage: `n_labelled / n_predictions`.
        auc: realised ROC AUC on the labelled rows (None with one class only).
        log_loss: realised log loss (None without labels).
        brier: realised Brier score (None without labels).
        positive_rate: share of positive labels (None without labels).
        mean_prediction: mean served probability over all served rows.
        estimated_auc: CBPE estimate over all served rows (None when undefined).
        estimated_positive_rate: mean calibrated probability over all served rows.
        reliability: the reliability curve of the labelled rows.
    """

    start: float
    end: float
    n_predictions: int
    n_labelled: int
    label_coverage: float
    auc: float | None
    log_loss: float | None
    brier: float | None
    positive_rate: float | None
    mean_prediction: float | None
    estimated_auc: float | None
    estimated_positive_rate: float | None
    reliability: list[ReliabilityBin] = field(default_factory=list)

    def as_dict(self) -> dict:
        """JSON-ready values."""
        return asdict(self)


@dataclass
class VersionPerformance:
    """Live performance of one model version.

    Attributes:
        version: the model version.
        overall: metrics over every row of the version in the range.
        windows: metrics per time window that holds served rows, oldest first.
        validation_auc: the version's validation AUC (None when unknown).
        calibration: how the probabilities were calibrated for CBPE (`Calibrator.method`).
        alert: live AUC below validation AUC minus the margin, on at least `min_labelled`
            labelled rows (`live_auc_alert`).
    """

    version: str
    overall: WindowMetrics
    windows: list[WindowMetrics]
    validation_auc: float | None
    calibration: str
    alert: bool

    def as_dict(self) -> dict:
        """JSON-ready values."""
        return asdict(self)


def live_auc_alert(live_auc: float | None, validation_auc: float | None, margin: float) -> bool:
    """True when the live AUC is below the validation AUC by more than `margin`.

    Args:
        live_auc: realised AUC on live labels (None: not known yet, never an alert).
        validation_auc: the version's validation AUC (None: unknown, never an alert).
        margin: how far below validation the live AUC may fall (e.g. 0.05).
    """
    if live_auc is None or validation_auc is None:
        return False
    if math.isnan(live_auc) or math.isnan(validation_auc):
        return False
    return live_auc < validation_auc - margin


def window_metrics(
    start: float,
    end: float,
    predictions: Any,
    labels: Any,
    calibrator: Calibrator | None = None,
    n_bins: int = N_BINS,
) -> WindowMetrics:
    """The metrics of one set of served rows (see `WindowMetrics`).

    Args:
        start: window start (Unix time).
        end: window end (Unix time).
        predictions: served probabilities.
        labels: 0/1 labels, NaN where none has arrived.
        calibrator: calibration for the CBPE estimate (None: identity).
        n_bins: reliability curve bins.
    """
    p = np.asarray(predictions, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    known = np.isfinite(y)
    pl, yl = p[known], y[known]
    calibrated = (calibrator or Calibrator())(p)
    n, n_labelled = len(p), int(known.sum())
    return WindowMetrics(
        start=float(start),
        end=float(end),
        n_predictions=n,
        n_labelled=n_labelled,
        label_coverage=n_labelled / n if n else 0.0,
        auc=pair_auc(pl, yl),
        log_loss=log_loss(pl, yl),
        brier=brier_score(pl, yl),
        positive_rate=float(yl.mean()) if n_labelled else None,
        mean_prediction=float(p.mean()) if n else None,
        estimated_auc=pair_auc(p, calibrated),
        estimated_positive_rate=float(calibrated.mean()) if n else None,
        reliability=reliability_curve(pl, yl, n_bins),
    )


def evaluate(
    ts: Any,
    versions: Any,
    predictions: Any,
    labels: Any,
    window_s: float,
    calibrators: dict[str, Calibrator] | None = None,
    validation_auc: dict[str, float] | None = None,
    margin: float = 0.05,
    min_labelled: int = 100,
    start: float | None = None,
    end: float | None = None,
) -> list[VersionPerformance]:
    """Live performance per served version, over the whole range and per time window.

    Args:
        ts: Unix time per served row.
        versions: model version per row.
        predictions: served probability per row (rows with a non-finite one are left out).
        labels: 0/1 label per row, NaN where none has arrived.
        window_s: window length in seconds (windows start at multiples of it).
        calibrators: per version, its holdout calibration (missing: identity).
        validation_auc: per version, its validation AUC (missing: no alert).
        margin: alert when live AUC < validation AUC - margin.
        min_labelled: fewest labelled rows of a version for its alert.
        start: range start for `overall` (default: the first row's time).
        end: range end for `overall` (default: just after the last row's time).

    Returns:
        One `VersionPerformance` per version, ordered by version (numerically when they are
        numbers).
    """
    if window_s <= 0:
        raise ValueError(f"window_s must be positive, got {window_s}")
    ts = np.asarray(ts, dtype=np.float64)
    versions = np.asarray([str(v) for v in versions], dtype=object)
    p = np.asarray(predictions, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    keep = np.isfinite(p) & np.isfinite(ts)
    ts, versions, p, y = ts[keep], versions[keep], p[keep], y[keep]
    calibrators, validation_auc = calibrators or {}, validation_auc or {}
    out = []
    for version in sorted(set(versions.tolist()), key=_version_key):
        mine = versions == version
        vts, vp, vy = ts[mine], p[mine], y[mine]
        calibrator = calibrators.get(version) or Calibrator()
        lo = float(vts.min()) if start is None else float(start)
        hi = float(np.nextafter(vts.max(), np.inf)) if end is None else float(end)
        overall = window_metrics(lo, hi, vp, vy, calibrator)
        slot = np.floor(vts / window_s)
        windows = []
        for s in np.unique(slot):
            rows = slot == s
            windows.append(
                window_metrics(s * window_s, (s + 1) * window_s, vp[rows], vy[rows], calibrator)
            )
        valid = validation_auc.get(version)
        alert = overall.n_labelled >= min_labelled and live_auc_alert(overall.auc, valid, margin)
        out.append(VersionPerformance(version, overall, windows, valid, calibrator.method, alert))
    return out


def _version_key(version: str) -> tuple:
    return (0, int(version), "") if version.isdigit() else (1, 0, version)
