"""Adapters that attach Kaizen to agents people already run.

Each module imports its framework lazily (inside functions), so `import kaizen` and the base
install never need the optional extras: `otel` (OTLP receiver, recall spans), `langchain`,
`openai-agents`, `mcp`.

    otlp_decode     OTLP/HTTP bodies (protobuf, JSON, gzip) -> plain `Span`s
    otlp_mapping    pure: GenAI / OpenInference spans of one trace -> an `EpisodePlan`
    otlp_buffer     pure: spans buffered per trace until the root agent span or an idle timeout
    otlp_ingest     the receiver of `kaizen serve`: plans -> Recorder episodes, dead letters
    otlp_http       the `POST /v1/traces` route (status codes, partial success)
    langchain       a LangChain / LangGraph callback handler and a system-prompt helper
    openai_agents   an OpenAI Agents SDK trace processor and an instructions hook
    mcp_server      `kaizen mcp`: recall and record tools over stdio or streamable HTTP
    (the recall span in the user's own traces is kaizen.client.tracing)
"""
