"""The Presidio adapter on a real AnalyzerEngine with pattern recognizers only (no NLP model:
Presidio's NoOpNlpEngine, so nothing is downloaded)."""

from __future__ import annotations

from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
from presidio_analyzer.nlp_engine import NoOpNlpEngine
from presidio_analyzer.predefined_recognizers import ItFiscalCodeRecognizer

from kaizen.streams.presidio_adapter import PresidioAnalyzer
from kaizen.streams.redaction import Redactor


def _engine() -> AnalyzerEngine:
    registry = RecognizerRegistry()
    registry.add_recognizer(ItFiscalCodeRecognizer(supported_language="en"))
    registry.add_recognizer(PatternRecognizer(
        "EMPLOYEE_ID", patterns=[Pattern("badge", r"\bEMP-\d{6}\b", 0.9)]))
    registry.add_recognizer(PatternRecognizer(
        "WEAK_GUESS", patterns=[Pattern("weak", r"\bguess\b", 0.1)]))
    return AnalyzerEngine(registry=registry,
                          nlp_engine=NoOpNlpEngine(models=[{"lang_code": "en",
                                                            "model_name": "none"}]))


def test_presidio_entities_become_placeholders_after_the_builtin_regexes() -> None:
    redactor = Redactor.default(analyzers=[PresidioAnalyzer(_engine())])
    out, counts = redactor.redact(
        "codice RSSMRA85T10A562S, badge EMP-123456, mail m.rossi@example.it, a guess")
    assert out == "codice <it_fiscal_code>, badge <employee_id>, mail <email>, a guess"
    assert counts == {"it_fiscal_code": 1, "employee_id": 1, "email": 1}


def test_entities_can_be_narrowed() -> None:
    analyzer = PresidioAnalyzer(_engine(), entities=["EMPLOYEE_ID"])
    assert [s.kind for s in analyzer.find("RSSMRA85T10A562S EMP-123456")] == ["employee_id"]
