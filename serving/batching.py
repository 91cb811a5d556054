"""Adaptive micro-batching: concurrent requests in one worker share one forward pass.

In: `submit(columns, n_rows)` from request threads. Out: each caller's own slice of the
predictions, identical to an unbatched call. Built on `serving.combiner.Combiner`: the first
caller runs at once (a lone request is never delayed); callers that arrive while a pass runs
queue up and the next leader scores all of them (up to `max_batch` rows) in one call. When
other requests are known to be on their way (`expect()`: in flight but not yet scored) the
leader waits at most `max_wait_us` for them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from serving.combiner import Combiner, Expected, Slot

Predict = Callable[[dict[str, np.ndarray]], np.ndarray]


class MicroBatcher:
    """Combine concurrent `predict` calls into one; results are identical to unbatched calls."""

    def __init__(self, predict: Predict, max_batch: int = 256, max_wait_us: int = 500) -> None:
        self._predict = predict
        self._max_batch = max(1, max_batch)
        self._combiner = Combiner(self._run, self._max_batch, max(0, max_wait_us) / 1e6)
        self.batches = 0
        self.rows = 0

    def expect(self) -> Expected:
        """Announce a request that will `submit` soon (the leader may wait for it)."""
        return self._combiner.expect()

    def submit(
        self, columns: dict[str, np.ndarray], n: int, expected: Expected | None = None
    ) -> np.ndarray:
        """Score `n` rows, possibly together with other threads' rows.

        Returns:
            The `n` predictions for these rows.
        """
        if n >= self._max_batch:
            if expected is not None:
                expected.cancel()
            return self._predict(columns)
        return self._combiner.submit(columns, n, expected=expected)

    def _run(self, group: list[Slot]) -> None:
        if len(group) == 1:
            group[0].result = np.asarray(self._predict(group[0].item))
        else:
            names = group[0].item.keys()
            merged = {k: np.concatenate([s.item[k] for s in group]) for k in names}
            preds = np.asarray(self._predict(merged))
            start = 0
            for s in group:
                s.result = preds[start : start + s.size]
                start += s.size
        self.batches += 1
        self.rows += sum(s.size for s in group)
