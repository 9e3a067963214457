"""Forgetting a user in the stores: delete their ClickHouse rows and Qdrant points, withdraw the
lessons only they supported and strip their evidence from the others.

The same function runs live (`kaizen forget`) and at the end of a rebuild (for every receipt on
the privacy topic), so a rebuild after a forget gives the state of the live system.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from clickhouse_connect.driver.client import Client

from kaizen.readmodel.index import RecallIndex
from kaizen.schemas.model import Experience
from kaizen.sinks.qdrant_library import ExperienceLibrary

#: Tables with one row per event of a user (a `user` column); every row of the user goes.
USER_TABLES = ("episodes_v1", "steps_v1", "signals_v1", "recalls_v1")
_WHERE_USER = "tenant = {tenant:String} AND user = {user:String}"
_WHERE_LESSONS = "tenant = {tenant:String} AND experience_id IN {ids:Array(String)}"


@dataclass
class Forgotten:
    """What was deleted for one user."""

    rows_deleted: dict[str, int] = field(default_factory=dict)
    withdrawn: list[str] = field(default_factory=list)
    trimmed: list[str] = field(default_factory=list)


def split_lessons(lessons: list[Experience], user: str) -> tuple[list[str], list[Experience]]:
    """Lessons only `user` supported (or scoped to `user`), and the others that cited `user`,
    without that evidence."""
    withdrawn, trimmed = [], []
    for lesson in lessons:
        users = {e.user for e in lesson.evidence}
        if lesson.user == user or (user in users and users <= {user, None}):
            withdrawn.append(lesson.experience_id)
        elif user in users:
            evidence = [e for e in lesson.evidence if e.user != user]
            trimmed.append(dataclasses.replace(
                lesson, evidence=evidence, support_users=max(0, lesson.support_users - 1),
                support_episodes=max(0, lesson.support_episodes - (len(lesson.evidence)
                                                                   - len(evidence)))))
    return sorted(withdrawn), trimmed


def forget_in_stores(client: Client, library: ExperienceLibrary, index: RecallIndex | None,
                     tenant: str, user: str) -> Forgotten:
    """Delete the user's rows and points; withdraw or trim the lessons that cite them."""
    lessons = [e.experience for e in library.scroll(tenant=tenant)]
    withdrawn, trimmed = split_lessons(lessons, user)
    out = Forgotten(withdrawn=withdrawn, trimmed=sorted(x.experience_id for x in trimmed))
    params = {"tenant": tenant, "user": user}
    for table in USER_TABLES:
        out.rows_deleted[table] = _delete(client, table, _WHERE_USER, params)
    lesson_params = {"tenant": tenant, "ids": withdrawn}
    out.rows_deleted["experiences_v1"] = (
        _delete(client, "experiences_v1", _WHERE_LESSONS, lesson_params) if withdrawn else 0)
    client.command(  # the shared lessons keep their rows without this user's evidence
        "ALTER TABLE experiences_v1 UPDATE evidence_users = arrayMap(u -> if(u = {user:String}, "
        "NULL, u), evidence_users) WHERE tenant = {tenant:String} AND has(evidence_users, "
        "{user:String}) SETTINGS mutations_sync = 2", parameters=params)
    library.delete(withdrawn)
    for lesson in trimmed:
        library.replace(lesson)
    if index is not None:
        for experience_id in withdrawn:
            index.remove(experience_id)
        for lesson in trimmed:
            index.upsert(lesson)
    return out


def _delete(client: Client, table: str, where: str, params: dict[str, Any]) -> int:
    count = client.query(f"SELECT count() FROM {table} WHERE {where}",  # noqa: S608 - names
                         parameters=params).result_rows[0][0]
    if count:
        client.command(f"ALTER TABLE {table} DELETE WHERE {where} SETTINGS mutations_sync = 2",
                       parameters=params)
    return int(count)
