"""The experience library of record: every lesson's latest version in one Qdrant collection.

One point per experience. Its id is ``uuid5(POINT_NAMESPACE, experience_id)``,
so writing a lesson again replaces it rather than adding a point, and a replayed
topic leaves the collection as it was. Versions only move forward: each write is
conditional (Qdrant's ``update_filter``) on the stored version being no newer,
so a stale version arriving late cannot overwrite a newer one, even with two
writers racing on a server.

The vector is the embedding of :func:`kaizen.readmodel.index.recall_text` (example
task, guidance, error signature), the text recall matches task texts against.
The payload holds the whole lesson, with the scope fields (tenant, agent, user,
tool, kind, status) as top-level keys for filters, the patch as JSON text, the
:func:`kaizen.readmodel.index.content_hash` and the embedder's ``model_id``.

The same code runs on local (embedded, ``path=``) mode and on a server
(``url=``). Recall does not search here: local-mode filtered search is far too
slow for inference time, so the service loads each scope into a
:class:`kaizen.readmodel.index.RecallIndex` with :meth:`ExperienceLibrary.scroll`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from kaizen.errors import KaizenError
from kaizen.readmodel.embedding import Embedder, default_embedder
from kaizen.readmodel.index import IndexEntry, content_hash, recall_text
from kaizen.schemas.model import ArgumentChange, Evidence, Experience, ToolCallPatch, Trigger

__all__ = [
    "DEFAULT_COLLECTION",
    "POINT_NAMESPACE",
    "ExperienceLibrary",
    "LibraryError",
    "LibraryLockedError",
    "point_id",
]

DEFAULT_COLLECTION = "experiences_v1"
#: Namespace of point ids. Changing it orphans every stored point: never do.
POINT_NAMESPACE = uuid.UUID("5b0f1c8e-2f4a-5d7e-9c3b-6a1d2e4f7a90")
_SCROLL_PAGE = 512


class LibraryError(KaizenError, RuntimeError):
    """The library cannot be opened or does not match the embedder."""


class LibraryLockedError(LibraryError):
    """Another process holds the local data directory (embedded Qdrant allows one)."""


def point_id(experience_id: str) -> str:
    """The Qdrant point id of an experience: stable, so upserts replace."""
    return str(uuid.uuid5(POINT_NAMESPACE, experience_id))


class ExperienceLibrary:
    """Experience versions in Qdrant; see the module docstring.

    Args:
        client: a connected client (local or server).
        embedder: makes the vectors; its dimension fixes the collection's.
        collection: collection name, created on first use if missing.
    """

    def __init__(
        self, client: QdrantClient, embedder: Embedder, collection: str = DEFAULT_COLLECTION
    ) -> None:
        self._client = client
        self._embedder = embedder
        self.collection = collection
        self._ensure_collection()

    @classmethod
    def open(
        cls,
        path: str | Path | None = None,
        url: str | None = None,
        api_key: str | None = None,
        embedder: Embedder | None = None,
        collection: str = DEFAULT_COLLECTION,
    ) -> ExperienceLibrary:
        """Open local mode at ``path`` or a server at ``url`` (exactly one of them)."""
        if (path is None) == (url is None):
            raise ValueError("give exactly one of path= (embedded Qdrant) or url= (a server)")
        if path is not None:
            client = _open_local(Path(path))
        else:
            client = QdrantClient(url=url, api_key=api_key)
        try:
            return cls(client, embedder or default_embedder(), collection)
        except BaseException:
            client.close()
            raise

    @property
    def embedder(self) -> Embedder:
        """The embedder the library's vectors come from (recall must embed queries with it)."""
        return self._embedder

    def close(self) -> None:
        """Release the client (and the local directory's lock)."""
        self._client.close()

    def __enter__(self) -> ExperienceLibrary:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _ensure_collection(self) -> None:
        size = self._embedder.dimension
        if not self._client.collection_exists(self.collection):
            self._client.create_collection(
                self.collection,
                vectors_config=models.VectorParams(size=size, distance=models.Distance.COSINE),
            )
            return
        vectors = self._client.get_collection(self.collection).config.params.vectors
        existing = vectors.size if isinstance(vectors, models.VectorParams) else None
        if existing != size:
            raise LibraryError(
                f"collection {self.collection!r} holds vectors of size {existing}, but the "
                f"embedder {self._embedder.model_id} makes {size}: use another collection"
            )

    # -- writes ------------------------------------------------------------------

    def upsert(self, experiences: Sequence[Experience]) -> list[IndexEntry]:
        """Write the lessons, embedded in one batch; never replaces a newer stored version.

        Returns the newest version of each lesson with its vector, so the recall index can take
        them without embedding again."""
        latest: dict[str, Experience] = {}
        for experience in experiences:
            held = latest.get(experience.experience_id)
            if held is None or held.version <= experience.version:
                latest[experience.experience_id] = experience
        if not latest:
            return []
        batch = list(latest.values())
        vectors = self._embedder.embed([recall_text(e) for e in batch])
        by_version: dict[int, list[models.PointStruct]] = {}
        for experience, vector in zip(batch, vectors, strict=True):
            point = models.PointStruct(
                id=point_id(experience.experience_id),
                vector=vector.tolist(),
                payload=self._payload(experience),
            )
            by_version.setdefault(experience.version, []).append(point)
        for version, points in sorted(by_version.items()):
            # Only points whose stored version is <= this one are updated; absent ones insert.
            newer_wins = models.Filter(
                must=[models.FieldCondition(key="version", range=models.Range(lte=version))]
            )
            self._client.upsert(self.collection, points=points, update_filter=newer_wins)
        return [IndexEntry(e, v) for e, v in zip(batch, vectors, strict=True)]

    def delete(self, experience_ids: Iterable[str]) -> None:
        """Remove lessons (every version: one point per lesson), e.g. a forgotten user's."""
        ids: list[models.ExtendedPointId] = [point_id(x) for x in experience_ids]
        if ids:
            self._client.delete(self.collection, points_selector=models.PointIdsList(points=ids))

    def replace(self, experience: Experience) -> None:
        """Overwrite a lesson's point whatever its stored version (a forgotten user's evidence
        removed from it)."""
        vector = self._embedder.embed([recall_text(experience)])[0]
        self._client.upsert(self.collection, points=[models.PointStruct(
            id=point_id(experience.experience_id), vector=vector.tolist(),
            payload=self._payload(experience))])

    def _payload(self, experience: Experience) -> dict[str, Any]:
        return _to_payload(experience) | {"model_id": self._embedder.model_id}

    # -- reads -------------------------------------------------------------------

    def get(self, ids: Iterable[str]) -> list[Experience]:
        """The stored lessons among ``ids`` (unknown ids are left out), in the order asked."""
        wanted = list(dict.fromkeys(ids))
        records = self._client.retrieve(self.collection, [point_id(i) for i in wanted])
        found = {e.experience_id: e for e in (_from_payload(r.payload or {}) for r in records)}
        return [found[i] for i in wanted if i in found]

    def scroll(self, *, tenant: str | None = None, agent: str | None = None) -> list[IndexEntry]:
        """Every lesson of a scope (all if no filter), with vectors, to load a RecallIndex.

        A vector made by another model than this library's embedder is returned as
        None, so the index re-embeds that lesson instead of comparing across spaces.
        """
        scope = _scope_filter(tenant, agent)
        entries: list[IndexEntry] = []
        offset: models.ExtendedPointId | None = None
        while True:
            records, offset = self._client.scroll(
                self.collection, scroll_filter=scope, limit=_SCROLL_PAGE,
                offset=offset, with_payload=True, with_vectors=True,
            )
            entries.extend(self._entry(r) for r in records)
            if offset is None:
                return entries

    def _entry(self, record: models.Record) -> IndexEntry:
        payload = record.payload or {}
        vector = record.vector
        same_space = payload.get("model_id") == self._embedder.model_id
        if not same_space or not isinstance(vector, list):
            return IndexEntry(_from_payload(payload))
        return IndexEntry(_from_payload(payload), np.asarray(vector, dtype=np.float32))

    def count(self, *, tenant: str | None = None, agent: str | None = None) -> int:
        """Number of lessons stored (in a scope if given)."""
        scope = _scope_filter(tenant, agent)
        return self._client.count(self.collection, count_filter=scope, exact=True).count


