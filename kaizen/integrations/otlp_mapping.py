"""Pure mapping of OpenTelemetry spans to Kaizen episodes: no HTTP, no Kafka, no clock.

Two conventions are understood, the OTel GenAI semantic conventions and OpenInference (Arize
Phoenix instrumentations):

    span role   GenAI (`gen_ai.operation.name` or name prefix)   OpenInference (span kind)
    agent       invoke_agent, create_agent                       AGENT (and a root CHAIN)
    tool        execute_tool                                     TOOL
    llm         chat, text_completion, generate_content          LLM

A trace is one episode, named by its conversation (`gen_ai.conversation.id` / `session.id`) when
it has one (on any of its spans; a second trace of the same conversation gets a suffix). Its agent
is `gen_ai.agent.name` (or `agent.name`), else the resource `service.name`; its tenant the resource
attribute `kaizen.tenant`, else the `X-Kaizen-Tenant` header, else `default`. A tool span becomes a
tool call at its start and a tool result at its end: failed when the span status is ERROR or it
carries `error.type`, with the error type and status message (or exception event) as error text.

`classify` says what a span is or why it is rejected; `plan_episode` turns the spans of one episode,
in any arrival order, into an `EpisodePlan` that `otlp_ingest` replays through a Recorder episode.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from kaizen.errors import KaizenError

Role = Literal["agent", "tool", "llm", "other"]
STATUS_ERROR = 2
TEXT_LIMIT = 8000  # attribute texts are cut before they become event fields
AGENT_OPS = {"invoke_agent", "create_agent"}
TOOL_OPS = {"execute_tool"}
LLM_OPS = {"chat", "text_completion", "generate_content"}
OTHER_OPS = {"embeddings", "retrieval"}
OI_ROLES: dict[str, Role] = {"AGENT": "agent", "TOOL": "tool", "LLM": "llm", "CHAIN": "other",
                             "RETRIEVER": "other", "EMBEDDING": "other", "RERANKER": "other",
                             "GUARDRAIL": "other", "EVALUATOR": "other", "PROMPT": "other"}


@dataclass(frozen=True)
class Span:
    """One decoded span with its resource attributes; ids are lowercase hex ('' when absent)."""

    trace_id: str
    span_id: str
    parent_id: str
    name: str
    start_ns: int
    end_ns: int
    attributes: Mapping[str, Any]
    resource: Mapping[str, Any]
    status_code: int = 0
    status_message: str = ""
    exception: str = ""  # message of the first `exception` span event, if any


class Rejected(KaizenError, ValueError):
    """A span that cannot become part of an episode; the message is the dead letter's reason."""


@dataclass(frozen=True)
class Step:
    """One event to record: kind is tool_call, tool_result or llm_call."""

    kind: Literal["tool_call", "tool_result", "llm_call"]
    at_ms: int
    tool: str = ""
    call_id: str = ""
    arguments: Mapping[str, Any] = field(default_factory=dict)
    ok: bool = True
    error: str | None = None
    output: str | None = None
    latency_ms: float = 0.0
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class EpisodePlan:
    """Everything needed to record one episode, in event order."""

    episode_id: str
    tenant: str
    agent: str
    user: str | None
    task: str
    started_at_ms: int
    ended_at_ms: int
    outcome: Literal["success", "failure", "abandoned"]
    steps: tuple[Step, ...]
    span_count: int


def classify(span: Span) -> Role:
    """The span's role; raises `Rejected` for a malformed or unknown span."""
    if len(span.trace_id) != 32 or span.trace_id == "0" * 32:
        raise Rejected("span without a valid trace id")
    if len(span.span_id) != 16 or span.span_id == "0" * 16:
        raise Rejected("span without a valid span id")
    if span.end_ns and span.end_ns < span.start_ns:
        raise Rejected("span ends before it starts")
    role = _role(span)
    if role is None:
        raise Rejected(f"not a GenAI or OpenInference span: {span.name[:100]!r}")
    if role == "tool" and not tool_name(span):
        raise Rejected("tool span without gen_ai.tool.name or tool.name")
    return role


def _role(span: Span) -> Role | None:
    attrs = span.attributes
    op = str(attrs.get("gen_ai.operation.name") or span.name.split(" ", 1)[0])
    if op in AGENT_OPS:
        return "agent"
    if op in TOOL_OPS:
        return "tool"
    if op in LLM_OPS:
        return "llm"
    if op in OTHER_OPS:
        return "other"
    kind = str(attrs.get("openinference.span.kind", "")).upper()
    if kind == "CHAIN" and not span.parent_id:
        return "agent"  # a root chain is the agent run (LangChain, LlamaIndex instrumentations)
    if kind in OI_ROLES:
        return OI_ROLES[kind]
    return None


def conversation_id(spans: Sequence[Span]) -> str:
    """The conversation a trace belongs to ('' if none): it names the trace's episode."""
    for span in spans:
        conversation = span.attributes.get("gen_ai.conversation.id") or span.attributes.get(
            "session.id")
        if conversation:
            return _text(conversation, 200)
    return ""


def is_root_agent(span: Span, role: Role) -> bool:
    """The span whose arrival closes its episode: an agent span at the top of its trace."""
    return role == "agent" and not span.parent_id


def tool_name(span: Span) -> str:
    attrs = span.attributes
    return _text(attrs.get("gen_ai.tool.name") or attrs.get("tool.name"), 200)


