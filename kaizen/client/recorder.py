"""`kaizen.Recorder`: the streams Recorder wired from `Settings`, so attaching takes two names."""

from __future__ import annotations

from typing import Any

from kaizen.settings import Settings, load_settings
from kaizen.streams.recorder import Recorder as _StreamsRecorder
from kaizen.streams.redaction import Redactor
from kaizen.streams.registry import codec_for
from kaizen.streams.topics import Topics


class Recorder(_StreamsRecorder):
    """Attach to an agent: `Recorder(agent="support-bot", tenant="acme")`.

    Reads `KAIZEN_*` settings (broker, topic prefix, spool) unless `settings` is given. Follows
    the snapshot log, so every event carries the scope's active behavior snapshot.
    """

    def __init__(
        self,
        agent: str,
        tenant: str,
        *,
        settings: Settings | None = None,
        snapshot_id: str | None = None,
        agent_version: str = "",
        follow_snapshots: bool = True,
        **overrides: Any,
    ) -> None:
        settings = settings or load_settings()
        super().__init__(
            agent,
            tenant,
            bootstrap=settings.bootstrap,
            topic=Topics(settings.topic_prefix).episodes,
            spool_dir=settings.spool_dir / f"{tenant}.{agent}",
            spool_max_bytes=settings.spool_max_bytes,
            snapshot_id=snapshot_id,
            agent_version=agent_version,
            codec=codec_for(settings.schema_registry_url, settings.personal_keys),
            follow_snapshots=Topics(settings.topic_prefix).snapshots if follow_snapshots else None,
            redactor=overrides.pop("redactor", None) or redactor_for(settings),
            producer_overrides={**settings.kafka_client,
                                **(overrides.pop("producer_overrides", None) or {})},
            **overrides,
        )
        self._settings = settings

    def on_error_recall(self, episode: Any, tool: str, error: str, k: int) -> list[Any]:
        """`Episode.what_worked`: recall by the failure's error signature (kaizen.recall)."""
        from kaizen.client.recall import what_worked

        return what_worked(tool, error, task=episode.task, agent=self.agent, tenant=self.tenant,
                           user=episode.user, k=k, settings=self._settings)


def redactor_for(settings: Settings) -> Redactor:
    """The redaction step every ingest path runs, as configured (`KAIZEN_REDACT*`)."""
    if not settings.redact:
        return Redactor.disabled()
    return Redactor.default(settings.redact_patterns, max_chars=settings.redact_max_chars)
