"""`kaizen demo` / `make demo`: two fleets in a drifting world, one static and one learning.

Starts the local Kafka and `kaizen serve` (processors, sinks, gate, monitor, HTTP API) on a fresh
topic prefix, runs both fleets through the drift schedule with the real Recorder and recall, injects
one plausible but harmful lesson, and ends with a summary and `.kaizen/report.html`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kaizen.client.recall import recall
from kaizen.client.recorder import Recorder
from kaizen.demo.fleet import EpisodeResult, Fleet
from kaizen.demo.metrics import Adaptation, Timed, adaptation, success_around
from kaizen.demo.world import (
    PAYMENTS_REQUIRED_CURRENCY,
    USER_PREFERS_IMPERIAL,
    World,
    default_drifts,
    harmful_patch,
)
from kaizen.readmodel.lesson import Recalled
from kaizen.schemas import model
from kaizen.service.host import pipeline_groups
from kaizen.settings import Settings, load_settings
from kaizen.streams.admin import create_topics
from kaizen.streams.lag import LagProbe
from kaizen.streams.publish import publish_events
from kaizen.streams.topics import Topics

AGENT = "support-bot"
FLEETS = {"static": "static-co", "learning": "learning-co"}


@dataclass(frozen=True)
class DemoConfig:
    seed: int = 7
    start: int = 30  # first drift
    spacing: int = 30  # episodes between drifts
    concurrency: int = 6
    think_s: float = 2.0  # simulated agent work per episode (recall happens before it)
    #: before each recall, wait (up to 30 s) until the pipeline has consumed what was written,
    #: so a loaded machine slows the fleets down instead of starving them of their lessons
    pace_by_pipeline: bool = True

    @property
    def episodes(self) -> int:
        return self.start + 6 * self.spacing + 20


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:  # noqa: S310
        return json.loads(r.read())


def _start_service(settings: Settings, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        service = subprocess.Popen([sys.executable, "-m", "kaizen.cli", "serve"], env=env,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            _get(settings.http_port, "/health")
            return service
        except OSError:
            if service.poll() is not None:
                raise RuntimeError(f"kaizen serve exited; see {log}") from None
            time.sleep(0.5)
    raise RuntimeError(f"kaizen serve did not answer within 120 s; see {log}")


def _inject_harmful_lesson(settings: Settings, at_ms: int) -> str:
    """A plausible-looking lesson (as a careless extractor might write) that breaks payments."""
    patch = harmful_patch()
    lesson = model.Experience(
        event_id="7d7f6f0e-3b1c-4c55-9c35-4b8f1f0d9a01", occurred_at=at_ms,
        tenant=FLEETS["learning"], agent=AGENT, experience_id="harmful-amount-rename",
        version=1, kind="recovery", trigger=model.Trigger(None, "payment", "charge the customer"),
        guidance="When calling payments.charge, pass the amount as `amount` (not `amount_cents`).",
        evidence=[], support_episodes=5, support_users=3, tool="payments.charge", patch=patch,
        status="proposed", extractor="llm:demo-injected")
    publish_events(settings.bootstrap, Topics(settings.topic_prefix).experiences,
                   [(lesson.experience_id.encode(), lesson)])
    return lesson.experience_id


class PipelinePace:
    """Waits until the processors and the sinks have committed every record written before the
    call: the episodes, then what the processors derived from them (a second round). The demo's
    claim is "stops failing by the next interaction", which holds only if the next interaction
    comes after the pipeline; on a busy machine the fleets wait rather than outrun it."""

    def __init__(self, settings: Settings, timeout_s: float = 30.0) -> None:
        self.probe, self.groups = LagProbe(settings.bootstrap), pipeline_groups(settings)
        self.topics = sorted({t for topics in self.groups.values() for t in topics})
        self.timeout_s, self.lock = timeout_s, threading.Lock()

    def wait(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        with self.lock:  # one probe at a time; the agents behind it find the pipeline caught up
            for _ in range(2):
                ends = self.probe.end_offsets(self.topics)
                while any(lag.behind for lag in self.probe.lags(self.groups, ends)):
                    if time.monotonic() > deadline:
                        return
                    time.sleep(0.05)

    def close(self) -> None:
        self.probe.close()


class Progress:
    """One status line, redrawn in place on a terminal, every few seconds otherwise."""

    def __init__(self, total: int, port: int) -> None:
        self.total, self.port = total, port
        self.done: dict[str, list[Timed]] = {name: [] for name in FLEETS}
        self.stop = threading.Event()
        self.tty = sys.stdout.isatty()

    def line(self) -> str:
        parts = []
        for name, timed in self.done.items():
            recent = [t.result.success for t in sorted(timed, key=lambda t: t.ended)[-20:]]
            rate = f"{sum(recent) / len(recent):.0%}" if recent else "-"
            parts.append(f"{name} {len(timed)}/{self.total} ok(last 20) {rate:>4}")
        try:
            state = _get(self.port, f"/snapshots?tenant={FLEETS['learning']}&agent={AGENT}")
            active = (state["active"].get(f"{FLEETS['learning']}/{AGENT}") or "none")[:10]
            lessons = _get(self.port, f"/experiences?tenant={FLEETS['learning']}&agent={AGENT}")
            latest = max(lessons["experiences"], key=lambda x: x["occurred_at"], default=None)
            lesson = (latest or {}).get("guidance", "-")[:60]
        except OSError:
            active, lesson = "?", "?"
        return " | ".join(parts) + f" | snapshot {active} | latest lesson: {lesson}"

    def run(self) -> None:
        while not self.stop.wait(0.5 if self.tty else 5.0):
            text = self.line()
            print(f"\r{text[:160]:<160}" if self.tty else text, end="" if self.tty else "\n",
                  flush=True)
        if self.tty:
            print()


def _run_fleet(fleet: Fleet, config: DemoConfig, progress: Progress,
               on_index: Callable[[int], None] | None = None) -> list[Timed]:
    """Episodes in index order, `concurrency` at a time; each records its wall-clock span."""
    lock, next_index, timed = threading.Lock(), [0], progress.done[fleet.name]

    def worker() -> None:
        while True:
            with lock:
                index = next_index[0]
                next_index[0] += 1
            if index >= config.episodes:
                return
            if on_index is not None:
                on_index(index)
            started = time.monotonic()
            result: EpisodeResult = fleet.run_one(index)
            timed.append(Timed(result, started, time.monotonic()))

    threads = [threading.Thread(target=worker) for _ in range(config.concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(timed, key=lambda t: t.result.index)


def run_demo(settings: Settings, config: DemoConfig) -> tuple[dict[str, list[Timed]],
                                                             list[Adaptation], dict[str, Any]]:
    """The whole job; returns the timed episodes per fleet, adaptation per drift, snapshot log."""
    run_id = f"demo{int(time.time())}"
    home = settings.home / "demo" / run_id
    home.mkdir(parents=True, exist_ok=True)
    port = _free_port() if _port_taken(settings.http_port) else settings.http_port
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAIZEN_")}
    env.update(KAIZEN_KAFKA_BOOTSTRAP=settings.bootstrap, KAIZEN_TOPIC_PREFIX=run_id,
               KAIZEN_HOME=str(home), KAIZEN_HTTP_PORT=str(port), KAIZEN_MIN_SUPPORT="1",
               KAIZEN_GATE_SECONDS="1", KAIZEN_LOG_FORMAT="json", KAIZEN_LOG_LEVEL="warning")
    demo = load_settings(kafka_bootstrap=settings.bootstrap, topic_prefix=run_id, home=home,
                         http_port=port)
    create_topics(demo.bootstrap, run_id, demo.topic_partitions)
    print(f"starting kaizen serve (topics {run_id}.*, log {home / 'serve.log'}) ...")
    service = _start_service(demo, env, home / "serve.log")
    world = World(default_drifts(config.start, config.spacing), seed=config.seed)
    payments = world.drift(PAYMENTS_REQUIRED_CURRENCY).index
    injected: list[str] = []

    pace = PipelinePace(demo) if config.pace_by_pipeline else None

    def think(lessons: list[Recalled]) -> list[Recalled]:
        time.sleep(config.think_s)
        return lessons

    def static_recall(task: str, user: str | None, tools: list[str]) -> list[Recalled]:
        if pace is not None:
            pace.wait()
        return think([])

    def learning_recall(task: str, user: str | None, tools: list[str]) -> list[Recalled]:
        if pace is not None:
            pace.wait()
        found = recall(task, agent=AGENT, tenant=FLEETS["learning"], user=user, tools=tools,
                       k=5, settings=demo)
        return think(found)

    def inject(index: int) -> None:
        # once payments lessons and recoveries exist: the gate has edge cases to test it on
        if index == payments + config.spacing and not injected:
            injected.append(_inject_harmful_lesson(demo, int(time.time() * 1000)))

    recorders = {name: Recorder(agent=AGENT, tenant=tenant, settings=demo)
                 for name, tenant in FLEETS.items()}
    fleets = {
        "static": Fleet("static", world, recorders["static"], static_recall, seed=config.seed),
        "learning": Fleet("learning", world, recorders["learning"], learning_recall,
                          seed=config.seed),
    }
    progress = Progress(config.episodes, port)
    printer = threading.Thread(target=progress.run, daemon=True)
    printer.start()
    try:
        runs: dict[str, list[Timed]] = {}
        threads = {name: threading.Thread(
            target=lambda n=name: runs.__setitem__(n, _run_fleet(
                fleets[n], config, progress, inject if n == "learning" else None)))
            for name in fleets}
        for thread in threads.values():
            thread.start()
        for thread in threads.values():
            thread.join()
        for recorder in recorders.values():
            recorder.flush(30)
        log = _snapshot_log_once_caught(port, bool(injected))
        progress.stop.set()
        printer.join()
        failures = _get(port, "/analytics/failures?by=signature")["rows"]
    finally:
        progress.stop.set()
        for recorder in recorders.values():
            recorder.close()
        if pace is not None:
            pace.close()
        service.terminate()
        service.wait(60)
    figures = [adaptation(d, runs["learning"], runs["static"]) for d in world.drifts
               if d.name != USER_PREFERS_IMPERIAL]
    return runs, figures, {"snapshots": log, "failures": failures, "injected": injected,
                           "world": world}


def _snapshot_log_once_caught(port: int, injected: bool, timeout_s: float = 60.0) -> Any:
    """The learning fleet's snapshot log, read once the gate or the monitor has rejected or
    rolled back a change (the injected lesson may still be on its way through the gate when
    the last episode ends), or after `timeout_s`: then the summary says "NOT caught"."""
    deadline = time.monotonic() + timeout_s
    while True:
        log = _get(port, f"/snapshots?tenant={FLEETS['learning']}&agent={AGENT}")
        caught = any(e["action"] in ("rejected", "rolled_back") for e in log["events"])
        if caught or not injected or time.monotonic() > deadline:
            return log
        time.sleep(0.5)


def _port_taken(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def summary_lines(runs: dict[str, list[Timed]], figures: list[Adaptation], extra: dict[str, Any],
                  world: World, seconds: float) -> list[str]:
    lines = [f"{len(runs['learning'])} episodes per fleet in {seconds:.0f} s."]
    for drift in world.drifts:
        s_before, s_after = success_around(drift, runs["static"])
        l_before, l_after = success_around(drift, runs["learning"])
        lines.append(f"{drift.name:<28} static {_pct(s_before)} -> {_pct(s_after)}   "
                     f"learning {_pct(l_before)} -> {_pct(l_after)}")
    for f in figures:
        lines.append(f"{f.drift:<28} learning repeats after first recovery: {f.repeats_after} "
                     f"(in flight {f.in_flight}; static {f.static_repeats_after})"
                     f"{'' if f.within_target else '  ABOVE TARGET'}")
    events = extra["snapshots"]["events"]
    harmful = [e for e in events if e["action"] in ("rejected", "rolled_back")]
    caught = ", ".join(f"{e['action']} by {e['actor']}" for e in harmful) or "NOT caught"
    lines.append(f"harmful lesson {extra['injected'] or '(not injected)'}: {caught}")
    return lines


def _pct(value: float | None) -> str:
    return "  - " if value is None else f"{value:4.0%}"