def plan_episode(episode_id: str, spans: Sequence[Span], header_tenant: str | None,
                 closed: bool) -> EpisodePlan:
    """The episode of `spans` (already classified, any order). `closed`: its root agent span
    arrived; otherwise it went idle and, without an agent span saying how it ended, is abandoned.
    """
    ordered = sorted(spans, key=lambda s: (s.start_ns, s.end_ns, s.span_id))
    roles = [(s, _role(s) or "other") for s in ordered]
    agents = [s for s, r in roles if r == "agent"]
    root = next((s for s in agents if not s.parent_id), agents[0] if agents else None)
    first = ordered[0]
    steps: list[Step] = []
    for span, role in roles:
        if role == "tool":
            steps.extend(_tool_steps(span))
        elif role == "llm":
            steps.append(_llm_step(span))
    steps.sort(key=lambda step: step.at_ms)  # stable: a call stays before its result
    start_ms = (root or first).start_ns // 1_000_000
    end_ms = max([s.end_ns for s in ordered] + [s.start_ns for s in ordered]) // 1_000_000
    return EpisodePlan(
        episode_id=episode_id, tenant=_tenant(first, header_tenant), agent=_agent(agents, ordered),
        user=_user(ordered), task=_task(root, first), started_at_ms=start_ms,
        ended_at_ms=max(end_ms, start_ms), outcome=_outcome(root, closed), steps=tuple(steps),
        span_count=len(ordered),
    )


def _tool_steps(span: Span) -> list[Step]:
    attrs, name = span.attributes, tool_name(span)
    call_id = _text(attrs.get("gen_ai.tool.call.id") or attrs.get("tool_call.id"), 200)
    call_id = call_id or span.span_id
    raw = attrs.get("gen_ai.tool.call.arguments") or attrs.get("tool.parameters") or attrs.get(
        "input.value")
    failed = span.status_code == STATUS_ERROR or bool(attrs.get("error.type"))
    output = attrs.get("gen_ai.tool.call.result") or attrs.get("output.value")
    end_ns = max(span.end_ns, span.start_ns)
    return [
        Step("tool_call", span.start_ns // 1_000_000, tool=name, call_id=call_id,
             arguments=_arguments(raw)),
        Step("tool_result", end_ns // 1_000_000, tool=name, call_id=call_id, ok=not failed,
             error=_error_text(span) if failed else None,
             output=_text(output, TEXT_LIMIT) if output is not None else None,
             latency_ms=(end_ns - span.start_ns) / 1e6),
    ]


def _llm_step(span: Span) -> Step:
    attrs = span.attributes
    model = (attrs.get("gen_ai.response.model") or attrs.get("gen_ai.request.model")
             or attrs.get("llm.model_name") or "")
    end_ns = max(span.end_ns, span.start_ns)
    return Step("llm_call", end_ns // 1_000_000, model=_text(model, 200),
                input_tokens=_int(attrs.get("gen_ai.usage.input_tokens",
                                            attrs.get("llm.token_count.prompt"))),
                output_tokens=_int(attrs.get("gen_ai.usage.output_tokens",
                                             attrs.get("llm.token_count.completion"))),
                latency_ms=(end_ns - span.start_ns) / 1e6)


def _error_text(span: Span) -> str:
    kind = _text(span.attributes.get("error.type"), 200)
    message = _text(span.status_message or span.exception, TEXT_LIMIT)
    if kind and message:
        return f"{kind}: {message}"
    return kind or message or "tool span ended with status ERROR"


def _arguments(raw: Any) -> dict[str, Any]:
    """Tool arguments as an object: JSON objects as they are, anything else under `input`."""
    if raw is None:
        return {}
    if isinstance(raw, str):
        try:
            value = json.loads(raw[:TEXT_LIMIT * 4])
        except ValueError:
            return {"input": raw[:TEXT_LIMIT]}
        return value if isinstance(value, dict) else {"input": value}
    return {"input": raw}


def _tenant(span: Span, header_tenant: str | None) -> str:
    value = span.resource.get("kaizen.tenant") or span.attributes.get("kaizen.tenant")
    return _text(value or header_tenant or "default", 100)


def _agent(agents: Sequence[Span], spans: Sequence[Span]) -> str:
    for span in [*agents, *spans]:
        name = span.attributes.get("gen_ai.agent.name") or span.attributes.get("agent.name")
        if name:
            return _text(name, 100)
    return _text(spans[0].resource.get("service.name") or "unknown_agent", 100)


def _user(spans: Sequence[Span]) -> str | None:
    for span in spans:
        user = span.attributes.get("user.id") or span.attributes.get("enduser.id")
        if user:
            return _text(user, 200)
    return None


def _task(root: Span | None, first: Span) -> str:
    span = root or first
    text = span.attributes.get("input.value") or span.attributes.get("gen_ai.prompt")
    return _text(text, TEXT_LIMIT) if text else _text(span.name, 500)


def _outcome(root: Span | None, closed: bool) -> Literal["success", "failure", "abandoned"]:
    if root is None or not (closed or root.end_ns):
        return "abandoned"
    failed = root.status_code == STATUS_ERROR or bool(root.attributes.get("error.type"))
    return "failure" if failed else "success"


def _text(value: Any, limit: int) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:limit]


def _int(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0
