"""The Models page's shadow section: how the candidate scoring in shadow agrees with production.

In: the prediction log's `shadow_predictions` rows of the last `WINDOW_S` seconds, with their
labels where they have arrived (`mlcycle.core.shadowlog`). Out: a `ShadowView` (agreement,
both versions' live AUC on the same labelled rows) or a note saying why there is none.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from mlcycle.core import shadowlog
from mlcycle.core.logdb import LogError

log = logging.getLogger(__name__)
WINDOW_S = 24 * 3600.0


@dataclass(frozen=True)
class ShadowView:
    """What the page shows: `agreement` (None: nothing to show, `note` says why), live AUC."""

    agreement: shadowlog.Agreement | None
    live: dict | None = None
    note: str = ""
    window_h: float = WINDOW_S / 3600


def shadow_view(settings, now: float | None = None) -> ShadowView:
    """The last day's shadow agreement of `settings.model_name` (never raises)."""
    now = time.time() if now is None else now
    url, name = settings.prediction_log_url, settings.model_name
    try:
        agreement = shadowlog.read_agreement(url, name, now - WINDOW_S, now, settings.threshold)
        if agreement.n == 0:
            hint = "" if settings.shadow else " (shadow scoring is off: MLCYCLE_SHADOW=true)"
            return ShadowView(None, note=f"No shadow rows in the last 24 h{hint}.")
        pairs = shadowlog.read_labelled_pairs(url, name, now - WINDOW_S, now)
        return ShadowView(agreement, shadowlog.live_auc(pairs))
    except LogError as exc:
        return ShadowView(None, note=str(exc))
    except Exception as exc:  # the page must render with the log down
        log.warning("shadow agreement unreadable: %s", exc)
        return ShadowView(None, note=f"the prediction log cannot be read: {type(exc).__name__}")
