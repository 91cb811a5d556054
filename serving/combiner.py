"""Many requests, one call: the leader/follower primitive behind group commit and micro-batching.

In: `submit(item, size)` from request threads, and a `run(items)` function that handles a
whole group in one call (one transaction, one forward pass). Out: each caller's own result.

The first caller finds no leader and runs at once (a lone request is never delayed). Callers
that arrive while a group runs queue up; when the group is done its leader hands leadership
to the first caller still queued, who runs every queued item that fits in `max_size` as the
next group. When callers are known to be on their way (`expect()`), a leader waits at most
`gather_s` for them first.

Every wait is bounded and every hand-off is made under the one lock, so no group is handed to
a caller that has left:
- A follower whose `timeout` runs out while still queued is withdrawn atomically (`Withdrawn`):
  its item is never passed to `run`. One handed leadership as it gave up passes it on.
- A follower whose item was already taken into a running group waits for that group's outcome
  (bounded by `run` itself: the stores' own timeouts), so "withdrawn" always means "not run".
- `stalled_for()` tells how long callers have waited with no group finishing, for a liveness
  probe that restarts a process whose `run` never returns.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

QUEUED, LEADING, RUNNING, DONE, WITHDRAWN = "queued", "leading", "running", "done", "withdrawn"


class Withdrawn(Exception):
    """The caller gave up before its item was taken into a group: it was never run."""


class Stuck(Exception):
    """The caller's group has been running far longer than `run` should ever take."""


class Slot:
    """One caller's item on its way through a group; `run` sets `result` (or fails the group)."""

    __slots__ = ("item", "size", "state", "result", "error", "_event")

    def __init__(self, item: Any, size: int) -> None:
        self.item = item
        self.size = size
        self.state = QUEUED
        self.result: Any = None
        self.error: BaseException | None = None
        self._event = threading.Event()


class Expected:
    """A caller that announced itself with `Combiner.expect` and will `submit` (or `cancel`)."""

    __slots__ = ("_combiner", "open")

    def __init__(self, combiner: Combiner) -> None:
        self._combiner = combiner
        self.open = True

    def cancel(self) -> None:
        """Nothing is coming from this caller after all (it failed before submitting)."""
        if self.open:
            self.open = False
            self._combiner._arrived()


class Combiner:
    """Leader/follower grouping of concurrent calls into one `run(slots)` call.

    Args:
        run: handles a group: sets `slot.result` for each slot of the list, or raises (the
            exception is re-raised to every caller of the group).
        max_size: the most `size` units (rows) in one group; one larger item runs alone.
        gather_s: how long a leader waits for `expect`ed callers before running.
        stuck_s: how long a caller whose item is running waits before giving up with `Stuck`
            (only if `run` broke its own time bounds).
    """

    def __init__(
        self,
        run: Callable[[list[Slot]], None],
        max_size: int,
        gather_s: float = 0.0,
        stuck_s: float = 300.0,
    ) -> None:
        self._run = run
        self._max_size = max(1, max_size)
        self._gather_s = max(0.0, gather_s)
        self._stuck_s = stuck_s
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._queue: deque[Slot] = deque()
        self._leading = False
        self._gathering = False
        self._expected = 0
        self._waiting = 0  # callers inside `submit`
        self._progress = time.monotonic()  # last time a group finished, or waiting began
        self.groups = 0
        self.withdrawn = 0

    def expect(self) -> Expected:
        """Announce a caller that will `submit` soon: a leader may wait `gather_s` for it."""
        with self._lock:
            self._expected += 1
        return Expected(self)

    def _arrived(self) -> None:
        with self._lock:
            self._expected = max(0, self._expected - 1)
            if self._gathering:
                self._cond.notify()

    def submit(
        self,
        item: Any,
        size: int = 1,
        timeout: float | None = None,
        expected: Expected | None = None,
    ) -> Any:
        """Run `item` in a group and return its result.

        Args:
            item: what `run` gets in `slot.item`.
            size: its weight against `max_size` (rows).
            timeout: seconds to wait for a group to take the item (None: no limit).
            expected: the announcement from `expect()`, if this caller made one.

        Raises:
            Withdrawn: `timeout` ran out before the item was taken (it was never run).
            Stuck: the group holding the item ran past `stuck_s`.
            Exception: whatever `run` raised for the item's group.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        slot = Slot(item, size)
        with self._lock:
            if expected is not None and expected.open:
                expected.open = False
                self._expected = max(0, self._expected - 1)
            if self._waiting == 0:
                self._progress = time.monotonic()
            self._waiting += 1
            if self._leading:
                self._queue.append(slot)
                if self._gathering:
                    self._cond.notify()
            else:
                self._leading = True
                slot.state = LEADING
        try:
            if slot.state != LEADING:
                self._follow(slot, deadline)
            if slot.state == LEADING:
                self._lead(slot)
        finally:
            with self._lock:
                self._waiting -= 1
        if slot.error is not None:
            raise slot.error
        return slot.result

    def _follow(self, slot: Slot, deadline: float | None) -> None:
        """Wait until the slot's group is done or it is handed leadership; withdraw at the
        deadline if it is still queued."""
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        if slot._event.wait(left):
            return
        with self._lock:
            if slot.state == QUEUED:
                self._queue.remove(slot)
                slot.state = WITHDRAWN
                self.withdrawn += 1
                raise Withdrawn()
            if slot.state == LEADING:  # handed leadership just as it gave up: pass it on
                slot.state = WITHDRAWN
                self.withdrawn += 1
                self._hand_off()
                raise Withdrawn()
        if not slot._event.wait(self._stuck_s):  # RUNNING: its group's outcome is near
            raise Stuck(f"a group has been running for more than {self._stuck_s:.0f} s")

    def _lead(self, slot: Slot) -> None:
        group = self._take(slot)
        try:
            self._run(group)
        except BaseException as exc:  # delivered to every caller of the group
            for s in group:
                s.error = exc
        with self._lock:
            for s in group:
                s.state = DONE
                s._event.set()
            self.groups += 1
            self._progress = time.monotonic()
            self._hand_off()

    def _take(self, first: Slot) -> list[Slot]:
        """The next group: `first`, then (after waiting up to `gather_s` for expected callers)
        every queued slot that fits in `max_size`; all marked RUNNING."""
        with self._lock:
            if self._gather_s > 0 and self._expected > 0:
                self._gather(first)
            group, size = [first], first.size
            while self._queue and size + self._queue[0].size <= self._max_size:
                nxt = self._queue.popleft()
                group.append(nxt)
                size += nxt.size
            for s in group:
                s.state = RUNNING
            return group

    def _gather(self, first: Slot) -> None:
        deadline = time.monotonic() + self._gather_s
        self._gathering = True
        try:
            while self._expected > 0:
                if first.size + sum(s.size for s in self._queue) >= self._max_size:
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(left)
        finally:
            self._gathering = False

    def _hand_off(self) -> None:
        """(Lock held.) Make the first queued slot the next leader, or stand down."""
        if self._queue:
            nxt = self._queue.popleft()
            nxt.state = LEADING
            nxt._event.set()
        else:
            self._leading = False

    def stalled_for(self) -> float:
        """Seconds callers have been waiting with no group finishing (0 when none waits)."""
        with self._lock:
            if self._waiting == 0:
                return 0.0
            return time.monotonic() - self._progress

    @property
    def waiting(self) -> int:
        """Callers inside `submit` now."""
        return self._waiting

    @property
    def expected(self) -> int:
        """Callers announced by `expect` that have not submitted yet."""
        return self._expected
