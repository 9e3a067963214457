"""Microsoft Presidio as an extra `TextAnalyzer` for the Redactor, for those who run it.

Presidio is optional (`pip install 'kaizen-fleet[presidio]'`) and never imported here: the caller
builds an `AnalyzerEngine` (with their NLP model, or `NoOpNlpEngine` and pattern recognizers only,
which needs no model download) and hands it in. Its entity types become placeholders in lower case
(`IT_FISCAL_CODE` -> `<it_fiscal_code>`).

    from presidio_analyzer import AnalyzerEngine
    redactor = Redactor.default(analyzers=[PresidioAnalyzer(AnalyzerEngine())])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from kaizen.streams.redaction import Span


class AnalyzerEngineLike(Protocol):
    """The one method of `presidio_analyzer.AnalyzerEngine` the adapter calls."""

    def analyze(self, text: str, language: str, **kwargs: Any) -> list[Any]: ...


class PresidioAnalyzer:
    """Finds spans with a Presidio engine; results below `min_score` are ignored."""

    def __init__(
        self,
        engine: AnalyzerEngineLike,
        *,
        language: str = "en",
        entities: Sequence[str] | None = None,
        min_score: float = 0.5,
    ) -> None:
        self.engine = engine
        self.language = language
        self.entities = list(entities) if entities else None
        self.min_score = min_score

    def find(self, text: str) -> Sequence[Span]:
        results = self.engine.analyze(text=text, language=self.language, entities=self.entities)
        return [Span(r.start, r.end, str(r.entity_type).lower())
                for r in results if r.score >= self.min_score]
