"""Extractors: turn the signals behind one lesson into its kind and guidance text.

Curation decides WHICH lesson a signal supports (and so the experience id, support and lineage);
an extractor only decides HOW the lesson reads. Two implementations:

- `DeterministicExtractor`: templates from `guidance.py`; the default, and the fallback.
- `RecordedLLMExtractor`: asks a language model to word the lesson, through a plain
  `complete(prompt) -> str` transport. The answer is validated (JSON object, the expected kind, a
  guidance that names the tool, bounded length); any bad answer falls back to the deterministic
  lesson, so a confused model never blocks learning or changes what is learned. Unit tests drive it
  with RECORDED responses from files; a live transport is the caller's choice. Transport errors
  (network, quota) propagate: the processor must not silently learn without its configured writer.

Signals passed to `lesson` are ordered by the caller, first = representative (curation passes the
earliest evidence first), so the same evidence always yields the same prompt.

This module must stay pure: no Kafka, faust or store imports, no network of its own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from kaizen.processors.learning import guidance
from kaizen.processors.learning.evidence import is_instance_rule, is_instance_value
from kaizen.schemas.model import ArgumentChange, Signal, ToolCallPatch

#: Lesson kind for each signal kind that can teach something.
LESSON_KIND = {"recovery": "recovery", "failure": "pitfall", "correction": "preference"}
MAX_GUIDANCE_CHARS = 600
MAX_PROMPT_EXAMPLES = 3


@dataclass(frozen=True, slots=True)
class Lesson:
    """What an extractor learned; curation adds scope, support and lineage to make an Experience."""

    kind: str
    guidance: str
    patch: ToolCallPatch | None = None
    tool: str | None = None
    signature: str | None = None
    task_type: str = ""
    example_task: str = ""
    user: str | None = None
    extractor: str = "deterministic"


class Extractor(Protocol):
    """Words a lesson from its signals (first = representative); None if there is nothing to say."""

    name: str

    def lesson(self, signals: Sequence[Signal]) -> Lesson | None: ...


def is_instance_change(change: ArgumentChange) -> bool:
    """A change that sets instance data (see `evidence.py`): never carried as a constant."""
    return change.op in ("replace", "add") and (
        is_instance_rule(change.rule) or is_instance_value(change.value_json)
    )


def effective_patch(patch: ToolCallPatch | None) -> ToolCallPatch | None:
    """The patch, or None when it changes nothing (the same call simply worked again)."""
    if patch is None or (not patch.changes and not patch.use_tool):
        return None
    return patch


class DeterministicExtractor:
    """Template guidance from `guidance.py`: same signals, same words, no model."""

    name = "deterministic"

    def lesson(self, signals: Sequence[Signal]) -> Lesson | None:
        if not signals:
            return None
        rep = signals[0]
        kind = LESSON_KIND.get(rep.kind)
        if kind is None:
            return None
        base = Lesson(
            kind=kind,
            guidance="",
            tool=rep.tool,
            signature=rep.signature,
            task_type=rep.task_type,
            example_task=rep.task,
        )
        if kind == "preference":
            if not rep.correction or not rep.correction.strip():
                return None
            text = guidance.preference_guidance(rep.correction, rep.user)
            return replace(base, guidance=text, tool=None, user=rep.user)
        tool = rep.tool or _tool_of(rep.signature)
        if kind == "pitfall":
            text = guidance.pitfall_guidance(tool, rep.signature, rep.arguments_json)
            return replace(base, guidance=text, tool=tool)
        patch = effective_patch(rep.patch)
        if patch is None:
            return replace(base, guidance=guidance.retry_guidance(tool, rep.signature), tool=tool)
        instance = [c for c in patch.changes if is_instance_change(c)]
        if instance and not patch.use_tool:
            constant = effective_patch(replace(patch, changes=[
                c for c in patch.changes if not is_instance_change(c)]))
            text = guidance.instance_guidance(tool, rep.signature, instance)
            return replace(base, guidance=text, patch=constant, tool=tool)
        text = guidance.recovery_guidance(patch, rep.signature)
        return replace(base, guidance=text, patch=patch, tool=tool)


def _tool_of(signature: str | None) -> str:
    return (signature or "").split(": ", 1)[0] or "the tool"


class RecordedLLMExtractor:
    """LLM-worded lessons over an injected transport, validated, with a deterministic fallback.

    `complete(prompt)` returns the model's answer: either the assistant message content (a JSON
    object `{"kind": ..., "guidance": ...}`, optionally in a ```json fence) or a whole
    OpenAI-compatible chat.completion response whose first choice holds that content.
    """

    def __init__(
        self,
        complete: Callable[[str], str],
        *,
        model: str,
        fallback: Extractor | None = None,
    ) -> None:
        self._complete = complete
        self._fallback: Extractor = fallback or DeterministicExtractor()
        self.model = model
        self.name = f"llm:{model}"

    def lesson(self, signals: Sequence[Signal]) -> Lesson | None:
        base = self._fallback.lesson(signals)
        if base is None:
            return None
        answer = parse_answer(self._complete(build_prompt(signals, base)))
        text = validate_answer(answer, base)
        if text is None:
            return base
        return replace(base, guidance=text, extractor=self.name)


def build_prompt(signals: Sequence[Signal], draft: Lesson) -> str:
    """The instruction and the facts of the lesson; facts only from signals, never raw errors."""
    tool_rule = f" It must mention the tool name {draft.tool}." if draft.tool else ""
    return "\n".join(
        [
            "You write one lesson that an AI agent will read in its prompt before similar tasks.",
            "It was learned from the agent's past episodes. Be concrete and short (one or two",
            "sentences), say what to do and why, and do not invent arguments or values."
            + tool_rule,
            'Answer with a JSON object only: {"kind": "<kind>", "guidance": "<text>"}, where kind',
            f'is "{draft.kind}".',
            "",
            "Facts:",
            *_facts(signals[:MAX_PROMPT_EXAMPLES], draft),
            "",
            f"Draft to improve: {draft.guidance}",
        ]
    )


def _facts(examples: Sequence[Signal], draft: Lesson) -> list[str]:
    facts = [f"- lesson kind: {draft.kind}"]
    if draft.tool:
        facts.append(f"- tool: {draft.tool}")
    if draft.signature:
        facts.append(f"- error signature (normalized): {draft.signature}")
    if draft.patch is not None:
        facts.append(f"- change that made the call work: {_patch_json(draft.patch)}")
    names = sorted({n for s in examples for n in _argument_names(s.arguments_json)})
    if names:
        facts.append(f"- argument names of the failed calls: {', '.join(names)}")
    if draft.user:
        facts.append(f"- stated by user: {draft.user}")
    facts += [f"- example task: {guidance.normalize_text(s.task)}" for s in examples if s.task]
    corrections = [s.correction for s in examples if s.correction]
    return facts + [f"- user correction: {guidance.normalize_text(c)}" for c in corrections]


def parse_answer(raw: str) -> dict[str, Any] | None:
    """The `{"kind", "guidance"}` object of an answer, unwrapping a chat.completion; else None."""
    obj = _loads(raw)
    if isinstance(obj, dict) and isinstance(obj.get("choices"), list):
        try:
            content = obj["choices"][0]["message"]["content"]
        except (IndexError, KeyError, TypeError):
            return None
        obj = _loads(content) if isinstance(content, str) else None
    return obj if isinstance(obj, dict) else None


def validate_answer(answer: dict[str, Any] | None, draft: Lesson) -> str | None:
    """The answer's guidance if it is usable for `draft`'s lesson, else None (use the draft)."""
    if answer is None or answer.get("kind") != draft.kind:
        return None
    text = answer.get("guidance")
    if not isinstance(text, str):
        return None
    text = guidance.normalize_text(text)
    if not text or len(text) > MAX_GUIDANCE_CHARS:
        return None
    if draft.tool and draft.tool.casefold() not in text.casefold():
        return None
    return text


_FENCE = re.compile(r"^```(?:json)?\s*(?P<body>.*?)\s*```$", re.DOTALL)


def _loads(text: str) -> Any:
    text = text.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced["body"]
    try:
        return json.loads(text)
    except ValueError:
        return None


def _patch_json(patch: ToolCallPatch) -> str:
    body: dict[str, Any] = {"tool": patch.tool, "changes": [_change_dict(c) for c in patch.changes]}
    if patch.use_tool:
        body["use_tool"] = patch.use_tool
    return json.dumps(body, sort_keys=True)


def _change_dict(change: ArgumentChange) -> dict[str, str]:
    fields = {
        "op": change.op,
        "argument": change.argument,
        "new_argument": change.new_argument,
        "value": change.value_json,
        "rule": change.rule,
    }
    return {k: v for k, v in fields.items() if v is not None}


def _argument_names(arguments_json: str | None) -> list[str]:
    try:
        arguments = json.loads(arguments_json or "{}")
    except ValueError:
        return []
    return list(arguments) if isinstance(arguments, dict) else []
