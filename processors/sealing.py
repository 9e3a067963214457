"""Processor state sealed under its users' keys before it reaches a table's changelog.

The processors decode (open) every event they fold, so their tables hold the personal text of
episodes in plain: task texts, arguments, results, corrections. Each table is backed by a
changelog topic that is kept for recovery, and a forgotten user's text in it would outlive
`kaizen forget` on every replay of that topic. With per-user encryption on, what a table keeps
of a user is therefore sealed with that user's key (`streams/personal.py`), like the log:

- an episode's state: whole, under its user's key (an episode has one user);
- a curation state: a user's own lesson group (a preference) whole; of a shared lesson, each
  sample signal under its own user's key and the worded lesson under the key of the user whose
  task it shows as its example.

Once the key is gone, a sealed part reads as absent: the episode's state is dropped, the
preference group and the forgotten user's samples disappear from the curation state, and a
lesson that showed their task is worded again from the samples left; what other users
contributed stays. Without encryption (no cipher) states pass through unchanged.
"""

from __future__ import annotations

from typing import Any

from kaizen.streams.personal import PersonalCipher

SEALED = "sealed"  # a sealed part: {"sealed": ciphertext, "tenant": ..., "user": ...}


class StateSealer:
    """Seals and opens the parts of dumped states that belong to one user."""

    def __init__(self, cipher: PersonalCipher | None) -> None:
        self.cipher = cipher

    def seal(self, tenant: str, user: str | None, value: Any) -> Any:
        """`value` as a sealed part (unchanged without a cipher or a user)."""
        if self.cipher is None or not user:
            return value
        return {SEALED: self.cipher.seal_value(tenant, user, value), "tenant": tenant,
                "user": user}

    def open(self, value: Any) -> Any | None:
        """A part as it was before `seal`; None once its user is forgotten."""
        if not (isinstance(value, dict) and SEALED in value):
            return value
        if self.cipher is None:
            return None  # sealed by a deployment that encrypts, read without the keys
        return self.cipher.open_value(value["tenant"], value["user"], value[SEALED])

    def seal_episode(self, episode: dict[str, Any]) -> dict[str, Any]:
        """An episode state's dict sealed whole; the idle scan's two fields stay readable."""
        sealed = self.seal(episode["tenant"], episode.get("user") or _buffered_user(episode),
                           episode)
        if sealed is episode:
            return episode
        return {"last_event_at": episode["last_event_at"], "closed": episode["closed"],
                "part": sealed}

    def open_episode(self, stored: dict[str, Any]) -> dict[str, Any] | None:
        if "part" not in stored:
            return stored
        opened: dict[str, Any] | None = self.open(stored["part"])
        return opened

    def seal_curation(self, state: dict[str, Any]) -> dict[str, Any]:
        """A curation state's dict with each user's part sealed (see the module doc)."""
        if self.cipher is None:
            return state
        groups = {gid: self._seal_group(group) for gid, group in state["groups"].items()}
        return {**state, "groups": groups}

    def open_curation(self, state: dict[str, Any]) -> dict[str, Any]:
        groups = {}
        for gid, group in state["groups"].items():
            opened = self.open(group)
            if opened is None:
                continue
            samples = [self.open(s) for s in opened["samples"]]
            lesson = self.open(opened["lesson"])
            gone: dict[str, Any] = {"lesson_from": []} if lesson is None else {}  # reworded
            groups[gid] = {**opened, "samples": [s for s in samples if s is not None],
                           "lesson": lesson, **gone}
        return {**state, "groups": groups}

    def _seal_group(self, group: dict[str, Any]) -> Any:
        identity = group["identity"]
        if identity.get("user"):  # a user's own lesson: all of it is theirs
            return self.seal(identity["tenant"], identity["user"], group)
        samples = [self.seal(s["tenant"], s.get("user"), s) for s in group["samples"]]
        lesson, owner = group["lesson"], _example_owner(group)
        if owner is not None:  # its example task is that user's text
            lesson = self.seal(owner[0], owner[1], lesson)
        return {**group, "samples": samples, "lesson": lesson}


def _example_owner(group: dict[str, Any]) -> tuple[str, str] | None:
    """(tenant, user) of the sample whose task a shared lesson shows as its example."""
    example = (group.get("lesson") or {}).get("example_task")
    for sample in group["samples"] if example else ():
        if sample.get("task") == example and sample.get("user"):
            return str(sample["tenant"]), str(sample["user"])
    return None


def _buffered_user(episode: dict[str, Any]) -> str | None:
    """The user of an episode whose start has not arrived yet, from an event it buffered."""
    for positioned in episode.get("buffer", []):
        user = positioned.get("event", {}).get("user")
        if user:
            return str(user)
    return None
