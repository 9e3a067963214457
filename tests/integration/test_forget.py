"""Done means (issue 15): after `POST /forget`, replaying every topic and querying every store
finds none of the user's strings, other users' lessons keep working, and a rebuild after the
forget holds none of them either. Real broker, `kaizen serve`, per-user encryption on."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from kaizen.processors.config import CURATION_TOPIC, TOOL_RESULTS_TOPIC
from kaizen.schemas import model
from kaizen.schemas.records import to_json
from kaizen.service.rebuild import rebuild
from kaizen.settings import load_settings
from kaizen.sinks.qdrant_library import ExperienceLibrary
from kaizen.streams.personal import codec_with_keys
from kaizen.streams.replay import Bounds, TopicReader
from kaizen.streams.topics import Topics
from tests.integration.kafka_helpers import make_recorder, make_topics
from tests.integration.store_dump import every_topic_text, stores_text, topics_text
from tests.integration.test_service import _free_port, _get, _post
from tests.integration.waiting import wait_for, wait_for_pipeline
from tests.integration.workers import start_worker, stop_worker, worker_env

ALICE, BOB = "zebra-alice-7731", "okapi-bob-5520"  # strings only these users' episodes carry


def _record(recorder: Any) -> None:
    for i, user in enumerate(["alice", "bob", "carol", "bob", "carol", "alice"]):
        mark = {"alice": ALICE, "bob": BOB}.get(user, "carol")
        task = f"find invoice {i} for {mark}"
        with recorder.episode(task, user=user, episode_id=f"ep-{i}") as ep:
            ep.tool_call("invoices.find", {"number": i})
            # error texts are sealed too, but their normalized signature stays readable (it is
            # what patterns count across users): keep personal strings out of this one
            ep.tool_result("invoices.find", ok=False, error="unknown field 'number'")
            ep.tool_call("invoices.find", {"invoice_no": i})
            ep.tool_result("invoices.find", ok=True, output=f"invoice of {mark}")
            if user == "alice":  # a lesson only alice supports, and her own preference
                ep.tool_call("crm.find", {"mail": ALICE})
                ep.tool_result("crm.find", ok=False, error="unknown field 'mail'")
                ep.tool_call("crm.find", {"email": ALICE})
                ep.tool_result("crm.find", ok=True)
                ep.feedback(rating=-1.0, correction=f"always greet me as {ALICE}")
            ep.end(success=True)
    # and a dead letter of hers: an episode dated two days ahead is out of time for the topic
    ahead = time.time_ns() // 1_000_000 + 2 * 86_400_000
    with recorder.episode(f"late note for {ALICE}", user="alice", episode_id="ep-ahead",
                          occurred_at=ahead) as ep:
        ep.end(success=True, occurred_at=ahead + 1)


def _letters_text(bootstrap: str, topics: Topics, keys: Path) -> str:
    """The records inside the dead letters, decoded with the keys."""
    codec, out = codec_with_keys(keys), []
    for record in TopicReader(bootstrap, topics.deadletter, Bounds()).records():
        letter = record.event
        if isinstance(letter, model.DeadLetter) and letter.value:
            try:
                out.append(json.dumps(to_json(codec.decode(letter.value)), default=str))
            except ValueError:  # not an event at all: its bytes are in the raw dump
                out.append(letter.value.decode(errors="replace"))
    return "\n".join(out)


def _decoded_topics(bootstrap: str, topics: Topics, keys: Path) -> str:
    codec = codec_with_keys(keys)
    return "\n".join(
        json.dumps(to_json(r.event), default=str)
        for topic in (topics.episodes, topics.signals, topics.experiences, topics.privacy)
        for r in TopicReader(bootstrap, topic, Bounds(), codec=codec).records())


def test_forget_a_user_everywhere_and_others_keep_their_lessons(
    kafka_broker: Any, unique_topic_prefix: str, tmp_path: Path
) -> None:
    bootstrap, home = kafka_broker.bootstrap, tmp_path / "home"
    keys = home / "keys" / "personal.sqlite"
    topics = make_topics(bootstrap, unique_topic_prefix)
    recorder = make_recorder(bootstrap, topics, tmp_path, codec=codec_with_keys(keys))
    _record(recorder)
    assert recorder.flush(60) == 0
    recorder.close()

    port = _free_port()
    env = worker_env(bootstrap, unique_topic_prefix, home, KAIZEN_HTTP_PORT=str(port),
                     KAIZEN_ENCRYPT_PERSONAL="true")
    service = start_worker(env, tmp_path / "serve.log", command="serve")
    try:
        def tools() -> list[str]:
            found = (_get(port, "/experiences") or {"experiences": []})["experiences"]
            return sorted({x["tool"] or "" for x in found})

        wait_for("both lessons", lambda: {"crm.find", "invoices.find"} <= set(tools()),
                 timeout=480)
        wait_for_pipeline(bootstrap, unique_topic_prefix)  # all learned from her is written
        assert ALICE in _decoded_topics(bootstrap, topics, keys)  # readable before the forget
        # her dead-lettered episode too (a record may be read before the processors reach it)
        wait_for("her dead letter", lambda: ALICE in _letters_text(bootstrap, topics, keys))
        receipt = _post(port, "/forget", {"tenant": "acme", "user": "alice"})
        assert receipt["key_deleted"] and receipt["lessons_withdrawn"]
        assert receipt["rows_deleted"]["episodes_v1"] >= 2  # her two episodes (rows per insert)
        left = (_get(port, "/experiences") or {})["experiences"]
        assert "crm.find" not in {x["tool"] for x in left}
        assert all(e["user"] != "alice" for x in left for e in x["evidence"])
        lessons = _post(port, "/recall", {"task": "find invoice 9 for bob", "agent": "support-bot",
                                          "tenant": "acme", "user": "bob",
                                          "tools": ["invoices.find"], "k": 3})["lessons"]
        assert any(x["tool"] == "invoices.find" for x in lessons)  # bob's lesson still works
    finally:
        stop_worker(service)

    raw, decoded = topics_text(bootstrap, topics), _decoded_topics(bootstrap, topics, keys)
    live = stores_text(home)
    assert BOB in decoded and BOB in live  # the dumps do see personal text of kept users
    for where, text in (("raw topics", raw), ("decoded topics", decoded), ("stores", live)):
        assert ALICE not in text, where
    # every topic the broker lists for the deployment, internal ones and changelogs included
    everything = every_topic_text(bootstrap, unique_topic_prefix, codec_with_keys(keys))
    internal = {f"{unique_topic_prefix}.{TOOL_RESULTS_TOPIC}",
                f"{unique_topic_prefix}.{CURATION_TOPIC}",
                topics.deadletter, topics.privacy,
                *(f"{unique_topic_prefix}-processors-{table}-changelog"
                  for table in ("episodes-v1", "patterns-v1", "curation-v1"))}
    assert internal <= set(everything), sorted(everything)
    assert BOB in everything[f"{unique_topic_prefix}.{CURATION_TOPIC}"]  # decoded: kept users
    leaks = sorted(topic for topic, text in everything.items() if ALICE in text)
    assert not leaks, f"{ALICE} still readable in {leaks}"
    assert ALICE not in _letters_text(bootstrap, topics, keys)

    settings = load_settings(kafka_bootstrap=bootstrap, topic_prefix=unique_topic_prefix,
                             home=home, encrypt_personal=True)
    end = TopicReader(bootstrap, topics.snapshots, Bounds()).total
    rebuild(settings, end, tmp_path / "rebuilt")
    assert ALICE not in stores_text(tmp_path / "rebuilt")
    with ExperienceLibrary.open(path=tmp_path / "rebuilt" / "qdrant") as rebuilt:
        again = {e.experience.experience_id for e in rebuilt.scroll()}
    assert not again & set(receipt["lessons_withdrawn"])
