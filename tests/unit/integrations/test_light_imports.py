"""`import kaizen` and the adapter modules never pull in the optional framework packages."""

from __future__ import annotations

import subprocess
import sys

ADAPTERS = ["kaizen", "kaizen.integrations.langchain", "kaizen.integrations.openai_agents",
            "kaizen.integrations.mcp_server", "kaizen.integrations.otlp_http",
            "kaizen.integrations.otlp_ingest", "kaizen.client.tracing"]
OPTIONAL = ("opentelemetry", "langchain_core", "agents", "mcp", "google")


def test_importing_kaizen_and_the_adapters_loads_no_framework_package() -> None:
    code = ("import sys\n" + "".join(f"import {m}\n" for m in ADAPTERS)
            + f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({OPTIONAL!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
