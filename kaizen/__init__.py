"""Kaizen: on-the-job learning for AI agent fleets.

    from kaizen import Recorder
    rec = Recorder(agent="support-bot", tenant="acme")
    with rec.episode(task=question, user=user_id) as ep:
        ep.tool_call("search", {"q": q}); ep.tool_result("search", ok=False, error=str(e))
        ep.end(success=True)
"""

from kaizen.recorder import Recorder
from kaizen.settings import Settings, load_settings

__all__ = ["Recorder", "Settings", "load_settings"]
