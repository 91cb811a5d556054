"""The leader/follower primitive: leader election, grouping, give-up, hand-off, failure."""

from __future__ import annotations

import threading
import time

import pytest

from serving.combiner import Combiner, Slot, Stuck, Withdrawn
from tests.helpers import returns_within, wait_until


class Gate:
    """A `run` that records each group and blocks until released (one real thread each)."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.groups: list[list] = []
        self.release = threading.Event()
        self.entered = threading.Event()
        self.fail = fail

    def __call__(self, group: list[Slot]) -> None:
        self.groups.append([s.item for s in group])
        self.entered.set()
        self.release.wait(10)
        if self.fail is not None:
            raise self.fail
        for s in group:
            s.result = s.item * 10


def _spawn(fn, *args) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def body():
        try:
            out["value"] = fn(*args)
        except BaseException as exc:
            out["error"] = exc

    t = threading.Thread(target=body, daemon=True)
    t.start()
    return t, out


def _waiting(c: Combiner, n: int) -> None:
    """Wait until `n` callers are inside `submit` (running or queued)."""
    wait_until(lambda: c.waiting == n, 5, f"{n} callers waiting (now {c.waiting})", every=0.001)


def test_first_caller_leads_at_once_and_later_ones_share_the_next_group():
    run = Gate()
    c = Combiner(run, max_size=100)
    first, out1 = _spawn(c.submit, 1)
    assert run.entered.wait(5)
    followers = [_spawn(c.submit, k) for k in (2, 3, 4)]
    _waiting(c, 4)
    run.release.set()
    for t, _ in [(first, out1), *followers]:
        t.join(5)
    assert out1 == {"value": 10}
    assert sorted(o["value"] for _, o in followers) == [20, 30, 40]
    assert run.groups == [[1], [2, 3, 4]]  # queued callers went into one group


def test_max_size_splits_groups():
    run = Gate()
    run.release.set()
    c = Combiner(run, max_size=2)
    blocker = Gate()
    c2 = Combiner(blocker, max_size=2)
    t0, _ = _spawn(c2.submit, 0)
    assert blocker.entered.wait(5)
    rest = [_spawn(c2.submit, k) for k in (1, 2, 3)]
    _waiting(c2, 4)
    blocker.release.set()
    [t.join(5) for t, _ in rest]
    t0.join(5)
    assert [len(g) for g in blocker.groups] == [1, 2, 1]
    assert c.submit(7) == 70


def test_a_follower_that_gives_up_is_withdrawn_and_never_run():
    run = Gate()
    c = Combiner(run, max_size=100)
    leader, _ = _spawn(c.submit, 1)
    assert run.entered.wait(5)
    with pytest.raises(Withdrawn):
        c.submit(2, timeout=0.05)
    assert c.withdrawn == 1
    late, out = _spawn(c.submit, 3)
    _waiting(c, 2)
    run.release.set()
    leader.join(5)
    late.join(5)
    assert out == {"value": 30}
    assert [2] not in run.groups and all(2 not in g for g in run.groups)


def test_no_hand_off_to_a_caller_that_left():
    """The wedge of issue 10: every queued caller gave up while the leader was stuck; once it
    finishes, the next caller must lead at once (nobody is left holding leadership)."""
    run = Gate()
    c = Combiner(run, max_size=100)
    leader, _ = _spawn(c.submit, 1)
    assert run.entered.wait(5)
    gave_up = [_spawn(c.submit, k, 1, 0.05) for k in range(2, 6)]
    [t.join(5) for t, _ in gave_up]
    assert all(isinstance(o.get("error"), Withdrawn) for _, o in gave_up)
    run.release.set()
    leader.join(5)
    # Were leadership left with a caller that gave up, this one would give up too (Withdrawn).
    assert c.submit(9, timeout=1.0) == 90
    assert run.groups == [[1], [9]]


def test_leadership_handed_as_the_caller_gives_up_is_passed_on():
    """A caller handed leadership just as its timeout ran out passes it on, so the next
    queued caller still gets its turn."""
    run = Gate()
    c = Combiner(run, max_size=1)  # one item per group: every caller is handed leadership
    leader, _ = _spawn(c.submit, 1)
    assert run.entered.wait(5)
    quitter, qout = _spawn(c.submit, 2, 1, 0.2)
    _waiting(c, 2)
    stayer, sout = _spawn(c.submit, 3, 1, 10.0)
    _waiting(c, 3)
    time.sleep(0.25)  # the scenario: the quitter's timeout runs out (it may not have woken yet)
    run.release.set()
    for t in (leader, quitter, stayer):
        t.join(5)
    assert sout == {"value": 30}
    assert qout.get("value") == 20 or isinstance(qout.get("error"), Withdrawn)


def test_a_failed_group_fails_each_of_its_callers_and_the_next_group_runs():
    run = Gate(fail=OSError("disk full"))
    c = Combiner(run, max_size=100)
    leader, lout = _spawn(c.submit, 1)
    assert run.entered.wait(5)
    follower, fout = _spawn(c.submit, 2)
    _waiting(c, 2)
    run.release.set()
    leader.join(5)
    follower.join(5)
    assert isinstance(lout["error"], OSError) and isinstance(fout["error"], OSError)
    run.fail = None
    assert c.submit(3) == 30


def test_a_caller_whose_item_is_running_waits_for_the_outcome_not_its_timeout():
    """Past its timeout, a caller whose item a running group holds gets the group's outcome:
    "withdrawn" must always mean "never run"."""
    gates = {1: threading.Event(), 2: threading.Event()}
    entered = {1: threading.Event(), 2: threading.Event()}

    def run(group):
        entered[group[0].item].set()
        gates[group[0].item].wait(10)
        for s in group:
            s.result = s.item * 10

    c = Combiner(run, max_size=100)
    t1, _ = _spawn(c.submit, 1)
    assert entered[1].wait(5)
    t2, _ = _spawn(c.submit, 2)
    _waiting(c, 2)
    t3, out3 = _spawn(c.submit, 3, 1, 0.05)
    _waiting(c, 3)
    gates[1].set()  # caller 2 leads group [2, 3]
    assert entered[2].wait(5)
    time.sleep(0.1)  # the scenario: caller 3's timeout passes while its item is running
    gates[2].set()
    for t in (t1, t2, t3):
        t.join(5)
    assert out3 == {"value": 30}


def test_stalled_for_grows_while_callers_wait_on_a_group_that_does_not_finish():
    run = Gate()
    c = Combiner(run, max_size=100)
    assert c.stalled_for() == 0.0
    leader, _ = _spawn(c.submit, 1)
    assert run.entered.wait(5)
    time.sleep(0.1)  # the stall being measured
    assert c.stalled_for() >= 0.1
    run.release.set()
    leader.join(5)
    assert c.stalled_for() == 0.0


def test_a_follower_in_a_group_that_never_finishes_gives_up_with_stuck():
    gates = {1: threading.Event(), 2: threading.Event()}
    entered = threading.Event()

    def run(group):
        entered.set()
        gates[group[0].item].wait(10)
        for s in group:
            s.result = s.item

    c = Combiner(run, max_size=100, stuck_s=0.2)
    t1, _ = _spawn(c.submit, 1)
    assert entered.wait(5)
    t2, out2 = _spawn(c.submit, 2)
    _waiting(c, 2)
    t3, out3 = _spawn(c.submit, 3, 1, 0.05)  # its timeout passes while it is running
    _waiting(c, 3)
    gates[1].set()  # group [1] ends; caller 2 leads group [2, 3], which hangs
    t3.join(5)
    assert isinstance(out3.get("error"), Stuck)
    gates[2].set()
    t2.join(5)
    t1.join(5)
    assert out2 == {"value": 2}


def test_leader_waits_for_expected_callers_within_gather_s():
    done = threading.Event()

    def run(group):
        for s in group:
            s.result = len(group)
        done.set()

    # A 10-minute gather: a leader that waited it out would never come back within the test.
    c = Combiner(run, max_size=100, gather_s=600.0)
    a, b = c.expect(), c.expect()
    t, out = _spawn(c.submit, "a", 1, None, a)
    assert not done.wait(0.1)  # gathering for b
    assert c.submit("b", 1, None, b) == 2
    t.join(5)
    assert out == {"value": 2}
    lone = c.expect()
    assert returns_within(10, "a lone caller", c.submit, "c", 1, None, lone) == 1
    x, y = c.expect(), c.expect()
    leader, out = _spawn(c.submit, "x", 1, None, x)
    _waiting(c, 1)
    y.cancel()  # y failed validation: the leader stops waiting for it
    leader.join(10)
    assert out == {"value": 1}
