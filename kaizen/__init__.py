"""Kaizen: on-the-job learning for AI agent fleets.

    from kaizen import Recorder, recall
    rec = Recorder(agent="support-bot", tenant="acme")
    with rec.episode(task=question, user=user_id) as ep:
        lessons = recall(question, agent="support-bot", tenant="acme", user=user_id)
        ep.recall([x.experience_id for x in lessons], question)
        ep.tool_call("search", {"q": q}); ep.tool_result("search", ok=False, error=str(e))
        ep.end(success=True)
"""

from kaizen.recall import recall, render_lessons
from kaizen.recorder import Recorder
from kaizen.settings import Settings, load_settings

__all__ = ["Recorder", "Settings", "load_settings", "recall", "render_lessons"]
