"""Supervision without a broker: backoff, a failing part retried and reported, the parent pipe."""

from __future__ import annotations

import os
import threading
import time

from kaizen.service.supervision import Backoff, GroupWatch, Status, supervise, watch_parent


def test_backoff_doubles_while_failing_fast_and_resets_after_a_stable_run() -> None:
    backoff = Backoff(initial=0.5, maximum=4.0, stable=60.0)
    assert [backoff.after(1.0) for _ in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert backoff.after(61.0) == 0.5


def test_a_failing_part_is_retried_and_reported_until_it_works() -> None:
    stop, calls, status = threading.Event(), [], Status("sinks")

    def step() -> None:
        calls.append(status.state)
        if len(calls) < 3:
            raise RuntimeError(f"boom {len(calls)}")
        stop.set()

    supervise(status, step, stop, Backoff(initial=0.0, maximum=0.0))
    assert len(calls) == 3 and status.restarts == 2
    assert status.state == "stopped"


def test_a_failure_is_visible_while_it_waits_for_the_retry() -> None:
    stop, status = threading.Event(), Status("gate")
    failed = threading.Event()

    def step() -> None:
        failed.set()
        raise ValueError("bad snapshot")

    thread = threading.Thread(target=supervise, args=(status, step, stop, Backoff(initial=30)))
    thread.start()
    assert failed.wait(10)
    while status.state != "failing":  # set right after the step raised
        time.sleep(0.01)
    assert status.error == "ValueError: bad snapshot"
    stop.set()
    thread.join(10)


def test_the_child_side_of_the_pipe_sees_its_parent_go() -> None:
    read, write = os.pipe()
    orphaned = threading.Event()
    watch_parent(read, orphaned.set)
    assert not orphaned.wait(0.1)
    os.close(write)  # what the kernel does when the parent dies, however it dies
    assert orphaned.wait(10)
    os.close(read)


def test_a_group_is_stuck_when_its_lag_does_not_shrink() -> None:
    watch = GroupWatch("g", ["t"])
    watch.observe(10, now=100.0)
    watch.observe(10, now=130.0)
    assert watch.stuck_for(130.0) == 30.0
    watch.observe(4, now=131.0)
    assert watch.stuck_for(131.0) == 0.0
    watch.observe(0, now=200.0)
    assert watch.stuck_for(200.0) == 0.0
