"""Confluent Schema Registry adapter for the codec, used when a registry URL is configured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kaizen.schemas.codec import Codec
from kaizen.streams.personal import codec_with_keys


class ConfluentRegistry:
    """The two calls `kaizen.schemas.codec.SchemaRegistry` needs, on confluent-kafka's client."""

    def __init__(self, url: str) -> None:
        # imported only when a registry is configured: the client pulls in several HTTP/auth libs
        from confluent_kafka.schema_registry import SchemaRegistryClient

        self._client: Any = SchemaRegistryClient({"url": url})

    def register(self, subject: str, schema_json: str) -> int:
        from confluent_kafka.schema_registry import Schema

        return int(self._client.register_schema(subject, Schema(schema_json, "AVRO")))

    def schema_json(self, schema_id: int) -> str:
        return str(self._client.get_schema(schema_id).schema_str)


def codec_for(registry_url: str, keys_path: Path | None = None) -> Codec:
    """Single-object encoding without a registry; Confluent framing with one. With a key store,
    personal fields are encrypted per user (streams/personal.py)."""
    return codec_with_keys(keys_path, ConfluentRegistry(registry_url) if registry_url else None)
