"""The processors' configuration from settings: one place for `kaizen process`, `kaizen serve`'s
processors child and the backtest's, so every worker of a deployment joins the same group."""

from __future__ import annotations

from kaizen.processors.config import KafkaLogin, ProcessorConfig
from kaizen.settings import Settings


def processor_config(settings: Settings, app_id: str | None = None) -> ProcessorConfig:
    return ProcessorConfig(
        bootstrap=settings.bootstrap,
        prefix=settings.topic_prefix,
        partitions=settings.topic_partitions,
        app_id=app_id or f"{settings.topic_prefix}-processors",
        data_dir=settings.home / "processors",
        min_support=settings.min_support,
        idle_ms=int(settings.episode_idle_seconds * 1000),
        keys_path=settings.personal_keys,
        limits=settings.limits,
        login=kafka_login(settings),
        replication=settings.topic_replication,
    )


def kafka_login(settings: Settings) -> KafkaLogin | None:
    """The SASL login of this process from settings (None without a username)."""
    if not settings.kafka_username:
        return None
    password = settings.kafka_password.get_secret_value() if settings.kafka_password else ""
    return KafkaLogin(settings.kafka_username, password, settings.kafka_sasl_mechanism,
                      settings.kafka_security_protocol)
