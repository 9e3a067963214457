"""Typed Python views of the Avro records in `schemas/avro/`.

Field names equal the Avro field names, so a record converts both ways with `records.py` and a
unit test keeps the two in step. Learning logic works on these objects, never on raw dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Outcome = Literal["success", "failure", "abandoned"]


# --- kaizen.episodes ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EpisodeStarted:
    task: str
    task_type: str = ""
    agent_version: str = ""
    task_id: str = ""


@dataclass(frozen=True, slots=True)
class LlmCall:
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: float = 0.0
    content: str | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    call_id: str
    tool_name: str
    arguments_json: str = "{}"


@dataclass(frozen=True, slots=True)
class ToolResult:
    call_id: str
    tool_name: str
    ok: bool
    error: str | None = None
    output: str | None = None
    latency_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class Feedback:
    rating: float | None = None
    correction: str | None = None
    source: str = "user"


@dataclass(frozen=True, slots=True)
class Recall:
    experience_ids: list[str]
    query: str = ""


@dataclass(frozen=True, slots=True)
class EpisodeEnded:
    outcome: str
    reward: float | None = None


EpisodePayload = (
    EpisodeStarted | LlmCall | ToolCall | ToolResult | Feedback | Recall | EpisodeEnded
)


@dataclass(frozen=True, slots=True)
class EpisodeEvent:
    event_id: str
    occurred_at: int
    tenant: str
    agent: str
    episode_id: str
    seq: int
    payload: EpisodePayload
    user: str | None = None
    snapshot_id: str | None = None


# --- learning objects -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArgumentChange:
    op: str
    argument: str
    new_argument: str | None = None
    value_json: str | None = None
    rule: str | None = None


@dataclass(frozen=True, slots=True)
class ToolCallPatch:
    tool: str
    changes: list[ArgumentChange]
    use_tool: str | None = None


@dataclass(frozen=True, slots=True)
class Signal:
    event_id: str
    occurred_at: int
    tenant: str
    agent: str
    episode_id: str
    kind: str
    user: str | None = None
    snapshot_id: str | None = None
    task: str = ""
    task_type: str = ""
    task_id: str = ""
    tool: str | None = None
    signature: str | None = None
    error: str | None = None
    arguments_json: str | None = None
    patch: ToolCallPatch | None = None
    outcome: str | None = None
    rating: float | None = None
    correction: str | None = None
    recalled_ids: list[str] = field(default_factory=list)
    source_partition: int = -1
    source_offset: int = -1


@dataclass(frozen=True, slots=True)
class Pattern:
    event_id: str
    occurred_at: int
    tenant: str
    agent: str
    tool: str
    signature: str
    window_start: int
    window_seconds: int
    failures: int
    sessions: int
    users: int
    tenants: int
    tool_calls: int
    rate: float
    baseline_rate: float
    first_seen: int
    last_seen: int
    status: str = "steady"


@dataclass(frozen=True, slots=True)
class Trigger:
    signature: str | None = None
    task_type: str = ""
    example_task: str = ""


@dataclass(frozen=True, slots=True)
class Evidence:
    episode_id: str
    partition: int
    offset: int
    user: str | None = None


@dataclass(frozen=True, slots=True)
class Experience:
    event_id: str
    occurred_at: int
    tenant: str
    agent: str
    experience_id: str
    version: int
    kind: str
    trigger: Trigger
    guidance: str
    evidence: list[Evidence]
    support_episodes: int
    support_users: int
    user: str | None = None
    tool: str | None = None
    patch: ToolCallPatch | None = None
    helpful: int = 0
    harmful: int = 0
    status: str = "candidate"
    extractor: str = "deterministic"


@dataclass(frozen=True, slots=True)
class Member:
    experience_id: str
    content_hash: str


@dataclass(frozen=True, slots=True)
class SnapshotEvent:
    event_id: str
    occurred_at: int
    tenant: str
    agent: str
    snapshot_id: str
    action: str
    parent_id: str | None = None
    members: list[Member] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    evaluator: str | None = None
    verdict: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    edge_cases: list[str] = field(default_factory=list)
    actor: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    event_id: str
    occurred_at: int
    component: str
    source_topic: str
    source_partition: int
    source_offset: int
    reason: str
    error_type: str
    tenant: str = ""
    agent: str = ""
    key: bytes | None = None
    value: bytes | None = None


@dataclass(frozen=True, slots=True)
class ForgetReceipt:
    event_id: str
    occurred_at: int
    tenant: str
    user: str
    agent: str = ""
    actor: str = ""
    key_deleted: bool = False
    rows_deleted: dict[str, int] = field(default_factory=dict)
    lessons_withdrawn: list[str] = field(default_factory=list)
    lessons_trimmed: list[str] = field(default_factory=list)


Event = EpisodeEvent | Signal | Pattern | Experience | SnapshotEvent | DeadLetter | ForgetReceipt
