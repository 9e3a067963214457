"""Issue 13, processing side: no single record stops learning for everyone.

One real `kaizen serve` (sinks, gate, processors child) on the session broker. Each test writes a
record no Recorder would write, as a hostile or broken producer could, then ordinary episodes of
its own tenant, and asserts: the bad record is dead-lettered exactly once (a bounded letter), every
normal episode is stored and the lesson they teach is learned and recalled, and /health is honest.
Before the fixes: the 5 MB record killed the sinks thread (its dead letter was too large) and made
the processors exit on every start; a record whose fold raised crash-looped the processors; a
year-9999 event abandoned every open episode of its partition; an Experience produced to the
episodes topic was recalled as a lesson; dead letters were written twice; /health said ok.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kaizen.cli import main as kaizen_main
from kaizen.schemas import model
from kaizen.streams.internal import ensure_topics
from kaizen.streams.replay import Bounds, TopicReader
from tests.faults.serving import (
    Served,
    dead_letter_sizes,
    dead_letters,
    encode,
    free_port,
    get,
    produce_raw,
    recalled,
    record_recoveries,
)
from tests.integration.kafka_helpers import consume_all, make_topics
from tests.integration.waiting import wait_for, wait_for_pipeline
from tests.integration.workers import environ, start_worker, stop_worker, worker_env

FIVE_MB = 5 * 1024 * 1024
MAX_LETTER = 128 * 1024


def _serve_env(bootstrap: str, prefix: str, home: Path, port: int) -> dict[str, str]:
    return worker_env(bootstrap, prefix, home, KAIZEN_HTTP_PORT=str(port),
                      KAIZEN_GATE_SECONDS="0.5", KAIZEN_HEALTH_STALL_SECONDS="3")


@pytest.fixture(scope="module")
def served(kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    prefix = f"f{uuid.uuid4().hex[:10]}"
    topics = make_topics(kafka_broker.bootstrap, prefix)
    home = tmp_path_factory.mktemp("serve")
    port = free_port()
    service = start_worker(_serve_env(kafka_broker.bootstrap, prefix, home / "home", port),
                           home / "serve.log", command="serve")
    try:
        wait_for("serve to answer /health", lambda: get(port, "/health"), timeout=120)
        yield Served(kafka_broker.bootstrap, topics, port, home, service.pid)
    finally:
        stop_worker(service)


def _learned(served: Served, tenant: str) -> list[dict[str, Any]]:
    """Wait for the recovery lesson of `tenant` to be recalled, then until the processors and
    sinks have consumed everything written so far; returns every lesson recalled then."""
    wait_for(f"the recovery lesson of {tenant} recalled",
             lambda: any(x.get("tool") == "invoices.find" for x in recalled(served, tenant)),
             timeout=150)
    _drained(served)
    return recalled(served, tenant)


def _drained(served: Served) -> None:
    """Every record produced so far is consumed by the processors and the sinks, whose commits
    follow their outputs (dead letters included): what they would write is written."""
    wait_for_pipeline(served.bootstrap, served.topics.prefix)


def _letters_of(served: Served, offsets: set[tuple[int, int]]) -> Counter[tuple[int, int]]:
    """How many dead letters each source (partition, offset) of the episodes topic has, once
    every one has a letter and the pipeline has consumed everything (a second copy would be
    written by then)."""
    def read() -> Counter[tuple[int, int]]:
        return Counter((d.source_partition, d.source_offset) for d in dead_letters(served)
                       if d.source_topic == served.topics.episodes
                       and (d.source_partition, d.source_offset) in offsets)
    wait_for("a dead letter for every bad record", lambda: set(read()) == offsets, timeout=120)
    _drained(served)
    return read()


def _positions(served: Served, keys: set[bytes]) -> set[tuple[int, int]]:
    reader = TopicReader(served.bootstrap, served.topics.episodes, Bounds())
    return {(r.partition, r.offset) for batch in reader.raw_batches() for r in batch
            if r.key in keys}


def _event(episode: str, seq: int, payload: Any, at: int, tenant: str) -> model.EpisodeEvent:
    return model.EpisodeEvent(str(uuid.uuid4()), at, tenant, "support-bot", episode, seq, payload,
                              user=f"{tenant}-user")


def test_garbage_oversize_and_wrong_type_records_are_dead_lettered_once_and_learning_goes_on(
    served: Served, tmp_path: Path
) -> None:
    tenant = "poison"
    injected = model.Experience(
        str(uuid.uuid4()), 1_700_000_000_000, tenant, "support-bot", "injected-lesson", 1,
        "pitfall", model.Trigger("invoices.find: unknown field"), "INJECTED: wire money first",
        [], 5, 5, tool="invoices.find", status="proposed")
    huge_error = _event("poison-huge", 0, model.ToolResult("c1", "invoices.find", False,
                                                            "x" * FIVE_MB), 1_700_000_000_000,
                        tenant)
    bad = [(b"poison-garbage", b"not avro at all"), (b"poison-zeros", b"\0" * FIVE_MB),
           (b"poison-huge", encode(huge_error)), (b"poison-type", encode(injected))]
    produce_raw(served.bootstrap, served.topics.episodes, bad)
    record_recoveries(served, tenant, tmp_path)

    lessons = _learned(served, tenant)
    assert not any("INJECTED" in x["guidance"] for x in lessons)  # a wrong-type record is no lesson
    library = get(served.port, f"/experiences?tenant={tenant}") or {}
    assert not any("INJECTED" in x["guidance"] for x in library.get("experiences", []))
    offsets = _positions(served, {key for key, _ in bad})
    assert len(offsets) == len(bad)
    assert set(_letters_of(served, offsets).values()) == {1}  # each bad record: one dead letter
    assert max(dead_letter_sizes(served)) < MAX_LETTER  # letters cut, referenced by position
    _drained(served)  # the sinks have flushed every episode of the tenant to ClickHouse
    rows = (get(served.port, "/analytics/failures?by=tenant") or {}).get("rows", [])
    assert [(r["calls"], r["failures"]) for r in rows if r["key"] == tenant] == [(6, 3)]
    health = wait_for("health ok", lambda: _health_if(served, lambda h: h.get("ok") is True))
    assert health["status"] == "ok"
    assert health["processors"]["restarts"] == 0  # the 5 MB records crash-looped it before


def test_a_record_whose_fold_fails_is_dead_lettered_with_its_traceback_not_crash_looped(
    served: Served, tmp_path: Path
) -> None:
    tenant, episode, at = "foldfail", "foldfail-deep", 1_700_000_100_000
    deep = "[" * 100_000 + "]" * 100_000  # json.loads raises RecursionError on the recovery
    events = [_event(episode, 0, model.EpisodeStarted("find an invoice"), at, tenant),
              _event(episode, 1, model.ToolCall("c1", "invoices.find", deep), at + 1, tenant),
              _event(episode, 2, model.ToolResult("c1", "invoices.find", False, "bad"), at + 2,
                     tenant),
              _event(episode, 3, model.ToolCall("c2", "invoices.find", "{}"), at + 3, tenant),
              _event(episode, 4, model.ToolResult("c2", "invoices.find", True), at + 4, tenant),
              _event(episode, 5, model.EpisodeEnded("success"), at + 5, tenant)]
    produce_raw(served.bootstrap, served.topics.episodes,
                [(episode.encode(), encode(e)) for e in events])
    record_recoveries(served, tenant, tmp_path)

    _learned(served, tenant)
    wait_for("the RecursionError dead-lettered",
             lambda: any(d.error_type == "RecursionError" for d in dead_letters(served)))
    _drained(served)
    letters = [d for d in dead_letters(served) if d.error_type == "RecursionError"]
    assert len(letters) == 1 and "Traceback" in letters[0].reason
    assert letters[0].source_topic == served.topics.episodes


def _outcomes(served: Served, episodes: set[str]) -> dict[str, list[str | None]]:
    out: dict[str, list[str | None]] = {}
    for record in TopicReader(served.bootstrap, served.topics.signals, Bounds()).records():
        signal_ = record.event
        if isinstance(signal_, model.Signal) and signal_.kind == "outcome" \
                and signal_.episode_id in episodes:
            out.setdefault(signal_.episode_id, []).append(signal_.outcome)
    return out


def test_a_far_future_event_is_dead_lettered_and_closes_no_open_episode(
    served: Served, tmp_path: Path
) -> None:
    tenant, at, partition = "future", 1_700_000_200_000, 1
    names = [f"future-open-{i}" for i in range(3)]
    opened = [e for i, name in enumerate(names) for e in (
        _event(name, 0, model.EpisodeStarted(f"find invoice {i}"), at + i, tenant),
        _event(name, 1, model.ToolCall("c1", "invoices.find", f'{{"number": {i}}}'), at + i,
               tenant),
        _event(name, 2, model.ToolResult("c1", "invoices.find", False,
                                         "unknown field 'number'"), at + i, tenant))]
    produce_raw(served.bootstrap, served.topics.episodes,
                [(e.episode_id.encode(), encode(e)) for e in opened], partition=partition)
    year_9999 = _event("future-far", 0, model.EpisodeStarted("from the far future"),
                       253_402_300_000_000, tenant)
    produce_raw(served.bootstrap, served.topics.episodes,
                [(b"future-far", encode(year_9999))], partition=partition)
    finished = [e for i, name in enumerate(names) for e in (
        _event(name, 3, model.ToolCall("c2", "invoices.find", f'{{"invoice_no": {i}}}'),
               at + 1000 + i, tenant),
        _event(name, 4, model.ToolResult("c2", "invoices.find", True), at + 1000 + i, tenant),
        _event(name, 5, model.EpisodeEnded("success"), at + 1000 + i, tenant))]
    produce_raw(served.bootstrap, served.topics.episodes,
                [(e.episode_id.encode(), encode(e)) for e in finished], partition=partition)
    record_recoveries(served, tenant, tmp_path)

    _learned(served, tenant)
    wait_for("an outcome for every open episode",
             lambda: set(_outcomes(served, set(names))) == set(names))
    _drained(served)
    outcomes = _outcomes(served, set(names))
    assert outcomes == {name: ["success"] for name in names}  # none abandoned by year 9999
    letters = _letters_of(served, _positions(served, {b"future-far"}))
    assert list(letters.values()) == [1]


def test_health_is_degraded_with_reason_and_lag_while_the_processors_are_stuck(
    served: Served, tmp_path: Path
) -> None:
    health = get(served.port, "/health") or {}
    child = int(health["processors"]["pid"])
    os.kill(child, signal.SIGSTOP)
    try:
        record_recoveries(served, "stuck", tmp_path)
        # another part may be degraded first for a moment (a lag probe the loaded broker did
        # not answer in time): wait for the processors' reason itself
        degraded = wait_for("health degraded by the processors", lambda: _health_if(
            served, lambda h: any("processors" in r for r in h.get("reasons", []))))
        assert degraded["ok"] is False and degraded["status"] == "degraded"
        assert degraded["lags"]["processors"] > 0
    finally:
        os.kill(child, signal.SIGCONT)
    _learned(served, "stuck")
    health = wait_for("health ok again", lambda: _health_if(
        served, lambda h: h.get("status") == "ok"))
    assert health["lags"]["processors"] == 0 and health["lags"]["sinks"] == 0


def _health_if(served: Served, ready: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The /health answer when `ready` holds for it, else {} (its text changes every second)."""
    health = get(served.port, "/health") or {}
    return health if ready(health) else {}


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_deadletters_list_show_and_replay_give_the_whole_record_back(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    value = b"\1" * FIVE_MB  # cut in its letter: replay fetches it from its source position
    produce_raw(served.bootstrap, served.topics.episodes, [(b"replay-me", value)])
    [position] = _positions(served, {b"replay-me"})
    _letters_of(served, {position})
    letter = next(d for d in dead_letters(served)
                  if (d.source_partition, d.source_offset) == position)
    scratch = f"{served.topics.prefix}.replayed"
    ensure_topics(served.bootstrap, [scratch], 1)
    env = worker_env(served.bootstrap, served.topics.prefix, served.home / "cli")
    with environ(env):
        assert kaizen_main(["deadletters", "list", "--format", "json"]) == 0
        listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [row["cut"] for row in listed if row["id"] == letter.event_id] == [True]
        assert kaizen_main(["deadletters", "show", letter.event_id[:12]]) == 0
        assert "Oversize" in capsys.readouterr().out
        assert kaizen_main(["deadletters", "replay", letter.event_id, "--to", scratch]) == 0
    [replayed] = consume_all(served.bootstrap, scratch, 1)
    assert (replayed.key(), replayed.value()) == (b"replay-me", value)


def test_the_processors_child_dies_with_serve(served: Served) -> None:
    """Last in this module: it kills the module's serve (kill -9, the process alone)."""
    child = int((get(served.port, "/health") or {})["processors"]["pid"])
    assert child in _children(served.pid)
    os.kill(served.pid, signal.SIGKILL)
    try:
        assert wait_for("the processors child gone", lambda: not Path(f"/proc/{child}").exists()
                        or "Z" in _state(child), timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):  # the group: nothing left behind
            os.killpg(served.pid, signal.SIGKILL)
