"""Deterministic ids: the fast text is exactly `str(uuid.uuid5(...))`, which old logs carry."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from kaizen.processors.learning.curation import EXPERIENCE_NAMESPACE
from kaizen.processors.learning.episodes import SIGNAL_NAMESPACE, signal_id
from kaizen.processors.learning.patterns import PATTERN_NAMESPACE
from kaizen.schemas.ids import uuid5_text
from kaizen.schemas.scope import scope_key

NAMESPACES = [SIGNAL_NAMESPACE, PATTERN_NAMESPACE, EXPERIENCE_NAMESPACE, uuid.NAMESPACE_URL]
# text uuid5 can encode (UTF-8, strict): every code point but the lone surrogates
NAMES = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)


@given(st.sampled_from(NAMESPACES), NAMES)
def test_the_text_is_uuid5s(namespace: uuid.UUID, name: str) -> None:
    assert uuid5_text(namespace)(name) == str(uuid.uuid5(namespace, name))


@given(st.uuids(), NAMES)
def test_any_namespace(namespace: uuid.UUID, name: str) -> None:
    assert uuid5_text(namespace)(name) == str(uuid.uuid5(namespace, name))


@given(st.text(max_size=20), st.text(max_size=20), st.text(max_size=20),
       st.sampled_from(["failure", "recovery", "rating", "outcome", "correction"]),
       st.one_of(st.integers(0, 10**12), st.text(max_size=10)))
def test_signal_ids_are_the_ones_old_logs_carry(tenant: str, agent: str, episode: str,
                                                 kind: str, key: object) -> None:
    try:
        expected = str(uuid.uuid5(SIGNAL_NAMESPACE,
                                  f"{scope_key(tenant, agent, episode)}/{kind}/{key}"))
    except UnicodeEncodeError:
        return
    assert signal_id(tenant, agent, episode, kind, key) == expected


def test_a_name_uuid5_cannot_encode_raises_as_uuid5_does() -> None:
    for make in (lambda: uuid.uuid5(SIGNAL_NAMESPACE, "\ud800"),
                 lambda: uuid5_text(SIGNAL_NAMESPACE)("\ud800")):
        try:
            make()
        except UnicodeEncodeError:
            continue
        raise AssertionError("encoded a lone surrogate")
