"""Shared set-up for benchmarks: a real broker (the local launcher in a temp dir, or yours)."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kaizen.infra.kafka import KafkaLauncher


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def broker(home: Path) -> Iterator[str]:
    """KAIZEN_KAFKA_BOOTSTRAP if set, else a private local broker for the benchmark's lifetime."""
    bootstrap = os.environ.get("KAIZEN_KAFKA_BOOTSTRAP", "")
    if bootstrap:
        yield bootstrap
        return
    launcher = KafkaLauncher(home=home / "kafka-home", port=free_port(),
                             controller_port=free_port())
    launcher.up()
    try:
        yield launcher.bootstrap
    finally:
        launcher.down()


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


def write_json(path: Path, figures: dict[str, float]) -> None:
    """A benchmark's figures under their stable names (`bench/report.py` tabulates them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({k: round(float(v), 4) for k, v in figures.items()}, indent=1,
                               sort_keys=True) + "\n")
