"""A local KRaft cluster of several brokers on 127.0.0.1, for replication and broker-loss tests.

Each node is a `KafkaLauncher` in combined mode (broker + controller) with its own directory
(``<home>/kafka``, ``<home>/kafka-2``, ...), its own pair of ports and one shared cluster id; the
controllers form one quorum, and topics get replication ``min(3, brokers)`` with
``min.insync.replicas`` 2, so acks=all survives the loss of any one broker with nothing lost.

    cluster = KafkaCluster(home=Path(".kaizen"), brokers=3)
    cluster.up()         # 'started 3 brokers in 9.1s'
    cluster.bootstrap    # '127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096'
    cluster.down()

Like infra/kafka.py it imports no Kafka client and no other project package.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kaizen.infra.kafka import KafkaLauncher

NODE_DIRS = "kafka-"


@dataclass(frozen=True)
class KafkaCluster:
    """Start, inspect and stop `brokers` local nodes; node i uses ``port + 2i`` and
    ``controller_port + 2i`` unless `node_ports` names every node's pair."""

    home: Path
    brokers: int = 3
    port: int = 19092
    controller_port: int = 19093
    cache_dir: Path | None = None
    node_ports: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", Path(self.home).expanduser().absolute())
        if self.node_ports and len(self.node_ports) != self.brokers:
            raise ValueError("node_ports must name a (port, controller_port) pair per broker")

    @property
    def ports(self) -> tuple[tuple[int, int], ...]:
        return self.node_ports or tuple(
            (self.port + 2 * i, self.controller_port + 2 * i) for i in range(self.brokers))

    @property
    def nodes(self) -> list[KafkaLauncher]:
        quorum = ",".join(f"{i + 1}@127.0.0.1:{c}" for i, (_, c) in enumerate(self.ports))
        replication = min(3, self.brokers)
        return [KafkaLauncher(home=self.home, port=p, controller_port=c, cache_dir=self.cache_dir,
                              node_id=i + 1, quorum=quorum, replication=replication,
                              node_dir="kafka" if i == 0 else f"{NODE_DIRS}{i + 1}")
                for i, (p, c) in enumerate(self.ports)]

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    def up(self, timeout: float = 120) -> str:
        """Start every node that is not running (all share one cluster id), then wait for all:
        a node is ready only once a quorum of controllers runs."""
        nodes = self.nodes
        if all(node.status()["running"] for node in nodes):
            return f"{self.brokers} brokers already running"
        self._share_cluster_id(nodes)
        started = time.monotonic()
        pids = [node.start() for node in nodes]
        for node, pid in zip(nodes, pids, strict=True):
            node.wait_ready(pid, max(1.0, timeout - (time.monotonic() - started)))
        return f"started {self.brokers} brokers in {time.monotonic() - started:.1f}s"

    def down(self, timeout: float = 30) -> str:
        """Stop every node (also nodes of a larger cluster started earlier in this home)."""
        found = max(self.brokers, *(int(d.name[len(NODE_DIRS):]) for d in self._node_dirs()))
        cluster = KafkaCluster(self.home, found, self.port, self.controller_port,
                               self.cache_dir, self.node_ports if found == self.brokers else ())
        return "; ".join(f"node {n.node_id}: {n.down(timeout)}" for n in cluster.nodes)

    def status(self) -> dict[str, Any]:
        states = [node.status() for node in self.nodes]
        return {"running": all(s["running"] for s in states), "brokers": self.brokers,
                "bootstrap": self.bootstrap, "pids": [s["pid"] for s in states],
                "data_dirs": [s["data_dir"] for s in states]}

    def _node_dirs(self) -> list[Path]:
        return [d for d in self.home.glob(f"{NODE_DIRS}*") if d.name[len(NODE_DIRS):].isdigit()]

    @staticmethod
    def _share_cluster_id(nodes: list[KafkaLauncher]) -> None:
        first = nodes[0].kafka_dir / "cluster.id"
        first.parent.mkdir(parents=True, exist_ok=True)
        if not first.exists():
            first.write_text(_new_cluster_id() + "\n")
        for node in nodes[1:]:
            node.kafka_dir.mkdir(parents=True, exist_ok=True)
            (node.kafka_dir / "cluster.id").write_text(first.read_text())


def _new_cluster_id() -> str:
    from kaizen.infra.kafka import _random_kafka_uuid

    return _random_kafka_uuid()
