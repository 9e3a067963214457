"""Episode ids are the agents' own: two tenants (or agents) may use the same one. The assembly
table keys an episode by tenant, agent and id, so both are assembled and learned separately
(issue 15: no two scopes share state)."""

from __future__ import annotations

import json

from kaizen.processors.folding import Record
from kaizen.schemas import model
from kaizen.schemas.codec import Codec
from tests.factories import episode_event
from tests.unit.processors.test_folding import _run

CODEC = Codec()


def _interleaved(scopes: list[tuple[str, str]]) -> list[Record]:
    """Per scope, episodes ep-0 and ep-1 failing on a renamed argument and recovering; the scopes'
    events interleaved, as one partition of the episodes topic would hold them."""
    records: list[Record] = []
    for i in range(2):
        eid, t = f"ep-{i}", 1_700_000_000_000 + i * 1_000
        payloads: list[model.EpisodePayload] = [
            model.EpisodeStarted(f"look up order {i}"),
            model.ToolCall("a", "orders.get", json.dumps({"order": i})),
            model.ToolResult("a", "orders.get", False, "unknown field 'order'"),
            model.ToolCall("b", "orders.get", json.dumps({"order_id": i})),
            model.ToolResult("b", "orders.get", True),
            model.EpisodeEnded("success"),
        ]
        for seq, payload in enumerate(payloads):
            for tenant, agent in scopes:
                event = episode_event(payload, episode_id=eid, seq=seq, tenant=tenant,
                                      agent=agent, user=f"{tenant}-user{i}",
                                      occurred_at=t + seq)
                records.append(Record("kaizen.episodes", 0, len(records), eid.encode(),
                                      CODEC.encode(event), t + seq))
    return records


def _signals_and_lessons(records: list[Record]) -> tuple[list[model.Signal],
                                                         list[model.Experience]]:
    out = _run(records)
    signals = [CODEC.decode(v) for v in out.get("kaizen.signals", [])]
    lessons = [CODEC.decode(v) for v in out.get("kaizen.experiences", [])]
    assert all(isinstance(s, model.Signal) for s in signals)
    assert all(isinstance(x, model.Experience) for x in lessons)
    return signals, lessons  # type: ignore[return-value]


def test_two_tenants_with_the_same_episode_ids_are_assembled_and_learned_separately() -> None:
    scopes = [("acme", "support-bot"), ("globex", "support-bot"), ("acme", "billing-bot")]
    signals, lessons = _signals_and_lessons(_interleaved(scopes))
    for tenant, agent in scopes:
        mine = [s for s in signals if (s.tenant, s.agent) == (tenant, agent)]
        assert {(s.episode_id, s.kind) for s in mine} >= {
            ("ep-0", "recovery"), ("ep-1", "recovery"), ("ep-0", "outcome"), ("ep-1", "outcome")}
        assert all(s.user and s.user.startswith(tenant) for s in mine)
        learned = [x for x in lessons if (x.tenant, x.agent) == (tenant, agent)
                   and x.kind == "recovery"]
        assert learned and max(x.support_episodes for x in learned) == 2
        assert {e.user for x in learned for e in x.evidence} <= {f"{tenant}-user0",
                                                                 f"{tenant}-user1"}
    # signal ids are unique across scopes: the service's effect and monitor folds skip an
    # outcome whose id they have seen, and would drop the second tenant's
    assert len({s.event_id for s in signals}) == len(signals)
