"""One real `kaizen serve` (with processors) on the session broker for the integration adapters'
tests; each test uses its own agent name, so lessons never cross between tests."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kaizen.settings import Settings, load_settings
from kaizen.streams.topics import Topics
from tests.integration.kafka_helpers import make_topics
from tests.integration.waiting import wait_for, wait_for_pipeline
from tests.integration.workers import start_worker, stop_worker, worker_env


@dataclass(frozen=True)
class Service:
    """A running `kaizen serve`: its port, env (for subprocesses) and settings (in-process)."""

    port: int
    env: dict[str, str]
    topics: Topics
    bootstrap: str
    home: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settings(self) -> Settings:
        return load_settings(kafka_bootstrap=self.bootstrap, topic_prefix=self.topics.prefix,
                             home=self.home / "client", http_port=self.port)

    def get(self, path: str) -> Any:
        try:
            with urllib.request.urlopen(self.url + path, timeout=30) as response:
                return json.loads(response.read())
        except OSError:
            return None

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        request = urllib.request.Request(self.url + path, body, headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def recall(self, task: str, agent: str, tenant: str = "default") -> list[dict[str, Any]]:
        body = json.dumps({"task": task, "agent": agent, "tenant": tenant, "k": 5}).encode()
        status, data = self.post("/recall", body, {"Content-Type": "application/json"})
        return list(json.loads(data)["lessons"]) if status == 200 else []

    def wait_for_lesson(self, task: str, agent: str, tool: str, tenant: str = "default"
                        ) -> list[dict[str, Any]]:
        """Recall until a lesson about `tool` is active, then again once every stage has caught
        up with what was written so far (the answer is final for that input)."""
        wait_for(f"a lesson about {tool} recalled", lambda: any(
            x.get("tool") == tool or tool in x["guidance"]
            for x in self.recall(task, agent, tenant)), timeout=360)
        self.drained()
        return self.recall(task, agent, tenant)

    def drained(self) -> None:
        """Until the processors and the sinks have consumed everything written so far."""
        wait_for_pipeline(self.bootstrap, self.topics.prefix)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="package")
def service(kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    home = tmp_path_factory.mktemp("integrations")
    prefix = f"ti{home.name[-6:].replace('-', '')}{_free_port()}"
    topics = make_topics(kafka_broker.bootstrap, prefix)
    port = _free_port()
    env = worker_env(kafka_broker.bootstrap, prefix, home / "serve",
                     KAIZEN_HTTP_PORT=str(port), KAIZEN_OTLP_IDLE_SECONDS="5")
    process = start_worker(env, home / "serve.log", command="serve")
    service = Service(port, env, topics, kafka_broker.bootstrap, home)
    try:
        wait_for("serve healthy", lambda: (service.get("/health") or {}).get("ok", False),
                 timeout=180)
        yield service
    finally:
        stop_worker(process)
