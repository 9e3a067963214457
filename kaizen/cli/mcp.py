"""`kaizen mcp`: an MCP server (stdio or streamable HTTP) with tools to recall and to record."""

from __future__ import annotations

from kaizen.integrations.mcp_server import register

__all__ = ["register"]
