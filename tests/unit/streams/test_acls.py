"""The role ACLs: who may write which topic (the broker test proves the broker enforces them)."""

from __future__ import annotations

from confluent_kafka.admin import AclOperation, ResourceType

from kaizen.streams.acls import role_grants
from kaizen.streams.topics import Topics


def _writable(principal: str, prefix: str = "kz") -> set[str]:
    return {g.name for g in role_grants(prefix) if g.principal == principal
            and g.resource == ResourceType.TOPIC
            and g.operation in (AclOperation.WRITE, AclOperation.ALL)}


def test_each_role_writes_only_its_topics() -> None:
    t = Topics("kz")
    assert _writable("recorder") == {t.episodes}
    assert {t.signals, t.patterns, t.experiences} <= _writable("processor")
    assert not {t.episodes, t.snapshots} & _writable("processor")
    # the service writes episodes for the OTLP receiver (its spans become episodes), no lessons
    assert _writable("service") == {t.snapshots, t.deadletter, t.privacy, t.episodes}


def test_prefixed_grants_never_cover_another_deployments_main_topics() -> None:
    prefixed = [g.name for g in role_grants("kz") if g.prefixed and g.principal == "processor"
                and g.resource == ResourceType.TOPIC]
    assert all(not Topics("kz").experiences.startswith(p) for p in prefixed)
    assert all(not "kz2.episodes".startswith(p) for p in prefixed)
