"""Supervision and honest health for `kaizen serve` (to move to kaizen/service/ with the host).

Every long-running part of the service (the sinks loop, the gate, the processors child) runs
under a supervisor: a failure is logged with its traceback, reported by /health, and retried after
a backoff that doubles while the part keeps failing, instead of killing a thread silently or
restarting a crashing child in a tight loop. /health says `degraded`, with the reasons, when a
part is failing or restarting, or when a consumer group is far behind or stuck (lag that has not
moved for `stall_seconds`), and always gives the lags.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from kaizen.streams.lag import LagProbe

log = structlog.get_logger(__name__)

Clock = Callable[[], float]


@dataclass
class Backoff:
    """Delays between restarts: doubling from `initial` up to `maximum`, back to `initial` once
    a run has lasted `stable` seconds (it was not the same failure again)."""

    initial: float = 0.5
    maximum: float = 30.0
    stable: float = 60.0
    _next: float = 0.0

    def after(self, ran_for: float) -> float:
        if ran_for >= self.stable or self._next == 0.0:
            self._next = self.initial
        else:
            self._next = min(self.maximum, self._next * 2)
        return self._next


@dataclass
class Status:
    """What /health says about one part."""

    name: str
    state: str = "starting"  # starting | running | failing | stopped
    error: str = ""
    restarts: int = 0
    since: float = field(default_factory=time.monotonic)

    def set(self, state: str, error: str = "") -> None:
        if state != self.state or error != self.error:
            self.state, self.error, self.since = state, error, time.monotonic()

    def as_json(self) -> dict[str, Any]:
        return {"state": self.state, "error": self.error, "restarts": self.restarts}


def supervise(status: Status, step: Callable[[], None], stop: threading.Event,
              backoff: Backoff | None = None) -> None:
    """Call `step` until `stop` is set; a raising step is logged, reported and retried after a
    backoff. Run as a thread's target."""
    backoff = backoff or Backoff()
    started = time.monotonic()
    while not stop.is_set():
        try:
            status.set("running")
            step()
        except Exception as error:
            status.restarts += 1
            status.set("failing", f"{type(error).__name__}: {error}"[:500])
            delay = backoff.after(time.monotonic() - started)
            log.exception("service part failed; retrying", part=status.name, delay_s=delay)
            stop.wait(delay)
            started = time.monotonic()
    status.set("stopped")


class ProcessorsChild:
    """The `kaizen process` child: restarted with a backoff when it exits, and tied to this
    process by a pipe: the child holds the read end and exits when it reads end-of-file, which
    the kernel delivers when this process dies however it dies (kill -9 included)."""

    def __init__(self, status: Status, backoff: Backoff | None = None,
                 env_overrides: Mapping[str, str] | None = None) -> None:
        self.status, self._backoff = status, backoff or Backoff()
        self._overrides = dict(env_overrides or {})  # on top of this process's environment
        self._read, self._write = os.pipe()  # not inherited: only `pass_fds` hands one down
        self.process: subprocess.Popen[bytes] | None = None
        self._started = 0.0
        self._restart_at: float | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kaizen.cli", "process", "--parent-fd", str(self._read)],
            pass_fds=(self._read,),
            env={**os.environ, **self._overrides} if self._overrides else None)
        self._started, self._restart_at = time.monotonic(), None
        self.status.set("running")

    @property
    def pid(self) -> int | None:
        return None if self.process is None or self.process.poll() is not None \
            else self.process.pid

    def check(self) -> None:
        """Called now and then by the main loop: notice an exit, restart when the backoff is
        over."""
        now = time.monotonic()
        if self._restart_at is not None:
            if now >= self._restart_at:
                self.status.restarts += 1
                self.start()
            return
        if self.process is not None and self.process.poll() is not None:
            delay = self._backoff.after(now - self._started)
            code = self.process.returncode
            log.error("processors exited; restarting after a backoff", code=code, delay_s=delay)
            self.status.set("failing", f"exited with code {code}; restarting in {delay:.1f} s")
            self._restart_at = now + delay

    def stop(self) -> None:
        child = self.process
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:  # a worker stuck on an unreachable broker
                child.kill()
                child.wait(10)
        self.status.set("stopped")
        for fd in (self._read, self._write):
            os.close(fd)


def watch_parent(fd: int, on_orphaned: Callable[[], None]) -> threading.Thread:
    """In the child: call `on_orphaned` when the parent's end of the pipe closes."""
    def wait() -> None:
        while os.read(fd, 1):
            pass
        on_orphaned()
    thread = threading.Thread(target=wait, name="kaizen-parent-watch", daemon=True)
    thread.start()
    return thread


@dataclass
class GroupWatch:
    """A consumer group's lag over time: stuck when it has lag that has not shrunk for
    `stall_seconds`."""

    group: str
    topics: Sequence[str]
    lag: int | None = None
    by_topic: dict[str, int] = field(default_factory=dict)
    _best: int | None = None
    _moved: float = field(default_factory=time.monotonic)

    def observe(self, lag: int | None, now: float) -> None:
        self.lag = lag
        if lag is None:
            return
        if lag == 0 or self._best is None or lag < self._best:
            self._best, self._moved = lag, now

    def stuck_for(self, now: float) -> float:
        return 0.0 if not self.lag else now - self._moved


class Health:
    """The /health answer: parts, lags, and the reasons when degraded."""

    def __init__(self, probe: LagProbe, groups: dict[str, GroupWatch], *, stall_seconds: float,
                 max_lag: int) -> None:
        self.parts: dict[str, Status] = {}
        self.extra: dict[str, Callable[[], Any]] = {}
        self.checks: list[Callable[[], list[str]]] = []  # more reasons to be degraded
        self._probe, self._groups = probe, groups
        self._stall, self._max_lag = stall_seconds, max_lag
        self._lock = threading.Lock()

    def part(self, name: str) -> Status:
        self.parts[name] = Status(name)
        return self.parts[name]

    def report(self) -> dict[str, Any]:
        with self._lock:  # one lag probe at a time; concurrent requests wait for its answer
            now = time.monotonic()
            for watch in self._groups.values():
                by_topic = self._probe.lag_by_topic(watch.group, watch.topics)
                watch.by_topic = by_topic or {}
                watch.observe(None if by_topic is None else sum(by_topic.values()), now)
            reasons = [f"{s.name} {s.state}: {s.error}".rstrip(": ")
                       for s in self.parts.values() if s.state in ("failing", "stopped")]
            reasons += [reason for check in self.checks for reason in check()]
            for name, watch in self._groups.items():
                if watch.lag is None:
                    reasons.append(f"{name}: lag unknown (broker did not answer)")
                elif watch.lag > self._max_lag:
                    reasons.append(f"{name} behind: {watch.lag} records")
                elif watch.stuck_for(now) >= self._stall:
                    reasons.append(f"{name} stuck: {watch.lag} records, no progress for "
                                   f"{watch.stuck_for(now):.0f} s")
            body: dict[str, Any] = {
                "ok": not reasons, "status": "degraded" if reasons else "ok",
                "reasons": reasons,
                "parts": {name: s.as_json() for name, s in self.parts.items()},
                "lags": {name: watch.lag for name, watch in self._groups.items()},
                "lags_by_topic": {name: watch.by_topic for name, watch in self._groups.items()},
            }
            body.update({key: value() for key, value in self.extra.items()})
            return body
