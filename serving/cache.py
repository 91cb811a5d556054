"""Prediction cache: an LRU from the canonical input row to its prediction.

In: rows as tuples of validated values in schema order. Out: cached predictions or misses,
and each lookup's hit and miss counts to `on_lookup` (the serving metrics).
One cache belongs to one loaded model version, so a model swap invalidates it by construction.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable


class PredictionCache:
    """A thread-safe LRU of at most `size` rows; `hits`/`misses` count looked-up rows.

    Args:
        size: most rows kept.
        on_lookup: called once per `get_many` with (rows found, rows not found).
    """

    def __init__(self, size: int, on_lookup: Callable[[int, int], None] | None = None) -> None:
        self.size = size
        self._on_lookup = on_lookup
        self._data: OrderedDict[tuple, float] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_many(self, keys: list[tuple]) -> list[float | None]:
        """Look up each key (refreshing hits); None marks a miss."""
        out = []
        with self._lock:
            data = self._data
            for k in keys:
                v = data.get(k)
                if v is not None:
                    data.move_to_end(k)
                out.append(v)
        hits = len(out) - out.count(None)
        self.hits += hits
        self.misses += len(out) - hits
        if self._on_lookup is not None:
            self._on_lookup(hits, len(out) - hits)
        return out

    def put_many(self, keys: list[tuple], values) -> None:
        """Store predictions, evicting the least recently used rows beyond `size`."""
        with self._lock:
            data = self._data
            for k, v in zip(keys, values, strict=True):
                data[k] = float(v)
            while len(data) > self.size:
                data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)
