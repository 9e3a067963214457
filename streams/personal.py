"""Per-user encryption of personal fields, with keys outside the log (crypto-shredding).

The log is never edited, so forgetting a user cannot delete their records from it. Instead, the
personal text fields of every event that names a user (task, model content, tool arguments,
results and errors, corrections, recall queries; a signal's copies of them) are written encrypted
with AES-256-GCM under a key of that (tenant, user), kept in a `KeyStore` OUTSIDE Kafka (a SQLite
file under KAIZEN_HOME by default). `kaizen forget` deletes the key: from then on every replay of
every topic reads those fields as `<forgotten>`, in every process and every rebuild.

Only string fields of events with a user are touched, and only when encryption is on, so the
emit hot path of anonymous traffic is unchanged. The associated data binds a ciphertext to its
(tenant, user): it cannot be moved into another user's record.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kaizen.schemas import model
from kaizen.schemas.codec import Codec, Decoded, SchemaRegistry

PREFIX = "kz1:"
FORGOTTEN = "<forgotten>"
UNREADABLE = "<undecryptable>"
_CACHE_SECONDS = 5.0  # how long a process trusts a key it read (forget elsewhere: at most this)

#: The personal string fields of each event kind.
PERSONAL: dict[type, tuple[str, ...]] = {
    model.EpisodeStarted: ("task",),
    model.LlmCall: ("content",),
    model.ToolCall: ("arguments_json",),
    model.ToolResult: ("error", "output"),
    model.Feedback: ("correction",),
    model.Recall: ("query",),
    model.Signal: ("task", "error", "arguments_json", "correction"),
    model.Experience: ("guidance",),  # only a user-scoped lesson (preference) has a user
    model.Trigger: ("example_task",),
}
_EMPTY_IF_GONE = {"arguments_json": "{}"}  # stays valid JSON for the consumers that parse it

E = TypeVar("E")


class KeyStore:
    """One 256-bit key per (tenant, user), created on first use, deleted by `forget`.

    A SQLite file, safe to share by the processes of one machine (WAL, insert-or-ignore, so two
    processes creating a key at once agree on one)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS keys (tenant TEXT, user TEXT, key BLOB, "
                         "created_ms INTEGER, PRIMARY KEY (tenant, user))")
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], tuple[float, bytes | None]] = {}
        os.chmod(path, 0o600)

    def key(self, tenant: str, user: str, *, create: bool) -> bytes | None:
        """The user's key; a new one if `create` and there is none (None otherwise)."""
        cached = self._cache.get((tenant, user))
        if cached is not None and time.monotonic() - cached[0] < _CACHE_SECONDS and (
            cached[1] is not None or not create
        ):
            return cached[1]
        with self._lock:
            if create:
                self._db.execute("INSERT OR IGNORE INTO keys VALUES (?, ?, ?, ?)",
                                 (tenant, user, AESGCM.generate_key(256), time.time_ns() // 10**6))
            row = self._db.execute("SELECT key FROM keys WHERE tenant = ? AND user = ?",
                                   (tenant, user)).fetchone()
        key = bytes(row[0]) if row else None
        self._cache[(tenant, user)] = (time.monotonic(), key)
        return key

    def forget(self, tenant: str, user: str) -> bool:
        """Delete the user's key (and this process's copy); True if there was one."""
        with self._lock:
            deleted = self._db.execute("DELETE FROM keys WHERE tenant = ? AND user = ?",
                                       (tenant, user)).rowcount
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # no copy left in the WAL
        self._cache.pop((tenant, user), None)
        return bool(deleted)

    def close(self) -> None:
        self._db.close()


class PersonalCipher:
    """Encrypts and decrypts the personal fields of events that name a user."""

    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys

    def seal(self, event: E) -> E:
        """The event with its personal fields encrypted (unchanged without a user)."""
        return self._map(event, self._encrypt, create=True)

    def open(self, event: E) -> E:
        """The event with its personal fields readable again, or `<forgotten>` once the key is
        gone (`{}` for arguments)."""
        return self._map(event, self._decrypt, create=False)

    def seal_value(self, tenant: str, user: str, value: Any) -> str:
        """A JSON-able value (a processor's state) as one ciphertext under the user's key."""
        key = self.keys.key(tenant, user, create=True)
        text = json.dumps(value, separators=(",", ":"))
        return self._encrypt("", text, key, f"{tenant}\x1f{user}".encode())

    def open_value(self, tenant: str, user: str, sealed: str) -> Any | None:
        """Inverse of `seal_value`; None once the user is forgotten (or the text was moved)."""
        key = self.keys.key(tenant, user, create=False)
        text = self._decrypt("", sealed, key, f"{tenant}\x1f{user}".encode())
        return None if text in (FORGOTTEN, UNREADABLE) else json.loads(text)

    def _map(self, event: Any, fn: Any, *, create: bool) -> Any:
        user = getattr(event, "user", None)
        if isinstance(event, model.Experience) and not user and create:
            return _without_example(event)
        if not user:
            return event
        key = self.keys.key(event.tenant, user, create=create)
        aad = f"{event.tenant}\x1f{user}".encode()
        if isinstance(event, model.EpisodeEvent):
            payload = _mapped(event.payload, fn, key, aad)
            return event if payload is event.payload else replace(event, payload=payload)
        if isinstance(event, model.Experience):  # a user's own lesson: their words, their key
            trigger = _mapped(event.trigger, fn, key, aad)
            event = event if trigger is event.trigger else replace(event, trigger=trigger)
        return _mapped(event, fn, key, aad)

    @staticmethod
    def _encrypt(name: str, value: str, key: bytes | None, aad: bytes) -> str:
        if value.startswith(PREFIX) or key is None:
            return value
        nonce = os.urandom(12)
        sealed = AESGCM(key).encrypt(nonce, value.encode(), aad)
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    @staticmethod
    def _decrypt(name: str, value: str, key: bytes | None, aad: bytes) -> str:
        if not value.startswith(PREFIX):
            return value
        if key is None:
            return _EMPTY_IF_GONE.get(name, FORGOTTEN)
        try:
            raw = base64.urlsafe_b64decode(value[len(PREFIX):])
            return AESGCM(key).decrypt(raw[:12], raw[12:], aad).decode()
        except (InvalidTag, ValueError):
            return _EMPTY_IF_GONE.get(name, UNREADABLE)


def _without_example(lesson: model.Experience) -> model.Experience:
    """A shared lesson's example task is one user's text under nobody's key: it is not written
    (recall still embeds the guidance and the signature)."""
    if not lesson.trigger.example_task:
        return lesson
    return replace(lesson, trigger=replace(lesson.trigger, example_task=""))


def _mapped(obj: Any, fn: Any, key: bytes | None, aad: bytes) -> Any:
    changes = {}
    for name in PERSONAL.get(type(obj), ()):
        value = getattr(obj, name)
        if value:
            new = fn(name, value, key, aad)
            if new != value:
                changes[name] = new
    return replace(obj, **changes) if changes else obj


class CipherCodec(Codec):
    """The codec with per-user encryption: seals on encode, opens on decode. Give it to every
    producer and consumer of episodes and signals of a deployment that encrypts."""

    def __init__(self, cipher: PersonalCipher, registry: SchemaRegistry | None = None) -> None:
        super().__init__(registry)
        self.cipher = cipher

    def encode(self, event: model.Event) -> bytes:
        return super().encode(self.cipher.seal(event))

    def decode(self, data: bytes) -> model.Event:
        return self.cipher.open(super().decode(data))

    def decode_full(self, data: bytes) -> Decoded:
        """The event opened; the raw Avro dict as stored (sealed), for audit."""
        decoded = super().decode_full(data)
        return replace(decoded, event=self.cipher.open(decoded.event))


def codec_with_keys(keys_path: Path | None, registry: SchemaRegistry | None = None) -> Codec:
    """A `CipherCodec` over the key store at `keys_path`, or the plain codec without one."""
    if keys_path is None:
        return Codec(registry)
    return CipherCodec(PersonalCipher(KeyStore(keys_path)), registry)
