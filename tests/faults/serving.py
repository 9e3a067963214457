"""Helpers of the processing-side fault tests: one real `kaizen serve` (sinks, gate, processors
child) on the session broker, raw producers for records no Recorder would write, and the facts the
tests read (dead letters, lessons recalled, /health); waiting is tests/integration/waiting.py."""

from __future__ import annotations

import json
import socket
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from confluent_kafka import Producer

from kaizen.schemas import model
from kaizen.schemas.codec import Codec
from kaizen.streams.recorder import Recorder
from kaizen.streams.replay import Bounds, TopicReader
from kaizen.streams.topics import Topics

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(port: int, path: str) -> Any:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
            return json.loads(response.read())
    except OSError:
        return None


def post(port: int, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())
    except OSError:
        return None


@dataclass(frozen=True)
class Served:
    """A running `kaizen serve` and where to reach it."""

    bootstrap: str
    topics: Topics
    port: int
    home: Path
    pid: int  # of the serve process (its processors child is a child of it)


def produce_raw(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]],
                partition: int | None = None) -> None:
    """Write records as a hostile producer would: compressed, so a 5 MB value of one repeated
    byte passes the broker's 1 MB limit; `partition` pins them next to chosen episodes."""
    producer = Producer({"bootstrap.servers": bootstrap, "compression.type": "gzip",
                         "message.max.bytes": 16_000_000})
    for key, value in records:
        if partition is None:
            producer.produce(topic, value, key)
        else:
            producer.produce(topic, value, key, partition=partition)
    assert producer.flush(60) == 0


def encode(event: model.Event) -> bytes:
    return Codec().encode(event)


def record_recoveries(served: Served, tenant: str, spool: Path, count: int = 3) -> list[str]:
    """`count` episodes that fail on a renamed argument and recover with the new name: after the
    bad input, the pipeline must still learn this lesson for `tenant`."""
    recorder = Recorder("support-bot", tenant, bootstrap=served.bootstrap,
                        topic=served.topics.episodes, spool_dir=spool / tenant)
    ids = [record_recovery(recorder, i, f"{tenant}-u{i}", f"{tenant}-recover-{i}", tenant)
           for i in range(count)]
    assert recorder.flush(60) == 0
    recorder.close()
    return ids


def record_recovery(recorder: Recorder, i: int, user: str, episode_id: str,
                    tenant: str = "") -> str:
    """One episode that fails on the renamed argument `number` and recovers with `invoice_no`."""
    task = f"find invoice {i} for {tenant}" if tenant else f"find invoice {i}"
    with recorder.episode(task, user=user, episode_id=episode_id) as ep:
        ep.tool_call("invoices.find", {"number": i})
        ep.tool_result("invoices.find", ok=False, error="unknown field 'number'")
        ep.tool_call("invoices.find", {"invoice_no": i})
        ep.tool_result("invoices.find", ok=True)
        ep.end(success=True)
    return str(ep.episode_id)


def recalled(served: Served, tenant: str) -> list[dict[str, Any]]:
    """The lessons `/recall` gives an agent of `tenant` about to find an invoice."""
    body = {"task": f"find invoice 7 for {tenant}", "agent": "support-bot", "tenant": tenant,
            "tools": ["invoices.find"], "k": 5}
    answer = post(served.port, "/recall", body) or {}
    return list(answer.get("lessons", []))


def dead_letters(served: Served) -> list[model.DeadLetter]:
    return [r.event for r in TopicReader(served.bootstrap, served.topics.deadletter,
                                         Bounds()).records()
            if isinstance(r.event, model.DeadLetter)]


def dead_letter_sizes(served: Served) -> list[int]:
    """Encoded size of every dead letter on the topic."""
    reader = TopicReader(served.bootstrap, served.topics.deadletter, Bounds())
    return [len(r.value) for batch in reader.raw_batches() for r in batch]
