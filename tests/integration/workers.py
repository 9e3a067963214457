"""Run `kaizen process` workers as real subprocesses against the session broker."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def worker_env(bootstrap: str, prefix: str, home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAIZEN_")}
    env.update(KAIZEN_KAFKA_BOOTSTRAP=bootstrap, KAIZEN_TOPIC_PREFIX=prefix,
               KAIZEN_HOME=str(home), KAIZEN_LOG_FORMAT="json", **extra)
    return env


@contextlib.contextmanager
def environ(env: dict[str, str]) -> Iterator[None]:
    """Run in-process CLI code with exactly `env` as the environment, then restore it."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def start_worker(
    env: dict[str, str], log: Path, command: str = "process"
) -> subprocess.Popen[bytes]:
    """`kaizen process` (or `serve`) in its own process group, so stopping it stops its children."""
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "kaizen.cli", command], env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop_worker(worker: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, sig)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
