"""Issue 13: a record that kills the processors process (no exception to catch: os._exit, a
segfault, the OOM killer) is dead-lettered after 3 deaths instead of restart-looping `kaizen
serve` for ever, and learning goes on for everyone.

No input kills the processors today, so the kill comes from the documented test seam of
`processors/app.py`: `KAIZEN_TEST_EXIT_ON=<text>` makes a worker `os._exit(99)` while it folds a
record holding that text, exactly what a crash in a library would do. Before the fix the child
died on that record on every start and `serve` restarted it for ever: no lesson was learned.

faust's session timeout is lowered to 10 s here (`BROKER_SESSION_TIMEOUT`, faust's own setting)
so that each restarted child gets its partitions back without waiting 60 s for the dead one's
session to expire; the mechanism does not depend on it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kaizen.schemas import model
from tests.faults.serving import (
    Served,
    dead_letters,
    encode,
    free_port,
    get,
    produce_raw,
    recalled,
    record_recoveries,
)
from tests.integration.kafka_helpers import make_topics
from tests.integration.waiting import wait_for, wait_for_pipeline
from tests.integration.workers import start_worker, stop_worker, worker_env

MAGIC = "KAIZEN-TEST-KILL-THE-PROCESSORS"


@pytest.fixture()
def served(kafka_broker: Any, tmp_path: Path) -> Iterator[Served]:
    prefix = f"d{uuid.uuid4().hex[:10]}"
    topics = make_topics(kafka_broker.bootstrap, prefix)
    port = free_port()
    env = worker_env(kafka_broker.bootstrap, prefix, tmp_path / "home", KAIZEN_HTTP_PORT=str(port),
                     KAIZEN_GATE_SECONDS="0.5", KAIZEN_TEST_EXIT_ON=MAGIC,
                     BROKER_SESSION_TIMEOUT="10")
    service = start_worker(env, tmp_path / "serve.log", command="serve")
    try:
        wait_for("serve's processors in /health",
                 lambda: "processors" in (get(port, "/health") or {}), timeout=120)
        yield Served(kafka_broker.bootstrap, topics, port, tmp_path, service.pid)
    finally:
        stop_worker(service)


@pytest.mark.timeout(900)  # three deaths and restarts with backoff: minutes on a loaded machine
def test_a_record_that_kills_the_processors_is_dead_lettered_after_three_deaths(
    served: Served, tmp_path: Path
) -> None:
    tenant, at = "deadly", 1_700_000_300_000
    killer = model.EpisodeEvent(str(uuid.uuid4()), at, tenant, "support-bot", "deadly-1", 0,
                                model.EpisodeStarted(f"find an invoice {MAGIC}"),
                                user=f"{tenant}-user")
    produce_raw(served.bootstrap, served.topics.episodes, [(b"deadly-1", encode(killer))])
    record_recoveries(served, tenant, tmp_path)

    lessons = wait_for("the recovery lesson recalled", lambda: [
        x for x in recalled(served, tenant) if x.get("tool") == "invoices.find"], timeout=600)
    assert lessons  # learning went on past the record
    wait_for("the ProcessDied dead letter",
             lambda: any(d.error_type == "ProcessDied" for d in dead_letters(served)))
    wait_for_pipeline(served.bootstrap, served.topics.prefix)  # a second letter would be written
    letters = [d for d in dead_letters(served) if d.error_type == "ProcessDied"]
    assert len(letters) == 1
    [letter] = letters
    assert letter.source_topic == served.topics.episodes and letter.component == "assemble"
    assert "died 3 times" in letter.reason
    assert letter.value is not None and MAGIC.encode() in letter.value
    def running() -> dict[str, Any]:
        health = get(served.port, "/health") or {}
        return health if health.get("processors", {}).get("state") == "running" else {}

    health = wait_for("the processors running", running)
    assert health["processors"]["restarts"] == 3  # three deaths, then it went on
