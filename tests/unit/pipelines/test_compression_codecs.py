"""Compressed weights (pipelines.model_code.encode_layers / decode_layers): error bounds, the
sparse round trip, and a pyfunc per variant that scores like its parent on both paths."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.model_code import (
    TabularNetModel,
    decode_layers,
    encode_layers,
    from_csr,
    prune,
    quantize_int8,
    to_csr,
)
from tests.unit.pipelines.conftest import random_network


@pytest.fixture(scope="module")
def parent():
    spec, layers, rows = random_network(1_000, seed=9, hidden=32, scale=0.3)
    return TabularNetModel().setup(spec, layers), rows.head(200), layers


def test_int8_error_is_at_most_half_a_step_per_output_channel():
    w = np.random.default_rng(1).normal(size=(40, 16)) * np.linspace(0.01, 5, 16)
    q, scale = quantize_int8(w)
    assert q.dtype == np.int8 and scale.shape == (16,)
    assert np.all(np.abs(q.astype(np.float64) * scale - w) <= scale / 2 + 1e-6)
    # per channel: the smallest column keeps its precision despite the largest one
    assert np.abs(q[:, 0] * scale[0] - w[:, 0]).max() < 0.01 * np.abs(w[:, 0]).max()


def test_prune_zeroes_the_smallest_share_and_csr_round_trips():
    w = np.random.default_rng(2).normal(size=(30, 20))
    pruned = prune(w, 0.75)
    assert (pruned == 0).mean() == pytest.approx(0.75, abs=0.01)
    kept = np.abs(w[pruned != 0])
    assert kept.min() >= np.abs(w[pruned == 0]).max()
    parts = to_csr(pruned)
    back = from_csr(parts["Wd"], parts["Wj"], parts["Wp"], parts["Wshape"])
    np.testing.assert_allclose(back, pruned, atol=2e-3)  # float16 data


@pytest.mark.parametrize(
    ("method", "ratio"), [("int8", 6.0), ("float16", 3.5), ("prune", 2.5)]
)  # weight bytes vs the float64 parent
def test_each_variant_is_smaller_and_scores_like_its_parent_on_both_paths(parent, method, ratio):
    model, rows, layers = parent
    arrays = encode_layers(layers, method, sparsity=0.5)
    parent_bytes = sum(a.nbytes for a in encode_layers(layers).values())
    assert parent_bytes / sum(a.nbytes for a in arrays.values()) >= ratio
    decoded, compressed = decode_layers(arrays)
    assert compressed
    variant = TabularNetModel().setup(model.spec, decoded, np.float32)
    proba = variant.predict(None, rows)
    assert proba.dtype == np.float64 and proba.shape == (len(rows),)
    columns = {c: rows[c].to_numpy() for c in rows.columns}
    columns = {c: (v.astype(np.float64) if v.dtype != object else v) for c, v in columns.items()}
    np.testing.assert_allclose(variant.predict_columns(columns), proba, atol=1e-6)
    if method != "prune":  # pruning half the weights of a random network moves it further
        assert np.abs(proba - model.predict(None, rows)).max() < 0.01


def test_float_weights_decode_as_they_were():
    layers = [(np.eye(3), np.zeros(3))]
    decoded, compressed = decode_layers(encode_layers(layers))
    assert not compressed and decoded[0][0].dtype == np.float64


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="method"):
        encode_layers([], "int4")
    with pytest.raises(ValueError, match="sparsity"):
        encode_layers([], "prune", sparsity=1.0)
