"""The root of Kaizen's exceptions: catch `KaizenError` to catch anything Kaizen raises on purpose.

Every Kaizen error derives from it and keeps the stdlib base callers already rely on
(`DecodeError` is still a `ValueError`, `KafkaLauncherError` a `RuntimeError`). The agent-facing
calls (`Recorder.emit`, `recall`) never raise for broker or network problems; these errors come
from commands, settings and the service.
"""

from __future__ import annotations

__all__ = ["KaizenError"]


class KaizenError(Exception):
    """Base class of every error Kaizen raises on purpose."""
