"""Experiences into the Qdrant library (the record) and the in-process recall index (hot path)."""

from __future__ import annotations

from collections.abc import Sequence

from kaizen.readmodel.index import RecallIndex
from kaizen.schemas import model
from kaizen.sinks.base import Sink
from kaizen.sinks.qdrant_library import ExperienceLibrary


class LibrarySink(Sink[model.Event]):
    """Writes experience versions to Qdrant, then makes them recallable; ignores other events."""

    def __init__(self, library: ExperienceLibrary, index: RecallIndex, *, max_batch: int = 500,
                 max_age_s: float = 0.1) -> None:
        super().__init__(max_batch=max_batch, max_age_s=max_age_s)
        self.library, self.index = library, index

    def setup(self) -> None:
        """Load every stored experience into the recall index."""
        self.index.load(self.library.scroll())

    def write(self, batch: Sequence[model.Event]) -> None:
        experiences = [e for e in batch if isinstance(e, model.Experience)]
        if not experiences:
            return
        # the library embeds once; the index takes the same vectors
        self.index.load(self.library.upsert(experiences))
