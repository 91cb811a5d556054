"""Private prediction-log columns: keyed, stable hashes; dropped columns absent."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcycle.core.prediction_log import HASH_PREFIX, LogPrivacy, build_rows, decode_inputs

KEY = "unit-hash-key-0123456789abcdef"


def test_hashes_are_keyed_stable_and_type_blind_for_numbers():
    privacy, other = LogPrivacy(("a",), (), KEY), LogPrivacy(("a",), (), KEY + "x")
    h = privacy.hash_value
    assert h("RENT").startswith(HASH_PREFIX) and h("RENT") == h("RENT") != h("OWN")
    assert other.hash_value("RENT") != h("RENT")
    assert h(3) == h(3.0) == h(np.float64(3).item())
    assert h(None) is None and h(float("nan")) is None
    with pytest.raises(ValueError, match="MLCYCLE_LOG_HASH_KEY"):
        LogPrivacy(("a",), (), None)


def test_protect_hashes_from_the_validated_arrays_and_leaves_dropped_out():
    privacy = LogPrivacy(("home",), ("income",), KEY)
    raw = {"age": [30, 40], "home": ["RENT", "OWN"], "income": [1.0, 2.0]}
    arrays = {
        "age": np.array([30.0, 40.0]),
        "home": pd.Categorical(["RENT", None], categories=["OWN", "RENT"]),
        "income": np.array([1.0, 2.0]),
    }
    names, values = privacy.protect(("age", "home", "income"), raw, arrays)
    assert names == ("age", "home")
    rows = build_rows("r", "m", "1", "run", names, values, np.array([0.1, 0.2]))
    first, second = (decode_inputs(r[5]) for r in rows)
    assert first == {"age": 30, "home": privacy.hash_value("RENT")}
    assert second == {"age": 40, "home": None}


def test_a_reference_frame_is_hashed_like_the_log():
    privacy = LogPrivacy(("home", "n"), ("income",), KEY)
    frame = pd.DataFrame({"home": ["RENT", None], "n": [2.0, 3.0], "income": [1.0, 2.0]})
    out = privacy.frame(frame)
    assert list(out.columns) == ["home", "n"]
    assert out["home"].tolist() == [privacy.hash_value("RENT"), None]
    assert out["n"].tolist() == [privacy.hash_value(2), privacy.hash_value(3)]
