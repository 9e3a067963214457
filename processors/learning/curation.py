"""Curation: fold signals into experiences (lessons) with support and lineage.

The processor keys its table by `curation_key(signal)`: one `CurationState` per tenant / agent /
error signature (recoveries and failures) or per tenant / agent / user (corrections). Inside a
key, signals are grouped into lessons, each identified by `experience_id`, a hash of the lesson's
content, so the same lesson learned in many episodes is ONE experience whose support grows:

- recovery: same tool + signature + patch SHAPE (ops, argument names, rules, use_tool; the
  concrete values of `add`/`replace` are ignored, they vary per task). A recovery without an
  effective patch (the same call worked again) is a retry lesson.
- pitfall: failures of the signature. Emitted only once `min_support` distinct episodes show it
  (single failures are too common to publish). A pitfall is SUPERSEDED only by a recovery lesson
  under the same key that is itself proposed (never by one that cannot be): it is emitted (again)
  with status "candidate", never "proposed", so the snapshot builder, which takes proposed
  lessons, drops it. If that recovery stops being proposed, the pitfall is proposed again. It
  keeps collecting evidence, so the result does not depend on whether failures or recoveries
  arrived first.
- preference: a user's correction, scoped to that user (`Experience.user`, never recalled for
  other users). The same correction (whitespace/case/final punctuation aside) is one lesson.

When a lesson is PROPOSED (the rules, each property-tested in tests/unit/processors):
- support: at least `min_support` distinct episodes AND `min_tasks` distinct tasks (task ids;
  an episode without one counts as its own task): a lesson seen only in repeats of one task is
  about that task, not general;
- outcomes: at least one supporting episode that did not end in failure (or abandoned). Failed
  episodes add support, but cannot make a lesson on their own (the agent's "fix" may have been
  part of what went wrong). Signals carry their episode's outcome (extraction holds them until
  the episode ends); a signal without one (older logs) counts as not failed;
- constants only: a recovery that replaced an argument with different constant-looking values
  in its samples stays a candidate; instance data (ids, numbers, values from the task or an
  earlier result, see `evidence.py`) is no constant patch: the extractor drops it from the patch
  and the guidance says where to get the value;
- a "use another tool" recovery only exists when extraction saw the substitute serve the same
  purpose (`evidence.same_purpose`).

Bounded state (issue 13): a lesson's counts are `Distinct` (exact to 64 ids, then a 256-register
HyperLogLog), so its state is O(1) in its support; only the rows a version may carry are kept.
Beyond the exact cap a re-delivered episode is counted again, which the sketches absorb (adding
an id twice changes no register), so its support does not change and no version is emitted.

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

from kaizen.processors.learning.distinct import Distinct
from kaizen.processors.learning.extractors import (
    LESSON_KIND,
    DeterministicExtractor,
    Extractor,
    Lesson,
    effective_patch,
    is_instance_change,
)
from kaizen.processors.learning.guidance import normalize_text
from kaizen.schemas.ids import uuid5_text
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
_experience_uuid = uuid5_text(EXPERIENCE_NAMESPACE)
#: Earliest signals kept per lesson for the extractor (the first one is the representative).
SAMPLE_SIZE = 3
#: Most evidence entries one experience version carries (see "Evidence per version").
EVIDENCE_PER_VERSION = 32
#: Most episodes kept waiting for a version to carry them (a pitfall below min_support, or an
#: extractor that declines); beyond it the oldest are dropped from lineage (counts keep them).
UNPUBLISHED_LIMIT = 256
#: Layout of `CurationState.to_dict`; `from_dict` still reads versions 1 and 2.
STATE_VERSION = 3

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


#: Evidence row of one source episode: [user, partition, offset, occurred_at]. Kept only for the
#: episodes a version may still carry (`recent` and `unpublished`): bounded, not per support.
EvidenceRow = list[Any]
_USER, _PARTITION, _OFFSET, _AT = range(4)
#: Outcomes of an episode that count against its evidence (see "Outcomes" in the module doc).
FAILED_OUTCOMES = frozenset({"failure", "abandoned"})


@dataclass
class LessonGroup:
    """One lesson under a key: bounded counts of its evidence, the rows a version may carry.

    `episodes`, `tasks`, `users` and `successes` are `Distinct` counts (exact below their cap,
    then a sketch): O(1) state whatever the support. `rows` holds the evidence rows of the
    episodes in `recent` (at most EVIDENCE_PER_VERSION, ascending by (occurred_at, episode id))
    and `unpublished` (episodes no emitted version carried yet, at most UNPUBLISHED_LIMIT).
    `status` is the last emitted status ("proposed" decides supersession).
    """

    identity: LessonIdentity
    episodes: Distinct = field(default_factory=Distinct)
    tasks: Distinct = field(default_factory=Distinct)
    users: Distinct = field(default_factory=Distinct)
    successes: Distinct = field(default_factory=Distinct)
    rows: dict[str, EvidenceRow] = field(default_factory=dict)
    recent: list[str] = field(default_factory=list)
    unpublished: list[str] = field(default_factory=list)
    samples: list[Signal] = field(default_factory=list)
    version: int = 0
    emitted_hash: str | None = None
    status: str | None = None
    lesson: Lesson | None = None
    lesson_from: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        counts = {n: getattr(self, n).to_dict() for n in _COUNTS}
        return {
            "identity": dataclasses.asdict(self.identity),
            **counts,
            "rows": dict(self.rows),  # rows are never mutated: sharing them is safe
            "recent": list(self.recent),
            "unpublished": list(self.unpublished),
            "samples": [dataclasses.asdict(s) for s in self.samples],
            "version": self.version,
            "emitted_hash": self.emitted_hash,
            "status": self.status,
            "lesson": dataclasses.asdict(self.lesson) if self.lesson else None,
            "lesson_from": list(self.lesson_from),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LessonGroup:
        lesson = d["lesson"]
        return cls(
            identity=LessonIdentity(**d["identity"]),
            **{n: Distinct.from_dict(d[n]) for n in _COUNTS},
            rows=dict(d["rows"]),
            recent=list(d["recent"]),
            unpublished=list(d["unpublished"]),
            samples=[_signal_from_dict(s) for s in d["samples"]],
            version=d["version"],
            emitted_hash=d["emitted_hash"],
            status=d.get("status"),
            lesson=Lesson(**{**lesson, "patch": _patch_from_dict(lesson["patch"])})
            if lesson
            else None,
            lesson_from=list(d["lesson_from"]),
        )


_COUNTS = ("episodes", "tasks", "users", "successes")


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
        """Inverse of `to_dict`; version-1 and -2 states (full evidence per group) are converted."""
        version = d.get("version")
        if version not in (1, 2, STATE_VERSION):
            raise ValueError(f"curation state version {version!r} != {STATE_VERSION}")
        upgrade = {1: _group_from_v1, 2: _group_from_v2}.get(version, LessonGroup.from_dict)
        return cls(key=d["key"], groups={k: upgrade(g) for k, g in d["groups"].items()})


def _group_from_v1(d: dict[str, Any]) -> LessonGroup:
    """A version-1 group: evidence was a list of entries."""
    rows = {
        e["episode_id"]: [e["user"], e["partition"], e["offset"], e["occurred_at"]]
        for e in d["evidence"]
    }
    recent = sorted(rows, key=lambda ep: (rows[ep][_AT], ep))[-EVIDENCE_PER_VERSION:]
    return _group_from_v2({**d, "evidence": rows, "recent": recent, "unpublished": []})


def _group_from_v2(d: dict[str, Any]) -> LessonGroup:
    """A version-2 group: every evidence row (episode id -> row); counts derived once. Task ids
    and outcomes were not recorded then: each episode counts as its own task and as a success."""
    rows: dict[str, EvidenceRow] = d["evidence"]
    keep = set(d["recent"]) | set(d["unpublished"])
    counts = {
        "episodes": Distinct.of(rows).to_dict(),
        "tasks": Distinct.of(f"episode:{ep}" for ep in rows).to_dict(),
        "users": Distinct.of(r[_USER] for r in rows.values() if r[_USER] is not None).to_dict(),
        "successes": Distinct.of(rows).to_dict(),
    }
    v3 = {**d, **counts, "rows": {ep: rows[ep] for ep in keep}, "status": None}
    return LessonGroup.from_dict(v3)


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
    min_tasks: int = 2,
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
    group = state.groups.setdefault(identity.experience_id, LessonGroup(identity))
    if signal.episode_id in group.rows or not _add_evidence(group, signal):
        return state, []  # re-delivery, or this episode already supports the lesson
    rules = _Rules(min_support, min_tasks, extractor)
    was_proposed = _proposed_recovery(state)
    outputs = [_next_version(state, group, rules)]
    if identity.kind == "recovery" and _proposed_recovery(state) != was_proposed:
        # a pitfall is superseded only by a recovery that is itself proposed (and only then)
        outputs += [_next_version(state, g, rules) for g in _pitfalls(state)]
    return state, [e for e in outputs if e is not None]


@dataclass(frozen=True, slots=True)
class _Rules:
    min_support: int
    min_tasks: int
    extractor: Extractor


def _proposed_recovery(state: CurationState) -> bool:
    return any(
        g.identity.kind == "recovery" and g.status == "proposed" for g in state.groups.values()
    )


def _pitfalls(state: CurationState) -> list[LessonGroup]:
    return [g for g in state.groups.values() if g.identity.kind == "pitfall" and g.version > 0]


def _sample_order(signal: Signal) -> tuple[int, str, str]:
    return (signal.occurred_at, signal.episode_id, signal.event_id)


def _add_evidence(group: LessonGroup, signal: Signal) -> bool:
    """Count the episode (False if the counts already hold it) and keep its row while a version
    may carry it. O(1): bounded lists, bounded counts."""
    episode = signal.episode_id
    exact = group.episodes.exact is not None
    if not group.episodes.add(episode) and exact:
        return False  # known for sure; past the cap the counts are idempotent, so go on
    group.tasks.add(signal.task_id or f"episode:{episode}")
    if signal.user is not None:
        group.users.add(signal.user)
    if signal.outcome not in FAILED_OUTCOMES:
        group.successes.add(episode)
    rows = group.rows
    rows[episode] = [signal.user, signal.source_partition, signal.source_offset, signal.occurred_at]
    bisect.insort(group.recent, episode, key=lambda ep: (rows[ep][_AT], ep))
    group.unpublished.append(episode)
    dropped = group.recent[:-EVIDENCE_PER_VERSION] + group.unpublished[:-UNPUBLISHED_LIMIT]
    del group.recent[:-EVIDENCE_PER_VERSION]
    del group.unpublished[:-UNPUBLISHED_LIMIT]
    keep = set(group.recent) | set(group.unpublished)
    for ep in dropped:
        if ep not in keep:
            rows.pop(ep, None)
    group.samples = sorted([*group.samples, signal], key=_sample_order)[:SAMPLE_SIZE]
    return True


def _values_vary(group: LessonGroup) -> bool:
    """True when the samples replaced an argument with DIFFERENT constant-looking values: the fix
    was task-specific (another search query per question), not a constant a patch can carry to
    other tasks, so the lesson stays a candidate. A constant replacement (`version: "v2"` every
    time) is a lesson; instance data (ids, values from the episode) is taught by guidance."""
    seen: dict[str, set[str | None]] = {}
    for signal in group.samples:
        for change in signal.patch.changes if signal.patch else []:
            if change.op == "replace" and not is_instance_change(change):
                seen.setdefault(change.argument, set()).add(change.value_json)
    return any(len(values) > 1 for values in seen.values())


def is_proposable(group: LessonGroup, state: CurationState, rules: _Rules) -> bool:
    """The curation rules (module doc): support in distinct episodes AND tasks, some evidence
    from an episode that did not fail, a constant fix, and for a pitfall no proposed recovery."""
    return (
        group.episodes.count() >= rules.min_support
        and group.tasks.count() >= rules.min_tasks
        and group.successes.count() >= 1
        and not (group.identity.kind == "pitfall" and _proposed_recovery(state))
        and not _values_vary(group)
    )


def _next_version(state: CurationState, group: LessonGroup, rules: _Rules) -> Experience | None:
    """The group's next experience version if its content changed since the last emission.

    Only the small content is hashed (never the evidence): new evidence always changes
    `support_episodes`, so it always makes a new version without hashing the evidence.
    """
    support = group.episodes.count()
    if group.identity.kind == "pitfall" and group.version == 0 and support < rules.min_support:
        return None  # a pitfall is published only once enough episodes show it
    lesson = _lesson(group, rules.extractor)
    if lesson is None:
        return None
    status = "proposed" if is_proposable(group, state, rules) else "candidate"
    draft = _experience(group, lesson, status=status)
    digest = content_digest(draft)
    if digest == group.emitted_hash:
        return None
    group.version += 1
    group.emitted_hash, group.status = digest, status
    event_id = _experience_uuid(f"{group.identity.experience_id}/{group.version}")
    evidence = _version_evidence(group)
    group.unpublished = []
    keep = set(group.recent)
    group.rows = {ep: row for ep, row in group.rows.items() if ep in keep}
    return dataclasses.replace(
        draft, event_id=event_id, version=group.version, evidence=evidence
    )


def content_digest(draft: Experience) -> str:
    """The hash of what a version says (never its evidence), stored as `emitted_hash`: stored
    states compare against it, so the content and its JSON must stay exactly these."""
    patch = draft.patch
    content = {
        "kind": draft.kind,
        "status": draft.status,
        "guidance": draft.guidance,
        "trigger": _fields(draft.trigger),
        "patch": {**_fields(patch), "changes": [_fields(c) for c in patch.changes]}
        if patch else None,
        "support": [draft.support_episodes, draft.support_users],
        "tool": draft.tool,
        "user": draft.user,
        "extractor": draft.extractor,
    }
    return hashlib.sha256(canonical_json(content).encode()).hexdigest()


def _fields(obj: Any) -> dict[str, Any]:
    """A dataclass of plain values as a dict: `dataclasses.asdict` without its deep copies
    (15% of curation's time once every version was hashed through it)."""
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def _version_evidence(group: LessonGroup) -> list[Evidence]:
    """The evidence a version carries (see the module docstring): cause, unpublished, recent.

    Bounded by EVIDENCE_PER_VERSION unless more episodes than that are still unpublished (a
    pitfall below a min_support that large, or an extractor that declined): lineage wins then.
    """
    rows = group.rows
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
        occurred_at=group.rows[group.recent[-1]][_AT],  # the newest evidence
        tenant=ident.tenant,
        agent=ident.agent,
        experience_id=ident.experience_id,
        version=0,
        kind=lesson.kind,
        trigger=Trigger(ident.signature, lesson.task_type, lesson.example_task),
        guidance=lesson.guidance,
        evidence=[],
        support_episodes=group.episodes.count(),
        support_users=group.users.count(),
        user=ident.user,
        tool=ident.tool,
        patch=lesson.patch,
        status=status,
        extractor=lesson.extractor,
    )
