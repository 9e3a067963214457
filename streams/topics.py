"""The topic catalog: every Kaizen topic's name, partitions, retention, cleanup policy and key.

One declaration used by the admin command, the Recorder, the processors and the sinks, so a
deployment that shares a cluster only changes the prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

FOREVER = -1
WEEK_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    """How one topic is laid out; `suffix` is the name after the deployment prefix."""

    suffix: str
    key: str
    partitions: int
    retention_ms: int
    cleanup_policy: str
    doc: str

    def name(self, prefix: str) -> str:
        return f"{prefix}.{self.suffix}" if prefix else self.suffix

    def config(self) -> dict[str, str]:
        """Topic-level configs handed to the broker on creation."""
        return {"retention.ms": str(self.retention_ms), "cleanup.policy": self.cleanup_policy}


def catalog(partitions: int = 3) -> list[TopicSpec]:
    """Every topic. The log is the source of truth, so everything but dead letters is kept forever;
    `partitions` applies to the episode-keyed topics that carry the volume."""
    return [
        TopicSpec("episodes", "episode_id", partitions, FOREVER, "delete",
                  "Every episode event of every agent (the source of truth)."),
        TopicSpec("signals", "episode_id", partitions, FOREVER, "delete",
                  "Failures, recoveries, corrections, ratings, outcomes pulled from episodes."),
        TopicSpec("patterns", "agent/signature", partitions, FOREVER, "delete",
                  "Windowed cross-session aggregates per error signature."),
        TopicSpec("experiences", "experience_id", partitions, FOREVER, "delete",
                  "Every version of every lesson (latest per key wins)."),
        TopicSpec("snapshots", "tenant/agent", 1, FOREVER, "delete",
                  "Behavior snapshot lifecycle; one partition keeps the whole history ordered."),
        TopicSpec("deadletter", "source topic/offset", 1, 4 * WEEK_MS, "delete",
                  "Records a component could not process, with the reason."),
        TopicSpec("privacy", "tenant/user", 1, FOREVER, "delete",
                  "Receipts of forgotten users (kaizen forget); a rebuild applies them."),
    ]


@dataclass(frozen=True)
class Topics:
    """Resolved topic names of one deployment."""

    prefix: str = "kaizen"

    @property
    def episodes(self) -> str:
        return f"{self.prefix}.episodes"

    @property
    def signals(self) -> str:
        return f"{self.prefix}.signals"

    @property
    def patterns(self) -> str:
        return f"{self.prefix}.patterns"

    @property
    def experiences(self) -> str:
        return f"{self.prefix}.experiences"

    @property
    def snapshots(self) -> str:
        return f"{self.prefix}.snapshots"

    @property
    def deadletter(self) -> str:
        return f"{self.prefix}.deadletter"

    @property
    def privacy(self) -> str:
        return f"{self.prefix}.privacy"
