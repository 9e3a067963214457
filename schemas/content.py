"""The content hash of a lesson: one definition for snapshots (members) and the stores."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

from kaizen.schemas.model import Experience


def content_hash(experience: Experience) -> str:
    """sha256 of what a lesson makes an agent do: scope, kind, trigger, guidance, patch.

    Support, counts, status, version and evidence are left out, so a lesson that only gained
    support keeps its hash and a snapshot pinning it stays valid.
    """
    content = {
        "tenant": experience.tenant,
        "agent": experience.agent,
        "user": experience.user,
        "tool": experience.tool,
        "kind": experience.kind,
        "trigger": asdict(experience.trigger),
        "guidance": experience.guidance,
        "patch": asdict(experience.patch) if experience.patch is not None else None,
    }
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()
