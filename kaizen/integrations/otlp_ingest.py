"""The OTLP receiver of `kaizen serve`: decoded spans -> buffered traces -> Recorder episodes.

Episodes go through the same path as a hand-instrumented agent: one `Recorder` per (tenant,
agent), so events are Avro, keyed by episode, stamped with the scope's active snapshot and spooled
while the broker is away. Rejected spans are counted by reason and written to `kaizen.deadletter`
(component `otlp`) with the span as JSON; the rest of the request is kept. A ticker thread closes
idle traces by the injected clock. Nothing here blocks on the broker, and episodes are recorded
outside the buffer's lock, so a large trace being recorded never holds up other requests.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from kaizen.integrations.otlp_buffer import TraceBuffer
from kaizen.integrations.otlp_mapping import EpisodePlan, Span
from kaizen.schemas import model
from kaizen.schemas.dead_letters import DEAD_LETTER_NAMESPACE
from kaizen.settings import Settings
from kaizen.streams.dead_letter_writer import DeadLetterWriter
from kaizen.streams.recorder import Recorder
from kaizen.streams.registry import codec_for
from kaizen.streams.topics import Topics

log = structlog.get_logger(__name__)
COMPONENT = "otlp"
SOURCE = "otlp:/v1/traces"
MAX_RECORDERS = 64  # distinct (tenant, agent) scopes with an open producer; the oldest is closed
RecorderFactory = Callable[[str, str], Recorder]


@dataclass(frozen=True)
class ExportResult:
    """What one request did: the OTLP partial success is `rejected` with `message`."""

    accepted: int
    rejected: int
    message: str


def recorder_factory(settings: Settings) -> RecorderFactory:
    """Recorders like `kaizen.Recorder`, with a spool dir that no span attribute can steer."""
    topics = Topics(settings.topic_prefix)

    def make(tenant: str, agent: str) -> Recorder:
        digest = hashlib.sha256(f"{tenant}\0{agent}".encode()).hexdigest()[:16]
        return Recorder(agent, tenant, bootstrap=settings.bootstrap, topic=topics.episodes,
                        spool_dir=settings.spool_dir / f"otlp-{digest}",
                        spool_max_bytes=settings.spool_max_bytes,
                        codec=codec_for(settings.schema_registry_url, settings.personal_keys),
                        follow_snapshots=topics.snapshots,
                        producer_overrides=settings.kafka_client)

    return make


class OtlpReceiver:
    """Thread-safe: the HTTP server calls `export` from many threads."""

    def __init__(self, recorders: RecorderFactory, dead_letters: DeadLetterWriter | None, *,
                 clock: Callable[[], float] = time.monotonic, idle_seconds: float = 30.0,
                 wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000) -> None:
        self.buffer = TraceBuffer(clock, idle_seconds)
        self.rejected: Counter[str] = Counter()
        self.accepted = 0
        self.episodes = 0
        self._make_recorder, self._dead_letters, self._wall_ms = recorders, dead_letters, wall_ms
        self._recorders: OrderedDict[tuple[str, str], Recorder] = OrderedDict()
        self._lock = threading.Lock()  # the trace buffer
        self._recorders_lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> OtlpReceiver:
        writer = DeadLetterWriter(settings.bootstrap, Topics(settings.topic_prefix).deadletter,
                                  settings.kafka_client)
        return cls(recorder_factory(settings), writer, idle_seconds=settings.otlp_idle_seconds)

    def export(self, spans: Sequence[Span], rejections: Sequence[tuple[str, str]] = (),
               header_tenant: str | None = None) -> ExportResult:
        """Take the spans of one request; returns how many were kept and rejected, and why."""
        with self._lock:
            added = self.buffer.add(spans, header_tenant)
            self.accepted += added.accepted
        for plan in added.plans:  # outside the buffer lock: other requests never wait on it
            self._record(plan)
        reasons: Counter[str] = Counter()
        for span, reason in added.rejected:
            reasons[reason] += 1
            self._dead_letter(_span_json(span), reason, span.trace_id, span.span_id)
        for text, reason in rejections:
            reasons[reason] += 1
            self._dead_letter(text, reason, "", hashlib.sha256(text.encode()).hexdigest())
        self.rejected.update(reasons)
        message = "; ".join(f"{n} {reason}" for reason, n in reasons.most_common(5))
        return ExportResult(added.accepted, sum(reasons.values()), message)

    def tick(self) -> int:
        """Close idle traces now; returns how many episodes that recorded."""
        with self._lock:
            plans = self.buffer.expire()
        for plan in plans:
            self._record(plan)
        return len(plans)

    def start(self, every: float = 1.0) -> OtlpReceiver:
        def run() -> None:
            while not self._stop.wait(every):
                self.tick()

        self._ticker = threading.Thread(target=run, name="kaizen-otlp-idle", daemon=True)
        self._ticker.start()
        return self

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for every recorded event to reach the broker; returns how many are pending."""
        with self._recorders_lock:
            recorders = list(self._recorders.values())
        pending = sum(r.flush(timeout) for r in recorders)
        return pending + (self._dead_letters.flush(timeout) if self._dead_letters else 0)

    def close(self) -> None:
        """Record what is still buffered (as abandoned or finished) and close the producers."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(5)
        with self._lock:
            plans = self.buffer.drain()
        for plan in plans:
            self._record(plan)
        with self._recorders_lock:
            recorders, self._recorders = list(self._recorders.values()), OrderedDict()
        for recorder in recorders:
            recorder.close()
        if self._dead_letters is not None:
            self._dead_letters.close()

    def _record(self, plan: EpisodePlan) -> None:
        recorder = self._recorder(plan.tenant, plan.agent)
        episode = recorder.episode(plan.task, user=plan.user, episode_id=plan.episode_id,
                                   occurred_at=plan.started_at_ms)
        episode.start()
        for step in plan.steps:
            if step.kind == "tool_call":
                episode.tool_call(step.tool, step.arguments, call_id=step.call_id,
                                  occurred_at=step.at_ms)
            elif step.kind == "tool_result":
                episode.tool_result(step.tool, ok=step.ok, error=step.error, output=step.output,
                                    latency_ms=step.latency_ms, call_id=step.call_id,
                                    occurred_at=step.at_ms)
            else:
                episode.llm_call(step.model, input_tokens=step.input_tokens,
                                 output_tokens=step.output_tokens, latency_ms=step.latency_ms,
                                 occurred_at=step.at_ms)
        episode.end(outcome=plan.outcome, occurred_at=plan.ended_at_ms)
        with self._recorders_lock:
            self.episodes += 1

    def _recorder(self, tenant: str, agent: str) -> Recorder:
        key = (tenant, agent)
        with self._recorders_lock:
            recorder = self._recorders.get(key)
            if recorder is None:
                recorder = self._recorders[key] = self._make_recorder(tenant, agent)
                while len(self._recorders) > MAX_RECORDERS:
                    _, oldest = self._recorders.popitem(last=False)
                    threading.Thread(target=oldest.close, daemon=True).start()
            self._recorders.move_to_end(key)
            return recorder

    def _dead_letter(self, text: str, reason: str, trace_id: str, span_id: str) -> None:
        if self._dead_letters is None:
            return
        letter = model.DeadLetter(
            event_id=str(uuid.uuid5(DEAD_LETTER_NAMESPACE, f"{COMPONENT}/{trace_id}/{span_id}/"
                                                           f"{reason}")),
            occurred_at=self._wall_ms(), component=COMPONENT, source_topic=SOURCE,
            source_partition=-1, source_offset=-1, reason=reason[:2000], error_type="Rejected",
            key=f"{trace_id}/{span_id}".encode(), value=text.encode()[:65536])
        self._dead_letters.write(letter)


def _span_json(span: Span) -> str:
    return json.dumps(dataclasses.asdict(span), default=str)[:65536]
