"""`mlcycle score`'s engine: streaming CSV -> Parquet with the same numbers as the model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serving.scoring import ScoringError, score_file
from tests.unit.serving.stub import StubModel, make_service


def _frame(n):
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "purpose": rng.choice(["car", "edu"], n),
            "age": rng.integers(18, 80, n).astype(float),
            "home": rng.choice(["OWN", "RENT"], n),
            "income": rng.normal(5e4, 2e4, n),
            "ignored": 1,
        }
    )


def test_scores_in_chunks_like_the_model(tmp_path):
    df = _frame(50_000)
    df.loc[3, "home"] = None
    df.to_csv(tmp_path / "in.csv", index=False)
    rows, _, label = score_file(
        tmp_path / "in.csv", tmp_path / "out.parquet", chunk_rows=7000, service=make_service()
    )
    out = pd.read_parquet(tmp_path / "out.parquet")
    cols = {
        c: df[c].to_numpy(dtype=object if c in ("home", "purpose") else float)
        for c in ("age", "income", "home", "purpose")
    }
    cols["home"][3] = None
    assert rows == 50_000 and label == "credit-risk/1"
    np.testing.assert_allclose(out["probability"], StubModel().predict_columns(cols), atol=1e-12)


def test_user_errors_are_scoring_errors(tmp_path):
    with pytest.raises(ScoringError, match="no such file"):
        score_file(tmp_path / "nope.csv", tmp_path / "o.parquet", service=make_service())
    _frame(10).drop(columns=["age"]).to_csv(tmp_path / "a.csv", index=False)
    with pytest.raises(ScoringError, match="age"):
        score_file(tmp_path / "a.csv", tmp_path / "o.parquet", service=make_service())
    bad = _frame(10)
    bad["age"] = "old"
    bad.to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(ScoringError):
        score_file(tmp_path / "b.csv", tmp_path / "o.parquet", service=make_service())
