"""Step 4, baseline: a scikit-learn model to compare the network against.

In: the training split (raw columns), the column roles and the baseline's name (`logreg` or `gbm`).
Out: a fitted sklearn Pipeline (impute + scale/one-hot + classifier) that takes raw columns.
"""

from __future__ import annotations

import pandas as pd

BASELINES = ("logreg", "gbm")


def fit_baseline(
    train: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    target: str,
    name: str,
    seed: int,
):
    """Fit the baseline on raw columns.

    Args:
        train: training split.
        numeric: numeric input columns.
        categorical: categorical input columns.
        target: 0/1 target column.
        name: "logreg" (logistic regression) or "gbm" (histogram gradient boosting).
        seed: random seed.

    Returns:
        The fitted `sklearn.pipeline.Pipeline`.

    Raises:
        ValueError: for an unknown baseline name.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; use one of {', '.join(BASELINES)}")
    steps = []
    if numeric:
        steps.append(
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric)
        )
    if categorical:
        encode = make_pipeline(
            SimpleImputer(strategy="constant", fill_value="<missing>"),
            OneHotEncoder(handle_unknown="ignore"),
        )
        steps.append(("cat", encode, categorical))
    if name == "logreg":
        classifier = LogisticRegression(max_iter=1000, random_state=seed)
    else:
        classifier = HistGradientBoostingClassifier(random_state=seed)
    model = Pipeline([("prep", ColumnTransformer(steps, sparse_threshold=0)), ("clf", classifier)])
    x = _as_input(train[numeric + categorical], categorical)
    return model.fit(x, train[target].to_numpy())


def _as_input(df: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    """Categorical values as text (missing stays missing), as the signature declares."""
    out = df.copy()
    for name in categorical:
        out[name] = out[name].where(out[name].isna(), out[name].astype(str))
    return out


def predict_baseline(model, df: pd.DataFrame, numeric: list[str], categorical: list[str]):
    """Probability of class 1 from the fitted baseline on raw rows."""
    return model.predict_proba(_as_input(df[numeric + categorical], categorical))[:, 1]
