"""Settings: validated once with messages that name the variable; documented in the README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kaizen.settings import Settings, SettingsError, load_settings

README = Path(__file__).resolve().parents[3] / "README.md"


def test_a_bad_value_names_the_variable_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAIZEN_MIN_SUPPORT", "0")
    monkeypatch.setenv("KAIZEN_LOG_FORMAT", "xml")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert "KAIZEN_MIN_SUPPORT" in str(raised.value)
    assert "KAIZEN_LOG_FORMAT" in str(raised.value)


def test_the_controller_port_follows_the_broker_port_unless_set() -> None:
    assert load_settings(kafka_port=41000).controller_port == 41001
    assert load_settings(kafka_port=41000, kafka_controller_port=42000).controller_port == 42000
    assert load_settings().controller_port == 19093


def test_secrets_are_not_shown() -> None:
    settings = load_settings(qdrant_api_key="s3cret-key")
    assert "s3cret-key" not in repr(settings) and "s3cret-key" not in str(settings.model_dump())


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.min_support = 5  # type: ignore[misc]


def test_the_readme_lists_every_kaizen_variable() -> None:
    documented = set(re.findall(r"`(KAIZEN_[A-Z0-9_]+)`", README.read_text()))
    declared = {f"KAIZEN_{name.upper()}" for name in Settings.model_fields}
    assert declared - documented == set()


def test_replication_follows_the_local_cluster_of_the_home_unless_set(tmp_path: Path) -> None:
    assert load_settings(home=tmp_path).topic_replication == 1
    for node in ("kafka", "kafka-2", "kafka-3"):  # what `kaizen up --brokers 3` leaves
        (tmp_path / node).mkdir()
    cluster = load_settings(home=tmp_path)  # a later command, without KAIZEN_KAFKA_BROKERS
    assert cluster.topic_replication == 3 and cluster.bootstrap.count(",") == 2
    assert load_settings(home=tmp_path, kafka_bootstrap="k:9092").topic_replication == 1
    assert load_settings(kafka_bootstrap="k:9092", kafka_replication=3).topic_replication == 3
