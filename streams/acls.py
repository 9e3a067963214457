"""Kafka ACLs per Kaizen role: who may write which topic (DESIGN, Trust boundaries).

Recorders write episodes only (and read the snapshot log to stamp events); only processors write
signals, patterns and experiences; only the service writes snapshots. The broker denies anything
without an ACL (`allow.everyone.if.no.acl.found=false`), so a leaked Recorder credential cannot
inject a lesson. The same bindings work on a real cluster (README, "Kafka ACLs").
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from kaizen.streams.topics import Topics

SCRAM_MECHANISM = "SCRAM-SHA-512"


def sasl_config(username: str, password: str, mechanism: str = SCRAM_MECHANISM,
                protocol: str = "SASL_PLAINTEXT") -> dict[str, Any]:
    """librdkafka settings for one SCRAM principal."""
    return {"security.protocol": protocol, "sasl.mechanism": mechanism,
            "sasl.username": username, "sasl.password": password}


@dataclass(frozen=True)
class Grant:
    """One ACL: `principal` may `operation` on a topic or group named (or prefixed) `name`."""

    principal: str
    resource: ResourceType
    name: str
    operation: AclOperation
    prefixed: bool = False

    def binding(self) -> AclBinding:
        pattern = ResourcePatternType.PREFIXED if self.prefixed else ResourcePatternType.LITERAL
        return AclBinding(self.resource, self.name, pattern, f"User:{self.principal}", "*",
                          self.operation, AclPermissionType.ALLOW)


def _topic(principal: str, name: str, *ops: AclOperation, prefixed: bool = False) -> list[Grant]:
    return [Grant(principal, ResourceType.TOPIC, name, op, prefixed) for op in ops]


def _group(principal: str, prefix: str) -> Grant:
    return Grant(principal, ResourceType.GROUP, prefix, AclOperation.READ, True)


R, W, D = AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE


def role_grants(prefix: str, processors_app: str | None = None) -> list[Grant]:
    """Every ACL of a deployment with topic prefix `prefix` (faust app `<prefix>-processors`)."""
    t, app = Topics(prefix), processors_app or f"{prefix}-processors"
    grants = [
        *_topic("recorder", t.episodes, W, D),
        *_topic("recorder", t.snapshots, R, D),
        _group("recorder", "kaizen-tail-"),
        # processors: read the log, write what they derive, own their internal topics
        *[g for name in (t.episodes, t.signals, t.patterns, t.experiences)
          for g in _topic("processor", name, R, D)],
        *[g for name in (t.signals, t.patterns, t.experiences, t.deadletter)
          for g in _topic("processor", name, W)],
        *_topic("processor", app, AclOperation.ALL, prefixed=True),
        *_topic("processor", f"{prefix}.tool-results-", AclOperation.ALL, prefixed=True),
        *_topic("processor", f"{prefix}.curation-", AclOperation.ALL, prefixed=True),
        _group("processor", app),
        # the service: reads everything, writes the snapshot log (and dead letters)
        *_topic("service", f"{prefix}.", R, D, prefixed=True),
        *_topic("service", t.snapshots, W),
        *_topic("service", t.deadletter, W),
        *_topic("service", t.privacy, W),  # forget receipts
        *_topic("service", t.episodes, W),  # the OTLP receiver records the spans it is sent
        _group("service", prefix),
        _group("service", "kaizen-"),
    ]
    # Idempotent producers (every Kaizen producer) need IDEMPOTENT_WRITE on the cluster.
    grants += [Grant(p, ResourceType.BROKER, "kafka-cluster", AclOperation.IDEMPOTENT_WRITE)
               for p in ("recorder", "processor", "service")]
    return grants


def apply_acls(bootstrap: str, admin_password: str, prefix: str, timeout: float = 30.0) -> int:
    """Create every role ACL (idempotent: the broker keeps one copy) and return how many, once
    the broker's authorizer serves them all (ACLs reach it through the metadata log, a moment
    after the controller accepted them)."""
    admin = AdminClient({"bootstrap.servers": bootstrap, **sasl_config("admin", admin_password)})
    bindings = [g.binding() for g in role_grants(prefix)]
    for future in admin.create_acls(bindings, request_timeout=timeout).values():
        future.result(timeout)
    deadline, wanted = time.monotonic() + timeout, set(bindings)
    while not wanted <= set(admin.describe_acls(_ANY, request_timeout=timeout).result(timeout)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the broker did not serve the new ACLs within {timeout:g}s")
        time.sleep(0.1)
    return len(bindings)


_NONE: Any = None  # "any" in a filter; the stubs type these arguments as str
_ANY = AclBindingFilter(ResourceType.ANY, _NONE, ResourcePatternType.ANY, _NONE, _NONE,
                        AclOperation.ANY, AclPermissionType.ANY)
