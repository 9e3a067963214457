"""OTLP ingest throughput next to the Recorder's, in one run on a real broker.

Prints spans/s through `POST /v1/traces` (protobuf, real HTTP, decode + buffer + mapping +
Recorder, until the broker acknowledged every event) and, from the same run, the events/s of a
Recorder emitting the same episodes directly, with the ratio of the two event rates.

Run: `python bench/otlp.py [--traces 4000] [--json PATH]`. Starts its own broker in a temp dir
unless KAIZEN_KAFKA_BOOTSTRAP is set.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: bench importable

from bench.common import broker, write_json
from kaizen.integrations.otlp_http import handle_traces
from kaizen.integrations.otlp_ingest import OtlpReceiver
from kaizen.streams.admin import create_topics
from kaizen.streams.recorder import Recorder
from kaizen.streams.topics import Topics

SPANS_PER_TRACE = 4  # invoke_agent, a failing execute_tool, the fixed one, a chat span
TRACES_PER_REQUEST = 50
EVENTS_PER_TRACE = 7  # started, 2 x (call + result), llm call, ended


def _attr(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _trace(n: int, t0: int) -> list[Span]:
    tid, root = n.to_bytes(16, "big"), (n * 8 + 1).to_bytes(8, "big")
    ns = t0 + n * 10_000_000

    def tool(k: int, args: str, failed: bool) -> Span:
        return Span(trace_id=tid, span_id=(n * 8 + k).to_bytes(8, "big"), parent_span_id=root,
                    name="execute_tool orders.get", start_time_unix_nano=ns + k * 1000,
                    end_time_unix_nano=ns + k * 1000 + 500,
                    attributes=[_attr("gen_ai.operation.name", "execute_tool"),
                                _attr("gen_ai.tool.name", "orders.get"),
                                _attr("gen_ai.tool.call.arguments", args)]
                    + ([_attr("error.type", "InvalidArgument")] if failed else []),
                    status=Status(code=Status.STATUS_CODE_ERROR, message="unknown field")
                    if failed else None)

    chat = Span(trace_id=tid, span_id=(n * 8 + 4).to_bytes(8, "big"), parent_span_id=root,
                name="chat m", start_time_unix_nano=ns + 4000, end_time_unix_nano=ns + 4500,
                attributes=[_attr("gen_ai.operation.name", "chat"),
                            _attr("gen_ai.usage.input_tokens", 100)])
    agent = Span(trace_id=tid, span_id=root, name="invoke_agent bench", start_time_unix_nano=ns,
                 end_time_unix_nano=ns + 9000,
                 attributes=[_attr("gen_ai.operation.name", "invoke_agent"),
                             _attr("gen_ai.agent.name", "bench-agent")])
    return [tool(2, '{"order_id": 1}', True), tool(3, '{"id": 1}', False), chat, agent]


def _bodies(traces: int) -> list[bytes]:
    t0 = time.time_ns()
    out = []
    for first in range(0, traces, TRACES_PER_REQUEST):
        spans = [s for n in range(first, min(traces, first + TRACES_PER_REQUEST))
                 for s in _trace(n + 1, t0)]
        request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
            resource=Resource(attributes=[_attr("service.name", "bench")]),
            scope_spans=[ScopeSpans(spans=spans)])])
        out.append(request.SerializeToString())
    return out


def _serve(receiver: OtlpReceiver) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            return

        def do_POST(self) -> None:  # noqa: N802 - stdlib name
            handle_traces(self, receiver, 64 * 1024 * 1024)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _otlp_rate(bootstrap: str, topics: Topics, home: Path, traces: int) -> dict[str, float]:
    def make(tenant: str, agent: str) -> Recorder:
        return Recorder(agent, tenant, bootstrap=bootstrap, topic=topics.episodes,
                        spool_dir=home / "spool-otlp" / f"{tenant}.{agent}")

    receiver = OtlpReceiver(make, None)
    server = _serve(receiver)
    url = f"http://127.0.0.1:{server.server_port}/v1/traces"
    bodies = _bodies(traces)
    start = time.perf_counter()
    for body in bodies:
        request = urllib.request.Request(url, body, {"Content-Type": "application/x-protobuf"})
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            response.read()
    pending = receiver.flush(120)
    elapsed = time.perf_counter() - start
    server.shutdown()
    receiver.close()
    assert pending == 0 and receiver.episodes == traces, (pending, receiver.episodes)
    spans = traces * SPANS_PER_TRACE
    return {"spans": spans, "seconds": elapsed, "spans_per_s": spans / elapsed,
            "events_per_s": traces * EVENTS_PER_TRACE / elapsed}


def _recorder_rate(bootstrap: str, topics: Topics, home: Path, traces: int) -> dict[str, float]:
    recorder = Recorder("bench-agent", "default", bootstrap=bootstrap, topic=topics.episodes,
                        spool_dir=home / "spool-rec" / "default.bench-agent")
    start = time.perf_counter()
    for i in range(traces):
        with recorder.episode("invoke_agent bench") as ep:
            ep.tool_call("orders.get", {"order_id": i})
            ep.tool_result("orders.get", ok=False, error="InvalidArgument: unknown field")
            ep.tool_call("orders.get", {"id": i})
            ep.tool_result("orders.get", ok=True)
            ep.llm_call("m", input_tokens=100)
            ep.end(success=True)
    pending = recorder.flush(120)
    elapsed = time.perf_counter() - start
    recorder.close()
    assert pending == 0
    return {"events": traces * EVENTS_PER_TRACE, "seconds": elapsed,
            "events_per_s": traces * EVENTS_PER_TRACE / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=4000)
    parser.add_argument("--json", dest="json_path", help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, broker(Path(tmp)) as bootstrap:
        prefix = f"bench{time.time_ns() % 10**8}"
        create_topics(bootstrap, prefix, 3)
        topics = Topics(prefix)
        _recorder_rate(bootstrap, topics, Path(tmp), 200)  # warm up the broker and the codec
        otlp = _otlp_rate(bootstrap, topics, Path(tmp), args.traces)
        direct = _recorder_rate(bootstrap, topics, Path(tmp), args.traces)
    ratio = otlp["events_per_s"] / direct["events_per_s"]
    print(f"OTLP ingest:  {otlp['spans_per_s']:>9,.0f} spans/s  "
          f"({otlp['events_per_s']:,.0f} events/s, {otlp['spans']:,} spans, HTTP + protobuf)")
    print(f"Recorder:     {direct['events_per_s']:>9,.0f} events/s ({direct['events']:,} events)")
    print(f"OTLP events/s / Recorder events/s: {ratio:.2f}")
    if args.json_path:  # flat, under stable names, as every benchmark writes its figures
        write_json(Path(args.json_path), {
            "otlp_spans_per_s": otlp["spans_per_s"], "otlp_events_per_s": otlp["events_per_s"],
            "recorder_events_per_s": direct["events_per_s"],
            "otlp_events_vs_recorder": ratio})


if __name__ == "__main__":
    main()
