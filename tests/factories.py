"""Factories for model events, shared by unit and integration tests."""

from __future__ import annotations

import itertools
import uuid

from kaizen.schemas import model

_clock = itertools.count(1_700_000_000_000, 1000)


def episode_event(
    payload: model.EpisodePayload,
    *,
    episode_id: str = "ep-1",
    seq: int = 0,
    tenant: str = "acme",
    agent: str = "support-bot",
    user: str | None = "u1",
    occurred_at: int | None = None,
    snapshot_id: str | None = None,
) -> model.EpisodeEvent:
    return model.EpisodeEvent(
        event_id=str(uuid.uuid4()),
        occurred_at=occurred_at if occurred_at is not None else next(_clock),
        tenant=tenant,
        agent=agent,
        episode_id=episode_id,
        seq=seq,
        payload=payload,
        user=user,
        snapshot_id=snapshot_id,
    )


def one_of_each_payload() -> list[model.EpisodePayload]:
    return [
        model.EpisodeStarted("find the order status", "orders", "v1"),
        model.LlmCall("gpt-x", 120, 30, 412.5, None),
        model.ToolCall("c1", "search", '{"q": "\\"Kafka\\""}'),
        model.ToolResult("c1", "search", False, "Could not find [\"Kafka\"].", None, 12.0),
        model.Feedback(-0.5, "use the order id, not the email", "user"),
        model.Recall(["x1", "x2"], "find the order status"),
        model.EpisodeEnded("success", 1.0),
    ]


def patch() -> model.ToolCallPatch:
    return model.ToolCallPatch(
        tool="search", changes=[model.ArgumentChange("reformat", "q", rule="strip_quotes")]
    )


def one_of_each_learning_event() -> list[model.Event]:
    return [
        model.Signal(str(uuid.uuid4()), 1, "acme", "bot", "ep-1", "recovery", user="u1",
                     tool="search", signature="search: Could not find [<str>].", patch=patch(),
                     recalled_ids=["x1"], source_partition=0, source_offset=7),
        model.Pattern(str(uuid.uuid4()), 2, "*", "bot", "search", "search: x", 0, 60, 5, 4, 3, 1,
                      20, 0.25, 0.0, 1, 2, "new"),
        model.Experience(str(uuid.uuid4()), 3, "acme", "bot", "xid", 2, "recovery",
                         model.Trigger("search: x", "qa", "who wrote X?"), "Do not quote.",
                         [model.Evidence("ep-1", 0, 7, "u1")], 1, 1, tool="search", patch=patch(),
                         helpful=2, harmful=1, status="proposed"),
        model.SnapshotEvent(str(uuid.uuid4()), 4, "acme", "bot", "snap-1", "evaluated",
                            parent_id="snap-0", members=[model.Member("xid", "h1")], added=["xid"],
                            evaluator="counterfactual", verdict="pass",
                            scores={"coverage": 1.0}, edge_cases=["ep-1"], actor="policy"),
        model.DeadLetter(str(uuid.uuid4()), 5, "extractor", "kaizen.episodes", 0, 42,
                         "not a Kaizen record", "DecodeError", key=b"k", value=b"\x00garbage"),
    ]
