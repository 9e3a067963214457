"""An OpenAI-compatible chat-completions client behind the `Extractor` protocol (off by default).

`llm_extractor(base_url, model)` returns an Extractor that words each lesson cluster (the failures
of one signature, the calls that then worked: the samples curation passes) as a rule-like lesson:

- the prompt, validation and deterministic fallback are `RecordedLLMExtractor`'s (pure, in
  processors/learning), so a model's answer goes through the same checks and the same gate as
  any lesson, and a bad answer never changes WHAT is learnt, only its wording;
- `ChatClient` posts `{"model", "messages", "temperature": 0}` to `{base_url}/chat/completions`
  with plain urllib, at most one request per `min_interval_s` (rate limit), and raises
  `LLMError` on transport failures (the processor must not silently learn without it);
- `CachedExtractor` asks once per cluster (kind, tool, signature, patch), so new evidence for a
  known lesson costs no request; the cache is bounded (least recently used out).

No model is reachable in this repository's tests: they replay RECORDED responses through an
injected transport.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Sequence

from kaizen.errors import KaizenError
from kaizen.processors.learning.extractors import Extractor, Lesson, RecordedLLMExtractor
from kaizen.schemas.model import Signal

#: (url, body, headers) -> response body; the default posts with urllib.
Transport = Callable[[str, bytes, dict[str, str]], bytes]
CACHE_SIZE = 4096


class LLMError(KaizenError, RuntimeError):
    """The endpoint could not be reached or answered with an HTTP error."""


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> bytes:
    request = urllib.request.Request(url, body, headers)  # noqa: S310 - the configured endpoint
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return bytes(response.read())
    except (urllib.error.URLError, TimeoutError) as exc:
        raise LLMError(f"chat completions at {url}: {exc}") from exc


class ChatClient:
    """`complete(prompt) -> str` (the raw chat.completion JSON) for `RecordedLLMExtractor`."""

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None,
                 min_interval_s: float = 1.0, timeout: float = 30.0,
                 transport: Transport | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.requests = model, 0
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._transport = transport or (lambda u, b, h: _post(u, b, h, timeout))
        self._interval, self._clock, self._sleep = min_interval_s, clock, sleep
        self._last: float | None = None

    def complete(self, prompt: str) -> str:
        self._wait_turn()
        body = json.dumps({"model": self.model, "temperature": 0,
                           "messages": [{"role": "user", "content": prompt}]}).encode()
        self.requests += 1
        return self._transport(self.url, body, dict(self._headers)).decode()

    def _wait_turn(self) -> None:
        now = self._clock()
        if self._last is not None and now - self._last < self._interval:
            self._sleep(self._interval - (now - self._last))
            now = self._clock()
        self._last = now


class CachedExtractor:
    """One answer per lesson cluster; see the module doc."""

    def __init__(self, inner: Extractor, size: int = CACHE_SIZE) -> None:
        self.inner, self.name, self._size = inner, inner.name, size
        self._cache: OrderedDict[str, Lesson | None] = OrderedDict()

    def lesson(self, signals: Sequence[Signal]) -> Lesson | None:
        key = _cluster_key(signals)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        lesson = self.inner.lesson(signals)
        self._cache[key] = lesson
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return lesson


def _cluster_key(signals: Sequence[Signal]) -> str:
    rep = signals[0] if signals else None
    if rep is None:
        return ""
    patch = None
    if rep.patch is not None:
        patch = [rep.patch.tool, rep.patch.use_tool,
                 sorted((c.op, c.argument, c.new_argument or "", c.rule or "")
                        for c in rep.patch.changes)]
    return json.dumps([rep.kind, rep.tool, rep.signature, rep.correction, rep.user, patch])


def llm_extractor(base_url: str, model: str, *, api_key: str | None = None,
                  min_interval_s: float = 1.0, transport: Transport | None = None
                  ) -> CachedExtractor:
    """The LLM-backed extractor: client, validation with deterministic fallback, cache."""
    client = ChatClient(base_url, model, api_key=api_key, min_interval_s=min_interval_s,
                        transport=transport)
    return CachedExtractor(RecordedLLMExtractor(client.complete, model=model))
