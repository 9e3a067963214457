"""Curation: fold signals into experiences (lessons) with support and lineage.

The processor keys its table by `curation_key(signal)`: one `CurationState` per tenant / agent /
error signature (recoveries and failures) or per tenant / agent / user (corrections). Inside a
key, signals are grouped into lessons, each identified by `experience_id`, a hash of the lesson's
content, so the same lesson learned in many episodes is ONE experience whose support grows:

- recovery: same tool + signature + patch SHAPE (ops, argument names, rules, use_tool; the
  concrete values of `add`/`replace` are ignored, they vary per task). A recovery without an
  effective patch (the same call worked again) is a retry lesson.
- pitfall: failures of the signature. Emitted only once `min_support` distinct episodes show it
  (single failures are too common to publish). A pitfall whose signature has a recovery lesson
  under the same key is SUPERSEDED: it is emitted (again) with status "candidate", never
  "proposed", so the snapshot builder, which takes proposed lessons, drops it. It keeps collecting
  evidence, so the final result does not depend on whether failures or recoveries arrived first.
- preference: a user's correction, scoped to that user (`Experience.user`, never recalled for
  other users). The same correction (whitespace/case/final punctuation aside) is one lesson.

Every change of a lesson's content (new evidence, supersession) emits its next version. A signal
of an episode already in the lesson's evidence (a re-delivery, or a second failure of the same
episode) changes nothing and emits nothing. Everything that depends on "the first" evidence uses
the EARLIEST in event time (ties by episode id), not the first to arrive, so the final experience
does not depend on arrival order across episodes (except which evidence its version carries).

Evidence per version. A version does NOT carry all of its lesson's evidence (that would make
curation quadratic in support). Its `evidence` holds: first the entry whose signal caused the
version (none for a version caused by supersession); then, in ascending (occurred_at,
episode_id) order, every entry no earlier version carried (a pitfall's episodes from before
`min_support`) and the most recent other entries, up to EVIDENCE_PER_VERSION entries in all. So
every source episode appears in the version its signal produced (or the first one after it), and
the FULL LINEAGE of a lesson is the union of `evidence` over all its versions on the log; it does
not depend on arrival order. `support_episodes` and `support_users` are exact totals. Folding a
signal is O(1) in the lesson's support; the state is O(support), stored compactly.

This module must stay pure: no Kafka, faust or store imports; no clock, no randomness.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from kaizen.processors.learning.extractors import (
    LESSON_KIND,
    DeterministicExtractor,
    Extractor,
    Lesson,
    effective_patch,
)
from kaizen.processors.learning.guidance import normalize_text
from kaizen.schemas.model import (
    ArgumentChange,
    Evidence,
    Experience,
    Signal,
    ToolCallPatch,
    Trigger,
)
from kaizen.schemas.scope import scope_key

#: Namespace of experience event ids (uuid5), fixed forever: replays must give the same ids.
EXPERIENCE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "kaizen:experiences:v1")
#: Earliest signals kept per lesson for the extractor (the first one is the representative).
SAMPLE_SIZE = 3
#: Most evidence entries one experience version carries (see "Evidence per version").
EVIDENCE_PER_VERSION = 32
#: Layout of `CurationState.to_dict`; `from_dict` still reads version 1 (full evidence lists).
STATE_VERSION = 2

DEFAULT_EXTRACTOR: Extractor = DeterministicExtractor()


def curation_key(signal: Signal) -> str | None:
    """Table key of a signal: tenant/agent/signature, tenant/agent/user:<user>, or None."""
    if signal.kind in ("recovery", "failure") and signal.signature:
        return f"{scope_key(signal.tenant, signal.agent)}/{signal.signature}"
    if signal.kind == "correction" and signal.user and (signal.correction or "").strip():
        return f"{scope_key(signal.tenant, signal.agent)}/user:{signal.user}"
    return None  # ratings, outcomes; corrections nobody can be credited with


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def patch_shape(patch: ToolCallPatch) -> dict[str, Any]:
    """What a patch does, without the concrete values it sets: near-duplicates share a shape."""
    changes = [
        {"op": c.op, "argument": c.argument, "new_argument": c.new_argument, "rule": c.rule}
        for c in patch.changes
    ]
    return {
        "tool": patch.tool,
        "use_tool": patch.use_tool,
        "changes": sorted(changes, key=canonical_json),
    }


def _preference_key(correction: str) -> str:
    return normalize_text(correction).casefold().rstrip(".!")


@dataclass(frozen=True, slots=True)
class LessonIdentity:
    """Scope and content that identify a lesson; `experience_id` hashes all of it."""

    experience_id: str
    tenant: str
    agent: str
    kind: str
    tool: str | None
    signature: str | None
    user: str | None


def lesson_identity(signal: Signal) -> LessonIdentity:
    """The lesson a (curatable) signal supports.

    The hash covers tenant, agent, user, kind, tool, trigger signature and the patch shape; for
    lessons without a patch it covers a normalized key instead of the guidance wording: the
    correction text for a preference, "retry" for a retry, nothing for a pitfall (its signature
    is the content). So rewording the guidance (another extractor) never forks a lesson.
    """
    kind = LESSON_KIND[signal.kind]
    user = signal.user if kind == "preference" else None
    tool = None if kind == "preference" else signal.tool
    signature = None if kind == "preference" else signal.signature
    patch = effective_patch(signal.patch) if kind == "recovery" else None
    if kind == "preference":
        key = _preference_key(signal.correction or "")
    else:
        key = "retry" if kind == "recovery" and patch is None else ""
    content = {
        "tenant": signal.tenant,
        "agent": signal.agent,
        "user": user,
        "kind": kind,
        "tool": tool,
        "signature": signature,
        "patch_shape": patch_shape(patch) if patch else None,
        "guidance_key": key,
    }
    digest = hashlib.sha256(canonical_json(content).encode()).hexdigest()[:32]
    return LessonIdentity(digest, signal.tenant, signal.agent, kind, tool, signature, user)


#: Evidence row of one source episode: [user, partition, offset, occurred_at]. A plain list, so
#: the state serializes without a per-episode object (a lesson's evidence grows with support).
EvidenceRow = list[Any]
_USER, _PARTITION, _OFFSET, _AT = range(4)


@dataclass
class LessonGroup:
    """One lesson under a key: all its evidence, the most recent part, what was last emitted.

    `evidence` (episode id -> row) and `users` (distinct user -> episodes) keep the exact totals;
    `recent` (at most EVIDENCE_PER_VERSION episode ids, ascending by (occurred_at, episode id))
    and `unpublished` (episodes no emitted version carried yet) make choosing a version's
    evidence O(1): nothing per signal sorts or walks the whole evidence.
    """

    identity: LessonIdentity
    evidence: dict[str, EvidenceRow] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)
    recent: list[str] = field(default_factory=list)
    unpublished: list[str] = field(default_factory=list)
    samples: list[Signal] = field(default_factory=list)
    version: int = 0
    emitted_hash: str | None = None
    lesson: Lesson | None = None
    lesson_from: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "identity": dataclasses.asdict(self.identity),
            "evidence": dict(self.evidence),  # rows are never mutated: sharing them is safe
            "users": dict(self.users),
            "recent": list(self.recent),
            "unpublished": list(self.unpublished),
            "samples": [dataclasses.asdict(s) for s in self.samples],
            "version": self.version,
            "emitted_hash": self.emitted_hash,
            "lesson": dataclasses.asdict(self.lesson) if self.lesson else None,
            "lesson_from": list(self.lesson_from),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LessonGroup:
        lesson = d["lesson"]
        return cls(
            identity=LessonIdentity(**d["identity"]),
            evidence=dict(d["evidence"]),
            users=dict(d["users"]),
            recent=list(d["recent"]),
            unpublished=list(d["unpublished"]),
            samples=[_signal_from_dict(s) for s in d["samples"]],
            version=d["version"],
            emitted_hash=d["emitted_hash"],
            lesson=Lesson(**{**lesson, "patch": _patch_from_dict(lesson["patch"])})
            if lesson
            else None,
            lesson_from=list(d["lesson_from"]),
        )


@dataclass
class CurationState:
    """All lessons under one curation key."""

    key: str | None = None
    groups: dict[str, LessonGroup] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        groups = {k: g.to_dict() for k, g in self.groups.items()}
        return {"version": STATE_VERSION, "key": self.key, "groups": groups}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CurationState:
        """Inverse of `to_dict`; a version-1 state (full evidence per group) is converted."""
        version = d.get("version")
        if version not in (1, STATE_VERSION):
            raise ValueError(f"curation state version {version!r} != {STATE_VERSION}")
        upgrade = _group_from_v1 if version == 1 else LessonGroup.from_dict
        return cls(key=d["key"], groups={k: upgrade(g) for k, g in d["groups"].items()})


def _group_from_v1(d: dict[str, Any]) -> LessonGroup:
    """A version-1 group: evidence was a list of entries; derive the compact fields once."""
    rows = {
        e["episode_id"]: [e["user"], e["partition"], e["offset"], e["occurred_at"]]
        for e in d["evidence"]
    }
    users: dict[str, int] = {}
    for row in rows.values():
        if row[_USER] is not None:
            users[row[_USER]] = users.get(row[_USER], 0) + 1
    recent = sorted(rows, key=lambda ep: (rows[ep][_AT], ep))[-EVIDENCE_PER_VERSION:]
    v2 = {**d, "evidence": rows, "users": users, "recent": recent, "unpublished": []}
    return LessonGroup.from_dict(v2)


def _patch_from_dict(d: dict[str, Any] | None) -> ToolCallPatch | None:
    if d is None:
        return None
    changes = [ArgumentChange(**c) for c in d["changes"]]
    return ToolCallPatch(tool=d["tool"], changes=changes, use_tool=d["use_tool"])


def _signal_from_dict(d: dict[str, Any]) -> Signal:
    return Signal(**{**d, "patch": _patch_from_dict(d["patch"]), "recalled_ids": d["recalled_ids"]})


def apply_signal(
    state: CurationState | None,
    signal: Signal,
    *,
    min_support: int = 2,
    extractor: Extractor = DEFAULT_EXTRACTOR,
) -> tuple[CurationState, list[Experience]]:
    """Fold one signal into the lessons of its key; emit every experience whose content changed.

    Signals without a curation key (ratings, outcomes) leave the state as it is. The state is
    updated in place and returned: callers keep only the returned reference.
    """
    key = curation_key(signal)
    if key is None:
        return state or CurationState(), []
    if state is None or state.key is None:
        state = CurationState(key=key, groups=state.groups if state else {})
    elif state.key != key:
        raise ValueError(f"signal of key {key!r} folded into the state of {state.key!r}")
    identity = lesson_identity(signal)
    # The pitfalls' status flips only when the key gets its first recovery lesson; later
    # recoveries leave them alone (checked before the new group exists, and only for new groups).
    supersedes = (
        identity.kind == "recovery"
        and identity.experience_id not in state.groups
        and not _has_recovery(state)
    )
    group = state.groups.setdefault(identity.experience_id, LessonGroup(identity))
    if signal.episode_id in group.evidence:
        return state, []  # re-delivery, or this episode already supports the lesson
    _add_evidence(group, signal)
    touched = [group]
    if supersedes:
        touched += [g for g in state.groups.values() if g.identity.kind == "pitfall"]
    outputs = [_next_version(state, g, min_support, extractor) for g in touched]
    return state, [e for e in outputs if e is not None]


def _has_recovery(state: CurationState) -> bool:
    return any(g.identity.kind == "recovery" for g in state.groups.values())


def _sample_order(signal: Signal) -> tuple[int, str, str]:
    return (signal.occurred_at, signal.episode_id, signal.event_id)


def _add_evidence(group: LessonGroup, signal: Signal) -> None:
    """Record the episode; keep `recent` the EVIDENCE_PER_VERSION newest (O(1): bounded list)."""
    episode, rows = signal.episode_id, group.evidence
    rows[episode] = [signal.user, signal.source_partition, signal.source_offset, signal.occurred_at]
    if signal.user is not None:
        group.users[signal.user] = group.users.get(signal.user, 0) + 1
    bisect.insort(group.recent, episode, key=lambda ep: (rows[ep][_AT], ep))
    del group.recent[:-EVIDENCE_PER_VERSION]
    group.unpublished.append(episode)
    group.samples = sorted([*group.samples, signal], key=_sample_order)[:SAMPLE_SIZE]


def _values_vary(group: LessonGroup) -> bool:
    """True when the samples replaced an argument with DIFFERENT values: the fix was task-specific
    (another search query per question), not a constant a patch can carry to other tasks, so the
    lesson stays a candidate. A constant replacement (`version: "v2"` every time) is a lesson."""
    seen: dict[str, set[str | None]] = {}
    for signal in group.samples:
        for change in signal.patch.changes if signal.patch else []:
            if change.op == "replace":
                seen.setdefault(change.argument, set()).add(change.value_json)
    return any(len(values) > 1 for values in seen.values())


def _next_version(
    state: CurationState, group: LessonGroup, min_support: int, extractor: Extractor
) -> Experience | None:
    """The group's next experience version if its content changed since the last emission.

    Only the small content is hashed (never the evidence): new evidence always changes
    `support_episodes`, so it always makes a new version without hashing the evidence.
    """
    support = len(group.evidence)
    if group.identity.kind == "pitfall" and group.version == 0 and support < min_support:
        return None  # a pitfall is published only once enough episodes show it
    lesson = _lesson(group, extractor)
    if lesson is None:
        return None
    proposed = (
        support >= min_support
        and not (group.identity.kind == "pitfall" and _has_recovery(state))
        and not _values_vary(group)
    )
    draft = _experience(group, lesson, status="proposed" if proposed else "candidate")
    content = {
        "kind": draft.kind,
        "status": draft.status,
        "guidance": draft.guidance,
        "trigger": dataclasses.asdict(draft.trigger),
        "patch": dataclasses.asdict(draft.patch) if draft.patch else None,
        "support": [draft.support_episodes, draft.support_users],
        "tool": draft.tool,
        "user": draft.user,
        "extractor": draft.extractor,
    }
    digest = hashlib.sha256(canonical_json(content).encode()).hexdigest()
    if digest == group.emitted_hash:
        return None
    group.version += 1
    group.emitted_hash = digest
    event_id = uuid.uuid5(EXPERIENCE_NAMESPACE, f"{group.identity.experience_id}/{group.version}")
    evidence = _version_evidence(group)
    group.unpublished = []
    return dataclasses.replace(
        draft, event_id=str(event_id), version=group.version, evidence=evidence
    )


def _version_evidence(group: LessonGroup) -> list[Evidence]:
    """The evidence a version carries (see the module docstring): cause, unpublished, recent.

    Bounded by EVIDENCE_PER_VERSION unless more episodes than that are still unpublished (a
    pitfall below a min_support that large, or an extractor that declined): lineage wins then.
    """
    rows = group.evidence
    cause = group.unpublished[-1:]  # the newest arrival: the signal that caused this version
    others = dict.fromkeys(ep for ep in group.unpublished[:-1])
    for ep in reversed(group.recent):
        if len(cause) + len(others) >= EVIDENCE_PER_VERSION:
            break
        if ep not in cause:
            others[ep] = None
    chosen = cause + sorted(others, key=lambda ep: (rows[ep][_AT], ep))
    return [Evidence(ep, rows[ep][_PARTITION], rows[ep][_OFFSET], rows[ep][_USER]) for ep in chosen]


def _lesson(group: LessonGroup, extractor: Extractor) -> Lesson | None:
    """The extractor's lesson, asked again only when the sample signals (or extractor) change."""
    source = [extractor.name, *(s.event_id for s in group.samples)]
    if source != group.lesson_from:
        lesson = extractor.lesson(group.samples)
        if lesson is not None and lesson.kind != group.identity.kind:
            raise ValueError(
                f"extractor {extractor.name} wrote a {lesson.kind!r} lesson for a "
                f"{group.identity.kind!r} lesson group"
            )
        group.lesson, group.lesson_from = lesson, source
    return group.lesson


def _experience(group: LessonGroup, lesson: Lesson, *, status: str) -> Experience:
    """The version's content; its evidence is chosen by `_version_evidence` once it is due."""
    ident = group.identity
    return Experience(
        event_id="",
        occurred_at=group.evidence[group.recent[-1]][_AT],  # the newest evidence
        tenant=ident.tenant,
        agent=ident.agent,
        experience_id=ident.experience_id,
        version=0,
        kind=lesson.kind,
        trigger=Trigger(ident.signature, lesson.task_type, lesson.example_task),
        guidance=lesson.guidance,
        evidence=[],
        support_episodes=len(group.evidence),
        support_users=len(group.users),
        user=ident.user,
        tool=ident.tool,
        patch=lesson.patch,
        status=status,
        extractor=lesson.extractor,
    )
