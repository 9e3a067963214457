"""The wheel as a user installs it: one `kaizen` namespace, a light agent side, `[server]` on top.

Builds the wheel from this checkout, installs it into fresh virtualenvs (dependencies from the
package index, so the pip cache makes repeat runs quick) and runs it from a user project whose own
`schemas.py`, `streams/` and `sinks.py` come first on `sys.path`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import venv
from pathlib import Path
from typing import Any

import pytest

from tests.integration.kafka_helpers import make_topics
from tests.integration.test_service import _free_port, _get
from tests.integration.waiting import wait_for
from tests.integration.workers import start_worker, stop_worker, worker_env

ROOT = Path(__file__).resolve().parents[2]
# what a user's shell has: no PYTHONPATH pointing into this checkout
USER_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
SERVER_ONLY = ("faust", "chdb", "qdrant_client", "onnxruntime", "pandas", "pyarrow", "numpy")

USER_SCRIPT = textwrap.dedent("""
    import json, sys, importlib.util
    import schemas, streams, sinks                      # the user's own modules
    from kaizen import Recorder, recall
    assert (schemas.MINE, streams.MINE, sinks.MINE) == (1, 1, 1), "user modules shadowed"
    rec = Recorder(agent="shop-bot", tenant="acme", follow_snapshots=False)
    for i in range(4):
        with rec.episode(f"look up order {i}", user=f"u{i}", episode_id=f"wheel-{i}") as ep:
            ep.tool_call("orders.get", {"order_id": i})
            ep.tool_result("orders.get", ok=False, error="400: unknown field 'order_id'")
            ep.tool_call("orders.get", {"id": i})
            ep.tool_result("orders.get", ok=True, output="shipped")
            ep.end(success=True)
    assert rec.flush(30) == 0
    rec.close()
    missing = [m for m in sys.argv[1:] if importlib.util.find_spec(m) is None]
    print(json.dumps({"missing": missing, "kaizen": __import__("kaizen").__file__}))
""")

RECALL_SCRIPT = textwrap.dedent("""
    import json
    from kaizen import recall
    lessons = recall("look up order 99", agent="shop-bot", tenant="acme", tools=["orders.get"])
    print(json.dumps([[x.experience_id, x.tool, x.guidance] for x in lessons]))
""")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True, env=USER_ENV)
    (built,) = out.glob("kaizen_fleet-*.whl")
    return built


def _venv_with(wheel: Path, where: Path, extra: str = "") -> Path:
    venv.create(where, with_pip=True)
    python = where / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", f"{wheel}{extra}"], check=True,
                   capture_output=True, env=USER_ENV)
    return python


def _site_packages(python: Path) -> Path:
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                          "['purelib'])"], check=True, capture_output=True, text=True,
                         env=USER_ENV)
    return Path(out.stdout.strip())


def _user_project(where: Path) -> Path:
    (where / "streams").mkdir(parents=True)
    for module in (where / "schemas.py", where / "sinks.py", where / "streams" / "__init__.py"):
        module.write_text("MINE = 1\n")
    return where


def test_the_base_wheel_records_and_recalls_beside_a_users_own_modules(
    wheel: Path, kafka_broker: Any, unique_topic_prefix: str, tmp_path: Path
) -> None:
    python = _venv_with(wheel, tmp_path / "venv")
    installed = {p.name for p in _site_packages(python).iterdir() if p.is_dir()}
    assert not installed & {"schemas", "streams", "processors", "sinks", "infra", "bench"}
    assert "kaizen" in installed

    make_topics(kafka_broker.bootstrap, unique_topic_prefix)
    port = _free_port()
    env = worker_env(kafka_broker.bootstrap, unique_topic_prefix, tmp_path / "home",
                     KAIZEN_HTTP_PORT=str(port))
    user = _user_project(tmp_path / "user")
    service = start_worker(env, tmp_path / "serve.log", command="serve")
    try:
        wait_for("the service", lambda: _get(port, "/health"))
        user_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
        ran = subprocess.run([str(python), "-c", USER_SCRIPT, *SERVER_ONLY], cwd=user, env=user_env,
                             capture_output=True, text=True, timeout=120)
        assert ran.returncode == 0, ran.stderr[-2000:]
        report = json.loads(ran.stdout.strip().splitlines()[-1])
        assert sorted(report["missing"]) == sorted(SERVER_ONLY)  # none of the server stack
        assert report["kaizen"].startswith(str(tmp_path / "venv"))

        def recalled() -> list[list[str]]:
            out = subprocess.run([str(python), "-c", RECALL_SCRIPT], cwd=user, env=user_env,
                                 capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, out.stderr[-2000:]
            return [x for x in json.loads(out.stdout.strip().splitlines()[-1])
                    if x[1] == "orders.get"]

        lessons = wait_for("the recovery lesson, recalled from the base install", recalled)
    finally:
        stop_worker(service)
    assert "id" in lessons[0][2]


@pytest.mark.timeout(900)  # minutes on a loaded 2-core machine
def test_the_server_extra_installs_the_whole_command_line(wheel: Path, tmp_path: Path) -> None:
    python = _venv_with(wheel, tmp_path / "venv", "[server]")
    kaizen = python.parent / "kaizen"
    shown = subprocess.run([str(kaizen), "--help"], capture_output=True, text=True, timeout=120,
                           env=USER_ENV)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "serve" in shown.stdout and "rebuild" in shown.stdout
    probe = "import faust, chdb, qdrant_client, kaizen.service.host, kaizen.processors.app"
    imported = subprocess.run([str(python), "-c", probe], capture_output=True, text=True,
                              timeout=300, env=USER_ENV)
    assert imported.returncode == 0, imported.stderr[-2000:]