def _scope_filter(tenant: str | None, agent: str | None) -> models.Filter | None:
    conditions: list[models.Condition] = [
        models.FieldCondition(key=key, match=models.MatchValue(value=value))
        for key, value in (("tenant", tenant), ("agent", agent))
        if value is not None
    ]
    return models.Filter(must=conditions) if conditions else None


def _open_local(path: Path) -> QdrantClient:
    """Open embedded Qdrant, turning its lock failure into a message that says what to do."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        return QdrantClient(path=str(path))
    except RuntimeError as error:
        if "already accessed" not in str(error):
            raise
        raise LibraryLockedError(
            f"the Qdrant data directory {path} is in use by another process (embedded Qdrant "
            "allows one). Stop that process, or query it through its HTTP API (kaizen serve), "
            "or run a Qdrant server and pass url= instead of path="
        ) from error


# -- payload <-> Experience ---------------------------------------------------------


def _to_payload(experience: Experience) -> dict[str, Any]:
    patch = None if experience.patch is None else json.dumps(asdict(experience.patch))
    return {
        "experience_id": experience.experience_id,
        "event_id": experience.event_id,
        "occurred_at": experience.occurred_at,
        "tenant": experience.tenant,
        "agent": experience.agent,
        "user": experience.user,
        "tool": experience.tool,
        "kind": experience.kind,
        "status": experience.status,
        "version": experience.version,
        "guidance": experience.guidance,
        "patch": patch,
        "trigger": asdict(experience.trigger),
        "support": {
            "episodes": experience.support_episodes,
            "users": experience.support_users,
        },
        "helpful": experience.helpful,
        "harmful": experience.harmful,
        "evidence": [asdict(e) for e in experience.evidence],
        "extractor": experience.extractor,
        "content_hash": content_hash(experience),
    }


def _from_payload(payload: dict[str, Any]) -> Experience:
    return Experience(
        event_id=payload["event_id"],
        occurred_at=payload["occurred_at"],
        tenant=payload["tenant"],
        agent=payload["agent"],
        experience_id=payload["experience_id"],
        version=payload["version"],
        kind=payload["kind"],
        trigger=Trigger(**payload["trigger"]),
        guidance=payload["guidance"],
        evidence=[Evidence(**e) for e in payload["evidence"]],
        support_episodes=payload["support"]["episodes"],
        support_users=payload["support"]["users"],
        user=payload["user"],
        tool=payload["tool"],
        patch=_patch(payload["patch"]),
        helpful=payload["helpful"],
        harmful=payload["harmful"],
        status=payload["status"],
        extractor=payload["extractor"],
    )


def _patch(text: str | None) -> ToolCallPatch | None:
    if text is None:
        return None
    data = json.loads(text)
    changes = [ArgumentChange(**c) for c in data["changes"]]
    return ToolCallPatch(tool=data["tool"], changes=changes, use_tool=data["use_tool"])
