"""Fault probes, on real brokers and the real service code: what survives each kind of trouble.

Prints one table: probe, records tried, survived, lost, duplicated, and the time to recover
(from the fault to the first normal record delivered or answered after it). Probes:
- broker kill: a three-broker cluster (replication 3, min.insync.replicas 2), one broker killed
  with SIGKILL half-way through an agent's emits;
- oversize event: every tenth episode carries a 3 MB error text (cut to fit, never raised);
- spool full: a bounded spool takes 4x its bound (the oldest are dropped by design: "lost" is the
  bound at work) and the SQLite steps per put, full against empty, are shown in the note;
- recall, service down: recall against a port nothing listens on, a hanging and a resetting server;
- hostile HTTP bodies: oversize, negative lengths, deep nesting, junk, unknown methods.

Run: `python bench/faults.py [--events 6000] [--skip-cluster] [--json PATH]` after `make setup`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: bench importable

from bench.common import broker, free_port
from kaizen.infra.cluster import KafkaCluster
from kaizen.logs import configure_logging
from kaizen.schemas import model
from kaizen.streams.admin import create_topics
from kaizen.streams.recorder import Recorder
from kaizen.streams.replay import Bounds, TopicReader
from kaizen.streams.spool import Spool, SpooledRecord
from kaizen.streams.topics import Topics


@dataclass
class Probe:
    probe: str
    tried: int
    survived: int
    lost: int
    duplicated: int
    recover_s: float | None
    note: str = ""


def _recorder(bootstrap: str, topic: str, home: Path) -> Recorder:
    return Recorder("bench-bot", "bench", bootstrap=bootstrap, topic=topic,
                    spool_dir=home / f"spool-{uuid.uuid4().hex[:6]}" / "bench.bench-bot")


def _emit(recorder: Recorder, index: int, error: str | None = None) -> None:
    with recorder.episode(f"task {index}") as ep:
        ep.tool_call("search", {"q": index})
        ep.tool_result("search", ok=error is None, error=error)
        ep.end(success=error is None)


def _delivered_ids(bootstrap: str, topic: str) -> list[str]:
    return [r.event.event_id for r in TopicReader(bootstrap, topic, Bounds()).records()
            if isinstance(r.event, model.EpisodeEvent)]


def _count(probe: str, tried: int, ids: list[str], recover: float | None, note: str) -> Probe:
    unique = len(set(ids))
    return Probe(probe, tried, unique, tried - unique, len(ids) - unique, recover, note)


def _distinct_free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def probe_broker_kill(home: Path, episodes: int) -> Probe:
    ports = _distinct_free_ports(6)
    cluster = KafkaCluster(home / "cluster", 3,
                           node_ports=tuple(zip(ports[::2], ports[1::2], strict=True)))
    cluster.up(timeout=240)
    try:
        prefix = f"bk{uuid.uuid4().hex[:6]}"
        create_topics(cluster.bootstrap, prefix, 3, replication=3)
        topic = Topics(prefix).episodes
        recorder = _recorder(cluster.bootstrap, topic, home)
        killed_at, recovered_at, delivered_at_kill = 0.0, 0.0, 0
        for index in range(episodes):
            _emit(recorder, index)
            if index == episodes // 2:
                recorder.flush(30)
                delivered_at_kill = recorder.stats.delivered
                os.kill(int(cluster.nodes[1].status()["pid"]), signal.SIGKILL)
                killed_at = time.monotonic()
            if killed_at and not recovered_at and recorder.stats.delivered > delivered_at_kill:
                recovered_at = time.monotonic()
        recorder.flush(180)
        recovered_at = recovered_at or time.monotonic()
        recorder.close()
        alive = ",".join(n.bootstrap for n in cluster.nodes[::2])
        ids = _delivered_ids(alive, topic)
        return _count("broker kill (1 of 3)", recorder.stats.emitted, ids,
                      recovered_at - killed_at, "acks=all, RF 3, min ISR 2")
    finally:
        cluster.down()


def probe_oversize(bootstrap: str, home: Path, episodes: int) -> Probe:
    prefix = f"ov{uuid.uuid4().hex[:6]}"
    create_topics(bootstrap, prefix, 3)
    topic = Topics(prefix).episodes
    recorder = _recorder(bootstrap, topic, home)
    huge = os.urandom(1_500_000).hex()
    started = time.monotonic()
    raised = 0
    for index in range(episodes):
        try:
            _emit(recorder, index, huge if index % 10 == 0 else None)
        except Exception:  # noqa: BLE001 - counted: the agent would have been hurt
            raised += 1
    recorder.flush(120)
    recorder.close()
    ids = _delivered_ids(bootstrap, topic)
    return _count("oversize event (3 MB)", recorder.stats.emitted, ids,
                  None, f"{recorder.stats.truncated} cut to fit, {raised} raised, "
                  f"{time.monotonic() - started:.1f}s")


def probe_spool_full(home: Path, records: int) -> Probe:
    row = b"x" * 200
    spool = Spool(home / "spool-full", max_bytes=records // 4 * len(row))
    steps = [0]

    def tick() -> int:
        steps[0] += 1
        return 0

    def put_range(start: int, count: int) -> float:
        steps[0] = 0
        # under the spool's database lock: set while the writer thread is in the handler, it
        # deadlocks (this thread holds the GIL and waits for SQLite; the writer, the reverse)
        with spool._db_lock:  # noqa: SLF001
            spool._db.set_progress_handler(tick, 10)  # noqa: SLF001 - the work, in SQLite steps
        for key in range(start, start + count):
            spool.put(SpooledRecord(key, "t", b"k", row))
        with spool._db_lock:  # noqa: SLF001
            spool._db.set_progress_handler(None, 0)  # noqa: SLF001
        return steps[0] / count

    empty = put_range(1, records // 8)
    put_range(records, records - records // 4)
    full = put_range(10 * records, records // 4)
    kept = len(spool)
    tried = records // 8 + records
    spool.close()
    return Probe("spool full (4x bound)", tried, kept, tried - kept, 0, None,
                 f"steps/put full {full:.1f} vs empty {empty:.1f} (x{full / max(empty, 0.1):.1f})")


def _hostile_server(behaviour: Callable[[socket.socket], None]
                    ) -> tuple[int, Callable[[], None]]:
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                behaviour(conn)

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1], listener.close


def _hang(conn: socket.socket) -> None:
    conn.recv(65536)
    time.sleep(2)


def _reset(conn: socket.socket) -> None:
    conn.recv(65536)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def probe_recall_down(home: Path, calls: int) -> Probe:
    from kaizen.client.recall import recall
    from kaizen.settings import load_settings

    survived, worst = 0, 0.0
    for behaviour in (_hang, _reset, None):
        port, close = _hostile_server(behaviour) if behaviour else (free_port(), lambda: None)
        settings = load_settings(home=home / "recall", http_port=port)
        for _ in range(calls):
            started = time.monotonic()
            try:
                survived += recall("a task", agent="a", tenant="t", settings=settings,
                                   timeout=0.5) == []
            except Exception:  # noqa: BLE001 - counted as lost: it would have hurt the agent
                pass
            worst = max(worst, time.monotonic() - started)
        close()
    tried = 3 * calls
    return Probe("recall: hangs, resets, down", tried, survived, tried - survived, 0, worst,
                 "recover = slowest call; down = the embedded library is opened instead")


HOSTILE = [
    b"POST /recall HTTP/1.1\r\nContent-Length: 1000000000\r\n\r\n{}",
    b"POST /recall HTTP/1.1\r\nContent-Length: -5\r\n\r\n{}",
    b"POST /recall HTTP/1.1\r\nContent-Length: 60000\r\n\r\n" + b"[" * 60000,
    b"POST /snapshots/approve HTTP/1.1\r\nContent-Length: 9\r\n\r\n\xff\xfe junk!",
    b"PUT /recall HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    b"GET /analytics/failures?since=notanumber HTTP/1.1\r\n\r\n",
    b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
]


def probe_hostile_http(bootstrap: str, home: Path, rounds: int) -> Probe:
    from kaizen.service.host import Stores, make_behavior
    from kaizen.service.http_api import make_server
    from kaizen.settings import load_settings

    prefix = f"hh{uuid.uuid4().hex[:6]}"
    create_topics(bootstrap, prefix, 1)
    settings = load_settings(home=home / "http", kafka_bootstrap=bootstrap, topic_prefix=prefix)
    stores = Stores.open(settings)
    server = make_server("127.0.0.1", 0, stores, settings, make_behavior(settings, stores),
                         request_timeout=2.0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    answered = 0
    try:
        for _ in range(rounds):
            for raw in HOSTILE:
                status = _status(server.server_port, raw)
                answered += status is not None and status < 500
        started = time.monotonic()
        while _status(server.server_port, b"GET /health HTTP/1.0\r\n\r\n") != 200:
            time.sleep(0.05)
        recover = time.monotonic() - started
    finally:
        server.shutdown()
        server.server_close()
        stores.close()
    tried = rounds * len(HOSTILE)
    return Probe("hostile HTTP bodies", tried, answered, tried - answered, 0, recover,
                 "survived = a clear 4xx; recover = next /health")


def _status(port: int, raw: bytes) -> int | None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(raw)
            line = sock.makefile("rb").readline()
        return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None


def print_table(rows: list[Probe]) -> None:
    print(f"{'probe':<30} {'tried':>7} {'survived':>9} {'lost':>6} {'dup':>5} {'recover':>9}  note")
    for r in rows:
        recover = f"{r.recover_s:.2f}s" if r.recover_s is not None else "-"
        print(f"{r.probe:<30} {r.tried:>7} {r.survived:>9} {r.lost:>6} {r.duplicated:>5} "
              f"{recover:>9}  {r.note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=6000, help="episode events per probe")
    parser.add_argument("--skip-cluster", action="store_true", help="no broker-kill probe")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    configure_logging("console", "error")
    episodes = max(10, args.events // 4)
    rows: list[Probe] = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        if not args.skip_cluster:
            rows.append(probe_broker_kill(home, episodes))
        with broker(home) as bootstrap:
            rows.append(probe_oversize(bootstrap, home, episodes))
            rows.append(probe_spool_full(home, args.events))
            rows.append(probe_recall_down(home, 5))
            rows.append(probe_hostile_http(bootstrap, home, 5))
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    return 0 if all(r.lost == 0 or r.probe.startswith("spool") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
