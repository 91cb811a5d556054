"""Step 5, evaluate: classification metrics of predicted probabilities.

In: true 0/1 labels and predicted probabilities of class 1. Out: a dict of metrics (`auc`,
`accuracy`, `log_loss`, `precision`, `recall`), prefixed, e.g. `val_auc`, ready for MLflow.
"""

from __future__ import annotations

import numpy as np


def metrics(
    y_true: np.ndarray, proba: np.ndarray, prefix: str = "", threshold: float = 0.5
) -> dict:
    """Compute the pipeline's metrics.

    Args:
        y_true: 0/1 labels.
        proba: predicted probability of class 1.
        prefix: prepended to each name, e.g. "val_".
        threshold: probability at or above which a row counts as class 1.

    Returns:
        `{prefix + name: value}` for auc, accuracy, log_loss, precision and recall.
    """
    from sklearn import metrics as m

    y_true = np.asarray(y_true).astype(int)
    proba = np.clip(np.asarray(proba, dtype=np.float64), 1e-7, 1 - 1e-7)
    y_pred = (proba >= threshold).astype(int)
    both = len(np.unique(y_true)) == 2
    values = {
        "auc": m.roc_auc_score(y_true, proba) if both else float("nan"),
        "accuracy": m.accuracy_score(y_true, y_pred),
        "log_loss": m.log_loss(y_true, proba, labels=[0, 1]),
        "precision": m.precision_score(y_true, y_pred, zero_division=0),
        "recall": m.recall_score(y_true, y_pred, zero_division=0),
    }
    return {f"{prefix}{k}": float(v) for k, v in values.items()}
