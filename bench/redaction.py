"""What redaction (and per-user encryption) add to `Recorder.emit`: per-event cost of the
redaction step next to the Avro encode the emit path already does, for clean events (the common
case) and events carrying PII; and the sealed encode of events with a user against the plain one.

    python -m bench.redaction [--events 20000]

Prints p50 / p99 in microseconds per event and the ratio to encoding (same run, same machine).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: bench importable

from bench.common import percentile
from kaizen.schemas import model
from kaizen.schemas.codec import Codec
from kaizen.streams.personal import CipherCodec, KeyStore, PersonalCipher
from kaizen.streams.redaction import Redactor
from tests.factories import episode_event


def _events(pii: bool) -> list[model.EpisodeEvent]:
    extra = " contact jane.doe@example.com or +44 20 7946 0958, card 4111 1111 1111 1111" \
        if pii else ""
    payloads: list[model.EpisodePayload] = [
        model.EpisodeStarted("Where is my order 88412? It was due on Monday." + extra, "orders"),
        model.ToolCall("c1", "orders.get", json.dumps({"order_id": 88412, "fields": ["eta"],
                                                       "note": "customer asked twice" + extra})),
        model.ToolResult("c1", "orders.get", False,
                         error="unknown field 'order_id'; did you mean 'id'?" + extra),
        model.Feedback(-1.0, "use the id field, not order_id" + extra),
        model.EpisodeEnded("success"),
    ]
    return [episode_event(p, seq=i) for i, p in enumerate(payloads)]


def _timings(step: Callable[[model.EpisodeEvent], object], events: list[model.EpisodeEvent],
             rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        for event in events:
            start = time.perf_counter_ns()
            step(event)
            out.append((time.perf_counter_ns() - start) / 1000)
    return sorted(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    redactor, codec = Redactor.default(), Codec()
    for label, pii in (("clean", False), ("with PII", True)):
        events = _events(pii)
        rounds = max(1, args.events // len(events))
        redact = _timings(lambda e: redactor.redact_event(e, Counter()), events, rounds)
        encode = _timings(codec.encode, events, rounds)
        p50, p99 = percentile(redact, 0.5), percentile(redact, 0.99)
        e50, e99 = percentile(encode, 0.5), percentile(encode, 0.99)
        print(f"{label:>9}: redact p50 {p50:6.1f} us  p99 {p99:6.1f} us | encode p50 {e50:5.1f} "
              f"us  p99 {e99:5.1f} us | redact/encode p50 {p50 / e50:4.2f}")
    with tempfile.TemporaryDirectory() as keys:  # per-user encryption (KAIZEN_ENCRYPT_PERSONAL)
        sealed = CipherCodec(PersonalCipher(KeyStore(Path(keys) / "keys.sqlite")))
        events = _events(False)
        rounds = max(1, args.events // len(events))
        plain, cipher = (_timings(c.encode, events, rounds) for c in (codec, sealed))
        p50, c50 = percentile(plain, 0.5), percentile(cipher, 0.5)
        print(f"  encrypt: encode p50 {p50:5.1f} us, sealed encode p50 {c50:5.1f} us  p99 "
              f"{percentile(cipher, 0.99):6.1f} us | sealed/plain p50 {c50 / p50:4.2f}")


if __name__ == "__main__":
    main()
